"""initialize: read the client's capabilities, settings and workspace folders."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING

from lsprotocol import types

from ckpt_lsp import __version__
from ckpt_lsp.lsp.client_features import ClientFeatures
from ckpt_lsp.lsp.document_lines import use_lsp_lines
from ckpt_lsp.lsp.editor_settings import settings_from_payload

if TYPE_CHECKING:
    from ckpt_lsp.lsp.server import CkptServer

log = logging.getLogger("ckpt_lsp.lsp")


def workspace_folders(params: types.InitializeParams) -> list[types.WorkspaceFolder]:
    """The folders the client opened; its root (URI or path) when it sends no folders."""
    folders = list(params.workspace_folders or [])
    if not folders:
        root_uri = params.root_uri or (f"file://{params.root_path}" if params.root_path else None)
        if root_uri:
            folders = [types.WorkspaceFolder(uri=root_uri, name="root")]
    return folders


def initialize(ls: CkptServer, params: types.InitializeParams) -> None:
    session = ls.session
    session.use_client(ClientFeatures.from_capabilities(params.capabilities))
    use_lsp_lines(ls.workspace)
    try:
        ls.client_log.bind(asyncio.get_running_loop())
        logging.getLogger("ckpt_lsp").addHandler(ls.client_log)
    except RuntimeError:
        pass
    settings = settings_from_payload(params.initialization_options)
    if settings is not None:
        session.folders.settings.global_.update(settings)
    folders = workspace_folders(params)
    for folder in folders:
        session.folders.add_folder(folder.uri)
    log.info(
        "ckpt-lsp %s (python %s), %s diagnostics, %s positions, %d folder(s)",
        __version__,
        sys.version.split()[0],
        "pull" if session.client.pull else "push",
        getattr(ls.workspace.position_encoding, "value", ls.workspace.position_encoding),
        len(folders),
    )
