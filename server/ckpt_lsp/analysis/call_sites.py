"""The calls in the project that construct a class, and what each passes to a parameter.

A Lightning module's hyperparameters are whatever its callers pass: `Model(loss=nn.MSELoss())`
in `train.py` puts a loss module in every checkpoint. The search is by text first (a module
that never names the class has no call of it), then by syntax in the blocks that name it;
a call counts when its callee resolves to the class (here, or through imports and re-exports
in another module of the project index).
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from ckpt_lsp.analysis.assignments import OPAQUE, Binding, Env, LocalClass, LocalDef
from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, dotted_name
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.analysis.indirect_calls import (
    pair_dispatches,
    partial_call,
    registries_of,
    registry_calls,
    registry_object_key,
    tuple_entries,
)
from ckpt_lsp.analysis.key_arms import ruled_out
from ckpt_lsp.analysis.names import qualify
from ckpt_lsp.analysis.nodes import child_nodes, walk
from ckpt_lsp.analysis.spread_keys import Entries, spread_entries

FunctionNode = (ast.FunctionDef, ast.AsyncFunctionDef)
UNKNOWN = object()  # a call passes the parameter through `*args` or `**kwargs`
_SUBCLASS_DEPTH = 2  # subclasses of subclasses that keep the `__init__` they inherit


@dataclass(frozen=True)
class CallSite:
    """One call that constructs the class, with the names bound where it is made."""

    facts: ModuleFacts
    call: ast.Call
    env: Env
    row_offset: int  # of the block whose tree holds the call
    in_function: bool
    func: ast.FunctionDef | ast.AsyncFunctionDef | None = None  # the function making the call
    # `REG[name](...)` of a class registered under one key: the name and that key
    picked_by: tuple[str, str] | None = None
    # `REG[key](...)`: the key expression, and the keys the registry holds the class under
    # (None: not all known)
    key: ast.expr | None = None
    held_under: frozenset[str] | None = None

    @property
    def row(self) -> int:
        return self.call.lineno + self.row_offset

    def argument(self, params: list[ast.arg], positional: int, name: str) -> object:
        """What the call passes for parameter `name`: an expression, None when it leaves the
        parameter to its default, or UNKNOWN (spread in by `*args` / `**kwargs`)."""
        names = [p.arg for p in params]
        index = names.index(name) if name in names else -1
        for i, arg in enumerate(self.call.args):
            if isinstance(arg, ast.Starred):
                if i <= index < positional:
                    return UNKNOWN
                break
            if i == index and index < positional:
                return arg
        spread = False
        for kw in self.call.keywords:
            if kw.arg == name:
                return kw.value
            if kw.arg is None:
                entries = self._literal_dict(kw.value)
                if entries is None:
                    spread = True
                elif name in entries:
                    return entries[name]
        return UNKNOWN if spread else None

    def starred(
        self, params: list[ast.arg], positional: int, name: str
    ) -> tuple[ast.expr, int] | None:
        """`Model(*helper())` passing parameter `name` by position from its one starred
        argument, the last: that argument's value and the element's index in it."""
        names = [p.arg for p in params]
        index = names.index(name) if name in names else -1
        args = self.call.args
        stars = [i for i, a in enumerate(args) if isinstance(a, ast.Starred)]
        if len(stars) != 1 or stars[0] != len(args) - 1 or not stars[0] <= index < positional:
            return None
        star = args[-1]
        return (star.value, index - stars[0]) if isinstance(star, ast.Starred) else None

    @cached_property
    def _assigned(self) -> Counter[str]:
        """How often the function making the call assigns each local (walked once a site)."""
        return _assignments(self.func) if self.func is not None else Counter()

    @cached_property
    def spread(self) -> Entries | None:
        """What the call's `**` spreads may pass (spread_keys.py), worked out once a site."""
        return spread_entries(self.call, self.func, self.facts, self.picked_by)

    def _literal_dict(self, value: ast.expr, hops: int = 0) -> dict[str, ast.expr] | None:
        """The entries of `**CONFIG` when it is a dict display or `dict(k=v)` with constant
        keys (directly, or through a local or module-level name); None when unknown."""
        if isinstance(value, ast.Name) and hops < 3:
            if self.func is not None and self._assigned[value.id] > 1:
                return None  # `kwargs = {...}` in each branch: the flow knows which one holds
            bound = self.env.bindings.get(value.id)
            if bound is None and value.id not in self.env.bindings:
                bound = self.facts.assigns.get(value.id)
            return self._literal_dict(bound, hops + 1) if isinstance(bound, ast.expr) else None
        if isinstance(value, ast.Dict):
            keys = [k.value if isinstance(k, ast.Constant) else None for k in value.keys]
            if all(isinstance(k, str) for k in keys):
                return {str(k): v for k, v in zip(keys, value.values)}
            return None
        if (
            isinstance(value, ast.Call)
            and dotted_name(value.func) == "dict"
            and not value.args
            and all(kw.arg is not None for kw in value.keywords)
        ):
            return {str(kw.arg): kw.value for kw in value.keywords}
        return None


def _assignments(func: ast.FunctionDef | ast.AsyncFunctionDef) -> Counter[str]:
    """How many statements of the function assign each local name."""
    counts: Counter[str] = Counter()
    for node in walk(func):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            counts.update({t.id for t in targets if isinstance(t, ast.Name)})
    return counts


def _env_before(func: ast.FunctionDef | ast.AsyncFunctionDef | None, row: int) -> Env:
    """The local names a function has bound before `row` (parameters are opaque): enough to
    follow `loss = nn.MSELoss(); Model(loss=loss)`."""
    env = Env()
    if func is None:
        return env
    args = func.args
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
        env.bindings[arg.arg] = OPAQUE
    found: list[tuple[int, str, ast.expr | None]] = []  # None: bound to something unknown
    defined: dict[str, Binding] = {}  # nested functions and classes defined before the call
    stack: list[ast.AST] = list(func.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.ClassDef) and node.lineno < row:
            defined[node.name] = LocalClass(node.name)
        elif isinstance(node, FunctionNode) and node.lineno < row:
            defined[node.name] = LocalDef(node.name, node)
        if isinstance(node, (*FunctionNode, ast.ClassDef, ast.Lambda)):
            continue
        if getattr(node, "lineno", row) < row:
            found.extend(_bound_by(node))
        if isinstance(node, ast.If):  # an arm that returns before the call binds nothing for it
            arms = [a for a in (node.body, node.orelse) if not _left_before(a, row)]
            stack.extend([node.test, *(s for arm in arms for s in arm)])
            continue
        stack.extend(child_nodes(node))
    for _, name, value in sorted(found, key=lambda item: item[0]):
        env.bindings[name] = OPAQUE if value is None else value
    for name, local in defined.items():  # `def is_empty(c): ...` then `Model(is_empty=is_empty)`
        if name not in env.bindings:
            env.bindings[name] = local
    return env


def _left_before(arm: list[ast.stmt], row: int) -> bool:
    """An `if` arm that ends in `return` or `raise` before `row`: code at `row` never runs
    after it."""
    last = arm[-1] if arm else None
    return isinstance(last, (ast.Return, ast.Raise)) and (last.end_lineno or last.lineno) < row


def _bound_by(node: ast.AST) -> list[tuple[int, str, ast.expr | None]]:
    """(row, name, value) of what one statement binds; value None when it is not plain."""
    if isinstance(node, ast.Assign):
        unpacked = _unpacked(node)
        if unpacked is not None:
            return unpacked
        plain = len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        return [
            (node.lineno, n.id, node.value if plain else None)
            for target in node.targets
            for n in walk(target)
            if isinstance(n, ast.Name)
        ]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [(node.lineno, node.target.id, node.value)] if node.value is not None else []
    targets: list[ast.expr] = []
    if isinstance(node, (ast.For, ast.AsyncFor)):
        targets = [node.target]
    elif isinstance(node, (ast.With, ast.AsyncWith)):
        targets = [i.optional_vars for i in node.items if i.optional_vars is not None]
    elif isinstance(node, (ast.AugAssign, ast.NamedExpr)):
        targets = [node.target]
    row = getattr(node, "lineno", 0)
    return [
        (row, n.id, None) for target in targets for n in walk(target) if isinstance(n, ast.Name)
    ]


def _unpacked(node: ast.Assign) -> list[tuple[int, str, ast.expr | None]] | None:
    """`x, y = load()`: each name takes element i of what the call returns (`load()[i]`), or
    element i of a tuple display; None when the statement is not such a plain unpacking."""
    if len(node.targets) != 1 or not isinstance(node.targets[0], (ast.Tuple, ast.List)):
        return None
    names = node.targets[0].elts
    if not all(isinstance(n, ast.Name) for n in names):
        return None
    value = node.value
    values: list[ast.expr | None]
    if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(names):
        values = [None if isinstance(e, ast.Starred) else e for e in value.elts]
    elif isinstance(value, ast.Call):
        values = [_element(value, i) for i in range(len(names))]
    else:
        return None
    return [(node.lineno, n.id, v) for n, v in zip(names, values) if isinstance(n, ast.Name)]


def _element(value: ast.expr, index: int) -> ast.expr:
    node = ast.Subscript(value=value, slice=ast.Constant(index), ctx=ast.Load())
    return ast.copy_location(node, value)


def _calls(
    node: ast.AST, name: str, func: ast.FunctionDef | ast.AsyncFunctionDef | None
) -> Iterator[tuple[ast.Call, ast.FunctionDef | ast.AsyncFunctionDef | None]]:
    """Calls whose callee's last name is `name`, with the function they are made in."""
    for child in child_nodes(node):
        if isinstance(child, FunctionNode):
            yield from _calls(child, name, child)
            continue
        if isinstance(child, ast.Call):
            callee = dotted_name(child.func)
            if callee == name or callee.endswith("." + name):
                yield child, func
        yield from _calls(child, name, func)


def _default_class_calls(
    tree: ast.AST, name: str
) -> list[tuple[ast.Call, ast.FunctionDef | ast.AsyncFunctionDef | None]]:
    """`def build(cfg, cls=LaneDetector): return cls(...)`: the calls of a parameter whose
    default is the class, as calls of the class (what the callers pass instead, a subclass
    mostly, is built with the same arguments)."""
    found: list[tuple[ast.Call, ast.FunctionDef | ast.AsyncFunctionDef | None]] = []
    for func in walk(tree):
        if not isinstance(func, FunctionNode):
            continue
        args = func.args
        positional = [*args.posonlyargs, *args.args]
        pairs = [
            *zip(positional[len(positional) - len(args.defaults) :], args.defaults),
            *zip(args.kwonlyargs, args.kw_defaults),
        ]
        params = {
            p.arg: default
            for p, default in pairs
            if default is not None
            and (dotted_name(default) == name or dotted_name(default).endswith("." + name))
        }
        if not params:
            continue
        for call in walk(func):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name):
                default = params.get(call.func.id)
                if default is not None:
                    built = ast.copy_location(
                        ast.Call(func=default, args=call.args, keywords=call.keywords), call
                    )
                    found.append((built, func))
    return found


class CallSites:
    """Finds the calls that construct a class; the index answers for other modules."""

    def __init__(self, index: ProjectIndex | None) -> None:
        self.index = index

    def of(self, facts: ModuleFacts, cls: ClassFacts, depth: int = 0) -> list[CallSite]:
        """The calls that build `cls`, and those that build a subclass that keeps its
        `__init__` (they pass their arguments to it)."""
        modules = [facts]
        if self.index is not None:
            modules += self.index.mentioning(cls.name, exclude=facts.path)
        sites: list[CallSite] = list(_own_factories(facts, cls))
        for where in modules:
            sites.extend(self._in_module(where, facts, cls))
            sites.extend(self._super_calls(where, facts, cls))
            if depth < _SUBCLASS_DEPTH:
                for sub in self._subclasses(where, facts, cls):
                    sites.extend(self.of(where, sub, depth + 1))
        return sites

    def _subclasses(
        self, where: ModuleFacts, home: ModuleFacts, cls: ClassFacts
    ) -> Iterator[ClassFacts]:
        """Classes of `where` deriving directly from `cls` without an `__init__` of their own."""
        for candidate in where.classes.values():
            if "__init__" not in candidate.method_names and self._derives(
                where, home, cls, candidate
            ):
                yield candidate

    def _super_calls(
        self, where: ModuleFacts, home: ModuleFacts, cls: ClassFacts
    ) -> Iterator[CallSite]:
        """`super().__init__(lr=lr, time_bins=edges)` in the `__init__` of a class deriving
        directly from `cls`: it passes `cls`'s parameters as a constructing call does."""
        for candidate in where.classes.values():
            if "__init__" not in candidate.method_names:
                continue
            if not self._derives(where, home, cls, candidate):
                continue
            init = candidate.method("__init__")
            if init is None:
                continue
            for node in walk(init):
                if isinstance(node, ast.Call) and _super_init(node):
                    env = _env_before(init, node.lineno)
                    yield CallSite(where, node, env, candidate.parsed.row_offset, True, init)

    def _derives(
        self, where: ModuleFacts, home: ModuleFacts, cls: ClassFacts, candidate: ClassFacts
    ) -> bool:
        """Whether `candidate` (of `where`) names `cls` (of `home`) among its bases."""
        named = [b for b in candidate.bases if b.rsplit(".", 1)[-1] == cls.name]
        if not named or candidate is cls:
            return False
        for base in named:
            if where is home and base == cls.name:
                return True
            found = (
                self.index.resolve_member(qualify(base, where), where.path)
                if self.index is not None
                else None
            )
            if found is not None and found[0].path == home.path and found[1] == cls.name:
                return True
        return False

    def _in_module(
        self, where: ModuleFacts, home: ModuleFacts, cls: ClassFacts
    ) -> Iterator[CallSite]:
        named = re.compile(rf"(?<![\w.]){re.escape(cls.name)}\b|\.{re.escape(cls.name)}\b")
        registries = self._registries(where, home, cls)
        for parsed in where.blocks:
            text = parsed.block.text
            names = cls.name in text and bool(named.search(text))  # `Lit1` is no `Lit`
            picking = [r for r in registries if r in text]
            tree = parsed.tree
            if (not names and not picking) or tree is None:
                continue
            found = list(_calls(tree, cls.name, None)) if names else []
            found += _default_class_calls(tree, cls.name) if names else []
            partials = _calls(tree, "partial", None) if names and "partial" in text else ()
            for call, func in partials:
                fixed = partial_call(call, where)  # `partial(Lit, lr=...)`
                found += [(fixed, func)] if fixed is not None else []
            for call, func in found:
                if not self._constructs(where, home, cls, call, func):
                    continue
                env = _env_before(func, call.lineno)
                yield CallSite(where, call, env, parsed.row_offset, func is not None, func)
            for call, picked, func in (
                registry_calls(tree, list(picking)) if picking else ()
            ):  # `MODELS[k](...)`
                if not _may_build(call, picked, registries, cls) or _narrowed(call, func, cls):
                    continue
                picked_by = _picked_by(picked, registries)
                if func is not None and picked_by and id(call) in ruled_out(func, picked_by):
                    continue  # under `if name == "other":`, or after the arm its key returns in
                env = _env_before(func, call.lineno)
                paired = _paired_spread(where, call, picked, registries)
                registry = picked.value if isinstance(picked, ast.Subscript) else None
                yield CallSite(
                    where,
                    paired,
                    env,
                    parsed.row_offset,
                    func is not None,
                    func,
                    picked_by,
                    picked.slice if isinstance(picked, ast.Subscript) else None,
                    registries.get(registry.id) if isinstance(registry, ast.Name) else None,
                )

    def _registries(
        self, where: ModuleFacts, home: ModuleFacts, cls: ClassFacts
    ) -> dict[str, frozenset[str] | None]:
        """The module-level registries of `where` that hold the class, with the keys it is
        held under (None: not all known): dict displays one value of which is the class, and,
        in its own module, the dict a decorator of the class stores it in
        (`@register("unet")` of a `register` doing `MODELS[name] = cls`)."""
        found: dict[str, frozenset[str] | None] = {}
        for registry in registries_of(where, cls.name):
            display = where.assigns[registry]
            assert isinstance(display, ast.Dict)
            keys: set[str] = set()
            for key, value in zip(display.keys, display.values):
                entry = ast.Call(func=value, args=[], keywords=[])
                if self._constructs(where, home, cls, entry, None):
                    written = key.value if isinstance(key, ast.Constant) else None
                    keys.add(written if isinstance(written, str) else "")
            if keys:
                found[registry] = None if "" in keys else frozenset(keys)
        if where is home:
            found.update(decorator_registries(home, cls.decorators))
        return found

    def _constructs(
        self,
        where: ModuleFacts,
        home: ModuleFacts,
        cls: ClassFacts,
        call: ast.Call,
        func: ast.FunctionDef | ast.AsyncFunctionDef | None,
    ) -> bool:
        dotted = dotted_name(call.func)
        if where is home and dotted == cls.name:
            return True
        head = dotted.split(".")[0]
        if func is not None and head in _local_names(func):
            return False
        qualified = qualify(dotted, where)
        if self.index is None or "." not in qualified:
            return False
        found = self.index.resolve_member(qualified, where.path)
        return found is not None and found[0].path == home.path and found[1] == cls.name


def decorator_registries(
    facts: ModuleFacts, decorators: list[ast.expr]
) -> dict[str, frozenset[str] | None]:
    """`@register("unet")` of a module-level `register` whose body stores into a module-level
    dict (`MODELS[name] = cls`), or into the dict the decorator is given (`@register(MODELS,
    "unet")` storing `table[name] = cls`): that dict, and the key the decorator gives (None
    when it is not a string literal)."""
    found: dict[str, frozenset[str] | None] = {}
    for decorator in decorators:
        held = registry_object_key(facts, decorator)
        if held is not None:  # `@MODELS.register("unet")` of a module-level Registry object
            found[held[0]] = held[1]
            continue
        if not isinstance(decorator, ast.Call) or not isinstance(decorator.func, ast.Name):
            continue
        maker = facts.functions.get(decorator.func.id)
        if maker is None:
            continue
        params = [a.arg for a in [*maker.args.posonlyargs, *maker.args.args]]
        given = dict(zip(params, decorator.args))
        given.update({k.arg: k.value for k in decorator.keywords if k.arg is not None})
        for node in walk(maker):
            target = node.targets[0] if isinstance(node, ast.Assign) else None
            if not isinstance(target, ast.Subscript) or not isinstance(target.value, ast.Name):
                continue
            table = given.get(target.value.id, target.value)  # a parameter: what is passed
            if not isinstance(table, ast.Name) or not _module_dict(facts, table.id):
                continue
            named = target.slice
            key = given.get(named.id) if isinstance(named, ast.Name) else None
            if key is None:
                key = decorator.args[0] if decorator.args else None
            written = key.value if isinstance(key, ast.Constant) else None
            found[table.id] = frozenset({written}) if isinstance(written, str) else None
    return found


def _paired_spread(
    facts: ModuleFacts,
    call: ast.Call,
    picked: ast.expr,
    registries: dict[str, frozenset[str] | None],
) -> ast.Call:
    """`MODULES[name](**BUILDERS[name](cfg))`: the same key picks the class and the function
    making its arguments, so for a class held under one key the spread is what the function
    held under that key in the other registry returns (`**wave_kwargs(cfg)`). Else the call."""
    if not isinstance(picked, ast.Subscript) or not isinstance(picked.value, ast.Name):
        return call
    held = registries.get(picked.value.id)
    if held is None or len(held) != 1:
        return call
    (key,) = held
    keywords = []
    for keyword in call.keywords:
        value = keyword.value
        if (
            keyword.arg is None
            and isinstance(value, ast.Call)
            and isinstance(value.func, ast.Subscript)
            and isinstance(value.func.value, ast.Name)
            and ast.dump(value.func.slice) == ast.dump(picked.slice)
        ):
            maker = _registered_function(facts, value.func.value.id, key)
            if maker is not None:
                made = ast.Call(
                    func=ast.Name(id=maker, ctx=ast.Load()),
                    args=value.args,
                    keywords=value.keywords,
                )
                keyword = ast.keyword(arg=None, value=ast.copy_location(made, value))
        keywords.append(keyword)
    return ast.copy_location(ast.Call(func=call.func, args=call.args, keywords=keywords), call)


def _registered_function(facts: ModuleFacts, registry: str, key: str) -> str | None:
    """The module function `registry` holds under `key`: a dict display's entry, or the
    function a decorator registers there (`@builder("wave")` storing into BUILDERS)."""
    display = facts.assigns.get(registry)
    if isinstance(display, ast.Dict):
        for written, value in zip(display.keys, display.values):
            if isinstance(written, ast.Constant) and written.value == key:
                name = dotted_name(value)
                return name if name in facts.functions else None
    quoted = re.escape(key)
    pattern = rf"^@\w+\((?:\w+\s*,\s*)?[\"']{quoted}[\"']\)\s*\n\s*def\s+(\w+)"
    for name in re.findall(pattern, facts.text, re.M):
        func = facts.functions.get(name)
        if func is not None and decorator_registries(facts, func.decorator_list).get(
            registry
        ) == frozenset({key}):
            return str(name)
    return None


def _module_dict(facts: ModuleFacts, name: str) -> bool:
    """A module-level name bound to a dict display (`MODELS = {}`, `A, B = {}, {}`)."""
    return isinstance(facts.assigns.get(name), ast.Dict)


def _may_build(
    call: ast.Call,
    picked: ast.expr,
    registries: dict[str, frozenset[str] | None],
    cls: ClassFacts,
) -> bool:
    """Whether `REG[k](...)` may build the class: `k` is not a string the class is not held
    under, and every keyword the call passes is a parameter of its `__init__` (a call meant
    for another class of the registry passes its own)."""
    name = picked.value if isinstance(picked, ast.Subscript) else None
    held = registries.get(name.id) if isinstance(name, ast.Name) else None
    key = picked.slice if isinstance(picked, ast.Subscript) else None
    keys = [key.body, key.orelse] if isinstance(key, ast.IfExp) else [key]  # `R["a" if p else "b"]`
    written = [k.value for k in keys if isinstance(k, ast.Constant)]
    if held is not None and len(written) == len(keys) and not set(written) & held:
        return False
    init = cls.method("__init__")
    if init is None:
        return True
    args = init.args
    positional = [a.arg for a in [*args.posonlyargs, *args.args][1:]]  # `self` aside
    given = call.args if not any(isinstance(a, ast.Starred) for a in call.args) else []
    if args.vararg is None and len(given) > len(positional):
        return False  # more positional arguments than it takes
    taken = set(positional[: len(given)])
    if any(k.arg in taken for k in call.keywords):
        return False  # `cls(cfg, vocab_size=n)` of a class whose first parameter is vocab_size
    accepted = {*positional, *(a.arg for a in args.kwonlyargs)}
    return args.kwarg is not None or all(k.arg is None or k.arg in accepted for k in call.keywords)


def _picked_by(
    picked: ast.expr, registries: dict[str, frozenset[str] | None]
) -> tuple[str, str] | None:
    """`REG[name]` of a registry holding the class under one key: `name` and that key."""
    if not isinstance(picked, ast.Subscript) or not isinstance(picked.value, ast.Name):
        return None
    keys = registries.get(picked.value.id)
    if keys is None or len(keys) != 1 or not isinstance(picked.slice, ast.Name):
        return None
    return picked.slice.id, next(iter(keys))


def _narrowed(
    call: ast.Call, func: ast.FunctionDef | ast.AsyncFunctionDef | None, cls: ClassFacts
) -> bool:
    """Whether the call of a registry entry held in a local sits under `if entry is Other:`
    (or `==`) naming another class: that branch builds `Other` only."""
    if func is None or not isinstance(call.func, ast.Name):
        return False
    alias = call.func.id
    for node in walk(func):
        if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
            continue
        test = node.test
        if not (
            isinstance(test.left, ast.Name)
            and test.left.id == alias
            and len(test.ops) == 1
            and isinstance(test.ops[0], (ast.Is, ast.Eq))
        ):
            continue
        other = dotted_name(test.comparators[0]).rsplit(".", 1)[-1]
        inside = any(n is call for stmt in node.body for n in walk(stmt))
        if other and other != cls.name and inside:
            return True
    return False


def _super_init(call: ast.Call) -> bool:
    """`super().__init__(...)` (with or without `super`'s arguments)."""
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "__init__"
        and isinstance(func.value, ast.Call)
        and isinstance(func.value.func, ast.Name)
        and func.value.func.id == "super"
    )


def function_calls(
    facts: ModuleFacts, func: ast.FunctionDef | ast.AsyncFunctionDef
) -> list[CallSite]:
    """The calls of a module-level function of `facts` in that module (by its plain name, not
    where a local shadows it): a factory's callers, which pass what it forwards."""
    if facts.functions.get(func.name) is not func:
        return []
    found: list[CallSite] = []
    rows = tuple_entries(facts, func.name)
    for parsed in facts.blocks:
        tree = parsed.tree
        if tree is None:
            continue
        if rows and any(r in parsed.block.text for r in rows):
            for call, dispatcher in pair_dispatches(tree, rows, func.name):
                env = _env_before(dispatcher, call.lineno)
                found.append(CallSite(facts, call, env, parsed.row_offset, True, dispatcher))
        if func.name not in parsed.block.text:
            continue
        for call, caller in _calls(tree, func.name, None):
            if dotted_name(call.func) != func.name or caller is func:
                continue
            if caller is not None and func.name in _local_names(caller):
                continue
            env = _env_before(caller, call.lineno)
            found.append(CallSite(facts, call, env, parsed.row_offset, caller is not None, caller))
    return found + _dispatched(facts, func)


def _dispatched(facts: ModuleFacts, func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[CallSite]:
    """`BUILDERS[cfg.family](cfg)` of a registry holding the function (a dict display of
    functions, or the dict a decorator of it fills: `@builder("rul")`): each such call, when
    its key is not a string the function is not held under."""
    registries: dict[str, frozenset[str] | None] = dict.fromkeys(registries_of(facts, func.name))
    registries.update(decorator_registries(facts, func.decorator_list))
    if not registries:
        return []
    found: list[CallSite] = []
    for parsed in facts.blocks:
        tree = parsed.tree
        if tree is None or not any(r in parsed.block.text for r in registries):
            continue
        for call, picked, caller in registry_calls(tree, list(registries)):
            table = picked.value if isinstance(picked, ast.Subscript) else None
            held = registries.get(table.id) if isinstance(table, ast.Name) else None
            key = picked.slice if isinstance(picked, ast.Subscript) else None
            written = key.value if isinstance(key, ast.Constant) else None
            if held is not None and isinstance(written, str) and written not in held:
                continue
            if caller is func:
                continue
            env = _env_before(caller, call.lineno)
            found.append(CallSite(facts, call, env, parsed.row_offset, caller is not None, caller))
    return found


def classmethod_calls(
    facts: ModuleFacts, func: ast.FunctionDef | ast.AsyncFunctionDef
) -> list[CallSite]:
    """The calls `Cls.from_config(...)` in the module of a classmethod of its class `Cls`
    (named so): a factory method's callers, which pass what it forwards to `cls(...)`."""
    if "classmethod" not in [dotted_name(d) for d in func.decorator_list]:
        return []
    owner = next((c for c in facts.classes.values() if c.method(func.name) is func), None)
    if owner is None:
        return []
    callee = f"{owner.name}.{func.name}"
    found: list[CallSite] = []
    for parsed in facts.blocks:
        tree = parsed.tree
        if callee not in parsed.block.text or tree is None:
            continue
        for call, caller in _calls(tree, func.name, None):
            if dotted_name(call.func) != callee or caller is func:
                continue
            if caller is not None and owner.name in _local_names(caller):
                continue
            env = _env_before(caller, call.lineno)
            found.append(CallSite(facts, call, env, parsed.row_offset, caller is not None, caller))
    return found


def _own_factories(facts: ModuleFacts, cls: ClassFacts) -> Iterator[CallSite]:
    """`cls(...)` in the class's own classmethods (`from_config(cls, cfg)`): they build it."""
    for method in cls.methods_mentioning("classmethod"):
        decorators = [dotted_name(d) for d in method.decorator_list]
        args = method.args.posonlyargs + method.args.args
        if "classmethod" not in decorators or not args:
            continue
        for call, func in _calls(method, args[0].arg, method):
            if isinstance(call.func, ast.Name) and func is method:
                env = _env_before(method, call.lineno)
                yield CallSite(facts, call, env, cls.parsed.row_offset, True, method)


def _local_names(func: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    args = func.args
    names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    for node in walk(func):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names
