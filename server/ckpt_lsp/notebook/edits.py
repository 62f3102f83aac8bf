"""Fix edits made on the joined module, moved into the cells they belong to.

The fix engine edits the module text. An edit inside one cell moves by arithmetic. An
insertion at the very start of a cell's first line is ambiguous: when its text is
indented it continues the block that ends the cell before (a method added at the end
of a class), so it is appended to that cell; otherwise it opens this cell. An edit that
spans two cells cannot be written into either: the whole set is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ckpt_lsp.findings import Edit, Position
from ckpt_lsp.notebook.cells import JoinedCells, cell_lines


@dataclass(frozen=True)
class CellEdit:
    cell: int  # 0-based index among the joined sources
    edit: Edit  # 1-based rows and code-point columns inside the cell


def _continues_block(content: str) -> bool:
    first = next((line for line in cell_lines(content) if line.strip()), "")
    return first[:1] in (" ", "\t")


def _append(joined: JoinedCells, cell: int, content: str) -> CellEdit:
    """An insertion at the end of a cell, after its last line."""
    lines = cell_lines(joined.text)
    last_row = joined.row_counts[cell]
    last_line = lines[joined.first_rows[cell] + last_row - 2]
    at = Position(last_row, len(last_line) + 1)
    if last_line:  # the cell has no trailing newline: the insertion brings one
        content = "\n" + (content[:-1] if content.endswith("\n") else content)
    return CellEdit(cell, Edit(content, at, at))


def _move(joined: JoinedCells, edit: Edit) -> CellEdit | None:
    start, end = edit.location, edit.end_location
    cell = joined.cell_of_row(start.row)
    last_row = joined.cell_rows(cell)[-1]
    if start == end and start.row > last_row:
        return _append(joined, cell, edit.content)  # after the module's last line
    opens_cell = start.column == 1 and start.row == joined.first_rows[cell] and cell > 0
    if start == end and opens_cell and _continues_block(edit.content):
        return _append(joined, cell - 1, edit.content)
    if joined.cell_of_row(end.row) != cell or end.row > last_row:
        return None
    moved = Edit(edit.content, joined.to_cell(start).position, joined.to_cell(end).position)
    return CellEdit(cell, moved)


def edits_to_cells(joined: JoinedCells, edits: Sequence[Edit]) -> list[CellEdit] | None:
    """The module edits as edits of single cells, or None when one spans cells."""
    out: list[CellEdit] = []
    for edit in edits:
        moved = _move(joined, edit)
        if moved is None:
            return None
        out.append(moved)
    return out
