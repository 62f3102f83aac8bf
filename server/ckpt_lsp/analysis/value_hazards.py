"""Hazards that syntax alone names, and the tests of a call's arguments that decide
whether a catalog call is one (a safe keyword, a file suffix, an object dtype).
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.facts import dotted_name
from ckpt_lsp.catalog import ALL_PATHS, Hazard, library_facts

if TYPE_CHECKING:
    from ckpt_lsp.analysis.value_context import ValueContext

CALLABLE_BREAKS = ("pickle", "torch.save", "spawn")

_LIBRARY = library_facts()
_TYPE_ALIASES = _LIBRARY.type_aliases
_OBJECT_DTYPE_NAMES = _LIBRARY.object_dtype_names
_OBJECT_DTYPE_STRINGS = _LIBRARY.object_dtype_strings
# Position of the dtype argument when given positionally.
_DTYPE_POSITION = _LIBRARY.dtype_positions


def lambda_hazard() -> Hazard:
    return Hazard("CKPT003", "a lambda", CALLABLE_BREAKS)


def generator_hazard(what: str = "a generator") -> Hazard:
    return Hazard("CKPT006", what, ALL_PATHS)


OBJECT_ARRAY = Hazard("CKPT004", "an object-dtype numpy array", ("weights_only",))


def canonical_type(qualified: str) -> str:
    return _TYPE_ALIASES.get(qualified, qualified)


def makes_class(call: ast.Call, qualified: str) -> bool:
    if qualified == "builtins.type":
        return len(call.args) == 3
    return bool(call.args)


def made_safe(call: ast.Call, hazard: Hazard) -> bool:
    for name, value in hazard.safe_when:
        for kw in call.keywords:
            if kw.arg == name and isinstance(kw.value, ast.Constant) and kw.value.value == value:
                return True
    return False


def mentions_suffix(call: ast.Call, suffix: str) -> bool:
    for arg in [*call.args, *(kw.value for kw in call.keywords)]:
        for node in ast.walk(arg):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value.endswith(suffix)
            ):
                return True
    return False


def container_word(expr: ast.expr) -> str:
    if isinstance(expr, (ast.List, ast.ListComp)):
        return "a list"
    if isinstance(expr, ast.Tuple):
        return "a tuple"
    return "a set"


def module_hazard(qualified: str) -> Hazard:
    return Hazard("CKPT007", f"the module `{qualified}`", ALL_PATHS)


def is_known_value(expr: ast.expr) -> bool:
    """Receivers that are plainly not modules (literals), so `.modules()` is theirs."""
    return isinstance(expr, (ast.Constant, ast.List, ast.Dict, ast.Tuple, ast.Set))


def is_object_dtype(expr: ast.expr, ctx: ValueContext) -> bool:
    if isinstance(expr, ast.Constant) and expr.value in _OBJECT_DTYPE_STRINGS:
        return True
    if isinstance(expr, (ast.List, ast.Tuple)):  # structured: [("id", "i4"), ("obj", "O")]
        return any(
            isinstance(field, ast.Tuple)
            and len(field.elts) >= 2
            and is_object_dtype(field.elts[1], ctx)
            for field in expr.elts
        )
    dotted = dotted_name(expr)
    return bool(dotted) and ctx.qualify(dotted) in _OBJECT_DTYPE_NAMES


def has_object_dtype(call: ast.Call, qualified: str, ctx: ValueContext) -> bool:
    for kw in call.keywords:
        if kw.arg == "dtype":
            return is_object_dtype(kw.value, ctx)
    name = qualified.rsplit(".", 1)[-1]
    position = _DTYPE_POSITION.get(name, 1)
    if len(call.args) > position:
        return is_object_dtype(call.args[position], ctx)
    # No dtype: numpy infers object from None (np.full(n, None), np.array([1, None]))
    if name in ("full", "full_like"):
        fill = call.args[1] if len(call.args) > 1 else None
        fill = next((kw.value for kw in call.keywords if kw.arg == "fill_value"), fill)
        return isinstance(fill, ast.Constant) and fill.value is None
    if name in ("array", "asarray", "asanyarray") and call.args:
        return literal_holds_none(call.args[0])
    return False


def literal_holds_none(expr: ast.expr) -> bool:
    """A literal numpy can only store as objects: it holds None, dicts or sets."""
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Mult):
        return literal_holds_none(expr.left) or literal_holds_none(expr.right)
    if isinstance(expr, (ast.List, ast.Tuple)):
        return any(
            (isinstance(e, ast.Constant) and e.value is None)
            or isinstance(e, (ast.Dict, ast.Set, ast.DictComp))
            or literal_holds_none(e)
            for e in expr.elts
        )
    return False
