"""Whether a statement leaves a local dict's keys as they were.

The flow keeps what a helper's dict result holds under each constant key (`metrics["loss"]`)
until something may change it. Handing the dict to a call may: unless the call is a builtin
that only reads (`print(metrics)`, `len(metrics)`) or a project function (or a method of a
project class instance) whose parameter is only read in its body (`metrics[k]`,
`metrics.get(k)`, `k in metrics`). Anything else counts as a change: precision first.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.class_text import FunctionNode
from ckpt_lsp.analysis.facts import dotted_name
from ckpt_lsp.analysis.names import qualify
from ckpt_lsp.analysis.nodes import child_nodes, walk

if TYPE_CHECKING:
    from ckpt_lsp.analysis.load_safety import LoadSafety
    from ckpt_lsp.weights_only import Refused

# methods of a dict that read it
_READERS = frozenset({"get", "items", "keys", "values", "copy", "__contains__", "__getitem__"})
# builtins that read their argument and keep no reference to it
_READING_BUILTINS = frozenset(
    {
        "builtins.print",
        "builtins.len",
        "builtins.str",
        "builtins.repr",
        "builtins.sorted",
        "builtins.list",
        "builtins.dict",
        "builtins.isinstance",
        "builtins.bool",
        "builtins.format",
        "json.dumps",
        "dataclasses.asdict",  # a deep copy: the instance is only read
        "dataclasses.astuple",
    }
)


def read_only_names(
    stmt: ast.stmt, names: set[str], safety: LoadSafety, env: Mapping[str, Refused | None]
) -> set[int]:
    """The ids of the `ast.Name` nodes of `names` in `stmt` that only read the dict."""
    found: set[int] = set()
    parents = _parents(stmt)
    for node in walk(stmt):
        if not isinstance(node, ast.Name) or node.id not in names:
            continue
        if _reads(node, parents) or _read_by_call(node, parents, safety, env):
            found.add(id(node))
    return found


def _read_by_call(
    node: ast.Name,
    parents: dict[int, ast.AST],
    safety: LoadSafety,
    env: Mapping[str, Refused | None],
) -> bool:
    """`helper(metrics)` / `trainer.update_best(metrics)`: a callee that only reads it."""
    call = parents.get(id(node))
    if not isinstance(call, ast.Call) or node not in call.args:
        return False
    if any(isinstance(a, ast.Starred) for a in call.args):
        return False
    position = call.args.index(node)
    dotted = dotted_name(call.func)
    builtin = isinstance(call.func, ast.Name) and dotted not in env
    if builtin and qualify(dotted, safety.facts) in _READING_BUILTINS:
        return True
    if _stored_in_list(call, env):
        return True
    found = _callee(call, safety, env)
    if found is None:
        return False
    func, skip = found
    params = [*func.args.posonlyargs, *func.args.args][skip:]
    if position >= len(params):
        return False
    return param_read_only(func, params[position].arg, safety)


def _stored_in_list(call: ast.Call, env: Mapping[str, Refused | None]) -> bool:
    """`trials.append(trial)` of a local that is no project object: the list keeps a
    reference and changes nothing in it."""
    func = call.func
    if not (
        isinstance(func, ast.Attribute)
        and func.attr in ("append", "insert")
        and isinstance(func.value, ast.Name)
    ):
        return False
    receiver = env.get(func.value.id)
    return func.value.id in env and (receiver is None or not receiver.type_name)


def _callee(
    call: ast.Call, safety: LoadSafety, env: Mapping[str, Refused | None]
) -> tuple[FunctionNode, int] | None:
    """The project function a call names (0 leading parameters skipped), or the method of
    the project class a local instance, or one built in the call, belongs to (`self`
    skipped)."""
    func = call.func
    dotted = dotted_name(func)
    if isinstance(func, ast.Name) and dotted not in env:
        found = safety.project_function(qualify(dotted, safety.facts))
        return (found[1], 0) if found is not None else None
    if not isinstance(func, ast.Attribute):
        return None
    if isinstance(func.value, ast.Name):
        receiver = env.get(func.value.id)
    elif isinstance(func.value, ast.Call):  # `PlumeTrainer(model, args).fit(data)`
        receiver = safety.kind_of(func.value, env)
    else:
        return None
    if receiver is None or not receiver.type_name:
        return None
    located = safety.project_class(receiver.type_name)
    method = located[1].method(func.attr) if located is not None else None
    return (method, 1) if method is not None else None


def param_read_only(
    func: FunctionNode, param: str, safety: LoadSafety, kept: frozenset[int] = frozenset()
) -> bool:
    """Whether every use of the parameter in the function's body only reads it (the uses
    whose ids are `kept` aside: a saver writing it)."""
    key = ("read-only", id(func), param, kept)
    known = safety.memo.get(key)
    if isinstance(known, bool):
        return known
    parents: dict[int, ast.AST] = {}
    for stmt in func.body:
        parents.update(_parents(stmt))
    uses = (
        node
        for stmt in func.body
        for node in walk(stmt)
        if isinstance(node, ast.Name) and node.id == param and isinstance(node.ctx, ast.Load)
    )
    result = all(
        id(n) in kept or _reads(n, parents) or _builtin_reads(n, parents, safety) for n in uses
    )
    safety.memo[key] = result
    return result


def _reads(node: ast.Name, parents: dict[int, ast.AST]) -> bool:
    """`d[k]` (read), `d.get(k)`, `k in d`, `if d:`, `f(**d)`, `{"k": d}`, `[... for x in d]`."""
    parent = parents.get(id(node))
    if isinstance(parent, ast.Subscript) and parent.value is node:
        return isinstance(parent.ctx, ast.Load)
    if isinstance(parent, ast.Attribute) and parent.attr in _READERS:
        call = parents.get(id(parent))
        return isinstance(call, ast.Call) and call.func is parent
    if isinstance(parent, ast.Compare):
        return True
    if isinstance(parent, ast.comprehension) and parent.iter is node:
        return True  # `[t.value for t in trials]` iterates it; no item is replaced
    if isinstance(parent, ast.keyword) and parent.arg is None:
        return True  # `f(**d)`: the callee gets a new dict of d's items
    if isinstance(parent, ast.Dict) and node in parent.values:
        return True  # `history.append({"params": d})` stores d, changes none of its items
    return isinstance(parent, (ast.If, ast.While, ast.IfExp)) and parent.test is node


def _builtin_reads(node: ast.Name, parents: dict[int, ast.AST], safety: LoadSafety) -> bool:
    call = parents.get(id(node))
    return (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and node in call.args
        and qualify(call.func.id, safety.facts) in _READING_BUILTINS
    )


def _parents(root: ast.AST) -> dict[int, ast.AST]:
    return {id(child): node for node in walk(root) for child in child_nodes(node)}
