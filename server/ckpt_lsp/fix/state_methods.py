"""Read a class's own `__getstate__`/`__setstate__` so the fix extends them.

Only shapes whose meaning is certain are extended: a state dict built from the
instance's `__dict__` (or the base's `__getstate__()`), then returned. Anything
else is reported as a problem and the class is left alone: a wrong edit to a
pickling protocol loses data silently, which is worse than no fix.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from ckpt_lsp.analysis.assignments import is_generator
from ckpt_lsp.analysis.nodes import walk
from ckpt_lsp.fix.bases import BaseProtocol
from ckpt_lsp.fix.module import walk_same_scope
from ckpt_lsp.fix.recreate import mangle

FRESH, LIVE, COPY_OF_VAR = "fresh", "live", "copy-of-var"


def _const_str(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _is_self_dict(node: ast.AST) -> bool:
    """`self.__dict__` or `vars(self)`: the live instance dict."""
    if isinstance(node, ast.Attribute):
        return (
            node.attr == "__dict__" and isinstance(node.value, ast.Name) and node.value.id == "self"
        )
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "vars"
        and len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], ast.Name)
        and node.args[0].id == "self"
    )


def _is_super_getstate(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and not node.args
        and not node.keywords
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "__getstate__"
        and isinstance(node.func.value, ast.Call)
        and isinstance(node.func.value.func, ast.Name)
        and node.func.value.func.id == "super"
    )


def _comprehension_copy(node: ast.DictComp) -> ast.AST | None:
    """x of `{k: v for k, v in x.items()}` (no filter: a filter is the user's own choice
    of what to keep, and is left alone); else None."""
    if len(node.generators) != 1:
        return None
    gen = node.generators[0]
    target, source = gen.target, gen.iter
    if (
        gen.ifs
        or gen.is_async
        or not isinstance(target, ast.Tuple)
        or len(target.elts) != 2
        or not all(isinstance(e, ast.Name) for e in target.elts)
        or not isinstance(source, ast.Call)
        or source.args
        or source.keywords
        or not isinstance(source.func, ast.Attribute)
        or source.func.attr != "items"
    ):
        return None
    key, value = target.elts
    if (
        isinstance(node.key, ast.Name)
        and isinstance(node.value, ast.Name)
        and isinstance(key, ast.Name)
        and isinstance(value, ast.Name)
        and (node.key.id, node.value.id) == (key.id, value.id)
    ):
        return source.func.value
    return None


def _copy_argument(node: ast.AST) -> ast.AST | None:
    """x of `dict(x)`, `x.copy()`, `copy.copy(x)`, `copy(x)`, `{**x}`, `{k: v for k, v in
    x.items()}`; else None."""
    if isinstance(node, ast.DictComp):
        return _comprehension_copy(node)
    if isinstance(node, ast.Call) and not node.keywords:
        func = node.func
        if len(node.args) == 1 and (
            (isinstance(func, ast.Name) and func.id in ("dict", "copy"))
            or (
                isinstance(func, ast.Attribute)
                and func.attr == "copy"
                and isinstance(func.value, ast.Name)
                and func.value.id == "copy"
            )
        ):
            return node.args[0]
        if not node.args and isinstance(func, ast.Attribute) and func.attr == "copy":
            return func.value
    if (
        isinstance(node, ast.Dict)
        and node.keys
        and node.keys[0] is None
        and all(_const_str(k) is not None for k in node.keys[1:])
    ):
        return node.values[0]
    return None


def classify(node: ast.AST, var: str | None, base: BaseProtocol | None) -> str | None:
    """FRESH (a new dict), LIVE (the instance's own dict), COPY_OF_VAR, or None (unknown)."""
    if _is_self_dict(node):
        return LIVE
    if _is_super_getstate(node):
        return FRESH if base is not None and base.getstate and base.fresh else LIVE
    inner = _copy_argument(node)
    if inner is None:
        return None
    if var is not None and isinstance(inner, ast.Name) and inner.id == var:
        return COPY_OF_VAR
    if _is_self_dict(inner) or _is_super_getstate(inner):
        return FRESH
    return None


def keys_it_sets(func: ast.FunctionDef) -> set[str]:
    """Keys a __getstate__ gives a value of its own (`state["log"] = self.log.name`, or
    `{**self.__dict__, "log": ...}`): the fix must not pop what the user chose to keep.
    (Which keys it leaves out is the analysis's `excluded_attributes`.)"""
    keys: set[str] = set()
    for node in walk_same_scope(func):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in walk(target):
                    if isinstance(sub, ast.Subscript):
                        key = _const_str(sub.slice)
                        if key is not None:
                            keys.add(key)
        elif isinstance(node, ast.Dict):
            keys |= {k for k in map(_const_str, node.keys) if k is not None}
    return keys


@dataclass
class GetstateShape:
    """How to extend an existing __getstate__."""

    var: str = "state"
    ret: ast.Return | None = None  # pops go right before this statement
    copy_after: ast.stmt | None = None  # insert `var = dict(var)` after it (live dict)
    # The return becomes `var = <its value>` (in `dict(...)` when `copy`), pops, `return var`.
    rewrite: bool = False
    copy: bool = False
    problem: str | None = None


def _unusual(reason: str) -> GetstateShape:
    return GetstateShape(problem=f"its __getstate__ {reason}; extend it by hand")


def read_getstate(func: ast.stmt, base: BaseProtocol | None) -> GetstateShape:
    """Find the state variable, where it is returned, and whether it is a copy."""
    if not isinstance(func, ast.FunctionDef):
        return _unusual("is not a plain function")
    if func.decorator_list:
        return _unusual("is decorated")
    params = [*func.args.posonlyargs, *func.args.args]
    if len(params) != 1 or func.args.vararg or func.args.kwonlyargs or func.args.kwarg:
        return _unusual("takes unusual parameters")
    if params[0].arg != "self":
        return _unusual("does not name its instance `self`")
    if is_generator(func):
        return _unusual("is a generator")
    nodes = list(walk_same_scope(func))
    returns = [n for n in nodes if isinstance(n, ast.Return)]
    last = func.body[-1]
    if len(returns) != 1 or returns[0] is not last or last.value is None:
        return _unusual("does not end in its only return")
    shape = GetstateShape(ret=last)
    value = last.value
    if isinstance(value, ast.Name):
        return _follow_variable(func, value.id, base, shape)
    kind = classify(value, None, base)
    if kind is None:
        return _unusual("returns something other than a copy of __dict__")
    stored = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    shape.var = next(v for v in ("state", "_state", "state_", "ckpt_state") if v not in stored)
    shape.rewrite, shape.copy = True, kind != FRESH
    return shape


def _follow_variable(
    func: ast.FunctionDef, var: str, base: BaseProtocol | None, shape: GetstateShape
) -> GetstateShape:
    shape.var = var
    stores = [
        n
        for n in walk_same_scope(func)
        if isinstance(n, ast.Name) and n.id == var and isinstance(n.ctx, (ast.Store, ast.Del))
    ]
    assigns: list[tuple[ast.stmt, ast.expr]] = []
    for stmt in func.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
            if isinstance(target, ast.Name) and target.id == var:
                assigns.append((stmt, stmt.value))
        elif (
            isinstance(stmt, ast.AnnAssign)
            and stmt.value is not None
            and isinstance(stmt.target, ast.Name)
            and stmt.target.id == var
        ):
            assigns.append((stmt, stmt.value))
    if not assigns or len(assigns) != len(stores):
        return _unusual(f"binds `{var}` in a way the fix cannot follow")
    state: str | None = None
    for stmt, value in assigns:
        kind = classify(value, var, base)
        if kind is None:
            return _unusual(f"builds `{var}` from something other than __dict__")
        if kind == COPY_OF_VAR:
            if state is None:
                return _unusual(f"copies `{var}` before it is bound")
            state = FRESH
        else:
            state = kind
        shape.copy_after = stmt if state == LIVE else None
    return shape


@dataclass
class SetstateShape:
    assigned: set[str] = field(default_factory=set)  # keys it already sets
    last: ast.stmt | None = None  # new lines go after this statement
    problem: str | None = None


def read_setstate(func: ast.stmt, class_name: str) -> SetstateShape:
    """Which attributes an existing __setstate__ sets, and whether lines can be appended."""
    if not isinstance(func, ast.FunctionDef) or func.decorator_list:
        return SetstateShape(problem="its __setstate__ is unusual; extend it by hand")
    params = [*func.args.posonlyargs, *func.args.args]
    if len(params) != 2 or params[0].arg != "self" or func.args.vararg or func.args.kwonlyargs:
        return SetstateShape(problem="its __setstate__ takes unusual parameters")
    last = func.body[-1]
    if isinstance(last, (ast.Return, ast.Raise)):
        return SetstateShape(problem="its __setstate__ ends in a return or raise")
    assigned: set[str] = set()
    for node in walk_same_scope(func):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            assigned.add(mangle(node.attr, class_name))
        elif isinstance(node, ast.Call) and len(node.args) >= 2:
            func_name = ast.unparse(node.func)
            is_setattr = func_name in ("setattr", "object.__setattr__")
            key = _const_str(node.args[1])
            if is_setattr and key is not None:
                assigned.add(key)
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Store)
            and _is_self_dict(node.value)
        ):
            key = _const_str(node.slice)
            if key is not None:
                assigned.add(key)
    return SetstateShape(assigned=assigned, last=last)
