"""Findings as protocol diagnostics.

A diagnostic carries everything a code action needs in `data` (class, attribute,
class row, statement rows, bases), so a client that sends diagnostics back with a
codeAction request gets fixes even when the server's own results moved on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lsprotocol import types

from ckpt_lsp.findings import Finding
from ckpt_lsp.lsp.positions import LineIndex
from ckpt_lsp.rules import rule_for

SOURCE = "ckpt-lsp"

SEVERITY: dict[str, types.DiagnosticSeverity] = {
    "error": types.DiagnosticSeverity.Error,
    "warning": types.DiagnosticSeverity.Warning,
    "information": types.DiagnosticSeverity.Information,
    "info": types.DiagnosticSeverity.Information,
    "hint": types.DiagnosticSeverity.Hint,
}


def finding_data(finding: Finding) -> dict[str, Any]:
    """What a fix needs to know about the finding, as JSON."""
    data: dict[str, Any] = {
        "class": finding.class_name,
        "attribute": finding.attribute,
        "class_line": finding.class_line,
        "statement_rows": list(finding.statement_rows),
    }
    bases = getattr(finding, "bases", None)
    if bases:
        data["bases"] = list(bases)
    return data


def severity_of(finding: Finding, overrides: Any = None) -> types.DiagnosticSeverity:
    """The finding's severity, or the configured one for its code."""
    level = finding.severity
    if overrides is not None:
        level = overrides.get(finding.code.upper(), level)
    return SEVERITY.get(str(level).lower(), types.DiagnosticSeverity.Warning)


def to_diagnostic(finding: Finding, index: LineIndex, overrides: Any = None) -> types.Diagnostic:
    rule = rule_for(finding.code)
    url = finding.url or (rule.url if rule else "")
    return types.Diagnostic(
        range=index.range_to_client(finding.location, finding.end_location),
        message=finding.message,
        severity=severity_of(finding, overrides),
        code=finding.code,
        code_description=types.CodeDescription(href=url) if url else None,
        source=SOURCE,
        data=finding_data(finding),
    )


def to_diagnostics(
    findings: Iterable[Finding], index: LineIndex, overrides: Any = None
) -> list[types.Diagnostic]:
    return [to_diagnostic(f, index, overrides) for f in findings]
