"""What each constant key of a dict attribute holds inside its class's own methods.

`self.stats["mean"] = np.mean(x)` in `fit`, then `torch.save({"mean": self.stats["mean"]})` in
`save`: the saving method's flow reads `self.stats['mean']` as every keyed store of the class
gives it (a placeholder literal among them is a starting value, as for `self.x`). A method that
may change the dict's keys otherwise (`self.stats.clear()`, `self.stats[k] = v`, `s = self.stats`,
`self.stats = load()`) leaves every key of it unknown.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.facts import ClassFacts, self_attribute
from ckpt_lsp.analysis.local_flow import (
    LITERAL,
    UNKNOWN,
    LocalFlow,
    Possible,
    collapse,
    empty_display,
    item_key,
)
from ckpt_lsp.analysis.nodes import walk

if TYPE_CHECKING:
    from ckpt_lsp.analysis.load_safety import LoadSafety
    from ckpt_lsp.weights_only import Refused


def self_items(
    cls: ClassFacts, safety: LoadSafety, wanted: frozenset[str]
) -> dict[str, Refused | None]:
    """`self.x['k']` -> what it holds, for the `wanted` attributes some method stores a
    constant key of; only methods whose text mentions such a store are walked."""
    keyed = [n for n in sorted(wanted) if cls.methods_mentioning(f"self.{n}[")]
    if not keyed:
        return {}
    from ckpt_lsp.analysis.object_effects import keys_touched  # it needs the flow

    possible: dict[str, set[Possible]] = {}
    wiped: set[str] = set()
    methods = {id(m): m for n in keyed for m in cls.methods_mentioning(f"self.{n}")}
    for method in methods.values():
        flow: LocalFlow | None = None
        for stmt in walk(method):
            if not isinstance(stmt, ast.stmt) or isinstance(stmt, _DEFINITIONS):
                continue
            wiped |= keys_touched(stmt, self_attribute, isinstance(stmt, ast.Assign), False)
            if not isinstance(stmt, ast.Assign):
                continue
            for target in stmt.targets:
                name, key = _keyed_target(target)
                if isinstance(target, ast.Subscript) and not name:
                    wiped.add(self_attribute(target.value))  # `self.x[k] = v`: any key
                elif name in keyed:
                    flow = flow or LocalFlow(safety).run(method)
                    found = possible.setdefault(item_key(f"self.{name}", key), set())
                    found.add(_judged(flow, stmt.value, stmt))
                elif self_attribute(target) in keyed:
                    _rebound(flow or LocalFlow(safety).run(method), target, stmt, possible, wiped)
    return {
        held: collapse(values)
        for held, values in possible.items()
        if held.split("[", 1)[0][len("self.") :] not in wiped
    }


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _keyed_target(target: ast.expr) -> tuple[str, str]:
    """(`x`, `k`) of a `self.x["k"]` target; ("", "") for any other."""
    if not isinstance(target, ast.Subscript):
        return "", ""
    index = target.slice
    if isinstance(index, ast.Constant) and isinstance(index.value, str):
        return self_attribute(target.value), index.value
    return "", ""


def _rebound(
    flow: LocalFlow,
    target: ast.expr,
    stmt: ast.Assign,
    possible: dict[str, set[Possible]],
    wiped: set[str],
) -> None:
    """`self.x = {}` empties the dict (its keys are absent, not unknown); `self.x = {"k": v}`
    stores each constant key; anything else may hold any key."""
    name, value = self_attribute(target), stmt.value
    if empty_display(value):
        return
    if not isinstance(value, ast.Dict) or any(
        not (isinstance(k, ast.Constant) and isinstance(k.value, str)) for k in value.keys
    ):
        wiped.add(name)
        return
    for key, item in zip(value.keys, value.values):
        assert isinstance(key, ast.Constant)
        found = possible.setdefault(item_key(f"self.{name}", str(key.value)), set())
        found.add(_judged(flow, item, stmt))


def _judged(flow: LocalFlow, value: ast.expr, stmt: ast.stmt) -> Possible:
    if isinstance(value, ast.Constant) or empty_display(value):
        return LITERAL
    judged = flow.judge(value, stmt) if id(stmt) in flow.before else None
    return judged if judged is not None else UNKNOWN
