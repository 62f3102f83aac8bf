"""Conditional attributes: a hazard that `__init__` stores only under tests on its parameters.

`if weight_norm: self.conv = weight_norm(self.conv)` holds a parametrized module only when
the caller passes `weight_norm=True`. A class is built by callers the project may not show (a
config file, a user's script), so its own defaults decide nothing: the finding names the
condition and takes the conditional severity. A call that builds a plain helper class with
constants decides it as it decides a factory's (conditions.py). An attribute that a hazard
reaches on every path (an unguarded store, an `else` that stores one too, a store in another
method) stays certain.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Union

from ckpt_lsp.analysis.assignments import OPAQUE, Assignment
from ckpt_lsp.analysis.nodes import walk

if TYPE_CHECKING:
    from typing import TypeGuard  # Python 3.10+; annotations are never evaluated here
from ckpt_lsp.analysis.conditions import (
    Subjects,
    conditions_on,
    opaque,
    parameters,
    undecided,
)
from ckpt_lsp.analysis.facts import ClassFacts
from ckpt_lsp.catalog import Hazard

FunctionNode = Union[ast.FunctionDef, ast.AsyncFunctionDef]  # `|` of types needs 3.10
# one side of an `if`: the test as written without its `not`s, and whether it holds
Literal = tuple[str, bool]


def guarded(
    cls: ClassFacts,
    stored: Sequence[tuple[Assignment, Hazard]],
    also: Sequence[Assignment] = (),
) -> list[Hazard]:
    """The hazards of `stored` (each with the store that makes it), those that `__init__`
    makes under tests on its parameters only given their `when`; `also` are the other
    stores of a hazard (no finding of their own) that count as paths."""
    # a factory's conditions name its parameters: no call of this class decides them
    out = [_foreign(hazard) for _, hazard in stored]
    init = cls.method("__init__")
    if init is None or not any(a.env.guards for a, _ in stored):
        return out
    by_attribute: dict[str, list[int]] = {}
    for i, (assignment, _) in enumerate(stored):
        by_attribute.setdefault(assignment.attribute, []).append(i)
    facts = _InitFacts.of(init)
    for attribute, rows in by_attribute.items():
        stores = [stored[i][0] for i in rows] + [a for a in also if a.attribute == attribute]
        subjects = [_subjects(cls, facts, a) for a in stores]
        conditions = [conditions_on(a.env.guards, s) if s else () for a, s in zip(stores, subjects)]
        if not all(conditions) or _every_path(stores, subjects):
            continue
        for i, own in zip(rows, conditions):  # `also` come last: zip leaves them out
            made = out[i].when or ((),)
            out[i] = replace(out[i], when=tuple(conj + own for conj in made))
    return out


def _foreign(hazard: Hazard) -> Hazard:
    if not hazard.when:
        return hazard
    return replace(hazard, when=tuple(tuple(opaque(c) for c in conj) for conj in hazard.when))


@dataclass(frozen=True)
class _InitFacts:
    """What `__init__`'s own statements say, read in one walk: its parameters, the rows
    where it binds a name again, and the attributes it sets once, from a parameter."""

    node: FunctionNode
    params: Subjects
    rebinds: dict[str, int]  # name -> the first row of a statement that binds it again
    aliases: tuple[tuple[int, str, tuple[str, int, object]], ...]  # (row, "self.x", subject)
    calls: dict[str, list[ast.Call]]  # method name -> its calls `self.<name>(...)`

    @classmethod
    def of(cls, init: FunctionNode) -> _InitFacts:
        self_name = init.args.args[0].arg if init.args.args else ""
        params = parameters(init, skip_first=True)
        rebinds: dict[str, int] = {}
        stores: Counter[str] = Counter()
        calls: dict[str, list[ast.Call]] = {}
        for stmt in init.body:
            for n in walk(stmt):
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                    rebinds.setdefault(n.id, stmt.lineno)
                elif _is_self_store(n, self_name):
                    stores[n.attr] += 1
                elif (
                    isinstance(n, ast.Call)
                    and isinstance(n.func, ast.Attribute)
                    and isinstance(n.func.value, ast.Name)
                    and n.func.value.id == self_name
                ):
                    calls.setdefault(n.func.attr, []).append(n)
        aliases = []
        for stmt in init.body:
            if not (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Name)):
                continue
            name = stmt.value.id
            if name not in params or rebinds.get(name, stmt.lineno + 1) <= stmt.lineno:
                continue
            for target in stmt.targets:
                # an attribute set more than once holds what the caller passed at times only
                if _is_self_store(target, self_name) and stores[target.attr] == 1:
                    key = f"{self_name}.{target.attr}"
                    aliases.append((stmt.lineno, key, params[name]))
        return cls(init, params, rebinds, tuple(aliases), calls)

    def rebound(self, name: str, before: int) -> bool:
        """Whether `__init__` binds `name` again in a statement before row `before`."""
        return self.rebinds.get(name, before) < before

    def aliases_before(self, row: int) -> Subjects:
        return {key: subject for at, key, subject in self.aliases if at < row}


def _is_self_store(node: ast.AST, self_name: str) -> TypeGuard[ast.Attribute]:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name)
        and node.value.id == self_name
    )


def _subjects(cls: ClassFacts, init: _InitFacts, assignment: Assignment) -> Subjects:
    """What the tests above a plain store may name of `__init__`'s parameters: in
    `__init__`, its parameters and the attributes it set from them (`self.use_bn = use_bn`);
    in a method `__init__` calls once, on its own, the parameters that call passes them to.
    Empty for a store into a container, or in a method called from elsewhere too."""
    if assignment.mutation or not assignment.env.guards:
        return {}
    if assignment.method == "__init__":
        out = _unchanged(init.params, init.node, assignment)
        out.update(init.aliases_before(assignment.statement.lineno))
        return out
    method = cls.method(assignment.method)
    call = _only_call(cls, init, assignment.method)
    if method is None or call is None:
        return {}
    passed: Subjects = {}
    for name, (_, index, _) in parameters(method, skip_first=True).items():
        arg = _argument(call.value, name, index)
        if (
            isinstance(arg, ast.Name)
            and arg.id in init.params
            and not init.rebound(arg.id, call.lineno)
        ):
            passed[name] = init.params[arg.id]
    out = _unchanged(passed, method, assignment)
    out.update(init.aliases_before(call.lineno))
    return out


def _unchanged(subjects: Subjects, func: FunctionNode, assignment: Assignment) -> Subjects:
    """A parameter bound again before the store (`act = act.lower()`) is not what the
    caller passed: its tests still hold the finding back, but no call decides them."""
    defaults = _defaults(func)
    bindings = assignment.env.bindings
    return {
        name: subject if _same(bindings.get(name), defaults.get(name)) else undecided(name)
        for name, subject in subjects.items()
    }


def _same(binding: object, default: ast.expr | None) -> bool:
    """Whether a name still holds its parameter: unknown, or its default (by place: a class
    cut in pieces may parse a method twice)."""
    if binding is OPAQUE:
        return True
    return (
        isinstance(binding, ast.expr)
        and default is not None
        and (binding.lineno, binding.col_offset) == (default.lineno, default.col_offset)
    )


def _only_call(cls: ClassFacts, init: _InitFacts, name: str) -> ast.Expr | None:
    """`self.<name>(...)` as a statement of `__init__`'s own, its only call in the class."""
    calls = init.calls.get(name, [])
    if len(calls) != 1:
        return None
    if any(m.name not in (name, "__init__") for m in cls.methods_mentioning(name)):
        return None
    return next(
        (s for s in init.node.body if isinstance(s, ast.Expr) and s.value is calls[0]), None
    )


def _argument(call: ast.expr, name: str, index: int) -> ast.expr | None:
    if not isinstance(call, ast.Call):
        return None
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    if any(isinstance(a, ast.Starred) for a in call.args[: index + 1]):
        return None
    return call.args[index] if 0 <= index < len(call.args) else None


def _defaults(func: FunctionNode) -> dict[str, ast.expr]:
    args = func.args
    positional = args.posonlyargs + args.args
    out = {
        a.arg: d for a, d in zip(positional[len(positional) - len(args.defaults) :], args.defaults)
    }
    out.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None})
    return out


def _every_path(stores: list[Assignment], subjects: list[Subjects]) -> bool:
    """Whether the stores' guards together cover every path: `if a: x; else: y`, or an
    `if`/`elif`/`else` chain, each branch storing a hazard. Sides of the same test resolve
    away (`a and b`, `a and not b` -> `a`) until nothing is left, or nothing more merges."""
    if len(stores) < 2:
        return False  # one store under a test on a parameter: not every path
    dumps: dict[int, str] = {}  # the stores of one `if` chain share its tests
    clauses = {
        frozenset(_literal(test, taken, s, dumps) for test, taken in a.env.guards)
        for a, s in zip(stores, subjects)
    }
    while frozenset() not in clauses:
        merged = _resolve_one(clauses)
        if merged is None:
            return False
        clauses = merged
    return True


def _resolve_one(clauses: set[frozenset[Literal]]) -> set[frozenset[Literal]] | None:
    for clause in clauses:
        for text, taken in clause:
            other = (clause - {(text, taken)}) | {(text, not taken)}
            if other in clauses:
                return (clauses - {clause, other}) | {clause - {(text, taken)}}
    return None


def _literal(test: ast.expr, taken: bool, subjects: Subjects, dumps: dict[int, str]) -> Literal:
    """A test without its `not`s, its subjects named by the parameter they stand for (a
    method's `wn` and `__init__`'s `weight_norm` are one test)."""
    while isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        test, taken = test.operand, not taken
    named = _named(test, subjects)
    if named is None and isinstance(test, ast.Compare) and len(test.ops) == 1:
        left = _named(test.left, subjects)
        if left is not None:
            ops = type(test.ops[0]).__name__
            return f"{left} {ops} {_dump(test.comparators[0], dumps)}", taken
    return named if named is not None else _dump(test, dumps), taken


def _dump(node: ast.expr, dumps: dict[int, str]) -> str:
    text = dumps.get(id(node))
    if text is None:
        text = dumps[id(node)] = ast.dump(node)
    return text


def _named(expr: ast.expr, subjects: Subjects) -> str | None:
    if isinstance(expr, ast.Name):
        key = expr.id
    elif isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
        key = f"{expr.value.id}.{expr.attr}"
    else:
        return None
    found = subjects.get(key)
    return f"param:{found[0]}" if found is not None else None
