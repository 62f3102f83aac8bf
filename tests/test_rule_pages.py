"""The rule pages ship inside the package (hover and --explain read them there) and are
the same as docs/rules, which diagnostics link to."""

from __future__ import annotations

from pathlib import Path

import ckpt_lsp
from ckpt_lsp.rules import RULES

REPO = Path(__file__).resolve().parents[1]
PACKAGED = Path(ckpt_lsp.__file__).parent / "data" / "rules"


def test_every_rule_has_a_page_in_both_places() -> None:
    for code in RULES:
        docs = (REPO / "docs" / "rules" / f"{code}.md").read_text(encoding="utf-8")
        shipped = (PACKAGED / f"{code}.md").read_text(encoding="utf-8")
        assert shipped == docs, (
            f"{code}: server/ckpt_lsp/data/rules differs from docs/rules; "
            "run: cp docs/rules/*.md server/ckpt_lsp/data/rules/"
        )
        assert docs.startswith(f"# {code}: {RULES[code].name}")
