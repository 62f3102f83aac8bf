"""Checkpoint writers in a function, and the values they write that the default torch.load refuses.

Writers: `torch.save(obj, f)`, `fabric.save(path, state)` (Lightning Fabric turns modules and
optimizers into their state_dict itself), `accelerator.save(obj, f)` (accelerate), and the
`checkpoint` dict Lightning hands to `on_save_checkpoint(self, checkpoint)`. What they write is
followed through dict displays, `dict(k=v)`, nested dicts, `ckpt["k"] = v`,
`ckpt["a"]["b"] = v`, `ckpt.update(...)` and local names holding any of these. Each refused
value is reported where it starts, with its constant key.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Union

from ckpt_lsp.analysis.constant_tests import dead_statements
from ckpt_lsp.analysis.demand import Demand, demand
from ckpt_lsp.analysis.elements import held_item
from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, dotted_name
from ckpt_lsp.analysis.load_safety import LoadSafety
from ckpt_lsp.analysis.local_flow import LocalFlow, empty_display
from ckpt_lsp.analysis.names import qualify
from ckpt_lsp.analysis.nodes import child_nodes, walk
from ckpt_lsp.analysis.reaching import reaching_bindings
from ckpt_lsp.analysis.read_only import param_read_only
from ckpt_lsp.weights_only import Refused

FunctionNode = Union[ast.FunctionDef, ast.AsyncFunctionDef]
_TORCH_SAVE = frozenset({"torch.save", "torch.serialization.save"})
_LIGHTNING_HOOK = "on_save_checkpoint"
# steps from the written object to a leaf, a local name's binding or a store into it counting
# as one as a dict level does (`ckpt = {"stats": stats}`, `stats[site] = {"tp": ...}` is six);
# a dict that holds itself stops here
_MAX_NESTING = 6
# the key of a saver's parameter spread into the dict it writes (no dict key is so spelled
# by a spread: `**` is no identifier)
SPREAD = "**"
_FORWARDED = "*"  # a saver's parameter: the caller's own arguments, handed on as they are
# names of helpers in other modules worth resolving as savers (save_checkpoint, write_ckpt)
SAVER_NAME = re.compile(r"save|ckpt", re.IGNORECASE)  # not `checkpoint`: gradient checkpointing
# a method of a project class that writes may be named for the act (`io.write(runner, name,
# **extra)`, `store.dump(state)`); a module function so named is left to the names above
SAVER_METHOD = re.compile(r"save|ckpt|write|dump|persist|export", re.IGNORECASE)


@dataclass(frozen=True)
class BadValue:
    """A refused value reaching a checkpoint writer."""

    value: ast.expr  # where it starts is where it is reported
    key: str | None  # the constant dict key it is stored under
    refused: Refused
    writer: str  # "torch.save" | "Fabric.save" | "Accelerator.save" | "on_save_checkpoint"
    save: ast.expr | None  # the path argument of the writer, for matching loads


@dataclass(frozen=True)
class _Writer:
    name: str
    obj: ast.expr
    path: ast.expr | None
    stmt: ast.stmt


class _Function:
    """One function's statements in order, its flow, and its dict-building statements."""

    def __init__(
        self,
        func: FunctionNode,
        safety: LoadSafety,
        flow: LocalFlow | None,
        cls: ClassFacts | None = None,
        savers: frozenset[str] = frozenset(),
    ) -> None:
        self.func = func
        self.cls = cls
        # names of the functions (or `self.` methods) of this module whose text writes
        self.savers = savers
        # empty lists of a dict display that refused values are appended to later
        # (`hist = {"loss": []}` then `hist["loss"].append(np.mean(x))`), by id
        self.filled: dict[int, Refused] = {}
        self.safety = safety
        self._flow = flow
        self.statements = list(_statements(func.body))
        self.order = {id(s): i for i, s in enumerate(self.statements)}

    @property
    def flow(self) -> LocalFlow:
        if self._flow is None:
            self._flow = LocalFlow(self.safety).run(self.func)
        return self._flow

    @flow.setter
    def flow(self, flow: LocalFlow) -> None:
        self._flow = flow

    def writers(self, helpers: bool = True) -> Iterator[_Writer]:
        """The writers called here; with `helpers`, also calls of project functions (and of
        `self.` methods) that hand a parameter to a writer (`save_checkpoint(state, path)`)."""
        facts = self.safety.facts
        for stmt in self.statements:
            for call in _calls(stmt):
                writer = _writer(call, facts, stmt)
                if writer is None and helpers:
                    writer = self._through_helper(call, stmt)
                if writer is not None:
                    yield writer

    def _through_helper(self, call: ast.Call, stmt: ast.stmt) -> _Writer | None:
        named = self._helper(call.func)
        found = (
            (*named, self.safety) if named is not None else self._instance_saver(call.func, stmt)
        )
        if found is None:
            return None
        helper, skip, safety = found
        shape = _saver_shape(helper, safety)
        if shape is None:
            return None
        name, obj_param, path_param = shape
        if obj_param == _FORWARDED:  # torch.save's own `obj` and `f`, as the caller passes them
            forwarded = _argument(call, 0, "obj")
            path = _argument(call, 1, "f")
            return _Writer(name, forwarded, path, stmt) if forwarded is not None else None
        kwarg = helper.args.kwarg
        obj: ast.expr | None
        if kwarg is not None and obj_param == kwarg.arg:  # `save(path, **extra)`: the keywords
            obj = _keywords_display(call, helper)
        else:
            obj = _bound_argument(call, helper, obj_param, skip)
        if obj is None:
            return None
        path = _bound_argument(call, helper, path_param, skip) if path_param else None
        return _Writer(name, obj, path, stmt)

    def _helper(self, func: ast.expr) -> tuple[FunctionNode, int] | None:
        """The project function (or method of this class) a call names, and how many leading
        parameters the call does not pass (`self`)."""
        dotted = dotted_name(func)
        if not dotted:
            return None
        if dotted.startswith("self.") and dotted.count(".") == 1:
            name = dotted[5:]
            method = self.cls.method(name) if self.cls is not None and name in self.savers else None
            return (method, 1) if method is not None and method is not self.func else None
        head, _, last = dotted.rpartition(".")
        facts = self.safety.facts
        static = _static_method(facts, head, last)
        if static is not None:  # `utils.save_on_master(...)`: a class standing in for a module
            return static, 0
        if not head:  # a function of this module, or one imported by name
            if dotted not in self.savers and not (
                dotted in facts.imports and SAVER_NAME.search(dotted)
            ):
                return None
        elif head not in facts.imports or not SAVER_NAME.search(last):
            return None  # `module.save_checkpoint(...)` only; `model.save_pretrained` is a method
        found = self.safety.project_function(qualify(dotted, facts))
        if found is None or found[1] is self.func:
            return None
        return found[1], 0

    def _instance_saver(
        self, func: ast.expr, stmt: ast.stmt
    ) -> tuple[FunctionNode, int, LoadSafety] | None:
        """`trainer.save_checkpoint(path, meta)` where `trainer = Trainer(...)` here (or
        `Trainer(...).save_checkpoint(...)`): the saving method of that project class (judged
        in its own module)."""
        if not isinstance(func, ast.Attribute) or not SAVER_METHOD.search(func.attr):
            return None
        instance: Refused | None = None
        if isinstance(func.value, ast.Name):
            name = func.value.id
            if name == "self" or name in self.safety.facts.imports:
                return None
            instance = self._built_instance(name, stmt)
        elif isinstance(func.value, ast.Call):  # `Saver().save_checkpoint(...)`
            instance = self.safety.kind_of(func.value)
        located = self.safety.project_class(instance.type_name) if instance is not None else None
        method = located[1].method(func.attr) if located is not None else None
        if located is None or method is None:
            return None
        facts = located[0]
        return method, 1, self.safety if facts is self.safety.facts else self.safety.deeper(facts)

    def _built_instance(self, name: str, before: ast.stmt) -> Refused | None:
        """The project object a name was last bound to: `trainer = Trainer(...)`, or an item
        of a helper's tuple (`args, trainer, batches = setup(argv)`)."""
        last: ast.Assign | None = None
        for stmt in self.statements[: self.order.get(id(before), 0)]:
            if isinstance(stmt, ast.Assign) and any(
                _is_name(t, name) or _unpacks(t, name) for t in stmt.targets
            ):
                last = stmt
            elif _binds(stmt, name):
                last = None
        if last is None or not isinstance(last.value, ast.Call):
            return None
        if any(_is_name(t, name) for t in last.targets):
            return self.safety.kind_of(last.value)
        target = last.targets[0]
        if len(last.targets) != 1 or not isinstance(target, ast.Tuple):
            return None
        items = self.safety.items_of(last.value, len(target.elts))
        at = next(i for i, t in enumerate(target.elts) if _is_name(t, name))
        return items[at] if items is not None else None

    # -- what a name holds -----------------------------------------------
    def binding(self, name: str, before: ast.stmt) -> ast.stmt | None:
        """The last statement before `before` that binds `name` as a whole."""
        last: ast.stmt | None = None
        for stmt in self.statements[: self.order.get(id(before), 0)]:
            if _binds(stmt, name):
                last = stmt
        return last

    def reaching(self, name: str, before: ast.stmt) -> list[ast.stmt]:
        """The statements binding `name` as a whole that may reach `before` (an `if`'s arms)."""
        return reaching_bindings(self.func.body, name, before, _binds)

    def mutations(self, name: str, after: ast.stmt | None, before: ast.stmt) -> list[ast.stmt]:
        """`name[...] = v` and `name.update(...)` between a binding and a use."""
        start = self.order.get(id(after), -1) + 1 if after is not None else 0
        found: list[ast.stmt] = []
        for stmt in self.statements[start : self.order.get(id(before), 0)]:
            if _mutates(stmt, name):
                found.append(stmt)
        return found


@dataclass
class Writes:
    """A function's checkpoint writes, found before anything is judged, with what judging
    them needs (a class works out the attributes all its writing methods need at once)."""

    fn: _Function
    writers: list[_Writer]
    hook: str | None  # the checkpoint parameter of Lightning's `on_save_checkpoint`
    needs: Demand


def writes_of(
    func: FunctionNode,
    safety: LoadSafety,
    cls: ClassFacts | None = None,
    savers: frozenset[str] = frozenset(),
) -> Writes | None:
    """The writes of `func`; None when it writes no checkpoint (its flow is never run)."""
    fn = _Function(func, safety, None, cls, savers)
    writers = list(fn.writers())
    hook = (
        func.args.args[1].arg
        if cls is not None and func.name == _LIGHTNING_HOOK and len(func.args.args) >= 2
        else None
    )
    if not writers and hook is None:
        return None
    # only what is written is judged: the flow evaluates what that can depend on
    needs = demand(func, [w.obj for w in writers], [hook] if hook is not None else ())
    return Writes(fn, writers, hook, needs)


def bad_values(
    func: FunctionNode,
    safety: LoadSafety,
    cls: ClassFacts | None = None,
    savers: frozenset[str] = frozenset(),
) -> list[BadValue]:
    """The refused values the writers of a function write."""
    writes = writes_of(func, safety, cls, savers)
    return judged(writes) if writes is not None else []


def judged(writes: Writes, self_env: dict[str, Refused | None] | None = None) -> list[BadValue]:
    """The refused values the writes write (a method's `self.x` from `self_env`)."""
    fn, func = writes.fn, writes.fn.func
    safety = fn.safety
    fn.flow = LocalFlow(safety, self_env).run(func, needs=writes.needs)
    found: list[BadValue] = []
    dead = dead_statements(func, safety)  # `if SAVE_WHOLE:` with `SAVE_WHOLE = False`
    for writer in writes.writers:
        if id(writer.stmt) in dead:
            continue
        stateful_ok = writer.name == "Fabric.save"
        for value, key, stmt in _entries(fn, writer.obj, None, writer.stmt, 0):
            if id(stmt) in dead or key == SPREAD:  # `if DEBUG: ckpt["x"] = ...` never runs
                continue
            refused = fn.flow.judge(value, stmt) or fn.filled.get(id(value))
            if refused is None and isinstance(value, ast.Name):
                refused = _held_whole(fn, value, stmt)
            if refused is None or (stateful_ok and refused.stateful):
                continue
            found.append(BadValue(value, key, refused, writer.name, writer.path))
    if writes.hook is not None:
        found.extend(_hook_values(fn, writes.hook))
    return _unique(found)


def _held_whole(fn: _Function, name: ast.Name, stmt: ast.stmt) -> Refused | None:
    """`stats = demo_stats()` saved whole, a helper's dict whose `stats["std"]` the flow
    knows refused; not a dict this function sets keys of (those keys are reported there)."""
    if fn.mutations(name.id, fn.binding(name.id, stmt), stmt):
        return None
    return held_item(name.id, fn.flow.env_before(stmt))


def _hook_values(fn: _Function, name: str) -> list[BadValue]:
    """What `on_save_checkpoint` adds to the checkpoint dict Lightning hands it."""
    found = []
    for stmt in (s for s in fn.statements if _mutates(s, name)):
        for value, key, at in _mutation_entries(fn, stmt, name, 0):
            if key == SPREAD:
                continue
            refused = fn.flow.judge(value, at)
            if refused is not None:
                found.append(BadValue(value, key, refused, _LIGHTNING_HOOK, None))
    return found


def _mutates(stmt: ast.stmt, name: str) -> bool:
    if isinstance(stmt, ast.Assign):
        return any(_root_name(t) == name for t in stmt.targets)
    if isinstance(stmt, ast.AugAssign):  # `ckpt |= extra`
        return isinstance(stmt.op, ast.BitOr) and _is_name(stmt.target, name)
    return isinstance(stmt, ast.Expr) and _update_of(stmt.value) == name


Entry = tuple[ast.expr, "str | None", ast.stmt]


def _entries(
    fn: _Function, expr: ast.expr, key: str | None, stmt: ast.stmt, depth: int
) -> Iterator[Entry]:
    """The leaf values a written object holds, each with its key and the statement it is at."""
    if depth > _MAX_NESTING:
        return
    if isinstance(expr, ast.Dict):
        for k, v in zip(expr.keys, expr.values):
            if k is None:  # `**other`: a local dict's entries count
                yield from _spread_entries(fn, v, stmt, depth + 1)
                continue
            yield from _entries(fn, v, _constant_key(k), stmt, depth + 1)
        return
    if _is_dict_call(expr, fn):
        assert isinstance(expr, ast.Call)
        for arg in expr.args[:1]:
            if isinstance(arg, ast.Dict):
                yield from _entries(fn, arg, key, stmt, depth + 1)
            elif isinstance(arg, ast.Name):  # `dict(base, epoch=3)`: base's entries
                yield from _name_entries(fn, arg, None, stmt, depth + 1, whole=False)
        if _copied_whole(expr, fn):  # `dict(cfg.data)`: what the judge says the copy holds
            yield expr, key, stmt
        for kw in expr.keywords:
            if kw.arg is not None:
                yield from _entries(fn, kw.value, kw.arg, stmt, depth + 1)
            else:  # `dict(model=..., **extra)`: the spread dict's entries count
                yield from _spread_entries(fn, kw.value, stmt, depth + 1)
        return
    if isinstance(expr, ast.Name):
        yield from _name_entries(fn, expr, key, stmt, depth + 1, whole=True)
        return
    if _merged_dicts(fn, expr, stmt):  # `base | {"epoch": 3}`: both sides' entries
        assert isinstance(expr, ast.BinOp)
        for side in (expr.left, expr.right):
            yield from _spread_entries(fn, side, stmt, depth + 1)
        return
    yield expr, key, stmt


def _merged_dicts(fn: _Function, expr: ast.expr, stmt: ast.stmt) -> bool:
    """`a | b` where one side is a dict display, a `dict(...)` call or a local bound to one."""
    if not (isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr)):
        return False
    for side in (expr.left, expr.right):
        if isinstance(side, ast.Name):
            bound = fn.binding(side.id, stmt)
            side = bound.value if isinstance(bound, ast.Assign) else side
        if isinstance(side, ast.Dict) or _is_dict_call(side, fn):
            return True
    return False


def _spread_entries(fn: _Function, spread: ast.expr, stmt: ast.stmt, depth: int) -> Iterator[Entry]:
    """`**other` in a dict display or `dict(...)` call: a local dict's (or a display's) entries."""
    if isinstance(spread, ast.Name):
        yield from _name_entries(fn, spread, None, stmt, depth, whole=False)
    elif isinstance(spread, ast.Dict) or _is_dict_call(spread, fn):
        yield from _entries(fn, spread, None, stmt, depth)


def _name_entries(
    fn: _Function, name: ast.Name, key: str | None, stmt: ast.stmt, depth: int, whole: bool
) -> Iterator[Entry]:
    """A local name holding a dict built in the function: its entries; any other local: the
    name itself (its value judged by the flow). Either way what is added to it later
    (`ckpt = model.state_dict()` then `ckpt["epoch"] = ...`). A name each arm of an `if`
    binds to its own display: every arm's entries (a run takes one of them)."""
    bindings = fn.reaching(name.id, stmt)
    if len(bindings) < 2:
        yield from _binding_entries(fn, name, key, stmt, depth, whole, fn.binding(name.id, stmt))
        return
    for binding in bindings:
        yield from _binding_entries(fn, name, key, stmt, depth, whole, binding)


def _binding_entries(
    fn: _Function,
    name: ast.Name,
    key: str | None,
    stmt: ast.stmt,
    depth: int,
    whole: bool,
    binding: ast.stmt | None,
) -> Iterator[Entry]:
    """The entries `name` holds at `stmt` when `binding` is the statement that bound it."""
    value = binding.value if isinstance(binding, (ast.Assign, ast.AnnAssign)) else None
    copied = _copied(value, fn) if value is not None else None
    mutations = fn.mutations(name.id, binding, stmt)
    # `ckpt["mean"] = ckpt["mean"].tolist()`: what the key held before is not written
    replaced = {k for m in mutations for k in _replaced_keys(m, name.id)}
    replaced |= {k for m in mutations for k in _edited_keys(m, name.id)}
    if copied is not None and binding is not None and copied[0].id != name.id:
        # `ckpt = base.copy()` / `dict(base)` / `copy.deepcopy(base)`: base's entries
        found = _name_entries(fn, copied[0], key, binding, depth + 1, whole=copied[1])
        yield from (e for e in found if e[1] is None or e[1] not in replaced)
    elif value is not None and (
        isinstance(value, ast.Dict)
        or (_is_dict_call(value, fn) and not _copied_whole(value, fn))
        or (binding is not None and _merged_dicts(fn, value, binding))
    ):
        assert binding is not None
        if isinstance(value, ast.Dict):
            _fill(fn, name.id, value, binding, stmt)
        found = _entries(fn, value, key, binding, depth)
        yield from (e for e in found if e[1] is None or e[1] not in replaced)
    elif whole:
        yield name, key, stmt
        if fn.flow.judge(name, stmt) is not None:
            return  # refused as a whole (a defaultdict): what is added to it is no matter
    elif binding is None and name.id in _parameters(fn.func):
        # `state.update(extra)` of a saver's parameter: the caller's dict is spread in (the
        # saver's shape reads it; no value of its own to judge)
        yield name, SPREAD, stmt
    for at, mutation in enumerate(mutations):
        if isinstance(mutation, ast.Assign) and _builds_tensor(value, fn):
            continue  # `t[i] = np.float64(x)` writes into the tensor: it stays a tensor
        edited = {k for m in mutations[at + 1 :] for k in _edited_keys(m, name.id)}
        found = _mutation_entries(fn, mutation, name.id, depth)
        yield from (e for e in found if e[1] is None or e[1] not in edited)


_DICT_EDITS = frozenset({"update", "pop", "popitem", "setdefault", "clear"})


def _edited_keys(stmt: ast.stmt, name: str) -> Iterator[str]:
    """The constant keys whose value a statement changes inside (`name["nms"]["mode"] = m`,
    `name["nms"].update(...)`): the value stored there whole is no longer what is saved."""
    # a string key is a dict's (an array's item store keeps the array)
    targets: list[ast.expr] = [
        t
        for t in (stmt.targets if isinstance(stmt, ast.Assign) else [])
        if isinstance(t, ast.Subscript) and isinstance(_constant_key_or_none(t.slice), str)
    ]
    call = stmt.value if isinstance(stmt, ast.Expr) else None
    if (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr in _DICT_EDITS
    ):
        targets = [call.func]
    for target in targets:
        inner = target.value if isinstance(target, (ast.Subscript, ast.Attribute)) else None
        if isinstance(inner, ast.Subscript) and _is_name(inner.value, name):
            found = _constant_key(inner.slice)
            if found is not None:
                yield found


def _replaced_keys(stmt: ast.stmt, name: str) -> Iterator[str]:
    """The constant keys a mutation of `name` sets anew: `name["k"] = v`, `name.update(k=v)`."""
    if isinstance(stmt, ast.Assign):
        for target in stmt.targets:
            if isinstance(target, ast.Subscript) and _is_name(target.value, name):
                found = _constant_key(target.slice)
                if found is not None:
                    yield found
        return
    call = stmt.value if isinstance(stmt, ast.Expr) else None
    if (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and _is_name(call.func.value, name)  # not `name["a"].update(...)`
    ):
        yield from (kw.arg for kw in call.keywords if kw.arg is not None)
        for arg in call.args[:1]:
            if isinstance(arg, ast.Dict):
                yield from (k for k in map(_constant_key_or_none, arg.keys) if k)


def _fill(fn: _Function, name: str, display: ast.Dict, binding: ast.stmt, use: ast.stmt) -> None:
    """Note the empty lists of `display` that `name["k"].append(v)` fills with refused values."""
    empty = {
        k.value: v
        for k, v in zip(display.keys, display.values)
        if isinstance(k, ast.Constant) and isinstance(v, ast.List) and not v.elts
    }
    if not empty:
        return
    start, end = fn.order.get(id(binding), 0), fn.order.get(id(use), 0)
    for stmt in fn.statements[start + 1 : end]:
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr in ("append", "insert")
            and call.args
            and isinstance(call.func.value, ast.Subscript)
            and _is_name(call.func.value.value, name)
        ):
            continue
        key = call.func.value.slice
        target = empty.get(key.value) if isinstance(key, ast.Constant) else None
        refused = fn.flow.judge(call.args[-1], stmt) if target is not None else None
        if target is not None and refused is not None:
            fn.filled[id(target)] = replace(refused, fix="")


def _mutation_entries(fn: _Function, stmt: ast.stmt, name: str, depth: int) -> Iterator[Entry]:
    if isinstance(stmt, ast.AugAssign):  # `ckpt |= extra`: extra's entries are merged in
        yield from _spread_entries(fn, stmt.value, stmt, depth + 1)
        return
    if isinstance(stmt, ast.Assign):
        for target in stmt.targets:
            if _root_name(target) == name and isinstance(target, ast.Subscript):
                yield from _entries(fn, stmt.value, _constant_key(target.slice), stmt, depth + 1)
        return
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        call = stmt.value
        for arg in call.args[:1]:
            arg = _or_empty(arg)  # `state.update(extra or {})`: extra's entries, if any
            if isinstance(arg, ast.Dict) or _is_dict_call(arg, fn):
                yield from _entries(fn, arg, None, stmt, depth + 1)
            elif isinstance(arg, ast.Name) and arg.id != name:
                # `ckpt.update(run_meta)`: the local dict's entries are copied in
                yield from _name_entries(fn, arg, None, stmt, depth + 1, whole=False)
        for kw in call.keywords:
            if kw.arg is not None:
                yield from _entries(fn, kw.value, kw.arg, stmt, depth + 1)
            else:  # `ckpt.update(**extra)`
                yield from _spread_entries(fn, kw.value, stmt, depth + 1)


# -- writers ---------------------------------------------------------------
def _saver_shape(func: FunctionNode, safety: LoadSafety) -> tuple[str, str, str] | None:
    """(writer, parameter written, parameter of the path) when a function hands one of its
    parameters, unchanged, to a writer: a `save_checkpoint(state, path)` helper."""
    key = ("saver", id(func))
    if key in safety.memo:
        known = safety.memo[key]
        return known if isinstance(known, tuple) else None
    safety.memo[key] = None  # a helper calling itself is no saver
    params = set(_parameters(func))
    found = None
    if _forwards_arguments(func, safety.facts):
        safety.memo[key] = found = ("torch.save", _FORWARDED, _FORWARDED)
        return found
    fn = _Function(func, safety, None)
    for writer in fn.writers(helpers=False):
        written = _written_parameter(fn, writer, params)
        if written:
            path = writer.path
            path_param = path.id if isinstance(path, ast.Name) and path.id in params else ""
            found = (writer.name, written, path_param)
            break
    safety.memo[key] = found
    return found


def _written_parameter(fn: _Function, writer: _Writer, params: set[str]) -> str:
    """The parameter a writer writes unchanged: the object itself (`torch.save(state, f)`),
    or one value of the dict it writes (`{"model": ..., "meta": meta}`) that the helper only
    reads elsewhere, else the one dict it spreads in (`state.update(extra)`); "" for none."""
    obj = writer.obj
    if isinstance(obj, ast.Name) and obj.id in params and fn.binding(obj.id, writer.stmt) is None:
        return obj.id
    found = [
        (value, key == SPREAD)
        for value, key, _ in _entries(fn, obj, None, writer.stmt, 0)
        if isinstance(value, ast.Name)
        and value.id in params
        and fn.binding(value.id, writer.stmt) is None
    ]
    # a value written under its key decides before a spread dict (`{"model": model, **meta}`)
    leaves = [leaf for leaf, spread in found if not spread] or [leaf for leaf, _ in found]
    names = {leaf.id for leaf in leaves}
    if len(names) != 1:
        return ""  # two parameters written: which one the call hands a dict is not known
    name = names.pop()
    kept = frozenset(id(leaf) for leaf in leaves)
    return name if param_read_only(fn.func, name, fn.safety, kept) else ""


def _forwards_arguments(func: FunctionNode, facts: ModuleFacts) -> bool:
    """`def save_on_master(*args, **kwargs): torch.save(*args, **kwargs)`: a helper taking no
    named parameter and handing its own arguments to torch.save (the torchvision references'
    shape), so the caller's first argument is what is written and its second the path."""
    args = func.args
    vararg = args.vararg
    if vararg is None or args.posonlyargs or args.args or args.kwonlyargs:
        return False
    for node in walk(func):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        dotted = dotted_name(node.func)
        first = node.args[0]
        if (
            dotted
            and qualify(dotted, facts) in _TORCH_SAVE
            and isinstance(first, ast.Starred)
            and isinstance(first.value, ast.Name)
            and first.value.id == vararg.arg
        ):
            return True
    return False


def _static_method(facts: ModuleFacts, head: str, last: str) -> FunctionNode | None:
    """The staticmethod `Cls.last` of a class of this module (`utils.save_on_master`)."""
    cls = facts.classes.get(head) if head and "." not in head else None
    method = cls.method(last) if cls is not None and SAVER_NAME.search(last) else None
    if method is None:
        return None
    decorators = {dotted_name(d) for d in method.decorator_list}
    return method if "staticmethod" in decorators else None


def _bound_argument(call: ast.Call, func: FunctionNode, param: str, skip: int) -> ast.expr | None:
    """The argument a call passes for a parameter (by position or keyword)."""
    for kw in call.keywords:
        if kw.arg == param:
            return kw.value
    positional = [*func.args.posonlyargs, *func.args.args][skip:]
    for index, arg in enumerate(positional):
        if arg.arg == param:
            if index < len(call.args) and not any(
                isinstance(a, ast.Starred) for a in call.args[: index + 1]
            ):
                return call.args[index]
            return None
    return None


def _writer(call: ast.Call, facts: ModuleFacts, stmt: ast.stmt) -> _Writer | None:
    func = call.func
    dotted = dotted_name(func)
    if dotted and qualify(dotted, facts) in _TORCH_SAVE:
        obj = _argument(call, 0, "obj")
        return (
            _Writer("torch.save", obj, _argument(call, 1, "f"), stmt) if obj is not None else None
        )
    if not isinstance(func, ast.Attribute) or func.attr != "save":
        return None
    receiver = dotted_name(func.value).rsplit(".", 1)[-1].lower()
    if "fabric" in receiver:
        state = _argument(call, 1, "state")
        return (
            _Writer("Fabric.save", state, _argument(call, 0, "path"), stmt)
            if state is not None
            else None
        )
    if "accelerator" in receiver:
        obj = _argument(call, 0, "obj")
        return (
            _Writer("Accelerator.save", obj, _argument(call, 1, "f"), stmt)
            if obj is not None
            else None
        )
    return None


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    if len(call.args) > position and not any(
        isinstance(a, ast.Starred) for a in call.args[: position + 1]
    ):
        return call.args[position]
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    return None


# -- syntax helpers ----------------------------------------------------------
def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement of a body in source order, nested blocks included, nested functions not."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                yield from _statements(inner)
        for handler in getattr(stmt, "handlers", []) or []:
            yield from _statements(handler.body)
        for case in getattr(stmt, "cases", []) or []:
            yield from _statements(case.body)


def _calls(stmt: ast.stmt) -> Iterator[ast.Call]:
    """The calls of one statement, not those of the statements nested in it."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return
    stack: list[ast.AST] = [
        child
        for name, child in ast.iter_fields(stmt)
        if name not in ("body", "orelse", "finalbody", "handlers", "cases")
        for child in (child if isinstance(child, list) else [child])
        if isinstance(child, ast.AST)
    ]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Call):
            yield node
        stack.extend(child_nodes(node))


def _binds(stmt: ast.stmt, name: str) -> bool:
    """Whether a statement binds `name` as a whole (an assignment, a loop or with target)."""
    if isinstance(stmt, ast.Assign):
        return any(_is_name(t, name) for t in stmt.targets)
    if isinstance(stmt, ast.AnnAssign):
        return _is_name(stmt.target, name)
    return isinstance(stmt, (ast.For, ast.With)) and name in _bound_names(stmt)


def _is_name(target: ast.expr, name: str) -> bool:
    return isinstance(target, ast.Name) and target.id == name


def _unpacks(target: ast.expr, name: str) -> bool:
    """`a, name, b = ...`: the name among a flat tuple's plain names (no starred item)."""
    return (
        isinstance(target, ast.Tuple)
        and all(isinstance(t, ast.Name) for t in target.elts)
        and any(_is_name(t, name) for t in target.elts)
    )


def _bound_names(stmt: ast.stmt) -> set[str]:
    targets: list[ast.expr] = []
    if isinstance(stmt, ast.For):
        targets.append(stmt.target)
    elif isinstance(stmt, ast.With):
        targets.extend(i.optional_vars for i in stmt.items if i.optional_vars is not None)
    return {n.id for t in targets for n in walk(t) if isinstance(n, ast.Name)}


def _or_empty(expr: ast.expr) -> ast.expr:
    """`extra or {}` (or `extra or dict()`): `extra`, the empty dict adding nothing; any other
    expression as it is."""
    if not (isinstance(expr, ast.BoolOp) and isinstance(expr.op, ast.Or)):
        return expr
    first, *rest = expr.values
    return first if all(empty_display(r) for r in rest) else expr


def _root_name(target: ast.expr) -> str:
    """`ckpt` of `ckpt["a"]["b"]` (subscripts only)."""
    if not isinstance(target, ast.Subscript):
        return ""
    while isinstance(target, ast.Subscript):
        target = target.value
    return target.id if isinstance(target, ast.Name) else ""


def _update_of(expr: ast.expr) -> str:
    """`ckpt` of `ckpt.update(...)` / `ckpt["a"].update(...)`."""
    if not (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute)):
        return ""
    if expr.func.attr != "update":
        return ""
    receiver = expr.func.value
    if isinstance(receiver, ast.Name):
        return receiver.id
    return _root_name(receiver)


def _constant_key_or_none(node: ast.expr | None) -> str | None:
    return _constant_key(node) if node is not None else None


def _constant_key(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_dict_call(expr: ast.expr, fn: _Function) -> bool:
    if not isinstance(expr, ast.Call):
        return False
    dotted = dotted_name(expr.func)
    return bool(dotted) and qualify(dotted, fn.safety.facts) in (
        "builtins.dict",
        "collections.OrderedDict",
    )


def _copied_whole(expr: ast.expr, fn: _Function) -> bool:
    """`dict(cfg.data)`: a dict made of one value that is neither a display nor a local
    (whose entries are followed), judged as a whole."""
    return (
        _is_dict_call(expr, fn)
        and isinstance(expr, ast.Call)
        and len(expr.args) == 1
        and not isinstance(expr.args[0], (ast.Dict, ast.Name))
    )


def _builds_tensor(expr: ast.expr | None, fn: _Function) -> bool:
    """`torch.zeros(3)`: a tensor, whose items set (`t[i] = v`) are converted into it."""
    if not isinstance(expr, ast.Call):
        return False
    dotted = dotted_name(expr.func)
    return bool(dotted) and qualify(dotted, fn.safety.facts) in _TENSOR_BUILDERS


_TENSOR_BUILDERS = frozenset(
    f"torch.{name}"
    for name in (
        "zeros",
        "ones",
        "empty",
        "full",
        "tensor",
        "as_tensor",
        "from_numpy",
        "zeros_like",
        "ones_like",
        "empty_like",
        "full_like",
        "rand",
        "randn",
        "arange",
        "linspace",
    )
)
_COPIES = frozenset({"copy.copy", "copy.deepcopy"})


def _copied(value: ast.expr, fn: _Function) -> tuple[ast.Name, bool] | None:
    """The local a value copies, and whether the copy keeps its type: `base.copy()` and
    `copy.deepcopy(base)` do (a defaultdict stays one), `dict(base)` makes a plain dict."""
    if not isinstance(value, ast.Call) or value.keywords:
        return None
    func = value.func
    if (
        isinstance(func, ast.Attribute)
        and func.attr == "copy"
        and isinstance(func.value, ast.Name)
        and not value.args
    ):
        return func.value, True
    if len(value.args) != 1 or not isinstance(value.args[0], ast.Name):
        return None
    if _is_dict_call(value, fn):
        return value.args[0], False
    qualified = qualify(dotted_name(func), fn.safety.facts) if dotted_name(func) else ""
    return (value.args[0], True) if qualified in _COPIES else None


def _unique(found: list[BadValue]) -> list[BadValue]:
    """One report per value expression (a dict written twice is reported once)."""
    seen: set[int] = set()
    out = []
    for item in found:
        if id(item.value) not in seen:
            seen.add(id(item.value))
            out.append(item)
    return out


def _parameters(func: FunctionNode) -> frozenset[str]:
    """The named parameters, and `**kwargs` (a dict of the caller's keywords)."""
    args = func.args
    named = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    return frozenset(a.arg for a in [*named, *([args.kwarg] if args.kwarg else [])])


def _keywords_display(call: ast.Call, func: FunctionNode) -> ast.Dict:
    """The dict `**kwargs` receives: the call's keywords no named parameter takes (located
    where the caller wrote them), and what its `**other` spreads give."""
    args = func.args
    named = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    given = [kw for kw in call.keywords if kw.arg not in named]
    # `write(runner, name, **extra)`: the caller's dict, spread in (its keys may name a
    # parameter instead; a dict built for the keywords names the extra entries)
    keys: list[ast.expr | None] = [
        ast.Constant(value=kw.arg) if kw.arg is not None else None for kw in given
    ]
    display = ast.Dict(keys=keys, values=[kw.value for kw in given])
    return ast.copy_location(display, call)
