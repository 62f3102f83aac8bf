"""`--fix` and `--diff` on a notebook: the fix engine's edits on the joined module, moved
into their cells, and the notebook's JSON with only those cells' sources rewritten."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ckpt_lsp.findings import Edit, Finding
from ckpt_lsp.fix import fix_edits, fix_targets, value_edits_beside, value_fixes
from ckpt_lsp.fix.text import apply_edits
from ckpt_lsp.notebook.edits import edits_to_cells
from ckpt_lsp.notebook.reader import Notebook, parse_notebook
from ckpt_lsp.notebook.writer import replace_sources


@dataclass(frozen=True)
class NotebookFix:
    module_text: str  # the fixed notebook's joined module (unchanged when nothing applies)
    data: bytes  # the fixed .ipynb file
    diffs: list[str]  # a unified diff per changed cell


def _lines(source: str) -> list[str]:
    """A cell's lines for a diff; a cell rarely ends with a newline, the diff must."""
    return (source if source.endswith("\n") or not source else source + "\n").splitlines(True)


def _diff(old: str, new: str, name: str, index: int) -> str:
    import difflib

    label = f"{name}:cell {index + 1}"
    return "".join(
        difflib.unified_diff(
            _lines(old),
            _lines(new),
            fromfile=f"a/{label}",
            tofile=f"b/{label}",
        )
    )


def fix_notebook(
    notebook: Notebook, findings: Sequence[Finding], name: str, bom: bool = False
) -> NotebookFix:
    """The notebook with every fix applied in its cell (the classes' and the checkpoint
    values'); raises ValueError when an edit spans cells (the caller reports it and leaves
    the file alone)."""
    joined = notebook.joined
    targets = fix_targets(findings)
    edits = fix_edits(joined.text, targets) if targets else []
    edits += value_edits_beside(joined.text, value_fixes(findings), edits)
    moved = edits_to_cells(joined, edits)
    if moved is None:
        raise ValueError("an edit spans two cells")
    by_cell: dict[int, list[Edit]] = {}
    for item in moved:
        by_cell.setdefault(item.cell, []).append(item.edit)
    sources: dict[int, str] = {}
    diffs: list[str] = []
    for position, edits in sorted(by_cell.items()):
        cell = notebook.cells[position]
        new = apply_edits(cell.source, edits)
        if new != cell.source:
            sources[cell.index] = new
            diffs.append(_diff(cell.source, new, name, cell.index))
    if not sources:
        return NotebookFix(joined.text, notebook.text.encode("utf-8"), [])
    text = replace_sources(notebook.text, sources)
    fixed = parse_notebook(text)
    data = ("\ufeff" if bom else "").encode("utf-8") + text.encode("utf-8")
    return NotebookFix(fixed.joined.text, data, diffs)
