"""A time budget per file, so one pathological file cannot stall a whole check run.

The analysis is pure Python; the only way to stop it from outside without its
cooperation is an interval timer whose signal raises in the main thread
(`SIGALRM`, POSIX). `time_limit` does that; where it cannot (another thread,
Windows) it runs the work without a limit, and the size limit of
`source.read_source` is the only bound. `BudgetExceeded` derives from BaseException,
so the analysis' own `except Exception` guards cannot swallow it.

An interrupted analysis may leave its project index half-updated (a module
registered but not parsed); `analyze_within` and `index_within` repair that by
dropping the file, so the other files of the run are checked as if it did not exist.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from ckpt_lsp.findings import FileError

if TYPE_CHECKING:
    from ckpt_lsp.analysis.engine import Analyzer, FileResult
    from ckpt_lsp.analysis.index import ProjectIndex

T = TypeVar("T")

DEFAULT_FILE_BUDGET_S = 20.0
BUDGET_ENV = "CKPT_FILE_BUDGET_S"  # seconds; 0 turns the budget off


class BudgetExceeded(BaseException):
    """The work ran past its budget (raised from the timer's signal handler)."""


def file_budget_s() -> float:
    """The per-file budget: CKPT_FILE_BUDGET_S when set to a number, else the default."""
    raw = os.environ.get(BUDGET_ENV, "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_FILE_BUDGET_S
    except ValueError:
        return DEFAULT_FILE_BUDGET_S
    return max(value, 0.0)


def can_interrupt() -> bool:
    """Whether `time_limit` can stop work here: POSIX timers, in the main thread."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[bool]:
    """Raise BudgetExceeded in the body after `seconds` of wall time. Yields whether the
    limit is enforced (False: no timer could be used, the body runs unbounded).

    A timer already running (pytest-timeout's, a caller's own) is kept: when it is due
    first its handler runs at its time, and it is re-armed with what it had left."""
    if seconds <= 0 or not can_interrupt():
        yield False
        return
    outer_left, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    outer_first = 0 < outer_left < seconds
    previous = signal.getsignal(signal.SIGALRM)

    def expired(signum: int, frame: Any) -> None:
        if outer_first and callable(previous):
            previous(signum, frame)
        raise BudgetExceeded(seconds)

    started = time.monotonic()
    signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, outer_left if outer_first else seconds)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left > 0:
            left = outer_left - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), outer_interval)


def run_within(seconds: float, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)`, stopped with BudgetExceeded after `seconds` (where a timer can be used)."""
    with time_limit(seconds):
        return fn(*args)


def too_slow_message(seconds: float) -> str:
    return f"skipped: too slow (over the {seconds:g} s budget per file)"


def discard_incomplete(index: ProjectIndex, path: str) -> None:
    """Drop `path` from the index, and any module left registered but not parsed by an
    interrupted load (the index would raise KeyError on it later)."""
    index.remove(path)
    names = getattr(index, "_names", {})
    facts = getattr(index, "_facts", {})
    pending = getattr(index, "_pending", {})
    for key in [k for k in names if k not in facts and k not in pending]:
        index.remove(key)


def analyze_within(
    analyzer: Analyzer, filename: str, text: str, seconds: float | None = None
) -> FileResult:
    """`analyzer.analyze(filename, text)`, or a FileResult with a 'skipped: too slow' error
    when it runs past the budget (default: `file_budget_s()`). Never raises."""
    from ckpt_lsp.analysis.engine import FileResult

    budget = file_budget_s() if seconds is None else seconds
    try:
        return run_within(budget, analyzer.analyze, filename, text)
    except BudgetExceeded:
        analyzer.forget(filename)
        if analyzer.index is not None:
            discard_incomplete(analyzer.index, filename)
        return FileResult(filename, error=FileError(filename, too_slow_message(budget)))


def index_within(
    index: ProjectIndex, path: Any, text: str, seconds: float | None = None
) -> FileError | None:
    """`index.add_source(path, text)` within the budget; a FileError when it ran past it
    (the file is then left out of the index)."""
    budget = file_budget_s() if seconds is None else seconds
    try:
        run_within(budget, index.add_source, path, text)
    except BudgetExceeded:
        discard_incomplete(index, str(path))
        return FileError(str(path), too_slow_message(budget))
    except RecursionError:
        discard_incomplete(index, str(path))
        return FileError(str(path), "too deeply nested to analyze")
    return None
