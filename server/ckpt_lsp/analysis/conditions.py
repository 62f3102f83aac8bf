"""Conditional hazards: a factory that returns a hazard for some values of a parameter only.

`def get_activation_fn(name): if name == "linear": return lambda x: x` makes a lambda only
when `name == "linear"`. The walker keeps the `if` tests a return sits under (Env.guards);
here the tests on a parameter become Conditions, and a call that passes constants decides
them: a constant that meets every condition makes the hazard certain, one that fails a
condition makes it absent, anything else leaves a conditional (warning) finding.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_MISSING = object()
TRUTHY = ""  # the op of a bare test: `if weight_norm:`

_OPS: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
    ast.In: ("in", lambda a, b: a in b),
    ast.NotIn: ("not in", lambda a, b: a not in b),
    ast.Is: ("is", operator.is_),
    ast.IsNot: ("is not", operator.is_not),
}

_INVERSE: dict[type, type] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.LtE: ast.Gt,
    ast.Gt: ast.LtE,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}


@dataclass(frozen=True)
class Condition:
    """`<param> <op> <constant>` (or its negation) that a hazardous return depends on."""

    param: str
    index: int  # position among the call's arguments; -1 for keyword-only
    default: object  # the parameter's constant default, or _MISSING
    op: str
    constant: object
    negated: bool
    text: str  # as the source says it: "activation == 'linear'"

    def holds(self, value: object) -> bool | None:
        if self.op == TRUTHY:
            return bool(value) != self.negated  # a literal's truth never raises
        compare = next((fn for name, fn in _OPS.values() if name == self.op), None)
        if compare is None:
            return None
        try:
            result = bool(compare(value, self.constant))
        except TypeError:
            return None
        return result != self.negated

    def describe(self) -> str:
        return f"not `{self.text}`" if self.negated else f"`{self.text}`"


def opaque(cond: Condition) -> Condition:
    """A condition on another function's parameter: no call of this one decides it."""
    return Condition("", -2, _MISSING, cond.op, cond.constant, cond.negated, cond.text)


# A conjunction per hazardous return; the hazard exists when any of them holds.
When = tuple[tuple[Condition, ...], ...]


# what a tested expression stands for: its source (`act`, `self.use_bn`) -> the parameter
# (name, position among the call's arguments, constant default)
Subjects = dict[str, tuple[str, int, object]]


def guard_conditions(
    func: ast.FunctionDef | ast.AsyncFunctionDef,
    guards: list[tuple[ast.expr, bool]],
    skip_first: bool,
) -> tuple[Condition, ...]:
    """The guards of one return that test a parameter against a constant (others, like
    `self.training`, say nothing about the call and are left out)."""
    return conditions_on(guards, parameters(func, skip_first))


def conditions_on(guards: list[tuple[ast.expr, bool]], subjects: Subjects) -> tuple[Condition, ...]:
    """The guards that test one of `subjects` against a constant, as conditions on it."""
    out: list[Condition] = []
    for test, polarity in guards:
        out.extend(_conditions(test, subjects, not polarity))
    # `name == "linear"` says all there is to say about `name`: the earlier branches'
    # `not name == "relu"` follow from it
    exact = {c.param for c in out if not c.negated and c.op in ("==", "in", "is")}
    return tuple(
        c for c in out if c.param not in exact or (not c.negated and c.op in ("==", "in", "is"))
    )


def undecided(name: str) -> tuple[str, int, object]:
    """A subject no call decides (a parameter bound again before its test): not a keyword,
    not a position, no default."""
    return (f"~{name}", -2, _MISSING)


def parameters(func: ast.FunctionDef | ast.AsyncFunctionDef, skip_first: bool) -> Subjects:
    """Each parameter as its own subject (the first left out for a method's `self`)."""
    args = func.args
    positional = args.posonlyargs + args.args
    defaults: dict[str, object] = {}
    for arg, default in zip(positional[len(positional) - len(args.defaults) :], args.defaults):
        defaults[arg.arg] = _constant(default)
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults):
        if kw_default is not None:
            defaults[arg.arg] = _constant(kw_default)
    shift = 1 if skip_first and positional else 0
    out = {
        a.arg: (a.arg, i - shift, defaults.get(a.arg, _MISSING)) for i, a in enumerate(positional)
    }
    out.update({a.arg: (a.arg, -1, defaults.get(a.arg, _MISSING)) for a in args.kwonlyargs})
    if shift:
        out.pop(positional[0].arg, None)
    return out


def _conditions(test: ast.expr, subjects: Subjects, negated: bool) -> list[Condition]:
    """What one test says about the parameters, as a conjunction: `a and b` taken, or
    `a or b` not taken, says both; the other sides say "one of them", which a conjunction
    cannot hold, so they say nothing (the hazard is then the more certain)."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return _conditions(test.operand, subjects, not negated)
    if isinstance(test, ast.BoolOp):
        if isinstance(test.op, ast.And) == negated:
            return []
        return [c for value in test.values for c in _conditions(value, subjects, negated)]
    found = _condition(test, subjects, negated)
    return [] if found is None else [found]


def _subject(expr: ast.expr, subjects: Subjects) -> tuple[str, int, object] | None:
    if isinstance(expr, ast.Name):
        return subjects.get(expr.id)
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
        return subjects.get(f"{expr.value.id}.{expr.attr}")
    return None


def _condition(test: ast.expr, subjects: Subjects, negated: bool) -> Condition | None:
    found = _subject(test, subjects)
    if found is not None:
        param, index, default = found
        return Condition(param, index, default, TRUTHY, None, negated, ast.unparse(test))
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return None
    left, right, op = test.left, test.comparators[0], type(test.ops[0])
    found = _subject(left, subjects)
    if op not in _OPS or found is None:
        return None
    constant = _constant(right)
    if constant is _MISSING:
        return None
    param, index, default = found
    if negated and op in _INVERSE:  # `not p <= 0` reads better as `p > 0`
        op, negated = _INVERSE[op], False
    text = f"{ast.unparse(left)} {_OPS[op][0]} {ast.unparse(right)}"
    return Condition(param, index, default, _OPS[op][0], constant, negated, text)


def _constant(node: ast.expr) -> object:
    """A literal's value (tuples, lists and sets of literals included), else _MISSING."""
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _MISSING
    return tuple(value) if isinstance(value, (list, set)) else value


def argument(call: ast.Call, cond: Condition) -> object:
    """What the call passes for the condition's parameter: a literal, the default when the
    call leaves it out, or _MISSING when only the running program knows."""
    for kw in call.keywords:
        if kw.arg is None:
            return _MISSING  # **options: anything
        if kw.arg == cond.param:
            return _constant(kw.value)
    if any(isinstance(a, ast.Starred) for a in call.args):
        return _MISSING
    if 0 <= cond.index < len(call.args):
        return _constant(call.args[cond.index])
    return cond.default


def decide(when: When, call: ast.Call | None) -> When | None:
    """What is left of `when` at this call: () when the hazard is certain, None when the
    call rules every hazardous return out, else the conjunctions still open."""
    if not when:
        return ()
    open_: list[tuple[Condition, ...]] = []
    for conjunction in when:
        left: list[Condition] = []
        ruled_out = False
        for cond in conjunction:
            value = argument(call, cond) if call is not None else _MISSING
            verdict = cond.holds(value) if value is not _MISSING else None
            if verdict is False:
                ruled_out = True
                break
            if verdict is None:
                left.append(cond)
        if ruled_out:
            continue
        if not left:
            return ()
        open_.append(tuple(left))
    return tuple(open_) if open_ else None


def describe_when(when: When) -> str:
    """`when `activation == 'linear'``, alternatives joined by "or"."""
    parts = [" and ".join(c.describe() for c in conj) for conj in when]
    return "when " + " or ".join(parts)
