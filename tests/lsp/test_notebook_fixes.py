"""Fixes planned on a notebook's joined module, written into its cells, or refused."""

from __future__ import annotations

import pytest
from ckpt_lsp.findings import Edit, Position
from ckpt_lsp.lsp import notebook_fixes
from ckpt_lsp.lsp.notebooks import CellState, NotebookSnapshot
from ckpt_lsp.notebook import join_cells
from lsp_helpers import apply_edits
from lsprotocol import types
from pygls.workspace import PositionCodec

BASE = "import torch.nn as nn\n\nclass Base(nn.Module):\n    pass"
MODEL = "%time x = 1\nclass Model(Base):\n    def __init__(self):\n        super().__init__()\n        self.log = open('a')"


def _snapshot(*texts: str) -> NotebookSnapshot:
    cells = tuple(CellState(f"cell:{i}", 3, t) for i, t in enumerate(texts))
    return NotebookSnapshot("file:///nb.ipynb", 1, "/nb.ipynb", cells, join_cells(texts))


def _action(targets: list[dict[str, object]], rows: str) -> types.CodeAction:
    data = {"ckpt": "fix", "uri": "cell:1", "version": 3, "targets": targets}
    return types.CodeAction(title="fix", data=notebook_fixes.notebook_data(data, "nb", rows))


TARGET = {"class": "Model", "line": 2, "attributes": ["log"], "bases": ["torch.nn.Module"]}


@pytest.mark.parametrize("rows", [notebook_fixes.CELL_ROWS, notebook_fixes.MODULE_ROWS])
def test_a_fix_lands_in_its_cell_and_parses(rows: str) -> None:
    snap = _snapshot(BASE, MODEL, "model = Model()")
    line = 2 if rows == notebook_fixes.CELL_ROWS else 2 + snap.joined.first_rows[1] - 1
    action = _action([{**TARGET, "line": line}], rows)
    assert notebook_fixes.resolve_cell_fix(snap, "cell:1", action, PositionCodec(), True) is None
    assert action.edit is not None and action.edit.document_changes is not None
    (change,) = action.edit.document_changes
    assert isinstance(change, types.TextDocumentEdit)
    assert change.text_document.uri == "cell:1" and change.text_document.version == 3
    fixed = apply_edits(MODEL, change.edits)  # type: ignore[arg-type]
    assert fixed.startswith("%time x = 1\n") and "def __getstate__" in fixed


def test_edits_are_refused_across_cells_on_ipython_lines_and_when_unparsable() -> None:
    snap = _snapshot(BASE, MODEL, "model = Model()")
    first = snap.joined.first_rows
    spans = Edit("", Position(first[0], 1), Position(first[1] + 1, 1))
    assert notebook_fixes.cell_edits(snap, 1, [spans], False) == "the fix would span two cells"
    other = Edit("# x\n", Position(1, 1), Position(1, 1))
    assert notebook_fixes.cell_edits(snap, 1, [other], False) == "the fix would change another cell"
    assert isinstance(notebook_fixes.cell_edits(snap, 1, [other], True), dict)
    magic = Edit("y", Position(first[1], 7), Position(first[1], 8))
    assert "IPython" in str(notebook_fixes.cell_edits(snap, 1, [magic], False))
    broken = Edit("def (", Position(first[1] + 1, 1), Position(first[1] + 1, 1))
    assert "unparsable" in str(notebook_fixes.cell_edits(snap, 1, [broken], False))


def test_a_cell_that_left_and_foreign_data_are_answered_not_raised() -> None:
    snap = _snapshot(BASE, MODEL)
    action = _action([TARGET], notebook_fixes.CELL_ROWS)
    reason = notebook_fixes.resolve_cell_fix(snap, "cell:9", action, PositionCodec(), True)
    assert reason == "the cell is no longer in the notebook"
    foreign = types.CodeAction(title="x", data={"targets": [{"nope": 1}], "notebook": "nb"})
    reason = notebook_fixes.resolve_cell_fix(snap, "cell:1", foreign, PositionCodec(), False)
    assert reason == "the action's data is not ckpt-lsp's"


def test_apply_cell_edits_counts_code_points_and_line_breaks() -> None:
    text = "a\r\nbé\n"
    edits = [Edit("X", Position(3, 1), Position(3, 1)), Edit("Y", Position(2, 2), Position(2, 3))]
    assert notebook_fixes.apply_cell_edits(text, edits) == "a\r\nbY\nX"


def test_findings_move_to_their_cell_with_rows_counted_from_it() -> None:
    from ckpt_lsp.findings import Finding
    from ckpt_lsp.lsp.notebooks import findings_by_cell

    snap = _snapshot(BASE, MODEL)
    first = snap.joined.first_rows[1]
    finding = Finding(
        code="CKPT001",
        message="m",
        severity="error",
        filename="/nb.ipynb",
        location=Position(first + 4, 9),
        end_location=Position(first + 4, 17),
        class_name="Model",
        attribute="log",
        what="an open file",
        breaks=(),
        fine=(),
        url="",
        class_line=first + 1,
        statement_rows=(first + 4, first + 4),
        related=(("/nb.ipynb", 3, 1, "in the notebook"), ("/src/io.py", 7, 5, "elsewhere")),
    )
    per_cell = findings_by_cell(snap, [finding])
    assert per_cell[0] == []
    (moved,) = per_cell[1]
    assert (moved.location, moved.end_location) == (Position(5, 9), Position(5, 17))
    assert moved.class_line == 2 and moved.statement_rows == (5, 5)
    assert moved.related == (("/src/io.py", 7, 5, "elsewhere"),)


def test_the_cell_joiner_joins_as_join_cells_does() -> None:
    from ckpt_lsp.lsp.notebooks import CellJoiner

    joiner = CellJoiner(limit=3)
    cells = [BASE, MODEL, "", "!pip list\r\nx = 1\r\n", "%%bash\necho hi\n", BASE]
    for end in range(len(cells) + 1):
        assert joiner.join(cells[:end]) == join_cells(cells[:end])
    cells[1] = MODEL.replace("open('a')", "open('b')")
    assert joiner.join(cells) == join_cells(cells)
