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
from dataclasses import replace

from ckpt_lsp.analysis.assignments import OPAQUE, Assignment
from ckpt_lsp.analysis.conditions import (
    Subjects,
    conditions_on,
    opaque,
    parameters,
    undecided,
)
from ckpt_lsp.analysis.facts import ClassFacts
from ckpt_lsp.catalog import Hazard

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef
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
    for attribute, rows in by_attribute.items():
        stores = [stored[i][0] for i in rows] + [a for a in also if a.attribute == attribute]
        subjects = [_subjects(cls, init, a) for a in stores]
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


def _subjects(cls: ClassFacts, init: FunctionNode, assignment: Assignment) -> Subjects:
    """What the tests above a plain store may name of `__init__`'s parameters: in
    `__init__`, its parameters and the attributes it set from them (`self.use_bn = use_bn`);
    in a method `__init__` calls once, on its own, the parameters that call passes them to.
    Empty for a store into a container, or in a method called from elsewhere too."""
    if assignment.mutation or not assignment.env.guards:
        return {}
    own = parameters(init, skip_first=True)
    if assignment.method == "__init__":
        out = _unchanged(own, init, assignment)
        out.update(_self_aliases(init, own, assignment.statement.lineno))
        return out
    method = cls.method(assignment.method)
    call = _only_call(cls, init, assignment.method)
    if method is None or call is None:
        return {}
    passed: Subjects = {}
    for name, (_, index, _) in parameters(method, skip_first=True).items():
        arg = _argument(call.value, name, index)
        if isinstance(arg, ast.Name) and arg.id in own and not _rebound(init, arg.id, call):
            passed[name] = own[arg.id]
    out = _unchanged(passed, method, assignment)
    out.update(_self_aliases(init, own, call.lineno))
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


def _self_aliases(init: FunctionNode, own: Subjects, before: int) -> Subjects:
    """`self.use_bn = use_bn` among `__init__`'s own statements before row `before`."""
    self_name = init.args.args[0].arg if init.args.args else ""
    out: Subjects = {}
    # an attribute `__init__` sets more than once holds what the caller passed at times only
    stores = Counter(
        n.attr
        for n in ast.walk(init)
        if isinstance(n, ast.Attribute)
        and isinstance(n.ctx, ast.Store)
        and isinstance(n.value, ast.Name)
        and n.value.id == self_name
    )
    for stmt in init.body:
        if stmt.lineno >= before:
            break
        if not isinstance(stmt, ast.Assign):
            continue
        for target in stmt.targets:
            if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)):
                continue
            value = stmt.value
            if (
                target.value.id == self_name
                and stores[target.attr] == 1
                and isinstance(value, ast.Name)
                and value.id in own
                and not _rebound(init, value.id, stmt)
            ):
                out[f"{self_name}.{target.attr}"] = own[value.id]
    return out


def _only_call(cls: ClassFacts, init: FunctionNode, name: str) -> ast.Expr | None:
    """`self.<name>(...)` as a statement of `__init__`'s own, its only call in the class."""
    if any(m.name not in (name, "__init__") for m in cls.methods_mentioning(name)):
        return None
    calls = [
        node
        for node in ast.walk(init)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == name
        and isinstance(node.func.value, ast.Name)
        and init.args.args
        and node.func.value.id == init.args.args[0].arg
    ]
    if len(calls) != 1:
        return None
    return next((s for s in init.body if isinstance(s, ast.Expr) and s.value is calls[0]), None)


def _argument(call: ast.expr, name: str, index: int) -> ast.expr | None:
    if not isinstance(call, ast.Call):
        return None
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    if any(isinstance(a, ast.Starred) for a in call.args[: index + 1]):
        return None
    return call.args[index] if 0 <= index < len(call.args) else None


def _rebound(init: FunctionNode, name: str, before: ast.stmt) -> bool:
    """Whether `__init__` binds `name` again anywhere before the statement `before`."""
    for stmt in init.body:
        if stmt is before or stmt.lineno >= before.lineno:
            return False
        if any(
            isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Store)
            for n in ast.walk(stmt)
        ):
            return True
    return False


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
    clauses = {
        frozenset(_literal(test, taken, s) for test, taken in a.env.guards)
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


def _literal(test: ast.expr, taken: bool, subjects: Subjects) -> Literal:
    """A test without its `not`s, its subjects named by the parameter they stand for (a
    method's `wn` and `__init__`'s `weight_norm` are one test)."""
    while isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        test, taken = test.operand, not taken
    named = _named(test, subjects)
    if named is None and isinstance(test, ast.Compare) and len(test.ops) == 1:
        left = _named(test.left, subjects)
        if left is not None:
            ops = type(test.ops[0]).__name__
            return f"{left} {ops} {ast.dump(test.comparators[0])}", taken
    return named if named is not None else ast.dump(test), taken


def _named(expr: ast.expr, subjects: Subjects) -> str | None:
    if isinstance(expr, ast.Name):
        key = expr.id
    elif isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
        key = f"{expr.value.id}.{expr.attr}"
    else:
        return None
    found = subjects.get(key)
    return f"param:{found[0]}" if found is not None else None
