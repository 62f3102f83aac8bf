"""The columns of a metrics log that hold only numbers, for a frame built from it.

`pd.DataFrame(trainer.log)` where the project class fills `self.log["loss"].append(loss.item())`
(or `self.history.append({"loss": loss.item()})`): pandas gives such a column a numeric dtype,
so one of its cells (`df["loss"].iloc[-1]`) is a numpy scalar, refused by the default load; a
column of strings gives back a str, which loads. A column is numeric only when every value
the class's methods append under its constant key is a number as written (`.item()`,
`float(...)`, a number literal) or a numpy number; a log filled under a key that is not
constant, or changed in any other way, tells nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, dotted_name
from ckpt_lsp.analysis.names import qualify
from ckpt_lsp.analysis.nodes import child_nodes, walk

if TYPE_CHECKING:
    from ckpt_lsp.analysis.load_safety import Env, LoadSafety

_NUMBERS = frozenset({"builtins.float", "builtins.int", "builtins.round", "builtins.len"})
_NUMPY = frozenset({"numpy-scalar", "numpy-array"})
_EMPTY = frozenset({"builtins.list", "builtins.dict", "collections.defaultdict"})
_Records = dict[str, bool]  # constant key -> every value appended under it is a number


def logged_number_columns(safety: LoadSafety, source: ast.expr | None, env: Env) -> frozenset[str]:
    """The keys of `source` (`trainer.log`, `self.history`: an attribute of a project object)
    whose every logged value is a number; empty when not known."""
    if not isinstance(source, ast.Attribute):
        return frozenset()
    owner = safety.kind_of(source.value, env)
    located = safety.project_class(owner.type_name) if owner is not None else None
    if located is None or not owner or not owner.type_name:
        return frozenset()
    key = ("logged-columns", located[0].path, located[1].name, source.attr)
    known = safety.memo.get(key)
    if not isinstance(known, frozenset):
        known = _columns(safety, *located, source.attr)
        safety.memo[key] = known
    return known


def local_number_columns(safety: LoadSafety, func: ast.AST | None, name: str) -> frozenset[str]:
    """The keys of the local `name` (`history = defaultdict(list)`, `rows = []`) whose every
    value the function logs is a number."""
    if func is None:
        return frozenset()
    key = ("logged-local", id(func), name)
    known = safety.memo.get(key)
    if not isinstance(known, frozenset):
        known = _logged(safety, safety.facts, [func], lambda n: _is_name(n, name))
        safety.memo[key] = known
    return known


def _columns(safety: LoadSafety, facts: ModuleFacts, cls: ClassFacts, attr: str) -> frozenset[str]:
    judge = safety if facts is safety.facts else safety.deeper(facts)
    methods = cls.methods_mentioning(f"self.{attr}")
    return _logged(judge, facts, methods, lambda n: _is_attr(n, attr))


def _logged(
    judge: LoadSafety,
    facts: ModuleFacts,
    functions: Sequence[ast.AST],
    mentions: Callable[[ast.AST], bool],
) -> frozenset[str]:
    """What the mentions of a log say; empty unless it starts empty here (a log handed in may
    hold anything already)."""
    records: _Records = {}
    started = False
    for function in functions:
        parents = {id(c): n for n in walk(function) for c in child_nodes(n)}
        for node in walk(function):
            if not mentions(node):
                continue
            if not _record(judge, facts, parents, node, records):
                return frozenset()
            started = started or isinstance(getattr(node, "ctx", None), ast.Store)
    return frozenset(k for k, numeric in records.items() if numeric) if started else frozenset()


def _record(
    judge: LoadSafety,
    facts: ModuleFacts,
    parents: dict[int, ast.AST],
    node: ast.AST,
    records: _Records,
) -> bool:
    """Note what one mention of `self.<attr>` logs; False when it may log anything."""
    parent = parents.get(id(node))
    if isinstance(getattr(node, "ctx", None), ast.Store):  # `self.log = defaultdict(list)`
        stored = parent.value if isinstance(parent, (ast.Assign, ast.AnnAssign)) else None
        return stored is not None and _empty(stored, facts)
    if isinstance(parent, ast.Attribute) and parent.attr == "append":  # `self.history.append({..})`
        call = parents.get(id(parent))
        pairs = _pairs(judge, call.args[0]) if isinstance(call, ast.Call) and call.args else None
        for name, value in pairs or []:
            records[name] = records.get(name, True) and _number(judge, facts, value)
        return pairs is not None
    if isinstance(parent, ast.Subscript) and parent.value is node:
        if not isinstance(parent.ctx, ast.Load) or not _is_constant(parent.slice):
            return False  # `self.log[k].append(v)`: any key may take anything
        holder = parents.get(id(parent))
        if not isinstance(holder, ast.Attribute):
            return True  # `self.log["loss"][-1]`, `np.mean(self.log["loss"])`: a read
        call = parents.get(id(holder))
        if holder.attr != "append" or not isinstance(call, ast.Call) or len(call.args) != 1:
            return False  # `.extend(...)`, `.insert(...)`, `.clear()`
        name = str(getattr(parent.slice, "value", ""))
        records[name] = records.get(name, True) and _number(judge, facts, call.args[0])
        return True
    return not isinstance(parent, ast.Attribute)  # `self.log.clear()`, `.update(...)`: unknown


def _number(judge: LoadSafety, facts: ModuleFacts, value: ast.expr) -> bool:
    """A Python number as written, or a numpy number (a numpy column is numeric too)."""
    if isinstance(value, ast.Constant):
        return isinstance(value.value, (int, float)) and not isinstance(value.value, bool)
    if isinstance(value, ast.Call):
        func = value.func
        if isinstance(func, ast.Attribute) and func.attr == "item" and not value.args:
            return True
        dotted = dotted_name(func) if isinstance(func, ast.Name) else ""
        if dotted and qualify(dotted, facts) in _NUMBERS:
            return True
    found = judge.kind_of(value)
    return found is not None and found.kind == "numpy-scalar"


def _empty(value: ast.expr, facts: ModuleFacts) -> bool:
    """`[]`, `{}`, `defaultdict(list)`, `{"loss": [], "kl": []}`: a log with nothing in it."""
    if isinstance(value, (ast.List, ast.Tuple)):
        return not value.elts
    if isinstance(value, ast.Dict):
        return all(isinstance(v, ast.List) and not v.elts for v in value.values) and all(
            _is_constant(k) for k in value.keys if k is not None
        )
    if not isinstance(value, ast.Call) or value.keywords:
        return False
    called = qualify(dotted_name(value.func), facts)
    if called == "collections.defaultdict":
        return (
            len(value.args) == 1 and qualify(dotted_name(value.args[0]), facts) == "builtins.list"
        )
    return called in _EMPTY and not value.args


def _pairs(judge: LoadSafety, value: ast.expr) -> list[tuple[str, ast.expr]] | None:
    """The constant keys and values of a dict display or `dict(k=v)`; None for anything else."""
    if isinstance(value, ast.Dict):
        if not all(k is not None and _is_constant(k) for k in value.keys):
            return None
        return [(str(getattr(k, "value", "")), v) for k, v in zip(value.keys, value.values)]
    return judge.dict_items(value)


def _is_constant(key: ast.expr | None) -> bool:
    return isinstance(key, ast.Constant) and isinstance(key.value, str)


def _is_attr(node: ast.AST, attr: str) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == attr
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name
