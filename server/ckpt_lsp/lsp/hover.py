"""Hover: why a flagged attribute breaks checkpointing, and what a suppressed code means."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from ckpt_lsp.findings import Finding, Position
from ckpt_lsp.fix.policy import IGNORE_HPARAM, is_fixable, is_keras, keras_op, keras_summary
from ckpt_lsp.fix.values import value_fixes
from ckpt_lsp.rules import SAVE_PATHS, rule_for, rule_page
from ckpt_lsp.suppress import code_at as code_in_suppression  # the server asks hover for it

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


@lru_cache(maxsize=64)
def doc_paragraph(code: str, section: str = "") -> str:
    """The first paragraph of a rule page's section ("" = the summary under the title),
    from the pages shipped with the package; "" when there is none."""
    text = rule_page(code)
    if text is None:
        return ""
    lines = text.splitlines()
    if section:
        heading = f"## {section}"
        starts = [i for i, line in enumerate(lines) if line.strip() == heading]
        if not starts:
            return ""
        lines = lines[starts[0] + 1 :]
    else:
        lines = lines[1:] if lines and lines[0].startswith("# ") else lines
    paragraph: list[str] = []
    for line in lines:
        if not line.strip():
            if paragraph:
                break
            continue
        if line.startswith(("#", "```", "|")):
            break
        paragraph.append(line.strip())
    joined = " ".join(paragraph)
    if joined.endswith(":"):  # it introduces a table or code the hover leaves out
        cut = joined.rfind(". ")
        joined = joined[: cut + 1] if cut > 0 else joined[:-1] + "."
    return joined


def finding_markdown(finding: Finding, markdown: bool = True) -> str:
    rule = rule_for(finding.code)
    name = rule.name if rule else ""
    url = finding.url or (rule.url if rule else "")
    tick = "`" if markdown else ""
    bold = "**" if markdown else ""
    if finding.class_name is None:  # a checkpoint value (CKPT010): its key, if constant
        where = f'checkpoint["{finding.attribute}"]' if finding.attribute else finding.what
    elif finding.attribute and finding.code != "CKPT010":
        where = f"{finding.class_name}.{finding.attribute}"
    elif finding.attribute:
        where = f'{finding.class_name}: checkpoint["{finding.attribute}"]'
    else:
        where = finding.class_name
    lines = [
        f"{bold}{finding.code} {name}{bold} · {tick}{where}{tick}",
        "",
        finding.message,
        "",
        f"{bold}Fails:{bold} {path_names(finding.breaks)} · "
        f"{bold}Works:{bold} {path_names(finding.fine)}"
        if finding.fine
        else f"{bold}Fails:{bold} pickle (Lightning drops the hyperparameter)"
        if finding.fix_mode == IGNORE_HPARAM and "pickle" in finding.breaks
        else f"{bold}Fails:{bold} the default {tick}torch.load{tick} (weights_only=True)",
    ]
    why = doc_paragraph(finding.code, "Why it breaks")
    if why:
        lines += ["", f"{bold}Why:{bold} {why}"]
    fix = doc_paragraph(finding.code, "How to fix") or (
        "Leave it out of the pickled state and re-create it after loading."
    )
    ignore = f"{tick}# ckpt: ignore[{finding.code}]{tick} on the statement silences it."
    op = keras_op(finding) if is_keras(finding) else None
    if op is not None:
        quick = f"The quick fix writes it ({keras_summary([op])}); {ignore}"
    elif values := value_fixes([finding]):  # a checkpoint value: replaced where it is written
        quick = f'The quick fix "{values[0].title}" rewrites the value; {ignore}'
    elif finding.fix_mode == IGNORE_HPARAM:  # CKPT011: what save_hyperparameters stores
        quick = (
            f'The quick fix "Exclude {tick}{finding.attribute}{tick} from the saved '
            f'hyperparameters" adds it to {tick}ignore={tick}; {ignore}'
        )
    elif is_fixable(finding):  # the fix policy's answer, as the code actions give it
        quick = (
            f'The quick fix "Exclude {tick}{finding.attribute}{tick} from pickling" writes the '
            f"{tick}__getstate__{tick}/{tick}__setstate__{tick} pair; {ignore}"
        )
    else:
        quick = f"There is no automatic fix; {ignore}"
    lines += ["", f"{bold}Fix:{bold} {fix} {quick}"]
    if url:
        lines += ["", f"[{finding.code} documentation]({url})" if markdown else url]
    return "\n".join(lines)


def rule_markdown(code: str, markdown: bool = True) -> str | None:
    rule = rule_for(code)
    if rule is None:
        return None
    bold = "**" if markdown else ""
    text = f"{bold}{rule.code} {rule.name}{bold} ({rule.severity}): {rule.summary}"
    summary = doc_paragraph(rule.code)
    if summary:
        text += f"\n\n{summary}"
    text += "\n\nSuppressed on this statement by this comment."
    link = f"[{rule.code} documentation]({rule.url})" if markdown else rule.url
    return f"{text}\n\n{link}"


__all__ = [
    "code_in_suppression",
    "doc_paragraph",
    "finding_at",
    "finding_markdown",
    "path_names",
    "rule_markdown",
]
