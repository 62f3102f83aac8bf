"""Concise, ruff-like text: one `path:row:col: CODE message` line per finding and a summary."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ckpt_lsp.findings import FileError, Finding

__all__ = ["display_path", "render", "render_errors", "summary"]


def display_path(filename: str, root: Path) -> str:
    """`filename` relative to `root` when it lies below it, else as given (posix slashes)."""
    path = Path(filename)
    absolute = Path(os.path.normpath(path if path.is_absolute() else Path.cwd() / path))
    try:
        return absolute.relative_to(Path(os.path.abspath(root))).as_posix()
    except ValueError:
        return path.as_posix()


def _cell(finding: Finding) -> str:
    """`cell 4:` for a finding in a notebook (ruff's form), else nothing."""
    return f"cell {finding.cell.index}:" if finding.cell is not None else ""


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def summary(findings: Sequence[Finding], errors: Sequence[FileError], fixed: int = 0) -> str:
    """The closing line(s): "Found N errors (M fixed, K remaining)." or "All checks passed!"."""
    remaining = len(findings)
    total = remaining + fixed
    if total == 0:
        head = "All checks passed!" if not errors else "No findings."
    elif fixed:
        head = f"Found {_plural(total, 'error')} ({fixed} fixed, {remaining} remaining)."
    else:
        head = f"Found {_plural(total, 'error')}."
    lines = [head]
    if errors:
        lines[0] += f" {_plural(len(errors), 'file')} could not be checked."
    fixable = sum(1 for f in findings if f.fix is not None)
    if fixable:
        lines.append(f"[*] {fixable} fixable with the `--fix` option.")
    return "\n".join(lines)


def render(
    findings: Sequence[Finding],
    errors: Sequence[FileError],
    *,
    root: Path,
    fixed: int = 0,
) -> str:
    """Finding lines, then the summary; `errors` only count in the summary (see render_errors)."""
    lines = [
        f"{display_path(f.filename, root)}:{_cell(f)}{f.location.row}:{f.location.column}: "
        f"{f.code} {f.message}"
        for f in findings
    ]
    return "\n".join([*lines, summary(findings, errors, fixed)]) + "\n"


def render_errors(errors: Sequence[FileError], *, root: Path) -> str:
    """`error: path: message` lines for stderr; empty when there are none."""
    lines = [
        f"error: {display_path(e.filename, root)}: {' '.join(e.message.split())}"
        for e in sorted(errors, key=lambda e: e.filename)
    ]
    return "".join(line + "\n" for line in lines)
