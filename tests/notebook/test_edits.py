"""Fix edits on the joined module land in the cell they belong to."""

from __future__ import annotations

import ast

from ckpt_lsp.findings import Edit, Position
from ckpt_lsp.fix.text import apply_edits
from ckpt_lsp.notebook import edits_to_cells, join_cells

CELLS = [
    "import torch\nclass Base(torch.nn.Module):\n    pass",
    "class Net(Base):\n    def __init__(self):\n        super().__init__()\n        self.f = open('x')",
    "net = Net()\ntorch.save(net, 'm.pt')\n",
]
METHOD = "\n    def __getstate__(self):\n        return {}\n"


def _apply(cells: list[str], edits: list[Edit]) -> list[str]:
    moved = edits_to_cells(join_cells(cells), edits)
    assert moved is not None
    out = list(cells)
    for cell_edit in moved:
        out[cell_edit.cell] = apply_edits(out[cell_edit.cell], [cell_edit.edit])
    ast.parse(join_cells(out).text)
    return out


def test_indented_insertion_at_a_cell_start_ends_the_cell_before() -> None:
    out = _apply(CELLS, [Edit(METHOD, Position(8, 1), Position(8, 1))])
    assert out[0] == CELLS[0] and out[2] == CELLS[2]
    assert out[1] == CELLS[1] + "\n" + METHOD.rstrip("\n")


def test_insertion_inside_a_cell() -> None:
    out = _apply(CELLS, [Edit("  # noted", Position(7, 27), Position(7, 27))])
    assert out[1].endswith("open('x')  # noted")
    assert [out[0], out[2]] == [CELLS[0], CELLS[2]]


def test_unindented_insertion_opens_its_cell() -> None:
    out = _apply(CELLS, [Edit("import copy\n", Position(4, 1), Position(4, 1))])
    assert out[1].startswith("import copy\nclass Net")


def test_insertion_after_the_last_row() -> None:
    cells = [*CELLS[:2]]
    out = _apply(cells, [Edit(METHOD, Position(8, 1), Position(8, 1))])
    assert out[1].endswith("return {}")


def test_an_edit_across_cells_is_refused() -> None:
    assert edits_to_cells(join_cells(CELLS), [Edit("", Position(3, 1), Position(5, 1))]) is None
