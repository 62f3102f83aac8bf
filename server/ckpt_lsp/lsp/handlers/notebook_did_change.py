"""notebookDocument/didChange: pygls has applied the cell edits, added and removed cells;
queue the notebook (a burst of edits is one analysis of all its cells)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from ckpt_lsp.lsp.server import CkptServer


def notebook_did_change(ls: CkptServer, params: types.DidChangeNotebookDocumentParams) -> None:
    session = ls.session
    uri = params.notebook_document.uri
    if session.notebooks.notebook_uri(uri) is not None:
        session.scheduler.schedule(uri)
