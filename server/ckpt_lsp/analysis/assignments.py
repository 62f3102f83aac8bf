"""The method walker: every `self.x = ...` of a method, with the names bound before it.

Plain, tuple, annotated and augmented targets, `setattr(self, "x", v)`, values put into
an attribute (`self.x.append(v)`, `self.x[k] = v`, a hook registered on a child), and
a property setter that stores its argument under another name. Local names are followed
in source order (`Env`), so the value classifier sees what each name held at the store.
"""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass, field
from typing import Union

from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, dotted_name, record_import
from ckpt_lsp.analysis.nodes import child_nodes, walk
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


CHILDREN = "*children"  # alias of every child module of self
MODULES = "*modules"  # alias of self and every child module
CHILD_NAME = "*name"  # the name of each child in `for name, m in self.named_modules()`


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
    # local names that stand for a self attribute: `enc = self.encoder`, `for m in self.layers`
    aliases: dict[str, str] = field(default_factory=dict)
    # module hooks registered on a local name: `module.register_forward_pre_hook(fn)`
    hooked: dict[str, list[ast.expr]] = field(default_factory=dict)
    # local hook handles and the assignments their registration recorded (by id)
    handles: dict[str, list[int]] = field(default_factory=dict)
    # the `if` tests the current statement sits under, each with the branch taken
    guards: list[tuple[ast.expr, bool]] = field(default_factory=list)


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
        stack.extend(child_nodes(node))
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
    hooked = {name: list(values) for name, values in env.hooked.items()}
    return Env(
        dict(env.bindings),
        dict(env.imports),
        set(env.modules),
        contents,
        dict(env.aliases),
        hooked,
        guards=list(env.guards),
    )


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
        env.hooked.pop(target.id, None)
        root = _self_root(value, self_name) if value is not None and self_name else None
        if root is not None:
            env.aliases[target.id] = root.attr
        else:
            env.aliases.pop(target.id, None)
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
        for node in walk(stmt):
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


# nn.Module's hook registrations and the instance dict each keeps its hooks in (checked
# at runtime: a lambda there fails pickle). Tensor hooks (`register_hook`,
# `register_post_accumulate_grad_hook`) are dropped when a tensor is saved, and an
# optimizer's __getstate__ leaves its hooks out, so neither is listed.
MODULE_HOOKS = {
    "register_forward_hook": "_forward_hooks",
    "register_forward_pre_hook": "_forward_pre_hooks",
    "register_backward_hook": "_backward_hooks",
    "register_full_backward_hook": "_backward_hooks",
    "register_full_backward_pre_hook": "_backward_pre_hooks",
    "_register_state_dict_hook": "_state_dict_hooks",
    "register_state_dict_post_hook": "_state_dict_hooks",
    "register_state_dict_pre_hook": "_state_dict_pre_hooks",
    "_register_load_state_dict_pre_hook": "_load_state_dict_pre_hooks",
    "register_load_state_dict_pre_hook": "_load_state_dict_pre_hooks",
    "register_load_state_dict_post_hook": "_load_state_dict_post_hooks",
}
# Iterating these over self visits every child module (`modules()` visits self too).
_CHILD_ITERATORS = {
    "children": CHILDREN,
    "named_children": CHILDREN,
    "modules": MODULES,
    "named_modules": MODULES,
}


def registers_hook(stmt: ast.stmt) -> bool:
    """A statement whose value is a module hook registration (its handle kept or not)."""
    value = getattr(stmt, "value", None)
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr in MODULE_HOOKS
    )


def is_hook_registration(method: str) -> bool:
    """Any hook registration, tensor hooks included: a kept handle holds the hooks dict."""
    return method.lstrip("_").startswith("register_") and method.endswith("hook")


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
    if isinstance(func, ast.Attribute) and func.attr in MODULE_HOOKS:
        _record_hook(stmt, call, func, env, self_name, method, out)
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


def _children_hooked(receiver: str, alias: str, hook_dict: str, env: Env) -> list[str]:
    """Where a hook registered in a loop over self's children lands: every child
    (`*children`), self too for `modules()`, or only children of the classes an
    `isinstance(m, ...)` test names (`*children:Conv2d,Linear`). Any other test on the child
    or its name picks a subset we cannot know: nothing is recorded."""
    classes: list[str] = []
    for test, taken in env.guards:
        names = {n.id for n in walk(test) if isinstance(n, ast.Name)}
        if receiver not in names and not any(env.aliases.get(n) == CHILD_NAME for n in names):
            continue
        if not (taken and isinstance(test, ast.Call) and dotted_name(test.func) == "isinstance"):
            return []
        if len(test.args) != 2 or not _is_name(test.args[0], receiver):
            return []
        kinds = test.args[1].elts if isinstance(test.args[1], ast.Tuple) else [test.args[1]]
        classes.extend(dotted_name(k).rsplit(".", 1)[-1] for k in kinds)
    if classes:
        return [f"{CHILDREN}:{','.join(classes)}"]
    return [CHILDREN, hook_dict] if alias == MODULES else [CHILDREN]


def _is_name(expr: ast.expr, name: str) -> bool:
    return isinstance(expr, ast.Name) and expr.id == name


def _record_kept_handle(
    stmt: ast.Assign, env: Env, self_name: str, method: str, out: list[Assignment]
) -> None:
    """`self.h = self.stem.register_forward_hook(fn)`: the hook is registered all the same.
    A handle kept in a local name remembers what it registered, for `handle.remove()`."""
    call = stmt.value
    if not (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr in MODULE_HOOKS
    ):
        return
    on_self = bool(self_name) and _is_self(call.func.value, self_name)
    if on_self and any(isinstance(t, ast.Attribute) for t in stmt.targets):
        return  # `self.h = self.register_forward_hook(fn)`: the handle's finding tells
    before = len(out)
    _record_hook(stmt, call, call.func, env, self_name, method, out)
    for target in stmt.targets:
        if isinstance(target, ast.Name):
            env.handles[target.id] = [id(a) for a in out[before:]]


def _drop_removed_hook(call: ast.Call, env: Env, out: list[Assignment]) -> None:
    """`handle.remove()` in the same function undoes the registration it came from;
    `handles.append(handle)` gathers handles into a local list."""
    func = call.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)):
        return
    if func.attr == "remove" and func.value.id in env.handles:
        removed = set(env.handles.pop(func.value.id))
        out[:] = [a for a in out if id(a) not in removed]
    elif func.attr == "append" and len(call.args) == 1 and isinstance(call.args[0], ast.Name):
        gathered = env.handles.get(call.args[0].id)
        if gathered:
            env.handles.setdefault(func.value.id, []).extend(gathered)


def _drop_returned_handles(value: ast.expr, env: Env, out: list[Assignment]) -> None:
    """A function that returns the handles of what it registered lends the hooks to its
    caller, who may remove them (a context manager) or keep them (`self.h = ...`, which the
    kept value then tells): the registration alone says nothing about the module at rest."""
    if isinstance(value, ast.Name) and value.id in env.handles:
        returned = set(env.handles[value.id])
        out[:] = [a for a in out if id(a) not in returned]


def _record_hook(
    stmt: ast.stmt,
    call: ast.Call,
    func: ast.Attribute,
    env: Env,
    self_name: str,
    method: str,
    out: list[Assignment],
) -> None:
    """A module hook is kept in the hook dict of the module it is registered on: on self
    that dict is the attribute, on `self.backbone[0]` (or an alias of it) `backbone` is."""
    hooks = [*call.args[:1], *(kw.value for kw in call.keywords if kw.arg == "hook")]
    receiver = func.value
    attrs: list[str] = []
    node: ast.AST = func
    if self_name and _is_self(receiver, self_name):
        attrs = [MODULE_HOOKS[func.attr]]
    elif isinstance(receiver, ast.Name) and receiver.id in env.aliases:
        alias = env.aliases[receiver.id]
        if alias in (CHILDREN, MODULES):
            attrs = _children_hooked(receiver.id, alias, MODULE_HOOKS[func.attr], env)
        elif alias != CHILD_NAME:
            attrs = [alias]
    elif isinstance(receiver, ast.Name):
        # a module the function was handed or built: what it returns carries the hook
        env.hooked.setdefault(receiver.id, []).extend(hooks)
        return
    elif self_name:
        root = _self_root(receiver, self_name)
        if root is not None:
            attrs, node = [root.attr], root
    for attr in attrs:
        for value in hooks:
            out.append(Assignment(attr, value, node, stmt, method, _snapshot(env), True))


def _generator_behind(value: ast.expr, env: Env) -> ast.expr:
    """The generator expression a local name is bound to, else the value itself."""
    if isinstance(value, ast.Name):
        bound = env.bindings.get(value.id)
        if isinstance(bound, ast.GeneratorExp):
            return bound
    return value


def _items_of(value: ast.expr, env: Env) -> list[ast.expr]:
    """What `items.extend(value)` puts into a local list: the items of a generator
    expression (none we can name when an item is the loop variable itself), else the
    iterable as a whole."""
    value = _generator_behind(value, env)
    if not isinstance(value, ast.GeneratorExp):
        return [value]
    loop_names = {
        n.id for comp in value.generators for n in walk(comp.target) if isinstance(n, ast.Name)
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
    source = _generator_behind(value, env)
    if isinstance(source, ast.GeneratorExp):
        for comp in source.generators:
            for name in walk(comp.target):
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
            _record_kept_handle(stmt, env, self_name or "", method, out)
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
            _drop_removed_hook(stmt.value, env, out)
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
            _drop_returned_handles(stmt.value, env, out)
            returns.append((stmt.value, _snapshot(env)))
        else:
            _walk_compound(stmt, env, package, self_name, method, out, returns)


def _bind_loop_alias(target: ast.expr, iterable: ast.expr, env: Env, self_name: str | None) -> None:
    """`for layer in self.layers`, `for i, m in enumerate(self.children())`: the loop
    variable stands for the modules of that attribute (or for every child of self)."""
    if not self_name:
        return
    if isinstance(iterable, ast.Call) and dotted_name(iterable.func) == "enumerate":
        if not iterable.args or not isinstance(target, ast.Tuple) or len(target.elts) != 2:
            return
        iterable, target = iterable.args[0], target.elts[1]
    alias = ""
    if isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Attribute):
        method, owner = iterable.func.attr, iterable.func.value
        if method.startswith("named_") and isinstance(target, ast.Tuple) and len(target.elts) == 2:
            key, target = target.elts
            if isinstance(key, ast.Name):
                env.aliases[key.id] = CHILD_NAME
        if _is_self(owner, self_name) and method in _CHILD_ITERATORS:
            alias = _CHILD_ITERATORS[method]
        elif method in ("children", "modules", "named_children", "named_modules", "values"):
            root = _self_root(owner, self_name)
            alias = root.attr if root is not None else ""
    else:
        root = _self_root(iterable, self_name)
        alias = root.attr if root is not None else ""
    if alias and isinstance(target, ast.Name):
        env.aliases[target.id] = alias


def _walk_if(
    stmt: ast.If,
    env: Env,
    package: str,
    self_name: str | None,
    method: str,
    out: list[Assignment],
    returns: list[tuple[ast.expr, Env]],
) -> None:
    """Both branches, each under its test; a branch that always leaves (`if p <= 0: return
    m`) puts the rest of the body under the other branch's side of the test."""
    outer = list(env.guards)
    env.guards = [*outer, (stmt.test, True)]
    _walk_body(stmt.body, env, package, self_name, method, out, returns)
    env.guards = [*outer, (stmt.test, False)]
    _walk_body(stmt.orelse, env, package, self_name, method, out, returns)
    env.guards = outer
    if _leaves(stmt.body) and not _leaves(stmt.orelse):
        env.guards = [*outer, (stmt.test, False)]
    elif stmt.orelse and _leaves(stmt.orelse) and not _leaves(stmt.body):
        env.guards = [*outer, (stmt.test, True)]


def _leaves(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], (ast.Return, ast.Raise))


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
        _bind_loop_alias(stmt.target, stmt.iter, env, self_name)
        _walk_body(stmt.body, env, package, self_name, method, out, returns)
        _walk_body(stmt.orelse, env, package, self_name, method, out, returns)
    elif isinstance(stmt, ast.If):
        _walk_if(stmt, env, package, self_name, method, out, returns)
    elif isinstance(stmt, ast.While):
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
    return _expand_children(facts, result)


def _expand_children(facts: ModuleFacts, assignments: list[Assignment]) -> list[Assignment]:
    """A hook registered on every child of self lands in each attribute holding a torch.nn
    module (known by its constructor; other attributes are left alone)."""
    if not any(a.attribute.startswith(CHILDREN) for a in assignments):
        return assignments
    children: dict[str, str] = {}  # attribute -> the torch.nn class it is built from
    for a in assignments:
        if not a.mutation and isinstance(a.value, ast.Call) and a.attribute not in children:
            kind = _torch_module_class(facts, a.value)
            if kind:
                children[a.attribute] = kind
    out: list[Assignment] = []
    for a in assignments:
        if not a.attribute.startswith(CHILDREN):
            out.append(a)
            continue
        _, _, only = a.attribute.partition(":")
        wanted = set(only.split(",")) if only else None
        out.extend(
            dataclasses.replace(a, attribute=child)
            for child, kind in children.items()
            if wanted is None or kind in wanted
        )
    return out


def _torch_module_class(facts: ModuleFacts, call: ast.Call) -> str:
    """`Conv2d` for `nn.Conv2d(...)` (any import style), "" for anything else."""
    dotted = dotted_name(call.func)
    head, _, rest = dotted.partition(".")
    qualified = facts.imports.get(head, head) + ("." + rest if rest else "")
    if not qualified.startswith("torch.nn.") or "functional" in qualified:
        return ""
    return qualified.rsplit(".", 1)[-1]


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
                (n for n in walk(method) if isinstance(n, ast.Return) and n.value is value),
                None,
            )
            if stmt is not None:
                out.append(Assignment(method.name, value, value, stmt, method.name, env))
    return out
