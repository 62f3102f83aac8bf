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
                        "region": _region(finding),
                    },
                    "logicalLocations": _logical(finding),
                }
            ],
            **_related(finding, root),
            "partialFingerprints": {FINGERPRINT_KEY: fingerprint(finding, root)},
            "properties": {
                "class": finding.class_name,
                "attribute": finding.attribute or None,
                **_cell_properties(finding),
            },
        }
    )
    return result


def _region(finding: Finding) -> dict[str, int]:
    """Rows and columns of the file. A region is a part of the artifact, and a notebook's
    artifact is its JSON: the rows of the JSON that hold the cell's line (code scanning
    shows them), without columns, which escapes shift; the cell position is a property."""
    cell = finding.cell
    if cell is not None and cell.file_rows[0] > 0:
        return {"startLine": cell.file_rows[0], "endLine": max(cell.file_rows)}
    return {
        "startLine": finding.location.row,
        "startColumn": finding.location.column,
        "endLine": finding.end_location.row,
        "endColumn": finding.end_location.column,
    }


def _logical(finding: Finding) -> list[dict[str, str]]:
    """The attribute of a class; a whole class (CKPT012); a checkpoint value (CKPT010) by its
    key in its function; and a notebook's cell."""
    places = []
    if finding.attribute and finding.class_name:
        places.append(
            {
                "name": finding.attribute,
                "fullyQualifiedName": f"{finding.class_name}.{finding.attribute}",
                "kind": "member",
            }
        )
    elif finding.class_name and finding.code != "CKPT010":
        places.append({"name": finding.class_name, "kind": "type"})
    else:
        name = finding.attribute or finding.what
        owner = f"{finding.class_name}." if finding.class_name else ""
        places.append({"name": name, "fullyQualifiedName": f"{owner}{name}", "kind": "variable"})
    if finding.cell is not None:
        places.append({"name": f"cell {finding.cell.index}", "kind": "module"})
    return places


def _cell_properties(finding: Finding) -> dict[str, Any]:
    """For a notebook: the cell (1-based index, id) and the position inside it."""
    cell = finding.cell
    if cell is None:
        return {}
    return {
        "cell": {"index": cell.index, "id": cell.id},
        "cellRegion": {
            "startLine": finding.location.row,
            "startColumn": finding.location.column,
            "endLine": finding.end_location.row,
            "endColumn": finding.end_location.column,
        },
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
