"""Output formats for the CLI: one module per format, one `render` entry point.

Reporters are pure functions from findings to text, so the CLI decides where text goes
(stdout, stderr, a file) and tests can compare strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ckpt_lsp.findings import FileError, Finding
from ckpt_lsp.report import github, json, sarif, text

FORMATS: tuple[str, ...] = ("text", "json", "sarif", "github")

__all__ = ["FORMATS", "render", "sort_findings"]


def sort_findings(findings: Sequence[Finding]) -> list[Finding]:
    """The order every format uses: by file, position, then code."""
    return sorted(
        findings,
        key=lambda f: (
            f.filename,
            f.cell.index if f.cell is not None else 0,  # a notebook's positions are per cell
            f.location,
            f.end_location,
            f.code,
        ),
    )


def render(
    findings: Sequence[Finding],
    errors: Sequence[FileError],
    fmt: str,
    *,
    root: Path,
    fixed: int = 0,
) -> str:
    """Format findings (and, except for text and json, file errors) as one string.

    The text format leaves file errors to `text.render_errors` (the CLI prints them on
    stderr); json leaves them out by contract. Non-empty output ends with a newline.
    """
    ordered = sort_findings(findings)
    if fmt == "text":
        return text.render(ordered, errors, root=root, fixed=fixed)
    if fmt == "json":
        return json.render(ordered)
    if fmt == "sarif":
        return sarif.render(ordered, errors, root=root)
    if fmt == "github":
        return github.render(ordered, errors)
    raise ValueError(f"unknown output format '{fmt}' (expected one of: {', '.join(FORMATS)})")
