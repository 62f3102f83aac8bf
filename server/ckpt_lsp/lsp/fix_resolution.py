"""Building a quick fix's edit, off the message loop and once per document state.

An editor asks again for the same line (moving the cursor, reopening the light
bulb), so an edit is kept per document version, text and fix targets."""

from __future__ import annotations

from typing import Any

from lsprotocol import types

from ckpt_lsp.lsp import actions
from ckpt_lsp.lsp.scheduling import Scheduler

FIX_CACHE_SIZE = 64


class FixResolver:
    """Fills in a fix action's edit on the scheduler's fix thread, with a small cache."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._cache: dict[tuple[Any, ...], tuple[Any, str | None]] = {}

    async def resolve(self, ctx: actions.ActionContext, action: types.CodeAction) -> str | None:
        """Set `action.edit`; the reason no fix applies, or None."""
        key = (ctx.uri, ctx.version, len(ctx.text), hash(ctx.text), repr(action.data))
        cached = self._cache.get(key)
        if cached is not None:
            action.edit, reason = cached
            return reason
        reason = await self.scheduler.run_fix(actions.resolve_fix, ctx, action)
        if len(self._cache) > FIX_CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = (action.edit, reason)
        return reason
