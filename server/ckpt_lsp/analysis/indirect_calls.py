"""Calls that build a class without naming it as the callee, for CKPT011's call sites.

`functools.partial(LitNet, lr=np.float32(3e-4))` fixes arguments of a later construction: the
partial's own arguments are passed, the rest are not known (a spread). `MODELS[name](loss=...)`
and `model_cls = MODELS.get(name); model_cls(**kw)` of a module-level dict display of classes
build whichever class the key picks, each with those arguments; a registry the module changes
after its display may hold anything else too, yet it still holds these classes.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator

from ckpt_lsp.analysis.facts import ModuleFacts, dotted_name
from ckpt_lsp.analysis.names import qualify
from ckpt_lsp.analysis.nodes import child_nodes, walk

FunctionNode = (ast.FunctionDef, ast.AsyncFunctionDef)
_PARTIAL = "functools.partial"
_REST = "<partial: the later call's arguments>"  # a name no program binds


def partial_call(call: ast.Call, facts: ModuleFacts) -> ast.Call | None:
    """`partial(Cls, *args, **kw)` as the call `Cls(*args, **kw, **later)`; None otherwise."""
    if not call.args or isinstance(call.args[0], ast.Starred):
        return None
    if qualify(dotted_name(call.func), facts) != _PARTIAL:
        return None
    rest = ast.keyword(arg=None, value=ast.Name(id=_REST, ctx=ast.Load()))
    built = ast.Call(func=call.args[0], args=call.args[1:], keywords=[*call.keywords, rest])
    return ast.copy_location(built, call)


def registries_of(facts: ModuleFacts, name: str) -> list[str]:
    """The module-level dict displays of `facts` holding the name `name` (`cls.name`, or a
    dotted name ending with it) among their values."""
    found = []
    for registry, value in facts.assigns.items():
        if isinstance(value, ast.Dict) and any(
            dotted_name(v) == name or dotted_name(v).endswith("." + name) for v in value.values
        ):
            found.append(registry)
    return found


_REGISTERING = frozenset({"register", "register_module"})


def registry_object_key(
    facts: ModuleFacts, decorator: ast.expr
) -> tuple[str, frozenset[str] | None] | None:
    """`@MODELS.register("unet")` (or `register(name="unet")`, `@MODELS.register`) where
    `MODELS = Registry(...)` is an object this module builds: the registry's name and the key
    (None when it is not a string literal: the class's name, or one the call computes)."""
    called = decorator.func if isinstance(decorator, ast.Call) else decorator
    if not (
        isinstance(called, ast.Attribute)
        and called.attr in _REGISTERING
        and isinstance(called.value, ast.Name)
        and isinstance(facts.assigns.get(called.value.id), ast.Call)
    ):
        return None
    key: ast.expr | None = None
    if isinstance(decorator, ast.Call):
        named = [k.value for k in decorator.keywords if k.arg in ("name", "key")]
        key = decorator.args[0] if decorator.args else (named[0] if named else None)
    written = key.value if isinstance(key, ast.Constant) else None
    return called.value.id, frozenset({written}) if isinstance(written, str) else None


def registry_calls(
    tree: ast.AST, registries: list[str]
) -> Iterator[tuple[ast.Call, ast.expr, ast.FunctionDef | ast.AsyncFunctionDef | None]]:
    """`REG[k](...)`, `REG.get(k)(...)` and a local bound once to either then called: each
    call, the registry entry it names (`REG[k]`), and the function it is made in."""
    yield from _registry_calls(tree, frozenset(registries), None, {})


def _registry_calls(
    node: ast.AST,
    registries: frozenset[str],
    func: ast.FunctionDef | ast.AsyncFunctionDef | None,
    aliases: dict[str, ast.expr],
) -> Iterator[tuple[ast.Call, ast.expr, ast.FunctionDef | ast.AsyncFunctionDef | None]]:
    for child in child_nodes(node):
        if isinstance(child, FunctionNode):
            yield from _registry_calls(child, registries, child, _aliases(child, registries))
            continue
        if isinstance(child, ast.Call):
            picked = _picked(child.func, registries)
            if picked is None and isinstance(child.func, ast.Name):
                picked = aliases.get(child.func.id)
            if picked is not None:
                yield child, picked, func
            built = _built(child, registries)
            if built is not None:
                yield *built, func
        yield from _registry_calls(child, registries, func, aliases)


def _picked(expr: ast.expr, registries: frozenset[str]) -> ast.expr | None:
    """`REG[k]` or `REG.get(k)` of one of the registries."""
    if isinstance(expr, ast.Subscript) and isinstance(expr.value, ast.Name):
        return expr if expr.value.id in registries else None
    if (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Attribute)
        and expr.func.attr == "get"
        and isinstance(expr.func.value, ast.Name)
        and expr.func.value.id in registries
        and len(expr.args) == 1
    ):
        return expr
    return None


def _built(call: ast.Call, registries: frozenset[str]) -> tuple[ast.Call, ast.expr] | None:
    """`MODELS.build(key, lr=...)` of a Registry object: the construction it stands for (the
    other arguments passed to the entry `key` picks) and that entry (`MODELS[key]`)."""
    func = call.func
    if not (
        isinstance(func, ast.Attribute)
        and func.attr == "build"
        and isinstance(func.value, ast.Name)
        and func.value.id in registries
        and call.args
        and not isinstance(call.args[0], ast.Starred)
    ):
        return None
    entry = ast.copy_location(
        ast.Subscript(value=func.value, slice=call.args[0], ctx=ast.Load()), call
    )
    built = ast.Call(func=entry, args=call.args[1:], keywords=call.keywords)
    return ast.copy_location(built, call), entry


def _aliases(
    func: ast.FunctionDef | ast.AsyncFunctionDef, registries: frozenset[str]
) -> dict[str, ast.expr]:
    """The function's locals bound once, to a registry entry (`model_cls = REG[name]`)."""
    counts: dict[str, int] = {}
    picked: dict[str, ast.expr] = {}
    for node in walk(func):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            counts[node.id] = counts.get(node.id, 0) + 1
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            entry = _picked(node.value, registries)
            if entry is not None:
                picked[node.targets[0].id] = entry
    args = func.args
    params = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    return {k: v for k, v in picked.items() if counts.get(k) == 1 and k not in params}


def pair_dispatches(
    tree: ast.AST, rows: dict[str, list[tuple[ast.expr, ...]]], name: str
) -> Iterator[tuple[ast.Call, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """`make_cfg, factory = REGISTRY[key]; factory(make_cfg(overrides))` of a module-level dict
    display of tuples holding the function `name`: each call of the unpacked member as a call
    of `name`, with every name unpacked beside it replaced by that entry's member (one call
    per entry holding the function, since each pairs it with its own config maker); `rows`
    is what `tuple_entries` found for `name`."""
    for func in walk(tree):
        if not isinstance(func, FunctionNode):
            continue
        for unpacked, registry in _unpackings(func, frozenset(rows)):
            for members in rows[registry]:
                at = [i for i, m in enumerate(members) if dotted_name(m) == name]
                if len(at) != 1 or len(unpacked) != len(members):
                    continue
                callee = unpacked[at[0]]
                swap = {n: m for n, m in zip(unpacked, members) if n is not None}
                for call in walk(func):
                    if isinstance(call, ast.Call) and _is_name(call.func, callee):
                        yield _swapped(call, name, swap), func


def tuple_entries(facts: ModuleFacts, name: str) -> dict[str, list[tuple[ast.expr, ...]]]:
    """The module-level dict displays whose tuple values hold the name: their tuples that do."""
    found: dict[str, list[tuple[ast.expr, ...]]] = {}
    for registry, value in facts.assigns.items():
        if not isinstance(value, ast.Dict):
            continue
        rows = [
            tuple(v.elts)
            for v in value.values
            if isinstance(v, ast.Tuple) and any(dotted_name(e) == name for e in v.elts)
        ]
        if rows:
            found[registry] = rows
    return found


def _unpackings(
    func: ast.FunctionDef | ast.AsyncFunctionDef, registries: frozenset[str]
) -> Iterator[tuple[list[str | None], str]]:
    """`a, b = REG[k]` (or `REG.get(k)`) in the function: the names bound, by position."""
    for node in walk(func):
        if not (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Tuple)
        ):
            continue
        entry = _picked(node.value, registries)
        if entry is None:
            continue
        registry = entry.value if isinstance(entry, ast.Subscript) else None
        if not isinstance(registry, ast.Name):
            registry = entry.func.value if isinstance(entry, ast.Call) else None  # type: ignore[attr-defined]
        if isinstance(registry, ast.Name):
            names = [t.id if isinstance(t, ast.Name) else None for t in node.targets[0].elts]
            yield names, registry.id


def _is_name(expr: ast.expr, name: str | None) -> bool:
    return name is not None and isinstance(expr, ast.Name) and expr.id == name


def _swapped(call: ast.Call, name: str, swap: dict[str, ast.expr]) -> ast.Call:
    """A copy of the call with the callee named `name` and the unpacked names replaced."""

    class _Swap(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.expr:
            member = swap.get(node.id)
            return ast.copy_location(copy.deepcopy(member), node) if member is not None else node

    built = ast.Call(
        func=ast.Name(id=name, ctx=ast.Load()),
        args=[_Swap().visit(copy.deepcopy(a)) for a in call.args],
        keywords=[_Swap().visit(copy.deepcopy(k)) for k in call.keywords],
    )
    return ast.copy_location(built, call)
