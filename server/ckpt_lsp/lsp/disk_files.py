"""Reading a closed file's text from disk: the one place the server does it.

Open files are never read from disk (the editor's text counts); closed ones are,
when they change on disk, when the editor drops unsaved changes and for
checkWorkspace. Callers catch DISK_READ_ERRORS and skip the file."""

from __future__ import annotations

from pathlib import Path

DISK_READ_ERRORS: tuple[type[Exception], ...] = (OSError, UnicodeDecodeError)


def read_disk_text(path: str) -> str:
    """The text of the file at `path`; raises one of DISK_READ_ERRORS."""
    return Path(path).read_bytes().decode("utf-8")
