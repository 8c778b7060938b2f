"""Entry point of `python -m naturaldreamer`."""

from naturaldreamer.cli import main

raise SystemExit(main())
