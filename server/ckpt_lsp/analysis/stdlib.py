"""The standard library's top-level module names, the same on every supported Python.

`sys.stdlib_module_names` exists from 3.10 and differs between versions; the list in
data/stdlib_modules.txt (their union over 3.10 to 3.13) gives 3.9 a real set and every
interpreter the same findings.
"""

from __future__ import annotations

from pathlib import Path

_DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "stdlib_modules.txt"


def _read(path: Path) -> frozenset[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(s for s in (line.strip() for line in lines) if s and not s.startswith("#"))


STDLIB_MODULES = _read(_DATA_FILE)
