"""SARIF 2.1.0 for GitHub code scanning and other SARIF viewers.

Paths are relative to the project root under `%SRCROOT%`; columns are code points (declared
with `columnKind`), and each result carries a fingerprint built from path, class, attribute
and code, not line numbers, so code scanning keeps tracking an alert when lines move.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ckpt_lsp import __version__
from ckpt_lsp.findings import FileError, Finding
from ckpt_lsp.rules import RULES, Rule

__all__ = ["FINGERPRINT_KEY", "SCHEMA", "fingerprint", "render", "to_sarif"]

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/ckpt-lsp/ckpt-lsp"
SRCROOT = "%SRCROOT%"
FINGERPRINT_KEY = "ckptLsp/v1"

# SARIF has no "information"/"hint": both are notes.
_LEVELS = {"error": "error", "warning": "warning", "information": "note", "hint": "note"}

_SAVE_PATHS = "pickle, torch.save(model), spawn DataLoader workers or deepcopy"


def _artifact(filename: str, root: Path) -> dict[str, str]:
    """An artifactLocation: relative to %SRCROOT% when below root, else an absolute file URI."""
    path = Path(filename)
    absolute = Path(os.path.normpath(path if path.is_absolute() else Path.cwd() / path))
    try:
        rel = absolute.relative_to(Path(os.path.abspath(root))).as_posix()
    except ValueError:
        return {"uri": absolute.as_uri()}
    return {"uri": quote(rel, safe="/"), "uriBaseId": SRCROOT}


def fingerprint(finding: Finding, root: Path) -> str:
    """A hash of where the problem lives (file, class, attribute, rule), not of its line."""
    uri = _artifact(finding.filename, root)["uri"]
    key = "\0".join((uri, finding.class_name or "", finding.attribute or "", finding.code))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _rule(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {
            "text": f"{rule.summary}. A model attribute holding such a value breaks "
            f"saving or copying the model ({_SAVE_PATHS})."
        },
        "helpUri": rule.url,
        "help": {
            "text": f"{rule.code} ({rule.name}): {rule.summary}. See {rule.url}",
            "markdown": f"**{rule.code} ({rule.name})**: {rule.summary}.\n\n"
            f"[Rule documentation]({rule.url})",
        },
        "defaultConfiguration": {"level": _LEVELS.get(rule.severity, "warning")},
        "properties": {"tags": ["checkpointing", "pickle", rule.name]},
    }


def _result(finding: Finding, root: Path, index: dict[str, int]) -> dict[str, Any]:
    result: dict[str, Any] = {"ruleId": finding.code}
    if finding.code in index:
        result["ruleIndex"] = index[finding.code]
    result.update(
        {
            "level": _LEVELS.get(finding.severity, "warning"),
            "message": {"text": finding.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": _artifact(finding.filename, root),
                        "region": {
                            "startLine": finding.location.row,
                            "startColumn": finding.location.column,
                            "endLine": finding.end_location.row,
                            "endColumn": finding.end_location.column,
                        },
                    },
                    "logicalLocations": [_logical(finding)],
                }
            ],
            **_related(finding, root),
            "partialFingerprints": {FINGERPRINT_KEY: fingerprint(finding, root)},
            "properties": {"class": finding.class_name, "attribute": finding.attribute},
        }
    )
    return result


def _logical(finding: Finding) -> dict[str, Any]:
    """The attribute of a class; for a checkpoint value (CKPT010) its key, in its function."""
    if finding.class_name is None or finding.attribute is None:
        name = finding.attribute or finding.what
        owner = f"{finding.class_name}." if finding.class_name else ""
        return {"name": name, "fullyQualifiedName": f"{owner}{name}", "kind": "variable"}
    return {
        "name": finding.attribute,
        "fullyQualifiedName": f"{finding.class_name}.{finding.attribute}",
        "kind": "member",
    }


def _related(finding: Finding, root: Path) -> dict[str, Any]:
    """SARIF's relatedLocations: where a conditional hazard is made (the factory's return)."""
    if not finding.related:
        return {}
    return {
        "relatedLocations": [
            {
                "id": i,
                "physicalLocation": {
                    "artifactLocation": _artifact(path, root),
                    "region": {"startLine": row, "startColumn": column},
                },
                "message": {"text": message},
            }
            for i, (path, row, column, message) in enumerate(finding.related)
        ]
    }


def _notification(error: FileError, root: Path) -> dict[str, Any]:
    return {
        "level": "error",
        "message": {"text": f"{error.filename}: {' '.join(error.message.split())}"},
        "locations": [{"physicalLocation": {"artifactLocation": _artifact(error.filename, root)}}],
    }


def to_sarif(
    findings: Sequence[Finding], errors: Sequence[FileError], *, root: Path
) -> dict[str, Any]:
    """The SARIF log as a dict (for callers that post-process it)."""
    index = {code: i for i, code in enumerate(RULES)}
    root_uri = Path(os.path.abspath(root)).as_uri().rstrip("/") + "/"
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "ckpt-lsp",
                        "informationUri": INFORMATION_URI,
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": [_rule(rule) for rule in RULES.values()],
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": not errors,
                        "toolExecutionNotifications": [_notification(e, root) for e in errors],
                    }
                ],
                "originalUriBaseIds": {SRCROOT: {"uri": root_uri}},
                "columnKind": "unicodeCodePoints",
                "results": [_result(f, root, index) for f in findings],
            }
        ],
    }


def render(findings: Sequence[Finding], errors: Sequence[FileError], *, root: Path) -> str:
    """The SARIF log as indented JSON, ending with a newline."""
    return json.dumps(to_sarif(findings, errors, root=root), indent=2, ensure_ascii=False) + "\n"
