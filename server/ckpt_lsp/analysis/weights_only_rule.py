"""CKPT010 `weights-only`: findings for the values checkpoint writers write that the default
`torch.load` refuses, in module-level functions and in methods of every class.

The analyzer calls this per block (a `def` block, a class block), keyed like its class memo;
the project's loads with `weights_only=False` and its safe-global registrations are read
only when a block has something to report, once per module text.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.blocks import split_lines
from ckpt_lsp.analysis.checkpoint_writes import (
    SAVER_METHOD,
    SAVER_NAME,
    BadValue,
    bad_values,
    judged,
    writes_of,
)
from ckpt_lsp.analysis.class_text import FunctionNode
from ckpt_lsp.analysis.demand import demand
from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, ParsedBlock
from ckpt_lsp.analysis.hparam_reads import attribute_dict
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.analysis.load_safety import LoadSafety
from ckpt_lsp.analysis.load_sites import (
    LOADS,
    WORDS,
    LoadSites,
    file_names,
    listed_types,
    listing_methods,
    load_sites,
    matches,
    registered,
)
from ckpt_lsp.analysis.local_flow import (
    LITERAL,
    NUMBER,
    NUMBER_MARK,
    UNKNOWN,
    LocalFlow,
    Possible,
    collapse,
    number_literal,
)
from ckpt_lsp.analysis.memo import BoundedCache
from ckpt_lsp.analysis.nodes import walk
from ckpt_lsp.analysis.self_items import self_items
from ckpt_lsp.findings import Finding, Position
from ckpt_lsp.rules import RULES
from ckpt_lsp.suppress import is_suppressed
from ckpt_lsp.weights_only import Refused, registration_names

if TYPE_CHECKING:
    from ckpt_lsp.config import Config

CODE = "CKPT010"
_WRITTEN_BY = {
    "torch.save": "torch.save",
    "Fabric.save": "Fabric.save",
    "Accelerator.save": "Accelerator.save",
    "on_save_checkpoint": "the Lightning checkpoint (on_save_checkpoint)",
}


@dataclass(frozen=True)
class ModuleWriters:
    """What a block's text must hold to be parsed for CKPT010, per module: the spellings of
    its writers (`torch.save(` through the module's own alias of torch, `fabric.save(`,
    `accelerator.save(`, the Lightning hook), and the names of its saving helpers."""

    tokens: tuple[str, ...]  # lower case
    savers: frozenset[str] = frozenset()
    # lower-case local names of imported modules: `utils.save_on_master(` through an
    # imported module's saving helper
    modules: frozenset[str] = frozenset()

    def writes(self, text: str) -> bool:
        if "save" not in text:
            return False
        if "on_save_checkpoint" in text:
            return True
        if "save(" not in text:
            return False
        lower = text.lower()
        return any(token in lower for token in self.tokens)

    def examines(self, text: str) -> bool:
        """Cheap test on a block's text before anything is parsed."""
        if self.writes(text):
            return True
        if any(f"{name}(" in text for name in self.savers if name in text):
            return True
        if not self.modules:
            return False
        lower = text.lower()
        if "save" not in lower and "ckpt" not in lower:
            return False
        # from each `save`/`ckpt` word called, back to the name before its dot: an
        # alternation of every imported name, compiled per module, cost more than the rest
        for call in _SAVER_WORD.finditer(lower):
            start = call.start()
            head = _DOTTED_TAIL.search(lower, max(0, start - 256), start)
            if head is not None and head.group(1) in self.modules:
                return True
        return False


_TOKENS = ("torch.save(", "fabric.save(", "accelerator.save(")
_SAVER_WORD = re.compile(r"(?:save|ckpt)\w*\(")  # on lower-case text
_DOTTED_TAIL = re.compile(r"\b(\w+)\.\w*\Z")  # `utils.save_on_` before `master(`


def module_writers(facts: ModuleFacts) -> ModuleWriters:
    tokens = set(_TOKENS)
    for local, qualified in facts.imports.items():
        if qualified in ("torch", "torch.serialization"):
            tokens.add(f"{local.lower()}.save(")
        elif qualified in ("torch.save", "torch.serialization.save"):
            tokens.add(f"{local.lower()}(")
    base = ModuleWriters(tuple(sorted(tokens)))
    savers = {
        p.block.name
        for p in facts.blocks
        if p.block.kind == "def" and p.block.name and base.writes(p.block.text)
    }
    savers.update(local for local in facts.imports if SAVER_NAME.search(local))
    for parsed in facts.blocks:  # `trainer.save_checkpoint(...)` of a class that writes
        if parsed.block.kind == "class" and base.writes(parsed.block.text):
            savers.update(m for m in _METHOD.findall(parsed.block.text) if SAVER_METHOD.search(m))
    modules = frozenset(local.lower() for local in facts.imports if "." not in local)
    return ModuleWriters(base.tokens, frozenset(savers), modules)


_METHOD = re.compile(r"\bdef\s+(\w+)\s*\(")


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
    # path -> (its text, whether it loads checkpoints, whether it may opt out)
    _texts: dict[str, tuple[str, bool, bool]] = field(default_factory=dict)
    # the index generation, and registered name -> where it is defined ("" when not found)
    _definitions: tuple[int, dict[str, str]] = field(default_factory=lambda: (-1, {}))

    def function_findings(
        self, filename: str, facts: ModuleFacts, parsed: ParsedBlock, writers: ModuleWriters
    ) -> list[Finding]:
        """CKPT010 findings of a module-level function's block."""
        tree = parsed.tree
        if tree is None or not self.enabled(filename):
            return []
        safety = LoadSafety(facts, self.index)
        found = [
            _Found(bad, parsed, None, _rows(bad))
            for stmt in tree.body
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
            for bad in bad_values(stmt, safety, savers=writers.savers)
        ]
        return self._findings(filename, facts, safety, found)

    def class_findings(
        self, filename: str, facts: ModuleFacts, cls: ClassFacts, writers: ModuleWriters
    ) -> list[Finding]:
        """CKPT010 findings of the methods of a class that write checkpoints (or call one of
        its methods that does)."""
        if not self.enabled(filename):
            return []
        lines = split_lines(cls.parsed.block.text)
        candidates = [
            *cls.methods_mentioning("save("),
            *cls.methods_mentioning("on_save_checkpoint"),
        ]
        writing = [m for m in dict.fromkeys(candidates) if writers.writes(_text_of(lines, m))]
        if not writing:
            return []
        own = frozenset(m.name for m in writing)
        callers = [m for name in own for m in cls.methods_mentioning(f"self.{name}(")]
        methods = [*writing, *callers]
        savers = writers.savers | own
        safety = LoadSafety(facts, self.index)
        plans = [writes_of(m, safety, cls, savers) for m in dict.fromkeys(methods)]
        writes = [w for w in plans if w is not None]
        if not writes:
            return []
        # the attributes the writing methods read, and of those the ones their written
        # values may be made of (every one when `self` itself may be): the only ones judged
        texts = [_text_of(lines, m) for m in methods]
        needed = [w.needs.self_attributes() for w in writes]
        wanted = frozenset(name for text in texts for name in _SELF_ATTRIBUTE.findall(text))
        keyed = frozenset(name for text in texts for name in _SELF_KEYED.findall(text))
        if all(n is not None for n in needed):
            made_of = frozenset().union(*(n for n in needed if n is not None))
            wanted, keyed = wanted & made_of, keyed & made_of
        env = dict(self_attributes(cls, safety, wanted, keyed))
        if any(_SELF_VALUE.search(text) for text in texts):
            env["self"] = safety.of_class(facts, cls)  # `torch.save(self, ...)`: the class
        for name in wanted & _HPARAMS:  # a LightningModule's own `self.hparams`
            env.setdefault(f"self.{name}", attribute_dict(safety, (facts, cls)))
        found = [
            _Found(bad, cls.parsed, cls.name, _rows(bad)) for w in writes for bad in judged(w, env)
        ]
        return self._findings(filename, facts, safety, found)

    def enabled(self, filename: str) -> bool:
        """Whether CKPT010 is selected for the file."""
        return self.config is None or self.config.is_enabled(CODE, filename)

    # -- internals -------------------------------------------------------
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
        paths: set[str] = set()
        if self.index is not None:
            for path, opts_out in self._loading_modules():
                self.index.note_read(path)
                if opts_out:
                    paths.add(path)
        sites = []
        for path in sorted(paths | {facts.path}):
            other = (
                facts if path == facts.path else (self.index.facts(path) if self.index else None)
            )
            cached = self.module_sites(other) if other is not None else None
            if cached is not None:
                sites.append(cached)
        return sites

    def _loading_modules(self) -> list[tuple[str, bool]]:
        """(path, may opt out) of the project's modules that load checkpoints: each
        text is searched once (the index keeps the same string while the file is unchanged)."""
        assert self.index is not None
        found: list[tuple[str, bool]] = []
        for path, text in self.index.texts():
            known = self._texts.get(path)
            if known is None or known[0] is not text:
                loads = any(word in text for word in LOADS)
                known = (text, loads, loads and any(word in text for word in WORDS))
                self._texts[path] = known
            if known[1]:
                found.append((path, known[2]))
        return found

    def registers(
        self,
        facts: ModuleFacts,
        types: frozenset[str],
        classes: tuple[tuple[ModuleFacts, ClassFacts], ...] = (),
    ) -> bool:
        """Whether the project registers one of the globals as safe (CKPT011 asks this of the
        types an hparam holds: the checkpoint's every load is the project's), itself or as
        one the class lists (`checkpoint_safe_globals()` handed to the project's loader)."""
        if not types:
            return False
        sites = self._project_sites(facts)
        methods = listing_methods(sites) if classes else frozenset()
        listed = listed_types(list(classes), methods) if methods else frozenset()
        return self._registered(types, sites, listed)

    def _registered(
        self, types: frozenset[str], sites: list[LoadSites], listed: frozenset[str] = frozenset()
    ) -> bool:
        """Whether one of the types is registered: as written, else through the modules
        that re-export them (`from pkg.components import Method` names
        `pkg.components.kde.Method`)."""
        safe = listed.union(*(s.safe_types for s in sites))
        if not types or not safe:
            return False
        if registered(types, LoadSites("", (), safe)):
            return True
        return registered(types, LoadSites("", (), self._defined(safe)))

    def _defined(self, names: frozenset[str]) -> frozenset[str]:
        """The names with where each is defined, as far as the index can follow imports."""
        index = self.index
        if index is None:
            return names
        if self._definitions[0] != index.generation:
            self._definitions = (index.generation, {})
        known = self._definitions[1]
        out = set(names)
        for name in names:
            if name not in known:
                found = index.resolve_member(name)
                known[name] = f"{found[0].module}.{found[1]}" if found else ""
            if known[name]:
                out.add(known[name])
        return frozenset(out)

    def module_sites(self, facts: ModuleFacts) -> LoadSites | None:
        """What the module itself says about loading (its findings' memo depends on it: a
        registration may sit in another class of the same file)."""
        if not any(word in facts.text for word in WORDS):
            return None
        key = (facts.path, facts.text)
        cached = self._sites.get(key)
        if cached is None:
            cached = load_sites(facts)
            self._sites.put(key, cached, len(facts.text))
        return cached

    def _loaded_anyway(self, bad: BadValue, facts: ModuleFacts, sites: list[LoadSites]) -> bool:
        names = file_names(bad.save) if bad.save is not None else frozenset()
        if any(matches(facts.path, names, site) for site in sites):
            return True
        return self._registered(registration_names(bad.refused), sites)

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
            message=describe(item.bad, _segment(lines, value)),
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


def self_attributes(
    cls: ClassFacts,
    safety: LoadSafety,
    wanted: frozenset[str] | None = None,
    keyed: frozenset[str] = frozenset(),
) -> dict[str, Refused | None]:
    """What each `self.x` holds (of `wanted` names only, when given), from every assignment
    in the class's methods; only methods whose text assigns a wanted name are walked. And
    what each constant key of the `keyed` dicts holds (`self.stats["mean"]`)."""
    possible: dict[str, set[Possible]] = {}
    for method in _assigning(cls, wanted):
        stores = [
            (stmt, target)
            for stmt in walk(method)
            if isinstance(stmt, ast.Assign)
            for target in stmt.targets
            if isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Name)
            and target.value.id == "self"
            and (wanted is None or target.attr in wanted)
        ]
        # only the stored values are judged: the flow evaluates what they can depend on
        flow = LocalFlow(safety).run(method, needs=demand(method, [s.value for s, _ in stores]))
        for stmt, target in stores:
            if id(stmt) not in flow.before:  # in a nested function: not this method's
                continue
            refused = flow.judge(stmt.value, stmt)
            if number_literal(stmt.value):  # `self.scale = 2.0`: numpy times it stays
                value: Possible = NUMBER
            elif isinstance(stmt.value, ast.Constant):
                value = LITERAL
            else:
                value = refused if refused is not None else UNKNOWN
            possible.setdefault(f"self.{target.attr}", set()).add(value)
    found = {name: collapse(values) for name, values in possible.items()}
    for name, values in possible.items():
        if all(v is NUMBER for v in values) and not _grown(cls, name[len("self.") :]):
            found[NUMBER_MARK + name] = None
    if keyed:  # `self.stats["mean"]`: what the class's keyed stores give each key
        found.update(self_items(cls, safety, keyed))
    return found


def _grown(cls: ClassFacts, attr: str) -> bool:
    """`self.total += loss` somewhere: the attribute may stop being a Python number."""
    for method in cls.methods_mentioning(f"self.{attr}"):
        for node in walk(method):
            if (
                isinstance(node, ast.AugAssign)
                and isinstance(node.target, ast.Attribute)
                and node.target.attr == attr
                and isinstance(node.target.value, ast.Name)
                and node.target.value.id == "self"
                and not number_literal(node.value)
            ):
                return True
    return False


def _assigning(cls: ClassFacts, wanted: frozenset[str] | None) -> list[FunctionNode]:
    if wanted is None:
        return cls.assigning_methods()
    found: dict[int, FunctionNode] = {}
    for name in wanted:
        for spelled in (f"self.{name} =", f"self.{name}="):  # methods that assign it
            for method in cls.methods_mentioning(spelled):
                found.setdefault(id(method), method)
    return list(found.values())


_HPARAMS = frozenset({"hparams", "hparams_initial"})
_SELF_ATTRIBUTE = re.compile(r"\bself\.(\w+)")
_SELF_KEYED = re.compile(r"\bself\.(\w+)(?:\s*\[|\.get\()")  # read by key
_SELF_VALUE = re.compile(r"[(,:=\[]\s*self\s*[,)}\]]")  # `self` handed on as a value


def _text_of(lines: list[str], node: ast.AST) -> str:
    """The source of a method (rows of the class block)."""
    first = getattr(node, "lineno", 1)
    last = getattr(node, "end_lineno", None) or first
    return "".join(lines[first - 1 : last])


def _segment(lines: list[str], node: ast.expr) -> str:
    """The source of an expression, from the block's lines (not the whole block re-split)."""
    first, last = node.lineno, node.end_lineno or node.lineno
    text = "".join(lines[first - 1 : last])
    return ast.get_source_segment(text, _moved(node, first - 1)) or ""


def _moved(node: ast.expr, rows: int) -> ast.expr:
    moved = ast.Name(id="_")
    moved.lineno, moved.col_offset = node.lineno - rows, node.col_offset
    moved.end_lineno = (node.end_lineno or node.lineno) - rows
    moved.end_col_offset = node.end_col_offset
    return moved


def _rows(bad: BadValue) -> tuple[int, int]:
    value = bad.value
    return value.lineno, value.end_lineno or value.lineno


def _column(lines: list[str], row: int, byte_offset: int) -> int:
    line = lines[row - 1] if 0 < row <= len(lines) else ""
    if line.isascii():
        return byte_offset + 1
    return len(line.encode("utf-8")[:byte_offset].decode("utf-8", "replace")) + 1
