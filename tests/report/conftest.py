"""Small hand-made findings for the reporter tests (the reporters never run the analysis)."""

from __future__ import annotations

from typing import Callable

import pytest
from ckpt_lsp.findings import Edit, FileError, Finding, Fix, Position
from ckpt_lsp.rules import RULES


def _finding(
    code: str = "CKPT001",
    filename: str = "src/model.py",
    row: int = 10,
    column: int = 9,
    end_row: int | None = None,
    end_column: int | None = None,
    class_name: str = "Net",
    attribute: str = "log_file",
    message: str | None = None,
    severity: str | None = None,
    fix: Fix | None = None,
) -> Finding:
    rule = RULES[code]
    return Finding(
        code=code,
        message=message or f"`self.{attribute}` holds an open file: pickle fails",
        severity=severity or rule.severity,
        filename=filename,
        location=Position(row, column),
        end_location=Position(end_row or row, end_column or column + 13),
        class_name=class_name,
        attribute=attribute,
        what="an open file",
        breaks=("torch.save", "pickle"),
        fine=("deepcopy",),
        url=rule.url,
        fix=fix,
    )


@pytest.fixture
def make_finding() -> Callable[..., Finding]:
    return _finding


@pytest.fixture
def sample_fix() -> Fix:
    return Fix(
        message="Leave `log_file` out of the pickled state",
        edits=(
            Edit(
                content="\n    def __getstate__(self):\n        ...\n",
                location=Position(20, 1),
                end_location=Position(20, 1),
            ),
        ),
    )


@pytest.fixture
def file_error() -> FileError:
    return FileError("src/broken.py", "invalid UTF-8 at byte 12")
