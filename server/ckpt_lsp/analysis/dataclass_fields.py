"""What the call that built a dataclass instance passes for one of its fields.

`cfg = ForecastConfig(window=WindowConfig(freq=Frequency.HOURLY))`: `cfg.window` is what the
call passes for `window`, whatever the field's annotation says (`freq: str = "h"`), so
`cfg.window.freq` is an Enum member. Syntax only: the judge decides what the argument is.
"""

from __future__ import annotations

import ast

from ckpt_lsp.analysis.facts import ClassFacts


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
