"""workspace/didChangeWorkspaceFolders: new projects for new folders, then re-index."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from ckpt_lsp.lsp.server import CkptServer


def did_change_workspace_folders(
    ls: CkptServer, params: types.DidChangeWorkspaceFoldersParams
) -> None:
    session = ls.session
    for folder in params.event.removed:
        session.folders.remove_folder(folder.uri)
    for folder in params.event.added:
        session.folders.add_folder(folder.uri)
    session.scheduler.spawn(session.workspace_checks.scan_workspace(), "indexing the workspace")
