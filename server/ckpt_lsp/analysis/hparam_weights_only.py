"""Whether the default `torch.load` (weights_only=True since torch 2.6) refuses a hyperparameter.

Objects (a module, a loss, a numpy scalar, a Path, a Namespace, a project class instance...)
are the weights-only judge's business (load_safety.py and its catalog, data/weights_only.toml).
Hyperparameters add what a constructor argument often is and a checkpoint entry rarely: a
function or class object (`F.gelu`, `torch.optim.Adam`, `nn.ReLU`, `len`) or a
`functools.partial` of one, all refused (measured with torch 2.13: "Unsupported global").
And a parameter's annotation decides only when its value is unknown, so this module also
says when a value is known to load: None, numbers, strings, tensors' plain companions, and
lists, tuples, sets and dicts of those.

Each answer is a short noun phrase, SAFE ("") when the value loads, or UNKNOWN.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.assignments import OPAQUE
from ckpt_lsp.analysis.facts import dotted_name
from ckpt_lsp.analysis.load_safety import LoadSafety
from ckpt_lsp.weights_only import Refused

if TYPE_CHECKING:
    from ckpt_lsp.analysis.value_context import ValueContext

UNKNOWN = "?"
SAFE = ""
_DEPTH = 6

# Calls whose result loads whatever their arguments are (or holds only what they hold).
_SAFE_BUILTINS = frozenset(
    {"int", "float", "str", "bool", "bytes", "len", "round", "abs", "sum", "repr", "hash"}
)
_SAFE_CALLS = frozenset(
    {
        "omegaconf.OmegaConf.to_container",
        "dataclasses.asdict",
        "builtins.vars",
        "torch.device",
        "torch.Size",
    }
)
# Methods whose result is plain data whatever the receiver.
_PLAIN_METHODS = frozenset({"item", "tolist", "state_dict", "isoformat", "as_posix"})
# Library namespaces whose attributes, read without a call, are functions or classes.
_CALLABLE_NAMESPACES = (
    "torch.nn.",
    "torch.optim.",
    "torch.utils.data.",
    "torch.distributions.",
    "numpy.",
    "math.",
    "operator.",
    "sklearn.",
    "lightning.",
    "pytorch_lightning.",
)
# Packages whose capitalized names are classes, none of which torch's allow-list holds: an
# instance (a callback, a logger, a dataset, a distribution) is refused like any object.
_CLASS_PACKAGES = (
    "torch.utils.data.",
    "torch.distributions.",
    "lightning.",
    "pytorch_lightning.",
)
# Attributes of those namespaces that are plain values, which load.
_PLAIN_CONSTANTS = frozenset(
    {"numpy.pi", "numpy.e", "numpy.inf", "numpy.nan", "numpy.newaxis", "math.pi", "math.e"}
    | {"math.inf", "math.nan", "math.tau"}
)
_CONFIG = "an OmegaConf config (`DictConfig`/`ListConfig`)"
_PARTIALS = frozenset({"functools.partial", "functools.partialmethod"})
_CALLABLE_TYPES = frozenset({"typing.Callable", "collections.abc.Callable"})
_CLASS_TYPES = frozenset({"builtins.type", "typing.Type"})
_CONTAINER_TYPES = frozenset(
    {"list", "List", "Sequence", "Iterable", "tuple", "Tuple", "set", "Set", "dict", "Dict"}
    | {"Mapping", "MutableMapping", "MutableSequence"}
)


def _what(refused: Refused | None) -> str:
    return refused.what if refused is not None else SAFE


def _safety(ctx: ValueContext) -> LoadSafety:
    return LoadSafety(ctx.facts, ctx.owner.index)


def judge_env(ctx: ValueContext, safety: LoadSafety) -> dict[str, Refused | None]:
    """What the local names hold, as the weights-only judge takes them (each judged with the
    names bound before it: `train = df.iloc[:-24]` after `df = series()`)."""
    env: dict[str, Refused | None] = {}
    for name, binding in ctx.env.bindings.items():
        env[name] = safety.kind_of(binding, env) if isinstance(binding, ast.expr) else None
    return env


def refused_value(expr: ast.expr, ctx: ValueContext, depth: int = 0) -> str:
    """What the default load refuses in `expr`; SAFE, or UNKNOWN when syntax cannot tell."""
    if depth > _DEPTH:
        return UNKNOWN
    if isinstance(expr, (ast.Constant, ast.JoinedStr)):
        return SAFE
    if isinstance(expr, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
        items = list(expr.values) if isinstance(expr, ast.Dict) else list(expr.elts)
        items += [k for k in getattr(expr, "keys", []) if k is not None]
        found = _all_of(items, ctx, depth)
        return f"a container holding {found}" if found not in (SAFE, UNKNOWN) else found
    if isinstance(expr, ast.UnaryOp):
        return _all_of([expr.operand], ctx, depth)
    if isinstance(expr, ast.BinOp):
        joined = _judged(expr, ctx)  # `root / "name"` is a Path
        return joined or _all_of([expr.left, expr.right], ctx, depth)
    if isinstance(expr, ast.IfExp):
        return _all_of([expr.body, expr.orelse], ctx, depth)
    if isinstance(expr, ast.Call):
        return _call(expr, ctx, depth)
    if isinstance(expr, ast.Name):
        return _name(expr, ctx, depth)
    if isinstance(expr, ast.Attribute):
        return _judged(expr, ctx) or _reference(expr, ctx)
    if isinstance(expr, ast.Subscript):
        return _item(expr, ctx)
    return UNKNOWN


def _item(expr: ast.Subscript, ctx: ValueContext) -> str:
    """`df["sr"].mode()[0]` (a method's result indexed) as the weights-only judge sees it;
    `stats()[0]`, an element unpacked from a helper's tuple, only by what the helper returns
    there (the tuple as a whole is refused for any refused element)."""
    safety = _safety(ctx)
    env = judge_env(ctx, safety)
    value, index = expr.value, expr.slice
    if isinstance(value, ast.Call) and isinstance(index, ast.Constant):
        position = index.value
        items = safety.items_of(value, -1, env) if isinstance(position, int) else None
        if items is not None and isinstance(position, int) and -len(items) <= position < len(items):
            return _what(items[position]) if items[position] is not None else UNKNOWN
        head = dotted_name(value.func).split(".")[0]
        if not isinstance(value.func, ast.Attribute) or (head and head in ctx.facts.imports):
            return UNKNOWN  # a function's tuple, not a method's result (`s.mode()`)
    return _what(safety.of_expression(expr, env)) or UNKNOWN


def _judged(expr: ast.expr, ctx: ValueContext) -> str:
    """The weights-only judge's answer: a refusal, or "" (it loads or is not known)."""
    safety = _safety(ctx)
    return _what(safety.of_expression(expr, judge_env(ctx, safety)))


def _all_of(items: list[ast.expr], ctx: ValueContext, depth: int) -> str:
    """The first refused item; SAFE when every item is safe; else UNKNOWN."""
    unknown = False
    for item in items:
        found = refused_value(item, ctx, depth + 1)
        if found == UNKNOWN:
            unknown = True
        elif found:
            return found
    return UNKNOWN if unknown else SAFE


def _name(expr: ast.Name, ctx: ValueContext, depth: int) -> str:
    name = expr.id
    binding = ctx.env.bindings.get(name)
    if binding is OPAQUE:
        return UNKNOWN
    if isinstance(binding, ast.expr):
        return refused_value(binding, ctx, depth + 1)
    if binding is not None:
        return UNKNOWN  # a nested function or class: the classifier's (it does not pickle)
    if name in ("None", "True", "False"):
        return SAFE
    if name in ctx.facts.functions:
        return f"the function object `{name}`"
    if name in ctx.facts.classes:
        return f"the class object `{name}`"
    module_value = ctx._module_value(name)
    if module_value is not None:
        return refused_value(module_value[1], module_value[0], depth + 1)
    return _judged(expr, ctx) or _library_reference(ctx.qualify(name), name)


def _reference(expr: ast.Attribute, ctx: ValueContext) -> str:
    """`F.relu`, `torch.optim.Adam`, `nn.ReLU`: a library function or class, read not called."""
    dotted = dotted_name(expr)
    if not dotted or dotted.split(".")[0] in ctx.env.bindings:
        return UNKNOWN
    return _library_reference(ctx.qualify(dotted), dotted)


def _library_reference(qualified: str, written: str) -> str:
    if qualified in _PLAIN_CONSTANTS or qualified == "builtins.None":
        return SAFE
    if qualified.startswith("builtins.") and qualified.count(".") == 1:
        return f"the builtin `{written}`"
    if qualified.startswith(_CALLABLE_NAMESPACES):
        return f"the function or class object `{written}`"
    return UNKNOWN  # torch.float32 loads, torch.relu does not: not told by the name


def _call(call: ast.Call, ctx: ValueContext, depth: int) -> str:
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in _PLAIN_METHODS:
        return SAFE
    dotted = dotted_name(func)
    local = bool(dotted) and dotted.split(".")[0] in ctx.env.bindings
    qualified = ctx.qualify(dotted) if dotted and not local else ""
    if qualified in _PARTIALS:
        return f"a `functools.partial` (`{dotted}(...)`)"
    if qualified in _SAFE_CALLS:
        return SAFE
    if qualified.startswith("builtins.") and qualified[len("builtins.") :] in _SAFE_BUILTINS:
        return SAFE
    if qualified in ("builtins.list", "builtins.tuple", "builtins.set", "builtins.dict"):
        if any(_is_config(arg, ctx) for arg in call.args):
            return UNKNOWN  # `list(cfg.milestones)` holds the config's entries, not the config
        found = _all_of([*call.args, *(kw.value for kw in call.keywords)], ctx, depth)
        return found if found else SAFE
    judged = _judged(call, ctx)
    if judged:
        return judged
    last = qualified.rsplit(".", 1)[-1]
    if qualified.startswith(_CLASS_PACKAGES) and last[:1].isupper():
        return f"a `{last}` object"
    return UNKNOWN


def config_member(expr: ast.expr, annotation: ast.expr | None, ctx: ValueContext) -> str:
    """What a member of an OmegaConf config is, when the annotation says it is a container.

    `cfg.optim.milestones` and `cfg["model"]` of a DictConfig are a ListConfig and a
    DictConfig when the entry holds a list or a dict (omegaconf wraps nested containers;
    measured: the default load refuses both), and a plain number or string otherwise. The
    syntax cannot tell which, the parameter's container annotation (`List[int]`) can."""
    if not isinstance(expr, (ast.Attribute, ast.Subscript)) or not _container(annotation, ctx):
        return SAFE
    base: ast.expr = expr
    while isinstance(base, (ast.Attribute, ast.Subscript)):
        base = base.value
    return _CONFIG if _is_config(base, ctx) else SAFE


def _is_config(expr: ast.expr, ctx: ValueContext) -> bool:
    """The weights-only judge takes `expr` for an OmegaConf DictConfig or ListConfig."""
    safety = _safety(ctx)
    refused = safety.of_expression(expr, judge_env(ctx, safety))
    return refused is not None and refused.kind == "omegaconf"


def _container(annotation: ast.expr | None, ctx: ValueContext, depth: int = 0) -> bool:
    """The annotation names only containers (`List[int]`, `dict`, `Optional[Sequence[str]]`)."""
    if annotation is None or depth > _DEPTH:
        return False
    if isinstance(annotation, ast.Subscript):
        outer = dotted_name(annotation.value).rsplit(".", 1)[-1]
        args = annotation.slice
        members = list(args.elts) if isinstance(args, ast.Tuple) else [args]
        if outer in ("Optional", "Union"):
            kept = [m for m in members if dotted_name(m) != "None"]
            kept = [m for m in kept if not (isinstance(m, ast.Constant) and m.value is None)]
            return bool(kept) and all(_container(m, ctx, depth + 1) for m in kept)
        return outer in _CONTAINER_TYPES
    return dotted_name(annotation).rsplit(".", 1)[-1] in _CONTAINER_TYPES


def refused_annotation(annotation: ast.expr | None, ctx: ValueContext, depth: int = 0) -> str:
    """What the default load refuses in any value of the annotated type ("" when some value
    of it loads, as `Optional[Path]` with None or `Union[str, Path]` with a str)."""
    if annotation is None or depth > _DEPTH:
        return SAFE
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        try:
            parsed = ast.parse(annotation.value, mode="eval").body
        except SyntaxError:
            return SAFE
        return refused_annotation(parsed, ctx, depth + 1)
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return _every(_union_members(annotation), ctx, depth)
    if isinstance(annotation, ast.Subscript):
        return _generic(annotation, ctx, depth)
    qualified = ctx.qualify(dotted_name(annotation))
    if qualified in _CALLABLE_TYPES:
        return "a callable (a function, a class or an object)"
    if qualified in _CLASS_TYPES:
        return "a class object"
    return _what(_safety(ctx).of_annotation(annotation))


def _generic(annotation: ast.Subscript, ctx: ValueContext, depth: int) -> str:
    """`Optional[X]`, `Union[...]`, `Callable[...]`, `type[X]`, `list[X]`, `dict[K, V]`."""
    outer = dotted_name(annotation.value).rsplit(".", 1)[-1]
    args = annotation.slice
    members = list(args.elts) if isinstance(args, ast.Tuple) else [args]
    if outer in ("Optional", "Union"):
        return _every(members, ctx, depth)
    if outer in ("Annotated", "Final", "ClassVar"):
        return refused_annotation(members[0], ctx, depth + 1)
    if outer in ("Callable", "Type", "type"):
        return refused_annotation(annotation.value, ctx, depth + 1)
    if outer in _CONTAINER_TYPES:
        inner = [m for m in members if not (isinstance(m, ast.Constant) and m.value is ...)]
        judged = (refused_annotation(m, ctx, depth + 1) for m in inner)
        found = next((f for f in judged if f), SAFE)
        return f"a container of {found}" if found else SAFE
    return _what(_safety(ctx).of_annotation(annotation))


def _union_members(annotation: ast.expr) -> list[ast.expr]:
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return [*_union_members(annotation.left), *_union_members(annotation.right)]
    return [annotation]


def _every(members: list[ast.expr], ctx: ValueContext, depth: int) -> str:
    """Refused only when every member but None is (`Optional[nn.Module]`; not `str | Path`)."""
    kept = [m for m in members if not (isinstance(m, ast.Constant) and m.value is None)]
    kept = [m for m in kept if dotted_name(m) != "None"]
    found = [refused_annotation(m, ctx, depth + 1) for m in kept]
    return found[0] if found and all(found) else SAFE
