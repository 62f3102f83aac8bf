"""The JSON contract: a list with one object per finding, keys in a fixed order.

Scripts and other tools parse this, so the shape only grows; file errors are not in it
(they go to stderr and the exit code).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ckpt_lsp.findings import CellRef, Finding, Fix, Position

__all__ = ["finding_to_dict", "render"]


def _position(pos: Position) -> dict[str, int]:
    return {"row": pos.row, "column": pos.column}


def _cell(cell: CellRef | None) -> dict[str, Any] | None:
    """Where a notebook finding or edit is: the 1-based cell index and the cell's id."""
    return None if cell is None else {"index": cell.index, "id": cell.id}


def _fix(fix: Fix | None) -> dict[str, Any] | None:
    if fix is None:
        return None
    return {
        "message": fix.message,
        "edits": [
            {
                "content": edit.content,
                **({"cell": _cell(edit.cell)} if edit.cell is not None else {}),
                "location": _position(edit.location),
                "end_location": _position(edit.end_location),
            }
            for edit in fix.edits
        ],
    }


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    """One finding as the contract's object (dicts keep insertion order: the key order)."""
    return {
        "code": finding.code,
        "message": finding.message,
        "severity": finding.severity,
        "filename": finding.filename,
        "cell": _cell(finding.cell),  # set for a notebook: the positions are in this cell
        "location": _position(finding.location),
        "end_location": _position(finding.end_location),
        "class": finding.class_name,
        "attribute": finding.attribute or None,  # a finding about a whole class has none
        "url": finding.url,
        "fix": _fix(finding.fix),
        "related": [
            {"filename": path, "location": {"row": row, "column": column}, "message": message}
            for path, row, column, message in finding.related
        ],
    }


def render(findings: Sequence[Finding]) -> str:
    """The findings as an indented JSON list, ending with a newline."""
    return json.dumps([finding_to_dict(f) for f in findings], indent=2, ensure_ascii=False) + "\n"
