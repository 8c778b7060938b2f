"""Writing files so that a crash never leaves a half-written one (chapter 9).

Every file a training run produces is first written to a temporary file next to it, flushed
to the disk, and then renamed over the old one. A rename within one directory is atomic: a
reader of the path finds either the old file or the new one, never a mix, even when the
process is killed in the middle of writing.
"""

import os
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write(file)` on a temporary binary file, then put it in place as `path`."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write(path, lambda file: file.write(text.encode("utf-8")))


def _sync_directory(directory: Path) -> None:
    """Flush the directory entry too, so that the rename itself survives a power cut."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
