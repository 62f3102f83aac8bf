"""What the `**` spreads of a call can pass, when the text tells every key.

`Model(**kwargs)` with `kwargs = _patch_kwargs(cfg)` of a helper returning `dict(lr=...,
tile_filter=lambda row: ...)`: the call passes exactly the keys the helper's dict displays
name, so a parameter none of them names is left at its default (`loss_fn=nn.MSELoss()`), and
a lambda under a key is what the call passes for that parameter. A dict the function changes
otherwise than by constant keys (`kwargs.update(other)`, handed to a call) is not known.
"""

from __future__ import annotations

import ast
from typing import Union

from ckpt_lsp.analysis.facts import ModuleFacts
from ckpt_lsp.analysis.key_arms import ruled_out
from ckpt_lsp.analysis.names import qualify
from ckpt_lsp.analysis.nodes import body_nodes

FunctionNode = Union[ast.FunctionDef, ast.AsyncFunctionDef]  # Python 3.9 evaluates it
# key -> the expressions that may give it (the value is not always shown: `kwargs["k"] = v`)
Entries = dict[str, list[ast.expr]]
_MAX_DEPTH = 3


def spread_entries(
    call: ast.Call,
    func: FunctionNode | None,
    facts: ModuleFacts,
    picked_by: tuple[str, str] | None = None,
) -> Entries | None:
    """Every key the call's `**` spreads may pass, with the values shown for it; None when
    some key is not known (or a `*args` spread may fill parameters by position).
    `picked_by`: the parameter holding the registry key the judged class is held under, and
    that key: the arms of `if name == "other":` it rules out give nothing."""
    if any(isinstance(a, ast.Starred) for a in call.args):
        return None
    dead = ruled_out(func, picked_by) if func is not None and picked_by else frozenset()
    found: Entries = {}
    for keyword in call.keywords:
        if keyword.arg is not None:
            continue
        entries = _entries(keyword.value, func, facts, 0, dead)
        if entries is None:
            return None
        for key, values in entries.items():
            found.setdefault(key, []).extend(values)
    return found


def _entries(
    value: ast.expr,
    func: FunctionNode | None,
    facts: ModuleFacts,
    depth: int,
    dead: frozenset[int] = frozenset(),
) -> Entries | None:
    if depth > _MAX_DEPTH:
        return None
    shown = _display(value, facts)
    if shown is not None:
        return shown
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
        helper = facts.functions.get(value.func.id)
        if helper is None or value.func.id in facts.assigns:
            return None
        return _returned(helper, facts, depth + 1)
    if isinstance(value, ast.Name) and func is not None:
        return _local(value.id, func, facts, depth, dead)
    return None


def _display(value: ast.expr, facts: ModuleFacts) -> Entries | None:
    """`{"lr": lr}` or `dict(lr=lr)`: its keys and values, when every key is written."""
    if isinstance(value, ast.Dict):
        if not all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in value.keys):
            return None
        return {
            str(k.value): [v]
            for k, v in zip(value.keys, value.values)
            if isinstance(k, ast.Constant)
        }
    if (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and qualify(value.func.id, facts) == "builtins.dict"
        and not value.args
        and all(k.arg is not None for k in value.keywords)
    ):
        return {str(k.arg): [k.value] for k in value.keywords}
    return None


def _returned(helper: FunctionNode, facts: ModuleFacts, depth: int) -> Entries | None:
    """The keys of every dict a helper returns (each `return` a display, or a local one)."""
    found: Entries = {}
    returns = [n for n in body_nodes(helper) if isinstance(n, ast.Return)]
    if not returns:
        return None
    for ret in returns:
        if ret.value is None:
            return None
        entries = _entries(ret.value, helper, facts, depth)
        if entries is None:
            return None
        for key, values in entries.items():
            found.setdefault(key, []).extend(values)
    return found


def _local(
    name: str, func: FunctionNode, facts: ModuleFacts, depth: int, dead: frozenset[int]
) -> Entries | None:
    """A local dict: what each assignment gives it, and the constant keys stored into it
    (`kwargs["k"] = v`, `kwargs.update(k=v)`); None when any other statement may change it.
    The nodes in `dead` (arms the registry key rules out) are left out."""
    found: Entries = {}
    bound = False
    spreads = 0
    nodes = [n for n in body_nodes(func) if id(n) not in dead]
    for node in nodes:
        if isinstance(node, ast.Assign) and any(_is(t, name) for t in node.targets):
            if len(node.targets) != 1:
                return None
            entries = _entries(node.value, func, facts, depth + 1, dead)
            if entries is None:
                return None
            bound = True
            for key, values in entries.items():
                found.setdefault(key, []).extend(values)
        elif isinstance(node, ast.Assign) and any(_stores_into(t, name) for t in node.targets):
            target = next(t for t in node.targets if _stores_into(t, name))
            assert isinstance(target, ast.Subscript)
            written = target.slice
            if not isinstance(written, ast.Constant) or not isinstance(written.value, str):
                return None
            found.setdefault(written.value, []).append(node.value)
        elif _updates(node, name):
            assert isinstance(node, ast.Call)
            if node.args or any(k.arg is None for k in node.keywords):
                return None
            for keyword in node.keywords:
                found.setdefault(str(keyword.arg), []).append(keyword.value)
        elif isinstance(node, ast.keyword) and node.arg is None and _is(node.value, name):
            spreads += 1
        elif isinstance(node, ast.Return) and node.value is not None and _is(node.value, name):
            spreads += 1  # `return out` of the helper: read, not changed
    if not bound:
        return None
    # mentions in nested functions and lambdas count too: a closure may change the dict
    mentions = sum(1 for n in ast.walk(func) if id(n) not in dead and _is(n, name))
    assigned = sum(1 for n in nodes if isinstance(n, ast.Assign) for t in n.targets if _is(t, name))
    stored = sum(
        1 for n in nodes if isinstance(n, ast.Assign) for t in n.targets if _stores_into(t, name)
    )
    updated = sum(1 for n in nodes if _updates(n, name))
    # every mention is one of those: an assignment, a constant store, an update, a spread
    # or a return
    return found if mentions == assigned + stored + updated + spreads else None


def _is(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _stores_into(target: ast.expr, name: str) -> bool:
    return isinstance(target, ast.Subscript) and _is(target.value, name)


def _updates(node: ast.AST, name: str) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "update"
        and _is(node.func.value, name)
    )
