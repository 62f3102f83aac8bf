"""File paths as the server compares them: absolute and normalised, one spelling per file."""

from __future__ import annotations

import os


def norm_path(path: str | os.PathLike[str]) -> str:
    return os.path.normpath(os.path.abspath(os.fspath(path)))


def is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
