"""What a project function does to an object it is handed, for the caller's flow.

`run_simulation(env, agent, 60)` then `torch.save({"last": agent.last_action})`: the loop in
`run_simulation` called `agent.act(x)`, and the checkpoint holds what `act` stored
(`self.last_action = np.argmax(...)`). Each method the function calls on its parameter may
run (in a loop's body, in a branch) or not, so what the attribute held before stays possible:
a placeholder that `__init__` set (`None`) gives way to what the method stored, as for a call
in the caller itself. The method's arguments are judged without the function's locals (what
it stores from them stays unknown), so only what the method makes itself is followed.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Union

from ckpt_lsp.analysis.class_text import FunctionNode
from ckpt_lsp.analysis.facts import ModuleFacts, dotted_name
from ckpt_lsp.analysis.names import qualify
from ckpt_lsp.analysis.nodes import walk
from ckpt_lsp.analysis.object_effects import OPAQUE, Effects, add_store, method_effects, own_method
from ckpt_lsp.weights_only import Refused

if TYPE_CHECKING:
    from ckpt_lsp.analysis.load_safety import Env, LoadSafety

# a call's argument: its position among the positional ones, or its keyword
Argument = Union[int, str]


def handed_arguments(call: ast.Call, names: set[str]) -> list[tuple[ast.Name, Argument]]:
    """The mentions of `names` a call passes as they are (`run(env, agent, 3)` passes
    `agent` second), not as the receiver of a method (`agent.act()`)."""
    found: list[tuple[ast.Name, Argument]] = [
        (arg, index)
        for index, arg in enumerate(call.args)
        if isinstance(arg, ast.Name) and arg.id in names
    ]
    found += [
        (k.value, k.arg)
        for k in call.keywords
        if k.arg is not None and isinstance(k.value, ast.Name) and k.value.id in names
    ]
    return found


def handed_effects(
    safety: LoadSafety, call: ast.Call, argument: Argument, receiver: Refused, env: Env
) -> Effects | None:
    """What the attributes of the object passed as `argument` may hold after the call: the
    stores of every method the project function (or a project object's method) calls on the
    parameter it binds, none replacing (empty: it stores nothing); None when the callee is
    no project code or stores on the parameter itself (`agent.t = 0`)."""
    found = _callee(safety, call, env)
    if found is None or not receiver.type_name:
        return None
    facts, func, skip = found
    param = _parameter(func, argument, skip)
    if param is None:
        return None
    key = ("handed", id(func), param, receiver.type_name, receiver.passed)
    known = safety.memo.get(key)
    if isinstance(known, tuple) and known[0] is func:
        return known[1]
    safety.memo[key] = (func, None)  # a function handing the object to itself: nothing
    judge = safety if facts is safety.facts else safety.deeper(facts)
    effects = _effects(judge, func, param, receiver)
    safety.memo[key] = (func, effects)
    return effects


def _effects(
    judge: LoadSafety, func: FunctionNode, param: str, receiver: Refused
) -> Effects | None:
    """The stores of the methods `func` calls on `param`, composed as if each may run."""
    effects: Effects = {}
    for node in walk(func):
        if _stores_on(node, param):
            return None
        if not _calls_method_of(node, param):
            continue
        assert isinstance(node, ast.Call)
        stored = method_effects(judge, receiver, node, {})
        if stored is None:
            continue
        if "*" in stored:
            return dict(OPAQUE)
        for attr, (possible, _) in stored.items():
            add_store(effects, attr, possible, False)
    return effects


def _stores_on(node: ast.AST, param: str) -> bool:
    """`agent.t = 0`, `agent.cache[k] = v`, `setattr(agent, ...)`: a store the methods'
    effects do not show."""
    if isinstance(node, ast.Call):
        setter = dotted_name(node.func) == "setattr"
        return setter and bool(node.args) and _named(node.args[0], param)
    if not isinstance(node, (ast.Attribute, ast.Subscript)) or isinstance(node.ctx, ast.Load):
        return False
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
        if _named(node, param):
            return True
    return False


def _named(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _calls_method_of(node: ast.AST, param: str) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and _named(node.func.value, param)
    )


def _callee(
    safety: LoadSafety, call: ast.Call, env: Env
) -> tuple[ModuleFacts, FunctionNode, int] | None:
    """The project function a call names (with how many leading parameters the call does
    not pass: `self` of a method), else None."""
    if safety.depth_left() < 1:
        return None
    dotted = dotted_name(call.func)
    head = dotted.split(".")[0] if dotted else ""
    if isinstance(call.func, ast.Attribute) and head not in safety.facts.imports:
        holder = safety.kind_of(call.func.value, env)  # `trainer.fit(agent)`
        method = own_method(safety, holder, call) if holder is not None else None
        return (*method, 1) if method is not None else None
    if not head or head in env:
        return None
    found = safety.project_function(qualify(dotted, safety.facts))
    return (*found, 0) if found is not None else None


def _parameter(func: FunctionNode, argument: Argument, skip: int) -> str | None:
    """The parameter of `func` an argument binds, None behind `*args`."""
    args = func.args
    positional = [p.arg for p in [*args.posonlyargs, *args.args]][skip:]
    if isinstance(argument, int):
        return positional[argument] if argument < len(positional) else None
    named = (set(positional) - {p.arg for p in args.posonlyargs}) | {p.arg for p in args.kwonlyargs}
    return argument if argument in named else None
