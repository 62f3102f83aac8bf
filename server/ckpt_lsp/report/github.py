"""GitHub Actions workflow commands: each finding becomes an annotation on the PR diff.

Escaping follows the Actions toolkit: `%`, CR and LF in the message; additionally `:` and
`,` in property values, which would otherwise end the value.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ckpt_lsp.findings import FileError, Finding
from ckpt_lsp.rules import RULES

__all__ = ["escape_data", "escape_property", "render"]

_COMMANDS = {"error": "error", "warning": "warning", "information": "notice", "hint": "notice"}


def escape_data(value: str) -> str:
    """Escape a command's message."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """Escape a property value (file=, title=, ...)."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def _file(filename: str) -> str:
    # GitHub resolves file= against the workspace, which is where the CLI runs from.
    return Path(filename).as_posix()


def _title(code: str) -> str:
    rule = RULES.get(code)
    return f"{code} ({rule.name})" if rule else code


def _where(f: Finding) -> str:
    """line/col properties; in a notebook, the rows of the .ipynb JSON holding the cell's
    line (what the diff shows), without columns, which JSON escapes shift."""
    cell = f.cell
    if cell is not None and cell.file_rows[0] > 0:
        return f"line={cell.file_rows[0]},endLine={max(cell.file_rows)}"
    return (
        f"line={f.location.row},col={f.location.column},"
        f"endLine={f.end_location.row},endColumn={f.end_location.column}"
    )


def _cell_prefix(f: Finding) -> str:
    if f.cell is None:
        return ""
    return f"cell {f.cell.index}:{f.location.row}:{f.location.column}: "


def render(findings: Sequence[Finding], errors: Sequence[FileError]) -> str:
    """One `::error`/`::warning` line per finding, then one `::error` per file error."""
    lines = []
    for f in findings:
        props = (
            f"file={escape_property(_file(f.filename))},"
            f"{_where(f)},"
            f"title={escape_property(_title(f.code))}"
        )
        message = escape_data(_cell_prefix(f) + f.message)
        lines.append(f"::{_COMMANDS.get(f.severity, 'warning')} {props}::{message}")
    for e in sorted(errors, key=lambda e: e.filename):
        props = f"file={escape_property(_file(e.filename))},title={escape_property('ckpt-lsp')}"
        lines.append(f"::error {props}::{escape_data(e.message)}")
    return "".join(line + "\n" for line in lines)
