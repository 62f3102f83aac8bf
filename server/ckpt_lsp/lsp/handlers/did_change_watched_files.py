"""workspace/didChangeWatchedFiles: Python files re-indexed, pyproject.toml re-read."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.uris import to_fs_path

from ckpt_lsp.lsp.file_paths import norm_path

if TYPE_CHECKING:
    from ckpt_lsp.lsp.server import CkptServer


async def did_change_watched_files(
    ls: CkptServer, params: types.DidChangeWatchedFilesParams
) -> None:
    session = ls.session
    config_changes: set[str] = set()
    for change in params.changes:
        path = to_fs_path(change.uri)
        if not path:
            continue
        path = norm_path(path)
        if path.endswith("pyproject.toml"):
            config_changes.add(path)
        elif path.endswith((".py", ".pyi")):
            await session.watcher.file_changed_on_disk(path, change.type)
    for path in sorted(config_changes):
        if session.folders.config_file_changed(path):
            session.checks.recheck_all()
