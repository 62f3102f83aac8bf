"""CKPT011: the findings on the `__init__` parameters a Lightning class stores as hparams.

A class deriving from a LightningModule or LightningDataModule (through project classes
too) whose `__init__` calls `self.save_hyperparameters(...)` puts the stored arguments in
every checkpoint. A finding sits on the parameter in the signature; it says what fails
(Lightning drops a value pickle refuses, or the default weights-only `torch.load` refuses
it) and the fix: leave it out with `ignore=` and pass it again to `load_from_checkpoint`.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.blocks import split_lines
from ckpt_lsp.analysis.call_sites import CallSite, CallSites
from ckpt_lsp.analysis.classifier import Classifier
from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, dotted_name, super_init_call
from ckpt_lsp.analysis.hparam_values import HparamProblem, Parameter, judge, namespace_problem
from ckpt_lsp.analysis.hparams import (
    ClassValue,
    SavedHparams,
    calls_super_init,
    converted_before,
    default_of,
    guarded_rebinds,
    inherited_hparams,
    init_parameters,
    iterated_parameters,
    lightning_bases,
    member_read_parameters,
    none_fills,
    overwritten_after,
    rebound_before,
    rebound_once,
    saved_hparams,
)
from ckpt_lsp.analysis.load_safety import LoadSafety
from ckpt_lsp.analysis.names import qualify
from ckpt_lsp.analysis.scope import ScopeResolver, ScopeVerdict
from ckpt_lsp.analysis.site_flow import builds
from ckpt_lsp.analysis.value_context import ValueContext
from ckpt_lsp.findings import Finding, Position, related_path
from ckpt_lsp.rules import RULES
from ckpt_lsp.suppress import is_suppressed
from ckpt_lsp.weights_only import Refusal

if TYPE_CHECKING:
    from ckpt_lsp.config import Config

CODE = "CKPT011"
# whether the project registers one of the globals as safe, itself or as one the classes (the
# class judged, then its bases) list for its loader (WeightsOnlyRule.registers)
Registers = Callable[
    [ModuleFacts, frozenset[str], tuple[tuple[ModuleFacts, ClassFacts], ...]], bool
]
# fix_mode of a finding whose fix is adding the parameter to `ignore=`, or dropping its
# name from `save_hyperparameters("a", "b")` (fix/hparams_ignore.py writes both; it is
# fix.policy.IGNORE_HPARAM, named here as the analysis never imports the fix package)
FIX_IGNORE = "hparams-ignore"
# what a rebinding in `__init__` gives whatever it is passed: numpy's constructors convert any
# argument (`np.mean(t)` of a tensor is a tensor, so other numpy calls are not taken)
_CONVERTING = frozenset(
    {"numpy.asarray", "numpy.array", "numpy.asanyarray", "numpy.float32", "numpy.float64"}
    | {"numpy.int64", "numpy.int32"}
    | {"pathlib.Path", "pathlib.PurePath", "pandas.Timestamp", "pandas.to_datetime"}
)


class HparamFindings:
    """Findings of one analysis run (it shares the run's scope, classifier and index)."""

    def __init__(
        self,
        scope: ScopeResolver,
        classifier: Classifier,
        sites: CallSites,
        config: Config | None,
        registers: Registers | None = None,
    ) -> None:
        self.scope = scope
        self.classifier = classifier
        self.sites = sites
        self.config = config
        # a value the default load refuses loads wherever the project loads it registered
        self.registers = registers

    def of(self, filename: str, facts: ModuleFacts, cls: ClassFacts) -> list[Finding]:
        config = self.config
        if config is not None and not config.is_enabled(CODE, filename):
            return []
        verdict = self.scope.verdict(facts, cls)
        if not lightning_bases().intersection(verdict.library_bases):
            return []
        init = cls.method("__init__")
        if init is None:
            return []
        class_value = _class_values(cls, verdict.project_bases)
        saved = saved_hparams(init, class_value) or _inherited(
            init, verdict.project_bases, class_value
        )
        if saved is None:
            return []
        params = init_parameters(init)
        positional = len(init.args.posonlyargs) + len(init.args.args) - 1
        stored = [saved.container] if saved.container is not None else list(saved.stored)
        if not stored:
            return []
        index = self.classifier.index
        sites = [
            s
            for s in self.sites.of(facts, cls)
            if builds(s, index, init, self.classifier.site_flows)
        ]
        # the locals Lightning reads are those at the call: a base's `save_hyperparameters()`
        # reads the subclass's as they are at its `super().__init__(...)`
        anchor = saved.call if not saved.owner else super_init_call(init)
        fills = none_fills(init, anchor) if anchor is not None else {}
        converted = (
            converted_before(init, anchor, lambda name: qualify(name, facts))
            if anchor is not None
            else {}
        )
        rebound = (
            rebound_before(init, anchor) - fills.keys() - converted.keys()
            if anchor is not None
            else set()
        )
        containers = iterated_parameters(init) | member_read_parameters(init)
        iterated = containers - rebound if not saved.owner else frozenset()
        found: list[Finding] = []
        contexts: dict[int, ValueContext] = {}  # the sites' contexts, shared by the parameters
        rebinds = rebound_once(init, anchor) if anchor is not None else {}
        guarded = guarded_rebinds(init, anchor) if anchor is not None else {}
        # a base's call stores at the subclass's `super().__init__(...)`: stores after it win
        overwritten = overwritten_after(init, anchor) if anchor is not None else {}
        for arg in stored:
            if arg is None:
                continue
            if arg.arg in overwritten:  # `self.hparams.x = ...` after the call: what is saved
                problem = _overwritten_problem(
                    arg.arg, overwritten[arg.arg], facts, self.classifier
                )
                finding = (
                    self._finding(filename, facts, cls, init, saved, arg, problem, verdict)
                    if problem is not None
                    else None
                )
                found += [finding] if finding is not None else []
                continue
            if arg.arg in rebound:  # `x = np.asarray(x)`: what it becomes, whatever was passed
                problem = _rebound_problem(arg.arg, rebinds.get(arg.arg), facts, self.classifier)
                if problem is None and arg.arg in guarded:  # `if x is not None: x = ...`
                    given = _given(arg.arg, default_of(init, arg.arg), sites, positional, params)
                    problem = (
                        _rebound_problem(arg.arg, guarded[arg.arg], facts, self.classifier)
                        if given
                        else None
                    )
                finding = (
                    self._finding(filename, facts, cls, init, saved, arg, problem, verdict)
                    if problem is not None
                    else None
                )
                found += [finding] if finding is not None else []
                continue
            default = fills.get(arg.arg) or default_of(init, arg.arg)
            parameter = Parameter(
                arg, default, positional, params, arg.arg in iterated, converted.get(arg.arg)
            )
            problem = judge(parameter, facts, sites, self.classifier, contexts)
            if problem is not None and saved.container is not None and _namespace(problem):
                # Lightning stores a Namespace's entries (vars), not the object
                problem = namespace_problem(parameter, sites, self.classifier)
            if problem is None:
                continue
            finding = self._finding(filename, facts, cls, init, saved, arg, problem, verdict)
            if finding is not None:
                found.append(finding)
        return found

    def _finding(
        self,
        filename: str,
        facts: ModuleFacts,
        cls: ClassFacts,
        init: ast.FunctionDef | ast.AsyncFunctionDef,
        saved: SavedHparams,
        arg: ast.arg,
        problem: HparamProblem,
        verdict: ScopeVerdict,
    ) -> Finding | None:
        classes = ((facts, cls), *verdict.project_bases)
        if self.registers is not None and self.registers(facts, problem.registrations, classes):
            return None
        parsed = cls.parsed
        lines = split_lines(parsed.block.text)
        row = arg.lineno
        # the parameter's lines, its default's included: where `# ckpt: ignore[CKPT011]` goes
        default = default_of(init, arg.arg)
        last = max(arg.end_lineno or row, getattr(default, "end_lineno", None) or row)
        if is_suppressed(CODE, lines[row - 1 : last]):
            return None
        line = lines[row - 1] if row - 1 < len(lines) else ""
        column = _column(line, arg.col_offset)
        rule = RULES[CODE]
        config = self.config
        severity = config.severity_of(CODE, rule.severity) if config is not None else rule.severity
        offset = parsed.row_offset
        related: tuple[tuple[str, int, int, str], ...] = ()
        site = problem.site
        if site is not None:
            related = (
                (
                    related_path(site.facts.path, filename),
                    site.row,
                    site.call.col_offset + 1,
                    f"`{cls.name}` is built here with {problem.what}",
                ),
            )
        fixable = (
            saved.container is None
            and not saved.owner
            and (not saved.named or len(saved.stored) > 1)
        )
        return Finding(
            code=CODE,
            message=describe(arg.arg, problem, saved, default is not None, site, filename),
            severity=severity,
            filename=filename,
            location=Position(row + offset, column),
            end_location=Position(row + offset, column + len(arg.arg)),
            class_name=cls.name,
            attribute=arg.arg,
            what=problem.what,
            breaks=("pickle",) if problem.dropped else ("weights_only",),
            fine=(),
            url=rule.url,
            class_line=cls.row,
            statement_rows=(row + offset, last + offset),
            bases=verdict.library_bases,
            fix_mode=FIX_IGNORE if fixable else "none",
            related=related,
        )


def _rebound_problem(
    name: str, value: ast.expr | None, facts: ModuleFacts, classifier: Classifier
) -> HparamProblem | None:
    """A parameter `__init__` rebinds before storing it, to a value the default load refuses
    whatever the caller passed (`np.asarray(...)` is a numpy array)."""
    if (
        not isinstance(value, ast.Call)
        or qualify(dotted_name(value.func), facts) not in _CONVERTING
    ):
        return None
    refused = LoadSafety(facts, classifier.index).kind_of(value, {})
    if refused is None:
        return None
    shown = f"`{name} = {ast.unparse(value)}`"
    shown = shown if len(shown) <= 60 else f"`{name} = ...`"
    return HparamProblem(
        Refusal.of(refused).within(after=f" ({shown} before it is stored)"), dropped=False
    )


def _given(
    name: str,
    default: ast.expr | None,
    sites: list[CallSite],
    positional: int,
    params: list[ast.arg],
) -> bool:
    """Whether the parameter gets a value other than `None`: a default, or one a call of the
    class passes as written."""
    if default is not None and not _is_none(default):
        return True
    for site in sites:
        passed = site.argument(params, positional, name)
        if isinstance(passed, ast.expr) and not _is_none(passed):
            return True
    return False


def _is_none(expr: ast.expr) -> bool:
    return isinstance(expr, ast.Constant) and expr.value is None


def _overwritten_problem(
    name: str, value: ast.expr | None, facts: ModuleFacts, classifier: Classifier
) -> HparamProblem | None:
    """An entry `__init__` sets in `self.hparams` after storing it, to a value the default
    load refuses (`np.ceil(x / step) * step`); None for a plain or unknown value."""
    refused = LoadSafety(facts, classifier.index).kind_of(value, {}) if value else None
    if refused is None:
        return None
    after = f" (`self.hparams.{name} = ...` after it is stored)"
    return HparamProblem(Refusal.of(refused).within(after=after), dropped=False)


def _namespace(problem: HparamProblem) -> bool:
    return "Namespace" in problem.what


def _inherited(
    init: ast.FunctionDef | ast.AsyncFunctionDef,
    bases: tuple[tuple[ModuleFacts, ClassFacts], ...],
    class_value: ClassValue,
) -> SavedHparams | None:
    """A base's `save_hyperparameters()` reached through `super().__init__(...)` chains."""
    func = init
    for _, base in bases:
        if not calls_super_init(func):
            return None
        base_init = base.method("__init__")
        if base_init is None:
            continue
        saved = saved_hparams(base_init, class_value)
        if saved is not None:
            return inherited_hparams(init, saved, base.name, class_value)
        func = base_init
    return None


def _class_values(cls: ClassFacts, bases: tuple[tuple[ModuleFacts, ClassFacts], ...]) -> ClassValue:
    """What `self.X` reads at the class level of the class built, else of its project bases
    (`hparams_ignore = ("scaler",)`); None when none of them sets it there."""

    def value(name: str) -> ast.expr | None:
        for owner in (cls, *(base for _, base in bases)):
            for stmt in reversed(owner.class_level()):
                if isinstance(stmt, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == name for t in stmt.targets
                ):
                    return stmt.value
        return None

    return value


def describe(
    name: str,
    problem: HparamProblem,
    saved: SavedHparams,
    has_default: bool,
    site: CallSite | None,
    filename: str,
) -> str:
    """The message: what the stored value is, what fails, and the fix."""
    where = ""
    if site is not None:
        same = Path(site.facts.path).resolve() == Path(filename).resolve()
        place = f"line {site.row}" if same else f"{Path(site.facts.path).name}:{site.row}"
        where = f" (as built at {place})"
    by_entries = _namespace(problem) or problem.what.startswith("a dict holding")
    if saved.container is not None:
        how = "entry by entry" if by_entries else "whole"
        subject = f"`save_hyperparameters({name})` stores {problem.what}{where} {how}"
    elif saved.owner:
        subject = (
            f"`{saved.owner}.__init__`'s `save_hyperparameters()` also stores `{name}` (it "
            f"collects every `__init__` up the `super()` chain), which holds {problem.what}{where}"
        )
    else:
        subject = f"`save_hyperparameters()` stores `{name}`, which holds {problem.what}{where}"
    if problem.copy_fails:
        failure = "save_hyperparameters() deep-copies it and raises, so the class cannot be built"
    elif problem.dropped:
        later = (
            "`load_from_checkpoint` silently rebuilds it from its default"
            if has_default
            else "`load_from_checkpoint` then fails with TypeError for the missing argument"
        )
        failure = f"it cannot be pickled, so Lightning drops it when `fit` starts and {later}"
    else:
        failure = (
            "the default `torch.load` (weights_only=True since torch 2.6) refuses it, so "
            "`load_from_checkpoint`, `Trainer.fit(ckpt_path=...)` and the tuner fail with "
            "UnpicklingError"
        )
    if saved.container is not None and _namespace(problem):
        fix = f"make that entry of `{name}` plain data (`str(...)`, a number) before it is stored"
    elif saved.container is not None and by_entries:
        fix = (
            f"make that entry of `{name}` plain data (`enum_to_str=True` for Enum members, "
            "`str(...)` for paths) before it is stored"
        )
    elif saved.container is not None:
        fix = f"store plain data instead (`OmegaConf.to_container({name})`, a dict of plain values)"
    elif saved.owner:
        fix = f"add `{name}` to the `ignore=` of `{saved.owner}`'s `save_hyperparameters()`"
    elif saved.named:
        fix = f"leave `{name}` out of the names `save_hyperparameters` is given"
    else:
        fix = f"add `{name}` to `save_hyperparameters(ignore=[...])`"
    if saved.container is None:
        fix += f" and pass `{name}` to `load_from_checkpoint`"
    return f"{subject}: {failure}; {fix}"


def _column(line: str, byte_offset: int) -> int:
    if line.isascii():
        return byte_offset + 1
    return len(line.encode("utf-8")[:byte_offset].decode("utf-8", "replace")) + 1
