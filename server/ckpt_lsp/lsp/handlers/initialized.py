"""initialized: watch files, pull settings, then index the workspace in the background."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from ckpt_lsp.lsp.server import CkptServer

log = logging.getLogger("ckpt_lsp.lsp")

WATCHERS_ID = "ckpt-lsp/watchers"
WATCHED_GLOBS = ("**/*.py", "**/*.pyi", "**/pyproject.toml")


async def register_file_watchers(ls: CkptServer) -> None:
    """Ask the client to tell us about Python files and pyproject.toml changed on disk."""
    watchers = [types.FileSystemWatcher(glob_pattern=glob) for glob in WATCHED_GLOBS]
    try:
        await ls.client_register_capability_async(
            types.RegistrationParams(
                registrations=[
                    types.Registration(
                        id=WATCHERS_ID,
                        method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                        register_options=types.DidChangeWatchedFilesRegistrationOptions(
                            watchers=watchers
                        ),
                    )
                ]
            )
        )
    except Exception as exc:
        log.info("could not register file watchers: %s", exc)


async def initialized(ls: CkptServer, params: types.InitializedParams) -> None:
    session = ls.session
    if session.client.watch_dynamic:
        await register_file_watchers(ls)
    if session.client.configuration:
        await session.folders.pull_settings()
        if session.folders.apply_settings():
            session.checks.recheck_all()
    session.scheduler.spawn(session.workspace_checks.scan_workspace(), "indexing the workspace")
