"""What a dict holds under its constant keys when it spreads another (`{"epoch": e, **stats}`),
and what every record appended to a local list holds under a key: `log.append({"epoch": e,
**stats})` then `log[-1]["loss"]`, `last = log[-1]` or `for s in log` read what `stats["loss"]`
held. The flow keeps a record's key under `log[*]['loss']` and forgets it as it forgets the
list's items (the list rebound, mutated otherwise or handed on).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.elements import every_item_key
from ckpt_lsp.analysis.facts import ClassFacts, dotted_name
from ckpt_lsp.analysis.nodes import walk

if TYPE_CHECKING:
    from ckpt_lsp.analysis.load_safety import LoadSafety
    from ckpt_lsp.analysis.local_flow import Possible, State
    from ckpt_lsp.weights_only import Refused

# the flow's judgement of one value in the state (`LocalFlow._value`)
Judge = Callable[[ast.expr, "State"], "Possible"]


def _key(name: str, key: str) -> str:
    return f"{name}[{key!r}]"


def record_prefix(name: str) -> str:
    """The state key prefix of what every record of list `name` holds under a key."""
    return every_item_key(name) + "["


def shown_keys(
    safety: LoadSafety,
    value: ast.expr,
    state: State,
    env: Mapping[str, Refused | None],
    judge: Judge,
) -> dict[str, Possible] | None:
    """The refused values a dict display (spreads included), a local dict whose keys the
    flow knows, or a project helper's dict result holds under each constant key; None when
    the value is none of these. A spread may replace any key written before it."""
    from ckpt_lsp.analysis.local_flow import keyword_display

    value = keyword_display(value) or value
    if isinstance(value, ast.Name):
        return _local_keys(value.id, state)
    if isinstance(value, ast.Call):
        keys = safety.keys_of(value, env) if safety.depth_left() > 0 else {}
        return dict(keys) or None
    if not isinstance(value, ast.Dict):
        return None
    found: dict[str, Possible] = {}
    for key, item in zip(value.keys, value.values):
        if key is None:
            spread = shown_keys(safety, item, state, env, judge)
            found = dict(spread or {})  # its keys are not all known: earlier ones may go
        elif isinstance(key, ast.Constant) and isinstance(key.value, str):
            judged = judge(item, state)
            found.pop(key.value, None)
            if _is_refused(judged):
                found[key.value] = judged
        else:
            found = {}  # a key not written out may be any of them
    return found


def _local_keys(name: str, state: State) -> dict[str, Possible] | None:
    """`name['k']` the state knows refused (the collapsed value of each)."""
    from ckpt_lsp.analysis.local_flow import collapse

    prefix = name + "['"
    found: dict[str, Possible] = {}
    for held, possible in state.items():
        if held.startswith(prefix) and held.endswith("']") and "][" not in held:
            judged = collapse(possible)
            if judged is not None:
                found[held[len(prefix) : -2]] = judged
    return found or None


def appended_records(name: str, keys: Mapping[str, Possible], before: State, empty: bool) -> State:
    """`log.append({...})`: every record of a list that was empty holds these keys; of a
    list whose records all held a key so, the keys the new record holds the same way."""
    prefix = record_prefix(name)
    if empty:
        return {_key(every_item_key(name), k): frozenset({v}) for k, v in keys.items()}
    found: State = {}
    for held, possible in before.items():
        if held.startswith(prefix) and held.endswith("']"):
            key = held[len(prefix) + 1 : -2]
            if key in keys and possible == frozenset({keys[key]}):
                found[held] = possible
    return found


def record_of(name: str, source: str, state: State) -> State:
    """`last = log[-1]` / `for s in log`: the record's keys (and an object's field keys,
    `best.params['lr']`), as every item of `source` holds them."""
    every = every_item_key(source)
    return {
        name + held[len(every) :]: possible
        for held, possible in state.items()
        if held.startswith((every + "[", every + ".")) and held.endswith("']")
    }


def appended_object(name: str, item: str, before: State, empty: bool) -> State:
    """`trials.append(trial)` of an object whose field keys the flow knows
    (`trial.params['lr']`): every item of a list that was empty holds them; of one whose
    items all held a key so, the keys the new item holds the same way."""
    prefix, every = item + ".", every_item_key(name)
    keys = {
        every + held[len(item) :]: possible
        for held, possible in before.items()
        if held.startswith(prefix) and held.endswith("']")
    }
    if empty:
        return keys
    return {k: v for k, v in keys.items() if before.get(k) == v}


def field_items(
    safety: LoadSafety, name: str, value: ast.expr | None, state: State, judge: Judge
) -> State:
    """`trial = Trial(number, params)` of a project class given a dict whose keys the flow
    knows (a local, a helper's result, a display): `trial.params['lr']` holds what
    `params['lr']` held. A dataclass's fields; another class's attributes its `__init__`
    sets once, from a parameter, on its straight path (and no other method sets)."""
    from ckpt_lsp.analysis.local_flow import env_of
    from ckpt_lsp.analysis.names import qualify

    if not isinstance(value, ast.Call) or "." in name:
        return {}  # `name` "": the keys as a return gives them (`.params['lr']`)
    dotted = dotted_name(value.func)
    located = safety.project_class(qualify(dotted, safety.facts)) if dotted else None
    if located is None or dotted.split(".")[0] in state:
        return {}
    found: State = {}
    env: dict[str, Refused | None] | None = None
    for field, passed in _given_fields(located[1], value).items():
        if isinstance(passed, (ast.Constant, ast.Attribute, ast.Subscript)):
            continue
        env = env if env is not None else env_of(state)
        keys = shown_keys(safety, passed, state, env, judge) or {}
        found.update({_key(f"{name}.{field}", k): frozenset({v}) for k, v in keys.items()})
    return found


def _given_fields(cls: ClassFacts, call: ast.Call) -> dict[str, ast.expr]:
    """What `call` passes for each field of a dataclass, or for each attribute `__init__`
    sets from a parameter once (`self.params = params`) and no other method sets."""
    from ckpt_lsp.analysis.dataclass_fields import passed_field

    fields: dict[str, ast.expr] = {}
    if cls.method("__post_init__") is not None:
        return fields  # it may convert what it was given
    for stmt in cls.class_level() if _is_dataclass(cls) else []:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            passed = passed_field(cls, stmt.target.id, call)
            if passed is not None:
                fields[stmt.target.id] = passed
    init = cls.method("__init__")
    if fields or init is None or cls.bases and _calls_super(init):
        return fields
    given = _init_arguments(init, call)
    stores = _self_stores(cls)
    for stmt in init.body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1):
            continue
        target, source = stmt.targets[0], stmt.value
        if (
            isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Name)
            and target.value.id == "self"
            and isinstance(source, ast.Name)
            and source.id in given
            and stores.get(target.attr) == 1
        ):
            fields[target.attr] = given[source.id]
    return fields


def _is_dataclass(cls: ClassFacts) -> bool:
    """Decorated `@dataclass` (or `@dataclass(...)`): its fields keep what they are given."""
    for decorator in cls.node.decorator_list:
        named = dotted_name(decorator.func if isinstance(decorator, ast.Call) else decorator)
        if named.rsplit(".", 1)[-1] == "dataclass":
            return True
    return False


def _calls_super(init: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "super"
        for n in walk(init)
    )


def _init_arguments(
    init: ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call
) -> dict[str, ast.expr]:
    """`__init__`'s parameters (self left out) bound to what the call passes."""
    if any(isinstance(a, ast.Starred) for a in call.args) or any(
        k.arg is None for k in call.keywords
    ):
        return {}
    params = [a.arg for a in [*init.args.posonlyargs, *init.args.args][1:]]
    given = dict(zip(params, call.args))
    given.update({k.arg: k.value for k in call.keywords if k.arg is not None})
    return given


def _self_stores(cls: ClassFacts) -> dict[str, int]:
    """How many statements of the class's methods store each `self.x` (`self.x[k] = v`,
    `self.x.update(...)` count too: the dict changes)."""
    counts: dict[str, int] = {}
    for method in cls.assigning_methods():
        for node in walk(method):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
                and not isinstance(node.ctx, ast.Load)
            ):
                counts[node.attr] = counts.get(node.attr, 0) + 1
            if isinstance(node, ast.Subscript) and not isinstance(node.ctx, ast.Load):
                held = dotted_name(node.value)
                if held.startswith("self."):
                    counts[held[5:]] = counts.get(held[5:], 0) + 2
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                held = dotted_name(node.func.value)
                if held.startswith("self.") and node.func.attr in _DICT_EDITS:
                    counts[held[5:]] = counts.get(held[5:], 0) + 2
    return counts


_DICT_EDITS = frozenset({"update", "pop", "popitem", "setdefault", "clear", "__setitem__"})


def record_item(
    value: ast.expr, key: str | int | None, env: Mapping[str, Refused | None]
) -> Refused | None:
    """`log[-1]["loss"]`: what every record of the local list holds under the key; `log[-1]`
    (key None): a record holding a refused value is refused whole."""
    if not isinstance(value, ast.Subscript) or not isinstance(value.value, ast.Name):
        return None
    if isinstance(value.slice, ast.Slice):
        return None
    prefix = record_prefix(value.value.id)
    if key is not None:  # a record's number-indexed items are not kept
        return env.get(_key(every_item_key(value.value.id), key)) if isinstance(key, str) else None
    for held in sorted(env):
        found = env[held]
        if held.startswith(prefix) and found is not None:
            what = f"a container holding {found.what}"
            return replace(found, what=what, fix="", holder=True, built=None, fields=())
    return None


def _is_refused(possible: object) -> bool:
    from ckpt_lsp.weights_only import Refused

    return isinstance(possible, Refused)
