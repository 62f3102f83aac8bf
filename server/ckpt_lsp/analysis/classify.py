"""Classify: what the value of each `self.x = ...` assignment holds.

Three kinds of evidence, in order of cost:
- syntax: lambdas, nested functions and classes, generator expressions, and
  containers or holders (`functools.partial`, `map`, `defaultdict`) of those;
- names: calls resolved to qualified names through import aliases and looked up
  in the hazard catalog (data), methods of hazards through the catalog's types;
- flow: local variables, `with ... as` targets, `setattr`, tuple and annotated
  targets, generator methods, and factories or classes of the project (same file
  or another, through the index), each followed a bounded number of steps.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Union

from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, ParsedBlock, is_known_module
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.analysis.names import qualify, star_candidates
from ckpt_lsp.catalog import ALL_PATHS, Catalog, Hazard

_CALLABLE_BREAKS = ("pickle", "torch.save", "spawn")

_OBJECT_DTYPES = frozenset({"object", "O", "numpy.object_", "builtins.object"})
_DICT_VIEWS = frozenset({"keys", "values", "items"})
# nn.Module methods that return generators; storing their result is a classic slip.
_GENERATOR_METHODS = frozenset(
    {
        "parameters",
        "named_parameters",
        "buffers",
        "named_buffers",
        "children",
        "named_children",
        "modules",
        "named_modules",
    }
)
_MAX_DEPTH = 4
# Holders that iterate their argument into a new container: they keep the elements,
# not the iterator, so `list(self.parameters())` is fine.
_CONSUMING = frozenset(
    {
        "builtins.list",
        "builtins.tuple",
        "builtins.set",
        "builtins.frozenset",
        "builtins.sorted",
        "builtins.dict",
        "collections.deque",
        "collections.OrderedDict",
        "collections.Counter",
    }
)


def lambda_hazard() -> Hazard:
    return Hazard("CKPT003", "a lambda", _CALLABLE_BREAKS)


def generator_hazard(what: str = "a generator") -> Hazard:
    return Hazard("CKPT006", what, ALL_PATHS)


OBJECT_ARRAY = Hazard("CKPT004", "an object-dtype numpy array", ("weights_only",))


@dataclass(frozen=True)
class LocalDef:
    name: str
    node: ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class LocalClass:
    name: str


@dataclass(frozen=True)
class WithTarget:
    expr: ast.expr


class _Opaque:
    """A name bound to something we cannot know (a parameter, a loop variable)."""


OPAQUE = _Opaque()
Binding = Union[ast.expr, LocalDef, LocalClass, WithTarget, _Opaque]


@dataclass
class Env:
    """Names bound so far in one function, in source order."""

    bindings: dict[str, Binding] = field(default_factory=dict)
    imports: dict[str, str] = field(default_factory=dict)
    modules: set[str] = field(default_factory=set)
    # values put into a local container after it was bound: `h = {}; h["f"] = open(p)`
    contents: dict[str, list[ast.expr]] = field(default_factory=dict)


@dataclass(frozen=True)
class Assignment:
    """One `self.<attribute> = value` (or setattr, or tuple/annotated target) in a method."""

    attribute: str
    value: ast.expr | None  # None when the value cannot be separated (tuple from a call)
    target: ast.AST  # node whose range a diagnostic underlines
    statement: ast.stmt
    method: str
    env: Env
    mutation: bool = False  # `self.x.append(v)`, `self.x[k] = v`: v goes into the attribute


@dataclass(frozen=True)
class AttrHazard:
    attribute: str
    hazard: Hazard
    assignment: Assignment
    parsed: ParsedBlock


def _is_self(expr: ast.expr, self_name: str) -> bool:
    return isinstance(expr, ast.Name) and expr.id == self_name


def self_name_of(func: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    args = func.args.posonlyargs + func.args.args
    if not args:
        return None
    for deco in func.decorator_list:
        if isinstance(deco, ast.Name) and deco.id in ("staticmethod", "classmethod"):
            return None
    return args[0].arg


_GENERATOR_ATTR = "_ckpt_is_generator"


def is_generator(func: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> bool:
    """Whether the function's own body yields (nested functions do not count). Kept on
    the node: a batch run asks it of the same factory for every file that calls it
    (1,787 times for 448 functions over the bench corpus)."""
    known: bool | None = getattr(func, _GENERATOR_ATTR, None)
    if known is not None:
        return known
    stack: list[ast.AST] = list(func.body) if isinstance(func.body, list) else [func.body]
    found = False
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            found = True
            break
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        stack.extend(ast.iter_child_nodes(node))
    setattr(func, _GENERATOR_ATTR, found)
    return found


def walk_function(
    func: ast.FunctionDef | ast.AsyncFunctionDef, package: str, self_name: str | None
) -> tuple[list[Assignment], list[tuple[ast.expr, Env]]]:
    """Self-assignments and return values of one function, each with the names bound before it."""
    env = Env()
    args = func.args
    positional = args.posonlyargs + args.args
    for arg in positional + args.kwonlyargs:
        env.bindings[arg.arg] = OPAQUE
    for extra in (args.vararg, args.kwarg):
        if extra is not None:
            env.bindings[extra.arg] = OPAQUE
    # A default is what the parameter holds when the caller leaves it out (and `cls()`
    # does): `def __init__(self, act=lambda x: x)` stores a lambda.
    for arg, default in zip(positional[len(positional) - len(args.defaults) :], args.defaults):
        env.bindings[arg.arg] = default
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults):
        if kw_default is not None:
            env.bindings[arg.arg] = kw_default
    assignments: list[Assignment] = []
    returns: list[tuple[ast.expr, Env]] = []
    _walk_body(func.body, env, package, self_name, func.name, assignments, returns)
    return assignments, returns


def _snapshot(env: Env) -> Env:
    contents = {name: list(values) for name, values in env.contents.items()}
    return Env(dict(env.bindings), dict(env.imports), set(env.modules), contents)


def _bind_target(
    target: ast.expr,
    value: ast.expr | None,
    stmt: ast.stmt,
    env: Env,
    self_name: str | None,
    method: str,
    out: list[Assignment],
) -> None:
    if isinstance(target, ast.Name):
        env.bindings[target.id] = value if value is not None else OPAQUE
        env.contents.pop(target.id, None)
    elif (
        isinstance(target, ast.Subscript)
        and isinstance(target.value, ast.Name)
        and target.value.id in env.bindings
        and value is not None
    ):
        env.contents.setdefault(target.value.id, []).append(value)
    elif isinstance(target, ast.Attribute) and self_name and _is_self(target.value, self_name):
        out.append(Assignment(target.attr, value, target, stmt, method, _snapshot(env)))
    elif (
        isinstance(target, ast.Attribute)
        and isinstance(target.value, ast.Attribute)
        and self_name
        and _is_self(target.value.value, self_name)
        and value is not None
    ):  # self.ns.sink = open(...): the object in self.ns now holds the file
        out.append(
            Assignment(target.value.attr, value, target.value, stmt, method, _snapshot(env), True)
        )
    elif (
        isinstance(target, ast.Subscript)
        and isinstance(target.value, ast.Attribute)
        and self_name
        and _is_self(target.value.value, self_name)
        and value is not None
    ):
        out.append(
            Assignment(target.value.attr, value, target.value, stmt, method, _snapshot(env), True)
        )
    elif isinstance(target, (ast.Tuple, ast.List)):
        values: list[ast.expr | None]
        if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
            values = list(value.elts)
        elif isinstance(value, ast.Call):
            # `self.sock, self.port = _bind()`: element i of what the call returns
            values = [_element(value, i) for i in range(len(target.elts))]
        else:
            values = [None] * len(target.elts)
        for sub, sub_value in zip(target.elts, values):
            if isinstance(sub, ast.Starred):
                sub = sub.value
                sub_value = None
            _bind_target(sub, sub_value, stmt, env, self_name, method, out)


def _property_stores(cls: ClassFacts, assignment: Assignment) -> list[Assignment]:
    """`self.conn = x` where `conn` is a property: the value lands where its setter stores
    its argument (`self._conn = value`), and that attribute is what __dict__ holds."""
    if assignment.mutation:
        return []
    out: list[Assignment] = []
    for stmt in cls.methods_mentioning("setter"):
        if not isinstance(stmt, ast.FunctionDef) or len(stmt.args.args) < 2:
            continue
        if not any(
            isinstance(d, ast.Attribute)
            and d.attr == "setter"
            and _dotted(d.value) == assignment.attribute
            for d in stmt.decorator_list
        ):
            continue
        self_arg, value_arg = stmt.args.args[0].arg, stmt.args.args[1].arg
        for node in ast.walk(stmt):
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Name)
                and node.value.id == value_arg
            ):
                for target in node.targets:
                    if (
                        isinstance(target, ast.Attribute)
                        and _is_self(target.value, self_arg)
                        and target.attr != assignment.attribute
                    ):
                        out.append(
                            Assignment(
                                target.attr,
                                assignment.value,
                                target,
                                node,
                                stmt.name,
                                assignment.env,
                            )
                        )
    return out


def _class_level_value(cls: ClassFacts, name: str) -> ast.expr | None:
    for stmt in cls.class_level():
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in stmt.targets
        ):
            return stmt.value
    return None


def _element(value: ast.expr, index: int) -> ast.expr:
    """`value[index]` as a node, placed where `value` is (for positions)."""
    node = ast.Subscript(value=value, slice=ast.Constant(index), ctx=ast.Load())
    return ast.copy_location(node, value)


def _parents(func: ast.AST) -> dict[int, ast.AST]:
    """Child -> parent map of a function, built once per node (kept on the node)."""
    cached: dict[int, ast.AST] | None = getattr(func, "_ckpt_parents", None)
    if cached is None:
        cached = {id(c): n for n in ast.walk(func) for c in ast.iter_child_nodes(n)}
        func._ckpt_parents = cached  # type: ignore[attr-defined]
    return cached


def _mentions_attr(test: ast.expr, attribute: str) -> bool:
    """`self.x is None`, `not self.x`, `not hasattr(self, "x")`: a lazy-initialization guard."""
    for node in ast.walk(test):
        if isinstance(node, ast.Attribute) and node.attr == attribute:
            return True
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("hasattr", "getattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value == attribute
        ):
            return True
    return False


def _guarded(
    node: ast.AST, method: ast.AST, parents: dict[int, ast.AST], attributes: set[str]
) -> bool:
    """Whether `node` runs only under a test of one of the attributes (a lazy-open guard)."""
    current = parents.get(id(node))
    while current is not None and current is not method:
        if isinstance(current, (ast.If, ast.While)) and any(
            _mentions_attr(current.test, a) for a in attributes
        ):
            return True
        current = parents.get(id(current))
    return False


def _self_targets(func: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(func):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            names.add(node.attr)
    return names


def _lazily_called(cls: ClassFacts, name: str) -> bool:
    """A helper (`self._open()`) called only under guards on what it assigns, never from
    __init__: the lazy-open idiom spread over two methods."""
    helper = cls.method(name)
    if helper is None:
        return False
    assigned = _self_targets(helper)
    calls = 0
    for method in cls.methods_mentioning(name):
        if method is helper:
            continue
        parents: dict[int, ast.AST] | None = None
        for node in ast.walk(method):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == name
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "self"
            ):
                if method.name == "__init__":
                    return False
                parents = parents if parents is not None else _parents(method)
                if not _guarded(node, method, parents, assigned):
                    return False
                calls += 1
    return calls > 0


def _persists(cls: ClassFacts, assignment: Assignment, ctx: _Ctx) -> bool:
    """Whether a hazardous assignment can still be in the state when the object is pickled.

    Not when the same method later replaces it unconditionally (`self.tmp = open(p)`, read,
    `self.tmp = None`), nor when it is the lazy-open idiom outside __init__
    (`if self._file is None: self._file = h5py.File(...)` in __getitem__), which is how
    per-worker handles are meant to be made.
    """
    method = cls.method(assignment.method)
    if method is None or assignment.mutation:
        return True
    attribute = assignment.attribute
    parents = _parents(method)
    if assignment.method != "__init__":
        if _guarded(assignment.statement, method, parents, {attribute}):
            return False
        if _lazily_called(cls, assignment.method):
            return False
    for stmt in method.body:
        if stmt.lineno <= assignment.statement.lineno:
            continue
        if isinstance(stmt, ast.Delete) and any(
            isinstance(t, ast.Attribute) and t.attr == attribute for t in stmt.targets
        ):
            return False
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if any(
                isinstance(t, ast.Attribute)
                and t.attr == attribute
                and isinstance(t.value, ast.Name)
                and t.value.id == "self"
                for t in targets
            ):
                return ctx.classify(stmt.value) is not None
    return True


_SETATTR = frozenset({"setattr", "object.__setattr__"})
# Methods that put their argument into the container they are called on.
_MUTATORS = frozenset({"append", "extend", "add", "insert", "appendleft", "update", "setdefault"})


def _registers_hook(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Call)
        and isinstance(stmt.value.func, ast.Attribute)
        and _is_hook_registration(stmt.value.func.attr)
    )


def _is_hook_registration(method: str) -> bool:
    return method.startswith("register_") and method.endswith("hook")


def _self_root(expr: ast.expr, self_name: str) -> ast.Attribute | None:
    """The `self.x` an expression like `self.x[0].layer` starts from."""
    while isinstance(expr, (ast.Subscript, ast.Attribute)):
        if isinstance(expr, ast.Attribute) and _is_self(expr.value, self_name):
            return expr
        expr = expr.value
    return None


def _record_call(
    stmt: ast.stmt, call: ast.Call, env: Env, self_name: str, method: str, out: list[Assignment]
) -> None:
    """`setattr(self, "x", v)` and `self.x.append(v)` as assignments of the attribute."""
    func = call.func
    name = _dotted(func)
    if (
        isinstance(func, ast.Attribute)
        and func.attr in _MUTATORS
        and isinstance(func.value, ast.Name)
        and func.value.id in env.bindings
    ):  # items.append(lambda: 0) on a local list that self.x receives later
        values = list(call.args[-1:]) + [kw.value for kw in call.keywords]
        if func.attr == "extend" and call.args:
            values = [call.args[0]]
        env.contents.setdefault(func.value.id, []).extend(values)
        return
    if (
        name in _SETATTR
        and len(call.args) >= 3
        and _is_self(call.args[0], self_name)
        and isinstance(call.args[1], ast.Constant)
        and isinstance(call.args[1].value, str)
    ):
        attr = call.args[1].value
        out.append(Assignment(attr, call.args[2], call.args[1], stmt, method, _snapshot(env)))
        return
    if isinstance(func, ast.Attribute) and _is_hook_registration(func.attr):
        # self.backbone[0].register_forward_hook(hook): the hook lives in self.backbone
        root = _self_root(func.value, self_name)
        if root is not None:
            for value in [*call.args, *(kw.value for kw in call.keywords)]:
                out.append(Assignment(root.attr, value, root, stmt, method, _snapshot(env), True))
        return
    if (
        isinstance(func, ast.Attribute)
        and func.attr in _MUTATORS
        and isinstance(func.value, ast.Attribute)
        and _is_self(func.value.value, self_name)
    ):
        values = list(call.args[-1:]) + [kw.value for kw in call.keywords]
        if func.attr == "extend" and call.args:
            values = [call.args[0]]
        for value in values:
            out.append(
                Assignment(func.value.attr, value, func.value, stmt, method, _snapshot(env), True)
            )


def _walk_body(
    body: list[ast.stmt],
    env: Env,
    package: str,
    self_name: str | None,
    method: str,
    out: list[Assignment],
    returns: list[tuple[ast.expr, Env]],
) -> None:
    from ckpt_lsp.analysis.facts import record_import

    for stmt in body:
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                _bind_target(target, stmt.value, stmt, env, self_name, method, out)
        elif isinstance(stmt, ast.AnnAssign):
            if stmt.value is not None:
                _bind_target(stmt.target, stmt.value, stmt, env, self_name, method, out)
        elif isinstance(stmt, ast.AugAssign):
            target = stmt.target  # self.hooks += [lambda m: m]
            if (
                isinstance(target, ast.Attribute)
                and self_name
                and _is_self(target.value, self_name)
            ):
                out.append(
                    Assignment(target.attr, stmt.value, target, stmt, method, _snapshot(env), True)
                )
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            _record_call(stmt, stmt.value, env, self_name or "", method, out)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            env.bindings[stmt.name] = LocalDef(stmt.name, stmt)
        elif isinstance(stmt, ast.ClassDef):
            env.bindings[stmt.name] = LocalClass(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            record_import(stmt, package, env.imports, env.modules)
            for alias in stmt.names:
                env.bindings.pop((alias.asname or alias.name).split(".")[0], None)
        elif isinstance(stmt, ast.Return) and stmt.value is not None:
            returns.append((stmt.value, _snapshot(env)))
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                if item.optional_vars is not None:
                    if isinstance(item.optional_vars, ast.Name):
                        env.bindings[item.optional_vars.id] = WithTarget(item.context_expr)
                    else:
                        _bind_target(item.optional_vars, None, stmt, env, self_name, method, out)
            _walk_body(stmt.body, env, package, self_name, method, out, returns)
        elif isinstance(stmt, (ast.For, ast.AsyncFor)):
            _bind_target(stmt.target, None, stmt, env, self_name, method, out)
            _walk_body(stmt.body, env, package, self_name, method, out, returns)
            _walk_body(stmt.orelse, env, package, self_name, method, out, returns)
        elif isinstance(stmt, (ast.If, ast.While)):
            _walk_body(stmt.body, env, package, self_name, method, out, returns)
            _walk_body(stmt.orelse, env, package, self_name, method, out, returns)
        elif isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
            _walk_body(stmt.body, env, package, self_name, method, out, returns)  # type: ignore[attr-defined]
            for handler in stmt.handlers:  # type: ignore[attr-defined]
                if handler.name:
                    env.bindings[handler.name] = OPAQUE
                _walk_body(handler.body, env, package, self_name, method, out, returns)
            _walk_body(stmt.orelse, env, package, self_name, method, out, returns)  # type: ignore[attr-defined]
            _walk_body(stmt.finalbody, env, package, self_name, method, out, returns)  # type: ignore[attr-defined]
        elif type(stmt).__name__ == "Match":
            for case in stmt.cases:  # type: ignore[attr-defined]
                _walk_body(case.body, env, package, self_name, method, out, returns)


def class_assignments(facts: ModuleFacts, cls: ClassFacts) -> list[Assignment]:
    """Every self-assignment in every method of the class, `__init__` first."""
    methods = list(cls.assigning_methods())
    methods.sort(key=lambda m: (m.name != "__init__", m.lineno))
    result: list[Assignment] = []
    for method in methods:
        self_name = self_name_of(method)
        if self_name is None:
            continue
        assignments, _ = walk_function(method, facts.package, self_name)
        # `self.__dict__[k] = v` stores under a key, not in an attribute named `__dict__`:
        # a fix that drops `__dict__` from the state would break every instance.
        result.extend(a for a in assignments if a.attribute != "__dict__")
    return result


class Classifier:
    """Classifies values in the context of one module, with the project index for the rest."""

    def __init__(
        self,
        catalog: Catalog,
        index: ProjectIndex | None,
        scope_check: Callable[[ModuleFacts, ClassFacts], bool] | None = None,
    ) -> None:
        self.catalog = catalog
        self.index = index
        # callable (facts, cls) -> bool: whether a project class is a model (then not nested)
        self.scope_check = scope_check
        self._factory_memo: dict[tuple[str, str], Hazard | None] = {}
        self._instance_memo: dict[tuple[str, str], Hazard | None] = {}
        self._active: set[tuple[str, str]] = set()

    # -- per class ---------------------------------------------------------
    def class_hazards(
        self, facts: ModuleFacts, cls: ClassFacts, depth: int = 0
    ) -> list[AttrHazard]:
        attr_hazards: dict[str, Hazard] = {}
        attr_types: dict[str, str] = {}
        found: list[AttrHazard] = []
        assignments = class_assignments(facts, cls)
        first: dict[str, Assignment] = {}
        for assignment in assignments:
            if not assignment.mutation:
                first.setdefault(assignment.attribute, assignment)
        for assignment in assignments:
            if assignment.value is None:
                continue
            ctx = _Ctx(self, facts, cls, assignment.env, attr_hazards, depth, attr_types)
            hazard = ctx.classify(assignment.value)
            if hazard is not None and not _persists(cls, assignment, ctx):
                hazard = None
            if hazard is None:
                if not assignment.mutation:
                    kind = ctx.type_of(assignment.value)
                    if kind:
                        attr_types.setdefault(assignment.attribute, kind)
                continue
            if assignment.mutation:
                if assignment.attribute in attr_hazards:
                    continue
                row = assignment.statement.lineno + cls.parsed.row_offset
                hooked = _registers_hook(assignment.statement)
                hazard = Hazard(
                    hazard.rule,
                    f"an object that later receives {hazard.what} (at line {row})",
                    hazard.breaks,
                    # a hook lives in the module's hook dicts: dropping the attribute from
                    # the state does not remove it, so __getstate__ is no fix
                    fix="none" if hooked else hazard.fix,
                )
                assignment = first.get(assignment.attribute, assignment)
            attr_hazards.setdefault(assignment.attribute, hazard)
            found.append(AttrHazard(assignment.attribute, hazard, assignment, cls.parsed))
            for stored in _property_stores(cls, assignment):
                attr_hazards.setdefault(stored.attribute, hazard)
                found.append(AttrHazard(stored.attribute, hazard, stored, cls.parsed))
        return found

    # -- project functions and classes -------------------------------------
    def factory_hazard(
        self,
        facts: ModuleFacts,
        func: ast.FunctionDef | ast.AsyncFunctionDef,
        label: str,
        depth: int,
    ) -> Hazard | None:
        key = (facts.path, f"{label}:{func.lineno}")
        return self._once(
            self._factory_memo, key, depth, lambda: self._factory(facts, func, label, depth)
        )

    def _once(
        self,
        memo: dict[tuple[str, str], Hazard | None],
        key: tuple[str, str],
        depth: int,
        compute: Callable[[], Hazard | None],
    ) -> Hazard | None:
        """Memoized, bounded in depth, and None on a cycle (a factory calling itself)."""
        if key in memo:
            return memo[key]
        if key in self._active or depth > _MAX_DEPTH:
            return None
        self._active.add(key)
        try:
            result = compute()
        finally:
            self._active.discard(key)
        memo[key] = result
        return result

    def _factory(
        self,
        facts: ModuleFacts,
        func: ast.FunctionDef | ast.AsyncFunctionDef,
        label: str,
        depth: int,
    ) -> Hazard | None:
        if is_generator(func):
            if isinstance(func, ast.AsyncFunctionDef):
                return generator_hazard(f"an async generator from `{label}()`")
            return generator_hazard(f"a generator from `{label}()`")
        if isinstance(func, ast.AsyncFunctionDef):
            return Hazard("CKPT006", f"a coroutine from `{label}()`", ALL_PATHS)
        _, returns = walk_function(func, facts.package, None)
        for value, env in returns:
            ctx = _Ctx(self, facts, None, env, {}, depth + 1)
            inner = ctx.classify(value)
            if inner is not None:
                return replace(inner, what=f"{inner.what} (returned by `{label}()`)")
        return None

    def instance_hazard(self, facts: ModuleFacts, cls: ClassFacts, depth: int) -> Hazard | None:
        """An instance of a project class that is not itself a model but holds a hazard."""
        key = (facts.path, f"{cls.name}:{cls.row}")
        return self._once(
            self._instance_memo, key, depth, lambda: self._instance(facts, cls, depth)
        )

    def _instance(self, facts: ModuleFacts, cls: ClassFacts, depth: int) -> Hazard | None:
        from ckpt_lsp.analysis.protocol import excluded_attributes, is_excluded

        if self.scope_check is not None and self.scope_check(facts, cls):
            return None  # a model: it gets findings of its own
        excluded = excluded_attributes(facts, cls, ())
        for item in self.class_hazards(facts, cls, depth + 1):
            if is_excluded(item.attribute, excluded) or item.hazard.rule == "CKPT004":
                continue
            what = f"a `{cls.name}` instance whose `{item.attribute}` holds {item.hazard.what}"
            return Hazard(item.hazard.rule, what, item.hazard.breaks)
        return None


@dataclass
class _Ctx:
    owner: Classifier
    facts: ModuleFacts
    cls: ClassFacts | None
    env: Env
    attrs: dict[str, Hazard]
    depth: int
    types: dict[str, str] = field(default_factory=dict)  # self attribute -> type name
    in_function: bool = True  # False for module-level values
    _seen: set[int] = field(default_factory=set)
    # Results of finished classifications, by node: `type_of` and `_method_of` ask again
    # for values already classified (a call chain asks for every receiver twice). A result
    # cut short by the cycle guard is not kept; the node is kept so its id stays unique.
    _memo: dict[int, tuple[ast.expr, Hazard | None]] = field(default_factory=dict)
    _cuts: int = 0

    @property
    def catalog(self) -> Catalog:
        return self.owner.catalog

    def qualify(self, dotted: str) -> str:
        return qualify(dotted, self.facts, self.env.imports)

    # -- entry -----------------------------------------------------------
    def classify(self, expr: ast.expr) -> Hazard | None:
        key = id(expr)
        known = self._memo.get(key)
        if known is not None:
            return known[1]
        if key in self._seen:
            self._cuts += 1
            return None
        cuts = self._cuts
        self._seen.add(key)
        try:
            found = self._classify(expr)
        finally:
            self._seen.discard(key)
        if self._cuts == cuts:
            self._memo[key] = (expr, found)
        return found

    def _classify(self, expr: ast.expr) -> Hazard | None:
        if isinstance(expr, ast.Lambda):
            return lambda_hazard()
        if isinstance(expr, ast.GeneratorExp):
            return generator_hazard("a generator expression")
        if isinstance(expr, ast.Name):
            return self._name(expr.id)
        if isinstance(expr, ast.Attribute):
            return self._attribute(expr)
        if isinstance(expr, ast.Call):
            return self._call(expr)
        if isinstance(expr, (ast.List, ast.Tuple, ast.Set)):
            return self._container(expr.elts, _container_word(expr))
        if isinstance(expr, ast.Dict):
            items = [v for v in expr.values if v is not None]
            items += [k for k in expr.keys if k is not None]
            return self._container(items, "a dict")
        if isinstance(expr, (ast.ListComp, ast.SetComp)):
            return self._container([expr.elt], _container_word(expr))
        if isinstance(expr, ast.DictComp):
            return self._container([expr.value], "a dict")
        if isinstance(expr, ast.IfExp):
            return self.classify(expr.body) or self.classify(expr.orelse)
        if isinstance(expr, ast.BoolOp):
            for value in expr.values:
                found = self.classify(value)
                if found is not None:
                    return found
            return None
        if isinstance(expr, ast.NamedExpr):
            return self.classify(expr.value)
        if isinstance(expr, ast.Subscript):
            return self._subscript(expr)
        if isinstance(expr, ast.Starred):
            return self.classify(expr.value)
        return None

    def _returned_element(self, value: ast.expr, index: int) -> Hazard | None:
        """Element `index` of the tuple a project function returns (`return sock, port`)."""
        if not isinstance(value, ast.Call):
            return None
        dotted = _dotted(value.func)
        func = self.facts.functions.get(dotted) if dotted else None
        if func is None and self.cls is not None and dotted.startswith("self."):
            func = self.cls.method(dotted[5:])
        if func is None or self.depth > _MAX_DEPTH:
            return None
        _, returns = walk_function(func, self.facts.package, None)
        for ret, env in returns:
            if isinstance(ret, ast.Tuple) and index < len(ret.elts):
                ctx = _Ctx(self.owner, self.facts, None, env, {}, self.depth + 1)
                inner = ctx.classify(ret.elts[index])
                if inner is not None:
                    return replace(inner, what=f"{inner.what} (returned by `{dotted}()`)")
        return None

    def _class_attribute(self, owner: ClassFacts, name: str) -> Hazard | None:
        """A class-level value read through the instance or the class and stored on the
        instance: `GUARD = threading.Lock()` in the body, then `self.guard = self.GUARD`.
        (A class-level function is a bound method through self: that pickles.)"""
        value = _class_level_value(owner, name)
        if value is None or isinstance(value, ast.Lambda) or self.depth > _MAX_DEPTH:
            return None
        if isinstance(value, ast.Call) and self.qualify(_dotted(value.func)) in _DESCRIPTORS:
            return None  # staticmethod(f) read through the class or instance is plain f
        found = self._at_module(self.facts).classify(value)
        if found is None:
            return None
        return replace(found, what=f"{found.what} (the class attribute `{owner.name}.{name}`)")

    def _owning_class(self, expr: ast.expr) -> ClassFacts | None:
        """`type(self)`, `self.__class__` or a class of this module by name."""
        if self.cls is not None:
            if (
                isinstance(expr, ast.Call)
                and isinstance(expr.func, ast.Name)
                and expr.func.id == "type"
                and len(expr.args) == 1
                and isinstance(expr.args[0], ast.Name)
                and expr.args[0].id == "self"
            ):
                return self.cls
            if (
                isinstance(expr, ast.Attribute)
                and expr.attr == "__class__"
                and isinstance(expr.value, ast.Name)
                and expr.value.id == "self"
            ):
                return self.cls
        if isinstance(expr, ast.Name) and expr.id not in self.env.bindings:
            return self.facts.classes.get(expr.id)
        return None

    def _at_module(self, facts: ModuleFacts) -> _Ctx:
        """A context for values at module level of `facts` (one step deeper)."""
        return _Ctx(self.owner, facts, None, Env(), {}, self.depth + 1, in_function=False)

    def _subscript(self, expr: ast.Subscript) -> Hazard | None:
        """`ACTIVATIONS["quick_gelu"]`: the entry of a dict literal (here or in another
        module) under a constant key; else a method of a typed value (`h5file["x"]`)."""
        key = expr.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, int):
            element = self._returned_element(expr.value, key.value)
            if element is not None:
                return element
        if isinstance(key, ast.Constant):
            found = self._dict_literal(expr.value)
            if found is not None:
                ctx, literal = found
                for k, v in zip(literal.keys, literal.values):
                    if isinstance(k, ast.Constant) and k.value == key.value:
                        return ctx.classify(v)
                return None
        return self._method_of(expr.value, "__getitem__")

    def _dict_literal(self, expr: ast.expr, hops: int = 0) -> tuple[_Ctx, ast.Dict] | None:
        if isinstance(expr, ast.Dict):
            return self, expr
        if not isinstance(expr, ast.Name) or hops > 4:
            return None
        binding = self.env.bindings.get(expr.id)
        if isinstance(binding, ast.expr):
            return self._dict_literal(binding, hops + 1)
        if binding is not None:
            return None
        found = self._module_value(expr.id)
        return found[0]._dict_literal(found[1], hops + 1) if found is not None else None

    def _module_value(self, name: str) -> tuple[_Ctx, ast.expr] | None:
        """The value of a module-level `NAME = ...`, here or imported from a project module,
        with a context to classify it in."""
        facts = self.facts
        if name not in facts.assigns and name in facts.imports and self.owner.index is not None:
            resolved = self.owner.index.resolve_member(facts.imports[name], facts.path)
            if resolved is None:
                return None
            facts, name = resolved
        value = facts.assigns.get(name)
        if value is None:
            return None
        return self._at_module(facts), value

    def _container(self, items: list[ast.expr], word: str) -> Hazard | None:
        for item in items:
            inner = self.classify(item)
            if inner is not None and inner.rule != "CKPT004":
                return Hazard(inner.rule, f"{word} holding {inner.what}", inner.breaks)
        return None

    # -- names -----------------------------------------------------------
    def _name(self, name: str) -> Hazard | None:
        binding = self.env.bindings.get(name)
        if binding is not None:
            return self._binding(name, binding)
        if name in self.env.imports:
            if name in self.env.modules:
                return _module_hazard(self.env.imports[name])
            return self._value(self.env.imports[name])
        if name in self.facts.module_names:
            return _module_hazard(self.facts.imports.get(name, name))
        found = self._module_member(self.facts, name)
        if found is not None or name in self.facts.assigns:
            return found
        return self._value(self.qualify(name))

    def _module_member(self, facts: ModuleFacts, name: str) -> Hazard | None:
        """A module-level name of this module or, through its imports, of another one."""
        value = facts.assigns.get(name)
        if value is not None:
            if isinstance(value, ast.Lambda):
                # pickle finds functions by __qualname__, and a lambda's is "<lambda>"
                return Hazard("CKPT003", f"the module-level lambda `{name}`", _CALLABLE_BREAKS)
            if self.depth > _MAX_DEPTH:
                return None
            module_ctx = self._at_module(facts)
            inner = module_ctx.classify(value)
            if inner is None:
                return None
            return replace(inner, what=f"{inner.what} (the module-level `{name}`)")
        func = facts.functions.get(name)
        if func is not None:
            decorator = self._unwrapped_decorator(facts, func)
            if decorator:
                what = f"`{name}`, replaced by `{decorator}`'s wrapper (no functools.wraps)"
                return Hazard("CKPT003", what, _CALLABLE_BREAKS)
            return None
        target = facts.imports.get(name)
        index = self.owner.index
        if target is None or index is None or self.depth > _MAX_DEPTH:
            return None
        resolved = index.resolve_member(target, facts.path)
        if resolved is None or resolved[0] is facts:
            return None
        inner_ctx = self._at_module(resolved[0])
        return inner_ctx._module_member(resolved[0], resolved[1])

    def _unwrapped_decorator(
        self, facts: ModuleFacts, func: ast.FunctionDef | ast.AsyncFunctionDef
    ) -> str:
        """The name of a project decorator on `func` that returns a nested function without
        functools.wraps: the module attribute then is a closure pickle cannot find."""
        for deco in func.decorator_list:
            dotted = _dotted(deco)
            decorator = facts.functions.get(dotted) if dotted else None
            if decorator is None:
                continue
            nested = {
                stmt.name: stmt
                for stmt in ast.walk(decorator)
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
                and stmt is not decorator
            }
            for node in ast.walk(decorator):
                if (
                    isinstance(node, ast.Return)
                    and isinstance(node.value, ast.Name)
                    and node.value.id in nested
                    and not any(
                        _dotted(d.func if isinstance(d, ast.Call) else d).endswith("wraps")
                        for d in nested[node.value.id].decorator_list
                    )
                ):
                    return dotted
        return ""

    def _binding(self, name: str, binding: Binding) -> Hazard | None:
        if isinstance(binding, LocalDef):
            return Hazard("CKPT003", f"the nested function `{name}`", _CALLABLE_BREAKS)
        if isinstance(binding, LocalClass):
            return Hazard("CKPT003", f"the local class `{name}`", _CALLABLE_BREAKS)
        if isinstance(binding, WithTarget):
            inner = self.classify(binding.expr)
            if inner is not None and inner.rule == "CKPT005":
                return None  # a lock's __enter__ returns a bool, not the lock
            return inner
        if isinstance(binding, ast.expr):
            found = self.classify(binding)
            if found is None and self.env.contents.get(name):
                word = (
                    _container_word(binding)
                    if isinstance(binding, (ast.List, ast.Tuple, ast.Set))
                    else "a container"
                )
                if isinstance(binding, (ast.Dict, ast.DictComp)):
                    word = "a dict"
                return self._container(self.env.contents[name], word)
            return found
        return None

    def _value(self, qualified: str) -> Hazard | None:
        hazard = self.catalog.values.get(qualified)
        if hazard is not None:
            return hazard
        if is_known_module(qualified) and "." in qualified:
            return _module_hazard(qualified)
        return None

    def _attribute(self, expr: ast.Attribute) -> Hazard | None:
        if (
            self.cls is not None
            and isinstance(expr.value, ast.Name)
            and expr.value.id
            in (
                "self",
                "cls",
            )
        ):
            found = self.attrs.get(expr.attr)
            if found is None and expr.attr not in self.types:
                found = self._class_attribute(self.cls, expr.attr)
            return found
        if expr.attr == "__traceback__":
            return Hazard("CKPT006", "an exception's traceback", ALL_PATHS)
        owner = self._owning_class(expr.value)
        if owner is not None:
            value = _class_level_value(owner, expr.attr)
            if isinstance(value, ast.Lambda):
                # through the class a lambda is a plain function named C.<lambda>
                return Hazard(
                    "CKPT003",
                    f"the class-level lambda `{owner.name}.{expr.attr}`",
                    _CALLABLE_BREAKS,
                )
            found = self._class_attribute(owner, expr.attr)
            if found is not None:
                return found
        dotted = _dotted(expr)
        if not dotted:
            return None
        head = dotted.split(".")[0]
        if head in self.env.bindings:
            return None
        return self._value(self.qualify(dotted))

    # -- calls -----------------------------------------------------------
    def _call(self, call: ast.Call) -> Hazard | None:
        func = call.func
        dotted = _dotted(func)
        if dotted:
            found = self._call_by_name(call, dotted)
            if found is not None:
                return found
        if isinstance(func, ast.Attribute):
            method = func.attr
            if (
                method in _DICT_VIEWS
                and not call.args
                and not call.keywords
                and self.classify(func.value) is None
            ):
                return Hazard("CKPT006", f"a dict view (`.{method}()`)", ALL_PATHS)
            if method in _GENERATOR_METHODS and not _is_known_value(func.value):
                return generator_hazard(f"a generator from `.{method}()`")
            if method == "astype" and call.args and _is_object_dtype(call.args[0], self):
                return OBJECT_ARRAY
            if _is_hook_registration(method):
                # the handle keeps the hooks dict, and with it the hook (row 145 vs 144)
                args = [*call.args, *(kw.value for kw in call.keywords)]
                held = self._container(args, "a hook handle")
                # the hook itself stays in the module's hook dict: no __getstate__ fix
                return replace(held, fix="none") if held is not None else None
            if (
                self.cls is not None
                and isinstance(func.value, ast.Name)
                and func.value.id == "self"
            ):
                own = self.cls.method(method)
                if own is not None:
                    return self.owner.factory_hazard(self.facts, own, f"self.{method}", self.depth)
            return self._method_of(func.value, method)
        if isinstance(func, ast.Call) and call.args and self._is_function(call.args[0]):
            # functools.lru_cache()(self.method), torch.no_grad()(self.predict): the wrapper
            # is a new function that pickle cannot find by name (rows 77-78)
            return Hazard("CKPT003", "a function wrapped at runtime", _CALLABLE_BREAKS)
        return None

    def _call_by_name(self, call: ast.Call, dotted: str) -> Hazard | None:
        head = dotted.split(".")[0]
        binding = self.env.bindings.get(head)
        if binding is not None:
            if isinstance(binding, LocalClass) and head == dotted:
                return Hazard(
                    "CKPT003", f"an instance of the local class `{head}`", _CALLABLE_BREAKS
                )
            if isinstance(binding, LocalDef) and head == dotted:
                if is_generator(binding.node):
                    return generator_hazard(f"a generator from `{head}()`")
                return None
            if head == dotted and isinstance(binding, ast.expr):
                made = self.classify(binding)
                if made is not None and made.what.startswith("a class made in a function"):
                    return Hazard("CKPT003", f"an instance of {made.what[2:]}", _CALLABLE_BREAKS)
            return None  # a method of a local variable: handled by _method_of
        if head in ("self", "cls") and "." in dotted:
            return None
        owner_name, _, member = dotted.partition(".")
        if member and "." not in member and owner_name in self.facts.classes:
            own = self.facts.classes[owner_name].method(member)
            if own is not None:  # a staticmethod/classmethod factory: `Model._connect(p)`
                return self.owner.factory_hazard(self.facts, own, dotted, self.depth)
        qualified = self.qualify(dotted)
        names = [qualified]
        if "." not in dotted and head not in self.facts.imports and self.facts.star_imports:
            names += star_candidates(dotted, self.facts)
        for name in names:
            found = self._catalog_call(call, name)
            if found is not None:
                return found
        found = self._project_call(dotted, qualified)
        if found is not None:
            return found
        if qualified == "builtins.iter" and len(call.args) == 1:
            return self._method_of(call.args[0], "__iter__")  # iter(DataLoader(...))
        return self._constructed_with(call, qualified)

    def _constructed_with(self, call: ast.Call, qualified: str) -> Hazard | None:
        """`LambdaLR(opt, lambda s: 1.0)`, `DataLoader(ds, collate_fn=lambda b: b)`: an object
        built (a Capitalized callee, by Python's naming convention) from a callable or a
        resource keeps it. Iterators are left out: constructors consume them
        (`nn.ModuleList(Block() for _ in range(4))`)."""
        name = qualified.rsplit(".", 1)[-1]
        if not name[:1].isupper():
            return None
        for arg in [*call.args, *(kw.value for kw in call.keywords)]:
            inner = self.classify(arg)
            if inner is not None and inner.rule not in ("CKPT004", "CKPT006"):
                return Hazard(inner.rule, f"a `{name}` holding {inner.what}", inner.breaks)
        return None

    def _catalog_call(self, call: ast.Call, qualified: str) -> Hazard | None:
        catalog = self.catalog
        if qualified in catalog.object_array and _has_object_dtype(call, qualified, self):
            return OBJECT_ARRAY
        hazard = catalog.calls.get(qualified)
        if hazard is not None:
            return None if _made_safe(call, hazard) else hazard
        if qualified in _CACHING_WRAPPERS and call.args and self._is_function(call.args[0]):
            return Hazard("CKPT003", f"a function wrapped by `{qualified}`", _CALLABLE_BREAKS)
        conditional = catalog.function_arg.get(qualified)
        if conditional is not None and call.args and self._is_function(call.args[0]):
            return conditional
        by_suffix = catalog.suffix_arg.get(qualified)
        if by_suffix is not None and _mentions_suffix(call, by_suffix[0]):
            return by_suffix[1]
        if self.in_function and qualified in _CLASS_FACTORIES and _makes_class(call, qualified):
            return Hazard(
                "CKPT003", f"a class made in a function by `{qualified}()`", _CALLABLE_BREAKS
            )
        if qualified in catalog.holders:
            word = f"a `{qualified.rsplit('.', 1)[-1]}`"
            if qualified in _CONSUMING:
                # list(x), dict(x) copy the elements of x: only literal elements and keyword
                # values end up inside (dict(os.environ) is a plain dict)
                literal = [a for a in call.args if isinstance(a, _LITERALS)]
                for arg in call.args:
                    consumed = self.classify(arg)
                    if consumed is not None and consumed.elements:  # list(os.scandir(d))
                        return Hazard(
                            consumed.rule, f"{word} of {consumed.elements}", consumed.breaks
                        )
                kept = [kw.value for kw in call.keywords] if qualified in _KEEPS_KEYWORDS else []
                return self._container(literal + kept, word)
            return self._container(list(call.args) + [kw.value for kw in call.keywords], word)
        return None

    def _is_function(self, expr: ast.expr) -> bool:
        """A lambda, a name bound by `def` (here or at module level) or a method of this
        class (`self.predict`), not a module object."""
        if isinstance(expr, ast.Lambda):
            return True
        if (
            isinstance(expr, ast.Attribute)
            and isinstance(expr.value, ast.Name)
            and expr.value.id == "self"
            and self.cls is not None
        ):
            return self.cls.method(expr.attr) is not None
        if isinstance(expr, ast.Name):
            binding = self.env.bindings.get(expr.id)
            if binding is not None:
                return isinstance(binding, LocalDef)
            return expr.id in self.facts.functions
        return False

    def _project_call(self, dotted: str, qualified: str) -> Hazard | None:
        facts = self.facts
        if "." not in dotted:
            func = facts.functions.get(dotted)
            if func is not None:
                return self.owner.factory_hazard(facts, func, dotted, self.depth)
            cls = facts.classes.get(dotted)
            if cls is not None:
                if self.cls is not None and cls.name == self.cls.name:
                    return None
                return self.owner.instance_hazard(facts, cls, self.depth)
        index = self.owner.index
        if index is None or qualified == dotted and "." not in dotted:
            return None
        found = index.resolve_member(qualified, facts.path)
        if found is None:
            return None
        mod, member = found
        func = mod.functions.get(member)
        if func is not None:
            return self.owner.factory_hazard(mod, func, member, self.depth)
        if member in mod.classes:
            return self.owner.instance_hazard(mod, mod.classes[member], self.depth)
        return None

    def _method_of(self, receiver: ast.expr, method: str) -> Hazard | None:
        kind = self.type_of(receiver)
        if not kind:
            return None
        return self.catalog.method(kind, method)

    def type_of(self, expr: ast.expr, depth: int = 0) -> str:
        """The type a value has, as far as the catalog cares: a hazard's `returns`, or the
        class a call constructs (`Path(p)` -> pathlib.Path, so `Path(p).open()` is a file)."""
        if depth > 6:
            return ""
        hazard = self.classify(expr)
        if hazard is not None and hazard.returns:
            return hazard.returns
        if isinstance(expr, ast.Call):
            dotted = _dotted(expr.func)
            if dotted and dotted.split(".")[0] not in self.env.bindings:
                qualified = self.qualify(dotted)
                return self.catalog.typed.get(qualified) or _canonical_type(qualified)
            return ""
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div):
            return self.type_of(expr.left, depth + 1)  # path / "name"
        if isinstance(expr, ast.Name):
            binding = self.env.bindings.get(expr.id)
            if isinstance(binding, ast.expr):
                return self.type_of(binding, depth + 1)
            if isinstance(binding, WithTarget):
                return self.type_of(binding.expr, depth + 1)
            found = self._module_value(expr.id) if binding is None else None
            if found is not None:  # VERSION_RE = re.compile(...) at module level
                return found[0].type_of(found[1], depth + 1)
            return ""
        if (
            isinstance(expr, ast.Attribute)
            and isinstance(expr.value, ast.Name)
            and expr.value.id == "self"
        ):
            return self.types.get(expr.attr, "")
        return ""


def _dotted(expr: ast.expr) -> str:
    from ckpt_lsp.analysis.facts import dotted_name

    return dotted_name(expr)


_TYPE_ALIASES = {
    "pathlib.PosixPath": "pathlib.Path",
    "pathlib.WindowsPath": "pathlib.Path",
    "pathlib.PurePath": "pathlib.Path",
    "pathlib.PurePosixPath": "pathlib.Path",
}


def _canonical_type(qualified: str) -> str:
    return _TYPE_ALIASES.get(qualified, qualified)


# Consuming holders that store their keyword arguments (dict(a=f)); sorted(key=f) does not.
_KEEPS_KEYWORDS = frozenset({"builtins.dict", "collections.OrderedDict", "collections.Counter"})
# Class-level wrappers that attribute access unwraps (the descriptor protocol).
_DESCRIPTORS = frozenset(
    {
        "builtins.staticmethod",
        "builtins.classmethod",
        "builtins.property",
        "functools.cached_property",
    }
)
_CACHING_WRAPPERS = frozenset({"functools.lru_cache", "functools.cache"})
_LITERALS = (ast.List, ast.Tuple, ast.Set, ast.Dict, ast.ListComp, ast.SetComp, ast.DictComp)
# Calls that create a class: inside a function the class is local and does not pickle
# (rows 83-85); at module level it is an ordinary, importable class.
_CLASS_FACTORIES = frozenset(
    {
        "collections.namedtuple",
        "typing.NamedTuple",
        "dataclasses.make_dataclass",
        "builtins.type",
        "types.new_class",
        "enum.Enum",
    }
)


def _makes_class(call: ast.Call, qualified: str) -> bool:
    if qualified == "builtins.type":
        return len(call.args) == 3
    return bool(call.args)


def _made_safe(call: ast.Call, hazard: Hazard) -> bool:
    for name, value in hazard.safe_when:
        for kw in call.keywords:
            if kw.arg == name and isinstance(kw.value, ast.Constant) and kw.value.value == value:
                return True
    return False


def _mentions_suffix(call: ast.Call, suffix: str) -> bool:
    for arg in [*call.args, *(kw.value for kw in call.keywords)]:
        for node in ast.walk(arg):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value.endswith(suffix)
            ):
                return True
    return False


def _container_word(expr: ast.expr) -> str:
    if isinstance(expr, (ast.List, ast.ListComp)):
        return "a list"
    if isinstance(expr, ast.Tuple):
        return "a tuple"
    return "a set"


def _module_hazard(qualified: str) -> Hazard:
    return Hazard("CKPT007", f"the module `{qualified}`", ALL_PATHS)


def _is_known_value(expr: ast.expr) -> bool:
    """Receivers that are plainly not modules (literals), so `.modules()` is theirs."""
    return isinstance(expr, (ast.Constant, ast.List, ast.Dict, ast.Tuple, ast.Set))


def _is_object_dtype(expr: ast.expr, ctx: _Ctx) -> bool:
    if isinstance(expr, ast.Constant) and expr.value in ("O", "object", "|O"):
        return True
    if isinstance(expr, (ast.List, ast.Tuple)):  # structured: [("id", "i4"), ("obj", "O")]
        return any(
            isinstance(field, ast.Tuple)
            and len(field.elts) >= 2
            and _is_object_dtype(field.elts[1], ctx)
            for field in expr.elts
        )
    dotted = _dotted(expr)
    return bool(dotted) and ctx.qualify(dotted) in _OBJECT_DTYPES


# Position of the dtype argument when given positionally.
_DTYPE_POSITION = {"full": 2, "full_like": 2}


def _has_object_dtype(call: ast.Call, qualified: str, ctx: _Ctx) -> bool:
    for kw in call.keywords:
        if kw.arg == "dtype":
            return _is_object_dtype(kw.value, ctx)
    name = qualified.rsplit(".", 1)[-1]
    position = _DTYPE_POSITION.get(name, 1)
    if len(call.args) > position:
        return _is_object_dtype(call.args[position], ctx)
    # No dtype: numpy infers object from None (np.full(n, None), np.array([1, None]))
    if name in ("full", "full_like"):
        fill = call.args[1] if len(call.args) > 1 else None
        fill = next((kw.value for kw in call.keywords if kw.arg == "fill_value"), fill)
        return isinstance(fill, ast.Constant) and fill.value is None
    if name in ("array", "asarray", "asanyarray") and call.args:
        return _literal_holds_none(call.args[0])
    return False


def _literal_holds_none(expr: ast.expr) -> bool:
    """A literal numpy can only store as objects: it holds None, dicts or sets."""
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Mult):
        return _literal_holds_none(expr.left) or _literal_holds_none(expr.right)
    if isinstance(expr, (ast.List, ast.Tuple)):
        return any(
            (isinstance(e, ast.Constant) and e.value is None)
            or isinstance(e, (ast.Dict, ast.Set, ast.DictComp))
            or _literal_holds_none(e)
            for e in expr.elts
        )
    return False
