"""The notebooks the editor has open (LSP 3.17 notebook sync), as the analysis sees them.

pygls keeps each notebook's cell list and each cell's text (a text document at a
`vscode-notebook-cell:` URI). The analysis reads one module: the notebook's Python
code cells joined in order with IPython syntax blanked in place (ckpt_lsp.notebook),
so a class in cell 3 finds its base in cell 1. A snapshot freezes the cells that
module was made of (URIs, versions, texts): a result is kept only while it matches
the notebook's present cells, and a fix is built on the exact texts it was offered for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import unquote

from lsprotocol import types
from pygls.uris import to_fs_path

from ckpt_lsp.findings import Finding, Position
from ckpt_lsp.lsp.file_paths import norm_path
from ckpt_lsp.notebook import JoinedCells, join_cells

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

NOTEBOOK_SYNC = types.NotebookDocumentSyncOptions(
    notebook_selector=[
        types.NotebookDocumentFilterWithCells(
            notebook="jupyter-notebook", cells=[types.NotebookCellLanguage(language="python")]
        )
    ],
    save=True,
)


@dataclass(frozen=True)
class CellState:
    """One code cell as it was when a snapshot was taken."""

    uri: str
    version: int
    text: str


@dataclass(frozen=True)
class NotebookSnapshot:
    """A notebook's Python code cells at one moment, and the module they make."""

    uri: str
    version: int  # the notebook's
    path: str  # what the analysis calls the notebook (its file path, else its URI)
    cells: tuple[CellState, ...]
    joined: JoinedCells

    @property
    def key(self) -> tuple[tuple[str, int, str], ...]:
        return tuple((c.uri, c.version, c.text) for c in self.cells)

    def cell_index(self, uri: str) -> int | None:
        wanted = unquote(uri)
        for i, cell in enumerate(self.cells):
            if unquote(cell.uri) == wanted:
                return i
        return None


def notebook_path(uri: str) -> str:
    """The file name the analysis knows a notebook by."""
    if uri.startswith("file:"):
        path = to_fs_path(uri)
        if path:
            return norm_path(path)
    return uri


class CellJoiner:
    """`join_cells` for notebooks whose cells change one at a time. Blanking IPython
    syntax reads every line (about 50 ms for a 5,000-line notebook, on the event loop,
    at each keystroke), and a cell is blanked on its own: each cell's part is kept by
    its text, and the module is the parts put one after another."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._parts: dict[str, JoinedCells] = {}

    def join(self, sources: list[str]) -> JoinedCells:
        parts: list[JoinedCells] = []
        for source in sources:
            part = self._parts.get(source)
            if part is None:
                if len(self._parts) >= self.limit:
                    self._parts.clear()
                part = self._parts[source] = join_cells([source])
            parts.append(part)
        first_rows: list[int] = []
        row = 1
        for part in parts:
            first_rows.append(row)
            row += part.row_counts[0]
        counts = tuple(part.row_counts[0] for part in parts)
        return JoinedCells("".join(p.text for p in parts), tuple(first_rows), counts)


class OpenNotebooks:
    """Look-ups over the notebooks of one server's workspace (pygls keeps them)."""

    def __init__(self, server: LanguageServer) -> None:
        self.server = server
        self.joiner = CellJoiner()

    def notebook_uri(self, uri: str) -> str | None:
        """The open notebook `uri` names, or the one whose cell it is; else None."""
        workspace = self.server.workspace
        notebook = workspace.get_notebook_document(notebook_uri=uri)
        if notebook is None:
            notebook = workspace.get_notebook_document(cell_uri=uri)
        return notebook.uri if notebook is not None else None

    def uris(self) -> list[str]:
        return [nb.uri for nb in list(self.server.workspace.notebook_documents.values())]

    def snapshot(self, uri: str) -> NotebookSnapshot | None:
        """The notebook's Python code cells now, joined; None when it is not open."""
        workspace = self.server.workspace
        notebook = workspace.get_notebook_document(notebook_uri=uri)
        if notebook is None:
            return None
        docs = workspace.text_documents
        cells: list[CellState] = []
        for cell in notebook.cells:
            if cell.kind != types.NotebookCellKind.Code:
                continue
            doc = docs.get(cell.document) or docs.get(unquote(cell.document))
            if doc is None or (doc.language_id or "python") != "python":
                continue
            cells.append(CellState(doc.uri, doc.version or 0, doc.source))
        joined = self.joiner.join([c.text for c in cells])
        path = notebook_path(notebook.uri)
        return NotebookSnapshot(notebook.uri, notebook.version, path, tuple(cells), joined)


MovedFindings = dict[tuple[Finding, int, int], Finding]


def findings_by_cell(
    snapshot: NotebookSnapshot, findings: list[Finding], memo: MovedFindings | None = None
) -> list[list[Finding]]:
    """The module's findings split per cell, every row made cell-relative. `memo` keeps
    the moved findings by finding and cell place: a keystroke moves the module rows of
    every cell below it, and re-making hundreds of findings costs more than the analysis."""
    out: list[list[Finding]] = [[] for _ in snapshot.cells]
    if not snapshot.cells:
        return out
    joined = snapshot.joined
    memo = {} if memo is None else memo
    if len(memo) > 20_000:
        memo.clear()
    for finding in findings:
        cell = joined.to_cell(finding.location).cell
        key = (finding, joined.first_rows[cell], joined.row_counts[cell])
        try:
            moved = memo.get(key)
        except TypeError:  # an unhashable field: move it without the memo
            moved, key = None, None  # type: ignore[assignment]
        if moved is None:
            moved = _in_cell(snapshot, cell, finding)
            if key is not None:
                memo[key] = moved
        out[cell].append(moved)
    return out


def _in_cell(snapshot: NotebookSnapshot, cell: int, finding: Finding) -> Finding:
    """`finding` with its rows counted from its cell's first line. Related places in
    the notebook are dropped: a related location is a file name and a row, and a cell
    is no file (the message still says where); those in other files stay."""
    joined = snapshot.joined
    first = joined.first_rows[cell]
    rows = joined.cell_rows(cell)

    def shift(row: int) -> int:
        return min(max(1, row - first + 1), joined.row_counts[cell])

    end = finding.end_location
    end_row = shift(end.row) if end.row in rows else joined.row_counts[cell]
    related = tuple(place for place in finding.related if place[0] != finding.filename)
    stmt = finding.statement_rows
    return replace(
        finding,
        location=Position(shift(finding.location.row), finding.location.column),
        end_location=Position(end_row, end.column),
        class_line=shift(finding.class_line) if finding.class_line in rows else 0,
        statement_rows=(shift(stmt[0]), shift(stmt[1])) if stmt[0] in rows else (0, 0),
        related=related,
    )
