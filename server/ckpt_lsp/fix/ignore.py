"""The other fix for a finding: a suppression comment on its statement.

Built from the comment grammar in `ckpt_lsp.suppress`; the server offers it as a quick
fix, and it needs nothing but the statement's last line, so any face can offer it.
"""

from __future__ import annotations

from collections.abc import Callable

from ckpt_lsp.findings import Edit, Finding, Position
from ckpt_lsp.suppress import add_code


def ignore_row(finding: Finding) -> int:
    """The 1-based row the comment goes on: the statement's last line (a formatter keeps a
    trailing comment there)."""
    last = finding.statement_rows[1]
    return last if last > 0 else finding.end_location.row


def ignore_edit(finding: Finding, line_at: Callable[[int], str]) -> Edit | None:
    """`# ckpt: ignore[CODE]` at the end of the statement's last line, or the code added
    to the list of an ignore comment already there; None when it is listed already.
    `line_at(row)` is the text of 1-based `row` without its line ending."""
    row = ignore_row(finding)
    change = add_code(line_at(row), finding.code)
    if change is None:
        return None
    start, end, text = change
    return Edit(text, Position(row, start + 1), Position(row, end + 1))
