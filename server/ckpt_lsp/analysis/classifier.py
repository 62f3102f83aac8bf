"""The classifier: which attributes of a class hold a hazard, and why.

Each self-assignment (see assignments.py) is classified in its own context
(value_context.py); a hazard is kept when it persists until pickling (persistence.py).
Factories and classes of the project are classified once per run and bounded in depth.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, replace

from ckpt_lsp.analysis.assignments import (
    MODULE_HOOKS,
    Assignment,
    class_assignments,
    is_generator,
    property_stores,
    registers_hook,
    walk_function,
)
from ckpt_lsp.analysis.conditions import Condition, decide, guard_conditions, opaque
from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, ParsedBlock
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.analysis.init_conditions import guarded
from ckpt_lsp.analysis.nodes import walk
from ckpt_lsp.analysis.persistence import persists
from ckpt_lsp.analysis.value_context import MAX_DEPTH, ValueContext
from ckpt_lsp.analysis.value_hazards import generator_hazard
from ckpt_lsp.catalog import ALL_PATHS, Catalog, Hazard

_HOOK_DICTS = frozenset(MODULE_HOOKS.values())


def called_after(cls: ClassFacts, assignment: Assignment) -> bool:
    """Whether the method that stores `self.x` calls `self.x(...)` after the store: a value
    that becomes a hazard when called (np.vectorize with otypes) is one by then. Calls in
    other methods may never run before pickling, so they do not count."""
    method = cls.method(assignment.method)
    if method is None or not method.args.args:
        return False
    self_name = method.args.args[0].arg
    after = getattr(assignment.statement, "end_lineno", None) or assignment.statement.lineno
    for node in walk(method):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == assignment.attribute
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == self_name
            and node.lineno > after
        ):
            return True
    return False


@dataclass(frozen=True)
class AttrHazard:
    attribute: str
    hazard: Hazard
    assignment: Assignment
    parsed: ParsedBlock


class Classifier:
    """Classifies values in the context of one module, with the project index for the rest."""

    def __init__(
        self,
        catalog: Catalog,
        index: ProjectIndex | None,
        scope_check: Callable[[ModuleFacts, ClassFacts], bool] | None = None,
    ) -> None:
        self.catalog = catalog
        self.index = index
        # callable (facts, cls) -> bool: whether a project class is a model (then not nested)
        self.scope_check = scope_check
        self._factory_memo: dict[tuple[str, str], Hazard | None] = {}
        self._instance_memo: dict[tuple[str, str], tuple[Hazard, ...]] = {}
        self._active: set[tuple[str, str]] = set()
        # the flows of the functions that construct classes (site_flow.flow_before), shared by
        # every class of the file whose call sites sit in one function
        self.site_flows: dict[tuple[object, ...], object] = {}
        # when the file's analysis budget runs out (time.perf_counter()), None: no budget
        self.deadline: float | None = None

    # -- per class ---------------------------------------------------------
    def class_hazards(
        self, facts: ModuleFacts, cls: ClassFacts, depth: int = 0
    ) -> list[AttrHazard]:
        attr_hazards: dict[str, Hazard] = {}
        attr_types: dict[str, str] = {}
        found: list[AttrHazard] = []
        made: list[Assignment] = []  # the store behind each of `found`, before a mutation's
        also: list[Assignment] = []
        assignments = class_assignments(facts, cls)
        first: dict[str, Assignment] = {}
        for assignment in assignments:
            if not assignment.mutation:
                first.setdefault(assignment.attribute, assignment)
        for assignment in assignments:
            if assignment.value is None:
                continue
            ctx = ValueContext(self, facts, cls, assignment.env, attr_hazards, depth, attr_types)
            hazard = ctx.classify(assignment.value)
            if hazard is not None and not persists(cls, assignment, ctx):
                hazard = None
            if hazard is not None and hazard.when_called and not called_after(cls, assignment):
                hazard = None
            if hazard is None:
                if not assignment.mutation:
                    kind = ctx.type_of(assignment.value)
                    if kind:
                        attr_types.setdefault(assignment.attribute, kind)
                continue
            made.append(assignment)
            if assignment.mutation:
                if assignment.attribute in attr_hazards:
                    also.append(made.pop())  # no finding of its own, but a path all the same
                    continue
                row = assignment.statement.lineno + cls.parsed.row_offset
                hooked = registers_hook(assignment.statement)
                what = f"an object that later receives {hazard.what} (at line {row})"
                if assignment.attribute in _HOOK_DICTS:  # self.register_forward_hook(fn)
                    what = f"{hazard.what}, registered as a hook at line {row}"
                hazard = replace(
                    hazard,
                    what=what,
                    # a hook lives in the module's hook dicts: dropping the attribute from
                    # the state does not remove it, so __getstate__ is no fix
                    fix="none" if hooked else hazard.fix,
                    returns="",
                    safe_when=(),
                    elements="",
                )
                assignment = first.get(assignment.attribute, assignment)
            attr_hazards.setdefault(assignment.attribute, hazard)
            found.append(AttrHazard(assignment.attribute, hazard, assignment, cls.parsed))
            for stored in property_stores(cls, assignment):
                attr_hazards.setdefault(stored.attribute, hazard)
                found.append(AttrHazard(stored.attribute, hazard, stored, cls.parsed))
                made.append(stored)
        hazards = guarded(cls, [(a, item.hazard) for a, item in zip(made, found)], also)
        return [
            item if h is item.hazard else replace(item, hazard=h) for item, h in zip(found, hazards)
        ]

    # -- project functions and classes -------------------------------------
    def factory_hazard(
        self,
        facts: ModuleFacts,
        func: ast.FunctionDef | ast.AsyncFunctionDef,
        label: str,
        depth: int,
        call: ast.Call | None = None,
    ) -> Hazard | None:
        """What calling the function returns; a hazard under conditions on its arguments is
        decided by the call's constants where it passes them (see conditions.py)."""
        key = (facts.path, f"{label}:{func.lineno}")
        hazard = self._once(
            self._factory_memo, key, depth, lambda: self._factory(facts, func, label, depth)
        )
        if hazard is None or not hazard.when:
            return hazard
        left = decide(hazard.when, call)
        if left is None:
            return None
        return replace(hazard, when=left)

    def _once(
        self,
        memo: dict[tuple[str, str], Hazard | None],
        key: tuple[str, str],
        depth: int,
        compute: Callable[[], Hazard | None],
    ) -> Hazard | None:
        """Memoized, bounded in depth, and None on a cycle (a factory calling itself)."""
        if key in memo:
            return memo[key]
        if key in self._active or depth > MAX_DEPTH:
            return None
        self._active.add(key)
        try:
            result = compute()
        finally:
            self._active.discard(key)
        memo[key] = result
        return result

    def _factory(
        self,
        facts: ModuleFacts,
        func: ast.FunctionDef | ast.AsyncFunctionDef,
        label: str,
        depth: int,
    ) -> Hazard | None:
        if is_generator(func):
            if isinstance(func, ast.AsyncFunctionDef):
                return generator_hazard(f"an async generator from `{label}()`")
            return generator_hazard(f"a generator from `{label}()`")
        if isinstance(func, ast.AsyncFunctionDef):
            return Hazard("CKPT006", f"a coroutine from `{label}()`", ALL_PATHS)
        _, returns = walk_function(func, facts.package, None)
        skip_first = label.startswith("self.") or any(
            isinstance(d, ast.Name) and d.id == "classmethod" for d in func.decorator_list
        )
        first: Hazard | None = None
        when: list[tuple[Condition, ...]] = []
        for value, env in returns:
            ctx = ValueContext(self, facts, None, env, {}, depth + 1)
            inner = ctx.classify(value)
            if inner is None:
                continue
            inner = replace(inner, what=f"{inner.what} (returned by `{label}()`)")
            conditions = guard_conditions(func, env.guards, skip_first)
            if not conditions and not inner.when:
                return inner  # returned whatever the arguments
            if first is None:
                # the root is the innermost return: a nested factory's keeps its own
                origin = inner.origin if inner.origin[1] else _origin(facts, func, value)
                first = replace(inner, origin=origin)
            # a nested factory's own conditions stay with it (they name its parameters)
            when.extend(
                tuple(opaque(c) for c in conj) + conditions for conj in (inner.when or ((),))
            )
        if first is None:
            return None
        return replace(first, when=tuple(when))

    def instance_hazard(
        self, facts: ModuleFacts, cls: ClassFacts, depth: int, call: ast.Call | None = None
    ) -> Hazard | None:
        """An instance of a project class that is not itself a model but holds a hazard;
        one its `__init__` stores for some arguments only is decided by the call's
        constants, as a factory's (see init_conditions.py): the first attribute the call
        leaves a hazard in, a certain one before a conditional one."""
        key = (facts.path, f"{cls.name}:{cls.row}")
        if key not in self._instance_memo and key not in self._active and depth <= MAX_DEPTH:
            self._active.add(key)
            try:
                self._instance_memo[key] = self._instance(facts, cls, depth)
            finally:
                self._active.discard(key)
        open_: list[Hazard] = []
        for hazard in self._instance_memo.get(key, ()):
            left = decide(hazard.when, call)
            if left == ():
                return replace(hazard, when=())
            if left is not None:
                open_.append(replace(hazard, when=left))
        return open_[0] if open_ else None

    def _instance(self, facts: ModuleFacts, cls: ClassFacts, depth: int) -> tuple[Hazard, ...]:
        from ckpt_lsp.analysis.pickling_methods import excluded_attributes, is_excluded

        if self.scope_check is not None and self.scope_check(facts, cls):
            return ()  # a model: it gets findings of its own
        excluded = excluded_attributes(facts, cls, ())
        out: list[Hazard] = []
        for item in self.class_hazards(facts, cls, depth + 1):
            if is_excluded(item.attribute, excluded) or item.hazard.rule == "CKPT004":
                continue
            hazard = item.hazard
            what = f"a `{cls.name}` instance whose `{item.attribute}` holds {hazard.what}"
            out.append(
                Hazard(hazard.rule, what, hazard.breaks, when=hazard.when, origin=hazard.origin)
            )
            if not hazard.when:
                break  # certain: what follows is never reported
        return tuple(out)


def _origin(
    facts: ModuleFacts, func: ast.FunctionDef | ast.AsyncFunctionDef, value: ast.expr
) -> tuple[str, int, int]:
    """(path, row, column) of a returned value in a module-level function or a method:
    rows in a block's tree count from the block's first row. Column is 1-based."""
    for parsed in facts.blocks:
        if parsed.pending or parsed.tree is None:
            continue
        for node in parsed.tree.body:
            owners = [node, *node.body] if isinstance(node, ast.ClassDef) else [node]
            if any(owner is func for owner in owners):
                row = value.lineno + parsed.row_offset
                return (facts.path, row, value.col_offset + 1)
    return (facts.path, 0, 0)
