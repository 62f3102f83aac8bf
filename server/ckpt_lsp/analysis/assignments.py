"""The method walker: every `self.x = ...` of a method, with the names bound before it.

Plain, tuple, annotated and augmented targets, `setattr(self, "x", v)`, values put into
an attribute (`self.x.append(v)`, `self.x[k] = v`, a hook registered on a child), and
a property setter that stores its argument under another name. Local names are followed
in source order (`Env`), so the value classifier sees what each name held at the store.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Union

from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, dotted_name, record_import
from ckpt_lsp.catalog import library_facts


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
    # `self.x.extend(v)`, `self.x += v`: v is iterated on the spot and only its items stay
    spread: bool = False


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


def property_stores(cls: ClassFacts, assignment: Assignment) -> list[Assignment]:
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
            and dotted_name(d.value) == assignment.attribute
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


def class_level_value(cls: ClassFacts, name: str) -> ast.expr | None:
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


_LIBRARY = library_facts()
_SETATTR = _LIBRARY.setattr_calls
# Methods that put their argument into the container they are called on.
_MUTATORS = _LIBRARY.mutators


def registers_hook(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Call)
        and isinstance(stmt.value.func, ast.Attribute)
        and is_hook_registration(stmt.value.func.attr)
    )


def is_hook_registration(method: str) -> bool:
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
    name = dotted_name(func)
    if (
        isinstance(func, ast.Attribute)
        and func.attr in _MUTATORS
        and isinstance(func.value, ast.Name)
        and func.value.id in env.bindings
    ):  # items.append(lambda: 0) on a local list that self.x receives later
        values = list(call.args[-1:]) + [kw.value for kw in call.keywords]
        if func.attr == "extend" and call.args:
            values = _items_of(call.args[0], env)
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
    if isinstance(func, ast.Attribute) and is_hook_registration(func.attr):
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
        if func.attr == "extend" and call.args:
            out.append(_spread(func.value, call.args[0], stmt, method, env))
            return
        values = list(call.args[-1:]) + [kw.value for kw in call.keywords]
        for value in values:
            out.append(
                Assignment(func.value.attr, value, func.value, stmt, method, _snapshot(env), True)
            )


def _items_of(value: ast.expr, env: Env) -> list[ast.expr]:
    """What `items.extend(value)` puts into a local list: the items of a generator
    expression (none we can name when an item is the loop variable itself), else the
    iterable as a whole."""
    if isinstance(value, ast.Name) and isinstance(env.bindings.get(value.id), ast.GeneratorExp):
        bound = env.bindings[value.id]
        assert isinstance(bound, ast.GeneratorExp)
        value = bound
    if not isinstance(value, ast.GeneratorExp):
        return [value]
    loop_names = {
        n.id for comp in value.generators for n in ast.walk(comp.target) if isinstance(n, ast.Name)
    }
    if isinstance(value.elt, ast.Name) and value.elt.id in loop_names:
        return []
    return [value.elt]


def _spread(
    target: ast.Attribute, value: ast.expr, stmt: ast.stmt, method: str, env: Env
) -> Assignment:
    """`self.x.extend(v)` / `self.x += v`: a generator is consumed on the spot, so what
    lands in the attribute is its items (`elt` of a generator expression, with the
    loop names unknown); any other iterable is kept and marked as spread."""
    snapshot = _snapshot(env)
    source = value
    if isinstance(value, ast.Name) and isinstance(env.bindings.get(value.id), ast.GeneratorExp):
        bound = env.bindings[value.id]
        assert isinstance(bound, ast.GeneratorExp)
        source = bound
    if isinstance(source, ast.GeneratorExp):
        for comp in source.generators:
            for name in ast.walk(comp.target):
                if isinstance(name, ast.Name):
                    snapshot.bindings[name.id] = OPAQUE
        value = source.elt
    return Assignment(target.attr, value, target, stmt, method, snapshot, True, True)


def _walk_body(
    body: list[ast.stmt],
    env: Env,
    package: str,
    self_name: str | None,
    method: str,
    out: list[Assignment],
    returns: list[tuple[ast.expr, Env]],
) -> None:
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
                if isinstance(stmt.op, ast.Add):  # list += iterable extends the list
                    out.append(_spread(target, stmt.value, stmt, method, env))
                else:
                    out.append(
                        Assignment(
                            target.attr, stmt.value, target, stmt, method, _snapshot(env), True
                        )
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
        else:
            _walk_compound(stmt, env, package, self_name, method, out, returns)


def _walk_compound(
    stmt: ast.stmt,
    env: Env,
    package: str,
    self_name: str | None,
    method: str,
    out: list[Assignment],
    returns: list[tuple[ast.expr, Env]],
) -> None:
    """The bodies of a compound statement, walked in order into the same names."""
    if isinstance(stmt, (ast.With, ast.AsyncWith)):
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
    result.extend(_cached_property_stores(facts, cls))
    return result


def is_cached_property(func: ast.AST) -> bool:
    decorators = getattr(func, "decorator_list", [])
    return any(dotted_name(d).rpartition(".")[2] == "cached_property" for d in decorators)


def _cached_property_stores(facts: ModuleFacts, cls: ClassFacts) -> list[Assignment]:
    """`@cached_property def env(self): return lmdb.open(...)`: the first read stores the
    returned value in the instance `__dict__` under the method's name."""
    out: list[Assignment] = []
    for method in cls.methods_mentioning("cached_property"):
        self_name = self_name_of(method) if is_cached_property(method) else None
        if self_name is None:
            continue
        _, returns = walk_function(method, facts.package, self_name)
        for value, env in returns:
            stmt = next(
                (n for n in ast.walk(method) if isinstance(n, ast.Return) and n.value is value),
                None,
            )
            if stmt is not None:
                out.append(Assignment(method.name, value, value, stmt, method.name, env))
    return out
