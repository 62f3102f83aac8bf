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
from ckpt_lsp.analysis.config_containers import CONVERTERS as CONFIG_CONVERTERS
from ckpt_lsp.analysis.dataclass_dicts import dict_keys
from ckpt_lsp.analysis.elements import held_item
from ckpt_lsp.analysis.facts import dotted_name
from ckpt_lsp.analysis.load_safety import LoadSafety, library_function, shared_judge
from ckpt_lsp.analysis.local_flow import item_key
from ckpt_lsp.analysis.nodes import body_nodes, walk
from ckpt_lsp.analysis.registry_calls import changed
from ckpt_lsp.weights_only import Refusal, Refused

if TYPE_CHECKING:
    from ckpt_lsp.analysis.call_sites import CallSite
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
# Of those, the ones that keep a field's Enum member or Path (a dataclass's, a structured
# config's): the weights-only judge says what they hold.
_KEEPING = CONFIG_CONVERTERS | {"dataclasses.asdict"}
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
# a column's values (str items for a string column) and object arrays of Python strings
_STRING_ITEMS = frozenset({"pandas-array", "numpy-object-array"})
# Builtins that collect the items of their argument (`sorted(arr)` holds numpy scalars).
_COLLECTING = frozenset(
    {"builtins.list", "builtins.tuple", "builtins.set", "builtins.dict", "builtins.sorted"}
)
# pandas kinds whose iteration yields plain Python values (labels, for a frame)
_PLAIN_ITERATED = frozenset(
    {"pandas-series", "pandas-number-series", "pandas-number-keyed-series"}
    | {"pandas-number-counts", "pandas-index", "pandas-number-index", "pandas-frame"}
    | {"pandas-time-frame", "pandas-number-keyed-frame"}
    | {"range"}  # `list(range(n))`, `dict(zip(names, range(n)))`: Python ints
)
_COPIED_CONFIGS = frozenset({"builtins.dict", "builtins.list", "builtins.tuple"})
_CONFIG = "an OmegaConf config (`DictConfig`/`ListConfig`)"
_PARTIALS = frozenset({"functools.partial", "functools.partialmethod"})
_CALLABLE_TYPES = frozenset({"typing.Callable", "collections.abc.Callable"})
_CLASS_TYPES = frozenset({"builtins.type", "typing.Type"})
_CONTAINER_TYPES = frozenset(
    {"list", "List", "Sequence", "Iterable", "tuple", "Tuple", "set", "Set", "dict", "Dict"}
    | {"Mapping", "MutableMapping", "MutableSequence"}
)


def _what(refused: Refused | None) -> str:
    return Refusal.of(refused) if refused is not None else SAFE


def _holding(what: str) -> str:
    """`a container holding ...`, excused by what excuses the item."""
    if isinstance(what, Refusal):
        return what.within("a container holding ")
    return f"a container holding {what}"


def _safety(ctx: ValueContext) -> LoadSafety:
    return shared_judge(ctx.facts, ctx.owner.index, ctx.owner.site_flows)


def judge_env(ctx: ValueContext, safety: LoadSafety) -> dict[str, Refused | None]:
    """What the local names hold, as the weights-only judge takes them (each judged with the
    names bound before it: `train = df.iloc[:-24]` after `df = series()`); worked out once
    per call site's context and judge, whichever parameter asks."""
    key = ("judge-env", id(ctx), id(safety))
    known = ctx.owner.site_flows.get(key)
    if isinstance(known, tuple) and known[0] is ctx and known[1] is safety:
        return dict(known[2])
    env = _judged_env(ctx, safety)
    ctx.owner.site_flows[key] = (ctx, safety, env)
    return dict(env)


def _judged_env(ctx: ValueContext, safety: LoadSafety) -> dict[str, Refused | None]:
    env: dict[str, Refused | None] = {}
    for name, binding in ctx.env.bindings.items():
        env[name] = safety.kind_of(binding, env) if isinstance(binding, ast.expr) else None
        if isinstance(binding, ast.Call):  # `header = read_header()`: `header["pixdim"][1:3]`
            for key, held in safety.keys_of(binding, env).items():
                env[item_key(name, key)] = held
    env.update(_flowed(ctx))  # the flow followed what the last binding alone does not tell
    return env


def _flowed(ctx: ValueContext) -> dict[str, Refused | None]:
    """What the shared flow judged the call site's locals to hold (site_flow.py)."""
    return dict(getattr(ctx.env, "judged", {}))


def refused_value(expr: ast.expr, ctx: ValueContext, depth: int = 0) -> str:
    """What the default load refuses in `expr`; SAFE, or UNKNOWN when syntax cannot tell."""
    if depth > _DEPTH:
        return UNKNOWN
    if isinstance(expr, (ast.Constant, ast.JoinedStr)):
        return SAFE
    if isinstance(expr, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
        items = _display_items(expr, ctx) if isinstance(expr, ast.Dict) else list(expr.elts)
        found = _all_of(items, ctx, depth)
        return _holding(found) if found not in (SAFE, UNKNOWN) else found
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
        if expr.attr in ("value", "name") and _plain_member(expr.value, ctx):
            return SAFE  # `mining=cfg.mining.value`: the member's str
        named = _reference(expr, ctx)
        if library_function(ctx.qualify(dotted_name(expr))) or named not in (SAFE, UNKNOWN):
            return named  # names the function (`F.l1_loss`, `np.log1p`)
        return _judged(expr, ctx) or named
    if isinstance(expr, ast.Subscript):
        return _item(expr, ctx)
    if isinstance(expr, (ast.ListComp, ast.SetComp, ast.DictComp)):
        return _comprehension(expr, ctx)
    return UNKNOWN


def _item(expr: ast.Subscript, ctx: ValueContext) -> str:
    """`scores[i]` of a numpy array, `df["sr"].mode()[0]`: the judge's answer, when what is
    indexed comes from library calls; `stats()[0]`, an element of a helper's tuple, only by
    what the helper returns there (the tuple as a whole is refused for any refused element)."""
    keyed = _keyed_item(expr, ctx)
    if keyed != UNKNOWN:
        return keyed
    safety = _safety(ctx)
    env = judge_env(ctx, safety)
    value, index = expr.value, expr.slice
    member = safety.enum_class(value, env) if not isinstance(index, ast.Slice) else None
    if member is not None:  # `Chemistry[cfg.chemistry]`: a member looked up by name
        return _what(member)
    if isinstance(value, ast.Name) and value.id not in ctx.env.bindings:
        picked = safety.of_expression(expr, env)  # `OPTIMIZERS[cfg.optimizer]`: a class
        if picked is not None and picked.kind == "callable":
            return _what(picked)
    if isinstance(value, ast.Call) and isinstance(index, ast.Constant):
        position = index.value
        items = safety.items_of(value, -1, env) if isinstance(position, int) else None
        if items is not None and isinstance(position, int) and -len(items) <= position < len(items):
            return _what(items[position]) if items[position] is not None else UNKNOWN
    if _from_library(value, ctx):
        return _judged(expr, ctx) or UNKNOWN
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
        head = dotted_name(value.func).split(".")[0]
        if not (head and head in ctx.facts.imports):  # a method's result (`s.mode()`)
            return _what(safety.of_expression(expr, env)) or UNKNOWN
    if isinstance(value, ast.Attribute):
        # `frame.index[split]` of a frame the site passes: the library value's item, as the
        # judge's catalog gives it (a project object's container is left unknown)
        receiver = safety.of_expression(value, env)
        if receiver is not None and not receiver.type_name and not receiver.holder:
            return _what(safety.of_expression(expr, env)) or UNKNOWN
    return UNKNOWN


def _keyed_item(expr: ast.Subscript, ctx: ValueContext) -> str:
    """`cfg["lr"]` of a local dict whose key the flow knows (`cfg = {"lr": np.float32(...)}`,
    `cfg["lr"] = ...`), or `CONFIG["optim"]["betas"]` of a module-level dict display the
    module never changes: what that key holds; UNKNOWN otherwise."""
    keys: list[str | int] = []
    node: ast.expr = expr
    while isinstance(node, ast.Subscript):
        index = node.slice
        if not isinstance(index, ast.Constant) or not isinstance(index.value, (str, int)):
            return UNKNOWN
        keys.insert(0, index.value)
        node = node.value
    if not isinstance(node, ast.Name):
        return UNKNOWN
    held = _flowed(ctx).get(item_key(node.id, keys[0])) if len(keys) == 1 else None
    if held is not None:
        return _what(held)
    module_value = ctx._module_value(node.id) if node.id not in ctx.env.bindings else None
    if module_value is None or changed(node.id, module_value[0].facts.text):
        return UNKNOWN
    home, entry = module_value
    for key in keys:
        if not isinstance(entry, ast.Dict):
            return UNKNOWN
        found = [v for k, v in zip(entry.keys, entry.values) if _is_key(k, key)]
        if len(found) != 1 or None in entry.keys:
            return UNKNOWN
        entry = found[0]
    what = refused_value(entry, home, _DEPTH - 2)
    return what if what else UNKNOWN  # a plain entry still leaves the item to the judge


def _is_key(key: ast.expr | None, wanted: str | int) -> bool:
    return isinstance(key, ast.Constant) and key.value == wanted and type(key.value) is type(wanted)


def _from_library(expr: ast.expr, ctx: ValueContext, depth: int = 0) -> bool:
    """The value comes from library calls (and arithmetic of them). Not from a project
    helper or a local display: the judge takes a tuple holding an array for the array
    (`n, r = stats()` or `pair = (n, r)` make `pair[0]` no array)."""
    node: ast.expr = expr
    while isinstance(node, (ast.Call, ast.Attribute, ast.Subscript)):
        if isinstance(node, ast.Subscript) and _keyed(node, ctx):
            return True  # `header["pixdim"][1:3]` of a helper's dict display: the judge knows
        if isinstance(node, ast.Call):
            if _helper_call(node, ctx):
                return False
            if isinstance(node.func, ast.Name):
                return True  # a library function called (`len(x)`, `np_ones(3)`)
            node = node.func
        else:
            node = node.value
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.BinOp, ast.UnaryOp)) and depth < _DEPTH:
        operands = [node.left, node.right] if isinstance(node, ast.BinOp) else [node.operand]
        return all(_from_library(o, ctx, depth + 1) for o in operands)
    if not isinstance(node, ast.Name):
        return False
    bindings = ctx.env.bindings
    made = bindings.get(node.id) if node.id in bindings else ctx.facts.assigns.get(node.id)
    if made is None:
        return node.id in ctx.facts.imports  # `np.linspace(0, 1, 9)[3]`
    return isinstance(made, ast.expr) and depth < _DEPTH and _from_library(made, ctx, depth + 1)


def _plain_member(expr: ast.expr, ctx: ValueContext) -> bool:
    """A member of a project Enum whose members are all literals (its `.value` and `.name`
    are plain; an Enum of classes or functions has values the load refuses)."""
    safety = _safety(ctx)
    held = safety.kind_of(expr, judge_env(ctx, safety))
    if held is None or held.kind != "enum-member" or not held.type_name:
        return False
    located = safety.project_class(held.type_name)
    if located is None:
        return False
    values = [
        stmt.value
        for stmt in located[1].class_level()
        if isinstance(stmt, ast.Assign) and stmt.value is not None
    ]
    return bool(values) and all(_literal_value(v) for v in values)


def _literal_value(value: ast.expr) -> bool:
    """A constant, or a tuple of them (`RED = (255, 0, 0)`)."""
    if isinstance(value, ast.Tuple):
        return all(isinstance(e, ast.Constant) for e in value.elts)
    return isinstance(value, ast.Constant)


def _keyed(item: ast.Subscript, ctx: ValueContext) -> bool:
    """A constant key of a helper's dict display that holds a refused value."""
    return isinstance(item.slice, ast.Constant) and _keyed_item(item, ctx) not in (UNKNOWN, SAFE)


def _comprehension(expr: ast.ListComp | ast.SetComp | ast.DictComp, ctx: ValueContext) -> str:
    """`[x * 2 for x in arr]`, `{n: w for n, w in zip(names, arr)}` over a numpy array: the
    items taken from it are numpy scalars, and so is what is kept of them."""
    gens = expr.generators
    if len(gens) != 1:
        return UNKNOWN
    safety = _safety(ctx)
    env = judge_env(ctx, safety)
    items: dict[str, Refused | None] = {}
    items.update(_loop_items(gens[0].target, gens[0].iter, ctx, safety, env))
    if not items:  # `{c: arr[:, i].mean() for i, c in enumerate(cols)}`: numpy whatever the item
        targets = [n.id for n in walk(gens[0].target) if isinstance(n, ast.Name)]
        items = dict.fromkeys(targets)
    kept = [expr.key, expr.value] if isinstance(expr, ast.DictComp) else [expr.elt]
    for value in kept:
        judged = safety.of_expression(value, {**env, **items})
        if judged is not None:
            return _holding(_what(judged))
    return UNKNOWN


def _loop_items(
    target: ast.expr,
    over: ast.expr,
    ctx: ValueContext,
    safety: LoadSafety,
    env: dict[str, Refused | None],
) -> dict[str, Refused]:
    """The loop names bound to items of a numpy array: `x in arr`, `n, w in zip(names, arr)`,
    `i, x in enumerate(arr)`."""
    item = safety.catalog.kind("numpy-scalar")
    if item is None:
        return {}
    pairs: list[tuple[ast.expr, ast.expr]] = [(target, over)]
    if isinstance(target, ast.Tuple) and isinstance(over, ast.Call) and not over.keywords:
        called = ctx.qualify(dotted_name(over.func))
        if called == "builtins.zip" and len(over.args) == len(target.elts):
            pairs = list(zip(target.elts, over.args))
        elif called == "builtins.enumerate" and len(over.args) == 1 and len(target.elts) == 2:
            pairs = [(target.elts[1], over.args[0])]
    found: dict[str, Refused] = {}
    for name, source in pairs:
        if not isinstance(name, ast.Name) or not _from_library(source, ctx):
            continue
        judged = safety.of_expression(source, env)
        if judged is not None and judged.kind == "numpy-array":
            found[name.id] = item
    return found


def _helper_call(call: ast.Call, ctx: ValueContext) -> bool:
    """A call of a project class, or of a project function that may return a display or a
    local (the judge takes `return n, arr` for the array); `return pd.read_csv(p)` is not."""
    dotted = dotted_name(call.func)
    head = dotted.split(".")[0]
    if head in ctx.env.bindings:  # a local function or class, or a method of a local value
        local = ctx.env.bindings[head]
        return not isinstance(local, ast.expr) and local is not OPAQUE
    if not dotted:
        return False  # a method of a call's result: the receiver tells
    if head in ctx.facts.classes:
        return True
    found = _safety(ctx).project_function(ctx.qualify(dotted))
    if found is None:
        return head in ctx.facts.functions
    returns = [n.value for n in walk(found[1]) if isinstance(n, ast.Return)]
    return not returns or not all(isinstance(r, (ast.Call, ast.Attribute)) for r in returns)


def _display_items(expr: ast.Dict, ctx: ValueContext) -> list[ast.expr]:
    """A display's keys and values. A `**asdict(cfg)` spread every refused field of which a
    later key of the display overwrites (`{**asdict(cfg), "plan": cfg.plan.value}`) leaves
    only plain values: it is left out."""
    values = [
        value
        for at, (key, value) in enumerate(zip(expr.keys, expr.values))
        if key is not None or not _overwritten(value, expr.keys[at + 1 :], ctx)
    ]
    return values + [k for k in expr.keys if k is not None]


def _overwritten(spread: ast.expr, later: list[ast.expr | None], ctx: ValueContext) -> bool:
    if not isinstance(spread, ast.Call):
        return False
    safety = _safety(ctx)
    fields = dict_keys(safety, spread, judge_env(ctx, safety))
    written = {k.value for k in later if isinstance(k, ast.Constant)}
    return bool(fields) and set(fields or ()) <= written


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
    if _flowed(ctx).get(name) is not None:
        return _judged(expr, ctx) or UNKNOWN
    held = held_item(name, _flowed(ctx))  # `stats = demo_stats()` with a numpy `stats["std"]`
    if held is not None:
        return _what(held)
    if name in ctx.env.contents:  # `stats = {}` filled item by item (site_flow.py)
        added = _all_of(ctx.env.contents[name], ctx, depth)
        return _holding(added) if added != UNKNOWN and added else added
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
        return _judged(call, ctx) if qualified in _KEEPING else SAFE
    if qualified.startswith("builtins.") and qualified[len("builtins.") :] in _SAFE_BUILTINS:
        return _judged(call, ctx)  # plain, but `round(x, 2)`, `sum(arr)` of numpy stay numpy
    if qualified in _COLLECTING:
        if any(_is_config(arg, ctx) for arg in call.args):
            # `list(cfg.milestones)` holds the config's entries, not the config; `dict(cfg.data)`
            # or `list(cfg.stages)` of a known shape, its values (config_containers.copied)
            return (qualified in _COPIED_CONFIGS and _judged(call, ctx)) or UNKNOWN
        safety = _safety(ctx)
        env = judge_env(ctx, safety)
        held = [safety.of_expression(a, env) for a in call.args]
        if held and all(h is not None and h.kind in _STRING_ITEMS for h in held):
            # `sorted(df["contract"].unique())`, `list(poly.get_feature_names_out())`: a
            # string column's items (or an object array's) are str, a number column's numpy:
            # the weights-only judge tells them apart
            return _judged(call, ctx) or SAFE
        items = [
            i for i in _flat([_unzipped(a, ctx) for a in call.args]) if not _plain_items(i, ctx)
        ]
        found = _all_of([*items, *(kw.value for kw in call.keywords)], ctx, depth)
        if found == _what(_safety(ctx).catalog.kind("numpy-array")):
            return "numpy scalars (the items of a numpy array)"  # measured: refused
        return found if found else SAFE
    judged = _judged(call, ctx) or _returned_keys(call, ctx) or _failing_returns(call, ctx)
    if judged:
        return judged
    last = qualified.rsplit(".", 1)[-1]
    if qualified.startswith(_CLASS_PACKAGES) and last[:1].isupper():
        return f"a `{last}` object"
    return UNKNOWN


def _failing_returns(call: ast.Call, ctx: ValueContext) -> str:
    """`normalizer=build_normalizer(name)` of a module function each `return` of which fails
    one way or the other: a lambda (pickle fails: Lightning drops it) or a library function
    read as a value (`str.lower`: the default load refuses it). Lambdas alone are the
    classifier's."""
    name = call.func.id if isinstance(call.func, ast.Name) else ""
    func = ctx.facts.functions.get(name) if name and name not in ctx.env.bindings else None
    if func is None:
        return SAFE
    returns = [n.value for n in body_nodes(func) if isinstance(n, ast.Return)]
    if not returns or any(r is None for r in returns):
        return SAFE
    refusals = []
    lambdas = False
    for value in returns:
        if isinstance(value, ast.Lambda):
            lambdas = True
            continue
        if not isinstance(value, (ast.Attribute, ast.Name)):
            return SAFE
        qualified = ctx.qualify(dotted_name(value))
        named = _library_reference(qualified, dotted_name(value))
        if named in (SAFE, UNKNOWN):  # `str.lower`: the catalog's builtins
            named = _what(_safety(ctx).catalog.for_value(qualified))
        if not named or _in_function(value, func):
            return SAFE
        refusals.append(named)
    if not refusals:
        return SAFE
    # registering the refused global would not make the lambda load: a plain description
    return f"a lambda or {refusals[0]}" if lambdas else refusals[0]


def _in_function(value: ast.expr, func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """The name at the root of `value` is a parameter or a local of the function."""
    root = value
    while isinstance(root, ast.Attribute):
        root = root.value
    if not isinstance(root, ast.Name):
        return True
    args = func.args
    params = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    stored = {
        n.id for n in walk(func) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)
    }
    return root.id in params | stored


def _returned_keys(call: ast.Call, ctx: ValueContext) -> str:
    """`norm_stats=_norm(traj)` of a helper whose every `return` is a dict display one
    constant key of which the default load refuses (`{"mean": traj.mean()}`, its parameters
    bound to what the call passes)."""
    safety = _safety(ctx)
    keys = safety.keys_of(call, judge_env(ctx, safety))
    found = next(iter(keys.values()), None)
    return _holding(_what(found)) if found is not None else SAFE


def spread_item(name: str, call_site: CallSite, ctx: ValueContext) -> str:
    """What `Model(**kwargs)` passes for parameter `name`: the item the flow knows a local
    dict holds under that key (`kwargs["loss"] = nn.MSELoss()`), or that member of an
    OmegaConf config spread whole (`**cfg.model`: a nested list is a ListConfig)."""
    safety = _safety(ctx)
    flowed = _flowed(ctx)
    for kw in call_site.call.keywords:
        if kw.arg is not None:
            continue
        value = kw.value
        held = flowed.get(item_key(value.id, name)) if isinstance(value, ast.Name) else None
        if held is not None:
            return _what(held)
        found = spread_entry_of(value, name, ctx, safety)
        if found:
            return found
    return SAFE


def spread_entry_of(
    value: ast.expr, name: str, ctx: ValueContext, safety: LoadSafety | None = None
) -> str:
    """What `**value` gives for `name` when `value` is a dict display with that constant key,
    a project helper returning such dicts, or an OmegaConf config built from a display
    (`**cfg.model`): the refusal, else SAFE."""
    if isinstance(value, ast.Dict):
        found = [v for k, v in zip(value.keys, value.values) if _is_key(k, name)]
        what = refused_value(found[0], ctx) if len(found) == 1 and None not in value.keys else ""
        return what if what != UNKNOWN else SAFE
    safety = safety or _safety(ctx)
    if isinstance(value, ast.Call):  # `**_vae_kwargs(cfg)`: what the helper's dict holds
        held = safety.keys_of(value, judge_env(ctx, safety)).get(name)
        if held is not None:
            return _what(held)
    spread = safety.of_expression(value, judge_env(ctx, safety))
    if spread is not None and spread.kind == "omegaconf" and spread.shape is not None:
        member = ast.copy_location(ast.Attribute(value=value, attr=name, ctx=ast.Load()), value)
        return _judged(member, ctx)
    return SAFE


def _unzipped(arg: ast.expr, ctx: ValueContext) -> list[ast.expr]:
    """`zip(names, arr)`, `enumerate(arr)`: the tuples hold the items of their arguments."""
    zipping = ("builtins.zip", "builtins.enumerate")
    if (
        isinstance(arg, ast.Call)
        and not arg.keywords
        and ctx.qualify(dotted_name(arg.func)) in zipping
    ):
        return list(arg.args)
    if isinstance(arg, ast.GeneratorExp):  # `tuple(np.float64(b) for b in betas)`: its items
        return [ast.copy_location(ast.ListComp(elt=arg.elt, generators=arg.generators), arg)]
    return [arg]


def _plain_items(iterated: ast.expr, ctx: ValueContext) -> bool:
    """Whether iterating the value gives Python scalars: a `range`, or a pandas Series, Index
    or frame (its column labels) of numbers, strings or bools (measured, pandas 3.1: `list(s)`
    of an int64 Series holds `int`s; of a datetime column, Timestamps, which the load
    refuses)."""
    safety = _safety(ctx)
    judged = safety.of_expression(iterated, judge_env(ctx, safety))
    return judged is not None and judged.kind in _PLAIN_ITERATED


def _flat(groups: list[list[ast.expr]]) -> list[ast.expr]:
    return [item for group in groups for item in group]


def config_member(
    expr: ast.expr, annotation: ast.expr | None, ctx: ValueContext, iterated: bool = False
) -> str:
    """What a member of an OmegaConf config is, when the annotation says it is a container.

    `cfg.optim.milestones` and `cfg["model"]` of a DictConfig are a ListConfig and a
    DictConfig when the entry holds a list or a dict (omegaconf wraps nested containers;
    measured: the default load refuses both), and a plain number or string otherwise. The
    syntax cannot tell which, the parameter's container annotation (`List[int]`) can, and so
    can an unannotated parameter the `__init__` iterates (`for h in hidden_sizes`)."""
    container = _container(annotation, ctx) or (iterated and annotation is None)
    if not isinstance(expr, (ast.Attribute, ast.Subscript)) or not container:
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
