"""notebookDocument/didSave: check the notebook (a no-op when its result is current)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from ckpt_lsp.lsp.server import CkptServer


def notebook_did_save(ls: CkptServer, params: types.DidSaveNotebookDocumentParams) -> None:
    session = ls.session
    uri = params.notebook_document.uri
    if session.notebooks.notebook_uri(uri) is not None:
        session.scheduler.schedule(uri)
