"""`module.hparams.stage`: a hyperparameter read back from a Lightning module, for CKPT010.

`save_hyperparameters()` keeps each stored `__init__` argument as passed (lightning 2.6,
measured: an Enum member, a DictConfig, a numpy scalar come back as themselves from
`module.hparams.x`, `module.hparams["x"]` and `module.hparams.get("x")`), so a checkpoint entry
read from there is what the call that built the module passed for that parameter, or its
default. Known only for an instance of a project class whose building call is known, or by a
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
    none_fills,
    rebound_before,
    saved_hparams,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ckpt_lsp.analysis.load_safety import LoadSafety
    from ckpt_lsp.weights_only import Refused

HPARAMS = frozenset({"hparams", "hparams_initial"})
_MODULE_KIND = "lightning-module"


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
