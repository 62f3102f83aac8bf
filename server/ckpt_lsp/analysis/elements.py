"""What every item of a local list or dict holds: `infos = [TaskInfo(...) for t in ts]` then
`infos[trainer.current_task]` (or `for info in infos`) is a TaskInfo, whichever index runs.

Known only for a display or comprehension whose every item (value, for a dict) is refused
the same way; the flow keeps it under `name[*]` and forgets it as it forgets constant keys
(the name rebound, mutated or handed on).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.dataclass_fields import agreed
from ckpt_lsp.analysis.record_columns import is_mark

if TYPE_CHECKING:
    from ckpt_lsp.analysis.load_safety import LoadSafety
    from ckpt_lsp.analysis.local_flow import Possible, State
    from ckpt_lsp.weights_only import Refused

_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp)


def every_item_key(name: str) -> str:
    """The state key of any item of `name` (no Python name holds "[")."""
    return f"{name}[*]"


def displayed_item(
    safety: LoadSafety, value: ast.expr | None, env: Mapping[str, Refused | None]
) -> Refused | None:
    """The refusal every item of a display or comprehension shares; None otherwise."""
    if isinstance(value, _COMPREHENSIONS):
        return safety.element_of(value, env)
    items: list[ast.expr] = []
    if isinstance(value, (ast.List, ast.Tuple)):
        items = list(value.elts)
    elif isinstance(value, ast.Dict):
        if any(k is None for k in value.keys):
            return None  # `**other` spreads items not known here
        items = list(value.values)
    if not items or any(isinstance(i, ast.Starred) for i in items):
        return None
    refused = []
    for item in items:  # most displays hold a loadable item: stop at the first
        judged = safety.of_expression(item, env)
        if judged is None:
            return None
        refused.append(judged)
    return shared_item(refused)


def shared_item(refused: list[Refused]) -> Refused | None:
    """The one refusal items judged refused share (their fix and construction dropped when
    they differ there); None when their kinds differ."""
    if not refused:
        return None
    same = agreed(refused)
    if same is not None:
        return same
    if len({r.kind for r in refused}) != 1:
        return None
    return replace(refused[0], fix="", built=None, fields=())


def held_item(name: str, env: Mapping[str, Refused | None]) -> Refused | None:
    """`stats = demo_stats()` whose `stats["obs_std"]` the flow knows refused: the dict (or
    tuple) saved whole holds it, so the default load refuses the whole (its other items stay
    unknown: `holder`)."""
    prefix = name + "["
    for key in sorted(env):
        held = env[key]
        if key.startswith(prefix) and held is not None and not is_mark(key):
            what = f"a container holding {held.what}"
            return replace(held, what=what, fix="", holder=True, built=None, fields=())
    return None


def paired_items(target: ast.expr, iterable: ast.expr, state: State) -> State:
    """`for k, v in d.items()` / `for i, v in enumerate(xs)`: `v` takes what every item of
    the local holds (a dict's value, a list's item)."""
    if not (
        isinstance(target, ast.Tuple)
        and len(target.elts) == 2
        and isinstance(target.elts[1], ast.Name)
        and isinstance(iterable, ast.Call)
        and len(iterable.args) <= 1
    ):
        return {}
    func = iterable.func
    over: ast.expr | None = None
    if isinstance(func, ast.Attribute) and func.attr == "items" and not iterable.args:
        over = func.value
        if not isinstance(over, ast.Name) or not keyed_by_dict(over.id, state):
            return {}
    elif isinstance(func, ast.Name) and func.id == "enumerate" and "enumerate" not in state:
        over = iterable.args[0] if iterable.args else None
        if not isinstance(over, ast.Name) or keyed_by_dict(over.id, state):
            return {}  # a dict enumerates its keys
    held = state.get(every_item_key(over.id)) if isinstance(over, ast.Name) else None
    return {target.elts[1].id: held} if held is not None else {}


_DICT_MARK = "{}[{{}}]"  # state key marking a local whose every item is a dict's value


def dict_mark(name: str) -> str:
    """The state key marking `name` as a dict (it iterates as its keys)."""
    return _DICT_MARK.format(name)


def keyed_by_dict(name: str, state: State) -> bool:
    return dict_mark(name) in state


def iterated_items(iterable: ast.expr, state: State) -> frozenset[Possible] | None:
    """What `for x in name` / `for x in name.values()` takes from a local whose every item
    (a dict's value) the flow knows; a dict's keys are not its values."""
    over = iterable
    values = False
    if (
        isinstance(iterable, ast.Call)
        and isinstance(iterable.func, ast.Attribute)
        and iterable.func.attr == "values"
        and not iterable.args
    ):
        over, values = iterable.func.value, True
    if not isinstance(over, ast.Name):
        return None
    held = state.get(every_item_key(over.id))
    if held is None or values != keyed_by_dict(over.id, state):
        return None
    return held
