"""Whether `df.name` reads a DataFrame's attribute or one of its columns.

pandas serves a column as an attribute when its name is no attribute of the class, so
`df.loss` of a frame is a Series unless `loss` is a DataFrame member: data/
pandas_frame_members.txt lists them (the installed pandas's, and those older versions had).
"""

from __future__ import annotations

from pathlib import Path

_DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "pandas_frame_members.txt"


def _read(path: Path) -> frozenset[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(s for s in (line.strip() for line in lines) if s and not s.startswith("#"))


FRAME_MEMBERS = _read(_DATA_FILE)


def reads_column(name: str) -> bool:
    """Whether `frame.<name>` is a column: a public name no DataFrame member has."""
    return not name.startswith("_") and name not in FRAME_MEMBERS
