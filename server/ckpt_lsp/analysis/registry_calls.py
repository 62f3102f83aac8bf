"""`LOSSES[cfg.name](**kwargs)`: an instance built from a registry of classes.

Factories often pick the class to build from a module-level dict display keyed by a config
string. Which key is taken is unknown, but when every class the registry holds builds a value
the default `torch.load` refuses (an `nn.Module` loss, a project object), so does the call.
A registry the module changes after its display (`LOSSES[name] = cls`, `LOSSES.update(...)`)
may hold anything, and one entry that is not a class or function name (or a lambda building
one) leaves it unknown.
"""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.call_sites import decorator_registries
from ckpt_lsp.analysis.facts import ModuleFacts, dotted_name
from ckpt_lsp.analysis.indirect_calls import registry_object_key
from ckpt_lsp.analysis.nodes import walk

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ckpt_lsp.analysis.load_safety import LoadSafety
    from ckpt_lsp.weights_only import Refused

_LIMIT = 16  # entries judged; a larger registry is left unknown
_OBJECT_CALLS = frozenset({"build", "get"})


def registry_instance(
    safety: LoadSafety, call: ast.Call, env: Mapping[str, Refused | None]
) -> Refused | None:
    """The refusal every entry of `REGISTRY[key](...)` gives, else None."""
    func = call.func
    if not isinstance(func, ast.Subscript) or not isinstance(func.value, ast.Name):
        return None
    name = func.value.id
    facts = safety.facts
    if name in env or name in facts.imports:
        return None
    display = facts.assigns.get(name)
    if not isinstance(display, ast.Dict):
        return None
    values: list[ast.expr] = display.values
    if not display.values:  # `POLICIES = {}` a decorator fills
        key = ("decorated-entries", facts.path, name)
        entries = safety.memo.get(key)
        if not isinstance(entries, list):
            entries = safety.memo[key] = decorated_entries(facts, name)
        values = entries
    elif None in display.keys or changed(name, facts.text):
        return None
    if not 0 < len(values) <= _LIMIT:
        return None
    found: Refused | None = None
    mixed = False
    options: list[Refused] = []
    for value in values:
        if isinstance(value, ast.Lambda):  # `"huber": lambda c: nn.HuberLoss(c.delta)`
            refused = safety.of_expression(value.body)  # its parameters not known
        elif not dotted_name(value):
            return None
        else:
            built = ast.copy_location(
                ast.Call(func=value, args=call.args, keywords=call.keywords), call
            )
            refused = safety.of_expression(built)
        if refused is None:
            return None
        if found is not None and found.type_name != refused.type_name:
            mixed = True
        found = found or refused
        options.append(refused)
    if found is not None and mixed:
        # instances of several classes: refused whole; what an attribute holds depends on
        # the class the key picks (load_safety asks each that sets it)
        cleared = replace(found, type_name="", built=None, fields=(), passed=())
        return replace(cleared, options=tuple(options))
    return found


def decorated_entries(facts: ModuleFacts, name: str) -> list[ast.expr]:
    """The classes and functions a decorator of the module registers in the module-level
    dict `name` (`@register_policy("dqn")` storing `POLICIES[key] = cls`); empty when the
    module stores into it elsewhere, rebinds it or calls a method that may change it."""
    entries: list[ast.expr] = []
    makers: set[str] = set()
    for cls in facts.classes.values():
        if name in decorator_registries(facts, cls.decorators):
            entries.append(ast.Name(id=cls.name, ctx=ast.Load()))
            makers.update(_maker_names(cls.decorators))
    for func_name, func in facts.functions.items():
        if name in decorator_registries(facts, func.decorator_list):
            entries.append(ast.Name(id=func_name, ctx=ast.Load()))
            makers.update(_maker_names(func.decorator_list))
    escaped = re.escape(name)
    stores = len(re.findall(rf"\b{escaped}\s*\[[^\n]*?\]\s*(=[^=]|\|=)", facts.text))
    inside = sum(_stores_in(facts.functions.get(m), name) for m in makers)
    mutated = re.search(
        rf"\b{escaped}\s*\.\s*(?!get\b|keys\b|items\b|values\b)\w+\s*\(", facts.text
    )
    rebound = len(re.findall(rf"^\s*{escaped}\s*(:[^=\n]*)?=[^=]", facts.text, re.M)) > 1
    if stores != inside or mutated or rebound:
        return []
    return entries


def _maker_names(decorators: list[ast.expr]) -> set[str]:
    return {
        d.func.id for d in decorators if isinstance(d, ast.Call) and isinstance(d.func, ast.Name)
    }


def _stores_in(maker: ast.AST | None, name: str) -> int:
    """The stores into `name[...]` a decorator maker's body makes."""
    if maker is None:
        return 0
    return sum(
        1
        for node in walk(maker)
        if isinstance(node, ast.Assign)
        and any(
            isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and t.value.id == name
            for t in node.targets
        )
    )


def changed(name: str, text: str) -> bool:
    """The module stores into the registry, rebinds it or calls a method on it."""
    escaped = re.escape(name)
    stored = rf"\b{escaped}\s*\[[^\n]*?\]\s*(=[^=]|\|=)|\b{escaped}\s*\.\s*\w+\s*\("
    rebound = rf"^\s*{escaped}\s*(:[^=\n]*)?=[^=]"
    return bool(re.search(stored, text)) or len(re.findall(rebound, text, re.M)) > 1


def registry_object_instance(
    safety: LoadSafety, call: ast.Call, env: Mapping[str, Refused | None]
) -> Refused | None:
    """`ENCODERS.build("gru", hidden=8)` or `NORMS.get(name)` of a Registry object this module
    builds and fills (`@ENCODERS.register("gru")` on classes, `NORMS.register("ln", obj)` at
    module level): the refusal every entry gives, built with the other arguments or as held."""
    func = call.func
    if not (
        isinstance(func, ast.Attribute)
        and func.attr in _OBJECT_CALLS
        and isinstance(func.value, ast.Name)
        and call.args
        and not isinstance(call.args[0], ast.Starred)
    ):
        return None
    name = func.value.id
    facts = safety.facts
    if name in env or not isinstance(facts.assigns.get(name), ast.Call):
        return None
    if func.attr == "get" and (len(call.args) != 1 or call.keywords):
        return None
    key = ("registry-entries", facts.path, name)
    entries = safety.memo.get(key)
    if not isinstance(entries, list):  # `CFG.get("lr")` of any module-level object: once
        entries = safety.memo[key] = registered_entries(facts, name)
    found: Refused | None = None
    for entry in entries:
        held = ast.copy_location(entry, call)
        if func.attr == "build":
            built = ast.Call(func=held, args=call.args[1:], keywords=call.keywords)
            held = ast.copy_location(built, call)
        refused = safety.of_expression(held)
        if refused is None:
            return None
        found = found or refused
    return found


def registered_entries(facts: ModuleFacts, name: str) -> list[ast.expr]:
    """What the module registers in the Registry object `name`: the classes a decorator of it
    registers and the objects a module-level `name.register(key, obj)` does; empty when some
    entry is not known (a decorated function, a registration the text spreads over lines)."""
    entries: list[ast.expr] = []
    for cls in facts.classes.values():
        if any((registry_object_key(facts, d) or ("",))[0] == name for d in cls.decorators):
            entries.append(ast.Name(id=cls.name, ctx=ast.Load()))
    escaped = re.escape(name)
    decorated = re.findall(rf"^[ \t]*@{escaped}\s*\.\s*register", facts.text, re.M)
    if len(decorated) != len(entries):
        return []  # a decorated function: what it builds is its own business
    for line in re.findall(rf"^{escaped}\s*\.\s*register\s*\(.*$", facts.text, re.M):
        try:
            stmt = ast.parse(line).body[0]
        except SyntaxError:
            return []
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        if not isinstance(call, ast.Call):
            return []
        given = [k.value for k in call.keywords if k.arg in ("obj", "module", "cls")]
        held = call.args[1] if len(call.args) == 2 else (given[0] if given else None)
        if held is None:
            return []
        entries.append(held)
    return entries if len(entries) <= _LIMIT else []
