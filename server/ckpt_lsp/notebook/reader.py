"""Reading a `.ipynb` file: its code cells, checked enough to never surprise the analysis.

The file is read with the standard `json` module rather than nbformat: a fix writes back
only the source of the cells it changed, byte for byte everything else, which needs the
places of those sources in the text (json.JSONDecoder.raw_decode gives them); and the
language server bundled in the editor extension reads notebooks too, where nbformat's
schema validator would bring native code. What the analysis relies on is checked here:
nbformat 4, a list of cells, each source a string or a list of strings. Anything else is
a one-line SourceError.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ckpt_lsp.notebook.cells import JoinedCells, join_cells
from ckpt_lsp.source import SourceError

NOTEBOOK_MAX_BYTES = 64 * 1024 * 1024  # outputs (images) make notebooks big; the code is small


@dataclass(frozen=True)
class CodeCell:
    index: int  # 0-based among all the notebook's cells (markdown included)
    id: str | None  # nbformat 4.5 cell id
    source: str


@dataclass(frozen=True)
class Notebook:
    text: str  # the file's JSON text
    cells: tuple[CodeCell, ...]  # the Python code cells, in order

    @cached_property
    def joined(self) -> JoinedCells:
        return join_cells([cell.source for cell in self.cells])


def is_notebook_path(path: object) -> bool:
    return str(path).endswith(".ipynb")


def decode_notebook(data: bytes) -> str:
    """The JSON text (UTF-8, a byte order mark tolerated)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(f"not a notebook: not UTF-8 JSON ({exc.reason})") from None


def _source(value: object, number: int) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "".join(value)
    raise SourceError(f"cell {number}: source is neither a string nor a list of strings")


def _is_python(language: object) -> bool:
    return not isinstance(language, str) or language.lower() in ("python", "python3", "ipython")


def _notebook_language(metadata: Mapping[str, Any]) -> object:
    """The notebook's language when it says one (an R or Julia notebook is not ours)."""
    info = metadata.get("language_info")
    if isinstance(info, dict) and "name" in info:
        return info["name"]
    kernel = metadata.get("kernelspec")
    if isinstance(kernel, dict) and "language" in kernel:
        return kernel["language"]
    return None


def _cell_language(cell: Mapping[str, Any]) -> object:
    metadata = cell.get("metadata")
    vscode = metadata.get("vscode") if isinstance(metadata, dict) else None
    return vscode.get("languageId") if isinstance(vscode, dict) else None


def _top(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"not a notebook: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise SourceError("not a notebook: JSON nested too deeply") from None
    if not isinstance(data, dict) or "nbformat" not in data:
        raise SourceError("not a notebook: no `nbformat` version")
    version = data["nbformat"]
    if version != 4:
        raise SourceError(f"nbformat {version!r} is not supported (only nbformat 4)")
    if not isinstance(data.get("cells"), list):
        raise SourceError("not a notebook: `cells` is not a list")
    return data


def parse_notebook(text: str) -> Notebook:
    """The notebook's Python code cells, or a one-line SourceError."""
    data = _top(text)
    metadata = data.get("metadata")
    python = _is_python(_notebook_language(metadata if isinstance(metadata, dict) else {}))
    cells: list[CodeCell] = []
    for index, cell in enumerate(data["cells"]):
        if not isinstance(cell, dict):
            raise SourceError(f"cell {index + 1} is not an object")
        source = _source(cell.get("source", ""), index + 1)
        if not python or cell.get("cell_type") != "code" or not _is_python(_cell_language(cell)):
            continue
        cell_id = cell.get("id")
        cells.append(CodeCell(index, cell_id if isinstance(cell_id, str) else None, source))
    return Notebook(text, tuple(cells))


def read_notebook_bytes(data: bytes) -> Notebook:
    return parse_notebook(decode_notebook(data))
