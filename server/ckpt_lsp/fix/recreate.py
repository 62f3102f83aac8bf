"""Can `__setstate__` re-create an attribute from the expression that first built it?

Only when everything the expression needs exists again after unpickling:
constants, this module's top-level names, builtins, and `self.<other>` for
attributes that stay in the state. Locals and parameters of the method that
built it are gone, so anything that needs them is reset to None instead.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from ckpt_lsp.analysis.assignments import self_name_of
from ckpt_lsp.analysis.nodes import child_nodes, walk
from ckpt_lsp.analysis.stdlib import STDLIB_MODULES
from ckpt_lsp.fix.module import (
    BUILTIN_NAMES,
    FixModule,
    FunctionNode,
    bound_names,
    walk_same_scope,
)

_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
_UNSUPPORTED = (ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr, ast.Starred)


def mangle(attribute: str, class_name: str) -> str:
    """The `__dict__` key of `self.<attribute>` written inside the class (private names)."""
    if attribute.startswith("__") and not attribute.endswith("__"):
        stripped = class_name.lstrip("_")
        if stripped:
            return f"_{stripped}{attribute}"
    return attribute


def source_name(attribute: str, class_name: str) -> str:
    """The spelling in the class body of a key given in mangled form (`_C__x` -> `__x`)."""
    prefix = f"_{class_name.lstrip('_')}__"
    if attribute.startswith(prefix) and not attribute.endswith("__"):
        return attribute[len(prefix) - 2 :]
    return attribute


@dataclass(frozen=True)
class Origin:
    """Where an attribute is first assigned, and the expression that gives its value."""

    method: ast.FunctionDef | ast.AsyncFunctionDef | None
    stmt: ast.stmt | None
    expr: ast.expr | None
    problem: str | None = None  # why the value has no expression of its own
    # Where `expr` sits in `stmt`: ("value", -1) the whole value, ("value", i) the i-th of
    # a tuple or list, ("argument", 2) of setattr.
    where: tuple[str, int] | None = None


def _is_self_attr(node: ast.AST, self_name: str, name: str) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == name
        and isinstance(node.value, ast.Name)
        and node.value.id == self_name
    )


def _statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements in source order, compound bodies included, nested scopes not."""
    out: list[ast.stmt] = []
    for stmt in body:
        out.append(stmt)
        if isinstance(stmt, (*FunctionNode, ast.ClassDef)):
            continue
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(stmt, field, None) or []
            for child in children:
                if isinstance(child, ast.stmt):
                    out.extend(_statements([child]))
                else:  # except handlers and match cases hold statements
                    out.extend(_statements(getattr(child, "body", [])))
    return out


_Found = tuple[bool, Optional[ast.expr], str, Optional[tuple[str, int]]]


def _origin_in(stmt: ast.stmt, self_name: str, name: str) -> _Found:
    """(assigns it here, value expression, problem, where the value is) for one statement."""
    if isinstance(stmt, ast.Assign):
        for target in stmt.targets:
            if _is_self_attr(target, self_name, name):
                return True, stmt.value, "", ("value", -1)
            if isinstance(target, (ast.Tuple, ast.List)):
                for i, elt in enumerate(target.elts):
                    if _is_self_attr(elt, self_name, name):
                        value = stmt.value
                        if (
                            isinstance(value, (ast.Tuple, ast.List))
                            and len(value.elts) == len(target.elts)
                            and not any(isinstance(e, ast.Starred) for e in value.elts)
                        ):
                            return True, value.elts[i], "", ("value", i)
                        return True, None, "unpacked from a value", None
    elif isinstance(stmt, ast.AnnAssign):
        if _is_self_attr(stmt.target, self_name, name) and stmt.value is not None:
            return True, stmt.value, "", ("value", -1)
    elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        call = stmt.value
        if (
            isinstance(call.func, ast.Name)
            and call.func.id == "setattr"
            and len(call.args) == 3
            and isinstance(call.args[0], ast.Name)
            and call.args[0].id == self_name
            and isinstance(call.args[1], ast.Constant)
            and call.args[1].value == name
        ):
            return True, call.args[2], "", ("argument", 2)
    elif isinstance(stmt, (ast.With, ast.AsyncWith)):
        for item in stmt.items:
            if item.optional_vars is not None and any(
                _is_self_attr(n, self_name, name) for n in walk(item.optional_vars)
            ):
                return True, None, "bound by a with statement", None
    elif isinstance(stmt, (ast.For, ast.AsyncFor)) and any(
        _is_self_attr(n, self_name, name) for n in walk(stmt.target)
    ):
        return True, None, "bound by a for loop", None
    return False, None, "", None


def find_origin(cls: ast.ClassDef, name: str) -> Origin:
    """The first assignment of `self.<name>` in the class, looking in `__init__` first."""
    methods = [s for s in cls.body if isinstance(s, FunctionNode)]
    methods.sort(key=lambda m: m.name != "__init__")
    for method in methods:
        if method.name in ("__getstate__", "__setstate__"):
            continue
        self_name = self_name_of(method)  # None for static and class methods
        if self_name is None:
            continue
        for stmt in _statements(method.body):
            assigns, expr, problem, where = _origin_in(stmt, self_name, name)
            if assigns:
                return Origin(method, stmt, expr, problem or None, where)
    return Origin(None, None, None, "not assigned in this class")


def free_names(expr: ast.AST, bound: frozenset[str] = frozenset()) -> set[str]:
    """Names the expression reads from outside itself (lambda and comprehension scopes apply)."""
    out: set[str] = set()
    _free(expr, bound, out)
    return out


def _target_names(target: ast.AST) -> set[str]:
    return {n.id for n in walk(target) if isinstance(n, ast.Name)}


def _free(node: ast.AST, bound: frozenset[str], out: set[str]) -> None:
    if isinstance(node, ast.Name):
        if isinstance(node.ctx, ast.Load) and node.id not in bound:
            out.add(node.id)
        return
    if isinstance(node, ast.Lambda):
        args = node.args
        for default in [*args.defaults, *[d for d in args.kw_defaults if d is not None]]:
            _free(default, bound, out)
        params = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
        params |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
        _free(node.body, bound | params, out)
        return
    if isinstance(node, _COMPREHENSIONS):
        inner = set(bound)
        for i, gen in enumerate(node.generators):
            _free(gen.iter, bound if i == 0 else frozenset(inner), out)
            inner |= _target_names(gen.target)
            for cond in gen.ifs:
                _free(cond, frozenset(inner), out)
        parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        for part in parts:
            _free(part, frozenset(inner), out)
        return
    for child in child_nodes(node):
        _free(child, bound, out)


def method_locals(method: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Parameters and every name the method binds: none of them exists after unpickling."""
    args = method.args
    names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    names |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    return names | bound_names(walk_same_scope(method), deleted=True)


def self_attributes(expr: ast.AST, self_name: str) -> set[str]:
    """Attributes the expression reads from the instance (inside lambdas too)."""
    return {
        n.attr
        for n in walk(expr)
        if isinstance(n, ast.Attribute)
        and isinstance(n.value, ast.Name)
        and n.value.id == self_name
    }


def why_not_recreatable(
    origin: Origin, module: FixModule, gone: Callable[[str], bool], class_name: str
) -> str | None:
    """None when `__setstate__` can evaluate the original expression; else the reason.

    `gone` tells the `__dict__` keys that are not in the state when it runs.
    """
    if origin.expr is None or origin.method is None or origin.stmt is None:
        return origin.problem or "no expression to re-create it from"
    if origin.stmt not in origin.method.body:
        return "assigned conditionally"
    if any(isinstance(n, _UNSUPPORTED) for n in walk(origin.expr)):
        return "the expression awaits, yields or binds names"
    self_name = self_name_of(origin.method) or "self"
    local = method_locals(origin.method) - {self_name}
    free = free_names(origin.expr)
    if self_name in free and self_name != "self":
        return f"the method names its instance `{self_name}`"
    for name in sorted(free - {self_name}):
        if name in local:
            return f"it needs `{name}`, a local of {origin.method.name}()"
        if name not in module.names and name not in BUILTIN_NAMES:
            return f"it needs `{name}`, which is not a module-level name"
    for attr in sorted(self_attributes(origin.expr, self_name)):
        if gone(mangle(attr, class_name)):
            return f"it needs `self.{attr}`, which is not in the state either"
    return None


# Roots of calls and names whose values are never torch modules, parameters or buffers.
_NOT_TORCH_ROOTS = frozenset(
    STDLIB_MODULES
    or {
        "asyncio",
        "bz2",
        "collections",
        "concurrent",
        "contextvars",
        "csv",
        "ctypes",
        "functools",
        "gzip",
        "hashlib",
        "io",
        "itertools",
        "json",
        "logging",
        "lzma",
        "mmap",
        "multiprocessing",
        "os",
        "pathlib",
        "queue",
        "re",
        "shelve",
        "socket",
        "sqlite3",
        "ssl",
        "subprocess",
        "sys",
        "tempfile",
        "threading",
        "types",
        "urllib",
        "weakref",
        "zipfile",
        "zlib",
    }  # fmt: skip
) | {"builtins", "numpy", "h5py", "lmdb", "tqdm", "pandas", "PIL", "requests", "urllib3"}
_PLAIN_VALUES = (
    ast.Lambda,
    ast.GeneratorExp,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.List,
    ast.Tuple,
    ast.Set,
    ast.Dict,
    ast.Constant,
    ast.JoinedStr,
)


def may_hold_submodule(origin: Origin, module: FixModule) -> bool:
    """Could the attribute's value be an nn.Module, Parameter or buffer (kept outside
    `__dict__` and restored by nn.Module itself)? True unless the expression surely is not."""
    expr = origin.expr
    if expr is None:
        return True
    return _may_hold(expr, origin, module)


def _may_hold(expr: ast.expr, origin: Origin, module: FixModule) -> bool:
    if isinstance(expr, _PLAIN_VALUES):
        return False
    if isinstance(expr, ast.IfExp):
        return _may_hold(expr.body, origin, module) or _may_hold(expr.orelse, origin, module)
    target = expr.func if isinstance(expr, ast.Call) else expr
    root_expr = target
    while isinstance(root_expr, ast.Attribute):
        root_expr = root_expr.value
    if not isinstance(root_expr, ast.Name):
        return True
    name = root_expr.id
    if origin.method is not None and name in method_locals(origin.method):
        local_defs = {
            n.name
            for n in walk_same_scope(origin.method)
            if isinstance(n, (*FunctionNode, ast.ClassDef))
        }
        return not (name in local_defs and target is root_expr and not isinstance(expr, ast.Call))
    if name in module.imports:
        return module.imports[name].split(".")[0] not in _NOT_TORCH_ROOTS
    return not (name in BUILTIN_NAMES and name not in module.names)
