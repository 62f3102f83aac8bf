"""Suppression comments on any line of the flagged statement."""

from __future__ import annotations

import pytest
from ckpt_lsp.analysis.analyzer import analyze_text
from ckpt_lsp.suppress import add_code, code_at, suppressed_codes

HEAD = "import threading\nfrom torch import nn\nclass M(nn.Module):\n    def __init__(self):\n"


@pytest.mark.parametrize(
    "line",
    [
        "        self.lock = threading.Lock()  # ckpt: ignore[CKPT005]\n",
        "        self.lock = threading.Lock()  # ckpt: ignore\n",
        "        self.lock = threading.Lock()  # noqa: CKPT005\n",
        "        self.lock = threading.Lock()  # noqa: E501, CKPT005\n",
        "        self.lock = threading.Lock()  # noqa\n",
        "        self.lock = threading.Lock()  # ckpt: ignore[CKPT]\n",
        "        self.lock = (\n            threading.Lock()  # ckpt: ignore[CKPT005]\n        )\n",
        "        self.lock = (  # noqa: CKPT005\n            threading.Lock()\n        )\n",
    ],
)
def test_suppressed(line: str) -> None:
    assert analyze_text(HEAD + line) == []


@pytest.mark.parametrize(
    "line",
    [
        "        self.lock = threading.Lock()  # ckpt: ignore[CKPT001]\n",
        "        self.lock = threading.Lock()  # noqa: E501\n",
        "        self.lock = threading.Lock()\n        # ckpt: ignore\n",
    ],
)
def test_not_suppressed(line: str) -> None:
    assert [f.code for f in analyze_text(HEAD + line)] == ["CKPT005"]


def test_codes_parsed() -> None:
    assert suppressed_codes("x  # ckpt: ignore[CKPT001, CKPT002]") == {"CKPT001", "CKPT002"}
    assert suppressed_codes("x = 1") is None


# One grammar for the three uses: what the analysis reads, what the hover finds under the
# cursor, and where the "ignore" fix adds a code.
COMMENTS = [
    "x = 1",
    "x = 1  # note",
    "x = 1  # ckpt: ignore[CKPT001, ckpt005]",
    "x = 1  # ckpt: ignore[ CKPT005 ]  # noqa: E501, CKPT009",
    "x = 1  # ckpt: ignore",
    "x = 1  # ckpt: ignore[]",
    "x = 1  # NOQA: CKPT002",
    "x = 1  # noqa",
]


@pytest.mark.parametrize("line", COMMENTS)
def test_the_hover_finds_every_code_the_analysis_reads(line: str) -> None:
    read = suppressed_codes(line) or frozenset()
    under_cursor = {code_at(line, column) for column in range(len(line) + 1)} - {None}
    assert under_cursor == read - {"*"}


@pytest.mark.parametrize("line", COMMENTS)
def test_an_added_code_is_then_suppressed(line: str) -> None:
    change = add_code(line, "CKPT003")
    assert change is not None
    start, end, text = change
    edited = line[:start] + text + line[end:]
    codes = suppressed_codes(edited)
    assert codes is not None and ("CKPT003" in codes or "*" in codes)
    assert add_code(edited, "CKPT003") is None or "*" in codes
