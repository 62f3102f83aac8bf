"""Real notebooks for the tests, written with nbformat as Jupyter writes them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

BASE_CELL = "%matplotlib inline\nimport threading\nfrom torch import nn\n\n\nclass Layer(nn.Module):\n    pass"
MODEL_CELL = (
    "!pip install tqdm\n"
    "class Counter(Layer):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.lock = threading.Lock()"
)
TRAIN_CELL = "import torch\nmodel = Counter()\n%time y = 1\ntorch.save(model, 'model.pt')\n"


def write_notebook(path: Path, cells: list[tuple[str, str]], **metadata: object) -> Path:
    """cells: (kind, source), kind "code", "markdown" or "raw"; outputs on code cells, so a
    fix must keep them."""
    v4 = nbformat.v4
    nb = v4.new_notebook()
    nb.metadata.update(
        {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    nb.metadata.update(metadata)
    made = {"code": v4.new_code_cell, "markdown": v4.new_markdown_cell, "raw": v4.new_raw_cell}
    for kind, source in cells:
        cell = made[kind](source)
        if kind == "code":
            cell.outputs = [v4.new_output("stream", text="out\n")]
            cell.execution_count = 1
        nb.cells.append(cell)
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def notebook(tmp_path: Path) -> Callable[..., Path]:
    def make(
        cells: list[tuple[str, str]] | None = None, name: str = "nb.ipynb", **metadata: object
    ) -> Path:
        default = [
            ("code", BASE_CELL),
            ("markdown", "# The model"),
            ("code", MODEL_CELL),
            ("code", TRAIN_CELL),
        ]
        return write_notebook(tmp_path / name, cells or default, **metadata)

    return make
