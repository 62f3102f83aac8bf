"""notebookDocument/didClose: clear every cell's diagnostics and forget the notebook."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from ckpt_lsp.lsp.server import CkptServer


def notebook_did_close(ls: CkptServer, params: types.DidCloseNotebookDocumentParams) -> None:
    cells = [cell.uri for cell in params.cell_text_documents]
    ls.session.notebook_checks.closed(params.notebook_document.uri, cells)
