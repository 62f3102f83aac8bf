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


def test_shutdown_cancels_pending_notifications_without_error() -> None:
    """pygls's shutdown walks `_request_futures` cancelling what is pending; a cancel runs
    the done-callbacks at once, so forgetting a future there changed the dict under the
    walk ("dictionary changed size during iteration", seen once in CI)."""

    async def wait() -> None:
        await asyncio.sleep(3600)

    def ping(ls: CkptServer, params: Any) -> Generator[Any, Any, None]:
        yield wait, (), {}  # pygls runs it, and the generator waits for it

    fresh = _server_with(ping)
    protocol = fresh.protocol

    async def drive() -> None:
        for _ in range(3):
            protocol._handle_notification("ckpt/ping", None)
        assert len(protocol._request_futures) == 6  # each generator and what it waits for
        for _ in protocol.lsp_shutdown():  # the real handler, walked like pygls does
            pass
        await asyncio.sleep(0.01)

    asyncio.run(drive())
    assert protocol._request_futures == {}  # forgotten once the walk was over


def test_a_future_done_off_the_loop_is_forgotten_at_the_next_notification() -> None:
    fresh = _server_with(lambda ls, params: None)
    protocol = fresh.protocol
    protocol._request_futures["done-in-a-thread"] = object()
    protocol._forget_future("done-in-a-thread", None)  # no running loop here
    assert "done-in-a-thread" in protocol._request_futures
    protocol._handle_notification("ckpt/ping", None)
    assert "done-in-a-thread" not in protocol._request_futures
