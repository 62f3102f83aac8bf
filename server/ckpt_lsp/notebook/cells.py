"""A notebook's code cells as one module, and positions between the two.

The cells are joined in order, one line after another: cell k's line r is the
module's row `first_row[k] + r`, and columns never change (magics.py blanks IPython
syntax in place). A cell contributes every line of its text, including the empty
last line after a trailing newline, so each cell has at least one row and every
position in a cell, the editor's included, has a row in the module.

Rows and columns are 1-based code points, as in findings.Position; cell indexes are
0-based here (the reports print them 1-based).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ckpt_lsp.findings import Position
from ckpt_lsp.notebook.magics import neutralise_lines

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def cell_lines(source: str) -> list[str]:
    """A cell's lines without their endings; a trailing newline leaves an empty last line."""
    return _LINE_BREAK.split(source)


@dataclass(frozen=True)
class CellPosition:
    cell: int  # 0-based index among the sources given to join_cells
    position: Position  # 1-based row and column inside the cell


@dataclass(frozen=True)
class JoinedCells:
    """The module the analysis reads, and where each cell sits in it."""

    text: str  # neutralised cells joined by "\n", ending in "\n"
    first_rows: tuple[int, ...]  # 1-based module row of each cell's first line
    row_counts: tuple[int, ...]  # lines of each cell (at least 1)

    @property
    def cell_count(self) -> int:
        return len(self.first_rows)

    def cell_of_row(self, row: int) -> int:
        """Index of the cell holding a module row (clamped to the first and last cell)."""
        if not self.first_rows:
            raise ValueError("a notebook without code cells has no rows")
        return max(0, bisect.bisect_right(self.first_rows, row) - 1)

    def to_cell(self, position: Position) -> CellPosition:
        """The cell and the in-cell position of a module position."""
        cell = self.cell_of_row(position.row)
        last = self.row_counts[cell]
        row = min(max(1, position.row - self.first_rows[cell] + 1), last)
        return CellPosition(cell, Position(row, position.column))

    def to_module(self, cell: int, position: Position) -> Position:
        """The module position of a position inside a cell (rows past the cell's end clamp)."""
        row = min(max(1, position.row), self.row_counts[cell])
        return Position(self.first_rows[cell] + row - 1, position.column)

    def cell_rows(self, cell: int) -> range:
        """The module rows of one cell."""
        first = self.first_rows[cell]
        return range(first, first + self.row_counts[cell])


def join_cells(sources: Sequence[str]) -> JoinedCells:
    """One module text from code cell sources in notebook order, IPython syntax blanked."""
    lines: list[str] = []
    first_rows: list[int] = []
    counts: list[int] = []
    for source in sources:
        cell = neutralise_lines(cell_lines(source))
        first_rows.append(len(lines) + 1)
        counts.append(len(cell))
        lines.extend(cell)
    text = "\n".join(lines) + "\n" if lines else ""
    return JoinedCells(text, tuple(first_rows), tuple(counts))
