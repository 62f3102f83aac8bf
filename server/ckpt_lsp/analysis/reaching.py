"""Which statements binding a local name may still hold at a later statement of a function.

`if plan.steps > 1: extra = {"plan": plan}` / `else: extra = {"plan_cfg": asdict(plan)}` then
`dict(model=..., **extra)`: both arms' displays reach the checkpoint (a run takes one of them),
where the last binding in source order is only the `else` one. An `if` merges its arms, a loop
may not run (what reached it still does), a `try` may stop anywhere; a binding on the straight
path replaces what reached it. No execution, only the shape of the statements.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

Binds = Callable[[ast.stmt, str], bool]
_Reached = list[ast.stmt]


def reaching_bindings(
    body: list[ast.stmt], name: str, before: ast.stmt, binds: Binds
) -> list[ast.stmt]:
    """The statements binding `name` (as `binds` says) that may reach `before`, in source
    order; empty when none does (a parameter, a global) or `before` is not in `body`."""
    found = _walk(body, name, before, binds, [])
    return found[0] if found[1] else []


def _walk(
    body: list[ast.stmt], name: str, before: ast.stmt, binds: Binds, reached: _Reached
) -> tuple[_Reached, bool]:
    """What reaches the end of `body` (or `before`, and True, when `before` is in it)."""
    for stmt in body:
        if stmt is before:
            return reached, True
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if binds(stmt, name) and not isinstance(stmt, (ast.For, ast.AsyncFor, ast.With)):
            reached = [stmt]
            continue
        inner = _compound(stmt, name, before, binds, reached)
        if inner is None:
            continue
        reached, found = inner
        if found:
            return reached, True
    return reached, False


def _compound(
    stmt: ast.stmt, name: str, before: ast.stmt, binds: Binds, reached: _Reached
) -> tuple[_Reached, bool] | None:
    """A compound statement's arms, merged; None for a simple statement."""
    if isinstance(stmt, (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)) and binds(stmt, name):
        entered: _Reached = [stmt]  # the loop or `with` target binds it
    else:
        entered = reached
    if isinstance(stmt, ast.If):
        arms = [stmt.body, stmt.orelse]
        return _arms(arms, name, before, binds, reached, keep=False)
    if isinstance(stmt, (ast.With, ast.AsyncWith)):
        return _walk(stmt.body, name, before, binds, entered)
    if isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
        body = _walk(stmt.body, name, before, binds, entered)
        if body[1]:
            return body
        looped = _union(reached, body[0])
        return _walk(stmt.orelse, name, before, binds, looped)
    if isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
        arms = [stmt.body, *(h.body for h in stmt.handlers), stmt.orelse]  # type: ignore[attr-defined]
        merged = _arms(arms, name, before, binds, reached, keep=True)
        if merged[1]:
            return merged
        return _walk(stmt.finalbody, name, before, binds, merged[0])  # type: ignore[attr-defined]
    return None


def _arms(
    arms: list[list[ast.stmt]],
    name: str,
    before: ast.stmt,
    binds: Binds,
    reached: _Reached,
    keep: bool,
) -> tuple[_Reached, bool]:
    """Each arm walked from what reached the statement; `keep`: what reached it may also
    reach its end (a `try` that stops early)."""
    merged: _Reached = list(reached) if keep else []
    for arm in arms:
        walked = _walk(arm, name, before, binds, reached)
        if walked[1]:
            return walked
        merged = _union(merged, walked[0])
    return merged, False


def _union(a: _Reached, b: _Reached) -> _Reached:
    seen = {id(s) for s in a}
    return [*a, *(s for s in b if id(s) not in seen)]
