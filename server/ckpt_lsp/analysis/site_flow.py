"""What the local names of a constructing call's function hold, by the shared flow.

`mean, std = mel_stats(n)` then `Model(norm={"mean": mean})`, or `scores = np.linspace(...)`
then `Model(threshold=scores[i])`: the call site's own bindings hold only the last syntax
assigned to a name; the weights-only flow (local_flow.py, the one CKPT010 uses) follows
unpacking of helpers' tuples, chains of locals, branches and loops to what each name holds
at the statement making the call.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ckpt_lsp.analysis.assignments import Env
from ckpt_lsp.analysis.call_sites import CallSite, function_calls
from ckpt_lsp.analysis.constant_tests import module_string
from ckpt_lsp.analysis.facts import dotted_name
from ckpt_lsp.analysis.hparams import default_of, init_parameters
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.analysis.load_safety import LoadSafety, bound_key, shared_judge
from ckpt_lsp.analysis.local_flow import (
    NUMBER_MARK,
    TEXT_MARK,
    UNPASSED_NONE,
    KeyText,
    LocalFlow,
    ModuleText,
)
from ckpt_lsp.analysis.nodes import child_nodes, walk
from ckpt_lsp.weights_only import Refused

_CALLER_LOCAL = "<a local of the caller>"  # a name no program binds


@dataclass
class SiteEnv(Env):
    """A call site's bindings, with what the flow judged each local name to hold there."""

    judged: dict[str, Refused | None] = field(default_factory=dict)


def flow_before(
    site: CallSite, safety: LoadSafety, memo: dict[tuple[object, ...], object] | None = None
) -> dict[str, Refused | None]:
    """The names the flow knows to be refused (or number literals) at the site's statement.
    `memo`: flows already run, by function and binding (a test function building ten models
    is walked once for all of them)."""
    func = site.func
    if func is None:
        return {}
    bound = {**_passed(site, safety), **_left_out(site), **_picked(site)}
    key = ("site-flow", id(func), id(site.facts), bound_key(bound))
    flow = memo.get(key) if memo is not None else None
    if not isinstance(flow, LocalFlow):
        flow = LocalFlow(safety).run(func, bound)
        if memo is not None:
            memo[key] = flow
    stmt = _statement_of(func, site.call, flow)
    if stmt is None:
        return {}
    return {
        k: v
        for k, v in flow.env_before(stmt).items()
        if v is not None or k.startswith((NUMBER_MARK, TEXT_MARK))
    }


def builds(
    site: CallSite,
    index: ProjectIndex | None,
    init: ast.FunctionDef | ast.AsyncFunctionDef,
    memo: dict[tuple[object, ...], object] | None = None,
) -> bool:
    """Whether the site may build the class: `MODULES[cfg.model.name](cfg)` after `cfg =
    OmegaConf.merge(BASE, {"model": {"name": "gcn"}})` builds the class held under "gcn"
    only; `REGISTRY[name](cfg)` handing the config to `n_meas: int` builds another class of
    the registry. Unknown (a key not read from a config the function leaves alone) is yes."""
    key, func = site.key, site.func
    if key is None or func is None:
        return True
    if _mistyped(site, index, init, memo):
        return False
    if site.held_under is None:
        return True
    root = key
    while isinstance(root, (ast.Attribute, ast.Subscript)):
        root = root.value
    if not isinstance(root, ast.Name) or root is key or _changed(func, root.id, site.call):
        return True
    safety = shared_judge(site.facts, index, memo)
    text = safety.leaf_text(key, flow_before(site, safety, memo))
    return text is None or text in site.held_under


def _mistyped(
    site: CallSite,
    index: ProjectIndex | None,
    init: ast.FunctionDef | ast.AsyncFunctionDef,
    memo: dict[tuple[object, ...], object] | None,
) -> bool:
    """Whether the registry call hands a parameter annotated as a number (`n_meas: int`) a
    value that is none (a config, a module, a namespace): Python would not stop it, the
    class's first layer would, so the call is meant for another class of the registry."""
    params = init_parameters(init)
    positional = len(init.args.posonlyargs) + len(init.args.args) - 1
    given = []
    for param in params:
        if not (isinstance(param.annotation, ast.Name) and param.annotation.id in _NUMBERS):
            continue
        if not _counted_with(init, param.arg):
            continue  # only stored: a config there builds, and is what gets saved
        passed = site.argument(params, positional, param.arg)
        if isinstance(passed, (ast.Name, ast.Attribute, ast.Subscript, ast.Call)):
            given.append(passed)
    if not given:
        return False
    safety = shared_judge(site.facts, index, memo)
    env = flow_before(site, safety, memo)
    for passed in given:
        judged = safety.kind_of(passed, env)
        if judged is not None and judged.kind in _NOT_NUMBERS:
            return True
    return False


def _counted_with(init: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> bool:
    """Whether `__init__` computes with the parameter: hands it to a call other than
    `save_hyperparameters` (`nn.Linear(n_meas, hidden)`) or to an operator (`2 * hidden`)."""
    for node in walk(init):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute) and node.func.attr == "save_hyperparameters":
                continue
            given = [*node.args, *(k.value for k in node.keywords)]
        elif isinstance(node, ast.BinOp):
            given = [node.left, node.right]
        else:
            continue
        if any(isinstance(g, ast.Name) and g.id == name for g in given):
            return True
    return False


_NUMBERS = frozenset({"int", "float", "bool"})
# kinds no code passes where a number is meant (numpy scalars and arrays are, on purpose)
_NOT_NUMBERS = frozenset(
    {"omegaconf", "namespace", "dataclass", "module", "lightning-module", "optimizer"}
    | {"estimator", "path", "pandas-frame", "callable"}
)


def _changed(func: ast.AST, name: str, call: ast.Call) -> bool:
    """Whether the function stores into `name` (`cfg.model.name = ...`) or hands it whole to
    a call other than `call`, which may."""
    at = (call.lineno, call.col_offset)  # the site's call may be a copy (`_paired_spread`)
    for node in walk(func):
        if isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(node.ctx, ast.Store):
            root = node.value
            while isinstance(root, (ast.Attribute, ast.Subscript)):
                root = root.value
            if isinstance(root, ast.Name) and root.id == name:
                return True
        if isinstance(node, ast.Call) and (node.lineno, node.col_offset) != at:
            given = [*node.args, *(k.value for k in node.keywords)]
            if any(isinstance(g, ast.Name) and g.id == name for g in given):
                return True
    return False


def _passed(site: CallSite, safety: LoadSafety) -> dict[str, object]:
    """`def build_regressor(args)` called as `build_regressor(parse_args())`: a parameter of
    the factory every call of it in its module passes a value the default load refuses (or
    a parsed Namespace), judged without the caller's locals; the calls must agree."""
    func = site.func
    if func is None:
        return {}
    calls = function_calls(site.facts, func)
    defaults = _defaults(func)
    if not calls:  # called from elsewhere, as `_left_out` reasons: its defaults' texts
        return {
            name: ModuleText(given.id)
            for name, given in defaults.items()
            if isinstance(given, ast.Name) and module_string(given.id, safety) is not None
        }
    args = func.args
    positional = [*args.posonlyargs, *args.args]
    params = [*positional, *args.kwonlyargs]
    bound: dict[str, object] = {}
    envs: dict[int, dict[str, Refused | None]] = {}  # per call: its caller's flow there
    for param in params:
        judged: list[Refused | ModuleText | None] = []
        for call in calls:
            given = call.argument(params, len(positional), param.arg)
            if given is None and param.arg in defaults:
                given = defaults[param.arg]  # `def build(cfg=AD_CFG)` called as `build()`
            if not isinstance(given, ast.expr):  # left to its default, or spread
                judged.append(None)
                continue
            if (
                isinstance(given, ast.Name)
                and given.id not in call.env.bindings
                and module_string(given.id, safety) is not None
            ):
                judged.append(ModuleText(given.id))  # `def build(cfg_text=GLACIER_YAML)`
                continue
            if call.func is not None and _reads_locals(given, call.env.bindings):
                # `cfg = load_cfg(overrides)` then `_build_refiner(cfg)`: the caller's flow
                # (its own parameters unbound, so this never climbs further)
                if envs.get(id(call.call)) is None:
                    envs[id(call.call)] = _caller_env(call, safety)
                judged.append(safety.kind_of(given, envs[id(call.call)]))
                continue
            judged.append(safety.kind_of(_without_locals(given, call.env.bindings), {}))
        if judged and all(j is not None for j in judged) and len(set(judged)) == 1:
            bound[param.arg] = judged[0]
    return bound


def _reads_locals(given: ast.expr, local: Mapping[str, object]) -> bool:
    return any(isinstance(n, ast.Name) and n.id in local for n in walk(given))


def _caller_env(call: CallSite, safety: LoadSafety) -> dict[str, Refused | None]:
    """What the calling function's flow knows at the call, its parameters left unbound."""
    assert call.func is not None
    flow = LocalFlow(safety).run(call.func, _left_out(call))
    stmt = _statement_of(call.func, call.call, flow)
    return flow.env_before(stmt) if stmt is not None else {}


def _picked(site: CallSite) -> dict[str, object]:
    """`def build_module(name): ... MODULE_REGISTRY[name](**kwargs)` judged for the class
    registered as "patch": `name` holds "patch", so the branches testing it are decided."""
    if site.picked_by is None:
        return {}
    name, key = site.picked_by
    return {name: KeyText(key)}


def _without_locals(given: ast.expr, local: Mapping[str, object]) -> ast.expr:
    """The value with the caller's locals made unknown: `make_config(overrides)` is judged by
    what the function returns, and the caller's `cfg` is not followed here."""
    if not _reads_locals(given, local):
        return given

    class _Unknown(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.expr:
            if node.id not in local:
                return node
            return ast.copy_location(ast.Name(id=_CALLER_LOCAL, ctx=ast.Load()), node)

    return _Unknown().visit(copy.deepcopy(given))


def _defaults(func: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, ast.expr]:
    """Each parameter's default that names a module-level value (`cfg=DEFAULT_CFG`): what a
    call leaving the parameter out passes (literals and `None` are left to the flow)."""
    args = func.args
    found = {
        a.arg: default_of(func, a.arg) for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]
    }
    return {k: d for k, d in found.items() if isinstance(d, (ast.Name, ast.Attribute))}


def _left_out(site: CallSite) -> dict[str, object]:
    """`def build(name, cfg=None): cfg = cfg or load_config()`: the factory's parameters left
    at their `None` default by a call of it in its module (or by every call, when the module
    makes none: it is called from elsewhere, often as `build(name)`), so that `cfg or X`
    holds the `X` (local_flow.py), which the module built then carries."""
    func = site.func
    if func is None:
        return {}
    args = func.args
    positional = [*args.posonlyargs, *args.args]
    pairs = list(zip(positional[len(positional) - len(args.defaults) :], args.defaults))
    pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
    nones = [a for a, d in pairs if isinstance(d, ast.Constant) and d.value is None]
    if not nones:
        return {}
    calls = function_calls(site.facts, func)
    params = [*positional, *args.kwonlyargs]
    left = frozenset(
        a.arg
        for a in nones
        if not calls or any(c.argument(params, len(positional), a.arg) is None for c in calls)
    )
    return {UNPASSED_NONE: left} if left else {}


def comprehended(
    site: CallSite, safety: LoadSafety, judged: Callable[[], dict[str, Refused | None]]
) -> dict[str, Refused | None]:
    """`[Model(fold=f) for f in np.arange(5)]`: the targets of the comprehensions the call is
    made in (outermost first), when they take a numpy array's items; `judged` gives the
    function's locals at the call's statement."""
    func = site.func
    around = _comprehensions_around(func, site.call) if func is not None else []
    if not around:
        return {}
    env = judged()
    found: dict[str, Refused | None] = {}
    for comp in around:
        for generator in comp.generators:
            for name in walk(generator.target):
                if isinstance(name, ast.Name):
                    env[name.id] = found[name.id] = None  # shadows an outer name
            items = safety.iterated(generator.target, generator.iter, env, func)
            env.update(items)
            found.update(items)
    return found


def _comprehensions_around(
    func: ast.AST, call: ast.Call
) -> list[ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp]:
    """The comprehensions whose items hold `call`, outermost first."""
    kinds = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
    found = []
    for node in walk(func):
        if isinstance(node, kinds):
            items = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            if any(_holds(item, call) for item in items):
                found.append(node)
    return sorted(found, key=lambda n: (n.lineno, n.col_offset, -(n.end_col_offset or 0)))


def _statement_of(func: ast.AST, call: ast.Call, flow: LocalFlow) -> ast.stmt | None:
    """The innermost statement the flow walked that holds `call`."""
    found: ast.stmt | None = None
    stack: list[ast.AST] = list(child_nodes(func))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.stmt) and id(node) in flow.before and _holds(node, call):
            found = node
            stack = list(child_nodes(node))
            continue
    return found


def _holds(node: ast.AST, call: ast.Call) -> bool:
    start = (node.lineno, node.col_offset)  # type: ignore[attr-defined]
    end = (node.end_lineno or node.lineno, node.end_col_offset or 0)  # type: ignore[attr-defined]
    return (
        start <= (call.lineno, call.col_offset)
        and (
            call.end_lineno or call.lineno,
            call.end_col_offset or 0,
        )
        <= end
    )


def filled_before(site: CallSite) -> dict[str, list[ast.expr]]:
    """`stats = {}; stats["mean"] = feats.mean()` at the top level of the function before the
    call's statement (so it certainly ran): what each local container, bound once to an empty
    display and then only filled by item, holds (a key set twice holds its last value)."""
    func = site.func
    if func is None:
        return {}
    where = (site.call.lineno, site.call.col_offset)
    empty: set[str] = set()
    items: dict[str, dict[str, ast.expr]] = {}
    for stmt in func.body:
        if (stmt.end_lineno or stmt.lineno, stmt.end_col_offset or 0) >= where:
            break
        if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
            continue
        target = stmt.targets[0]
        if isinstance(target, ast.Name) and _empty(stmt.value):
            empty.add(target.id)
        elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
            key = ast.dump(target.slice)
            items.setdefault(target.value.id, {})[key] = stmt.value
    if not empty.intersection(items):
        return {}
    bound = _bound_names(func)
    touched = _touched(func, site.call)
    return {
        name: list(held.values())
        for name, held in items.items()
        if name in empty and bound.get(name) == 1 and name not in touched
    }


def _empty(value: ast.expr) -> bool:
    if isinstance(value, (ast.Dict, ast.List)):
        return not (value.keys if isinstance(value, ast.Dict) else value.elts)
    return (
        isinstance(value, ast.Call)
        and dotted_name(value.func) == "dict"
        and not (value.args or value.keywords)
    )


def _touched(func: ast.AST, site: ast.Call) -> set[str]:
    """Names used other than by item (`d["k"] = v`, `d["k"]`) outside the site call: a method
    (`d.pop("k")`), a `del d["k"]` or a call given `d` may take an item out."""
    by_item = {
        id(node.value)
        for node in walk(func)
        if isinstance(node, ast.Subscript) and not isinstance(node.ctx, ast.Del)
    }
    in_site = {id(node) for node in walk(site)}
    return {
        node.id
        for node in walk(func)
        if isinstance(node, ast.Name)
        and isinstance(node.ctx, ast.Load)
        and id(node) not in by_item
        and id(node) not in in_site
    }


def _bound_names(func: ast.AST) -> dict[str, int]:
    """How many times each name is bound in the function."""
    counts: dict[str, int] = {}
    for node in walk(func):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            counts[node.id] = counts.get(node.id, 0) + 1
    return counts
