"""`policy.hparams.gripper` of a LightningModule built here: what the constructing call
passed for that `__init__` parameter (judged where the call is, with its locals), or the
parameter's default when the call leaves it out.

Lightning's `save_hyperparameters()` stores the `__init__` arguments as given (an Enum
member stays one, a numpy array stays one), and `module.hparams.x` / `module.hparams["x"]`
reads them back. Only a parameter the `__init__`'s first call stores, not rebound before
it, and a call that names its arguments (no `*args` / `**kwargs`) are read.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.hparams import (
    default_of,
    init_parameters,
    lightning_bases,
    rebound_before,
    saved_hparams,
)
from ckpt_lsp.analysis.names import qualify

if TYPE_CHECKING:
    from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts
    from ckpt_lsp.analysis.load_safety import LoadSafety
    from ckpt_lsp.weights_only import Refused

Env = Mapping[str, "Refused | None"]
_PREFIX = "hparams."
_HPARAMS = frozenset(
    {"hparams", "hparams_initial"}
)  # a Refused's `fields` key for a stored argument judged at the call


def hparam_read(safety: LoadSafety, expr: ast.expr, env: Env) -> Refused | None:
    """What `owner.hparams.name` / `owner.hparams["name"]` holds, when known refused."""
    holder: ast.expr | None = None
    name = ""
    if isinstance(expr, ast.Attribute):
        holder, name = expr.value, expr.attr
    elif isinstance(expr, ast.Subscript) and isinstance(expr.slice, ast.Constant):
        key = expr.slice.value
        holder, name = expr.value, key if isinstance(key, str) else ""
    if not (name and isinstance(holder, ast.Attribute) and holder.attr == "hparams"):
        return None
    owner = safety.kind_of(holder.value, env)
    if owner is None or not owner.type_name or owner.built is None:
        return None
    located = safety.project_class(owner.type_name)
    stored = _stored(located[1]) if located is not None else None
    if located is None or stored is None or name not in stored:
        return None
    judged = dict(owner.fields).get(_PREFIX + name)
    if judged is not None:
        return judged
    init = located[1].method("__init__")
    if init is None or _passed(init, owner.built, name) is not _LEFT_OUT:
        return None  # passed a value the call's judge did not refuse
    default = default_of(init, name)
    return safety.deeper(located[0]).of_expression(default) if default is not None else None


def hparams_dict(safety: LoadSafety, expr: ast.Attribute, env: Env) -> Refused | None:
    """`model.hparams` of a LightningModule built here (or annotated so): Lightning's
    `AttributeDict`, which the default load refuses whatever it holds."""
    if expr.attr not in _HPARAMS:
        return None
    owner = safety.kind_of(expr.value, env)
    located = safety.project_class(owner.type_name) if owner and owner.type_name else None
    return attribute_dict(safety, located)


def attribute_dict(
    safety: LoadSafety, located: tuple[ModuleFacts, ClassFacts] | None, depth: int = 0
) -> Refused | None:
    """The `AttributeDict` kind, when the class is a LightningModule (its bases, followed
    through the project's classes, reach Lightning's)."""
    if located is None or depth > 3:
        return None
    facts, cls = located
    for base in cls.bases:
        qualified = qualify(base, facts)
        if qualified in lightning_bases():
            return safety.catalog.kind("attribute-dict")
        found = attribute_dict(safety, safety.project_class(qualified), depth + 1)
        if found is not None:
            return found
    return None


def hparam_fields(
    safety: LoadSafety, located: tuple[ModuleFacts, ClassFacts], call: ast.Call, env: Env
) -> tuple[tuple[str, Refused | None], ...]:
    """The stored arguments a constructing call passes that the default load refuses,
    judged with the call's locals, as `fields` of the instance."""
    stored = _stored(located[1])
    init = located[1].method("__init__")
    if not stored or init is None:
        return ()
    found = []
    for name in stored:
        passed = _passed(init, call, name)
        if isinstance(passed, ast.expr):
            judged = safety.of_expression(passed, env)
            if judged is not None:
                found.append((_PREFIX + name, judged))
    return tuple(found)


_LEFT_OUT = object()
_HIDDEN = object()


def _passed(init: ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call, name: str) -> object:
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
