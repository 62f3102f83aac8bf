"""Jupyter notebooks for the analysis: code cells joined into one module, IPython syntax
blanked in place, positions mapped between the module and the cells, fixes mapped back."""

from ckpt_lsp.notebook.cells import CellPosition, JoinedCells, cell_lines, join_cells
from ckpt_lsp.notebook.edits import CellEdit, edits_to_cells
from ckpt_lsp.notebook.magics import neutralise

__all__ = [
    "CellEdit",
    "CellPosition",
    "JoinedCells",
    "cell_lines",
    "edits_to_cells",
    "join_cells",
    "neutralise",
]
