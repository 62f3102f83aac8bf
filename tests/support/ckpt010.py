"""CKPT010 findings of a test source placed under a module's import header, the rows counted
from the end of the header: the one helper the weights-only test modules share."""

from __future__ import annotations

import textwrap

from ckpt_lsp.analysis.analyzer import analyze_text
from ckpt_lsp.findings import Finding


def weights_only_findings(header: str, source: str) -> list[Finding]:
    """The CKPT010 findings of `header` followed by the dedented `source`."""
    return [f for f in analyze_text(header + textwrap.dedent(source)) if f.code == "CKPT010"]


def weights_only_rows(header: str, source: str) -> list[tuple[int, str | None]]:
    """(row within `source`, attribute) of each CKPT010 finding, in the analyzer's order."""
    offset = header.count("\n")
    return [(f.location.row - offset, f.attribute) for f in weights_only_findings(header, source)]
