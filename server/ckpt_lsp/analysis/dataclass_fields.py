"""What the call that built a dataclass instance passes for one of its fields.

`cfg = ForecastConfig(window=WindowConfig(freq=Frequency.HOURLY))`: `cfg.window` is what the
call passes for `window`, whatever the field's annotation says (`freq: str = "h"`), so
`cfg.window.freq` is an Enum member. Syntax only: the judge decides what the argument is.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.facts import ClassFacts

if TYPE_CHECKING:
    from ckpt_lsp.analysis.load_safety import Env, LoadSafety
    from ckpt_lsp.analysis.local_flow import Possible


def passed_field(cls: ClassFacts, attr: str, built: ast.Call) -> ast.expr | None:
    """The argument `built` passes for field `attr` (by keyword; by position only when the
    class has no bases, whose fields would come first); None when not passed or hidden
    behind `*args` / `**kw`."""
    if any(k.arg is None for k in built.keywords) or any(
        isinstance(a, ast.Starred) for a in built.args
    ):
        return None
    for keyword in built.keywords:
        if keyword.arg == attr:
            return keyword.value
    if not built.args or cls.bases:
        return None
    annotated = [
        stmt
        for stmt in cls.class_level()
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
    ]
    if any(_out_of_init(stmt) for stmt in annotated):
        return None  # a ClassVar or `field(init=False)` moves the positions
    fields = [stmt.target.id for stmt in annotated if isinstance(stmt.target, ast.Name)]
    if attr not in fields:
        return None
    position = fields.index(attr)
    return built.args[position] if position < len(built.args) else None


def _out_of_init(stmt: ast.AnnAssign) -> bool:
    """A class-level annotation that is no `__init__` parameter (or may not be one)."""
    annotation = stmt.annotation
    head = annotation.value if isinstance(annotation, ast.Subscript) else annotation
    named = head.attr if isinstance(head, ast.Attribute) else getattr(head, "id", "")
    if named in ("ClassVar", "InitVar", "KW_ONLY"):
        return True
    value = stmt.value
    return isinstance(value, ast.Call) and any(k.arg in ("init", "kw_only") for k in value.keywords)


def built_fields(
    judge: LoadSafety, type_name: str, built: ast.Call, env: Env
) -> dict[str, Possible]:
    """What each field of the project dataclass holds as `built` makes it (`Best(trial=t,
    score=score, **params)`): the argument passed by keyword, or the `**dict`'s key the flow
    knows; else its literal default (a placeholder), else unknown."""
    from ckpt_lsp.analysis.local_flow import LITERAL, UNKNOWN, item_key
    from ckpt_lsp.analysis.object_effects import passed_value

    located = judge.project_class(type_name)
    if located is None or any(isinstance(a, ast.Starred) for a in built.args):
        return {}
    cls = located[1]
    annotated = [
        stmt
        for stmt in cls.class_level()
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
    ]
    spread = [k.value.id for k in built.keywords if k.arg is None and isinstance(k.value, ast.Name)]
    if len(spread) != sum(k.arg is None for k in built.keywords):
        return {}  # `**make()`: what it passes is not known
    fields: dict[str, Possible] = {}
    for stmt in annotated:
        if _out_of_init(stmt):
            continue
        name = stmt.target.id if isinstance(stmt.target, ast.Name) else ""
        passed = passed_field(cls, name, built) if not spread else _keyword(built, name)
        if passed is not None:
            judged = passed_value(judge, passed, env)
            fields[name] = judged if judged is not None else UNKNOWN
        elif spread:
            keys = [item_key(d, name) for d in spread]
            known = [env.get(k) for k in keys if k in env]
            fields[name] = known[0] if len(known) == 1 and known[0] is not None else UNKNOWN
        else:
            fields[name] = LITERAL if isinstance(stmt.value, ast.Constant) else UNKNOWN
            number = _default_number(stmt.value)
            if number is not None:
                fields[name] = number
    return fields


def _keyword(built: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in built.keywords if k.arg == name), None)


def _default_number(value: ast.expr | None) -> Possible | None:
    from ckpt_lsp.analysis.object_effects import number_placeholder

    return number_placeholder(value) if value is not None else None
