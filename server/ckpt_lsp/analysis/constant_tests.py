"""Tests decided when the module is read: `sched if RESUME_EXACT else sched.state_dict()`.

A condition that is a literal, or a module-level name bound once to a literal (and never
rebound by a `global` statement), always takes the same arm, so what the expression (or the
`if` statement) gives is what that arm gives, and a save in the other arm never runs.
Anything else is the caller's to merge.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.nodes import walk

if TYPE_CHECKING:
    from ckpt_lsp.analysis.load_safety import LoadSafety


# env keys marking a local or parameter bound only to `True` (`False`), as a call passed it
TRUE_MARK, FALSE_MARK = "#true:", "#false:"


def decided(test: ast.expr, safety: LoadSafety, env: Mapping[str, object]) -> bool | None:
    """The truth of `test` when the module fixes it; None when it is not known."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = decided(test.operand, safety, env)
        return None if inner is None else not inner
    if isinstance(test, ast.BoolOp):  # `KEEP and not DEBUG`: one decided operand may do
        found = [decided(v, safety, env) for v in test.values]
        deciding = isinstance(test.op, ast.Or)  # True decides an `or`, False an `and`
        if deciding in found:
            return deciding
        return None if None in found else not deciding
    if isinstance(test, ast.Constant):
        return bool(test.value)
    if isinstance(test, ast.Name) and test.id not in env:
        value = _module_constant(test.id, safety)
        return None if value is None else bool(value.value)
    if isinstance(test, ast.Name):  # `if use_ema:` of a parameter the call left at `True`
        return _truth(test.id, env)
    if isinstance(test, ast.Attribute) and isinstance(test.value, ast.Name):
        return _truth(f"{test.value.id}.{test.attr}", env)  # `self.use_ema = use_ema`
    if isinstance(test, ast.Compare):
        return compared(test, env)
    return None


def compared(test: ast.Compare, env: Mapping[str, object]) -> bool | None:
    """`name == "patch"` / `name in ("a", "b")` of a name known to hold one string."""
    if len(test.ops) != 1 or not isinstance(test.left, ast.Name):
        return None
    held = env.get(test.left.id)
    texts = {getattr(p, "key_text", None) for p in held} if isinstance(held, frozenset) else set()
    text = texts.pop() if len(texts) == 1 else None
    if not isinstance(text, str):
        return None
    op, right = test.ops[0], test.comparators[0]
    if isinstance(op, (ast.Eq, ast.NotEq)) and isinstance(right, ast.Constant):
        return (text == right.value) == isinstance(op, ast.Eq)
    if isinstance(op, (ast.In, ast.NotIn)) and isinstance(right, (ast.Tuple, ast.List, ast.Set)):
        if not all(isinstance(e, ast.Constant) for e in right.elts):
            return None
        found = any(text == e.value for e in right.elts if isinstance(e, ast.Constant))
        return found == isinstance(op, ast.In)
    return None


def _truth(name: str, env: Mapping[str, object]) -> bool | None:
    """What a name bound only to `True` or only to `False` is: from a flow's state (its
    possibilities carry a `truth`) or from the marks of its env."""
    held = env.get(name)
    if isinstance(held, frozenset):
        truths = {getattr(p, "truth", None) for p in held}
        return truths.pop() if len(truths) == 1 and None not in truths else None
    if TRUE_MARK + name in env:
        return True
    return False if FALSE_MARK + name in env else None


def module_number(name: str, safety: LoadSafety) -> bool:
    """`SCALE = 100.0` / `EPS = -1e-3`, bound once at module level: a Python number."""
    value = _module_constant(name, safety)
    return value is not None and not isinstance(value.value, (bool, str))


def module_number_table(name: str, safety: LoadSafety) -> bool:
    """`GOES_CLASSES = {"A": 1e-8, ...}` (or a tuple or list of numbers), bound once at module
    level and never stored into: any item of it is a Python number."""
    facts = safety.facts
    value = facts.assigns.get(name)
    if name in facts.imports or not isinstance(value, (ast.Dict, ast.List, ast.Tuple)):
        return False
    items = value.values if isinstance(value, ast.Dict) else value.elts
    if not items or not all(_number_literal(v) for v in items):
        return False
    if not _bound_once(name, safety):
        return False
    key = ("number-table", name)
    known = safety.memo.get(key)
    if known is None:
        escaped = re.escape(name)
        stored = re.search(rf"\b{escaped}\s*\[[^\n]*?\]\s*[-+*/|&]?=(?!=)", facts.text)
        changed = re.search(
            rf"\b{escaped}\s*\.\s*(update|setdefault|append|extend|insert)\b", facts.text
        )
        known = stored is None and changed is None
        safety.memo[key] = known
    return bool(known)


def module_string_item(name: str, key: str, safety: LoadSafety) -> str | None:
    """`TASK_CONFIGS["nowcast"]` of a module-level dict display of string constants, bound
    once and never stored into: the string under that key."""
    facts = safety.facts
    table = facts.assigns.get(name)
    if name in facts.imports or not isinstance(table, ast.Dict) or not _bound_once(name, safety):
        return None
    escaped = re.escape(name)
    if re.search(rf"\b{escaped}\s*(\[[^\n]*?\]\s*=(?!=)|\.\s*(update|setdefault)\b)", facts.text):
        return None
    for written, value in zip(table.keys, table.values):
        if isinstance(written, ast.Constant) and written.value == key:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                return value.value
            return None
    return None


def _number_literal(value: ast.expr) -> bool:
    if isinstance(value, ast.UnaryOp) and isinstance(value.op, (ast.USub, ast.UAdd)):
        value = value.operand  # `-1e-3`
    return (
        isinstance(value, ast.Constant)
        and isinstance(value.value, (int, float))
        and not isinstance(value.value, bool)
    )


def module_string(name: str, safety: LoadSafety) -> str | None:
    """`DEFAULT_CFG = "model: ..."`, bound once at module level: its text."""
    value = _module_constant(name, safety)
    return value.value if value is not None and isinstance(value.value, str) else None


def _module_constant(name: str, safety: LoadSafety) -> ast.Constant | None:
    """The literal a module-level name is bound to, when it is bound there once only."""
    facts = safety.facts
    if name in facts.imports:
        return None
    value = facts.assigns.get(name)
    if isinstance(value, ast.UnaryOp) and isinstance(value.op, (ast.USub, ast.UAdd)):
        value = value.operand  # `-1e-3`: a number (its truth is the operand's)
    if not isinstance(value, ast.Constant) or not isinstance(value.value, (int, float, str)):
        return None
    return value if _bound_once(name, safety) else None


def _bound_once(name: str, safety: LoadSafety) -> bool:
    """The module binds the name once only (no augmented store, no `global` rebinding)."""
    key = ("constant-test", name)
    known = safety.memo.get(key)
    if known is None:
        facts = safety.facts
        bound = re.findall(
            rf"^[ \t]*{re.escape(name)}[ \t]*(?::[^=\n]*)?(?:[-+*/|&]?=)(?!=)",
            facts.text,
            re.MULTILINE,
        )
        rebound = re.search(rf"\b(?:global|nonlocal)\b[^\n]*\b{re.escape(name)}\b", facts.text)
        known = len(bound) == 1 and rebound is None
        safety.memo[key] = known
    return bool(known)


def dead_statements(func: ast.AST, safety: LoadSafety) -> frozenset[int]:
    """The ids of the statements in the arm of an `if` the module decides never runs."""
    ifs = [n for n in walk(func) if isinstance(n, ast.If)]
    if not ifs:
        return frozenset()
    local: dict[str, object] = {  # a local or parameter of that name is no module constant
        n.id: None for n in walk(func) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    local.update({a.arg: None for a in walk(func) if isinstance(a, ast.arg)})
    dead: set[int] = set()
    for node in ifs:
        taken = decided(node.test, safety, local)
        if taken is None:
            continue
        for stmt in node.orelse if taken else node.body:
            dead.update(id(n) for n in walk(stmt) if isinstance(n, ast.stmt))
    return frozenset(dead)
