"""CKPT010 `weights-only`: findings for the values checkpoint writers write that the default
`torch.load` refuses, in module-level functions and in methods of every class.

The analyzer calls this per block (a `def` block, a class block), keyed like its class memo;
the project's loads with `weights_only=False` and its safe-global registrations are read
only when a block has something to report, once per module text.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.blocks import split_lines
from ckpt_lsp.analysis.checkpoint_writes import WRITER_WORDS, BadValue, bad_values
from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, ParsedBlock
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.analysis.load_safety import LoadSafety
from ckpt_lsp.analysis.load_sites import (
    WORDS,
    LoadSites,
    file_names,
    load_sites,
    matches,
    registered,
)
from ckpt_lsp.analysis.local_flow import LITERAL, UNKNOWN, LocalFlow, Possible, collapse
from ckpt_lsp.analysis.memo import BoundedCache
from ckpt_lsp.findings import Finding, Position
from ckpt_lsp.rules import RULES
from ckpt_lsp.suppress import is_suppressed
from ckpt_lsp.weights_only import Refused, weights_only_catalog

if TYPE_CHECKING:
    from ckpt_lsp.config import Config

CODE = "CKPT010"
_WRITTEN_BY = {
    "torch.save": "torch.save",
    "Fabric.save": "Fabric.save",
    "Accelerator.save": "Accelerator.save",
    "on_save_checkpoint": "the Lightning checkpoint (on_save_checkpoint)",
}


def has_writer(text: str) -> bool:
    """Cheap test on a block's text before anything is parsed."""
    return any(word in text for word in WRITER_WORDS)


@dataclass
class _Found:
    """A bad value with where it lives (the block it was read from)."""

    bad: BadValue
    parsed: ParsedBlock
    class_name: str | None
    save_rows: tuple[int, int]


@dataclass
class WeightsOnlyRule:
    """Finds CKPT010 in one module; holds the per-text cache of load sites."""

    index: ProjectIndex | None
    config: Config | None = None
    _sites: BoundedCache[tuple[str, str], LoadSites] = field(
        default_factory=lambda: BoundedCache(2048, 8_000_000)
    )

    def function_findings(
        self, filename: str, facts: ModuleFacts, parsed: ParsedBlock
    ) -> list[Finding]:
        """CKPT010 findings of a module-level function's block."""
        tree = parsed.tree
        if tree is None or not self._enabled(filename):
            return []
        safety = LoadSafety(facts, self.index)
        found = [
            _Found(bad, parsed, None, _rows(bad))
            for stmt in tree.body
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
            for bad in bad_values(stmt, safety)
        ]
        return self._findings(filename, facts, safety, found)

    def class_findings(self, filename: str, facts: ModuleFacts, cls: ClassFacts) -> list[Finding]:
        """CKPT010 findings of the methods of a class that write checkpoints."""
        if not self._enabled(filename):
            return []
        methods = [m for word in WRITER_WORDS for m in cls.methods_mentioning(word)]
        if not methods:
            return []
        safety = LoadSafety(facts, self.index)
        known: list[dict[str, Refused | None]] = []

        def self_env() -> dict[str, Refused | None]:
            if not known:  # once per class, and only when a method writes a checkpoint
                known.append({"self": safety.of_class(facts, cls), **self_attributes(cls, safety)})
            return known[0]

        found: list[_Found] = []
        for method in dict.fromkeys(methods):
            for bad in bad_values(method, safety, self_env, cls):
                found.append(_Found(bad, cls.parsed, cls.name, _rows(bad)))
        return self._findings(filename, facts, safety, found)

    # -- internals -------------------------------------------------------
    def _enabled(self, filename: str) -> bool:
        return self.config is None or self.config.is_enabled(CODE, filename)

    def _findings(
        self, filename: str, facts: ModuleFacts, safety: LoadSafety, found: list[_Found]
    ) -> list[Finding]:
        if not found:
            return []
        sites = self._project_sites(facts)
        out = []
        for item in found:
            if self._loaded_anyway(item.bad, facts, sites):
                continue
            finding = self._finding(filename, item)
            if finding is not None:
                out.append(finding)
        return out

    def _project_sites(self, facts: ModuleFacts) -> list[LoadSites]:
        """The load sites of every module that names the words (this one included)."""
        paths = set(self.index.paths_containing(WORDS)) if self.index is not None else set()
        sites = []
        for path in sorted(paths | {facts.path}):
            other = (
                facts if path == facts.path else (self.index.facts(path) if self.index else None)
            )
            if other is None or not any(word in other.text for word in WORDS):
                continue
            key = (other.path, other.text)
            cached = self._sites.get(key)
            if cached is None:
                cached = load_sites(other)
                self._sites.put(key, cached, len(other.text))
            sites.append(cached)
        return sites

    @staticmethod
    def _loaded_anyway(bad: BadValue, facts: ModuleFacts, sites: list[LoadSites]) -> bool:
        catalog = weights_only_catalog()
        types: set[str] = set()
        if bad.refused.kind not in catalog.unregistrable:
            types = set(catalog.registrations.get(bad.refused.kind, ()))
            if bad.refused.type_name:
                types = {bad.refused.type_name}
        names = file_names(bad.save) if bad.save is not None else frozenset()
        return any(
            registered(frozenset(types), site) or matches(facts.path, names, site) for site in sites
        )

    def _finding(self, filename: str, item: _Found) -> Finding | None:
        parsed, value = item.parsed, item.bad.value
        lines = split_lines(parsed.block.text)
        first, last = item.save_rows
        if is_suppressed(CODE, lines[first - 1 : last]):
            return None
        offset = parsed.row_offset
        end_row = value.end_lineno or value.lineno
        start = Position(value.lineno + offset, _column(lines, value.lineno, value.col_offset))
        end = Position(end_row + offset, _column(lines, end_row, value.end_col_offset or 0))
        rule = RULES[CODE]
        config = self.config
        severity = config.severity_of(CODE, rule.severity) if config is not None else rule.severity
        refused = item.bad.refused
        return Finding(
            code=CODE,
            message=describe(item.bad, ast.get_source_segment(parsed.block.text, value) or ""),
            severity=severity,
            filename=filename,
            location=start,
            end_location=end,
            class_name=item.class_name,
            attribute=item.bad.key,
            what=refused.what,
            breaks=("weights_only",),
            fine=(),
            url=rule.url,
            statement_rows=(first + offset, last + offset),
            fix_mode=refused.fix or "none",
        )


def describe(bad: BadValue, source: str) -> str:
    """The message: what is written, what it is, that the default load refuses it, the fix."""
    refused = bad.refused
    shown = (
        source if len(source) <= 40 and "\n" not in source else source[:37].split("\n")[0] + "..."
    )
    subject = f'checkpoint["{bad.key}"]' if bad.key is not None else f"`{shown}`"
    by = _WRITTEN_BY.get(bad.writer, bad.writer)
    return (
        f"{subject} is {refused.what} ({by}): the default `torch.load` (weights_only=True "
        f"since torch 2.6) refuses it; save {refused.loadable} instead"
    )


def self_attributes(cls: ClassFacts, safety: LoadSafety) -> dict[str, Refused | None]:
    """What each `self.x` holds, from every assignment in the class's methods."""
    possible: dict[str, set[Possible]] = {}
    for method in cls.assigning_methods():
        flow = LocalFlow(safety).run(method)
        for stmt in ast.walk(method):
            if not isinstance(stmt, ast.Assign) or id(stmt) not in flow.before:
                continue
            for target in stmt.targets:
                if (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                ):
                    judged = flow.judge(stmt.value, stmt)
                    if isinstance(stmt.value, ast.Constant):
                        value: Possible = LITERAL
                    else:
                        value = judged if judged is not None else UNKNOWN
                    possible.setdefault(f"self.{target.attr}", set()).add(value)
    return {name: collapse(values) for name, values in possible.items()}


def _rows(bad: BadValue) -> tuple[int, int]:
    value = bad.value
    return value.lineno, value.end_lineno or value.lineno


def _column(lines: list[str], row: int, byte_offset: int) -> int:
    line = lines[row - 1] if 0 < row <= len(lines) else ""
    if line.isascii():
        return byte_offset + 1
    return len(line.encode("utf-8")[:byte_offset].decode("utf-8", "replace")) + 1
