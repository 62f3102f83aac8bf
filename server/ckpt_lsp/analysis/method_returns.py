"""What a method of a project class returns when called on an instance the code built.

`chosen, weights = server.step()` where `server = FedServer()`: the method's returns are
judged by the flow, `self.x` as the class's methods assign it (the same collapse the class's
own saving methods use) and `self` as the class itself, so that `self.sample_clients()` inside
is followed one level further. Bounded by the judge's depth; memoized per method and judge.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.class_text import FunctionNode
from ckpt_lsp.analysis.demand import of_returns
from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts
from ckpt_lsp.analysis.load_safety import bound_key, returns_unsaid
from ckpt_lsp.analysis.local_flow import NUMBER_MARK, LocalFlow
from ckpt_lsp.analysis.nodes import walk

if TYPE_CHECKING:
    from ckpt_lsp.analysis.load_safety import LoadSafety
    from ckpt_lsp.weights_only import Refused


def method_flow(
    safety: LoadSafety, receiver: Refused, call: ast.Call, env: Mapping[str, Refused | None]
) -> LocalFlow | None:
    """The flow of the method `call` names on a project class instance (`receiver`), its
    parameters bound to what the call passes; None when it is not a project method or it
    says what it returns by annotation (the judge reads that instead; `-> dict` says
    nothing of its values)."""
    if not isinstance(call.func, ast.Attribute) or not receiver.type_name:
        return None
    located = safety.project_class(receiver.type_name)
    if located is None or safety.depth_left() < 1:
        return None
    facts, cls = located
    method = cls.method(call.func.attr)
    if method is None or not returns_unsaid(facts, method) or _is_static(method):
        return None
    bound = safety.bound(method, call, env, skip=1)
    key = ("method-flow", id(method), bound_key(bound), receiver.passed)
    known = safety.memo.get(key)
    if isinstance(known, LocalFlow):
        return known
    deeper = safety.deeper(facts)
    own = {**_self_env(safety, deeper, facts, cls, method), **_numbers(safety, receiver)}
    flow = LocalFlow(deeper, own).run(method, bound, needs=of_returns(method))
    safety.memo[key] = flow
    return flow


def _self_env(
    caller: LoadSafety,
    safety: LoadSafety,
    facts: ModuleFacts,
    cls: ClassFacts,
    method: FunctionNode,
) -> dict[str, Refused | None]:
    """`self` and the attributes the method reads, as the class's methods assign them
    (kept by the caller's judge per class and attribute)."""
    from ckpt_lsp.analysis.weights_only_rule import self_attributes  # the rule needs the judge

    wanted = {
        node.attr
        for node in walk(method)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    }
    known = caller.memo.setdefault(("self-env", id(cls)), {})
    assert isinstance(known, dict)
    missing = frozenset(wanted - known.keys())
    if missing:
        found = self_attributes(cls, safety, missing)
        known.update({name: found.get(f"self.{name}", _UNASSIGNED) for name in missing})
    env: dict[str, Refused | None] = {
        f"self.{name}": known[name] for name in wanted if known[name] is not _UNASSIGNED
    }
    env["self"] = safety.of_class(facts, cls)
    return env


def _numbers(safety: LoadSafety, receiver: Refused) -> dict[str, Refused | None]:
    """What the instance's `__init__` set from the arguments it was built with: attributes
    set to Python numbers only (`self.thr` of `Evaluator(thr=0.2)`), marked so that arithmetic
    of numpy values with them stays numpy, and objects built from those arguments
    (`self.evaluator = Evaluator(thr=cfg.thr)` of a `Trainer(Cfg())`)."""
    if not receiver.passed:
        return {}
    from ckpt_lsp.analysis.object_effects import self_env  # it runs flows of its own

    return {
        k: v
        for k, v in self_env(safety, receiver).items()
        if k.startswith(NUMBER_MARK) or (v is not None and v.passed and k.startswith("self."))
    }


_UNASSIGNED = object()  # an attribute no method of the class assigns


def _is_static(method: FunctionNode) -> bool:
    names = {getattr(d, "id", getattr(d, "attr", "")) for d in method.decorator_list}
    return bool(names & {"staticmethod", "classmethod", "property"}) or not method.args.args
