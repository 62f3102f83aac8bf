"""What the call that built a dataclass instance passes for one of its fields.

`cfg = ForecastConfig(window=WindowConfig(freq=Frequency.HOURLY))`: `cfg.window` is what the
call passes for `window`, whatever the field's annotation says (`freq: str = "h"`), so
`cfg.window.freq` is an Enum member. Syntax only: the judge decides what the argument is.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ckpt_lsp.analysis.facts import ClassFacts
from ckpt_lsp.analysis.nodes import child_nodes, walk

if TYPE_CHECKING:
    from ckpt_lsp.analysis.load_safety import Env, LoadSafety
    from ckpt_lsp.analysis.local_flow import Possible
    from ckpt_lsp.weights_only import Refused


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


def judged_fields(
    cls: ClassFacts,
    built: ast.Call,
    judge: Callable[[ast.expr], Refused | None],
    held: Mapping[str, Refused | None],
) -> tuple[tuple[str, Refused | None], ...]:
    """The fields `built` passes a refused value for, judged where the call is made: by
    position or keyword (`score=score`), or spread from a local dict whose key the flow knows
    (`**params`, `held` by `item_key`); and (None) those it gives or leaves a literal (a
    number, a string, `float("-inf")`). A plain `@dataclass` only: a `__post_init__` or a
    base may convert what is passed."""
    if cls.bases or cls.method("__post_init__") is not None:
        return ()
    from ckpt_lsp.analysis.local_flow import item_key  # the flow imports the judge

    defaults = _fields(cls)
    names = list(defaults)
    found: dict[str, Refused | None] = {}
    spread = any(isinstance(a, ast.Starred) for a in built.args)
    unknown = set(names[: len(built.args)])
    if not spread and len(built.args) <= len(names):  # `Result(net, sharpe(net))`
        for name, value in zip(names, built.args):
            refused = judge(value)
            if refused is not None or _literal(value):
                found[name] = refused
    for keyword in built.keywords:
        if keyword.arg is not None:
            refused = judge(keyword.value) if keyword.arg in defaults else None
            if refused is not None or _literal(keyword.value):
                found[keyword.arg] = refused
            unknown.add(keyword.arg)
        elif isinstance(keyword.value, ast.Name):
            spread = True
            for name in names:
                refused = held.get(item_key(keyword.value.id, name))
                if refused is not None:
                    found[name] = refused
        else:
            spread = True
    if not spread:
        found.update(
            (name, None) for name, default in defaults.items() if name not in unknown and default
        )
    return tuple(sorted(found.items(), key=lambda item: item[0]))


def merged_fields(
    instances: list[Refused],
) -> tuple[tuple[str, Refused | None], ...]:
    """The fields of one of several constructions a name may hold: refused when each of them
    passes a refused value or a literal there, and one a refused value (a search that keeps
    the best trial's config past a default one); a literal when all give literals."""
    tables = [dict(r.fields) for r in instances]
    merged: dict[str, Refused | None] = {}
    for name in set().union(*tables):
        if all(name in table for table in tables):
            refused = [r for r in (t[name] for t in tables) if r is not None]
            merged[name] = replace(refused[0], fix="") if refused else None
    return tuple(sorted(merged.items(), key=lambda item: item[0]))


def _fields(cls: ClassFacts) -> dict[str, bool]:
    """Each `__init__` field, in order, and whether its default is a literal."""
    found: dict[str, bool] = {}
    for stmt in cls.class_level():
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and not _out_of_init(stmt)
        ):
            found[stmt.target.id] = stmt.value is not None and _literal(_default(stmt.value))
    return found


def _default(value: ast.expr) -> ast.expr | None:
    """`x: int = 3` and `x: int = field(default=3)`: the default written."""
    if (
        isinstance(value, ast.Call)
        and getattr(value.func, "id", getattr(value.func, "attr", "")) == "field"
    ):
        return next((k.value for k in value.keywords if k.arg == "default"), None)
    return value


def _literal(value: ast.expr | None) -> bool:
    """A constant, a signed number, or an infinite float (`float("-inf")`, `-float("inf")`)."""
    if isinstance(value, ast.UnaryOp) and isinstance(value.op, (ast.USub, ast.UAdd)):
        value = value.operand
    if isinstance(value, ast.Constant):
        return True
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "float"
        and len(value.args) == 1
        and not value.keywords
        and isinstance(value.args[0], ast.Constant)
        and str(value.args[0].value).lstrip("+-").lower() in ("inf", "infinity", "nan")
    )


def agreed(judged: list[Refused]) -> Refused | None:
    """One value for judgements that agree but for the fields of the construction each
    saw (a default config, then the best trial's): their fields merged; None otherwise."""
    first = judged[0]
    if all(j == first for j in judged):
        return first
    bare = replace(first, fields=(), passed=())
    if any(replace(j, fields=(), passed=()) != bare for j in judged):
        return None
    if first.kind != "dataclass" and any(j.fields != first.fields for j in judged):
        return None
    return replace(first, fields=merged_fields(judged), passed=merged_passed(judged))


def merged_passed(instances: list[Refused]) -> tuple[tuple[str, object], ...]:
    """What the constructions a name may hold give each parameter: what they all give,
    else unknown (any of them may be the one that runs); nothing when one is not known."""
    from ckpt_lsp.analysis.local_flow import UNKNOWN  # the flow imports this module

    tables = [dict(r.passed) for r in instances]
    if not all(tables) or any(t.keys() != tables[0].keys() for t in tables):
        return ()
    return tuple(
        (name, value if all(t[name] == value for t in tables) else UNKNOWN)
        for name, value in tables[0].items()
    )


# Calls that read an instance without storing into it.
_READERS = frozenset(
    {"asdict", "astuple", "print", "len", "str", "repr", "isinstance", "type", "id", "hash"}
)


def forget_escaped(stmt: ast.stmt, state: dict[str, frozenset[Any]]) -> dict[str, frozenset[Any]]:
    """A dataclass instance handed on as a value (`setattr(b, "hidden", 3)`, `fill(b)`,
    `vars(b).update(...)`) may have had any field set: what its construction passed no
    longer tells. Reading its fields (`b.hidden`), calling its methods (the flow follows
    those) and reading it whole (`asdict(b)`, `print(b)`) keep them."""
    fielded = {
        name
        for name, held in state.items()
        if "." not in name and any(getattr(p, "fields", ()) for p in held)
    }
    if not fielded:
        return state
    escaped = _escaped(stmt, fielded)
    if not escaped:
        return state
    new = dict(state)
    for name in escaped:
        new[name] = frozenset(
            replace(p, fields=()) if getattr(p, "fields", ()) else p for p in state[name]
        )
    return new


def _escaped(stmt: ast.stmt, names: set[str]) -> set[str]:
    parents = {id(c): n for n in walk(stmt) for c in child_nodes(n)}
    found: set[str] = set()
    for node in walk(stmt):
        if not isinstance(node, ast.Name) or node.id not in names:
            continue
        parent = parents.get(id(node))
        if isinstance(parent, ast.Attribute) and parent.value is node:
            continue
        if isinstance(node.ctx, ast.Store):
            continue  # rebinding: the flow judges the new value
        if (
            isinstance(parent, ast.Call)
            and node in parent.args
            and getattr(parent.func, "id", getattr(parent.func, "attr", "")) in _READERS
        ):
            continue
        found.add(node.id)
    return found
