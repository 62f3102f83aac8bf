"""Attributes that keep their kind whatever methods run: `self.dt = dt0` in `__init__` (a numpy
scalar, as the constructing call passes it) and `self.dt = self.dt * factor` in `propose()`.

By induction over the calls: `__init__` stores a refused value on its straight path, and every
other store of the attribute in the class's methods is refused when the attribute holds that
kind at the method's entry. Then a method sees it so at its entry, and a read of it after any
calls is refused. A store of anything else (a literal, `float(self.dt)`, an unknown value), a
method that stores by name, or a store the check cannot see makes the attribute unknown there.
Several such attributes are checked together until none is dropped.
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.local_flow import LocalFlow
from ckpt_lsp.analysis.nodes import walk
from ckpt_lsp.weights_only import Refused

if TYPE_CHECKING:
    from ckpt_lsp.analysis.class_text import FunctionNode
    from ckpt_lsp.analysis.facts import ModuleFacts
    from ckpt_lsp.analysis.load_safety import LoadSafety
    from ckpt_lsp.analysis.object_effects import Located

_ROUNDS = 3
_SELF_VALUE = re.compile(r"[(,=]\s*self\s*[,)]")  # `self` handed to a call


def kept_attributes(
    safety: LoadSafety,
    located: Located,
    env: dict[str, Refused | None],
    candidates: dict[str, Refused],
) -> dict[str, Refused]:
    """Of `candidates` (attribute -> what `__init__` stores, stored again elsewhere), those
    every other store keeps refused, judged with `env` and the kept ones at each entry."""
    kept = dict(candidates)
    methods = _storing(safety, located, set(kept))
    if methods is None:
        return {}
    for _ in range(_ROUNDS):
        assumed = {**env, **{f"self.{a}": r for a, r in kept.items()}}
        broken: set[str] = set()
        for facts, method in methods:
            broken |= _breaks(safety.deeper(facts), method, assumed, kept)
        if not broken:
            return kept
        kept = {a: r for a, r in kept.items() if a not in broken}
        if not kept:
            return {}
    return {}


def _storing(
    safety: LoadSafety, located: Located, attrs: set[str]
) -> list[tuple[ModuleFacts, FunctionNode]] | None:
    """The methods other than `__init__` (of the class and its project bases) that store
    one of `attrs` (or name it in a string, for `setattr`); None when one of them stores by
    name."""
    from ckpt_lsp.analysis.object_effects import class_chain, stored_names, stores_by_name

    found: dict[int, tuple[ModuleFacts, FunctionNode]] = {}
    for facts, cls in class_chain(safety, located):
        if any(_hands_on(m) for m in cls.methods_where(_handing_text)):
            return None  # `tune(self)`: anything may be stored
        for attr in attrs:
            for word in (f"self.{attr}", f'"{attr}"'):
                for method in cls.methods_mentioning(word):
                    if method.name != "__init__" and attr in stored_names(method):
                        found.setdefault(id(method), (facts, method))
    if any(stores_by_name(m) for _, m in found.values()):
        return None
    return list(found.values())


def _breaks(
    judge: LoadSafety,
    method: FunctionNode,
    assumed: dict[str, Refused | None],
    kept: dict[str, Refused],
) -> set[str]:
    """The kept attributes a store of the method does not keep refused (all of them when
    the method hands `self` on: anything may be stored there)."""
    from ckpt_lsp.analysis.object_effects import own_nodes, statements_of, stores_of

    flow = LocalFlow(judge, assumed).run(method)
    broken: set[str] = set()
    for stmt, _ in statements_of(method.body, True):
        if any(isinstance(n, ast.Call) and _hands_self(n) for n in own_nodes(stmt)):
            return set(kept)
        for attr, possible, _replaces in stores_of(judge, stmt, flow.env_before(stmt)):
            if attr in kept and not all(_refused(p) for p in possible):
                broken.add(attr)
    return broken


def _handing_text(text: str) -> bool:
    return _SELF_VALUE.search(text) is not None


def _hands_on(method: FunctionNode) -> bool:
    return any(isinstance(n, ast.Call) and _hands_self(n) for n in walk(method))


def _refused(possible: object) -> bool:
    return isinstance(possible, Refused) and not possible.holder


def _hands_self(call: ast.Call) -> bool:
    return any(isinstance(a, ast.Name) and a.id == "self" for a in call.args) or any(
        isinstance(k.value, ast.Name) and k.value.id == "self" for k in call.keywords
    )
