"""What the call that built a project object gives each parameter of its `__init__`.

`trainer = LoraTrainer(model, cfg)` with `cfg = LoraConfig()` a local of the caller, or
`SurrogateTrainer()` leaving `grid=GridSpec()` to its default: `self.cfg = cfg` and
`self.grid = grid` hold what the call gives. Judged once, where the call is made (its locals
are known only there), and kept on the instance (`Refused.passed`); the class's flows bind
`__init__`'s parameters to it. A loadable or unknown argument is unknown, never its default.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.local_flow import (
    NONE_DEFAULT,
    NONE_MARK,
    NUMBER,
    UNKNOWN,
    UNPASSED_NONE,
    Possible,
    _Literal,
    literal_of,
)
from ckpt_lsp.weights_only import Refused

if TYPE_CHECKING:
    from ckpt_lsp.analysis.class_text import FunctionNode
    from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts
    from ckpt_lsp.analysis.load_safety import Env, LoadSafety

Passed = tuple[tuple[str, object], ...]


def passed_arguments(
    safety: LoadSafety, located: tuple[ModuleFacts, ClassFacts], call: ast.Call, env: Env
) -> Passed:
    """Each `__init__` parameter after `self` with what `call` gives it; empty when the
    class (or a project base) defines no `__init__` or `*args`/`**kw` hide the arguments."""
    from ckpt_lsp.analysis.object_effects import init_method  # it runs flows of its own

    found = init_method(safety, located)
    if found is None:
        return ()
    facts, init = found
    args = init.args
    if args.vararg is not None or args.kwarg is not None:
        return ()  # what the base's `__init__` receives of them is not followed
    if any(isinstance(a, ast.Starred) for a in call.args) or any(
        k.arg is None for k in call.keywords
    ):
        return ()
    params = [p.arg for p in [*args.posonlyargs, *args.args]][1:]
    if len(call.args) > len(params):
        return ()
    defaults = _defaults(init, params)
    given: dict[str, ast.expr] = dict(zip(params, call.args))
    given.update({k.arg: k.value for k in call.keywords if k.arg is not None})
    names = [*params, *(p.arg for p in args.kwonlyargs)]
    if any(name not in names for name in given):
        return ()
    deeper = safety.deeper(facts)
    judged: list[tuple[str, object]] = []
    for name in names:
        default = defaults.get(name)
        if name in given:
            judged.append((name, _judged(safety, given[name], env)))
        elif default is not None:
            judged.append((name, _default(deeper, default)))
        else:
            judged.append((name, UNKNOWN))
    return tuple(judged)


def _defaults(init: FunctionNode, params: list[str]) -> dict[str, ast.expr | None]:
    args = init.args
    found: dict[str, ast.expr | None] = dict(
        zip(params[len(params) - len(args.defaults) :], args.defaults)
    )
    found.update(zip([p.arg for p in args.kwonlyargs], args.kw_defaults))
    return found


def _judged(safety: LoadSafety, expr: ast.expr, env: Env) -> Possible:
    """What an argument is: a number literal (a placeholder arithmetic keeps numpy), another
    literal, a refused value; anything else (a `float(...)`, a str) unknown."""
    from ckpt_lsp.analysis.object_effects import number_placeholder

    number = number_placeholder(expr)
    if number is not None:
        return number
    if isinstance(expr, ast.Name) and NONE_MARK + expr.id in env:
        return NONE_DEFAULT  # `Trainer(cfg)` of the caller's own `cfg=None`, left out
    if isinstance(expr, ast.Constant):
        return literal_of(expr)  # `use_ema=True` decides `if use_ema:` in `__init__`
    found = safety.of_expression(expr, env)
    if found is None and safety.is_number(expr, env):
        return NUMBER  # `decay=self.cfg.ema_decay` of a `float` field: arithmetic keeps numpy
    return found if found is not None else UNKNOWN


def _default(safety: LoadSafety, expr: ast.expr) -> Possible:
    """A default, evaluated where the function is defined; `None` left for `p or X()`."""
    if isinstance(expr, ast.Constant) and expr.value is None:
        return NONE_DEFAULT
    return _judged(safety, expr, {})


def bound_of(instance: Refused | None) -> dict[str, object] | None:
    """What a flow of `__init__` binds its parameters to for this instance; None when the
    call that built it is not known."""
    if instance is None or not instance.passed:
        return None
    bound: dict[str, object] = {
        name: value for name, value in instance.passed if isinstance(value, (Refused, _Literal))
    }
    unpassed = frozenset(name for name, value in instance.passed if value is NONE_DEFAULT)
    if unpassed:
        bound[UNPASSED_NONE] = unpassed
    return bound


def passed_value(instance: Refused, name: str) -> Possible | None:
    """What the construction gives the parameter `name`; None when not known."""
    value = dict(instance.passed).get(name)
    return value if isinstance(value, (Refused, _Literal)) else None


__all__ = ["Passed", "bound_of", "passed_arguments", "passed_value"]
