"""`rng.choice(SPACE["hidden"])`: one item drawn from a sequence is a numpy value.

A numpy generator's `choice` without a size returns one item of its first argument, as a
numpy scalar when that argument is a sequence or an array (`np.int64`, `np.str_`, refused by
the default load) and as a Python int when it is a number (`rng.choice(5)`, which loads;
measured with numpy 2 and torch 2.13). So the draw is refused only when the argument is
certainly a sequence: a list or tuple display, a comprehension, `range(...)`, a numpy array,
or a module-level name (or constant-key entry of a module-level dict display) bound to one.
"""

from __future__ import annotations

import ast
from dataclasses import replace
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.local_flow import NUMBER_MARK
from ckpt_lsp.analysis.names import qualify
from ckpt_lsp.analysis.registry_calls import changed

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ckpt_lsp.analysis.load_safety import LoadSafety
    from ckpt_lsp.weights_only import Refused

_GENERATORS = frozenset({"numpy-generator"})
_SEQUENCES = frozenset({"builtins.range", "builtins.list", "builtins.tuple", "builtins.sorted"})


def drawn_item(
    safety: LoadSafety, call: ast.Call, kind: str, method: str, env: Mapping[str, Refused | None]
) -> Refused | None:
    """The numpy scalar an unsized `choice` of a sequence returns, else None."""
    if kind not in _GENERATORS or method != "choice" or not call.args:
        return None
    if not _sequence(safety, call.args[0], env, 0):
        return None
    item = safety.catalog.kind("numpy-scalar")
    return replace(item, fix="") if item is not None else None


def _sequence(
    safety: LoadSafety, arg: ast.expr, env: Mapping[str, Refused | None], hops: int
) -> bool:
    if isinstance(arg, (ast.List, ast.Tuple)):
        # numbers or strings become a typed array whose items are numpy values; `None`, a
        # dict or an object make an object array, whose items come back as they were
        return bool(arg.elts) and all(_plain_constant(e) for e in arg.elts)
    facts = safety.facts
    if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and arg.func.id not in env:
        return qualify(arg.func.id, facts) in _SEQUENCES
    judged = safety.kind_of(arg, env)
    if judged is not None and judged.kind == "numpy-array":
        return True
    if hops > 2:
        return False
    if isinstance(arg, ast.Name) and arg.id not in env and arg.id not in facts.imports:
        if changed(arg.id, facts.text):
            return False
        bound = facts.assigns.get(arg.id)
        return bound is not None and _sequence(safety, bound, {}, hops + 1)
    if isinstance(arg, ast.Subscript) and isinstance(arg.slice, ast.Constant):
        held = arg.value
        if not isinstance(held, ast.Name) or held.id in env or held.id in facts.imports:
            return False
        display = facts.assigns.get(held.id)
        if not isinstance(display, ast.Dict) or changed(held.id, facts.text):
            return False
        for key, value in zip(display.keys, display.values):
            if isinstance(key, ast.Constant) and key.value == arg.slice.value:
                return _sequence(safety, value, {}, hops + 1)
    return False


def draws_a_number(safety: LoadSafety, call: ast.Call, env: Mapping[str, Refused | None]) -> bool:
    """`np.random.choice(5)` / `np.random.choice(len(xs))`: a draw from a number is a Python
    int (measured), whatever the catalog says of a draw from a sequence."""
    if not call.args or len(call.args) > 1 or any(k.arg == "size" for k in call.keywords):
        return False
    first = call.args[0]
    if isinstance(first, ast.Constant):
        return isinstance(first.value, int) and not isinstance(first.value, bool)
    if isinstance(first, ast.Name):
        return NUMBER_MARK + first.id in env
    return (
        isinstance(first, ast.Call)
        and isinstance(first.func, ast.Name)
        and first.func.id not in env
        and qualify(first.func.id, safety.facts) in ("builtins.len", "builtins.int")
    )


def _plain_constant(node: ast.expr) -> bool:
    """A number, a string or a bool literal (a signed number too), never None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    return isinstance(node, ast.Constant) and node.value is not None and node.value is not ...
