"""Suite-wide hooks: the `shared` mark, and a count of skipped tests for each reason.

A run that skipped tests says why at its end, so a clone without the shared folder, or
without torch, cannot look like a clean pass. Test modules import `support` from tests/,
which pyproject.toml puts on sys.path.
"""

from __future__ import annotations

from collections import Counter

import pytest
from support.shared import require


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked `shared(path, ...)` skip (fail under CI) when a path is missing."""
    for mark in item.iter_markers("shared"):
        require(*mark.args)


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason.removeprefix("Skipped: ")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if r.skipped]
    if not skipped:
        return
    reasons = Counter(_skip_reason(report) for report in skipped)
    terminalreporter.section("skipped tests, by reason", sep="-")
    for reason, count in reasons.most_common():
        terminalreporter.line(f"skipped {count}: {reason}")
