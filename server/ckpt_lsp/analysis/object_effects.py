"""What calling a method of a project object does to its attributes, for the caller's flow.

`stopper.step(loss)` then `torch.save({"best": stopper.best})`: the method's `self.best = value`
now holds what the call passed (a numpy scalar when `loss` is one), `self.history.append(v)`
made a list of what `v` is, `self.started = datetime.now()` a datetime. The caller's flow keeps
`stopper.best` under that key. An assignment on the method's straight path replaces what the
attribute held; one under an `if`, a loop or after an early `return` may not run, so the old
value (what `__init__` set, judged the same way) stays possible. Literals (`None`, `0.0`,
`float("inf")`, `[]`) are placeholders: a run that saves after the method ran saves what it
stored, as local_flow already decides for local names. Anything unknown stays unknown.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Union

from ckpt_lsp.analysis.class_text import FunctionNode
from ckpt_lsp.analysis.constant_tests import decided
from ckpt_lsp.analysis.constructor_args import bound_of
from ckpt_lsp.analysis.dataclass_fields import agreed
from ckpt_lsp.analysis.demand import of_returns
from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, dotted_name, self_attribute
from ckpt_lsp.analysis.local_flow import (
    LITERAL,
    NUMBER,
    NUMBER_MARK,
    UNKNOWN,
    LocalFlow,
    Possible,
    agreed_columns,
    collapse,
    empty_display,
    item_key,
    past_unpassed,
)
from ckpt_lsp.analysis.nodes import assigned_targets, child_nodes, walk
from ckpt_lsp.weights_only import Refused

if TYPE_CHECKING:
    from ckpt_lsp.analysis.load_safety import Env, LoadSafety

# attribute -> (what it may hold after the call, whether that replaces what it held before)
Effects = dict[str, tuple[frozenset[Possible], bool]]
_MAX_CALLS = 2  # `self.k()` inside a called method, followed this deep
# a method of a same-module class runs with the caller's judge (its memo shared, no helper
# level spent); this bounds how many such method walks nest in one judge
_NESTING = "#effects-nesting"
_MAX_NESTING = 6
_CUT = "#effects-cut"  # the keys of computations cut short while others ran (see _effects)
_PROVISIONAL = "#effects-provisional"  # results built on such a cut (see _provisional)
_IN_PROGRESS: Effects = {"*": (frozenset({UNKNOWN}), True)}  # a key being computed
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
# a class that intercepts its attribute stores or reads: what a store leaves is unknown
_INTERCEPTS = ("__setattr__", "__getattribute__")
_ADDERS = frozenset({"append", "add", "insert", "appendleft"})
# methods of a dict that leave its keys' values as they were
_READERS = frozenset({"get", "keys", "values", "items", "copy", "count", "index"})
_INFINITE = frozenset({"inf", "-inf", "nan", "infinity", "-infinity"})
_FRAME_KINDS = frozenset({"pandas-frame", "pandas-time-frame", "pandas-number-keyed-frame"})
_INF_NAMES = frozenset({"math.inf", "math.nan", "numpy.inf", "numpy.nan", "np.inf", "np.nan"})
OPAQUE: Effects = {"*": (frozenset({UNKNOWN}), True)}
Located = tuple[ModuleFacts, ClassFacts]
Method = tuple[ModuleFacts, FunctionNode]
_Bound = dict[str, object]
_Judge = Callable[[ast.expr], Union[Possible, None]]
# an `if` -> whether the arm that runs is known to be its body (False: its orelse)
_Taken = Callable[[ast.If], Union[bool, None]]


def method_effects(
    safety: LoadSafety, receiver: Refused, call: ast.Call, env: Env
) -> Effects | None:
    """What `obj.method(...)` (`obj` an instance of a project class) does to `obj`'s
    attributes; None when the method is not the project's (a library base's)."""
    if not isinstance(call.func, ast.Attribute) or not receiver.type_name:
        return None
    located = safety.project_class(receiver.type_name)
    found = _method(safety, located, call.func.attr) if located is not None else None
    if found is None or located is None:
        return None
    facts, method = found
    bound = bind(method, call, lambda e: _passed_value(safety, e, env))
    return _effects(safety, facts, located, method, bound, 0, receiver)


def method_returns(
    safety: LoadSafety, receiver: Refused, call: ast.Call, env: Env
) -> Refused | None:
    """What `obj.method(...)` returns, `obj` an instance of a project class: what every
    `return` of the method gives, its parameters bound to what the call passes, `self`'s
    attributes as self_env knows them; else what its annotation says."""
    found = _own_method(safety, receiver, call, static=True)
    if found is None:
        return None
    facts, method = found
    skip = 0 if _decorated(method) else 1  # a staticmethod has no `self` to skip
    bound = bind(method, call, lambda e: _passed_value(safety, e, env), skip)
    located = safety.project_class(receiver.type_name)
    key = ("returns", id(method), receiver.type_name, _frozen(bound))
    known = safety.memo.get(key)
    if isinstance(known, tuple) and known[0] is method:
        return known[1]
    safety.memo[key] = (method, None)  # a method returning its own call: unknown
    own = self_env(safety, receiver) if located is not None else {}
    judged = _agreed(
        LocalFlow(safety.deeper(facts), own).run(method, bound, needs=of_returns(method)).returns
    )
    if judged is None and method.returns is not None:
        from ckpt_lsp.analysis.load_safety import returns_unsaid  # it imports this module

        if not returns_unsaid(facts, method):
            judged = safety.deeper(facts).of_annotation(method.returns)  # `def run() -> Trial`
    if judged is None and returns_self(safety, receiver, call):
        judged = receiver  # `SRTrainer(args).iterate(2)`: the object the call built, as built
    safety.memo[key] = (method, judged)
    return judged


_PROPERTY = frozenset({"property", "functools.cached_property", "cached_property"})


def property_returns(
    safety: LoadSafety,
    receiver: Refused,
    attr: str,
    known: Mapping[str, Refused | None] | None = None,
) -> Refused | None:
    """What `obj.<attr>` is when the project class makes it a property (`meter.median`,
    `return np.median(self.values)`): what every `return` of its getter gives; `known`, the
    attributes the caller's flow knows the object holds (`self.counts` after `fit`)."""
    if not receiver.type_name or safety.depth_left() < 1:
        return None
    located = safety.project_class(receiver.type_name)
    found = _method(safety, located, attr) if located is not None else None
    if found is None:
        return None
    facts, method = found
    names = {dotted_name(d) for d in method.decorator_list}
    if len(names) != 1 or not names <= _PROPERTY or len(method.args.args) != 1:
        return None
    known = known or {}
    key = ("property", id(method), receiver.type_name, tuple(sorted(known.items(), key=str)))
    memoized = safety.memo.get(key)
    if isinstance(memoized, tuple) and memoized[0] is method:
        return memoized[1]
    safety.memo[key] = (method, None)  # a getter reading itself: unknown
    flow = LocalFlow(safety.deeper(facts), {**self_env(safety, receiver), **known})
    judged = _agreed(flow.run(method, needs=of_returns(method)).returns)
    safety.memo[key] = (method, judged)
    return judged


def returns_self(safety: LoadSafety, receiver: Refused, call: ast.Call) -> bool:
    """Whether `obj.method(...)` gives `obj` back: every `return` of the project method is
    `return self` (a fluent `fit()`)."""
    if not receiver.type_name:
        return False
    found = _own_method(safety, receiver, call)
    if found is None:
        return False
    returns = [
        node
        for stmt, _ in _statements(found[1].body, True)
        for node in own_nodes(stmt)
        if isinstance(node, ast.Return)
    ]
    return bool(returns) and all(
        isinstance(r.value, ast.Name) and r.value.id == "self" for r in returns
    )


def method_items(
    safety: LoadSafety, call: ast.Call, count: int, env: Env, at: int | None = None
) -> list[Refused | None] | None:
    """What each element of `obj.method(...)`'s tuple result is (`chosen, w = server.step()`):
    element i is refused when every `return` gives the same refusal there (`at`: of the inner
    tuple each return shows at that position)."""
    if not isinstance(call.func, ast.Attribute):
        return None
    receiver = safety.kind_of(call.func.value, env)
    found = _own_method(safety, receiver, call) if receiver is not None else None
    if found is None or receiver is None:
        return None
    facts, method = found
    bound = bind(method, call, lambda e: _passed_value(safety, e, env))
    flow = LocalFlow(safety.deeper(facts), self_env(safety, receiver)).run(
        method, bound, needs=of_returns(method)
    )
    returned = flow.return_items if at is None else flow.nested(at, count)
    columns = agreed_columns(returned, count)
    return [_agreed(column) for column in columns] if columns is not None else None


def self_env(safety: LoadSafety, receiver: Refused) -> dict[str, Refused | None]:
    """What `self` and its attributes are inside the class's methods: the attributes
    `__init__` sets on its straight path that no other method assigns (memoized per class)."""
    located = safety.project_class(receiver.type_name) if receiver.type_name else None
    if located is None:
        return {}
    instance = receiver if receiver.passed else None
    key = ("self-env", located[0].path, located[1].name, _passed_key(instance))
    known = safety.memo.get(key)
    if isinstance(known, dict):
        return known
    env: dict[str, Refused | None] = {"self": replace(receiver, built=None)}
    safety.memo[key] = env  # a class whose __init__ builds itself: only `self`
    cut = safety.memo.setdefault(_CUT, [])
    assert isinstance(cut, list)
    start = len(cut)
    found = _method(safety, located, "__init__")
    bound = bound_of(instance) or {}
    effects = _effects(safety, found[0], located, found[1], bound, 0, instance) if found else {}
    again: dict[str, Refused] = {}
    for attr, (possible, replaces) in effects.items():
        held = collapse(possible) if replaces else None
        if _numbers(possible, replaces) and not _assigned_elsewhere(safety, located, attr):
            env[f"{NUMBER_MARK}self.{attr}"] = None  # `self.scale * np.mean(x)` stays numpy
        if held is None or attr == "*" or "[" in attr:  # a key's value: methods may set it
            continue
        if _assigned_elsewhere(safety, located, attr):
            if not held.holder and "." not in attr:
                again[attr] = held
            continue
        env[f"self.{attr}"] = held
    if again:  # `self.dt = self.dt * factor` in a method keeps dt a numpy scalar
        from ckpt_lsp.analysis.kept_attributes import kept_attributes

        kept = kept_attributes(safety, located, dict(env), again)
        env.update({f"self.{attr}": held for attr, held in kept.items()})
    if len(cut) > start:  # built on an `__init__` cut short by a cycle: not the class's
        _provisional(safety.memo, key)
        if not safety.memo.get(_NESTING, 0):
            _forget_provisional(safety.memo)
    return env


def _numbers(possible: frozenset[Possible], replaces: bool) -> bool:
    return replaces and bool(possible) and all(p is NUMBER for p in possible)


def init_method(safety: LoadSafety, located: Located) -> Method | None:
    """The `__init__` of the class or of its nearest project base that defines one."""
    return _method(safety, located, "__init__")


def _passed_key(instance: Refused | None) -> object:
    return instance.passed if instance is not None else ()


def defines(safety: LoadSafety, receiver: Refused, name: str) -> bool:
    """Whether `obj.<name>` may be a method: the project class (or a project base) defines
    it, or a base the project does not define may (an `nn.Module`'s `forward`)."""
    located = safety.project_class(receiver.type_name) if receiver.type_name else None
    if located is None:
        return True
    chain = list(_chain(safety, located))
    if any(cls.method(name) is not None for _, cls in chain):
        return True
    facts, last = chain[-1]
    bases = [_qualified(b, facts) for b in last.bases]
    return any(not b.startswith("builtins.") and safety.project_class(b) is None for b in bases)


def _assigned_elsewhere(safety: LoadSafety, located: Located, attr: str) -> bool:
    """Whether a method other than `__init__` (of the class or a project base) stores
    `self.<attr>` (or sets it by name)."""
    methods = [
        method
        for _, cls in _chain(safety, located)
        for word in (f"self.{attr}", f'"{attr}"')  # setattr(self, "x", ...)
        for method in cls.methods_mentioning(word)
    ]
    last = attr.rsplit(".", 1)[-1]  # `state.best`: any store of a `best` counts
    return any(m.name != "__init__" and last in _summary(m)[1] for m in methods)


def _agreed(judged: list[Refused | None]) -> Refused | None:
    if not judged or any(j is None for j in judged):
        return None
    first = judged[0]
    assert first is not None
    same = agreed([j for j in judged if j is not None])
    if same is not None:
        return same
    holder = any(j is not None and j.holder for j in judged)
    return Refused(first.kind, first.what, first.loadable, "", first.stateful, holder=holder)


def _own_method(
    safety: LoadSafety, receiver: Refused, call: ast.Call, static: bool = False
) -> Method | None:
    """The project method `call` calls on `receiver`, not a class method or property (nor a
    static method unless `static`: `self._split(n)` of a `@staticmethod`)."""
    if not receiver.type_name or not isinstance(call.func, ast.Attribute):
        return None
    if safety.depth_left() < 1:
        return None
    located = safety.project_class(receiver.type_name)
    found = _method(safety, located, call.func.attr) if located is not None else None
    if found is None:
        return None
    if _decorated(found[1]) and not (static and _static(found[1])):
        return None
    return found


def _static(method: FunctionNode) -> bool:
    """A `@staticmethod` and nothing else that changes how it is called."""
    names = {dotted_name(d.func if isinstance(d, ast.Call) else d) for d in method.decorator_list}
    return names == {"staticmethod"}


def _decorated(method: FunctionNode) -> bool:
    """A static or class method, or a property: `self` is not its first parameter."""
    names = {dotted_name(d.func if isinstance(d, ast.Call) else d) for d in method.decorator_list}
    return bool(names & {"staticmethod", "classmethod", "property"})


def class_attribute(
    safety: LoadSafety, located: Located, attr: str, fresh: bool = False
) -> Refused | None:
    """What `obj.<attr>` is whatever methods ran (`obj` a parameter annotated with the class,
    or one built here: `fresh`, where `__init__` must store it on its straight path, or the
    read fails): refused when every store of it in every method of the class is, no
    placeholder among them (a fresh object still holds one); parameters unknown."""
    owned = [
        (facts, method)
        for facts, cls in _chain(safety, located)
        for method in cls.methods_mentioning(f"self.{attr}")
    ]
    if not _may_be_refused([m for _, m in owned], attr):
        return None
    if fresh:
        init = _method(safety, located, "__init__")
        stored = _effects(safety, init[0], located, init[1], {}, 0) if init else {}
        if not stored.get(attr, (frozenset(), False))[1]:
            return None  # set only in a branch of __init__, or by another method
    held: set[Possible] = set()
    for facts, method in owned:  # a base's methods store it too
        effects = _effects(safety, facts, located, method, {}, 0)
        if "*" in effects:
            return None
        found = effects.get(attr)
        if found is not None:
            held |= found[0]
    if not held or not all(isinstance(p, Refused) for p in held):
        return None
    return collapse(held)


def stored_anywhere(
    safety: LoadSafety, receiver: Refused, attr: str, called: str
) -> frozenset[Possible] | None:
    """What `obj.<attr>` may hold when the class neither sets it in `__init__` nor in its
    body: reading it succeeds only after some method stored it, so it holds one of the
    values the class's methods other than `called` (the caller knows its own) store, judged
    without their arguments; None when a method sets attributes by name (nothing is known)."""
    located = safety.project_class(receiver.type_name) if receiver.type_name else None
    if located is None:
        return None
    chain = list(_chain(safety, located))
    if any(_class_level_store(cls, attr) for _, cls in chain):
        return None
    held: set[Possible] = set()
    for facts, cls in chain:
        for method in cls.methods_mentioning(f"self.{attr}"):
            if method.name == called:
                continue
            effects = _effects(safety, facts, located, method, {}, 0)
            if "*" in effects:
                return None
            found = effects.get(attr)
            held |= found[0] if found is not None else set()
    return frozenset(held)


def _class_level_store(cls: ClassFacts, attr: str) -> bool:
    """`last_per_class = None` in the class body: a default every instance reads."""
    for stmt in cls.class_level():
        targets = stmt.targets if isinstance(stmt, ast.Assign) else []
        if isinstance(stmt, ast.AnnAssign):
            targets = [stmt.target]
        if any(isinstance(t, ast.Name) and t.id == attr for t in targets):
            return True
    return False


def _may_be_refused(methods: list[FunctionNode], attr: str) -> bool:
    """A cheap look before any flow runs: some method stores `self.<attr>`, and no store is
    a placeholder or a bare name of a parameter (`self.model = model`): those are never all
    refused."""
    stored = False
    for method in methods:
        trivial = _summary(method)[0].get(attr)
        if trivial:
            return False
        stored = stored or trivial is not None
    return stored


_SUMMARY = "_ckpt_self_stores"
# per method: attribute -> whether a `self.<attr> = v` stores a placeholder or a parameter;
# the attribute names it stores on anything (or names in a string, for setattr)
_Summary = tuple[dict[str, bool], frozenset[str]]
_BY_NAME = frozenset({"setattr", "vars", "delattr"})  # `setattr(self, "x", v)`, `vars(self)[k]`


def _summary(method: FunctionNode) -> _Summary:
    """What a method stores, read once per method node (kept on it: every save function of
    a module asks of the same class)."""
    known: _Summary | None = getattr(method, _SUMMARY, None)
    if known is not None:
        return known
    params = {a.arg for a in [*method.args.posonlyargs, *method.args.args, *method.args.kwonlyargs]}
    trivial: dict[str, bool] = {}
    written: set[str] = set()
    nodes = list(walk(method))
    # a string names an attribute only where the method may set one by name: a method
    # returning `{"value": self.value}` stores nothing
    by_name = any(
        (isinstance(n, ast.Name) and n.id in _BY_NAME)
        or (isinstance(n, ast.Attribute) and n.attr == "__dict__")
        for n in nodes
    )
    for node in nodes:
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
            written.add(node.attr)
        elif by_name and isinstance(node, ast.Constant) and isinstance(node.value, str):
            written.add(node.value)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target, value in _pairs(targets, node.value):
                attr = self_attribute(target)
                if attr:
                    trivial[attr] = trivial.get(attr, False) or _trivial(value, params)
    found = (trivial, frozenset(written))
    setattr(method, _SUMMARY, found)
    return found


def _pairs(
    targets: Sequence[ast.expr], value: ast.expr | None
) -> Iterator[tuple[ast.expr, ast.expr | None]]:
    """Each target with what it is given: an element of a tuple target takes the matching
    element of a tuple display, else a part of the value (never a placeholder itself)."""
    for target in targets:
        if not isinstance(target, (ast.Tuple, ast.List)):
            yield target, value
        elif isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
            yield from zip(target.elts, value.elts)
        else:
            yield from ((e, _PART) for e in target.elts)


_PART = ast.Call(func=ast.Name(id="_part", ctx=ast.Load()), args=[], keywords=[])


def _trivial(value: ast.expr | None, params: set[str]) -> bool:
    """A placeholder, or a parameter stored as it is."""
    if value is None or _number(value) is not None or isinstance(value, ast.Constant):
        return True
    return empty_display(value) or (isinstance(value, ast.Name) and value.id in params)


def initial(safety: LoadSafety, receiver: Refused) -> Effects:
    """What the attributes hold once the class is built (its `__init__`, judged with the
    literal arguments of the call that built it)."""
    located = safety.project_class(receiver.type_name) if receiver.type_name else None
    found = _method(safety, located, "__init__") if located is not None else None
    if found is None or located is None:
        return {}
    facts, init = found
    built = receiver.built
    passed = bound_of(receiver)
    if passed is not None:
        return _effects(safety, facts, located, init, passed, 0, receiver)
    bound = bind(init, built, _literal) if built is not None else {}
    return _effects(safety, facts, located, init, bound, 0)


def initial_items(
    safety: LoadSafety, receiver: Refused, attr: str
) -> dict[str, frozenset[Possible]]:
    """`run.stats["mean"]` of an object whose `__init__` stored that key on its straight path
    (`self.stats = {"mean": ...}`, or a helper returning such a display) and no other method
    stores `stats`: what each such key holds, by its item suffix (`['mean']`)."""
    located = safety.project_class(receiver.type_name) if receiver.type_name else None
    if located is None or _assigned_elsewhere(safety, located, attr):
        return {}
    if not _dict_kept(safety, located, attr):
        return {}  # `self.log = frame`: its items are columns, which the frame's kind says
    prefix = attr + "["
    return {
        key[len(attr) :]: held[0]
        for key, held in initial(safety, receiver).items()
        if key.startswith(prefix) and held[1]
    }


def initial_number(safety: LoadSafety, receiver: Refused, attr: str) -> bool:
    """`run.best_miou` of an object whose `__init__` sets it to a number literal in its top
    level (`self.best_miou = 0.0`), once, and no other method stores it: a Python number.
    Read from the text alone: running `__init__`'s flow here, inside another flow, could
    memoize a class built on a cut-short cycle."""
    located = safety.project_class(receiver.type_name) if receiver.type_name else None
    found = _method(safety, located, "__init__") if located is not None else None
    if located is None or found is None or _assigned_elsewhere(safety, located, attr):
        return False
    init = found[1]
    stores = [
        node
        for node in walk(init)
        if isinstance(node, ast.Attribute)
        and not isinstance(node.ctx, ast.Load)
        and self_attribute(node) == attr
    ]
    top = [
        stmt.value
        for stmt in init.body
        if isinstance(stmt, (ast.Assign, ast.AnnAssign))
        and stmt.value is not None
        and any(self_attribute(t) == attr for t in assigned_targets(stmt))
    ]
    return len(stores) == 1 and len(top) == 1 and top[0] is not None and _number(top[0]) is NUMBER


def _dict_kept(safety: LoadSafety, located: Located, attr: str) -> bool:
    """Whether `__init__` sets `self.<attr>` to a dict display (`{...}`, `dict(...)`) or to
    what a module function returning dict displays gives."""
    found = _method(safety, located, "__init__")
    if found is None:
        return False
    for node in walk(found[1]):
        if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
            continue
        if not any(self_attribute(t) == attr for t in assigned_targets(node)):
            continue
        value = node.value
        if isinstance(value, ast.Dict) or (
            isinstance(value, ast.Call) and dotted_name(value.func) == "dict"
        ):
            return True
        name = dotted_name(value.func) if isinstance(value, ast.Call) else ""
        return bool(name) and "." not in name and _displays_returned(safety, found[0], name)
    return False


def initial_item(safety: LoadSafety, receiver: Refused, attr: str, key: str) -> Refused | None:
    """What `run.stats["mean"]` holds as `__init__` left it (initial_items)."""
    held = initial_items(safety, receiver, attr).get(item_key("", key))
    return collapse(held) if held is not None else None


def _effects(
    safety: LoadSafety,
    facts: ModuleFacts,
    located: Located,
    method: FunctionNode,
    bound: _Bound,
    depth: int,
    instance: Refused | None = None,
) -> Effects:
    # per method node, receiver class (a subclass's properties and __init__ differ) and
    # what built the receiver; the node is kept with the result so a reused id never
    # answers for another method
    instance = instance if instance is not None and instance.passed else None
    key = (
        "effects",
        id(method),
        located[0].path,
        located[1].name,
        _frozen(bound),
        _passed_key(instance),
    )
    memo = safety.memo
    cut = memo.setdefault(_CUT, [])
    assert isinstance(cut, list)
    known = memo.get(key)
    if isinstance(known, tuple) and known[0] is method:
        if known[1] is _IN_PROGRESS:  # a method that calls itself: unknown
            cut.append(key)
            return OPAQUE
        return known[1]
    nesting = memo.get(_NESTING, 0)
    assert isinstance(nesting, int)
    if nesting >= _MAX_NESTING:  # objects' methods calling others' at one judge's depth
        cut.append(None)
        return OPAQUE
    memo[key] = (method, _IN_PROGRESS)
    memo[_NESTING] = nesting + 1
    start = len(cut)
    try:
        found = _walk(safety, facts, located, method, bound, depth, instance)
    finally:
        memo[_NESTING] = nesting
    memo[key] = (method, found)
    cut[start:] = [k for k in cut[start:] if k != key]
    if len(cut) > start:
        _provisional(memo, key)
    if nesting == 0:
        _forget_provisional(memo)
    return found


def _provisional(memo: dict[object, object], key: object) -> None:
    """A result built on one cut short for a computation still running (a cycle through
    `__init__`, the nesting bound) serves until the outermost computation ends; kept longer,
    it would stand for the method where nothing cuts it short."""
    keys = memo.setdefault(_PROVISIONAL, [])
    assert isinstance(keys, list)
    keys.append(key)


def _forget_provisional(memo: dict[object, object]) -> None:
    keys = memo.pop(_PROVISIONAL, [])
    assert isinstance(keys, list)
    for key in keys:
        memo.pop(key, None)
    memo[_CUT] = []


def _frozen(bound: _Bound) -> tuple[tuple[str, object], ...]:
    return tuple(sorted(bound.items(), key=lambda kv: kv[0]))


def _walk(
    safety: LoadSafety,
    facts: ModuleFacts,
    located: Located,
    method: FunctionNode,
    bound: _Bound,
    depth: int,
    instance: Refused | None,
) -> Effects:
    if _opaque(method) or any(_method(safety, located, n) for n in _INTERCEPTS):
        return OPAQUE
    effects = _stored(safety, facts, located, method, bound, depth, instance)
    # `self.best = v` through a property's setter, read through its getter: not what was
    # stored
    return {a: e for a, e in effects.items() if a == "*" or not _method(safety, located, a)}


def _stored(
    safety: LoadSafety,
    facts: ModuleFacts,
    located: Located,
    method: FunctionNode,
    bound: _Bound,
    depth: int,
    instance: Refused | None,
) -> Effects:
    # a method of a class of the judge's own module is no helper further away: the same
    # judge (and memo); another module's is one level deeper
    judge = safety if facts is safety.facts else safety.deeper(facts)
    own = instance if instance is not None else safety.of_class(*located)
    flow = LocalFlow(judge, self_env(safety, own) if own is not None else None).run(method, bound)
    effects: Effects = {}
    exited = False
    kept_from: dict[str, int] = {}  # `ctrl` -> the statement that kept a helper's object
    keyed = keyed_names(safety, located)

    def taken(stmt: ast.If) -> bool | None:
        return decided(stmt.test, judge, flow.env_before(stmt))

    for stmt, straight in _statements(method.body, True, taken):
        if straight and exited:
            straight = False
        env = flow.env_before(stmt)
        stores = list(_stores(judge, stmt, env, keyed))
        rebound = {attr for attr, _, _ in stores if "." not in attr and "[" not in attr}
        for attr, possible, replaces in stores:
            if "[" not in attr or attr.split("[", 1)[0] in keyed:
                _apply(effects, attr, possible, replaces and straight)
                if "." in attr and attr.split(".", 1)[0] in rebound:  # `self.ctrl = build()`
                    kept_from[attr.split(".", 1)[0]] = id(stmt)
        for call in _self_calls(stmt):
            assert isinstance(call.func, ast.Attribute)  # a `self.k(...)` call
            if _is_super(call.func.value):  # `super().__init__(cfg)`: the base's
                inner = _base_method(safety, located, method, call.func.attr)
            else:
                inner = _method(safety, located, call.func.attr)
            if inner is None:
                continue  # `self.model(x)`: a held object, no method of the class
            if depth >= _MAX_CALLS:
                if _inert(safety, located, inner[1]):
                    continue  # `self._tensor(frame)` stores nothing on the object
                return OPAQUE
            args = {**_defaults(safety, inner), **bind(inner[1], call, _judge_in(judge, env))}
            for attr, (possible, replaces) in _effects(
                safety, inner[0], located, inner[1], args, depth + 1, instance
            ).items():
                _apply(effects, attr, possible, replaces and straight)
        for attr, possible in _held_calls(safety, judge, stmt, env, depth):
            _apply(effects, attr, possible, False)
        if straight and any(isinstance(n, (ast.Return, ast.Raise)) for n in own_nodes(stmt)):
            exited = True
    for head in _touched(method, kept_from):
        for attr in [a for a in effects if a.startswith(head + ".")]:
            effects[attr] = (frozenset({UNKNOWN}), False)
    return effects


# what a call on what `self` holds may change: the adders and the other in-place methods
_MUTATORS = _ADDERS | frozenset(
    {"extend", "update", "pop", "popitem", "clear", "remove", "setdefault", "discard"}
)
_MUTATORS |= {"sort", "reverse", "fill", "resize"}  # a list's or an array's, in place


_MAX_INERT = 8  # methods of the class one inertness check reads at most


def _inert(
    safety: LoadSafety,
    located: Located,
    method: FunctionNode,
    seen: set[int] | None = None,
) -> bool:
    """A method that cannot change the object's attributes: it stores nothing under `self`,
    calls no mutating method of what `self` holds (`self.model(x)`, `self.scaler.transform(x)`
    read) and only methods of the class that are inert too (`self.rank(p)` ranking through
    `self._tensor(c)`)."""
    seen = set() if seen is None else seen
    seen.add(id(method))
    for node in walk(method):
        if (
            isinstance(node, (ast.Attribute, ast.Subscript))
            and not isinstance(node.ctx, ast.Load)
            and _rooted_at_self(node)
        ):
            return False
        if isinstance(node, ast.Call):
            func = node.func
            name = dotted_name(func)
            if name in ("setattr", "vars", "delattr"):
                return False
            if not isinstance(func, ast.Attribute) or not _rooted_at_self(func.value):
                continue
            inner = _method(safety, located, func.attr) if self_attribute(func) else None
            # `self.k(...)`: another method, which may store
            if (
                inner is not None
                and id(inner[1]) not in seen
                and (len(seen) >= _MAX_INERT or not _inert(safety, located, inner[1], seen))
            ):
                return False
            if not self_attribute(func) and func.attr in _MUTATORS:
                return False  # `self.history.append(v)`
    return True


def _rooted_at_self(node: ast.expr) -> bool:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return isinstance(node, ast.Name) and node.id == "self"


def _touched(method: FunctionNode, kept_from: dict[str, int]) -> set[str]:
    """The held objects (`self.ctrl` kept from a helper's result) another statement of the
    method may change: it mentions `self.ctrl`, calls a method of `self` or hands `self` on."""
    if not kept_from:
        return set()
    touched: set[str] = set()
    for stmt, _ in _statements(method.body, True):
        nodes = list(own_nodes(stmt))
        handed = [
            v
            for n in nodes
            if isinstance(n, ast.Call)
            for v in [*n.args, *(k.value for k in n.keywords)]
        ]
        if any(isinstance(v, ast.Name) and v.id == "self" for v in handed):
            return set(kept_from)
        if any(True for _ in _self_calls(stmt)):
            return set(kept_from)
        for head, at in kept_from.items():
            if at != id(stmt) and _changes(nodes, head):
                touched.add(head)
    return touched


def _changes(nodes: list[ast.AST], head: str) -> bool:
    """Whether the nodes mention `self.<head>` otherwise than reading an attribute of it
    (`self.ctrl.dt`): stored, handed on, or a method of it called."""
    called = {id(n.func) for n in nodes if isinstance(n, ast.Call)}
    reads = {
        id(n.value)
        for n in nodes
        if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load) and id(n) not in called
    }
    return any(
        isinstance(n, ast.Attribute) and self_attribute(n) == head and id(n) not in reads
        for n in nodes
    )


def _held_calls(
    safety: LoadSafety, judge: LoadSafety, stmt: ast.stmt, env: Env, depth: int
) -> Iterator[tuple[str, frozenset[Possible]]]:
    """`self.stopper.step(acc)`, `self.stopper` an object `__init__` built (self_env): what
    the held object's method stores, as `stopper.best`, with what its `__init__` set when the
    store may not run. Never a replacement: what the caller stored there stays possible."""
    for node in own_nodes(stmt):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        held = self_attribute(node.func.value)
        receiver = env.get(f"self.{held}") if held else None
        if receiver is None or not receiver.type_name or depth >= _MAX_CALLS:
            continue
        inner = _method(safety, safety.project_class(receiver.type_name), node.func.attr)
        if inner is None or _decorated(inner[1]):
            continue
        located = safety.project_class(receiver.type_name)
        assert located is not None
        args = bind(inner[1], node, _judge_in(judge, env))
        effects = _effects(safety, inner[0], located, inner[1], args, depth + 1, receiver)
        if "*" in effects:
            continue
        built = initial(safety, receiver)
        for attr, effect in effects.items():
            first = built.get(attr) if "*" not in built else None
            fallback = None if first is None else first[0] | (set() if first[1] else {UNKNOWN})
            yield (
                f"{held}.{attr}",
                apply_to(None, frozenset(fallback) if fallback else None, effect),
            )


def _apply(effects: Effects, attr: str, possible: frozenset[Possible], replaces: bool) -> None:
    """Compose a store after what the method did so far: one on the straight path replaces,
    another adds what it stores to what the attribute held."""
    if "*" in effects:
        return
    if attr == "*":
        effects.clear()
        effects["*"] = (possible, True)
        return
    if attr.endswith(WIPED):  # the keys known so far are gone, or unknown in a branch
        prefix = attr[: -len(WIPED)] + "["
        for known in [k for k in effects if k.startswith(prefix) and k != attr]:
            if replaces:
                del effects[known]
            else:
                effects[known] = (effects[known][0] | {UNKNOWN}, effects[known][1])
    old = effects.get(attr)
    if replaces or old is None:
        effects[attr] = (possible, replaces)
    else:
        effects[attr] = (old[0] | possible, old[1])


def apply_to(
    held: frozenset[Possible] | None, fallback: frozenset[Possible] | None, effect: tuple
) -> frozenset[Possible]:
    """What an attribute holds after a call with `effect`, given what it held (`held`, else
    what `__init__` set: `fallback`, else unknown)."""
    possible, replaces = effect
    if replaces:
        return frozenset(possible)
    before = held if held is not None else fallback
    return frozenset(possible) | (before if before is not None else frozenset({UNKNOWN}))


def _stores(
    judge: LoadSafety,
    stmt: ast.stmt,
    env: Mapping[str, Refused | None],
    keyed: frozenset[str] = frozenset(),
) -> Iterator[tuple[str, frozenset[Possible], bool]]:
    """Each `self.x` the statement stores: what it may hold, and whether it replaces (and,
    of the `keyed` dicts, what it does to their keys)."""
    if keyed and any(f"self.{name}" in _mentions(stmt) for name in keyed):
        for attr in _keys_touched(stmt) & keyed:
            yield wiped(attr), frozenset({UNKNOWN}), True
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        for target in targets:
            yield from _assigned(judge, target, stmt.value, env, keyed)
    elif isinstance(stmt, ast.AugAssign):
        attr = self_attribute(stmt.target)
        if not attr and isinstance(stmt.target, ast.Attribute):
            held = self_attribute(stmt.target.value)  # `self.state.tokens += n`
            attr = f"{held}.{stmt.target.attr}" if held else ""
        if attr:
            if _number(stmt.value) is None:  # `self.n += 1` keeps what n is
                yield attr, frozenset({_possible(judge, stmt.value, env)}), False
        elif isinstance(stmt.target, ast.Subscript) and self_attribute(stmt.target.value):
            yield self_attribute(stmt.target.value), frozenset({LITERAL}), False  # `self.n[k] += 1`
    elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        yield from _mutated(judge, stmt.value, env)


def _assigned(
    judge: LoadSafety,
    target: ast.expr,
    value: ast.expr,
    env: Mapping[str, Refused | None],
    keyed: frozenset[str] = frozenset(),
) -> Iterator[tuple[str, frozenset[Possible], bool]]:
    attr = self_attribute(target)
    if attr:
        held = _possible(judge, value, env)
        yield attr, frozenset({held}), True
        yield wiped(attr), frozenset({UNKNOWN}), True  # what its keys held is gone
        yield from _display_items(judge, attr, value, env)
        if attr in keyed and isinstance(value, ast.Call):
            # `self.last_metrics = self.evaluate(loader)` of a helper returning a display
            for key, refused in judge.keys_of(value, dict(env)).items():
                yield item_key(attr, key), frozenset({refused}), True
        yield from _held_state(judge, attr, value, -1, env)
        if isinstance(held, Refused) and held.kind == "dataclass" and isinstance(value, ast.Call):
            from ckpt_lsp.analysis.dataclass_fields import built_fields

            for name, possible in built_fields(judge, held.type_name, value, env).items():
                yield f"{attr}.{name}", frozenset({possible}), True
    elif isinstance(target, (ast.Tuple, ast.List)):
        pairs = (
            zip(target.elts, value.elts)
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts)
            else ((e, None) for e in target.elts)
        )
        if not isinstance(value, (ast.Tuple, ast.List)):  # `a, self.deg = helper(x)`
            yield from _unpacked(judge, target, value, env)
            return
        for element, item in pairs:
            name = self_attribute(element)
            if name:
                held = _possible(judge, item, env) if item is not None else UNKNOWN
                yield name, frozenset({held}), True
    elif isinstance(target, ast.Attribute) and self_attribute(target.value):
        # `self.state.best_loss = loss`: the held object's attribute, as `state.best_loss`
        nested = f"{self_attribute(target.value)}.{target.attr}"
        yield nested, frozenset({_possible(judge, value, env)}), True
    elif isinstance(target, ast.Subscript) and self_attribute(target.value):
        frame = env.get(f"self.{self_attribute(target.value)}")
        if frame is not None and frame.kind in _FRAME_KINDS:
            return  # `self.df["cate"] = preds`: a new column, the frame stays a frame
        stored = _item(judge, value, env)  # one key's value: the others' may load
        kept = (
            replace(stored, holder=True, what=f"a container holding {stored.what}")
            if isinstance(stored, Refused)
            else stored
        )
        container = self_attribute(target.value)
        index = target.slice
        if isinstance(index, ast.Constant) and isinstance(index.value, str):
            yield container, frozenset({kept}), False
            # `self.cache["probs"] = x.numpy()`: that key holds it now
            stored_at = item_key(container, index.value)
            yield stored_at, frozenset({_possible(judge, value, env)}), True
            return
        yield wiped(container), frozenset({UNKNOWN}), True  # any key's value may have changed
        numpy = judge.catalog.kind(stored.kind + "-dict") if isinstance(stored, Refused) else None
        # `self.acc[c] = np.mean(...)` in a loop: a dict of numpy values (its items and
        # `.values()` are numpy), as `_stored_item` decides for a local
        held = replace(numpy, fix="") if numpy is not None else kept
        yield container, frozenset({held}), False


def _displays_returned(safety: LoadSafety, facts: ModuleFacts, name: str) -> bool:
    """`self.stats = band_stats(tiles)` of a module function whose every return is a dict
    display: whoever holds the object may read its keys (`run.stats["mean"]`)."""
    found = safety.deeper(facts).project_function(_qualified(name, facts))
    if found is None:
        return False
    returns = [n for n in walk(found[1]) if isinstance(n, ast.Return)]
    return bool(returns) and all(isinstance(r.value, ast.Dict) for r in returns)


_KEYED = re.compile(r"\bself\.(\w+)\s*\[")
# `self.last_eval = {"loss": loss}` in a method: its keys are read by whoever holds the object
_DISPLAYED = re.compile(r"\bself\.(\w+)\s*=\s*(?:\{|dict\()")
# `self.stats = band_stats(tiles)`: kept when the function returns dict displays only
_CALLED = re.compile(r"\bself\.(\w+)\s*=\s*(\w+)\(")


def keyed_names(safety: LoadSafety, located: Located) -> frozenset[str]:
    """The attributes a method of the class (or a project base) indexes (`self.cache[...]`)
    or sets to a dict display: only their keys are followed (memoized per class)."""
    key = ("keyed", located[0].path, located[1].name)
    known = safety.memo.get(key)
    if isinstance(known, frozenset):
        return known
    chain = list(_chain(safety, located))
    found = frozenset(
        name
        for _, cls in chain
        for pattern in (_KEYED, _DISPLAYED)
        for name in pattern.findall(_text(cls))
    ) | frozenset(
        name
        for facts, cls in chain
        for name, function in _CALLED.findall(_text(cls))
        if _displays_returned(safety, facts, function)
    )
    safety.memo[key] = found
    return found


def _text(cls: ClassFacts) -> str:
    return cls.parsed.block.text


def _mentions(stmt: ast.stmt) -> frozenset[str]:
    """The `self.x` a statement's own nodes name (kept on the node: read once)."""
    known: frozenset[str] | None = getattr(stmt, _MENTIONS, None)
    if known is None:
        known = frozenset(
            f"self.{n.attr}"
            for n in own_nodes(stmt)
            if isinstance(n, ast.Attribute) and self_attribute(n)
        )
        setattr(stmt, _MENTIONS, known)
    return known


_MENTIONS = "_ckpt_self_mentions"


def _keys_touched(stmt: ast.stmt) -> set[str]:
    """The `self.x` a statement may change the keys of otherwise than by `self.x["k"] = v`:
    `self.x.pop("k")`, `del self.x["k"]`, `self.x["k"] += 1`, `cache = self.x` (an alias),
    `fill(self.x)`; reading it (`if not self.x`, `len(self.x)`, `self.x.get("k")`) does not."""
    return keys_touched(stmt, self_attribute, isinstance(stmt, ast.Assign))


def keys_touched(
    stmt: ast.stmt, named: Callable[[ast.expr], str], assigned: bool, rebound: bool = True
) -> set[str]:
    """The containers (`named` says which attribute mentions are one, and its name) whose
    keys a statement may change; `assigned`: `x["k"] = v` is followed by the caller;
    `rebound`: `x = ...` counts (else the caller follows it)."""
    parents: dict[int, ast.AST] = {}
    mentions: list[tuple[ast.Attribute, str]] = []
    stored: set[str] = set()
    for node in own_nodes(stmt):
        for child in child_nodes(node):
            parents[id(child)] = node
        if not isinstance(node, ast.Attribute):
            continue
        name = named(node)
        if name and isinstance(node.ctx, ast.Load):
            mentions.append((node, name))
        elif name and rebound:
            stored.add(name)  # `trainer.cache = {}`
    return stored | {
        name
        for node, name in mentions
        if not _reads_keys(node, parents.get(id(node), stmt), parents, assigned)
    }


def _reads_keys(
    node: ast.Attribute, parent: ast.AST, parents: dict[int, ast.AST], assigned: bool
) -> bool:
    """Whether this mention of `self.x` leaves its keys' values as they were."""
    if isinstance(parent, ast.Subscript) and parent.value is node:
        return isinstance(parent.ctx, ast.Load) or (assigned and isinstance(parent.ctx, ast.Store))
    if isinstance(parent, ast.Attribute):  # `self.x.get("k")`, `self.x.shape`
        call = parents.get(id(parent))
        called = isinstance(call, ast.Call) and call.func is parent
        return not called or parent.attr in _READERS | _ADDERS
    if isinstance(parent, ast.Call):  # `self.x(...)`, `len(self.x)`
        func = parent.func
        return func is node or (isinstance(func, ast.Name) and func.id in _READING)
    return isinstance(parent, _READ_CONTEXTS)


# builtins and statements that only read a container they are given
_READING = frozenset(
    {"len", "list", "sorted", "dict", "bool", "print", "str", "repr", "any", "all", "min"}
    | {"max", "sum", "tuple", "set", "iter", "enumerate", "zip", "isinstance", "float", "int"}
)
_READ_CONTEXTS = (
    ast.UnaryOp,
    ast.Compare,
    ast.BoolOp,
    ast.If,
    ast.While,
    ast.IfExp,
    ast.Assert,
    ast.For,
    ast.comprehension,
    ast.JoinedStr,
    ast.FormattedValue,
)


def wiped(attr: str) -> str:
    """The effect key saying what every key of `self.<attr>` held is no longer known."""
    return attr + WIPED


WIPED = "[*]"


def _display_items(
    judge: LoadSafety, attr: str, value: ast.expr, env: Mapping[str, Refused | None]
) -> Iterator[tuple[str, frozenset[Possible], bool]]:
    """`self.cache = {"logits": None}`: each constant key holds what the display puts there."""
    if not isinstance(value, ast.Dict):
        return
    for key, item in zip(value.keys, value.values):
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            yield item_key(attr, key.value), frozenset({_possible(judge, item, env)}), True


def _unpacked(
    judge: LoadSafety,
    target: ast.Tuple | ast.List,
    value: ast.expr,
    env: Mapping[str, Refused | None],
) -> Iterator[tuple[str, frozenset[Possible], bool]]:
    """`a, self.degree = normalize(adj)`: each `self.x` element takes what every `return` of
    the helper (or method) gives there; unknown otherwise."""
    starred = any(isinstance(e, ast.Starred) for e in target.elts)
    items = None if starred else judge.items_of(value, len(target.elts), dict(env))
    for i, element in enumerate(target.elts):
        name = self_attribute(element)
        if name:
            found = items[i] if items is not None and i < len(items) else None
            yield name, frozenset({found if found is not None else UNKNOWN}), True
            if not starred:
                yield from _held_state(judge, name, value, i, env)


def _held_state(
    judge: LoadSafety, attr: str, value: ast.expr, at: int, env: Mapping[str, Refused | None]
) -> Iterator[tuple[str, frozenset[Possible], bool]]:
    """`self.ctrl = build()` / `_, self.ctrl = solve(grid)`: what the helper's flow knew of
    the returned object's attributes when it gave it back (`ctrl.history` after its
    `ctrl.step()` calls), as `ctrl.history`."""
    if not isinstance(value, ast.Call) or judge.depth_left() < 1:
        return
    for key, possible in judge.objects_of(value, at, dict(env)).items():
        yield f"{attr}{key}", possible, True
    if at == -1 and isinstance(value.func, ast.Attribute):
        # `self.scaler = TargetScaler().fit(y)` of a fluent `fit`: what the method stored
        receiver = judge.kind_of(value.func.value, dict(env))
        if receiver is None or not returns_self(judge, receiver, value):
            return
        effects = method_effects(judge, receiver, value, env) or OPAQUE
        if "*" not in effects:
            for name, (possible, _) in effects.items():
                yield f"{attr}.{name}", possible, True


def _mutated(
    judge: LoadSafety, call: ast.Call, env: Mapping[str, Refused | None]
) -> Iterator[tuple[str, frozenset[Possible], bool]]:
    """`self.history.append(v)`: the container holds `v` now (refused with it)."""
    func = call.func
    if not isinstance(func, ast.Attribute):
        return
    if isinstance(func.value, ast.Subscript) and func.attr in _ADDERS and call.args:
        yield from _item_mutated(judge, func.value, call.args[-1], env)
        return
    attr = self_attribute(func.value)
    if not attr or _own_method_of_held(judge, env.get(f"self.{attr}"), func.attr):
        return  # `self.meter.update(loss)` of a project class: _held_calls follows it
    if func.attr in _ADDERS and call.args:
        yield attr, frozenset({_item(judge, call.args[-1], env)}), False
    elif func.attr in ("extend", "update", "setdefault", "extendleft"):
        yield attr, frozenset({LITERAL}), False  # its items decide, as for `append`


def _item_mutated(
    judge: LoadSafety, item: ast.Subscript, added: ast.expr, env: Mapping[str, Refused | None]
) -> Iterator[tuple[str, frozenset[Possible], bool]]:
    """`self.history["loss"].append(v)`: that key's list holds `v` now (refused with it), so
    the dict holds it too; under a key not known, what any key holds is no longer known."""
    container = self_attribute(item.value)
    if not container:
        return
    found = _item(judge, added, env)
    index = item.slice
    if isinstance(index, ast.Constant) and isinstance(index.value, str):
        yield item_key(container, index.value), frozenset({found}), False
    else:
        yield wiped(container), frozenset({UNKNOWN}), True
    kept = (
        replace(found, holder=True, what=f"a container holding {found.what}")
        if isinstance(found, Refused)
        else found
    )
    yield container, frozenset({kept}), False


def _own_method_of_held(judge: LoadSafety, held: Refused | None, name: str) -> bool:
    """Whether `name` is a method the project class of a held object defines (its own
    `update`, no dict's)."""
    if held is None or not held.type_name:
        return False
    return _method(judge, judge.project_class(held.type_name), name) is not None


def _item(judge: LoadSafety, value: ast.expr, env: Mapping[str, Refused | None]) -> Possible:
    """A container holding a refused item is refused. An item that loads (or is not known)
    never makes a refused container (a deque, a list holding a numpy scalar) load, so it is
    a placeholder: what else the container holds decides."""
    found = judge.of_expression(value, env)
    if found is None:  # `{"epoch": e, "acc": acc}`: a display holding a refused value is
        found = judge.first_refused(_displayed(value), env)
    if found is None:
        return LITERAL
    return Refused(found.kind, found.what, found.loadable, "", found.stateful)


def _displayed(value: ast.expr) -> list[ast.expr]:
    """The elements of a list, tuple or set display, a dict display's keys and values."""
    if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
        return list(value.elts)
    if isinstance(value, ast.Dict):
        return [e for e in [*value.keys, *value.values] if e is not None]
    return []


def _possible(judge: LoadSafety, value: ast.expr, env: Mapping[str, Refused | None]) -> Possible:
    value = past_unpassed(value, env)
    number = _number(value)
    if number is not None:
        return number
    if isinstance(value, (ast.Name, ast.Attribute)) and NUMBER_MARK + dotted_name(value) in env:
        return NUMBER  # a parameter bound to a number literal
    if isinstance(value, ast.Constant) or empty_display(value):
        return LITERAL
    found = judge.of_expression(value, env)
    return found if found is not None else UNKNOWN


def _number(value: ast.expr) -> Possible | None:
    """A number literal or an infinite placeholder (`float("inf")`, `-math.inf`, `np.inf if
    mode == "min" else -np.inf`)."""
    if isinstance(value, ast.IfExp):
        both = _number(value.body) is not None and _number(value.orelse) is not None
        return NUMBER if both else None
    if isinstance(value, ast.UnaryOp) and isinstance(value.op, (ast.USub, ast.UAdd)):
        value = value.operand
    if isinstance(value, ast.Constant):
        ok = isinstance(value.value, (int, float)) and not isinstance(value.value, bool)
        return NUMBER if ok else None
    if (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "float"
        and len(value.args) == 1
        and isinstance(value.args[0], ast.Constant)
        and str(value.args[0].value).lower() in _INFINITE
    ):
        return NUMBER
    if isinstance(value, ast.Attribute) and dotted_name(value) in _INF_NAMES:
        return NUMBER
    return None


def _opaque(method: FunctionNode) -> bool:
    """A method that sets attributes by name (`setattr(self, ...)`, `self.__dict__`,
    `vars(self)`): what it does to any attribute is unknown."""
    for node in walk(method):
        if isinstance(node, ast.Attribute) and node.attr == "__dict__":
            return True
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("setattr", "vars")
            and node.args
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id == "self"
        ):
            return True
    return False


def _self_calls(stmt: ast.stmt) -> Iterator[ast.Call]:
    """`self.k(...)` and `super().k(...)` calls of a statement."""
    for node in own_nodes(stmt):
        if isinstance(node, ast.Call) and (
            self_attribute(node.func)
            or (isinstance(node.func, ast.Attribute) and _is_super(node.func.value))
        ):
            yield node


def _defaults(safety: LoadSafety, method: Method) -> _Bound:
    """The refused defaults of a method's parameters (`scale=np.float64(1.0)`), judged where
    it is defined: what a call that leaves them gives."""
    facts, func = method
    args = func.args
    params = [p.arg for p in [*args.posonlyargs, *args.args]]
    pairs = [
        *zip(params[len(params) - len(args.defaults) :], args.defaults),
        *zip([p.arg for p in args.kwonlyargs], args.kw_defaults),
    ]
    judged = {
        name: safety.deeper(facts).of_expression(default)
        for name, default in pairs
        if isinstance(default, ast.Call)
    }
    return {name: found for name, found in judged.items() if found is not None}


def _is_super(value: ast.expr) -> bool:
    """`super()` (or `super(Cls, self)`) in a method."""
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "super"
    )


def _base_method(
    safety: LoadSafety, located: Located, method: FunctionNode, name: str
) -> Method | None:
    """The method `name` of the first project class after the one defining `method`, in
    the receiver's chain of bases; None when the next one is a library's."""
    seen = False
    for facts, cls in _chain(safety, located):
        if seen:
            found = cls.method(name)
            if found is not None:
                return facts, found
        elif cls.method(method.name) is method:
            seen = True
    return None


def own_nodes(stmt: ast.stmt) -> Iterator[ast.AST]:
    """The nodes of a simple statement (a compound one's own header only), not of nested
    functions."""
    stack: list[ast.AST] = [stmt]
    while stack:
        node = stack.pop()
        yield node
        for child in child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.stmt) and node is not stmt:
                continue
            if isinstance(child, ast.stmt) and _compound(stmt):
                continue
            stack.append(child)


_USES = "_ckpt_object_uses"
_Uses = tuple[list[tuple[ast.Call, str]], frozenset[str]]


def statement_uses(stmt: ast.stmt) -> _Uses:
    """The `name.method(...)` calls of a statement (with the name), and the names it uses
    otherwise than as `name.x`: read once per statement node (kept on it, as the flows of
    a helper run once per caller)."""
    known: _Uses | None = getattr(stmt, _USES, None)
    if known is not None:
        return known
    receivers: set[int] = set()
    bare: set[str] = set()
    calls: list[tuple[ast.Call, str]] = []
    for node in own_nodes(stmt):  # a parent before its children
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            receivers.add(id(node.value))
        elif isinstance(node, ast.Name) and id(node) not in receivers:
            bare.add(node.id)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
        ):
            calls.append((node, node.func.value.id))
    found = (calls, frozenset(bare))
    setattr(stmt, _USES, found)
    return found


def bare_uses(stmt: ast.stmt, name: str) -> set[int]:
    """The ids of the statement's mentions of `name` otherwise than as `name.x`."""
    receivers = {
        id(node.value)
        for node in own_nodes(stmt)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
    }
    return {
        id(node)
        for node in own_nodes(stmt)
        if isinstance(node, ast.Name) and node.id == name and id(node) not in receivers
    }


def conditional_nodes(stmt: ast.stmt) -> set[int]:
    """The nodes of a statement that may not be evaluated: the branches of `a if c else b`,
    what follows the first operand of `and`/`or`, a comprehension's element under an `if`."""
    found: set[int] = set()
    for node in own_nodes(stmt):
        parts: list[ast.AST] = []
        if isinstance(node, ast.IfExp):
            parts = [node.body, node.orelse]
        elif isinstance(node, ast.BoolOp):
            parts = list(node.values[1:])
        elif isinstance(node, _COMPREHENSIONS) and any(gen.ifs for gen in node.generators):
            parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        found.update(id(n) for part in parts for n in walk(part))
    return found


def _compound(stmt: ast.stmt) -> bool:
    return (
        isinstance(
            stmt, (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try)
        )
        or type(stmt).__name__ == "TryStar"
    )


def _statements(
    body: list[ast.stmt], straight: bool, taken: _Taken | None = None
) -> Iterator[tuple[ast.stmt, bool]]:
    """Each statement of a body in order, with whether it is on the straight path; of an
    `if` that `taken` decides (`if use_ema:` of a call passing `use_ema=True`), the arm that
    runs, on the path of the `if`."""
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        yield stmt, straight
        arm = taken(stmt) if taken is not None and isinstance(stmt, ast.If) else None
        if arm is not None and isinstance(stmt, ast.If):
            yield from _statements(stmt.body if arm else stmt.orelse, straight, taken)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            yield from _statements(stmt.body, straight, taken)
        elif _compound(stmt):
            for field in ("body", "orelse", "handlers", "finalbody"):
                for child in getattr(stmt, field, []) or []:
                    inner = child.body if isinstance(child, ast.ExceptHandler) else [child]
                    yield from _statements(inner, False, taken)


def _method(safety: LoadSafety, located: Located | None, name: str) -> Method | None:
    """The method `name` of the class or of one of its project bases, with its module."""
    for facts, cls in _chain(safety, located):
        method = cls.method(name)
        if method is not None:
            return facts, method
    return None


def _chain(safety: LoadSafety, located: Located | None) -> Iterator[Located]:
    """The class, then its first project base, and so on (three levels)."""
    seen = 0
    while located is not None and seen < 3:
        yield located
        facts, cls = located
        bases = [safety.deeper(facts).project_class(_qualified(b, facts)) for b in cls.bases]
        located = next((b for b in bases if b is not None), None)
        seen += 1


def _qualified(base: str, facts: ModuleFacts) -> str:
    from ckpt_lsp.analysis.names import qualify

    return qualify(base, facts)


def bind(method: FunctionNode, call: ast.Call, judge: _Judge, skip: int = 1) -> _Bound:
    """What a call passes to the method's parameters after `self` (the first `skip`), judged
    by `judge`; empty when `*args`/`**kw` hide it."""
    args = method.args
    if any(isinstance(a, ast.Starred) for a in call.args) or any(
        k.arg is None for k in call.keywords
    ):
        return {}
    params = [p.arg for p in [*args.posonlyargs, *args.args]][skip:]
    passed: dict[str, ast.expr] = dict(zip(params, call.args))
    names = set(params) | {p.arg for p in args.kwonlyargs}
    passed.update({k.arg: k.value for k in call.keywords if k.arg in names})
    bound: _Bound = {}
    for name, expr in passed.items():
        judged = judge(expr)
        if judged is not None:
            bound[name] = judged
    defaults = zip(params[len(params) - len(args.defaults) :], args.defaults)
    for name, default in [*defaults, *zip([p.arg for p in args.kwonlyargs], args.kw_defaults)]:
        if name not in passed and default is not None and _number(default) is not None:
            bound[name] = NUMBER  # a number default: arithmetic with numpy stays numpy
    return bound


def _passed_value(safety: LoadSafety, expr: ast.expr, env: Env) -> Possible | None:
    number = _number(expr)
    if number is not None:
        return number
    return safety.of_expression(expr, env)


passed_value = _passed_value  # what an argument passes, for dataclass_fields
# for handed_objects, which composes what several methods store
add_store = _apply
own_method = _own_method
# for kept_attributes, which checks every store of an attribute
class_chain = _chain
stores_of = _stores
statements_of = _statements
stores_by_name = _opaque


def stored_names(method: FunctionNode) -> frozenset[str]:
    """The attribute names a method stores on anything, or names in a string."""
    return _summary(method)[1]


number_placeholder = _number


def _judge_in(safety: LoadSafety, env: Env) -> _Judge:
    return lambda expr: _passed_value(safety, expr, env)


def _literal(expr: ast.expr) -> Possible | None:
    number = _number(expr)
    if number is not None:
        return number
    return LITERAL if isinstance(expr, ast.Constant) else None


__all__ = [
    "Effects",
    "add_store",
    "own_method",
    "apply_to",
    "bare_uses",
    "bind",
    "class_attribute",
    "init_method",
    "conditional_nodes",
    "defines",
    "initial",
    "method_effects",
    "method_items",
    "method_returns",
    "number_placeholder",
    "passed_value",
    "returns_self",
    "own_nodes",
    "self_env",
    "keys_touched",
    "statement_uses",
    "stored_anywhere",
]
