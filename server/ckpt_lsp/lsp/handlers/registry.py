"""Which handler answers which LSP method, with the options the server advertises."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from ckpt_lsp.lsp.handlers import (
    code_action,
    code_action_resolve,
    did_change,
    did_change_configuration,
    did_change_watched_files,
    did_change_workspace_folders,
    did_close,
    did_open,
    did_save,
    document_diagnostic,
    execute_command,
    hover_request,
    initialize,
    initialized,
    notebook_did_change,
    notebook_did_close,
    notebook_did_open,
    notebook_did_save,
    shutdown,
)

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

# (method, handler, options); the order is the protocol's: lifecycle, documents,
# notebooks, diagnostics, code actions, hover, workspace.
HANDLERS: tuple[tuple[str, Callable[..., Any], Any], ...] = (
    (types.INITIALIZE, initialize.initialize, None),
    (types.INITIALIZED, initialized.initialized, None),
    (types.SHUTDOWN, shutdown.shutdown, None),
    (types.TEXT_DOCUMENT_DID_OPEN, did_open.did_open, None),
    (types.TEXT_DOCUMENT_DID_CHANGE, did_change.did_change, None),
    (types.TEXT_DOCUMENT_DID_SAVE, did_save.did_save, did_save.SAVE_OPTIONS),
    (types.TEXT_DOCUMENT_DID_CLOSE, did_close.did_close, None),
    (types.NOTEBOOK_DOCUMENT_DID_OPEN, notebook_did_open.notebook_did_open, None),
    (types.NOTEBOOK_DOCUMENT_DID_CHANGE, notebook_did_change.notebook_did_change, None),
    (types.NOTEBOOK_DOCUMENT_DID_SAVE, notebook_did_save.notebook_did_save, None),
    (types.NOTEBOOK_DOCUMENT_DID_CLOSE, notebook_did_close.notebook_did_close, None),
    (
        types.TEXT_DOCUMENT_DIAGNOSTIC,
        document_diagnostic.document_diagnostic,
        document_diagnostic.DIAGNOSTIC_OPTIONS,
    ),
    (types.TEXT_DOCUMENT_CODE_ACTION, code_action.code_action, code_action.CODE_ACTION_OPTIONS),
    (types.CODE_ACTION_RESOLVE, code_action_resolve.code_action_resolve, None),
    (types.TEXT_DOCUMENT_HOVER, hover_request.hover_request, None),
    (
        types.WORKSPACE_DID_CHANGE_CONFIGURATION,
        did_change_configuration.did_change_configuration,
        None,
    ),
    (
        types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
        did_change_watched_files.did_change_watched_files,
        None,
    ),
    (
        types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS,
        did_change_workspace_folders.did_change_workspace_folders,
        None,
    ),
)

# workspace/executeCommand: command name -> handler
COMMANDS: tuple[tuple[str, Callable[..., Any]], ...] = (
    (execute_command.CHECK_WORKSPACE, execute_command.check_workspace),
)


def register_handlers(server: LanguageServer) -> None:
    """Wire every handler and command to `server`."""
    for method, handler, options in HANDLERS:
        server.feature(method, options)(handler)
    for name, command in COMMANDS:
        server.command(name)(command)
