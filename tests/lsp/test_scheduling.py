"""The scheduler: the collector pause, and one check per burst of edits."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
from ckpt_lsp.lsp.scheduling import Scheduler


@pytest.fixture
def scheduler() -> Iterator[Scheduler]:
    made = Scheduler()
    yield made
    made.close()


def test_the_collector_is_paused_for_bulk_passes_only(scheduler: Scheduler) -> None:
    """Scan and checkWorkspace may overlap: the collector comes back on when the last ends
    (left off, each keystroke's cyclic garbage piled up in benchmarks/soak_server.py)."""
    assert gc.isenabled()
    try:
        with scheduler.collector_paused():
            assert not gc.isenabled()
            with scheduler.collector_paused():
                assert not gc.isenabled()
            assert not gc.isenabled()
        assert gc.isenabled()
        gc.disable()  # a caller that had it off keeps it off
        with scheduler.collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_burst_of_edits_is_checked_once_per_document(scheduler: Scheduler) -> None:
    checked: list[str] = []

    async def check(uri: str) -> None:
        checked.append(uri)

    async def burst() -> None:
        scheduler.check = check
        for _ in range(20):
            scheduler.schedule("file:///a.py")
            scheduler.schedule("file:///b.py")
        scheduler.schedule("file:///c.py")
        scheduler.unschedule("file:///c.py")  # closed before its turn
        for _ in range(10):
            await asyncio.sleep(0)

    asyncio.run(burst())
    assert checked == ["file:///a.py", "file:///b.py"]


def test_a_failing_check_is_logged_and_the_queue_goes_on(
    scheduler: Scheduler, caplog: pytest.LogCaptureFixture
) -> None:
    checked: list[str] = []

    async def check(uri: str) -> None:
        checked.append(uri)
        if uri.endswith("bad.py"):
            raise ValueError("boom")

    async def run() -> None:
        scheduler.check = check
        scheduler.schedule("file:///bad.py")
        scheduler.schedule("file:///good.py")
        for _ in range(10):
            await asyncio.sleep(0)

    asyncio.run(run())
    assert checked == ["file:///bad.py", "file:///good.py"]
    assert "checking file:///bad.py failed" in caplog.text


def test_work_runs_on_the_analysis_thread(scheduler: Scheduler) -> None:
    import threading

    name = asyncio.run(scheduler.run(lambda: threading.current_thread().name))
    assert name.startswith("ckpt-analysis")
