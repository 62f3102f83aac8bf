"""LSP 3.17 notebook sync: a notebook's code cells analyzed as one module, diagnostics,
quick fixes and fix-all per cell, and odd input that must not stop the server."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from ckpt_lsp.notebook import neutralise
from lsp_helpers import PULL_CAPS, apply_edits, capabilities, published, uri_of
from lsprotocol import types
from pytest_lsp import LanguageClient

BASE = "import torch.nn as nn\n\n\nclass Base(nn.Module):\n    pass"
MARKDOWN = "# Training\nThe model opens its log."
MODEL = """\
%matplotlib inline
class Model(Base):
    def __init__(self, path):
        super().__init__()
        self.log = open(path, "a")"""
TRAIN = "!pip list\nmodel = Model('run.log')"


async def initialize(
    client: LanguageClient, root: Path, profile: str = "visual-studio-code"
) -> types.InitializeResult:
    """VS Code's capabilities, with its notebook sync (pytest-lsp's profile has none)."""
    caps = capabilities(profile)
    caps.notebook_document = types.NotebookDocumentClientCapabilities(
        synchronization=types.NotebookDocumentSyncClientCapabilities(
            dynamic_registration=True, execution_summary_support=True
        )
    )
    params = types.InitializeParams(
        capabilities=caps,
        root_uri=uri_of(root),
        workspace_folders=[types.WorkspaceFolder(uri=uri_of(root), name=root.name)],
    )
    return await client.initialize_session(params)


def _cell_uri(notebook: Path, n: int) -> str:
    return f"vscode-notebook-cell:{notebook}#W{n}sZmlsZQ%3D%3D"


class Notebook:
    """A notebook as an editor syncs it: cells, their texts and versions."""

    def __init__(self, client: LanguageClient, path: Path, sources: list[tuple[str, str]]) -> None:
        self.client = client
        self.uri = path.as_uri()
        self.path = path
        self.version = 1
        self.cells = [(_cell_uri(path, i), kind, text) for i, (kind, text) in enumerate(sources)]
        self.versions = {uri: 1 for uri, _, _ in self.cells}
        self.texts = {uri: text for uri, _, text in self.cells}

    def code_uri(self, index: int) -> str:
        return self.cells[index][0]

    def open(self) -> None:
        self.client.notebook_document_did_open(
            types.DidOpenNotebookDocumentParams(
                notebook_document=types.NotebookDocument(
                    uri=self.uri,
                    notebook_type="jupyter-notebook",
                    version=self.version,
                    cells=[_cell(uri, kind) for uri, kind, _ in self.cells],
                ),
                cell_text_documents=[
                    types.TextDocumentItem(
                        uri=uri,
                        language_id="python" if kind == "code" else "markdown",
                        version=1,
                        text=text,
                    )
                    for uri, kind, text in self.cells
                ],
            )
        )

    def edit(self, uri: str, text: str) -> None:
        self.version += 1
        self.versions[uri] += 1
        self.texts[uri] = text
        self.client.notebook_document_did_change(
            types.DidChangeNotebookDocumentParams(
                notebook_document=types.VersionedNotebookDocumentIdentifier(
                    uri=self.uri, version=self.version
                ),
                change=types.NotebookDocumentChangeEvent(
                    cells=types.NotebookDocumentCellChanges(
                        text_content=[
                            types.NotebookDocumentCellContentChanges(
                                document=types.VersionedTextDocumentIdentifier(
                                    uri=uri, version=self.versions[uri]
                                ),
                                changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
                            )
                        ]
                    )
                ),
            )
        )

    def remove_cell(self, index: int) -> None:
        uri = self.cells[index][0]
        del self.cells[index]
        self.version += 1
        self.client.notebook_document_did_change(
            types.DidChangeNotebookDocumentParams(
                notebook_document=types.VersionedNotebookDocumentIdentifier(
                    uri=self.uri, version=self.version
                ),
                change=types.NotebookDocumentChangeEvent(
                    cells=types.NotebookDocumentCellChanges(
                        structure=types.NotebookDocumentCellChangeStructure(
                            array=types.NotebookCellArrayChange(start=index, delete_count=1),
                            did_close=[types.TextDocumentIdentifier(uri=uri)],
                        )
                    )
                ),
            )
        )

    def close(self) -> None:
        self.client.notebook_document_did_close(
            types.DidCloseNotebookDocumentParams(
                notebook_document=types.NotebookDocumentIdentifier(uri=self.uri),
                cell_text_documents=[
                    types.TextDocumentIdentifier(uri=uri) for uri, _, _ in self.cells
                ],
            )
        )


def _cell(uri: str, kind: str) -> types.NotebookCell:
    cell_kind = types.NotebookCellKind.Code if kind == "code" else types.NotebookCellKind.Markup
    return types.NotebookCell(kind=cell_kind, document=uri)


def _notebook(client: LanguageClient, workspace: Path) -> Notebook:
    sources = [("code", BASE), ("markdown", MARKDOWN), ("code", MODEL), ("code", TRAIN)]
    return Notebook(client, workspace / "train.ipynb", sources)


async def _actions(
    client: LanguageClient, uri: str, rng: types.Range, only: list[str] | None = None
) -> list[types.CodeAction]:
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=rng,
            context=types.CodeActionContext(diagnostics=[], only=only),
        )
    )
    found = [a for a in result or [] if isinstance(a, types.CodeAction)]
    return [await client.code_action_resolve_async(a) if a.edit is None else a for a in found]


def _cell_edits(edit: types.WorkspaceEdit | None) -> dict[str, list[types.TextEdit]]:
    assert edit is not None and edit.document_changes is not None
    out: dict[str, list[types.TextEdit]] = {}
    for change in edit.document_changes:
        assert isinstance(change, types.TextDocumentEdit)
        out.setdefault(change.text_document.uri, []).extend(change.edits)  # type: ignore[arg-type]
    return out


def _parses(cell: str) -> bool:
    ast.parse(neutralise(cell))
    return True


async def test_notebook_cells_get_diagnostics_fixes_and_clear_on_close(
    client: LanguageClient, workspace: Path
) -> None:
    result = await initialize(client, workspace)
    sync = result.capabilities.notebook_document_sync
    assert isinstance(sync, types.NotebookDocumentSyncOptions)
    nb = _notebook(client, workspace)
    nb.open()
    cell3 = nb.code_uri(2)
    # the base class is in cell 1: the model in cell 3 is a model, its open file a finding
    params = await published(client, cell3, version=1, check=lambda d: len(d) == 1)
    diag = params.diagnostics[0]
    assert diag.code == "CKPT001"
    assert diag.range == types.Range(types.Position(4, 8), types.Position(4, 16))
    for i in (0, 3):
        assert (await published(client, nb.code_uri(i), version=1)).diagnostics == ()

    # a change in cell 3 refreshes its diagnostics (one line more above the assignment)
    nb.edit(cell3, MODEL.replace("    def __init__", "    x = 1\n    def __init__"))
    params = await published(client, cell3, version=2, check=lambda d: len(d) == 1)
    assert params.diagnostics[0].range.start == types.Position(5, 8)
    diag = params.diagnostics[0]

    # the quick fix edits cell 3 only, and cell 3 still parses
    actions = await _actions(client, cell3, diag.range)
    titles = [a.title for a in actions]
    assert "Ignore CKPT001 on this line" in titles
    fix = next(a for a in actions if a.is_preferred)
    edits = _cell_edits(fix.edit)
    assert list(edits) == [cell3]
    assert fix.edit and fix.edit.document_changes
    assert fix.edit.document_changes[0].text_document.version == 2  # type: ignore[union-attr]
    fixed = apply_edits(nb.texts[cell3], edits[cell3])
    assert _parses(fixed) and "__getstate__" in fixed and fixed.startswith("%matplotlib")
    nb.edit(cell3, fixed)
    await published(client, cell3, version=3, check=lambda d: not d)

    # fix-all: per cell (source.fixAll) and for the notebook (notebook.source.fixAll)
    nb.edit(cell3, MODEL)
    await published(client, cell3, version=4, check=lambda d: len(d) == 1)
    start = types.Range(types.Position(0, 0), types.Position(0, 0))
    per_cell = await _actions(client, cell3, start, only=["source.fixAll"])
    assert [a.kind for a in per_cell] == ["source.fixAll.ckpt-lsp"]
    assert list(_cell_edits(per_cell[0].edit)) == [cell3]
    whole = await _actions(client, nb.code_uri(0), start, only=["notebook.source.fixAll"])
    assert [a.kind for a in whole] == ["notebook.source.fixAll.ckpt-lsp"]
    whole_edits = _cell_edits(whole[0].edit)
    assert list(whole_edits) == [cell3]
    assert _parses(apply_edits(nb.texts[cell3], whole_edits[cell3]))

    # hover inside the cell explains the finding
    hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=cell3), position=types.Position(4, 10)
        )
    )
    assert hover is not None and "open file" in str(hover.contents)

    nb.close()
    await published(client, cell3, version=None, check=lambda d: not d)
    assert client.published[-1].uri in {u for u, _, _ in nb.cells}  # type: ignore[attr-defined]


async def test_base_class_in_another_cell_decides(client: LanguageClient, workspace: Path) -> None:
    """Cells are one module: removing the base's cell turns the model into a plain class."""
    await initialize(client, workspace)
    nb = _notebook(client, workspace)
    nb.open()
    cell3 = nb.code_uri(2)
    await published(client, cell3, version=1, check=lambda d: len(d) == 1)
    nb.edit(nb.code_uri(0), "class Base:\n    pass")
    await published(client, cell3, version=1, check=lambda d: not d)
    nb.edit(nb.code_uri(0), BASE)
    await published(client, cell3, version=1, check=lambda d: len(d) == 1)
    nb.remove_cell(0)
    await published(client, cell3, version=1, check=lambda d: not d)


async def test_a_pulling_client_is_pushed_cell_diagnostics(
    client: LanguageClient, workspace: Path
) -> None:
    """vscode-languageclient pulls on text documents' open events and visible tabs; a cell
    has neither, so cells are pushed, and a pull for a cell answers empty (never twice)."""
    await initialize(client, workspace, PULL_CAPS)
    nb = _notebook(client, workspace)
    nb.open()
    cell3 = nb.code_uri(2)
    params = await published(client, cell3, version=1, check=lambda d: len(d) == 1)
    assert params.diagnostics[0].range.start == types.Position(4, 8)
    report = await client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=cell3))
    )
    assert isinstance(report, types.RelatedFullDocumentDiagnosticReport)
    assert list(report.items) == []
    nb.edit(nb.code_uri(0), "class Base:\n    pass")
    await published(client, cell3, version=1, check=lambda d: not d)
    nb.edit(nb.code_uri(0), BASE)
    await published(client, cell3, version=1, check=lambda d: len(d) == 1)
    # settings change every result: the notebook's cells are pushed again
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"ckpt-lsp": {"ignore": ["CKPT001"]}})
    )
    await published(client, cell3, version=1, check=lambda d: not d)


@pytest.mark.parametrize(
    "cells",
    [
        [],
        [("code", "")],
        [("markdown", "# only words")],
        [("code", "%%bash\necho hi"), ("code", "def f(:\n")],
    ],
    ids=["no-cells", "empty-cell", "markdown-only", "magic-and-broken"],
)
async def test_odd_notebooks_do_not_stop_the_server(
    client: LanguageClient, workspace: Path, cells: list[tuple[str, str]]
) -> None:
    await initialize(client, workspace)
    nb = Notebook(client, workspace / "odd.ipynb", cells)
    nb.open()
    if cells and cells[0][0] == "code":
        assert (await published(client, nb.code_uri(0), version=1)).diagnostics == ()
    # a change for a notebook that is not open, a request for a cell nobody opened
    ghost = Notebook(client, workspace / "ghost.ipynb", [("code", "x = 1")])
    ghost.edit(ghost.code_uri(0), "x = 2")
    ghost.close()
    hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=_cell_uri(workspace / "no.ipynb", 0)),
            position=types.Position(0, 0),
        )
    )
    assert hover is None
    nb.close()
    # still answering
    healthy = Notebook(client, workspace / "after.ipynb", [("code", BASE), ("code", MODEL)])
    healthy.open()
    await published(client, healthy.code_uri(1), version=1, check=lambda d: len(d) == 1)


async def test_a_model_class_saved_whole_from_the_notebook(
    client: LanguageClient, workspace: Path
) -> None:
    """A notebook runs as `__main__`: saving an instance of a class it defines is CKPT014,
    on the cell of the class."""
    await initialize(client, workspace)
    net = "import torch\nimport torch.nn as nn\n\nclass Net(nn.Module):\n    pass"
    save = "model = Net()\ntorch.save(model, 'model.pt')"
    nb = Notebook(client, workspace / "save.ipynb", [("code", net), ("code", save)])
    nb.open()
    found: list[types.Diagnostic] = []
    for uri in (nb.code_uri(0), nb.code_uri(1)):
        found.extend((await published(client, uri, version=1)).diagnostics)
    assert [d.code for d in found] == ["CKPT014"], found
