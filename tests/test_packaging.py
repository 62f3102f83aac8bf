"""What a pip install ships: every data file the package reads must be package data."""

from __future__ import annotations

import fnmatch
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "server" / "ckpt_lsp"


def test_every_data_file_is_package_data() -> None:
    """A data file left out of the wheel works from a checkout and fails once installed
    (pre-commit installs the package, so its hook would crash)."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["ckpt_lsp"]
    data = [
        p.relative_to(PACKAGE).as_posix()
        for p in (PACKAGE / "data").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    assert data, "no data files found"
    left_out = [f for f in data if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert left_out == [], f"not in [tool.setuptools.package-data]: {left_out}"
