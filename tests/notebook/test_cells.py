"""Cells joined into one module, and positions both ways."""

from __future__ import annotations

import ast

from ckpt_lsp.findings import Position
from ckpt_lsp.notebook import join_cells

CELLS = [
    "import torch\nclass Base(torch.nn.Module):\n    pass",
    "%matplotlib inline\nx = !ls\n",
    "",
    "class Net(Base):\n    def __init__(self):\n        self.f = open('x')",
]


def test_joined_text_parses_and_keeps_rows() -> None:
    joined = join_cells(CELLS)
    ast.parse(joined.text)
    assert joined.first_rows == (1, 4, 7, 8)
    assert joined.row_counts == (3, 3, 1, 3)
    assert joined.text.endswith("self.f = open('x')\n")


def test_positions_round_trip_for_every_character() -> None:
    joined = join_cells(CELLS)
    module_lines = joined.text.split("\n")
    for cell, source in enumerate(CELLS):
        for row, line in enumerate(source.split("\n"), start=1):
            for column in range(1, len(line) + 2):
                at = joined.to_module(cell, Position(row, column))
                assert len(module_lines[at.row - 1]) == len(line)
                back = joined.to_cell(at)
                assert (back.cell, back.position) == (cell, Position(row, column))


def test_a_class_in_a_later_cell_sits_after_its_base() -> None:
    joined = join_cells(CELLS)
    tree = ast.parse(joined.text)
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    net = joined.to_cell(Position(classes[1].lineno, classes[1].col_offset + 1))
    assert net.cell == 3 and net.position == Position(1, 1)


def test_no_cells() -> None:
    joined = join_cells([])
    assert joined.text == "" and joined.cell_count == 0
