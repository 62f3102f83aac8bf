"""textDocument/didOpen: check the new document."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from ckpt_lsp.lsp.server import CkptServer


def did_open(ls: CkptServer, params: types.DidOpenTextDocumentParams) -> None:
    session = ls.session
    uri = params.text_document.uri
    if session.documents.get_python(uri) is None:
        return
    session.publisher.opened(uri)
    session.scheduler.schedule(uri)
