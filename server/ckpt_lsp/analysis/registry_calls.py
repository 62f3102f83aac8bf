"""`LOSSES[cfg.name](**kwargs)`: an instance built from a registry of classes.

Factories often pick the class to build from a module-level dict display keyed by a config
string. Which key is taken is unknown, but when every class the registry holds builds a value
the default `torch.load` refuses (an `nn.Module` loss, a project object), so does the call.
A registry the module changes after its display (`LOSSES[name] = cls`, `LOSSES.update(...)`)
may hold anything, and one entry that is not a class or function name leaves it unknown.
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.facts import dotted_name

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ckpt_lsp.analysis.load_safety import LoadSafety
    from ckpt_lsp.weights_only import Refused

_LIMIT = 16  # entries judged; a larger registry is left unknown


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
    if not isinstance(display, ast.Dict) or not 0 < len(display.values) <= _LIMIT:
        return None
    if None in display.keys or changed(name, facts.text):
        return None
    found: Refused | None = None
    for value in display.values:
        if not dotted_name(value):
            return None
        built = ast.copy_location(
            ast.Call(func=value, args=call.args, keywords=call.keywords), call
        )
        refused = safety.of_expression(built)
        if refused is None:
            return None
        found = found or refused
    return found


def changed(name: str, text: str) -> bool:
    """The module stores into the registry, rebinds it or calls a method on it."""
    escaped = re.escape(name)
    stored = rf"\b{escaped}\s*\[[^\n]*?\]\s*(=[^=]|\|=)|\b{escaped}\s*\.\s*\w+\s*\("
    rebound = rf"^\s*{escaped}\s*(:[^=\n]*)?=[^=]"
    return bool(re.search(stored, text)) or len(re.findall(rebound, text, re.M)) > 1
