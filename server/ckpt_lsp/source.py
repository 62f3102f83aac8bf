"""Reading a file's text the way Python would: BOM, PEP 263 cookies, and clear errors.

The one decoder: the CLI, the project index and the language server all read Python
files from disk through it, so a Latin-1 module with a coding cookie means the same to
each. Every failure is one line for the user (`SourceError`), never a traceback.
"""

from __future__ import annotations

import codecs
import io
import os
import tokenize
from pathlib import Path

MAX_BYTES = 10 * 1024 * 1024  # larger files are reported as skipped, not analyzed


class SourceError(Exception):
    """A file that cannot be checked; the message is one line."""


def decode_source(data: bytes) -> str:
    """Decode Python source bytes (BOM and coding cookie honoured)."""
    if b"\x00" in data:
        raise SourceError("binary file (contains NUL bytes), skipped")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        raise SourceError(_encoding_problem(str(exc))) from None
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        reason = exc.reason if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise SourceError(f"not valid {encoding} text ({reason}), skipped") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


def _encoding_problem(reason: str) -> str:
    """tokenize's reasons, said for the user."""
    if reason.startswith("unknown encoding"):
        name = reason.split(":", 1)[-1].strip()
        return f"unknown encoding '{name}' in the coding declaration, skipped"
    if reason.startswith("encoding problem"):
        return "a UTF-8 byte order mark and a different coding declaration, skipped"
    if "encoding" in reason:
        return "not valid UTF-8 text and no PEP 263 coding declaration, skipped"
    return f"cannot decode: {reason}"


def read_source_text(path: str | Path, max_bytes: int = MAX_BYTES) -> str:
    """The file's text as Python would read it, or a one-line SourceError. Every Python
    file read from disk (by the CLI, the project index, the server) is read by this.
    A Jupyter notebook (`.ipynb`) reads as its code cells joined into one module."""
    if str(path).endswith(".ipynb"):
        from ckpt_lsp.notebook.reader import NOTEBOOK_MAX_BYTES, read_notebook_bytes

        return read_notebook_bytes(read_bytes(path, max(max_bytes, NOTEBOOK_MAX_BYTES))).joined.text
    return decode_source(read_bytes(path, max_bytes))


def read_bytes(path: str | Path, max_bytes: int = MAX_BYTES) -> bytes:
    """The file's bytes, or a one-line SourceError (too large, a directory, unreadable)."""
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            raise SourceError(
                f"skipped: too large ({size / 1e6:.1f} MB > {max_bytes / 1e6:.0f} MB limit)"
            )
        with open(path, "rb") as fh:
            data = fh.read()
    except IsADirectoryError:
        raise SourceError("is a directory") from None
    except OSError as exc:
        raise SourceError(exc.strerror or str(exc)) from None
    return data


def encode_like(text: str, original: bytes) -> bytes:
    """Encode fixed text with the original file's encoding and BOM."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(original).readline)
    except SyntaxError:
        encoding = "utf-8"
    if encoding == "utf-8-sig":
        return codecs.BOM_UTF8 + text.encode("utf-8")
    return text.encode(encoding)
