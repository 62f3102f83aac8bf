"""textDocument/didClose: forget the document's result; the index goes back to the disk."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.uris import to_fs_path

from ckpt_lsp.lsp.file_paths import norm_path

if TYPE_CHECKING:
    from ckpt_lsp.lsp.server import CkptServer


def did_close(ls: CkptServer, params: types.DidCloseTextDocumentParams) -> None:
    session = ls.session
    uri = params.text_document.uri
    session.scheduler.unschedule(uri)
    session.publisher.forget(uri)
    path = to_fs_path(uri) if uri.startswith("file:") else None
    if path:
        # The editor may have dropped unsaved changes: the index goes back to the disk.
        session.scheduler.spawn(
            session.watcher.back_to_disk(norm_path(path)), f"re-indexing {path}"
        )
