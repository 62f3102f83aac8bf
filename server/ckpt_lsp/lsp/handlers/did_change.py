"""textDocument/didChange: pygls has applied the edit; queue the document for a check."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from ckpt_lsp.lsp.server import CkptServer


def did_change(ls: CkptServer, params: types.DidChangeTextDocumentParams) -> None:
    session = ls.session
    if session.documents.get_python(params.text_document.uri) is not None:
        session.scheduler.schedule(params.text_document.uri)
