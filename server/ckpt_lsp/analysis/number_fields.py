"""Attributes known to hold a Python number: numpy arithmetic with one stays numpy.

`cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)` with `frac = np.clip(...)` is an
np.float64 when the config's fields are Python floats. Known so: a dataclass field annotated
`int` or `float` that the building call leaves at its default or passes a number literal, a
number an OmegaConf display holds (`cfg.gamma`), and an argparse option converted by
`type=int` / `type=float`. Anything else (a tensor may be
passed for a `float` field) stays unknown, so the arithmetic stays unknown.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.argparse_types import number_argument
from ckpt_lsp.analysis.dataclass_fields import passed_field
from ckpt_lsp.analysis.facts import ClassFacts, dotted_name
from ckpt_lsp.analysis.names import qualify

if TYPE_CHECKING:
    from ckpt_lsp.analysis.load_safety import LoadSafety
    from ckpt_lsp.weights_only import Refused

_NUMBER_TYPES = frozenset({"builtins.int", "builtins.float"})


_COUNTS = frozenset({"size", "ndim", "nbytes", "itemsize"})
# arrays, columns and frames, whose counts are attributes (a groupby's `size` is a method)
_SIZED = frozenset(
    {
        "numpy-scalar",
        "numpy-array",
        "numpy-object-array",
        "pandas-frame",
        "pandas-time-frame",
        "pandas-series",
        "pandas-number-series",
        "pandas-datetime-series",
        "pandas-index",
        "pandas-datetime-index",
        "pandas-number-index",
    }
)


def number_attribute(
    safety: LoadSafety, expr: ast.Attribute, env: Mapping[str, Refused | None]
) -> bool:
    """Whether `expr` (`cfg.lr`, `args.gamma`) holds a Python int or float."""
    receiver = safety.kind_of(expr.value, env)
    if receiver is None or receiver.holder:
        return False
    if expr.attr in _COUNTS and receiver.kind in _SIZED:
        return True  # `masks.size`, `x.ndim`: Python ints
    if isinstance(receiver.shape, ast.Dict):  # `cfg.gamma` of `OmegaConf.create({...})`
        return any(
            isinstance(k, ast.Constant) and k.value == expr.attr and _number_literal(v)
            for k, v in zip(receiver.shape.keys, receiver.shape.values)
        )
    if receiver.kind == "namespace":
        return number_argument(safety.facts, expr.attr)
    if receiver.type_name and receiver.kind != "dataclass":
        from ckpt_lsp.analysis.object_effects import initial_number  # it imports this module

        return initial_number(safety, receiver, expr.attr)
    if receiver.kind != "dataclass" or not receiver.type_name:
        return False
    located = safety.project_class(receiver.type_name)
    if located is None:
        return False
    facts, cls = located
    if not _number_field(cls, expr.attr, lambda name: qualify(name, facts)):
        return False
    built = receiver.built
    if built is None:
        return True
    if any(k.arg is None for k in built.keywords) or any(
        isinstance(a, ast.Starred) for a in built.args
    ):
        return False  # `Config(**overrides)` may pass anything
    passed = passed_field(cls, expr.attr, built)
    return passed is None or _number_literal(passed)


def _number_field(cls: ClassFacts, attr: str, qualified: Callable[[str], str]) -> bool:
    """A class-level `attr: float = 0.1` (a number default, or none)."""
    for stmt in cls.class_level():
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and stmt.target.id == attr
        ):
            annotation = dotted_name(stmt.annotation) if stmt.annotation is not None else ""
            if not annotation or qualified(annotation) not in _NUMBER_TYPES:
                return False
            return stmt.value is None or _number_literal(stmt.value)
    return False


def _number_literal(value: ast.expr) -> bool:
    if isinstance(value, ast.UnaryOp) and isinstance(value.op, (ast.USub, ast.UAdd)):
        value = value.operand
    return (
        isinstance(value, ast.Constant)
        and isinstance(value.value, (int, float))
        and not isinstance(value.value, bool)
    )
