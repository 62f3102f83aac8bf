"""The code a registry key rules out, in the function that picks a class by that key.

`def build_module(task, cfg)` doing `if task == "voxelmorph": return REG[task](cfg.sub)`,
judged for the class held under "unet": the arm is never taken, so its call never builds
that class. Judged for the class held under "voxelmorph", the arm returns, so what follows
it is never reached.
"""

from __future__ import annotations

import ast
from typing import Union

from ckpt_lsp.analysis.constant_tests import compared
from ckpt_lsp.analysis.local_flow import KeyText
from ckpt_lsp.analysis.nodes import body_nodes, outside_definitions

FunctionNode = Union[ast.FunctionDef, ast.AsyncFunctionDef]  # Python 3.9 evaluates it
_NESTED_BODIES = ("body", "orelse", "finalbody")


def ruled_out(func: FunctionNode, picked_by: tuple[str, str]) -> frozenset[int]:
    """The ids of the nodes no run with the parameter `name` holding `key` reaches; none when
    the function binds `name` again (then the tests read another value)."""
    name, key = picked_by
    if _rebinds(func, name):
        return frozenset()
    held = {name: frozenset({KeyText(key)})}
    dead: set[int] = set()
    _walk(func.body, held, dead)
    return frozenset(dead)


def _walk(body: list[ast.stmt], held: dict[str, frozenset[KeyText]], dead: set[int]) -> None:
    for at, stmt in enumerate(body):
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        decidable = isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Compare)
        taken = compared(stmt.test, held) if decidable else None  # type: ignore[attr-defined]
        if isinstance(stmt, ast.If) and taken is not None:
            live, never = (stmt.body, stmt.orelse) if taken else (stmt.orelse, stmt.body)
            for never_stmt in never:
                dead.update(id(n) for n in outside_definitions(never_stmt))
            _walk(live, held, dead)
            if _exits(live):  # the arm taken returns: nothing after it runs
                for after in body[at + 1 :]:
                    dead.update(id(n) for n in outside_definitions(after))
                return
            continue
        for field in _NESTED_BODIES:
            nested = getattr(stmt, field, None)
            if isinstance(nested, list) and nested and isinstance(nested[0], ast.stmt):
                _walk(nested, held, dead)
        for handler in getattr(stmt, "handlers", []):
            _walk(handler.body, held, dead)


def _exits(body: list[ast.stmt]) -> bool:
    """Whether every run of `body` ends in a `return` or `raise`."""
    if not body:
        return False
    last = body[-1]
    if isinstance(last, (ast.Return, ast.Raise)):
        return True
    return isinstance(last, ast.If) and _exits(last.body) and _exits(last.orelse)


def _rebinds(func: FunctionNode, name: str) -> bool:
    return any(
        isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store)
        for node in body_nodes(func)
    )
