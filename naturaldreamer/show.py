"""Show the package's own source code inside a chapter (the book never copies code)."""

import inspect

from IPython.display import Markdown


def show(obj, lines: tuple[int, int] | None = None) -> Markdown:
    """The source of a function, class or method as a highlighted code block.

    `lines=(first, last)` keeps only those lines (1-based, inclusive) of the source.
    """
    source = inspect.getsource(obj)
    if lines is not None:
        source = "\n".join(source.splitlines()[lines[0] - 1:lines[1]])
    module = inspect.getmodule(obj).__name__
    return Markdown(f"From `{module}`:\n\n```python\n{source.rstrip()}\n```")
