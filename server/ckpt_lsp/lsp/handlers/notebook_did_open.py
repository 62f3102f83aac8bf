"""notebookDocument/didOpen: pygls has stored the notebook and its cells; check them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from ckpt_lsp.lsp.server import CkptServer


def notebook_did_open(ls: CkptServer, params: types.DidOpenNotebookDocumentParams) -> None:
    ls.session.scheduler.schedule(params.notebook_document.uri)
