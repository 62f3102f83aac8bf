"""What the analysis produces and every face (CLI, server, fixes) consumes.

Positions are 1-based rows and 1-based columns counted in Unicode code points,
like ruff's JSON; the language server converts to the client's encoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, order=True)
class Position:
    row: int  # 1-based line
    column: int  # 1-based, in code points


@dataclass(frozen=True)
class CellRef:
    """The notebook cell a finding or an edit is in (its positions are then in the cell)."""

    index: int  # 1-based among all the notebook's cells, markdown included
    id: str | None = None  # the nbformat 4.5 cell id, when the notebook has ids
    file_rows: tuple[int, int] = (0, 0)  # rows of the .ipynb file's JSON that hold it


@dataclass(frozen=True)
class Edit:
    content: str
    location: Position
    end_location: Position
    cell: CellRef | None = None


@dataclass(frozen=True)
class Fix:
    message: str
    edits: tuple[Edit, ...]


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    severity: str  # "error" | "warning"
    filename: str
    location: Position
    end_location: Position
    class_name: str | None  # None for a module-level function (CKPT010)
    attribute: str | None  # None when a CKPT010 value has no constant key
    what: str  # short noun phrase: "an open file", "a lambda"
    breaks: tuple[str, ...]  # save paths that fail (keys of rules.SAVE_PATHS)
    fine: tuple[str, ...]  # save paths that work
    url: str
    class_line: int = 0  # row of the `class` statement, for fixes
    statement_rows: tuple[int, int] = (0, 0)  # first and last row of the assignment statement
    bases: tuple[str, ...] = ()  # library bases the class derives from (fixes pick super() by them)
    fix_mode: str = "recreate"  # "recreate" | "reset" | "none" (see catalog.Hazard.fix)
    fix: Fix | None = field(default=None, compare=False)
    # other places that explain the finding: (filename, row, column, message), 1-based;
    # a conditional hazard points at the `return` that makes it
    related: tuple[tuple[str, int, int, str], ...] = ()
    cell: CellRef | None = None  # set for a notebook: location and edits are in this cell


@dataclass(frozen=True)
class FileError:
    """A file that could not be checked: one line for the user, never a traceback."""

    filename: str
    message: str


def related_path(path: str, filename: str) -> str:
    """A related location's `path`, written the way the finding's filename is (relative when
    that one is)."""
    if Path(filename).is_absolute() or not Path(path).is_absolute():
        return path
    try:
        return Path(path).relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path
