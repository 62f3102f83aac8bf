"""Findings of a notebook's joined module, put back in their cells.

The analysis, the cache and the fix engine work on the joined module; the reports speak
of cells. A finding's location, its related places in the same notebook and its fix's
edits become cell-relative and carry the cell (`CellRef`), including the rows of the
.ipynb file's JSON that hold the line, for annotations on the file itself.
"""

from __future__ import annotations

import os
from dataclasses import replace

from ckpt_lsp.findings import CellRef, Finding, Fix, Position
from ckpt_lsp.notebook.cells import cell_lines
from ckpt_lsp.notebook.edits import edits_to_cells
from ckpt_lsp.notebook.reader import Notebook
from ckpt_lsp.notebook.writer import array_items, source_spans


def _row_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def json_rows(notebook: Notebook) -> dict[int, list[int]]:
    """For each code cell (by index among all cells), the JSON row of each source line."""
    text = notebook.text
    spans = source_spans(text)
    out: dict[int, list[int]] = {}
    for cell in notebook.cells:
        start, end = spans[cell.index]
        if start == end:
            continue
        if text[start] == "[":
            items = array_items(text, start)
            out[cell.index] = [_row_of(text, s) for s, _ in items] or [_row_of(text, start)]
        else:
            out[cell.index] = [_row_of(text, start)]
    return out


class CellLocator:
    """Maps module positions of one notebook to cells."""

    def __init__(self, notebook: Notebook, filename: str) -> None:
        self.notebook = notebook
        self.joined = notebook.joined
        self.filename = os.path.normpath(os.path.abspath(filename))
        self._rows: dict[int, list[int]] | None = None

    def _json_row(self, cell_index: int, row: int) -> int:
        if self._rows is None:
            self._rows = json_rows(self.notebook)
        rows = self._rows.get(cell_index) or [0]
        return rows[min(row, len(rows)) - 1]

    def ref(self, code_cell: int, rows: tuple[int, int]) -> CellRef:
        cell = self.notebook.cells[code_cell]
        file_rows = (self._json_row(cell.index, rows[0]), self._json_row(cell.index, rows[1]))
        return CellRef(cell.index + 1, cell.id, file_rows)

    def finding(self, finding: Finding) -> Finding:
        start = self.joined.to_cell(finding.location)
        end = self.joined.to_cell(finding.end_location)
        end_position = end.position if end.cell == start.cell else _cell_end(self, start.cell)
        ref = self.ref(start.cell, (start.position.row, end_position.row))
        return replace(
            finding,
            location=start.position,
            end_location=end_position,
            related=tuple(self._related(item) for item in finding.related),
            fix=self._fix(finding.fix),
            cell=ref,
        )

    def _related(self, item: tuple[str, int, int, str]) -> tuple[str, int, int, str]:
        path, row, column, message = item
        if os.path.normpath(os.path.abspath(path)) != self.filename:
            return item
        at = self.joined.to_cell(Position(row, column))
        index = self.notebook.cells[at.cell].index + 1
        return (path, at.position.row, at.position.column, f"cell {index}: {message}")

    def _fix(self, fix: Fix | None) -> Fix | None:
        if fix is None:
            return None
        moved = edits_to_cells(self.joined, fix.edits)
        if moved is None:
            return None  # an edit across two cells cannot be offered
        edits = tuple(
            replace(m.edit, cell=self.ref(m.cell, (m.edit.location.row, m.edit.end_location.row)))
            for m in moved
        )
        return Fix(fix.message, edits)


def _cell_end(locator: CellLocator, cell: int) -> Position:
    source = locator.notebook.cells[cell].source
    lines = cell_lines(source)
    return Position(len(lines), len(lines[-1]) + 1)


def locate_findings(findings: list[Finding], notebook: Notebook, filename: str) -> list[Finding]:
    """The findings with cell-relative positions and their cell."""
    if not findings:
        return findings
    locator = CellLocator(notebook, filename)
    return [locator.finding(f) for f in findings]


__all__ = ["CellLocator", "json_rows", "locate_findings"]
