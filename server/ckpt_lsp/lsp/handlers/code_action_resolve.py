"""codeAction/resolve: build a fix's edit for the version it was offered for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lsprotocol import types

from ckpt_lsp.lsp import actions
from ckpt_lsp.lsp.handlers.code_action import action_context, resolve_action
from ckpt_lsp.lsp.logs import show_message

if TYPE_CHECKING:
    from ckpt_lsp.lsp.server import CkptServer


async def code_action_resolve(ls: CkptServer, action: types.CodeAction) -> types.CodeAction:
    session = ls.session
    if not actions.is_fix_action(action) or action.edit is not None:
        return action
    data: dict[str, Any] = action.data or {}  # a dict: is_fix_action checked it
    result = await session.checks.current_result(str(data.get("uri")))
    if result is None or result.version != data.get("version"):
        show_message(
            ls,
            "ckpt-lsp: the file changed since the fix was offered; try again",
            types.MessageType.Warning,
        )
        return action
    reason = await resolve_action(ls, action_context(ls, result), action)
    if reason is not None:
        show_message(ls, f"ckpt-lsp: no fix applied: {reason}", types.MessageType.Warning)
    return action
