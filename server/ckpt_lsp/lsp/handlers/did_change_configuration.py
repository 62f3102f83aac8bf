"""workspace/didChangeConfiguration: take the new settings; re-check if any config changed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from ckpt_lsp.lsp.editor_settings import settings_from_payload

if TYPE_CHECKING:
    from ckpt_lsp.lsp.server import CkptServer


async def did_change_configuration(
    ls: CkptServer, params: types.DidChangeConfigurationParams
) -> None:
    folders = ls.session.folders
    settings = settings_from_payload(params.settings)
    if settings is not None:
        folders.settings.global_ = settings
    if ls.session.client.configuration:
        await folders.pull_settings()
    if folders.apply_settings():
        ls.session.checks.recheck_all()
