"""textDocument/codeAction: quick fixes, fix-all and ignore comments for a range.

A client that can resolve gets each fix's edit later (codeAction/resolve); one
that cannot gets every edit now, and no action that turns out to have no fix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from ckpt_lsp.lsp import actions
from ckpt_lsp.lsp.positions import LineIndex
from ckpt_lsp.lsp.publishing import DocResult

if TYPE_CHECKING:
    from ckpt_lsp.lsp.server import CkptServer

CODE_ACTION_OPTIONS = types.CodeActionOptions(
    code_action_kinds=actions.KINDS, resolve_provider=True
)


def action_context(ls: CkptServer, result: DocResult) -> actions.ActionContext:
    """What building an action needs to know of the document the result is for."""
    return actions.ActionContext(
        uri=result.uri,
        version=result.version,
        text=result.text,
        index=LineIndex(result.text, ls.workspace.position_codec),
        document_changes=ls.session.client.document_changes,
    )


async def code_action(
    ls: CkptServer, params: types.CodeActionParams
) -> list[types.CodeAction] | None:
    session = ls.session
    result = await session.checks.current_result(params.text_document.uri)
    if result is None or not result.findings:
        return None
    ctx = action_context(ls, result)

    def diagnostic(i: int) -> types.Diagnostic | None:
        if 0 <= i < len(result.diagnostics):
            return session.publisher.diagnostic_objects([result.diagnostics[i]])[0]
        return None

    found = actions.code_actions(ctx, result.findings, diagnostic, params)
    if not session.client.resolve_edit:
        # this client cannot resolve: build every edit now, drop what cannot be fixed
        complete = []
        for action in found:
            if actions.is_fix_action(action) and await session.fixes.resolve(ctx, action):
                continue
            complete.append(action)
        found = complete
    return found or None
