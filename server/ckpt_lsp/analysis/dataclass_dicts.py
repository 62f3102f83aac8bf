"""What `dataclasses.asdict(x)` (or `astuple`) of a project dataclass instance holds.

`asdict` turns the instance and the dataclasses nested in its fields into dicts, and copies
every other value as it is: a field holding an Enum member, a `Path` or a numpy value (as its
annotation, its default or the call that built it says, judged as `x.field` would be) makes
the dict one the default `torch.load` refuses. Measured: `asdict(Trial(state=State.DONE))`
fails to load, `asdict` of a dataclass of numbers and strings loads.
"""

from __future__ import annotations

import ast
from dataclasses import replace
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.facts import dotted_name
from ckpt_lsp.analysis.names import qualify

if TYPE_CHECKING:
    from ckpt_lsp.analysis.load_safety import Env, LoadSafety
    from ckpt_lsp.weights_only import Refused

CONVERTERS = frozenset({"dataclasses.asdict", "dataclasses.astuple"})
# the kinds `asdict` converts (nested dataclasses) or that say nothing of the field's value
_CONVERTED = frozenset({"dataclass"})
_NESTING = 3  # how deep nested dataclasses are followed


def converted(judge: LoadSafety, call: ast.Call, env: Env) -> Refused | None:
    """The refusal of `asdict(x)`: the first field of `x`'s dataclass whose value is refused
    (a nested dataclass is converted too, so it is left out)."""
    fields = refused_fields(judge, call, env)
    if not fields:
        return None
    found = next(iter(fields.values()))
    shape = "a tuple" if judge_name(call) == "astuple" else "a dict"
    return replace(found, what=f"{shape} holding {found.what}", holder=True)


def dict_keys(judge: LoadSafety, call: ast.Call, env: Env) -> dict[str, Refused] | None:
    """`d = asdict(x)`: what `d[field]` holds, for each field holding a refused value
    (None when the call is no `dataclasses.asdict` of a project dataclass): the flow keeps
    the keys, so `d["mode"] = d["mode"].value` converts one."""
    dotted = dotted_name(call.func)
    if not dotted or qualify(dotted, judge.facts) != "dataclasses.asdict":
        return None
    return refused_fields(judge, call, env)


def refused_fields(judge: LoadSafety, call: ast.Call, env: Env) -> dict[str, Refused] | None:
    """Each field of the instance `call` converts that holds a refused value, in order;
    None when the argument is no project dataclass instance."""
    if len(call.args) != 1 or call.keywords or judge.depth_left() <= 0:
        return None  # `dict_factory=` may convert the values
    return _fields_of(judge, call.args[0], env, _NESTING)


def _fields_of(
    judge: LoadSafety, expr: ast.expr, env: Env, depth: int
) -> dict[str, Refused] | None:
    """The refused fields of the dataclass instance `expr`; a nested dataclass's under its
    field's name, as the dict holding them."""
    instance = judge.kind_of(expr, env)
    if instance is None or instance.kind != "dataclass" or not instance.type_name:
        return None
    located = judge.project_class(instance.type_name)
    if located is None:
        return None
    fields: dict[str, Refused] = {}
    for name in _field_names(located[1].class_level()):
        read = ast.copy_location(ast.Attribute(value=expr, attr=name, ctx=ast.Load()), expr)
        found = judge.of_expression(read, env)
        if found is not None and found.kind in _CONVERTED and depth > 0:
            inner = _fields_of(judge, read, env, depth - 1) or {}
            held = next(iter(inner.items()), None)
            if held is not None:  # `asdict` makes the nested dataclass a dict holding it
                what = f"a dict holding {held[1].what} (`{held[0]}`)"
                fields[name] = replace(held[1], what=what, holder=True)
        elif found is not None and found.kind not in _CONVERTED and not found.holder:
            fields[name] = replace(found, fix="", built=None, fields=(), passed=())
    return fields


def judge_name(call: ast.Call) -> str:
    """The converter's own name as called (`asdict`, `dataclasses.astuple`)."""
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _field_names(body: list[ast.stmt]) -> list[str]:
    """The dataclass's own fields, as annotated in its body (ClassVar left out)."""
    names = []
    for stmt in body:
        if not isinstance(stmt, ast.AnnAssign) or not isinstance(stmt.target, ast.Name):
            continue
        annotation = stmt.annotation
        head = annotation.value if isinstance(annotation, ast.Subscript) else annotation
        named = head.attr if isinstance(head, ast.Attribute) else getattr(head, "id", "")
        if named not in ("ClassVar", "InitVar", "KW_ONLY"):
            names.append(stmt.target.id)
    return names
