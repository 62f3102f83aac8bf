"""Fix a checkpoint value (CKPT010) where it is written: save what the default torch.load loads.

The finding's fix kind (data/weights_only.toml, `fix`) says how: `.item()`, `.state_dict()`,
`vars(x)`, `str(x)` or `OmegaConf.to_container(x)`, the last adding `from omegaconf import
OmegaConf` when the module has no name for it. The analysis offers a kind only where its result
certainly loads. An edit is kept only when the value's text is still there and the fixed module
parses.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ckpt_lsp.analysis.facts import record_import
from ckpt_lsp.analysis.nodes import walk
from ckpt_lsp.findings import Edit, Finding, Position
from ckpt_lsp.fix.text import LineTable, Span, apply_spans, spans_overlap, spans_to_edits

VALUE_CODES = frozenset({"CKPT010"})
_ATOMS = (ast.Name, ast.Attribute, ast.Call, ast.Subscript)
_TEMPLATES = {
    "item": "{atom}.item()",
    "state_dict": "{atom}.state_dict()",
    "vars": "vars({text})",
    "str": "str({text})",
    "to_container": "{omegaconf}.to_container({text})",
}
_TITLES = {
    "item": "Save a Python number: `.item()`",
    "state_dict": "Save the state: `.state_dict()`",
    "vars": "Save a dict: `vars(...)`",
    "str": "Save a string: `str(...)`",
    "to_container": "Save plain containers: `OmegaConf.to_container(...)`",
}


@dataclass(frozen=True)
class ValueFix:
    """Replace the value at [location, end_location) by its loadable form."""

    kind: str  # a key of _TEMPLATES
    location: Position
    end_location: Position

    @property
    def title(self) -> str:
        return _TITLES[self.kind]

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "start": [self.location.row, self.location.column],
            "end": [self.end_location.row, self.end_location.column],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ValueFix:
        kind = str(data["kind"])
        if kind not in _TEMPLATES:
            raise ValueError(f"unknown value fix {kind!r}")
        (r1, c1), (r2, c2) = data["start"], data["end"]
        return cls(kind, Position(int(r1), int(c1)), Position(int(r2), int(c2)))


def value_fixes(findings: Iterable[Finding]) -> list[ValueFix]:
    """The value fixes of the findings that have one (the policy for CKPT010)."""
    return [
        ValueFix(f.fix_mode, f.location, f.end_location)
        for f in findings
        if f.code in VALUE_CODES and f.fix_mode in _TEMPLATES
    ]


def value_spans(source: str, fixes: Sequence[ValueFix]) -> list[Span]:
    """The spans (offsets in `source`) of the fixes that apply cleanly, the import included."""
    if not fixes:
        return []
    table = LineTable(source)
    names = _OmegaConfName(source)
    spans: list[Span] = []
    for fix in fixes:
        span = _span(source, table, fix, names)
        if span is None or spans_overlap([span], spans):
            continue
        trial = [*spans, span, *names.import_spans(table)]
        if _parses(apply_spans(source, trial)):
            spans.append(span)
    if not spans:
        return []
    return [*spans, *names.import_spans(table)]


def fix_file_source(source: str, findings: Sequence[Finding]) -> str:
    """The whole file fixed: each class's __getstate__/__setstate__ and each checkpoint value,
    planned on the same text (what `--fix` writes). Value fixes that would overlap a class
    edit, or break the parse together with them, are left out."""
    from ckpt_lsp.fix.edits import plan_fixes
    from ckpt_lsp.fix.policy import fix_targets

    targets = fix_targets(findings)
    class_spans = plan_fixes(source, targets)[1] if targets else []
    values = value_spans(source, value_fixes(findings))
    if values and not spans_overlap(values, class_spans):
        combined = apply_spans(source, [*class_spans, *values])
        if _parses(combined):
            return combined
    return apply_spans(source, class_spans) if class_spans else source


def value_edits(source: str, fixes: Sequence[ValueFix]) -> list[Edit]:
    """The fixes as text edits (1-based rows, code-point columns, end exclusive)."""
    return spans_to_edits(LineTable(source), value_spans(source, fixes))


def _span(source: str, table: LineTable, fix: ValueFix, names: _OmegaConfName) -> Span | None:
    start = _offset(table, fix.location)
    end = _offset(table, fix.end_location)
    if start is None or end is None or end <= start:
        return None
    text = source[start:end]
    try:
        node = ast.parse(f"(\n{text}\n)", mode="eval").body
    except SyntaxError:
        return None
    atom = text if isinstance(node, _ATOMS) else f"({text})"
    omegaconf = ""
    if fix.kind == "to_container":
        omegaconf = names.name()
        if not omegaconf:
            return None
    new = _TEMPLATES[fix.kind].format(atom=atom, text=text, omegaconf=omegaconf)
    return Span(start, end, new)


def _offset(table: LineTable, position: Position) -> int | None:
    if not 1 <= position.row <= table.row_count:
        return None
    line = table.line(position.row)
    if position.column - 1 > len(line):
        return None
    return table.row_start(position.row) + position.column - 1


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return True


class _OmegaConfName:
    """How the module names `omegaconf.OmegaConf`, and the import to add when it does not."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._name: str | None = None
        self._import_after = -1  # row after which `from omegaconf import OmegaConf` goes
        self._needs_import = False

    def name(self) -> str:
        if self._name is None:
            self._name = self._find()
        return self._name

    def import_spans(self, table: LineTable) -> list[Span]:
        if not self._needs_import:
            return []
        line = "from omegaconf import OmegaConf\n"
        row = self._import_after
        if row <= 0:
            return [Span(0, 0, line, order=-1)]
        offset = table.row_end(row)
        prefix = "" if table.has_newline(row) else "\n"
        return [Span(offset, offset, prefix + line, order=-1)]

    def _find(self) -> str:
        try:
            tree = ast.parse(self.source)
        except (SyntaxError, ValueError):
            return ""
        names: dict[str, str] = {}
        modules: set[str] = set()
        bound: set[str] = set()
        last_import = 0
        for index, stmt in enumerate(tree.body):
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                record_import(stmt, "", names, modules)
                last_import = stmt.end_lineno or stmt.lineno
            elif index == 0 and _is_docstring(stmt):
                last_import = stmt.end_lineno or stmt.lineno
            for node in walk(stmt):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    bound.add(node.id)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    bound.add(node.name)
        for local, qualified in names.items():
            if qualified == "omegaconf.OmegaConf":
                return local
        for local, qualified in names.items():
            if qualified == "omegaconf" and local in modules:
                return f"{local}.OmegaConf"
        if "OmegaConf" in names or "OmegaConf" in bound:
            return ""  # the name means something else here
        self._needs_import = True
        self._import_after = last_import
        return "OmegaConf"


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def value_edits_beside(text: str, values: Sequence[ValueFix], edits: Sequence[Edit]) -> list[Edit]:
    """The value fixes' edits next to class `edits`, unless they touch them (then the
    classes win): what a fix action or a notebook fix writes for both at once."""
    if not values:
        return []
    found = value_edits(text, values)
    table = LineTable(text)

    def span(edit: Edit) -> Span:
        start = table.row_start(edit.location.row) + edit.location.column - 1
        end = table.row_start(edit.end_location.row) + edit.end_location.column - 1
        return Span(start, end, edit.content)

    if spans_overlap([span(e) for e in found], [span(e) for e in edits]):
        return []
    return found
