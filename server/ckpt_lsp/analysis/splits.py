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
from ckpt_lsp.analysis.nodes import walk

if TYPE_CHECKING:
    from ckpt_lsp.analysis.load_safety import Env, LoadSafety
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


PAIRS, PAIR = "numpy-array-pairs", "numpy-array-pair"
_LISTING = frozenset({"builtins.list", "builtins.tuple"})


def fold_list(safety: LoadSafety, call: ast.Call, env: Env) -> Refused | None:
    """`list(kf.split(X))` of a splitter (a call of one, or a value known to be a
    scikit-learn object: only the splitters have a `split`): the folds, kept."""
    func = call.func
    if not (isinstance(func, ast.Name) and func.id not in env and len(call.args) == 1):
        return None
    if call.keywords or qualify(func.id, safety.facts) not in _LISTING:
        return None
    inner = call.args[0]
    if not (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute)):
        return None
    if inner.func.attr != "split":
        return None
    receiver = inner.func.value
    known = isinstance(receiver, ast.Call) and _splitter(safety, receiver)
    if not known:
        held = safety.kind_of(receiver, env)
        known = held is not None and held.kind == "estimator" and not held.type_name
    return safety.catalog.kind(PAIRS) if known else None


def pair_items(safety: LoadSafety, expr: ast.expr, count: int, env: Env) -> list[Refused | None]:
    """`train_idx, val_idx = folds[k]`: the two arrays of one fold."""
    held = safety.kind_of(expr, env)
    array = safety.catalog.kind("numpy-array")
    if held is None or held.kind != PAIR or count not in (2, -1) or array is None:
        return []
    return [array, array]


def fold_targets(
    safety: LoadSafety,
    target: ast.expr,
    iterable: ast.expr,
    func: ast.AST | None,
    env: Env | None = None,
) -> dict[str, Refused]:
    """The names of `train_idx, val_idx` (also under `enumerate`) of a splitter's `split`,
    or of its folds kept in a list (`for tr, va in folds`)."""
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
    over = safety.kind_of(iterable, env) if env is not None else None
    if not _splits(safety, iterable, func) and (over is None or over.kind != PAIRS):
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
        for n in walk(func)
        if isinstance(n, ast.Name) and n.id == name and not isinstance(n.ctx, ast.Load)
    ]
    found = [
        n.value
        for n in walk(func)
        if isinstance(n, ast.Assign)
        and len(n.targets) == 1
        and isinstance(n.targets[0], ast.Name)
        and n.targets[0].id == name
    ]
    if len(stores) != 1 or len(found) != 1:
        return None
    return found[0]
