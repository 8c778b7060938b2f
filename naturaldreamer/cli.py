"""The command line: `python -m naturaldreamer COMMAND ...`."""

import argparse

from naturaldreamer import __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per job a reader runs."""
    parser = argparse.ArgumentParser(
        prog="python -m naturaldreamer",
        description="Train, evaluate and watch the DreamerV3 agent of the naturaldreamer book.",
    )
    parser.add_argument("--version", action="version", version=f"naturaldreamer {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.run(args)
