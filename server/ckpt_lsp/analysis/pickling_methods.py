"""Protocol: what a class's own pickling methods leave out of the state.

A `__getstate__` that pops, deletes, nulls or filters an attribute, or builds a
dict without it, makes that attribute harmless; one that returns `__dict__` (or a
copy) unchanged does not. `__reduce__`/`__reduce_ex__` take pickling over
entirely. A shape we cannot read is trusted (no finding): a false alarm on
code that already handles pickling costs more than the rare miss.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts
from ckpt_lsp.analysis.nodes import walk

ALL = frozenset({"*"})


def excluded_attributes(
    facts: ModuleFacts,
    cls: ClassFacts,
    project_bases: Sequence[tuple[ModuleFacts, ClassFacts]],
) -> frozenset[str]:
    """Attributes the class's pickling leaves out (see `is_excluded`): ALL when pickling is
    taken over entirely, `!name` entries for a whitelist, an empty set when nothing is."""
    chain = [(facts, cls), *project_bases]
    for klass_facts, klass in chain:
        if klass.method("__reduce__") is not None or klass.method("__reduce_ex__") is not None:
            return ALL
        if klass.name in klass_facts.copyreg_classes:
            return ALL
    for _, klass in chain:
        getstate = klass.method("__getstate__")
        if getstate is not None:
            # names it filters by may be set by the subclass: `_unpicklable = ("conn",)`
            consts: dict[str, list[str]] = {}
            for base_facts, base in reversed(chain):
                consts.update(_constants(base_facts, base))
            return _from_getstate(getstate, consts)
    return frozenset()


def _constants(facts: ModuleFacts, cls: ClassFacts) -> dict[str, list[str]]:
    """Named tuples of strings a __getstate__ may filter by: `TRANSIENT = ("_fh", "_lock")`
    in the class body or at module level."""
    consts: dict[str, list[str]] = {}
    for name, value in facts.assigns.items():
        strings = _const_strings(value, {})
        if strings is not None:
            consts[name] = strings
    for stmt in cls.class_level():
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            strings = _const_strings(stmt.value, {})
            for target in targets:
                if isinstance(target, ast.Name) and strings is not None:
                    consts[target.id] = strings
    return consts


def _const_str(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _const_strings(node: ast.AST, consts: dict[str, list[str]]) -> list[str] | None:
    if isinstance(node, ast.Name) and node.id in consts:
        return consts[node.id]
    if isinstance(node, ast.Attribute) and node.attr in consts:
        return consts[node.attr]  # self.TRANSIENT, cls.TRANSIENT, Model.TRANSIENT
    if isinstance(node, ast.Call) and node.args and not node.keywords:
        func = node.func  # frozenset({...}), set([...]), tuple(...)
        if isinstance(func, ast.Name) and func.id in ("set", "frozenset", "tuple", "list"):
            return _const_strings(node.args[0], consts)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        values = [_const_str(e) for e in node.elts]
        if all(v is not None for v in values):
            return [v for v in values if v is not None]
    single = _const_str(node)
    return [single] if single is not None else None


def _is_dict_source(expr: ast.expr) -> bool:
    """`self.__dict__`, `vars(self)`, their copies, or `super().__getstate__()`."""
    if isinstance(expr, ast.Attribute) and expr.attr == "__dict__":
        return True
    if isinstance(expr, ast.Call):
        func = expr.func
        if isinstance(func, ast.Name) and func.id in ("dict", "vars", "copy") and expr.args:
            return _is_dict_source(expr.args[0]) or (
                func.id == "vars" and isinstance(expr.args[0], ast.Name)
            )
        if isinstance(func, ast.Attribute):
            if func.attr == "copy" and _is_dict_source(func.value):
                return True
            if func.attr in ("copy", "deepcopy") and expr.args and _is_dict_source(expr.args[0]):
                return True
            if func.attr == "__getstate__":
                return True
    return False


def _from_getstate(
    func: ast.FunctionDef | ast.AsyncFunctionDef, consts: dict[str, list[str]]
) -> frozenset[str]:
    consts = {**consts, **_local_constants(func, consts)}
    dropped = _dropped_by_owner(func, consts)
    fresh = _fresh_copies(func)
    excluded: set[str] = set()
    understood = True
    returns = [n for n in walk(func) if isinstance(n, ast.Return) and n.value is not None]
    for ret in returns:
        value = ret.value
        assert value is not None
        if isinstance(value, ast.Dict):
            if any(k is None for k in value.keys):  # {**self.__dict__, "x": None}
                for key, val in zip(value.keys, value.values):
                    name = _const_str(key) if key is not None else None
                    if name and isinstance(val, ast.Constant) and val.value is None:
                        excluded.add(name)
                excluded.update(*dropped.values())
                continue
            kept = {k for k in (_const_str(key) for key in value.keys if key is not None) if k}
            return frozenset({f"!{k}" for k in kept}) or ALL  # a whitelist
        if isinstance(value, ast.Tuple):
            kept = set()
            for elt in value.elts:
                if isinstance(elt, ast.Attribute):
                    kept.add(elt.attr)
            return frozenset({f"!{k}" for k in kept}) or ALL
        if _is_dict_source(value):
            # `return self.__dict__` after popping from a copy: the copy's pops are lost
            for owner, names in dropped.items():
                if owner not in fresh:
                    excluded.update(names)
            continue
        if isinstance(value, ast.Name) and _handed_away(func, value.id):
            return ALL  # `state = self._export()`, `self._strip(state)`: not ours to read
        if isinstance(value, (ast.Name, ast.DictComp)):
            excluded.update(*dropped.values())
            continue
        understood = False
    if not understood and not excluded:
        return ALL
    return frozenset(excluded)


def _local_constants(
    func: ast.FunctionDef | ast.AsyncFunctionDef, consts: dict[str, list[str]]
) -> dict[str, list[str]]:
    """`skip = {"lock", "fh"}` inside the method, filtered by later."""
    local: dict[str, list[str]] = {}
    for node in walk(func):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            strings = _const_strings(node.value, consts)
            if isinstance(target, ast.Name) and strings is not None:
                local[target.id] = strings
    return local


def _owner(expr: ast.expr) -> str:
    """Which dict a mutation acts on: a local name, `<dict>` for the instance's own
    `__dict__`, `?` when unknown."""
    if isinstance(expr, ast.Name):
        return expr.id
    if _is_dict_source(expr):
        return "<dict>"
    return "?"


def _fresh_copies(func: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Local names bound to a new dict (a copy of the state, `{}`): popping from one of
    them leaves the instance's own `__dict__` whole."""
    fresh: set[str] = set()
    for node in walk(func):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            if not isinstance(target, ast.Name):
                continue
            direct = (isinstance(value, ast.Attribute) and value.attr == "__dict__") or (
                isinstance(value, ast.Call) and _call_name(value) == "vars"
            )
            copied = _is_dict_source(value) and not direct
            empty = isinstance(value, ast.Call) and not value.args and _call_name(value) == "dict"
            if isinstance(value, (ast.Dict, ast.DictComp)) or copied or empty:
                fresh.add(target.id)
    return fresh


def _call_name(call: ast.Call) -> str:
    return call.func.id if isinstance(call.func, ast.Name) else ""


def _dropped_by_owner(
    func: ast.FunctionDef | ast.AsyncFunctionDef, consts: dict[str, list[str]]
) -> dict[str, set[str]]:
    """Keys each dict of the method loses: popped, deleted, nulled, replaced by another
    value, or skipped by the loop or comprehension that fills it."""
    dropped: dict[str, set[str]] = {}

    def drop(owner: ast.expr | None, names: list[str]) -> None:
        if names:
            dropped.setdefault(_owner(owner) if owner is not None else "?", set()).update(names)

    loop_values: dict[str, list[str]] = {}
    for node in walk(func):
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name):
            values = _const_strings(node.iter, consts)
            if values is not None:
                loop_values[node.target.id] = values
    for node in walk(func):
        # state.pop("x"), state.pop(name) over a constant loop
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("pop", "__delitem__") and node.args:
                drop(node.func.value, _keys(node.args[0], loop_values))
            elif node.func.attr == "update":
                drop(node.func.value, _nulled_by_update(node, consts))
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                if isinstance(target, ast.Subscript):
                    drop(target.value, _keys(target.slice, loop_values))
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Subscript):
                    names = _keys(target.slice, loop_values)
                    drop(target.value, [n for n in names if _replaces(node.value, n)])
        elif isinstance(node, ast.comprehension):
            for cond in node.ifs:
                names = _filtered_out(cond, consts)
                if not names and _loop_key(node) is not None:
                    # `if not isinstance(v, Lock)`: a filter we cannot read is trusted
                    names = ["*"]
                drop(None, names)
        elif isinstance(node, ast.For):
            for owner, skipped in _filling_loop(node, consts).items():
                dropped.setdefault(owner, set()).update(skipped)
            for owner, pruned in _pruning_loop(node, consts).items():
                dropped.setdefault(owner, set()).update(pruned)
    return dropped


_READERS = frozenset({"len", "print", "repr", "str", "sorted", "list", "dict", "isinstance"})


def _handed_away(func: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> bool:
    """Whether the returned dict comes from, or goes through, code we cannot read: bound
    to a call other than a copy of the state, or passed to a helper that may prune it."""
    for node in walk(func):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            value = node.value
            readable = isinstance(value, (ast.Dict, ast.DictComp)) or _is_dict_source(value)
            if not readable and isinstance(value, ast.Call):
                readable = _call_name(value) == "dict" or (
                    isinstance(value.func, ast.Attribute) and value.func.attr == "copy"
                )
            if not readable:
                return True
        elif isinstance(node, ast.Call) and any(
            isinstance(a, ast.Name) and a.id == name for a in node.args
        ):
            callee = node.func
            if isinstance(callee, ast.Name) and callee.id in _READERS:
                continue
            if isinstance(callee, ast.Attribute) and callee.attr in ("update", "debug", "info"):
                continue
            return True
    return False


def _pruning_loop(loop: ast.For, consts: dict[str, list[str]]) -> dict[str, set[str]]:
    """`for k in list(state): if k.startswith("_cache"): del state[k]`: the keys a
    loop over a dict's keys deletes or pops under a test of the key."""
    target = loop.target
    if isinstance(target, ast.Tuple) and target.elts:
        target = target.elts[0]
    if not isinstance(target, ast.Name):
        return {}
    key = target.id
    out: dict[str, set[str]] = {}
    for stmt in loop.body:
        if not isinstance(stmt, ast.If):
            continue
        names = _dropped_when_true(stmt.test, consts) or ["*"]
        for inner in stmt.body:
            owner = _removes_key(inner, key)
            if owner is not None:
                out.setdefault(_owner(owner), set()).update(names)
    return out


def _removes_key(stmt: ast.stmt, key: str) -> ast.expr | None:
    """The dict `del d[k]` / `d.pop(k)` removes the loop key from."""
    if isinstance(stmt, ast.Delete):
        for target in stmt.targets:
            if (
                isinstance(target, ast.Subscript)
                and isinstance(target.slice, ast.Name)
                and target.slice.id == key
            ):
                return target.value
    if (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Call)
        and isinstance(stmt.value.func, ast.Attribute)
        and stmt.value.func.attr == "pop"
        and stmt.value.args
        and isinstance(stmt.value.args[0], ast.Name)
        and stmt.value.args[0].id == key
    ):
        return stmt.value.func.value
    return None


def _replaces(value: ast.expr, key: str) -> bool:
    """Whether `state[key] = value` keeps the attribute's own object out of the state:
    None, a constant, `self._parent()` (a weakref swapped for its referent); not
    `self.key` itself nor a copy of it."""
    if isinstance(value, ast.Attribute) and value.attr == key:
        return False
    # copy.copy(self.lock) still holds a lock
    return not (
        isinstance(value, ast.Call)
        and any(isinstance(a, ast.Attribute) and a.attr == key for a in value.args)
    )


def _loop_key(loop: ast.For | ast.comprehension) -> str | None:
    """The key variable of `for k, v in self.__dict__.items()` / `for k in vars(self)`."""
    source = loop.iter
    while (
        isinstance(source, ast.Call)
        and isinstance(source.func, ast.Name)
        and source.func.id in ("list", "sorted", "tuple")
        and source.args
    ):
        source = source.args[0]
    if (
        isinstance(source, ast.Call)
        and isinstance(source.func, ast.Attribute)
        and source.func.attr in ("items", "keys")
    ):
        source = source.func.value
    if not _is_dict_source(source):
        return None
    target = loop.target
    if isinstance(target, ast.Tuple) and target.elts:
        target = target.elts[0]
    return target.id if isinstance(target, ast.Name) else None


def _filling_loop(loop: ast.For, consts: dict[str, list[str]]) -> dict[str, set[str]]:
    """`for k, v in self.__dict__.items(): if k != "lock": d[k] = v` (or `if k in SKIP:
    continue` before the store): the keys `d` never receives."""
    key = _loop_key(loop)
    if key is None:
        return {}
    out: dict[str, set[str]] = {}
    _scan_fill(loop.body, key, [], consts, out)
    return out


def _scan_fill(
    body: list[ast.stmt],
    key: str,
    skipped: list[str],
    consts: dict[str, list[str]],
    out: dict[str, set[str]],
) -> None:
    skipped = list(skipped)
    for stmt in body:
        if isinstance(stmt, ast.If):
            # a test we cannot read (`isinstance(v, Lock)`) is trusted to drop what matters
            if _ends_in_skip(stmt.body) and not stmt.orelse:
                skipped += _dropped_when_true(stmt.test, consts) or ["*"]
                continue
            kept = _filtered_out(stmt.test, consts) or ["*"]
            _scan_fill(stmt.body, key, skipped + kept, consts, out)
            dropped = _dropped_when_true(stmt.test, consts) or ["*"]
            _scan_fill(stmt.orelse, key, skipped + dropped, consts, out)
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.slice, ast.Name)
                    and target.slice.id == key
                    and isinstance(target.value, ast.Name)
                ):
                    out.setdefault(target.value.id, set()).update(skipped)


def _ends_in_skip(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], ast.Continue)


def _dropped_when_true(cond: ast.expr, consts: dict[str, list[str]]) -> list[str]:
    """Keys a test picks out: `k == "x"`, `k in SKIP`, `k.startswith("_")`, joined by `or`."""
    if isinstance(cond, ast.UnaryOp) and isinstance(cond.op, ast.Not):
        return _filtered_out(cond.operand, consts)
    if (
        isinstance(cond, ast.Call)
        and isinstance(cond.func, ast.Attribute)
        and cond.func.attr == "startswith"
        and cond.args
    ):
        return [f"^{p}" for p in _const_strings(cond.args[0], consts) or []]
    if isinstance(cond, ast.Compare) and len(cond.ops) == 1:
        op, right = cond.ops[0], cond.comparators[0]
        if isinstance(op, (ast.Eq, ast.Is)):
            value = _const_str(right)
            return [value] if value else []
        if isinstance(op, ast.In):
            return _const_strings(right, consts) or []
    if isinstance(cond, ast.BoolOp) and isinstance(cond.op, ast.Or):
        out: list[str] = []
        for part in cond.values:
            out += _dropped_when_true(part, consts)
        return out
    return []


def _nulled_by_update(call: ast.Call, consts: dict[str, list[str]]) -> list[str]:
    """Keys `state.update(...)` sets to None: `x=None`, `{"x": None}`,
    `dict.fromkeys(["x", "y"])` (whose values default to None)."""
    names = [kw.arg for kw in call.keywords if kw.arg and _is_none(kw.value)]
    for arg in call.args:
        if isinstance(arg, ast.Dict):
            for key, item in zip(arg.keys, arg.values):
                name = _const_str(key) if key is not None else None
                if name and _is_none(item):
                    names.append(name)
        elif (
            isinstance(arg, ast.Call)
            and isinstance(arg.func, ast.Attribute)
            and arg.func.attr == "fromkeys"
            and arg.args
            and (len(arg.args) == 1 or _is_none(arg.args[1]))
        ):
            names += _const_strings(arg.args[0], consts) or []
    return names


def _is_none(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _keys(node: ast.AST, loop_values: dict[str, list[str]]) -> list[str]:
    name = _const_str(node)
    if name is not None:
        return [name]
    if isinstance(node, ast.Name) and node.id in loop_values:
        return loop_values[node.id]
    return []


def _filtered_out(cond: ast.expr, consts: dict[str, list[str]]) -> list[str]:
    """Keys a comprehension filter drops: `k != "x"`, `k not in ("x", "y")`, and prefixes
    (`not k.startswith("_")` drops `^_`)."""
    if isinstance(cond, ast.UnaryOp) and isinstance(cond.op, ast.Not):
        return _dropped_when_true(cond.operand, consts)
    if isinstance(cond, ast.Compare) and len(cond.ops) == 1:
        op = cond.ops[0]
        right = cond.comparators[0]
        if isinstance(op, (ast.NotEq, ast.IsNot)):
            value = _const_str(right)
            return [value] if value else []
        if isinstance(op, ast.NotIn):
            return _const_strings(right, consts) or []
    if isinstance(cond, ast.BoolOp) and isinstance(cond.op, ast.And):
        out: list[str] = []
        for part in cond.values:
            out += _filtered_out(part, consts)
        return out
    return []


def is_excluded(attribute: str, excluded: frozenset[str]) -> bool:
    if "*" in excluded:
        return True
    whitelist = {e[1:] for e in excluded if e.startswith("!")}
    if whitelist:
        return attribute not in whitelist
    if any(e.startswith("^") and attribute.startswith(e[1:]) for e in excluded):
        return True
    return attribute in excluded
