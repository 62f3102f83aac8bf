"""Findings as protocol diagnostics.

A diagnostic carries everything a code action needs in `data` (class, attribute,
class row, statement rows, bases), so a client that sends diagnostics back with a
codeAction request gets fixes even when the server's own results moved on.

Diagnostics are built as JSON-ready dicts and cached per finding and line text:
a keystroke changes a few findings of a file, and converting (and serializing
through cattrs) hundreds of unchanged ones on every keystroke would cost more
than the analysis itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lsprotocol import types

from ckpt_lsp.findings import Finding, Position
from ckpt_lsp.lsp.positions import LineIndex
from ckpt_lsp.rules import rule_for

SOURCE = "ckpt-lsp"

# The protocol's name for each of rules.SEVERITIES. Which level a finding has is decided
# once, by the analysis (Config.severity_of); the diagnostic shows the finding's.
SEVERITY: dict[str, types.DiagnosticSeverity] = {
    "error": types.DiagnosticSeverity.Error,
    "warning": types.DiagnosticSeverity.Warning,
    "information": types.DiagnosticSeverity.Information,
    "hint": types.DiagnosticSeverity.Hint,
}

Json = dict[str, Any]


def finding_data(finding: Finding) -> Json:
    """What a fix needs to know about the finding, as JSON."""
    data: Json = {
        "class": finding.class_name,
        "attribute": finding.attribute,
        "class_line": finding.class_line,
        "statement_rows": list(finding.statement_rows),
    }
    bases = getattr(finding, "bases", None)
    if bases:
        data["bases"] = list(bases)
    return data


def severity_of(finding: Finding) -> int:
    """The protocol's level for the finding's severity."""
    return int(SEVERITY.get(str(finding.severity).lower(), types.DiagnosticSeverity.Warning))


def _position(pos: types.Position) -> Json:
    return {"line": pos.line, "character": pos.character}


def diagnostic_json(finding: Finding, index: LineIndex) -> Json:
    """The diagnostic of one finding, as the protocol's JSON."""
    rule = rule_for(finding.code)
    url = finding.url or (rule.url if rule else "")
    out: Json = {
        "range": {
            "start": _position(index.to_client(finding.location)),
            "end": _position(index.to_client(finding.end_location)),
        },
        "severity": severity_of(finding),
        "code": finding.code,
        "source": SOURCE,
        "message": finding.message,
        "data": finding_data(finding),
    }
    if url:
        out["codeDescription"] = {"href": url}
    related = _related_information(finding, index)
    if related:
        out["relatedInformation"] = related
    return out


def _related_information(finding: Finding, index: LineIndex) -> list[Json]:
    """Where a conditional hazard is made (a factory's return) and the calls that fail on
    the object (a torch.save in train.py), as protocol locations."""
    out: list[Json] = []
    for path, row, column, message in finding.related:
        place = Path(path)
        if not place.is_absolute():
            place = Path.cwd() / place
        start = Position(row, column)
        if path == finding.filename:
            at = _position(index.to_client(start))
        else:  # another file: its lines are not at hand, code points stand for units
            at = {"line": row - 1, "character": column - 1}
        out.append(
            {
                "location": {"uri": place.as_uri(), "range": {"start": at, "end": at}},
                "message": message,
            }
        )
    return out


class Converted(list):  # type: ignore[type-arg]
    """Diagnostics as JSON dicts, with each one's serialized text alongside."""

    texts: list[str]


class DiagnosticCache:
    """Finding (+ the text of its lines) -> its diagnostic JSON and text."""

    def __init__(self, limit: int = 10_000) -> None:
        self._cache: dict[tuple[Any, ...], tuple[Json, str]] = {}
        self.limit = limit

    def convert(self, findings: Iterable[Finding], index: LineIndex) -> Converted:
        out = Converted()
        texts: list[str] = []
        lines = index.lines
        encoding = index.encoding
        for finding in findings:
            start, end = finding.location.row - 1, finding.end_location.row - 1
            key = (
                finding,
                encoding,
                lines[start] if 0 <= start < len(lines) else None,
                lines[end] if 0 <= end < len(lines) else None,
            )
            try:
                cached = self._cache.get(key)
            except TypeError:  # an unhashable field: convert without the cache
                data = diagnostic_json(finding, index)
                cached = (data, json.dumps(data))
            else:
                if cached is None:
                    if len(self._cache) >= self.limit:
                        self._cache.clear()
                    data = diagnostic_json(finding, index)
                    cached = self._cache[key] = (data, json.dumps(data))
            out.append(cached[0])
            texts.append(cached[1])
        out.texts = texts
        return out


def publish_body(uri: str, version: int | None, diagnostics: list[Json]) -> str:
    """The JSON text of a publishDiagnostics notification, joined from the cached texts
    of its diagnostics (serializing hundreds of dicts again costs several ms)."""
    texts = getattr(diagnostics, "texts", None)
    if texts is None or len(texts) != len(diagnostics):
        texts = [json.dumps(d) for d in diagnostics]
    method = json.dumps(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    head = f'{{"jsonrpc": "2.0", "method": {method}, "params": {{"uri": {json.dumps(uri)}'
    if version is not None:
        head += f', "version": {int(version)}'
    return f'{head}, "diagnostics": [{", ".join(texts)}]}}}}'
