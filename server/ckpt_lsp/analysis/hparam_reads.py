"""`module.hparams.stage`: a hyperparameter read back from a Lightning module, for CKPT010.

`save_hyperparameters()` keeps each stored `__init__` argument as passed (lightning 2.6,
measured: an Enum member, a DictConfig, a numpy scalar come back as themselves from
`module.hparams.x`, `module.hparams["x"]` and `module.hparams.get("x")`), so a checkpoint entry
read from there is what the call that built the module passed for that parameter, or its
default. The building call's arguments are judged where the call is, with its locals
(`hparam_fields`, kept in the instance's `fields`); else the call's text or the default.
Known only for an instance of a project class whose building call is known, or by a
parameter's annotation when every value of it is refused.
"""

from __future__ import annotations

import ast
from dataclasses import replace
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.assignments import Env
from ckpt_lsp.analysis.call_sites import CallSite
from ckpt_lsp.analysis.hparams import (
    default_of,
    init_parameters,
    lightning_bases,
    none_fills,
    rebound_before,
    saved_hparams,
)
from ckpt_lsp.analysis.names import qualify

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts
    from ckpt_lsp.analysis.load_safety import LoadSafety
    from ckpt_lsp.weights_only import Refused

HPARAMS = frozenset({"hparams", "hparams_initial"})
_MODULE_KIND = "lightning-module"
_HPARAMS_KIND = "lightning-hparams"
_PREFIX = "hparams."  # a Refused's `fields` key for a stored argument judged at the call


def read_key(expr: ast.expr) -> tuple[ast.expr, str] | None:
    """`owner.hparams.key`, `owner.hparams["key"]`, `owner.hparams.get("key")`: the owner
    expression and the key; None for any other form."""
    holder: ast.expr | None = None
    key: object = None
    if isinstance(expr, ast.Attribute):
        holder, key = expr.value, expr.attr
    elif isinstance(expr, ast.Subscript) and isinstance(expr.slice, ast.Constant):
        holder, key = expr.value, expr.slice.value
    elif (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Attribute)
        and expr.func.attr == "get"
        and len(expr.args) == 1
        and not expr.keywords
        and isinstance(expr.args[0], ast.Constant)
    ):
        holder, key = expr.func.value, expr.args[0].value
    if (
        isinstance(holder, ast.Attribute)
        and holder.attr in HPARAMS
        and isinstance(key, str)
        and key not in HPARAMS
    ):
        return holder.value, key
    return None


def hparam_read(
    safety: LoadSafety, owner: ast.expr, key: str, env: Mapping[str, Refused | None]
) -> Refused | None:
    """The refusal of the hyperparameter `key` of the Lightning module `owner` evaluates to."""
    module = safety.kind_of(owner, env)
    if module is None or module.kind != _MODULE_KIND or not module.type_name:
        return None
    located = safety.project_class(module.type_name)
    init = located[1].method("__init__") if located is not None else None
    if located is None or init is None:
        return None
    saved = saved_hparams(init)
    if saved is None or saved.container is not None:
        return None
    param = next((p for p in saved.stored if p.arg == key), None)
    fills = none_fills(init, saved.call)
    if param is None or key in rebound_before(init, saved.call) - fills.keys():
        return None  # converted before it is stored: the caller's value does not tell
    judged = dict(module.fields).get(_PREFIX + key)
    if judged is not None:
        return replace(judged, fix="")
    home = safety.deeper(located[0])
    default = fills.get(key) or default_of(init, key)
    found = _passed(safety, home, init, module.built, key, default)
    if found is None and module.built is None and param.annotation is not None:
        annotated = home.of_annotation(param.annotation)
        if annotated is not None and (default is None or home.of_expression(default)):
            found = annotated
    return replace(found, fix="") if found is not None else None


def _passed(
    safety: LoadSafety,
    home: LoadSafety,
    init: ast.FunctionDef | ast.AsyncFunctionDef,
    built: ast.Call | None,
    key: str,
    default: ast.expr | None,
) -> Refused | None:
    """What the building call passes for `key` (a local name of its caller is not known
    here), or the default it leaves."""
    if built is None:
        return None
    params = init_parameters(init)
    positional = len(init.args.posonlyargs) + len(init.args.args) - 1
    site = CallSite(safety.facts, built, Env(), 0, False)
    given = site.argument(params, positional, key)
    if isinstance(given, ast.expr):
        if isinstance(given, ast.Name) or (isinstance(given, ast.Constant) and given.value is None):
            return None
        return safety.of_expression(given) or home.of_expression(given)
    if given is None and default is not None:
        return home.of_expression(default)
    return None


def attribute_dict(
    safety: LoadSafety, located: tuple[ModuleFacts, ClassFacts] | None, depth: int = 0
) -> Refused | None:
    """Lightning's `hparams` kind for a class's own `self.hparams`, when the class is a
    LightningModule (its bases, followed through the project's classes, reach Lightning's)."""
    if located is None or depth > 3:
        return None
    facts, cls = located
    for base in cls.bases:
        qualified = qualify(base, facts)
        if qualified in lightning_bases():
            return safety.catalog.kind(_HPARAMS_KIND)
        found = attribute_dict(safety, safety.project_class(qualified), depth + 1)
        if found is not None:
            return found
    return None


def hparam_fields(
    safety: LoadSafety,
    located: tuple[ModuleFacts, ClassFacts],
    call: ast.Call,
    env: Mapping[str, Refused | None],
) -> tuple[tuple[str, Refused | None], ...]:
    """The stored arguments a constructing call passes that the default load refuses,
    judged with the call's locals, as `fields` of the instance."""
    stored = _stored(located[1])
    init = located[1].method("__init__")
    if not stored or init is None:
        return ()
    found = []
    for name in stored:
        passed = _argument(init, call, name)
        if isinstance(passed, ast.expr):
            judged = safety.of_expression(passed, env)
            if judged is not None:
                found.append((_PREFIX + name, judged))
    return tuple(found)


_LEFT_OUT = object()
_HIDDEN = object()


def _argument(init: ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call, name: str) -> object:
    """The argument `call` passes for `name`; _LEFT_OUT, or _HIDDEN behind `*`/`**`."""
    if any(k.arg is None for k in call.keywords) or any(
        isinstance(a, ast.Starred) for a in call.args
    ):
        return _HIDDEN
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    count = len(init.args.posonlyargs) + len(init.args.args) - 1  # `self` left out
    positional = [p.arg for p in init_parameters(init)][:count]
    if name in positional and positional.index(name) < len(call.args):
        return call.args[positional.index(name)]
    return _LEFT_OUT


def _stored(cls: ClassFacts) -> frozenset[str] | None:
    """The `__init__` parameters the class's own `save_hyperparameters` stores as passed."""
    if not cls.methods_mentioning("save_hyperparameters"):
        return None  # the text first: most classes built are no LightningModule
    init = cls.method("__init__")
    saved = saved_hparams(init) if init is not None else None
    if init is None or saved is None or saved.container is not None:
        return None
    rebound = rebound_before(init, saved.call)
    return frozenset(p.arg for p in saved.stored if p.arg not in rebound)
