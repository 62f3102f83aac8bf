"""Whether the default `torch.load` (weights_only=True since torch 2.6) refuses a hyperparameter.

Measured with torch 2.13 (`torch.save({"hyper_parameters": {"v": value}})`, then `torch.load`):
refused are any object of a class outside torch's allow-list (an `nn.Module`, a loss, an
optimizer, a scikit-learn estimator, a project class instance, a dataclass, an Enum member),
any function or class object (`F.relu`, `torch.optim.Adam`, `nn.ReLU`, `len`, a
`functools.partial`), numpy arrays and scalars, `Path`, `Namespace`, OmegaConf containers,
`defaultdict`, `deque`, `frozenset`, dates; loaded are None, bool, int, float, str, bytes,
tensors, `torch.dtype`/`torch.device`/`torch.Size`, and lists, tuples, sets and dicts of those.

Each answer is a short noun phrase ("" when the value is not refused) or UNKNOWN when the
syntax does not tell (a parameter passed on, a method's result): then the annotation decides.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.assignments import OPAQUE, walk_function
from ckpt_lsp.analysis.facts import ModuleFacts, dotted_name

if TYPE_CHECKING:
    from ckpt_lsp.analysis.value_context import ValueContext

UNKNOWN = "?"
SAFE = ""
_DEPTH = 6

# Library names a value of which the default load refuses, by prefix of the qualified name.
_REFUSED_PREFIXES = ("numpy.", "pathlib.", "datetime.", "uuid.", "decimal.", "fractions.")
_REFUSED_NAMES = frozenset(
    {
        "argparse.Namespace",
        "types.SimpleNamespace",
        "functools.partial",
        "collections.defaultdict",
        "collections.deque",
        "builtins.frozenset",
        "builtins.range",
        "builtins.slice",
        "builtins.type",
        "omegaconf.DictConfig",
        "omegaconf.ListConfig",
        "omegaconf.dictconfig.DictConfig",
        "omegaconf.listconfig.ListConfig",
        "omegaconf.OmegaConf.create",
        "omegaconf.OmegaConf.load",
        "omegaconf.OmegaConf.merge",
        "omegaconf.OmegaConf.structured",
        "omegaconf.OmegaConf.from_cli",
        "enum.Enum",
        "typing.Callable",
        "typing.Type",
        "collections.abc.Callable",
    }
)
# Packages whose capitalized names are classes whose instances the default load refuses.
_CLASS_PACKAGES = ("torch.", "sklearn.", "transformers.", "timm.", "torchvision.", "lightning.")
_LOADABLE = frozenset(
    {
        "torch.Tensor",
        "torch.device",
        "torch.Size",
        "torch.dtype",
        "torch.nn.Parameter",
        "torch.nn.parameter.Parameter",
        "collections.OrderedDict",
        "collections.Counter",
        "omegaconf.OmegaConf.to_container",
        "numpy.pi",
        "numpy.e",
        "numpy.inf",
        "numpy.nan",
        "numpy.newaxis",
    }
)
_SAFE_BUILTINS = frozenset(
    {
        "int",
        "float",
        "str",
        "bool",
        "bytes",
        "dict",
        "list",
        "tuple",
        "set",
        "len",
        "round",
        "abs",
        "min",
        "max",
        "sum",
        "sorted",
        "vars",
        "repr",
        "hash",
    }
)
# Methods whose result is plain data whatever the receiver.
_PLAIN_METHODS = frozenset(
    {"item", "tolist", "state_dict", "to_dict", "isoformat", "as_posix", "format", "lower"}
)
_TYPING_WRAPPERS = frozenset({"Optional", "Union", "Annotated", "Final", "ClassVar"})
_CONTAINER_TYPES = frozenset(
    {"list", "List", "Sequence", "Iterable", "tuple", "Tuple", "set", "Set", "dict", "Dict"}
    | {"Mapping", "MutableMapping", "MutableSequence"}
)


def _library_refuses(qualified: str) -> bool:
    """A library name (a call's callee, an annotation) whose objects the default load refuses."""
    if qualified in _LOADABLE:
        return False
    if qualified in _REFUSED_NAMES or qualified.startswith(_REFUSED_PREFIXES):
        return True
    last = qualified.rsplit(".", 1)[-1]
    return qualified.startswith(_CLASS_PACKAGES) and last[:1].isupper()


def refused_value(expr: ast.expr, ctx: ValueContext, depth: int = 0) -> str:
    """What the default load refuses in `expr`; SAFE, or UNKNOWN when syntax cannot tell."""
    if depth > _DEPTH:
        return UNKNOWN
    if isinstance(expr, (ast.Constant, ast.JoinedStr)):
        return SAFE
    if isinstance(expr, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
        items = list(expr.values) if isinstance(expr, ast.Dict) else list(expr.elts)
        items += [k for k in getattr(expr, "keys", []) if k is not None]
        return _all_of(items, ctx, depth, "a container holding ")
    if isinstance(expr, (ast.UnaryOp, ast.BinOp)):
        parts = [expr.operand] if isinstance(expr, ast.UnaryOp) else [expr.left, expr.right]
        return _all_of(parts, ctx, depth, "")
    if isinstance(expr, ast.IfExp):
        return _all_of([expr.body, expr.orelse], ctx, depth, "")
    if isinstance(expr, ast.Call):
        return _call(expr, ctx, depth)
    if isinstance(expr, ast.Name):
        return _name(expr.id, ctx, depth)
    if isinstance(expr, ast.Attribute):
        return _reference(expr, ctx, depth)
    return UNKNOWN


def _all_of(items: list[ast.expr], ctx: ValueContext, depth: int, prefix: str) -> str:
    """The first refused item; SAFE when every item is safe; else UNKNOWN."""
    unknown = False
    for item in items:
        found = refused_value(item, ctx, depth + 1)
        if found == UNKNOWN:
            unknown = True
        elif found:
            return f"{prefix}{found}"
    return UNKNOWN if unknown else SAFE


def _name(name: str, ctx: ValueContext, depth: int) -> str:
    binding = ctx.env.bindings.get(name)
    if binding is OPAQUE:
        return UNKNOWN
    if isinstance(binding, ast.expr):
        return refused_value(binding, ctx, depth + 1)
    if binding is not None:
        return UNKNOWN
    if name in ("None", "True", "False"):
        return SAFE
    if name in ctx.facts.functions:
        return f"the function object `{name}`"
    if name in ctx.facts.classes:
        return f"the class object `{name}`"
    module_value = ctx._module_value(name)
    if module_value is not None:
        return refused_value(module_value[1], module_value[0], depth + 1)
    qualified = ctx.qualify(name)
    return _library_reference(qualified, name)


def _reference(expr: ast.Attribute, ctx: ValueContext, depth: int) -> str:
    """`F.relu`, `torch.optim.Adam`, `Color.RED`, `torch.float32`: a name read, not called."""
    dotted = dotted_name(expr)
    if not dotted or dotted.split(".")[0] in ctx.env.bindings:
        return UNKNOWN
    head = dotted.split(".")[0]
    owner = ctx.facts.classes.get(head)
    if owner is not None and dotted.count(".") == 1:
        if any(b.rsplit(".", 1)[-1] in ("Enum", "IntEnum", "StrEnum", "Flag") for b in owner.bases):
            return f"the Enum member `{dotted}`"
        return UNKNOWN
    return _library_reference(ctx.qualify(dotted), dotted)


def _library_reference(qualified: str, written: str) -> str:
    if qualified in _LOADABLE:
        return SAFE
    if qualified.startswith("builtins."):
        return f"the builtin `{written}`" if qualified != "builtins.None" else SAFE
    if qualified.startswith("torch.") and qualified.count(".") == 1:
        return UNKNOWN  # torch.float32 loads, torch.relu does not
    if qualified.startswith(("torch.", "numpy.", "math.", "operator.", "functools.", "sklearn.")):
        return f"the function or class object `{written}`"
    return UNKNOWN


def _call(call: ast.Call, ctx: ValueContext, depth: int) -> str:
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in _PLAIN_METHODS:
        return SAFE
    if isinstance(func, ast.Attribute) and func.attr in ("parse_args", "parse_known_args"):
        return "an argparse.Namespace (`parse_args()`)"
    dotted = dotted_name(func)
    if not dotted or dotted.split(".")[0] in ctx.env.bindings:
        return UNKNOWN
    head = dotted.split(".")[0]
    if dotted == head and head in ctx.facts.classes:
        return f"an instance of the project class `{head}`"
    if dotted == head and head in ctx.facts.functions:
        return _returned(ctx.facts, ctx.facts.functions[head], head, ctx, depth)
    qualified = ctx.qualify(dotted)
    last = qualified.rsplit(".", 1)[-1]
    if qualified.startswith("builtins.") and last in _SAFE_BUILTINS:
        return SAFE if last != "dict" else _all_of([k.value for k in call.keywords], ctx, depth, "")
    if qualified in _LOADABLE:
        return SAFE
    if _library_refuses(qualified):
        return f"a `{last}` object (`{dotted}(...)`)" if last[:1].isupper() else f"`{dotted}(...)`"
    if ctx.owner.index is not None and "." in qualified:
        found = ctx.owner.index.resolve_member(qualified, ctx.facts.path)
        if found is not None and found[1] in found[0].classes:
            return f"an instance of the project class `{found[1]}`"
        if found is not None and found[1] in found[0].functions:
            return _returned(found[0], found[0].functions[found[1]], dotted, ctx, depth)
    return UNKNOWN


def _returned(
    facts: ModuleFacts,
    func: ast.FunctionDef | ast.AsyncFunctionDef,
    label: str,
    ctx: ValueContext,
    depth: int,
) -> str:
    """What a project function returns: refused when any `return` is, SAFE when all are."""
    from ckpt_lsp.analysis.value_context import ValueContext

    _, returns = walk_function(func, facts.package, None)
    if not returns:
        return UNKNOWN
    unknown = False
    for value, env in returns:
        inner = ValueContext(ctx.owner, facts, None, env, {}, ctx.depth + 1)
        found = refused_value(value, inner, depth + 2)
        if found == UNKNOWN:
            unknown = True
        elif found:
            return f"{found} (returned by `{label}()`)"
    return UNKNOWN if unknown else SAFE


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
            found = next(
                (f for f in (refused_annotation(m, ctx, depth + 1) for m in inner) if f), ""
            )
            return f"a container of {found}" if found else SAFE
        return SAFE
    dotted = dotted_name(annotation)
    if not dotted:
        return SAFE
    if dotted in ctx.facts.classes:
        cls = ctx.facts.classes[dotted]
        if any(b.rsplit(".", 1)[-1] in ("TypedDict", "Protocol", "dict") for b in cls.bases):
            return SAFE
        return f"a `{dotted}` object"
    qualified = ctx.qualify(dotted)
    project = _project_class(qualified, ctx)
    if project is not None:
        return project
    if qualified in ("typing.Callable", "collections.abc.Callable"):
        return "a callable (a function, class or module object)"
    if qualified in ("builtins.type", "typing.Type"):
        return "a class object"
    if _library_refuses(qualified):
        return f"a `{dotted}` object"
    return SAFE


def _project_class(qualified: str, ctx: ValueContext) -> str | None:
    """A project class in another module: its objects are refused unless it is a dict."""
    index = ctx.owner.index
    if index is None or "." not in qualified:
        return None
    found = index.resolve_member(qualified, ctx.facts.path)
    if found is None or found[1] not in found[0].classes:
        return None
    cls = found[0].classes[found[1]]
    if any(b.rsplit(".", 1)[-1] in ("TypedDict", "Protocol", "dict") for b in cls.bases):
        return SAFE
    return f"a `{found[1]}` object"


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
