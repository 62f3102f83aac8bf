"""textDocument/diagnostic: the pull model's answer for one open document.

interFileDependencies is false: a change in one file would make the client re-pull
every open file; the server knows which files depend on which and asks for a
refresh instead."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lsprotocol import types

from ckpt_lsp.lsp.diagnostics import SOURCE

if TYPE_CHECKING:
    from ckpt_lsp.lsp.server import CkptServer

DIAGNOSTIC_OPTIONS = types.DiagnosticOptions(
    identifier=SOURCE, inter_file_dependencies=False, workspace_diagnostics=False
)


async def document_diagnostic(ls: CkptServer, params: types.DocumentDiagnosticParams) -> Any:
    if ls.session.checks.notebook_of(params.text_document.uri) is not None:
        return {"kind": "full", "items": []}  # a cell's diagnostics are pushed (notebook_checks)
    result = await ls.session.checks.current_result(params.text_document.uri)
    if result is None:
        return {"kind": "full", "items": []}
    if params.previous_result_id is not None and params.previous_result_id == result.result_id:
        return {"kind": "unchanged", "resultId": result.result_id}
    # ready JSON, like the pushed diagnostics (see DiagnosticPublisher._publish)
    return {"kind": "full", "resultId": result.result_id, "items": result.diagnostics}
