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
from collections.abc import Sequence
from dataclasses import replace

from ckpt_lsp.analysis.assignments import OPAQUE, Assignment
from ckpt_lsp.analysis.conditions import Condition, guard_conditions, opaque
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
    if init is None or not any(a.env.guards and a.method == "__init__" for a, _ in stored):
        return out
    by_attribute: dict[str, list[int]] = {}
    for i, (assignment, _) in enumerate(stored):
        by_attribute.setdefault(assignment.attribute, []).append(i)
    for attribute, rows in by_attribute.items():
        stores = [stored[i][0] for i in rows] + [a for a in also if a.attribute == attribute]
        conditions = [_conditions(init, a) for a in stores]
        if not all(conditions) or _every_path([a.env.guards for a in stores]):
            continue
        for i, own in zip(rows, conditions):  # `also` come last: zip leaves them out
            made = out[i].when or ((),)
            out[i] = replace(out[i], when=tuple(conj + own for conj in made))
    return out


def _foreign(hazard: Hazard) -> Hazard:
    if not hazard.when:
        return hazard
    return replace(hazard, when=tuple(tuple(opaque(c) for c in conj) for conj in hazard.when))


def _conditions(init: FunctionNode, assignment: Assignment) -> tuple[Condition, ...]:
    """The tests on `__init__`'s parameters a plain store in it sits under; () when there is
    none (a store in another method, into a container, under `if torch.cuda...`)."""
    if assignment.mutation or assignment.method != "__init__" or not assignment.env.guards:
        return ()
    found = guard_conditions(init, assignment.env.guards, skip_first=True)
    defaults = _defaults(init)
    bindings = assignment.env.bindings
    # a parameter bound again before the store (`act = act.lower()`) is not what the
    # caller passed: the condition still holds the finding back, but no call decides it
    return tuple(
        c
        if bindings.get(c.param) is OPAQUE or bindings.get(c.param) is defaults.get(c.param)
        else opaque(c)
        for c in found
    )


def _defaults(func: FunctionNode) -> dict[str, ast.expr]:
    args = func.args
    positional = args.posonlyargs + args.args
    out = {
        a.arg: d for a, d in zip(positional[len(positional) - len(args.defaults) :], args.defaults)
    }
    out.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None})
    return out


def _every_path(guards: list[list[tuple[ast.expr, bool]]]) -> bool:
    """Whether the stores' guards together cover every path: `if a: x; else: y`, or an
    `if`/`elif`/`else` chain, each branch storing a hazard. Sides of the same test resolve
    away (`a and b`, `a and not b` -> `a`) until nothing is left, or nothing more merges."""
    clauses = {frozenset(_literal(test, taken) for test, taken in g) for g in guards}
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


def _literal(test: ast.expr, taken: bool) -> Literal:
    while isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        test, taken = test.operand, not taken
    return ast.dump(test), taken
