"""Hover: why a flagged attribute breaks checkpointing, and what a suppressed code means."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ckpt_lsp.findings import Finding, Position
from ckpt_lsp.rules import SAVE_PATHS, rule_for

_SUPPRESSION = re.compile(
    r"#\s*(?:ckpt:\s*ignore\[(?P<ckpt>[^\]]*)\]|noqa:\s*(?P<noqa>[A-Za-z0-9,\s]+))",
    re.IGNORECASE,
)
_CODE = re.compile(r"[A-Za-z]+[0-9]+")

_EXTRA_PATHS = {"state_dict": "state_dict()"}


def path_names(keys: Sequence[str]) -> str:
    names = [SAVE_PATHS.get(k, _EXTRA_PATHS.get(k, k)) for k in keys]
    return ", ".join(names) if names else "none"


def finding_at(findings: Sequence[Finding], pos: Position) -> Finding | None:
    """The finding whose range holds `pos` (the innermost when several do)."""
    hits = [f for f in findings if f.location <= pos <= f.end_location]
    if not hits:
        return None
    return min(hits, key=lambda f: (f.end_location.row - f.location.row, f.end_location.column))


def finding_markdown(finding: Finding, markdown: bool = True) -> str:
    rule = rule_for(finding.code)
    name = rule.name if rule else ""
    url = finding.url or (rule.url if rule else "")
    attr = f"self.{finding.attribute}" if finding.attribute else "this value"
    tick = "`" if markdown else ""
    bold = "**" if markdown else ""
    lines = [
        f"{bold}{finding.code} {name}{bold}: {tick}{attr}{tick} of "
        f"{tick}{finding.class_name}{tick} holds {finding.what}",
        "",
        finding.message,
        "",
        f"{bold}Fails:{bold} {path_names(finding.breaks)}",
        "",
        f"{bold}Works:{bold} {path_names(finding.fine)}",
        "",
        (
            f"{bold}Fix:{bold} leave it out of the pickled state: a `__getstate__` that pops "
            f"{tick}{finding.attribute}{tick} and a `__setstate__` that re-creates it (quick fix "
            f'"Exclude {tick}{finding.attribute}{tick} from pickling"); or keep what is needed '
            "to re-create it (a path, a name) and build the object when it is used. "
            f"{tick}# ckpt: ignore[{finding.code}]{tick} on the statement silences it."
        ),
    ]
    if url:
        lines += ["", f"[{finding.code} documentation]({url})" if markdown else url]
    return "\n".join(lines)


def code_in_suppression(line: str, column: int) -> str | None:
    """The rule code under 0-based code point `column` inside a suppression comment."""
    for match in _SUPPRESSION.finditer(line):
        group = "ckpt" if match.group("ckpt") is not None else "noqa"
        start = match.start(group)
        for code in _CODE.finditer(match.group(group)):
            if start + code.start() <= column <= start + code.end():
                return code.group(0).upper()
    return None


def rule_markdown(code: str, markdown: bool = True) -> str | None:
    rule = rule_for(code)
    if rule is None:
        return None
    bold = "**" if markdown else ""
    text = f"{bold}{rule.code} {rule.name}{bold} ({rule.severity}): {rule.summary}"
    text += "\n\nSuppressed on this statement by this comment."
    link = f"[{rule.code} documentation]({rule.url})" if markdown else rule.url
    return f"{text}\n\n{link}"
