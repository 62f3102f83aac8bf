"""The number columns of a frame built from records: `history.append({"loss": loss.item()})`
in a loop, then `pd.DataFrame(history)["loss"].iloc[-1]` is a numpy scalar (a column of
Python numbers is a float64/int64 column, its cells numpy values). A key every record
display gives a Timestamp or datetime makes a datetime64 column (its `max()` a Timestamp).

A list that was empty and to which only dict displays (or calls of project helpers and
methods every `return` of which is a dict display, or tuple displays, named by the frame's
`columns=[...]`) are appended has, as number columns, the constant keys every record gives a
number: a number literal, `x.item()`, `float(x)`,
`int(x)`, `len(x)`, a numpy scalar, a name or field known to hold a number. The flow keeps
them under `name[#columns]`, forgotten as the list's items are.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ckpt_lsp.analysis.load_safety import LoadSafety
    from ckpt_lsp.weights_only import Refused

Env = Mapping[str, "Refused | None"]
_MARK = "[#columns]"
_FRAME = "pandas-frame"
_TIMES = frozenset({"pandas-timestamp", "datetime"})


def columns_key(name: str) -> str:
    """The state key of the number columns a list of records gives (no name holds "[")."""
    return name + _MARK


def is_mark(key: str) -> bool:
    return key.endswith(_MARK)


def appended_columns(
    safety: LoadSafety, name: str, item: ast.expr, env: Env, prior: Refused | bool | None
) -> dict[str, Refused]:
    """`name.append(item)`: the mark after it; `prior`, the frame mark before (True: the
    list was empty, every column is possible; None: it held other items, or nothing is
    known of them)."""
    found = record_numbers(safety, item, env)
    frame = safety.catalog.kind(_FRAME)
    if found is None or prior is None or frame is None:
        return {}
    times = (
        display_times(safety, item, env) if isinstance(item, (ast.Dict, ast.Tuple)) else frozenset()
    )
    if not isinstance(prior, bool):
        found, times = found & prior.number_columns, times & prior.time_columns
    if not found and not times:
        return {}
    return {columns_key(name): replace(frame, number_columns=found, time_columns=times)}


def record_frame(env: Env, name: str) -> Refused | None:
    """The frame mark `pd.DataFrame(name)` takes its columns from, as the flow knows it."""
    return env.get(columns_key(name))


def record_numbers(safety: LoadSafety, item: ast.expr, env: Env) -> frozenset[str] | None:
    """The constant keys a record display (or every dict display a helper returns) gives a
    number; None when it is no record known so."""
    if isinstance(item, ast.Dict):
        return display_numbers(safety, item, env)
    if isinstance(item, ast.Tuple):  # `rows.append((d, store, int(q)))`: by position
        if any(isinstance(e, ast.Starred) for e in item.elts):
            return None
        return frozenset(position(i) for i, v in enumerate(item.elts) if numeric(safety, v, env))
    if not isinstance(item, ast.Call):
        return None
    flow = safety.helper_flow(item, env)
    shown = flow.return_numbers if flow is not None else []
    if not shown or any(s is None for s in shown):
        return None
    return frozenset.intersection(*[s for s in shown if s is not None])


def display_numbers(safety: LoadSafety, display: ast.Dict, env: Env) -> frozenset[str] | None:
    keys = [k.value if isinstance(k, ast.Constant) else None for k in display.keys]
    if not all(isinstance(k, str) for k in keys):
        return None
    return frozenset(str(k) for k, v in zip(keys, display.values) if numeric(safety, v, env))


def display_times(safety: LoadSafety, display: ast.Dict | ast.Tuple, env: Env) -> frozenset[str]:
    """The constant keys (a tuple's positions) a record display gives a Timestamp or
    datetime: pandas makes each such column datetime64, whose cells (and `min()`/`max()`)
    are Timestamps."""
    found = set()
    pairs: list[tuple[object, ast.expr]] = (
        [
            (k.value if isinstance(k, ast.Constant) else None, v)
            for k, v in zip(display.keys, display.values)
        ]
        if isinstance(display, ast.Dict)
        else [(position(i), v) for i, v in enumerate(display.elts)]
    )
    for key, value in pairs:
        if isinstance(key, str):
            judged = safety.kind_of(value, env)
            if judged is not None and judged.kind in _TIMES:
                found.add(key)
    return frozenset(found)


def position(index: int) -> str:
    """The column name a record tuple's item takes until `columns=[...]` names it."""
    return f"#{index}"


def named_columns(frame: Refused, names: list[str]) -> Refused:
    """A frame of records given `columns=[...]`: a tuple record's positions named, a dict
    record's keys kept where the list keeps them (it picks and orders the columns)."""
    rename = {position(i): name for i, name in enumerate(names)}
    rename.update({name: name for name in names})
    return replace(
        frame,
        number_columns=frozenset(rename[c] for c in frame.number_columns if c in rename),
        time_columns=frozenset(rename[c] for c in frame.time_columns if c in rename),
    )


def numeric(safety: LoadSafety, expr: ast.expr, env: Env) -> bool:
    """A value known to be a number (Python or numpy)."""
    if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, (ast.USub, ast.UAdd)):
        expr = expr.operand
    if isinstance(expr, ast.Constant):
        return isinstance(expr.value, (int, float)) and not isinstance(expr.value, bool)
    if (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Attribute)
        and expr.func.attr == "item"
        and not expr.args
        and not expr.keywords
    ):
        return True  # a tensor's or numpy value's `.item()`
    if safety.is_number(expr, env):
        return True
    found = safety.kind_of(expr, env)
    return found is not None and found.kind == "numpy-scalar"
