"""textDocument/codeAction: quick fixes, fix-all and ignore comments for a range.

A client that can resolve gets each fix's edit later (codeAction/resolve); one
that cannot gets every edit now, and no action that turns out to have no fix.
In a notebook cell the same actions are offered for the cell's findings, and the
notebook-wide fix-all when it is asked for; their fixes are built on the whole
notebook (lsp/notebook_fixes.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from lsprotocol import types

from ckpt_lsp.fix import fix_targets
from ckpt_lsp.lsp import actions, notebook_fixes
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


async def resolve_action(
    ls: CkptServer, ctx: actions.ActionContext, action: types.CodeAction
) -> str | None:
    """Fill in a fix action's edit (on the fix thread); why not, or None."""
    session = ls.session
    data = action.data if isinstance(action.data, Mapping) else {}
    notebook = data.get("notebook")
    if notebook is None:
        return await session.fixes.resolve(ctx, action)
    result = session.notebook_checks.results.get(str(notebook))
    if result is None or (
        data.get("rows") == notebook_fixes.MODULE_ROWS
        and data.get("notebook_version") != result.snapshot.version
    ):
        return "the notebook changed since the fix was offered"
    return await session.scheduler.run_fix(
        notebook_fixes.resolve_cell_fix,
        result.snapshot,
        ctx.uri,
        action,
        ls.workspace.position_codec,
        session.client.document_changes,
    )


def notebook_actions(
    ls: CkptServer,
    ctx: actions.ActionContext,
    notebook: str,
    found: list[types.CodeAction],
    params: types.CodeActionParams,
) -> list[types.CodeAction]:
    """A cell's actions: fixes told which notebook they are in, and the notebook-wide
    fix-all when the client asks for it by kind (VS Code's notebook.codeActionsOnSave)."""
    for action in found:
        if actions.is_fix_action(action) and isinstance(action.data, Mapping):
            action.data = notebook_fixes.notebook_data(
                action.data, notebook, notebook_fixes.CELL_ROWS
            )
    only = [str(k) for k in params.context.only] if params.context.only else None
    result = ls.session.notebook_checks.results.get(notebook)
    if (
        only is None
        or result is None
        or not actions.matches_only(actions.NOTEBOOK_FIX_ALL_KIND, only)
    ):
        return found
    targets = fix_targets(result.findings)
    if targets:
        data = actions.fix_data(ctx, targets)
        data["notebook_version"] = result.snapshot.version
        found.append(
            types.CodeAction(
                title="Exclude all unpicklable attributes in this notebook (ckpt-lsp)",
                kind=actions.NOTEBOOK_FIX_ALL_KIND,
                data=notebook_fixes.notebook_data(data, notebook, notebook_fixes.MODULE_ROWS),
            )
        )
    return found


async def code_action(
    ls: CkptServer, params: types.CodeActionParams
) -> list[types.CodeAction] | None:
    session = ls.session
    uri = params.text_document.uri
    result = await session.checks.current_result(uri)
    if result is None:
        return None
    notebook = session.checks.notebook_of(uri)
    if not result.findings and notebook is None:
        return None
    ctx = action_context(ls, result)

    def diagnostic(i: int) -> types.Diagnostic | None:
        if 0 <= i < len(result.diagnostics):
            return session.publisher.diagnostic_objects([result.diagnostics[i]])[0]
        return None

    found = actions.code_actions(ctx, result.findings, diagnostic, params)
    if notebook is not None:
        found = notebook_actions(ls, ctx, notebook, found, params)
    if not session.client.resolve_edit:
        # this client cannot resolve: build every edit now, drop what cannot be fixed
        complete = []
        for action in found:
            if actions.is_fix_action(action) and await resolve_action(ls, ctx, action):
                continue
            complete.append(action)
        found = complete
    return found or None
