"""Suppression comments on any line of the flagged statement."""

from __future__ import annotations

import pytest
from ckpt_lsp.analysis.analyzer import analyze_text
from ckpt_lsp.suppress import suppressed_codes

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
