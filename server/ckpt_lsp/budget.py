"""The time budget per file, so one pathological file cannot stall a whole run.

The analysis enforces it cooperatively (`Analyzer.analyze(..., budget_s=...)` checks
the clock between classes): a timer signal would be simpler, but one raised inside
`compile()` leaves CPython's parser in a bad state, so none is used. The CLI and the
language server both take the budget from here.
"""

from __future__ import annotations

import os
import time

DEFAULT_FILE_BUDGET_S = 20.0
BUDGET_ENV = "CKPT_FILE_BUDGET_S"  # seconds; 0 turns the budget off


def file_budget_s() -> float:
    """The per-file budget: CKPT_FILE_BUDGET_S when set to a number, else the default."""
    raw = os.environ.get(BUDGET_ENV, "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_FILE_BUDGET_S
    except ValueError:
        return DEFAULT_FILE_BUDGET_S
    return max(value, 0.0)


class OutOfTime(Exception):
    """The file's analysis budget is spent."""


def check_deadline(deadline: float | None) -> None:
    """Raise OutOfTime once `deadline` (a `time.perf_counter()` value) has passed."""
    if deadline is not None and time.perf_counter() > deadline:
        raise OutOfTime
