"""The analyzer: one analysis that the CLI, the language server and the fixes share.

text -> blocks -> module facts (indexed) -> scope -> classifier -> pickling methods
-> findings.
The Analyzer keeps, per file, the last good findings of each class, so a class
that does not parse while the user types keeps its diagnostics until it does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.bites import Bites
from ckpt_lsp.analysis.blocks import split_lines
from ckpt_lsp.analysis.call_sites import CallSites
from ckpt_lsp.analysis.classifier import AttrHazard, Classifier
from ckpt_lsp.analysis.conditions import describe_when
from ckpt_lsp.analysis.external import ExternalBases
from ckpt_lsp.analysis.facts import (
    ClassFacts,
    ModuleFacts,
    ParsedBlock,
    class_names_in,
    module_facts,
)
from ckpt_lsp.analysis.hparam_findings import HparamFindings
from ckpt_lsp.analysis.index import ProjectIndex, module_name_for
from ckpt_lsp.analysis.keras_classes import (
    custom_object_names,
    in_builtin_package,
    mentions_custom_objects,
)
from ckpt_lsp.analysis.keras_rules import KerasContext, keras_class, keras_findings
from ckpt_lsp.analysis.main_module import CODE as CKPT014
from ckpt_lsp.analysis.main_module import MainSave, main_module_saves
from ckpt_lsp.analysis.memo import BoundedCache
from ckpt_lsp.analysis.parsing import TextCaches
from ckpt_lsp.analysis.pickling_methods import excluded_attributes, is_excluded
from ckpt_lsp.analysis.scope import ScopeResolver
from ckpt_lsp.analysis.weights_only_rule import WeightsOnlyRule, module_writers
from ckpt_lsp.budget import OutOfTime
from ckpt_lsp.catalog import Catalog, Hazard, default_catalog
from ckpt_lsp.findings import FileError, Finding, Position, related_path
from ckpt_lsp.rules import RULES, SAVE_PATHS
from ckpt_lsp.suppress import is_suppressed

if TYPE_CHECKING:
    from ckpt_lsp.config import Config


_WORD = re.compile(r"[A-Za-z_]\w*")


# a module whose statements hold none of these has no checkpoint writer nor saving helper
_SAVING_WORDS = ("save", "ckpt", "Ckpt", "CKPT")


@dataclass
class FileResult:
    filename: str
    findings: list[Finding] = field(default_factory=list)
    error: FileError | None = None
    broken: list[tuple[int, int]] = field(default_factory=list)  # rows of blocks that do not parse
    broken_reasons: dict[int, str] = field(default_factory=dict)  # first row -> parse error


_PATH_ORDER = ("torch.save", "pickle", "spawn", "deepcopy")


def _join(words: Sequence[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def describe(attribute: str, hazard: Hazard) -> str:
    """The message: which attribute, what it holds, which save paths break and which do not."""
    subject = f"`self.{attribute}` holds {hazard.what}"
    if hazard.rule == "CKPT004":
        return (
            f"{subject}: pickle, torch.save(model) and deepcopy work, but weights-only "
            "formats fail (np.save(allow_pickle=False), safetensors, "
            "torch.load(weights_only=True))"
        )
    broken = [SAVE_PATHS[p] for p in _PATH_ORDER if p in hazard.breaks]
    fine = [SAVE_PATHS[p] for p in _PATH_ORDER if p not in hazard.breaks] + ["state_dict()"]
    verb = "fails" if len(broken) == 1 else "fail"
    fine_verb = "is" if len(fine) == 1 else "are"
    return f"{subject}: {_join(broken)} {verb}; {_join(fine)} {fine_verb} fine"


def _conditional(
    attribute: str, hazard: Hazard, filename: str
) -> tuple[str, tuple[tuple[str, int, int, str], ...]]:
    """A hazard that a factory returns for some arguments only: the message names the
    condition and the fix at its root; the related location is the `return` that makes it.
    One that `__init__` stores under tests on its parameters (no factory) names the
    condition only: the finding already sits where it is made."""
    path, row, column = hazard.origin
    when = describe_when(hazard.when)
    if not path:
        return describe(attribute, replace(hazard, what=f"{hazard.what} {when}")), ()
    same = not path or path == filename or Path(path).resolve() == Path(filename).resolve()
    where = filename if same else related_path(path, filename)
    at = "" if not row else f" (line {row})" if same else f" ({Path(path).name}:{row})"
    message = (
        f"{describe(attribute, replace(hazard, what=f'{hazard.what} {when}'))}; fix it at the "
        f"root: make what the factory returns there{at} a module-level function"
    )
    if not row:
        return message, ()
    return message, ((where, row, column, f"returned here {when}"),)


def _column(line: str, byte_offset: int) -> int:
    """1-based code-point column of a UTF-8 byte offset in a line (what ast reports)."""
    if line.isascii():
        return byte_offset + 1
    return len(line.encode("utf-8")[:byte_offset].decode("utf-8", "replace")) + 1


class Analyzer:
    """Analyzes files; holds the project index and the last good results per file."""

    def __init__(
        self,
        config: Config | None = None,
        index: ProjectIndex | None = None,
        catalog: Catalog | None = None,
        batch: bool = False,
    ) -> None:
        self.config = config
        # An editor re-analyzes a file per keystroke: the unchanged classes and blocks come
        # from this analyzer's caches. A batch run (`--check`) reads each text once, so it
        # keeps nothing, and ignores the warnings of the code it reads once per file.
        self.batch = batch
        self.memoize_classes = not batch
        self.text_caches = TextCaches.for_batch() if batch else TextCaches()
        self.index = index
        if index is not None:
            index.text_caches = self.text_caches
        base_catalog = catalog or default_catalog()
        extra = dict(getattr(config, "extend_hazards", {}) or {})
        self.catalog = base_catalog.extended(extra)
        self.extra_bases: tuple[str, ...] = tuple(getattr(config, "extend_model_bases", ()) or ())
        self._last_good: dict[str, dict[str, tuple[int, list[Finding]]]] = {}
        self.external = ExternalBases()
        # the save calls each finding's related locations name
        self.bites = Bites(index, self.text_caches)
        self._class_cache: BoundedCache[tuple[object, ...], tuple[int, list[Finding]]] = (
            BoundedCache(self._CACHE_ENTRIES, self._CACHE_CHARS)
        )
        self._words: BoundedCache[str, frozenset[str]] = BoundedCache(
            self._CACHE_ENTRIES, self._CACHE_CHARS
        )
        # per module: its text and the names it passes to Keras as custom objects
        self._custom: dict[str, tuple[str, frozenset[str]]] = {}
        # their union, and the index generation it was made at: a file of the project
        # with a Keras class asks for it, and no module changes between most asks
        self._custom_union: tuple[int, frozenset[str]] | None = None
        # the file whose classes _naming last mapped, and the map (one file at a time)
        self._naming_of: tuple[ModuleFacts, dict[str, set[str]]] | None = None
        self.weights_only = WeightsOnlyRule(index, config)

    # -- public ----------------------------------------------------------
    def analyze(self, filename: str, text: str, budget_s: float | None = None) -> FileResult:
        """Findings for one file's text; never raises for any input text.

        With a budget, the analysis checks the clock between classes and gives the file
        up ("skipped: too slow") once it is spent: cooperative, so no parse or cache is
        ever left half-done (a timer signal raised inside `compile` corrupts CPython's
        parser state)."""
        deadline = time.perf_counter() + budget_s if budget_s else None
        try:
            if not self.batch:
                return self._analyze(filename, text, deadline)
            with self.text_caches.quiet():
                return self._analyze(filename, text, deadline)
        except RecursionError:
            return FileResult(filename, error=FileError(filename, "too deeply nested to analyze"))
        except OutOfTime:
            message = f"skipped: too slow (over the {budget_s:g} s budget per file)"
            return FileResult(filename, error=FileError(filename, message))

    def forget(self, filename: str) -> None:
        self._last_good.pop(filename, None)

    # -- internals -------------------------------------------------------
    def _facts(self, filename: str, text: str) -> ModuleFacts:
        if self.index is not None:
            return self.index.add_source(filename, text)
        root = Path.cwd()
        return module_facts(filename, module_name_for(Path(filename), root), text, self.text_caches)

    def _analyze(self, filename: str, text: str, deadline: float | None = None) -> FileResult:
        facts = self._facts(filename, text)
        result = FileResult(filename)
        scope = ScopeResolver(self.index, self.extra_bases, self.external)
        classifier = Classifier(self.catalog, self.index, lambda f, c: scope.verdict(f, c).in_scope)
        classifier.deadline = deadline  # a class's call sites may take long to follow
        hparams = HparamFindings(
            scope, classifier, CallSites(self.index), self.config, self.weights_only.registers
        )
        by_class: dict[str, tuple[int, list[Finding]]] = {}
        checked = self._checked_classes(facts, scope)
        context = self._context_key(filename, facts) if self.memoize_classes else None
        unreadable: list[ParsedBlock] = []
        for cls in facts.classes.values():
            if cls.name not in checked:
                continue
            if deadline is not None and time.perf_counter() > deadline:
                raise OutOfTime
            if cls.failure:  # the methods that matter do not parse
                unreadable.append(cls.parsed)
                continue
            if self.memoize_classes:
                found = self._memoized(context, filename, facts, cls, scope, classifier, hparams)
            else:
                found = self._class_findings(filename, facts, cls, scope, classifier, hparams)
            by_class[cls.name] = (cls.row, found)
            result.findings.extend(found)
        self._keras(filename, facts, scope, checked, by_class, result)
        self._recover_broken(filename, [*facts.broken, *unreadable], result, by_class)
        result.findings.extend(self._main_module_findings(filename, facts, scope))
        result.findings.extend(self._checkpoint_writes(filename, facts, context, deadline))
        # after the memo: where a class bites depends on other files, not on its own text
        result.findings = self.bites.attach(facts, result.findings, self._shown(filename, facts))
        result.findings.sort(key=lambda f: (f.location, f.code, f.attribute or ""))
        return result

    def _keras(
        self,
        filename: str,
        facts: ModuleFacts,
        scope: ScopeResolver,
        checked: set[str],
        by_class: dict[str, tuple[int, list[Finding]]],
        result: FileResult,
    ) -> None:
        """CKPT012/CKPT013 for the custom Keras classes of the file (never pickle-checked:
        Keras pickles a model through its own config)."""
        if "keras" not in facts.text or in_builtin_package(facts):
            return  # load_model imports Keras' own classes by module path
        ctx: KerasContext | None = None
        for cls in facts.classes.values():
            if cls.name in checked:
                continue
            # whether it is a Keras class first: that reads its bases only, while a class's
            # failure reads its assigning methods, and most classes here are not Keras'
            kc = keras_class(facts, cls, scope)
            if kc is None or cls.failure:
                continue
            if ctx is None:
                ctx = self._keras_context(filename, facts)
            found = keras_findings(ctx, cls, kc)
            by_class[cls.name] = (cls.row, found)
            result.findings.extend(found)

    def _keras_context(self, filename: str, facts: ModuleFacts) -> KerasContext:
        config = self.config
        memo: list[frozenset[str]] = []

        def custom() -> frozenset[str]:
            if not memo:
                memo.append(self._custom_objects(facts))
            return memo[0]

        def severity(code: str) -> str:
            default = RULES[code].severity
            return config.severity_of(code, default) if config is not None else default

        def enabled(code: str) -> bool:
            return config is None or config.is_enabled(code, filename)

        return KerasContext(filename, facts, custom, enabled, severity, self.index)

    def _custom_objects(self, facts: ModuleFacts) -> frozenset[str]:
        """The names any module of the project passes to Keras as custom objects."""
        if self.index is None:
            return custom_object_names(facts)
        generation = self.index.generation
        if self._custom_union is not None and self._custom_union[0] == generation:
            return self._custom_union[1]
        union = self._project_custom_objects()
        self._custom_union = (generation, union)
        return union

    def _project_custom_objects(self) -> frozenset[str]:
        """Each module's custom-object names, read again only for a module whose text changed."""
        assert self.index is not None
        names: set[str] = set()
        for key, text in self.index.texts():
            known = self._custom.get(key)
            if known is None or known[0] is not text:
                found: frozenset[str] = frozenset()
                if mentions_custom_objects(text):
                    module = self.index.facts(key)
                    found = custom_object_names(module) if module is not None else found
                known = (text, found)
                self._custom[key] = known
            names |= known[1]
        return frozenset(names)

    def _checkpoint_writes(
        self,
        filename: str,
        facts: ModuleFacts,
        context: tuple[object, ...] | None,
        deadline: float | None,
    ) -> list[Finding]:
        """CKPT010: what checkpoint writers write, per block with a writer in its text (a
        module-level function, or any class: a trainer is not a model), memoized per block."""
        found: list[Finding] = []
        rule = self.weights_only
        if not rule.enabled(filename):
            return found  # `--ignore CKPT010`: no block is read for it
        if not self.text_caches.mentions(facts.blocks, facts.text, _SAVING_WORDS):
            return found  # most modules: no writer, no saving helper
        writers = module_writers(facts)
        for parsed in facts.blocks:
            block = parsed.block
            if block.kind not in ("def", "class") or not writers.examines(block.text):
                continue
            if deadline is not None and time.perf_counter() > deadline:
                raise OutOfTime
            if block.kind == "def":
                if parsed.failed:
                    continue
                key: tuple[object, ...] = (context, "CKPT010", block.text)
                row = block.start_row
                compute = lambda p=parsed: rule.function_findings(filename, facts, p, writers)  # noqa: E731
            else:
                cls = facts.classes.get(block.name)
                if cls is None or cls.parsed is not parsed:  # a method that does not parse
                    continue  # has no node: nothing is read from it
                # what else of the file the findings depend on: only a memo needs it
                related = self._related(facts, cls) if context is not None else ()
                key = (context, "CKPT010", cls.name, block.text, related)
                row = cls.row
                compute = lambda c=cls: rule.class_findings(filename, facts, c, writers)  # noqa: E731
            found.extend(self._memo_block(key, row, len(block.text), compute))
        return found

    def _memo_block(
        self, key: tuple[object, ...], row: int, size: int, compute: Callable[[], list[Finding]]
    ) -> list[Finding]:
        """A block's findings from the memo (shifted when lines above it moved it)."""
        if not self.memoize_classes or key[0] is None:
            return compute()
        cached = self._class_cache.get(key)
        if cached is not None:
            old_row, old_found = cached
            if old_row == row:
                return list(old_found)
            shifted = [_shift(f, row - old_row) for f in old_found]
            self._class_cache.put(key, (row, shifted), size)
            return shifted
        found = compute()
        self._class_cache.put(key, (row, found), size)
        return found

    def _memoized(
        self,
        context: tuple[object, ...] | None,
        filename: str,
        facts: ModuleFacts,
        cls: ClassFacts,
        scope: ScopeResolver,
        classifier: Classifier,
        hparams: HparamFindings | None = None,
    ) -> list[Finding]:
        # the name too: a block joined over a misread quote holds several classes
        key = (context, cls.name, cls.parsed.block.text, self._related(facts, cls))
        cached = self._class_cache.get(key)
        if cached is not None:
            old_row, old_found = cached
            if old_row == cls.row:
                return list(old_found)
            # a line added above moved the class: shift once and keep the shifted findings,
            # or every later keystroke would shift (and copy) them again
            shifted = [_shift(f, cls.row - old_row) for f in old_found]
            self._class_cache.put(key, (cls.row, shifted), len(cls.parsed.block.text))
            return shifted
        found = self._class_findings(filename, facts, cls, scope, classifier, hparams)
        self._class_cache.put(key, (cls.row, found), len(cls.parsed.block.text))
        return found

    def _class_findings(
        self,
        filename: str,
        facts: ModuleFacts,
        cls: ClassFacts,
        scope: ScopeResolver,
        classifier: Classifier,
        hparams: HparamFindings | None = None,
    ) -> list[Finding]:
        verdict = scope.verdict(facts, cls)
        if verdict.pickled_by_library and cls.method("__getstate__") is None:
            return []  # e.g. an Optimizer subclass: only defaults/state/param_groups are pickled
        excluded = excluded_attributes(facts, cls, verdict.project_bases)
        # What the class's own __getstate__ leaves out gets no finding (issue 2), even when
        # another attribute still fails: the oracle would blame both, but the user already
        # handled this one, and the per-attribute quick fix must clear its diagnostic.
        kept = [
            i
            for i in classifier.class_hazards(facts, cls)
            if not is_excluded(i.attribute, excluded)
        ]
        found: list[Finding] = []
        for item in kept:
            finding = self._finding(filename, cls, item, verdict.library_bases)
            if finding is not None:
                found.append(finding)
        if hparams is not None:
            # what save_hyperparameters() stores goes into every checkpoint (CKPT011)
            found.extend(hparams.of(filename, facts, cls))
        return found

    # A keystroke changes one class: the others' findings come from this cache, keyed by
    # everything they can depend on (see _context_key and _related).
    # Bounded by count and by the characters of class text the keys keep alive, so an
    # hour of keystrokes in one huge class stays bounded (benchmarks/soak_server.py).
    _CACHE_ENTRIES = 4096
    _CACHE_CHARS = 4_000_000

    def _context_key(self, filename: str, facts: ModuleFacts) -> tuple[object, ...]:
        """What every class of the file depends on besides its own text: the file's other
        blocks (imports, functions, module-level names), the rest of the project, config."""
        outside = "".join(p.block.text for p in facts.blocks if p.block.kind != "class")
        others = self.index.generation_without(filename) if self.index is not None else 0
        # a registration or an opted-out load in one class excuses values in the others
        return (filename, hash(outside), others, self.weights_only.module_sites(facts))

    @staticmethod
    def _shown(filename: str, facts: ModuleFacts) -> Callable[[str], str]:
        """How a related location's path is written: as the finding's own filename."""

        def show(path: str) -> str:
            return filename if path == facts.path else related_path(path, filename)

        return show

    def _words_of(self, text: str) -> frozenset[str]:
        words = self._words.get(text)
        if words is None:
            words = frozenset(_WORD.findall(text))
            self._words.put(text, words, len(text))
        return words

    def _naming(self, facts: ModuleFacts) -> dict[str, set[str]]:
        """class name -> the classes of the file whose text names it; made once per text of
        the file from the word sets kept by text (a keystroke recomputes one class's)."""
        made = self._naming_of
        if made is not None and made[0] is facts:
            return made[1]
        naming: dict[str, set[str]] = {}
        names = facts.class_names
        for other in facts.classes.values():
            for name in names.intersection(self._words_of(other.parsed.block.text)):
                naming.setdefault(name, set()).add(other.name)
        self._naming_of = (facts, naming)
        return naming

    def _related(self, facts: ModuleFacts, cls: ClassFacts) -> tuple[int, ...]:
        """Hashes of the other classes of the file this class names (bases, helpers)."""
        words = self._words_of(cls.parsed.block.text)
        # a set intersection walks the smaller side: neither quadratic over a file's
        # classes nor a Python loop over every word of every class
        names = set(words & facts.class_names)
        builders: tuple[int, ...] = ()
        if "save_hyperparameters" in words:
            # CKPT011 judges the calls that build the class, in other classes of the file and
            # in module-level code, and its message names their rows
            names.update(self._naming(facts).get(cls.name, ()))
            builders = self._building_blocks(facts, cls)
        return builders + tuple(
            hash(facts.classes[name].parsed.block.text)
            for name in sorted(names)
            if name != cls.name
        )

    @staticmethod
    def _building_blocks(facts: ModuleFacts, cls: ClassFacts) -> tuple[int, ...]:
        """Rows and text hashes of the file's blocks other than this class that name it."""
        out: list[int] = []
        for parsed in facts.blocks:
            block = parsed.block
            if parsed is not cls.parsed and cls.name in block.text:
                out += (block.start_row, hash(block.text))
        return tuple(out)

    @staticmethod
    def _checked_classes(facts: ModuleFacts, scope: ScopeResolver) -> set[str]:
        """Models, and the plain classes of this file that models derive from (mixins):
        a mixin's attributes are pickled with every model that inherits them."""
        checked: set[str] = set()
        for cls in facts.classes.values():
            verdict = scope.verdict(facts, cls)
            if not verdict.in_scope:
                continue
            checked.add(cls.name)
            for base_facts, base_cls in verdict.project_bases:
                if base_facts.path == facts.path:
                    checked.add(base_cls.name)
        return checked

    def _main_module_findings(
        self, filename: str, facts: ModuleFacts, scope: ScopeResolver
    ) -> list[Finding]:
        config = self.config
        if config is not None and not config.is_enabled(CKPT014, filename):
            return []
        notebook = facts.module == "__main__" or filename.endswith(".ipynb")
        saves = main_module_saves(facts, notebook, lambda c: scope.verdict(facts, c).in_scope)
        found = (_main_module_finding(filename, facts, save, config) for save in saves)
        return [f for f in found if f is not None]

    def _recover_broken(
        self,
        filename: str,
        broken: list[ParsedBlock],
        result: FileResult,
        by_class: dict[str, tuple[int, list[Finding]]],
    ) -> None:
        previous = self._last_good.get(filename, {})
        for parsed in sorted(broken, key=lambda p: p.block.start_row):
            block = parsed.block
            result.broken.append((block.start_row, block.end_row))
            result.broken_reasons[block.start_row] = parsed.error
            lines = split_lines(block.text)
            for name in class_names_in(block.text):
                if name in by_class or name not in previous:
                    continue
                new_row = next(
                    (
                        block.start_row + i
                        for i, line in enumerate(lines)
                        if line.startswith(f"class {name}")
                    ),
                    None,
                )
                if new_row is None:
                    continue
                old_row, old_findings = previous[name]
                # lines of the class may have been deleted: keep what still lies in it
                shifted = [
                    moved
                    for moved in (_shift(f, new_row - old_row) for f in old_findings)
                    if moved.end_location.row <= block.end_row
                    and moved.statement_rows[1] <= block.end_row
                ]
                by_class[name] = (new_row, shifted)
                result.findings.extend(shifted)
        self._last_good[filename] = by_class

    def _finding(
        self,
        filename: str,
        cls: ClassFacts,
        item: AttrHazard,
        bases: tuple[str, ...],
    ) -> Finding | None:
        hazard = item.hazard
        code = hazard.rule
        config = self.config
        if config is not None and not config.is_enabled(code, filename):
            return None
        parsed: ParsedBlock = item.parsed
        offset = parsed.row_offset
        lines = split_lines(parsed.block.text)
        stmt = item.assignment.statement
        first, last = stmt.lineno, stmt.end_lineno or stmt.lineno
        if is_suppressed(code, lines[first - 1 : last]):
            return None
        target = item.assignment.target
        start_row = getattr(target, "lineno", first)
        end_row = getattr(target, "end_lineno", None) or start_row
        start_line = lines[start_row - 1] if start_row - 1 < len(lines) else ""
        end_line = lines[end_row - 1] if end_row - 1 < len(lines) else ""
        start_col = _column(start_line, getattr(target, "col_offset", 0))
        end_col = _column(end_line, getattr(target, "end_col_offset", 0) or 0)
        rule = RULES[code]
        severity = config.severity_of(code, rule.severity) if config is not None else rule.severity
        message = describe(item.attribute, hazard)
        related: tuple[tuple[str, int, int, str], ...] = ()
        if hazard.when:
            message, related = _conditional(item.attribute, hazard, filename)
            severity = config.conditional_severity if config is not None else "warning"
        return Finding(
            code=code,
            message=message,
            related=related,
            severity=severity,
            filename=filename,
            location=Position(start_row + offset, start_col),
            end_location=Position(end_row + offset, end_col),
            class_name=cls.name,
            attribute=item.attribute,
            what=hazard.what,
            breaks=tuple(p for p in _PATH_ORDER if p in hazard.breaks) or tuple(hazard.breaks),
            fine=hazard.fine,
            url=rule.url,
            class_line=cls.row,
            statement_rows=(first + offset, last + offset),
            bases=bases,
            fix_mode=hazard.fix,
        )


def _main_module_finding(
    filename: str, facts: ModuleFacts, found: MainSave, config: Config | None
) -> Finding | None:
    """CKPT014 at the save call, pointing at the class (see analysis/main_module.py)."""
    lines = split_lines(facts.text)
    stmt, call, offset = found.statement, found.call, found.row_offset
    first, last = stmt.lineno + offset, (stmt.end_lineno or stmt.lineno) + offset
    if is_suppressed(CKPT014, lines[first - 1 : last]):
        return None
    row, end_row = call.lineno + offset, (call.end_lineno or call.lineno) + offset
    column = _column(lines[row - 1], call.col_offset)
    end_column = _column(lines[end_row - 1], call.end_col_offset or 0)
    rule = RULES[CKPT014]
    cls = facts.classes[found.class_name]
    where = "this notebook" if facts.module == "__main__" else "this script"
    save = "pickles" if found.save.path == "pickle" else "saves"
    message = (
        f"`{cls.name}` is defined in `__main__` ({where}) and {found.save.call}() {save} the "
        f"model whole: loading it from any other program fails (Can't get attribute "
        f"'{cls.name}' on <module '__main__'>); move `{cls.name}` to an importable module or "
        "save its state_dict()"
    )
    related = ((filename, cls.row, 1, f"`{cls.name}` is defined here"),)  # a top-level class
    return Finding(
        code=CKPT014,
        message=message,
        severity=config.severity_of(CKPT014, rule.severity) if config else rule.severity,
        filename=filename,
        location=Position(row, column),
        end_location=Position(end_row, end_column),
        class_name=cls.name,
        attribute="",
        what="a class defined in __main__",
        breaks=(found.save.path,),
        fine=("deepcopy",),
        url=rule.url,
        class_line=cls.row,
        statement_rows=(first, last),
        fix_mode="none",
        related=related,
    )


def _shift(finding: Finding, rows: int) -> Finding:
    if rows == 0:
        return finding

    return replace(
        finding,
        location=Position(finding.location.row + rows, finding.location.column),
        end_location=Position(finding.end_location.row + rows, finding.end_location.column),
        # 0 means "none" (a checkpoint value in a module function has no class)
        class_line=finding.class_line + rows if finding.class_line else 0,
        statement_rows=(
            (finding.statement_rows[0] + rows, finding.statement_rows[1] + rows)
            if finding.statement_rows[0]
            else finding.statement_rows
        ),
    )


def analyze_text(
    text: str, filename: str = "<memory>.py", config: Config | None = None
) -> list[Finding]:
    """Findings for one module on its own (no project index): for tests and embedding."""
    return Analyzer(config).analyze(filename, text).findings


__all__ = ["Analyzer", "FileResult", "analyze_text", "describe"]
