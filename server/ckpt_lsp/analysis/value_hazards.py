"""Hazards that syntax alone names, and the tests of a call's arguments that decide
whether a catalog call is one (a safe keyword, a file suffix, an object dtype).
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.facts import dotted_name
from ckpt_lsp.analysis.nodes import walk
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
        for node in walk(arg):
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


STRING_ARRAY = Hazard(
    "CKPT004",
    "a StringDType numpy array (np.save stores it only with pickle)",
    ("weights_only",),
)


def is_string_dtype(expr: ast.expr, ctx: ValueContext) -> bool:
    """numpy 2's StringDType: `dtype="T"`, `dtype=np.dtypes.StringDType()`."""
    if isinstance(expr, ast.Constant):
        return expr.value in _LIBRARY.string_dtype_strings
    if isinstance(expr, ast.Call):
        return ctx.qualify(dotted_name(expr.func)) in _LIBRARY.string_dtype_calls
    return False


def has_string_dtype(call: ast.Call, qualified: str, ctx: ValueContext) -> bool:
    for kw in call.keywords:
        if kw.arg == "dtype":
            return is_string_dtype(kw.value, ctx)
    position = _DTYPE_POSITION.get(qualified.rsplit(".", 1)[-1], 1)
    return len(call.args) > position and is_string_dtype(call.args[position], ctx)


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
    return False


# -- arrays numpy makes object-dtype on its own --------------------------------------
_OBJECT_ELEMENTS = _LIBRARY.object_elements
_WRAPPED_WHOLE = _LIBRARY.wrapped_whole
# Constructors that infer the dtype from their first argument when none is given.
INFERRING = frozenset({"array", "asarray", "asanyarray"})
_INT64_MIN, _UINT64_END = -(2**63), 2**64
# Calls that copy the elements of their argument into a list.
_COPIES = frozenset({"builtins.list", "builtins.tuple", "builtins.sorted"})
# Methods of dates, Paths and Decimals that return a value of the same type.
_SAME_TYPE_METHODS = frozenset(
    {
        "quantize",
        "normalize",
        "copy_abs",
        "copy_negate",
        "replace",
        "astimezone",
        "with_suffix",
        "with_name",
        "with_stem",
        "joinpath",
        "resolve",
        "absolute",
        "expanduser",
        "relative_to",
    }
)
_FOLD_DEPTH = 6


_DICTS = frozenset(
    {
        "builtins.dict",
        "builtins.dict.fromkeys",
        "builtins.vars",
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.Counter",
    }
)


def is_dict_value(expr: ast.expr, ctx: ValueContext, depth: int = 0) -> bool:
    """A dict literal, comprehension or constructor, or a local name bound to one."""
    if isinstance(expr, (ast.Dict, ast.DictComp)):
        return True
    if isinstance(expr, ast.Call):
        return ctx.qualify(dotted_name(expr.func)) in _DICTS
    if isinstance(expr, ast.Attribute):
        if isinstance(expr.value, ast.Name) and expr.value.id == "self":
            return ctx.types.get(expr.attr, "") in _DICTS  # self.vocab = {} or Counter()
        return expr.attr == "__dict__"
    bound = _bound(expr, ctx, frozenset())
    return bound is not None and depth < _FOLD_DEPTH and is_dict_value(bound, ctx, depth + 1)


def dtype_given(call: ast.Call, qualified: str) -> bool:
    if any(kw.arg == "dtype" for kw in call.keywords):
        return True
    return len(call.args) > _DTYPE_POSITION.get(qualified.rsplit(".", 1)[-1], 1)


def _bound(expr: ast.expr, ctx: ValueContext, shadow: frozenset[str]) -> ast.expr | None:
    """The expression a local name holds (a parameter's default included), else None."""
    if not isinstance(expr, ast.Name) or expr.id in shadow:
        return None
    binding = ctx.env.bindings.get(expr.id)
    return binding if isinstance(binding, ast.expr) else None


def wrapped_whole(expr: ast.expr, ctx: ValueContext, depth: int = 0) -> str:
    """What numpy wraps whole in a 0-d object array: a set, a dict or an iterator."""
    if depth > _FOLD_DEPTH:
        return ""
    if isinstance(expr, (ast.Set, ast.SetComp)):
        return "a set"
    if isinstance(expr, (ast.Dict, ast.DictComp)):
        return "a dict"
    if isinstance(expr, ast.Call):
        qualified = ctx.qualify(dotted_name(expr.func))
        if qualified in _WRAPPED_WHOLE and not (qualified == "builtins.iter" and not expr.args):
            return f"a `{qualified.rsplit('.', 1)[-1]}` object"
        return ""
    bound = _bound(expr, ctx, frozenset())
    return wrapped_whole(bound, ctx, depth + 1) if bound is not None else ""


def object_element(
    expr: ast.expr, ctx: ValueContext, shadow: frozenset[str] = frozenset(), depth: int = 0
) -> str:
    """An element of a list or tuple that numpy can only store as an object: None, a dict
    or set, a date, a Path, a Decimal, an int outside int64 and uint64. Lists nest."""
    if depth > _FOLD_DEPTH:
        return ""
    if isinstance(expr, ast.Constant):
        if expr.value is None:
            return "None"
        return "an int beyond 64 bits" if _huge(expr) else ""
    if isinstance(expr, (ast.Dict, ast.DictComp)):
        return "a dict"
    if isinstance(expr, (ast.Set, ast.SetComp)):
        return "a set"
    if isinstance(expr, (ast.List, ast.Tuple, ast.ListComp, ast.BinOp)):
        held = object_elements(expr, ctx, shadow, depth + 1)
        if held:
            return held
    if isinstance(expr, (ast.UnaryOp, ast.BinOp)):
        value = _fold_int(expr, 0)
        if value is not None:  # `2**64 - 1` fits uint64 though `2**64` does not
            return "" if _INT64_MIN <= value < _UINT64_END else "an int beyond 64 bits"
    if isinstance(expr, ast.BinOp):
        # date + timedelta is a date, Decimal * 2 a Decimal, root / "name" a Path
        left = object_element(expr.left, ctx, shadow, depth + 1)
        if isinstance(expr.op, ast.Div):
            return left
        if isinstance(expr.op, (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)):
            found = left or object_element(expr.right, ctx, shadow, depth + 1)
            return "" if found in ("None", "a dict", "a set") else found
        return ""
    if isinstance(expr, ast.Call):
        func = expr.func
        if isinstance(func, ast.Attribute) and func.attr in _SAME_TYPE_METHODS:
            # Decimal(x).quantize(q), day.replace(...), path.with_suffix(...)
            return object_element(func.value, ctx, shadow, depth + 1)
        qualified = ctx.qualify(dotted_name(func))
        if qualified in ("builtins.round", "builtins.abs") and expr.args:
            return object_element(expr.args[0], ctx, shadow, depth + 1)  # round(Decimal, 2)
        return f"a `{qualified.rsplit('.', 1)[-1]}`" if qualified in _OBJECT_ELEMENTS else ""
    if isinstance(expr, ast.Attribute) and expr.attr == "parent":
        return object_element(expr.value, ctx, shadow, depth + 1)  # path.parent is a Path
    bound = _bound(expr, ctx, shadow)
    return object_element(bound, ctx, frozenset(), depth + 1) if bound is not None else ""


def object_elements(
    expr: ast.expr, ctx: ValueContext, shadow: frozenset[str] = frozenset(), depth: int = 0
) -> str:
    """The first element of a list, tuple or list comprehension (or a local name bound to
    one, with what was appended to it) that numpy stores as an object."""
    if depth > _FOLD_DEPTH:
        return ""
    if isinstance(expr, (ast.List, ast.Tuple)):
        items: list[ast.expr] = list(expr.elts)
    elif isinstance(expr, ast.ListComp):
        names = {n.id for g in expr.generators for n in walk(g.target) if isinstance(n, ast.Name)}
        return object_element(expr.elt, ctx, shadow | names, depth + 1)
    elif isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Mult):  # [None] * n
        return object_elements(expr.left, ctx, shadow, depth + 1) or object_elements(
            expr.right, ctx, shadow, depth + 1
        )
    elif isinstance(expr, ast.Call) and ctx.qualify(dotted_name(expr.func)) in _COPIES:
        # list(map(Decimal, raw)), sorted(paths), list(p for p in ...): the same elements
        return _copied_elements(expr, ctx, shadow, depth + 1)
    elif isinstance(expr, ast.Name):
        bound = _bound(expr, ctx, shadow)
        if not isinstance(bound, (ast.List, ast.Tuple, ast.ListComp, ast.Call)):
            return ""
        # what was appended later counts too: `xs = []; xs.append(None)`
        items = [*ctx.env.contents.get(expr.id, [])]
        found = object_elements(bound, ctx, frozenset(), depth + 1)
        if found:
            return found
    else:
        return ""
    for item in items:
        found = object_element(item, ctx, shadow, depth + 1)
        if found:
            return found
    return ""


def _copied_elements(call: ast.Call, ctx: ValueContext, shadow: frozenset[str], depth: int) -> str:
    if not call.args:
        return ""
    arg = call.args[0]
    if isinstance(arg, ast.GeneratorExp):
        names = {n.id for g in arg.generators for n in walk(g.target) if isinstance(n, ast.Name)}
        return object_element(arg.elt, ctx, shadow | names, depth + 1)
    if isinstance(arg, ast.Call) and ctx.qualify(dotted_name(arg.func)) == "builtins.map":
        if arg.args and not isinstance(arg.args[0], ast.Lambda):
            mapped = ctx.qualify(dotted_name(arg.args[0]))
            return f"a `{mapped.rsplit('.', 1)[-1]}`" if mapped in _OBJECT_ELEMENTS else ""
        return ""
    return object_elements(arg, ctx, shadow, depth + 1)


def _huge(expr: ast.expr) -> bool:
    value = _fold_int(expr, 0)
    return value is not None and not (_INT64_MIN <= value < _UINT64_END)


def _fold_int(expr: ast.expr, depth: int) -> int | None:
    """The value of an integer expression of constants (`2**64 + 13`, `-(2**63) - 5`)."""
    if depth > _FOLD_DEPTH:
        return None
    if isinstance(expr, ast.Constant):
        value = expr.value
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, (ast.USub, ast.UAdd)):
        inner = _fold_int(expr.operand, depth + 1)
        if inner is None:
            return None
        return -inner if isinstance(expr.op, ast.USub) else inner
    if not isinstance(expr, ast.BinOp):
        return None
    left, right = _fold_int(expr.left, depth + 1), _fold_int(expr.right, depth + 1)
    if left is None or right is None:
        return None
    if isinstance(expr.op, ast.Add):
        return left + right
    if isinstance(expr.op, ast.Sub):
        return left - right
    if isinstance(expr.op, ast.Mult) and abs(left) < 2**256 and abs(right) < 2**256:
        return left * right
    if isinstance(expr.op, ast.Pow) and 0 <= right <= 256 and abs(left) < 2**16:
        return int(left**right)
    if isinstance(expr.op, ast.LShift) and 0 <= right <= 256 and abs(left) < 2**64:
        return left << right
    return None
