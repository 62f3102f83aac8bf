"""The protocol lets go of notification futures (pygls 2.1 keeps them forever).

Every didOpen/didChange/didClose runs through a generator handler, which pygls files in
`_request_futures` under a fresh uuid and never removes: 1.6 KB per keystroke, the
growth benchmarks/soak_server.py showed over 20 minutes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

from ckpt_lsp.lsp.server import CkptServer


def _server_with(handler: Any) -> CkptServer:
    fresh = CkptServer()
    fresh.feature("ckpt/ping")(handler)
    return fresh


def test_generator_notifications_leave_no_future() -> None:
    calls: list[int] = []

    def ping(ls: CkptServer, params: Any) -> Generator[Any, Any, None]:
        calls.append(1)
        yield from ()

    fresh = _server_with(ping)
    for _ in range(200):
        fresh.protocol._handle_notification("ckpt/ping", None)
    assert len(calls) == 200
    assert fresh.protocol._request_futures == {}


def test_async_notifications_are_forgotten_once_done() -> None:
    async def ping(ls: CkptServer, params: Any) -> None:
        await asyncio.sleep(0)

    fresh = _server_with(ping)

    async def drive() -> int:
        for _ in range(50):
            fresh.protocol._handle_notification("ckpt/ping", None)
        pending = len(fresh.protocol._request_futures)
        await asyncio.sleep(0.05)
        return pending

    pending = asyncio.run(drive())
    assert pending == 50  # still running when the notifications were handled
    assert fresh.protocol._request_futures == {}


def test_request_futures_are_untouched() -> None:
    """A client's pending request keeps its future (cancellation looks it up)."""
    fresh = _server_with(lambda ls, params: None)
    marker: Any = asyncio.Future.__new__(asyncio.Future)
    fresh.protocol._request_futures[7] = marker
    fresh.protocol._handle_notification("ckpt/ping", None)
    assert fresh.protocol._request_futures == {7: marker}
