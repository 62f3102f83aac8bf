"""textDocument/didSave: a saved pyproject.toml reconfigures; a saved Python file is checked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.uris import to_fs_path

from ckpt_lsp.lsp.file_paths import norm_path

if TYPE_CHECKING:
    from ckpt_lsp.lsp.server import CkptServer

SAVE_OPTIONS = types.SaveOptions(include_text=False)


def did_save(ls: CkptServer, params: types.DidSaveTextDocumentParams) -> None:
    session = ls.session
    uri = params.text_document.uri
    path = to_fs_path(uri)
    if path and path.endswith("pyproject.toml"):
        if session.folders.config_file_changed(norm_path(path)):
            session.checks.recheck_all()
        return
    if session.documents.get_python(uri) is not None:
        session.scheduler.schedule(uri)
