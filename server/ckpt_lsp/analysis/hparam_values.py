"""Judging a stored hyperparameter: what its callers pass, its default, its annotation.

The values a parameter takes come from the calls in the project that construct the class
(call_sites.py) and, where a call leaves it out or none is found, its default. Each value is
judged twice: can it be pickled (the classifier and the hazard catalog: Lightning drops a
value that cannot, when `fit` starts), and does the default `torch.load` accept it
(hparam_weights_only.py). The annotation decides only when no value tells: a required
parameter no call passes, or one passed on from elsewhere.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from ckpt_lsp.analysis.assignments import OPAQUE, Env
from ckpt_lsp.analysis.call_sites import UNKNOWN as SPREAD
from ckpt_lsp.analysis.call_sites import CallSite, CallSites, classmethod_calls, function_calls
from ckpt_lsp.analysis.classifier import Classifier
from ckpt_lsp.analysis.config_containers import after
from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, dotted_name
from ckpt_lsp.analysis.hparam_namespace import refused_entry, spread_entry, vars_entry
from ckpt_lsp.analysis.hparam_weights_only import (
    UNKNOWN,
    config_member,
    judge_env,
    refused_annotation,
    refused_value,
    spread_entry_of,
    spread_item,
)
from ckpt_lsp.analysis.hparams import ITEM_COPIES
from ckpt_lsp.analysis.load_safety import LoadSafety, Refused, shared_judge
from ckpt_lsp.analysis.names import qualify
from ckpt_lsp.analysis.nodes import walk
from ckpt_lsp.analysis.site_flow import (
    SiteEnv,
    comprehended,
    filled_before,
    flow_before,
)
from ckpt_lsp.analysis.value_context import ValueContext
from ckpt_lsp.budget import check_deadline
from ckpt_lsp.weights_only import Refusal, registration_names_of


@dataclass(frozen=True)
class HparamProblem:
    """Why a stored hyperparameter breaks the checkpoint."""

    what: str  # "a lambda", "a `MSELoss` object (`nn.MSELoss(...)`)"
    dropped: bool  # True: pickle fails, Lightning drops it; False: the default load refuses it
    copy_fails: bool = False  # save_hyperparameters deep-copies it: the constructor raises
    site: CallSite | None = None  # the call that passes the value, when one does

    @property
    def registrations(self) -> frozenset[str]:
        """The globals whose registration as safe makes a refused value load (none for a
        value Lightning drops, or when it is not known which)."""
        return frozenset() if self.dropped else registration_names_of(self.what)


@dataclass(frozen=True)
class Parameter:
    """One stored `__init__` parameter and where its values come from."""

    arg: ast.arg
    default: ast.expr | None
    positional: int  # how many parameters (self excluded) may be passed by position
    params: list[ast.arg]
    iterated: bool = False  # the `__init__` loops over it: a container, not a number
    # the call converting it before it is stored (`cfg = OmegaConf.to_container(cfg)`)
    converter: ast.Call | None = None


def judge(
    parameter: Parameter,
    facts: ModuleFacts,
    sites: list[CallSite],
    classifier: Classifier,
    contexts: dict[int, ValueContext] | None = None,
) -> HparamProblem | None:
    """The first problem among the values the parameter takes, else its annotation's.
    `contexts`: each site's context, kept across the parameters of one class."""
    if parameter.converter is not None:
        return _converted(parameter, facts, sites, classifier, contexts)
    name = parameter.arg.arg
    values: list[tuple[ast.expr, ValueContext, CallSite | None]] = []
    unknown = not sites and parameter.default is None
    left_out = not sites
    for site in sites:
        passed = site.argument(parameter.params, parameter.positional, name)
        if passed is SPREAD:
            item = _starred_item(site, parameter, classifier) or spread_entry(
                name, site, LoadSafety(site.facts, classifier.index)
            )
            if item is not None:
                return HparamProblem(Refusal.of(item), dropped=False, site=site)
            what = spread_item(name, site, _site_context(classifier, site, contexts))
            if what:
                return HparamProblem(what, dropped=False, site=site)
            forwarded = _forwarded_spread(name, site, classifier, contexts)
            if forwarded is not None:
                return forwarded
            entries = site.spread
            if entries is not None and name not in entries:
                left_out = True  # `Model(**kwargs)` of a dict no key of which names it
                continue
            shown = [v for v in (entries or {}).get(name, []) if _self_contained(v, site)]
            if shown:  # `tile_filter=lambda row: ...`, `metric_fn=make_miou(n)` in the dict
                ctx = _site_context(classifier, site, contexts)
                values += [(v, ctx, site) for v in shown]
                continue
            keywords = _forwarded_keywords(parameter, site, classifier, contexts)
            values += keywords  # `def build_model(name, **kwargs)`: its callers' keywords
            unknown = unknown or not keywords
        elif passed is None:
            left_out = True
        elif isinstance(passed, ast.expr):
            values.append((passed, _site_context(classifier, site, contexts), site))
            values += _forwarded(passed, site, classifier, contexts)
    if left_out and parameter.default is not None:
        values.append((parameter.default, _context(classifier, facts, Env(), False), None))
    elif left_out:
        unknown = True
    for expr, ctx, passed_at in values:
        entry = (
            vars_entry(expr, passed_at, LoadSafety(ctx.facts, classifier.index))
            if passed_at
            else ""
        )
        if entry:  # `hparams=vars(args)` holds the Namespace's entries
            return HparamProblem(entry, dropped=False, site=passed_at)
        verdict = value_problem(expr, ctx)
        if verdict == UNKNOWN:
            container = parameter.iterated or _container_display(parameter.default)
            member = config_member(expr, parameter.arg.annotation, ctx, container)
            verdict = HparamProblem(member, dropped=False) if member else verdict
        if isinstance(verdict, HparamProblem):
            return HparamProblem(verdict.what, verdict.dropped, verdict.copy_fails, passed_at)
        unknown = unknown or verdict == UNKNOWN
    if unknown:
        ctx = _context(classifier, facts, Env(), False)
        what = refused_annotation(parameter.arg.annotation, ctx)
        if what:
            return HparamProblem(what, dropped=False)
    return None


def _self_contained(value: ast.expr, site: CallSite) -> bool:
    """A value a helper's dict shows that means the same at the call site: a lambda, or a
    call of a module-level function of the site's module (`make_miou(n, ignore)`: what it
    returns does not depend on the helper's locals unless its arguments decide it)."""
    if isinstance(value, ast.Lambda):
        return True
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id in site.facts.functions
        and value.func.id not in site.env.bindings
        and value.func.id not in site.facts.assigns
    )


def _converted(
    parameter: Parameter,
    facts: ModuleFacts,
    sites: list[CallSite],
    classifier: Classifier,
    contexts: dict[int, ValueContext] | None,
) -> HparamProblem | None:
    """A parameter the `__init__` converts before storing it: the first config a call passes
    whose conversion keeps a value the default load refuses (config_containers.py)."""
    converter = parameter.converter
    if converter is None:
        return None
    qualified = qualify(dotted_name(converter.func), facts)
    for site in sites:
        passed = site.argument(parameter.params, parameter.positional, parameter.arg.arg)
        if not isinstance(passed, ast.expr):
            continue
        values: list[tuple[ast.expr, ValueContext, CallSite | None]] = [
            (passed, _site_context(classifier, site, contexts), site)
        ]
        values += _forwarded(passed, site, classifier, contexts)  # `build(cfg)`'s callers
        for expr, ctx, passed_at in values:
            safety = LoadSafety(ctx.facts, classifier.index)
            env = judge_env(ctx, safety)
            if qualified in ITEM_COPIES:  # `list(x)` of what the call passes
                copy = ast.Call(func=converter.func, args=[expr], keywords=[])
                kept = safety.of_expression(ast.copy_location(copy, expr), env)
                if kept is not None:
                    return HparamProblem(Refusal.of(kept), dropped=False, site=passed_at)
                continue
            given = safety.of_expression(expr, env)
            kept = after(safety, converter, qualified, given) if given is not None else None
            if kept is not None:
                return HparamProblem(Refusal.of(kept), dropped=False, site=passed_at)
    return None


def _container_display(default: ast.expr | None) -> bool:
    """`betas=(0.9, 0.95)`, `layers=[64, 64]`: a default written as a container display says
    the parameter takes a container (so `cfg.optim.betas` passed to it is a ListConfig)."""
    return isinstance(default, (ast.List, ast.Tuple, ast.Dict, ast.Set))


def _forwarded(
    passed: ast.expr,
    site: CallSite,
    classifier: Classifier,
    contexts: dict[int, ValueContext] | None,
) -> list[tuple[ast.expr, ValueContext, CallSite | None]]:
    """`def build(threshold): return Model(threshold=threshold)`: what the factory's own
    callers in its module pass for that parameter (one step; a parameter rebound in the
    factory is not forwarded as passed); `Model(dims=cfg.model.dims)` of a parameter `cfg`
    is that member of what they pass."""
    func = site.func
    root = _root(passed)
    if func is None or root is None or site.env.bindings.get(root.id) is not OPAQUE:
        return []
    args = func.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    if root.id not in {p.arg for p in params} or _rebinds(func, root.id):
        return []
    positional = len(args.posonlyargs) + len(args.args)
    callers = function_calls(site.facts, func)
    if not callers:  # `Lit.from_config(cfg)`: the classmethod's `cls` is bound by the call
        callers = classmethod_calls(site.facts, func)
        params, positional = (params[1:], positional - 1) if callers else (params, positional)
    found: list[tuple[ast.expr, ValueContext, CallSite | None]] = []
    for outer in callers:
        given = outer.argument(params, positional, root.id)
        if isinstance(given, ast.expr):
            value = _rebased(passed, given)
            found.append((value, _site_context(classifier, outer, contexts), outer))
    return found


def _forwarded_spread(
    name: str, site: CallSite, classifier: Classifier, contexts: dict[int, ValueContext] | None
) -> HparamProblem | None:
    """`def from_config(cls, cfg): return cls(**cfg)`: the entry `name` of what the factory's
    callers pass for `cfg` (a dict display, or a config built from one)."""
    for kw in site.call.keywords:
        if kw.arg is not None or not isinstance(kw.value, ast.Name):
            continue
        member = ast.copy_location(ast.Attribute(value=kw.value, attr=name, ctx=ast.Load()), kw)
        for rebased, ctx, outer in _forwarded(member, site, classifier, contexts):
            given = rebased.value if isinstance(rebased, ast.Attribute) else None
            what = spread_entry_of(given, name, ctx) if given is not None else ""
            if what:
                return HparamProblem(what, dropped=False, site=outer)
    return None


def _forwarded_keywords(
    parameter: Parameter,
    site: CallSite,
    classifier: Classifier,
    contexts: dict[int, ValueContext] | None,
) -> list[tuple[ast.expr, ValueContext, CallSite | None]]:
    """`def build_model(name, **kwargs): return MODELS[name](**kwargs)`: what the callers of
    the factory in its module pass by the parameter's keyword, from the calls whose every
    keyword the class takes (a call passing one it does not take builds another class)."""
    func = site.func
    kwarg = func.args.kwarg if func is not None else None
    spread = [k.value for k in site.call.keywords if k.arg is None]
    if (
        func is None
        or kwarg is None
        or not any(isinstance(v, ast.Name) and v.id == kwarg.arg for v in spread)
    ):
        return []
    if _rebinds(func, kwarg.arg):
        return []
    accepted = {p.arg for p in parameter.params}
    callers = function_calls(site.facts, func)
    owner = _init_owner(site) if not callers else None
    if owner is not None:  # `super().__init__(**kwargs)`: the subclass's own callers
        callers = CallSites(classifier.index).of(site.facts, owner)
        accepted |= {a.arg for a in [*func.args.args[1:], *func.args.kwonlyargs]}
    found: list[tuple[ast.expr, ValueContext, CallSite | None]] = []
    for outer in callers:
        given = {k.arg: k.value for k in outer.call.keywords if k.arg is not None}
        if any(k.arg is None for k in outer.call.keywords) or not set(given) <= accepted:
            continue
        value = given.get(parameter.arg.arg)
        if value is not None:
            found.append((value, _site_context(classifier, outer, contexts), outer))
    return found


def _init_owner(site: CallSite) -> ClassFacts | None:
    """The class whose `__init__` makes the call (a class's methods may be parsed anew, so
    the method is matched by its block and line, not by identity)."""
    func = site.func
    if func is None or func.name != "__init__":
        return None
    for cls in site.facts.classes.values():
        init = cls.method("__init__")
        if (
            init is not None
            and cls.parsed.row_offset == site.row_offset
            and (init.lineno, init.col_offset) == (func.lineno, func.col_offset)
        ):
            return cls
    return None


def _root(expr: ast.expr) -> ast.Name | None:
    """The name an attribute or constant-item chain starts from (`cfg` of `cfg.model["dims"]`)."""
    while isinstance(expr, (ast.Attribute, ast.Subscript)):
        if isinstance(expr, ast.Subscript) and not isinstance(expr.slice, ast.Constant):
            return None
        expr = expr.value
    return expr if isinstance(expr, ast.Name) else None


def _rebased(chain: ast.expr, given: ast.expr) -> ast.expr:
    """`cfg.model` with the caller's `load_config()` in place of `cfg`."""
    node: ast.expr
    if isinstance(chain, ast.Attribute):
        node = ast.Attribute(value=_rebased(chain.value, given), attr=chain.attr, ctx=ast.Load())
    elif isinstance(chain, ast.Subscript):
        node = ast.Subscript(value=_rebased(chain.value, given), slice=chain.slice, ctx=ast.Load())
    else:
        return given
    return ast.copy_location(node, given)


def _rebinds(func: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> bool:
    return any(
        isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, (ast.Store, ast.Del))
        for n in walk(func)
    )


def namespace_problem(
    parameter: Parameter, sites: list[CallSite], classifier: Classifier
) -> HparamProblem | None:
    """`save_hyperparameters(args)` stores a Namespace by its entries: the first call passing
    a Namespace one entry of which the default load certainly refuses."""
    for site in sites:
        passed = site.argument(parameter.params, parameter.positional, parameter.arg.arg)
        if isinstance(passed, ast.expr):
            what = refused_entry(passed, site, LoadSafety(site.facts, classifier.index))
            if what:
                return HparamProblem(what, dropped=False, site=site)
    return None


def value_problem(expr: ast.expr, ctx: ValueContext) -> HparamProblem | str:
    """A problem with one value, or "" (it is fine) or UNKNOWN."""
    hazard = ctx.classify(expr)
    if (
        hazard is not None
        and hazard.rule != "CKPT004"
        and not hazard.when
        and not hazard.when_called
        and "pickle" in hazard.breaks
    ):
        return HparamProblem(hazard.what, dropped=True, copy_fails="deepcopy" in hazard.breaks)
    what = refused_value(expr, ctx)
    if what and what != UNKNOWN:
        return HparamProblem(what, dropped=False)
    return what


def _starred_item(site: CallSite, parameter: Parameter, classifier: Classifier) -> Refused | None:
    """What `Model(*helper())` passes for the parameter, when every `return` of the helper
    gives a tuple whose element there the default load refuses (`mean, std = stats()`)."""
    starred = site.starred(parameter.params, parameter.positional, parameter.arg.arg)
    if starred is None:
        return None
    ctx = _context(classifier, site.facts, site.env, site.in_function)
    safety = LoadSafety(ctx.facts, ctx.owner.index)
    items = safety.items_of(starred[0], -1, judge_env(ctx, safety))
    return items[starred[1]] if items is not None and starred[1] < len(items) else None


def _site_context(
    classifier: Classifier, site: CallSite, contexts: dict[int, ValueContext] | None
) -> ValueContext:
    """The context of a value a call passes, with what the flow knows of its locals."""
    known = contexts.get(id(site)) if contexts is not None else None
    if known is None:
        known = _flowed_context(classifier, site)
        if contexts is not None:
            contexts[id(site)] = known
    return known


def _flowed_context(classifier: Classifier, site: CallSite) -> ValueContext:
    ctx = _context(classifier, site.facts, site.env, site.in_function)
    if site.func is None:
        return ctx
    check_deadline(classifier.deadline)  # each call site's function is walked: give up in time
    safety = shared_judge(site.facts, ctx.owner.index, classifier.site_flows)
    judged = flow_before(site, safety, classifier.site_flows)
    targets = comprehended(site, safety, lambda: judge_env(ctx, safety) | judged)
    flowed = SiteEnv(**vars(site.env), judged={**judged, **targets})
    flowed.bindings = {**site.env.bindings, **dict.fromkeys(targets, OPAQUE)}
    flowed.contents = {**site.env.contents, **filled_before(site)}
    return _context(classifier, site.facts, flowed, site.in_function)


def _context(
    classifier: Classifier, facts: ModuleFacts, env: Env, in_function: bool
) -> ValueContext:
    return ValueContext(classifier, facts, None, env, {}, 1, in_function=in_function)
