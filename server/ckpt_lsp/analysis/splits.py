"""`for fold, (train_idx, val_idx) in enumerate(KFold(5).split(X))`: the folds are numpy arrays.

Every cross-validation splitter of `sklearn.model_selection` yields `(train, test)` pairs of
numpy index arrays (measured with scikit-learn 1.x: the default `torch.load` refuses them), so
the names a loop binds to a pair's items hold numpy arrays, and an index taken from them
(`val_idx[0]`) is a numpy scalar. The splitter is the receiver of `.split(...)`: a call of one
of those classes, or a local name bound once in the function to such a call.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.facts import dotted_name
from ckpt_lsp.analysis.names import qualify

if TYPE_CHECKING:
    from ckpt_lsp.analysis.load_safety import LoadSafety
    from ckpt_lsp.weights_only import Refused

SPLITTERS = frozenset(
    {
        "GroupKFold",
        "GroupShuffleSplit",
        "KFold",
        "LeaveOneGroupOut",
        "LeaveOneOut",
        "LeavePGroupsOut",
        "LeavePOut",
        "PredefinedSplit",
        "RepeatedKFold",
        "RepeatedStratifiedKFold",
        "ShuffleSplit",
        "StratifiedGroupKFold",
        "StratifiedKFold",
        "StratifiedShuffleSplit",
        "TimeSeriesSplit",
    }
)
_PACKAGE = "sklearn.model_selection."


def fold_targets(
    safety: LoadSafety, target: ast.expr, iterable: ast.expr, func: ast.AST | None
) -> dict[str, Refused]:
    """The names of `train_idx, val_idx` (also under `enumerate`) of a splitter's `split`."""
    if (
        isinstance(iterable, ast.Call)
        and isinstance(iterable.func, ast.Name)
        and qualify(iterable.func.id, safety.facts) == "builtins.enumerate"
        and len(iterable.args) == 1
        and isinstance(target, ast.Tuple)
        and len(target.elts) == 2
    ):
        target, iterable = target.elts[1], iterable.args[0]
    if not isinstance(target, ast.Tuple) or len(target.elts) != 2:
        return {}
    if not _splits(safety, iterable, func):
        return {}
    array = safety.catalog.kind("numpy-array")
    if array is None:
        return {}
    return {e.id: array for e in target.elts if isinstance(e, ast.Name)}


def _splits(safety: LoadSafety, iterable: ast.expr, func: ast.AST | None) -> bool:
    if not (
        isinstance(iterable, ast.Call)
        and isinstance(iterable.func, ast.Attribute)
        and iterable.func.attr == "split"
    ):
        return False
    receiver: ast.expr | None = iterable.func.value
    if isinstance(receiver, ast.Name):
        receiver = _bound_once(func, receiver.id) if func is not None else None
    return isinstance(receiver, ast.Call) and _splitter(safety, receiver)


def _splitter(safety: LoadSafety, call: ast.Call) -> bool:
    qualified = qualify(dotted_name(call.func), safety.facts)
    return qualified.startswith(_PACKAGE) and qualified[len(_PACKAGE) :] in SPLITTERS


def _bound_once(func: ast.AST, name: str) -> ast.expr | None:
    """The value of the one plain assignment of `name` in the function, if it is bound once."""
    stores = [
        n
        for n in ast.walk(func)
        if isinstance(n, ast.Name) and n.id == name and not isinstance(n.ctx, ast.Load)
    ]
    found = [
        n.value
        for n in ast.walk(func)
        if isinstance(n, ast.Assign)
        and len(n.targets) == 1
        and isinstance(n.targets[0], ast.Name)
        and n.targets[0].id == name
    ]
    if len(stores) != 1 or len(found) != 1:
        return None
    return found[0]
