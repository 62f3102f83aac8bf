"""The server's threads and the queue of documents waiting for analysis.

One thread owns every analyzer and index (the analysis worker): they are not
thread-safe, and one worker gives "latest wins" for free. An edit marks its
document dirty; a single drain task takes the dirty documents one at a time and
hands each to the check it was given, which analyzes the newest text. So a burst
of edits costs one analysis per burst, not one per edit: the queue is the
debounce. Fixes parse the whole file and run on a thread of their own, so they
hold up neither the message loop nor the diagnostics of the next keystroke.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

log = logging.getLogger("ckpt_lsp.lsp")
T = TypeVar("T")

Check = Callable[[str], Awaitable[Any]]


class Scheduler:
    """The analysis and fix threads, background tasks and the dirty-document queue."""

    def __init__(self, check: Check | None = None) -> None:
        self.check = check  # analyzes one document by URI; set before the first schedule()
        self.shutting_down = False
        self._dirty: dict[str, None] = {}  # ordered set of uris to analyze
        self._drain_task: asyncio.Task[None] | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ckpt-analysis")
        self._fixer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ckpt-fix")
        self._background: set[asyncio.Task[Any]] = set()
        self._paused = 0
        self._collector_was_on = True

    # -- threads -------------------------------------------------------------------------------
    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn` on the analysis thread (the only one that touches analyzers)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, partial(fn, *args))

    async def run_fix(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn` on the fix thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._fixer, fn, *args)

    @contextlib.contextmanager
    def collector_paused(self) -> Iterator[None]:
        """Pause the cyclic collector for a pass over many files (the start-up index,
        checkWorkspace): their syntax trees are acyclic, freed by refcounting, and the
        collector would rescan them again and again. Paused per file, each file's trees
        were scanned as soon as it came back on; paused for good (or with high
        thresholds), the cyclic garbage of each keystroke piled up (see
        benchmarks/soak_server.py). So: off while any bulk pass runs, on after the last."""
        self._paused += 1
        if self._paused == 1:
            self._collector_was_on = gc.isenabled()
            gc.disable()
        try:
            yield
        finally:
            self._paused -= 1
            if self._paused == 0 and self._collector_was_on:
                gc.enable()

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """Start a background task whose failure is logged, not lost."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                exc = t.exception()
                log.error("%s failed: %s", name, exc, exc_info=exc)

        task.add_done_callback(done)
        return task

    def close(self) -> None:
        self.shutting_down = True
        for task in list(self._background):
            task.cancel()
        self._worker.shutdown(wait=False, cancel_futures=True)
        self._fixer.shutdown(wait=False, cancel_futures=True)

    # -- the dirty queue -----------------------------------------------------------------------
    def schedule(self, uri: str) -> None:
        """Mark a document for (re-)analysis; one drain task works through them."""
        self._dirty[uri] = None
        if self._drain_task is None or self._drain_task.done():
            self._drain_task = self.spawn(self._drain(), "analysis")

    def unschedule(self, uri: str) -> None:
        """Forget a pending analysis (the document was closed)."""
        self._dirty.pop(uri, None)

    async def _drain(self) -> None:
        while self._dirty and not self.shutting_down:
            uri = next(iter(self._dirty))
            del self._dirty[uri]
            try:
                if self.check is not None:
                    await self.check(uri)
            except Exception:
                log.exception("checking %s failed", uri)
