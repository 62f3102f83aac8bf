"""Quick fixes inside notebook cells: built on the joined module, written into cells.

The fix engine sees the notebook as one module (a class and its base may sit in
different cells), so a fix is planned there and its edits moved into the cells they
fall in (ckpt_lsp.notebook.edits_to_cells). A fix is refused, never half-applied,
when an edit would span two cells, touch a cell other than the one it was asked for
(a quick fix, or a cell's fix-all), touch a line of IPython syntax, or leave a cell
that does not parse. The edit names each cell with the version it was made for, so
the editor drops it if the cell changed since.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from lsprotocol import types
from pygls.workspace import PositionCodec

from ckpt_lsp.findings import Edit, Position
from ckpt_lsp.fix import FixTarget, ValueFix
from ckpt_lsp.lsp import actions
from ckpt_lsp.lsp.notebooks import NotebookSnapshot
from ckpt_lsp.lsp.positions import LineIndex
from ckpt_lsp.notebook import CellEdit, cell_lines, edits_to_cells, neutralise

# What a fix action's data says about the rows of its targets: counted in the cell it
# was offered in, or in the joined module (the notebook-wide fix-all).
CELL_ROWS = "cell"
MODULE_ROWS = "module"

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def notebook_data(data: Mapping[str, object], notebook: str, rows: str) -> dict[str, object]:
    """A cell's fix action data: where its notebook is and how its rows count."""
    return {**data, "notebook": notebook, "rows": rows}


def module_targets(
    snap: NotebookSnapshot, cell: int, targets: Sequence[FixTarget], rows: str
) -> list[FixTarget]:
    if rows == MODULE_ROWS:
        return list(targets)
    shift = snap.joined.first_rows[cell] - 1
    return [replace(t, class_line=t.class_line + shift) for t in targets]


def module_values(
    snap: NotebookSnapshot, cell: int, values: Sequence[ValueFix], rows: str
) -> list[ValueFix]:
    """Checkpoint value fixes (CKPT010) moved to the joined module's rows, like targets."""
    if rows == MODULE_ROWS:
        return list(values)
    shift = snap.joined.first_rows[cell] - 1

    def down(pos: Position) -> Position:
        return Position(pos.row + shift, pos.column)

    return [
        replace(v, location=down(v.location), end_location=down(v.end_location)) for v in values
    ]


def _offset(lines: list[str], pos: Position) -> int:
    before = sum(len(line) for line in lines[: max(1, pos.row) - 1])
    return before + pos.column - 1


def apply_cell_edits(text: str, edits: Sequence[Edit]) -> str:
    """`text` with `edits` applied (1-based rows, code-point columns), last first."""
    lines = _LINE.findall(text) or [""]
    spans = sorted(
        ((_offset(lines, e.location), _offset(lines, e.end_location), e.content) for e in edits),
        reverse=True,
    )
    for start, end, content in spans:
        text = text[:start] + content + text[end:]
    return text


def _touches_ipython(text: str, edits: Sequence[Edit]) -> bool:
    """Whether an edit changes a line that the analysis saw blanked (IPython syntax)."""
    raw, blanked = cell_lines(text), cell_lines(neutralise(text))
    for edit in edits:
        for row in range(edit.location.row, edit.end_location.row + 1):
            if 0 < row <= len(raw) and raw[row - 1] != blanked[row - 1]:
                return True
    return False


def _parses(text: str) -> bool:
    try:
        ast.parse(neutralise(text))
    except (SyntaxError, ValueError):
        return False
    return True


def cell_edits(
    snap: NotebookSnapshot, cell: int, edits: Sequence[Edit], whole_notebook: bool
) -> dict[int, list[Edit]] | str:
    """The module's edits per cell, or why they cannot be written into the cells."""
    moved: list[CellEdit] | None = edits_to_cells(snap.joined, edits)
    if moved is None:
        return "the fix would span two cells"
    by_cell: dict[int, list[Edit]] = {}
    for item in moved:
        by_cell.setdefault(item.cell, []).append(item.edit)
    if not whole_notebook and set(by_cell) - {cell}:
        return "the fix would change another cell"
    for index, cell_edits_ in by_cell.items():
        text = snap.cells[index].text
        if _touches_ipython(text, cell_edits_):
            return f"the fix would change IPython syntax in cell {index + 1}"
        if not _parses(apply_cell_edits(text, cell_edits_)):
            return f"the fix would leave cell {index + 1} unparsable"
    return by_cell


def workspace_edit(
    snap: NotebookSnapshot,
    by_cell: Mapping[int, Sequence[Edit]],
    codec: PositionCodec,
    document_changes: bool,
) -> types.WorkspaceEdit:
    """One edit per changed cell, in the client's position units."""
    per_uri: list[tuple[str, int, list[types.TextEdit]]] = []
    for index in sorted(by_cell):
        state = snap.cells[index]
        line_index = LineIndex(state.text, codec)
        text_edits = [
            types.TextEdit(
                range=line_index.range_to_client(e.location, e.end_location), new_text=e.content
            )
            for e in by_cell[index]
        ]
        per_uri.append((state.uri, state.version, text_edits))
    if document_changes:
        return types.WorkspaceEdit(
            document_changes=[
                types.TextDocumentEdit(
                    text_document=types.OptionalVersionedTextDocumentIdentifier(
                        uri=uri, version=version
                    ),
                    edits=list(edits),
                )
                for uri, version, edits in per_uri
            ]
        )
    return types.WorkspaceEdit(changes={uri: edits for uri, _, edits in per_uri})


def resolve_cell_fix(
    snap: NotebookSnapshot,
    cell_uri: str,
    action: types.CodeAction,
    codec: PositionCodec,
    document_changes: bool,
) -> str | None:
    """Fill in a cell's fix action's edit for the notebook state `snap`; why not, or None."""
    cell = snap.cell_index(cell_uri)
    if cell is None:
        return "the cell is no longer in the notebook"
    data = action.data if isinstance(action.data, Mapping) else {}
    rows = str(data.get("rows", CELL_ROWS))
    carried = actions.action_targets(action)
    if isinstance(carried, str):
        return carried
    targets, values = carried
    edits = actions.planned_edits(
        snap.joined.text,
        module_targets(snap, cell, targets, rows),
        module_values(snap, cell, values, rows),
    )
    if isinstance(edits, str):
        return edits
    by_cell = cell_edits(snap, cell, edits, whole_notebook=rows == MODULE_ROWS)
    if isinstance(by_cell, str):
        return by_cell
    action.edit = workspace_edit(snap, by_cell, codec, document_changes)
    return None
