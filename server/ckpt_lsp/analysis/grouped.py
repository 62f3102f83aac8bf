"""Frames grouped or indexed by a column of numbers: their labels are numpy numbers.

`df.groupby("fold")["dice"].mean().idxmax()` is a numpy integer when the `fold` column holds
numbers (grouped by a column of strings, a str; a frame's own default index gives Python ints),
and so is `df.set_index("epoch")["loss"].idxmin()`. The kinds are data/weights_only.toml's.
"""

from __future__ import annotations

import ast
from dataclasses import replace

from ckpt_lsp.weights_only import Refused, WeightsOnlyCatalog

# the method that keys a frame by a column -> the kind of what it returns then
_KEYED = {"groupby": "pandas-number-groupby", "set_index": "pandas-number-keyed-frame"}
KEYED_FRAME, KEYED_SERIES = "pandas-number-keyed-frame", "pandas-number-keyed-series"


def keyed_by_numbers(
    found: Refused | None, receiver: Refused, call: ast.Call, catalog: WeightsOnlyCatalog
) -> Refused | None:
    """`df.groupby("fold")`, `df.set_index(["fold", "cls"])` by a column the frame is known to
    hold numbers in: labels of numpy numbers (or tuples holding them). `as_index=False`
    keeps the default index."""
    func = call.func
    kind = _KEYED.get(func.attr) if isinstance(func, ast.Attribute) else None
    if found is None or kind is None or not call.args or not receiver.number_columns:
        return found
    if any(k.arg == "as_index" for k in call.keywords):
        return found
    key = call.args[0]
    names = key.elts if isinstance(key, (ast.List, ast.Tuple)) else [key]
    if not any(isinstance(n, ast.Constant) and n.value in receiver.number_columns for n in names):
        return found
    keyed = catalog.kind(kind)
    return found if keyed is None else replace(keyed, number_columns=receiver.number_columns)


def keyed_column(index: ast.expr, frame: Refused, catalog: WeightsOnlyCatalog) -> Refused | None:
    """`agg["dice"]` of a frame keyed by numbers: a Series with the same labels."""
    if frame.kind != KEYED_FRAME:
        return None
    if isinstance(index, ast.Constant) and isinstance(index.value, str):
        return catalog.kind(KEYED_SERIES)
    return None
