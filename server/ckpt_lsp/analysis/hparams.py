"""What `self.save_hyperparameters(...)` in a Lightning `__init__` stores, read from syntax.

Lightning 2.6 (`lightning.pytorch.utilities.parsing.save_hyperparameters`):
- no positional argument: every `__init__` parameter but `*args`/`**kwargs` themselves (their
  contents go in under their own keys), minus `ignore=` (a string or a list/tuple of strings);
- string arguments: only the parameters named (an ignored name among them raises KeyError);
- one other argument (`save_hyperparameters(cfg)`): that object itself, a dict or Namespace by
  its entries, an OmegaConf container whole, with its type.
Only literal forms are read: an `ignore=` or argument computed at runtime leaves the class
unjudged (the analysis never guesses what a checkpoint holds).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ckpt_lsp.analysis.config_containers import CONVERTERS
from ckpt_lsp.analysis.facts import dotted_name, super_init_call
from ckpt_lsp.analysis.nodes import child_nodes, walk

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FunctionNode = (ast.FunctionDef, ast.AsyncFunctionDef)
_DATA = Path(__file__).resolve().parent.parent / "data" / "hparams.toml"

# `x = list(x)` before the call stores a list of what was passed's items (a numpy array's
# are numpy scalars): judged with the calls' values, as a config's conversion is
ITEM_COPIES = frozenset({"builtins.list", "builtins.tuple"})


@lru_cache(maxsize=1)
def lightning_bases() -> frozenset[str]:
    """The qualified names of the classes that have `save_hyperparameters` (data)."""
    with _DATA.open("rb") as fh:
        raw = tomllib.load(fh)
    bases = raw.get("lightning_bases")
    if not isinstance(bases, list) or not all(isinstance(b, str) and "." in b for b in bases):
        raise ValueError(f"{_DATA.name}: lightning_bases must be a list of qualified names")
    return frozenset(bases)


@dataclass(frozen=True)
class SavedHparams:
    """One `save_hyperparameters` call of an `__init__` and the parameters it stores."""

    call: ast.Call
    stored: tuple[ast.arg, ...]  # stored under their own names
    container: ast.arg | None = None  # save_hyperparameters(cfg): the object itself is stored
    named: bool = False  # the call names what it stores ("a", "b"): ignore= cannot drop one
    owner: str = ""  # the base class whose __init__ makes the call, when not the class's own


def init_parameters(func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.arg]:
    """The named parameters of an `__init__`, `self` left out."""
    args = func.args
    positional = [*args.posonlyargs, *args.args]
    return [*positional[1:], *args.kwonlyargs]


def default_of(func: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> ast.expr | None:
    """The default value of a parameter, None when it has none."""
    args = func.args
    positional = [*args.posonlyargs, *args.args]
    for arg, default in zip(positional[len(positional) - len(args.defaults) :], args.defaults):
        if arg.arg == name:
            return default
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults):
        if arg.arg == name:
            return kw_default
    return None


def _own_calls(func: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.Call]:
    """`self.save_hyperparameters(...)` calls in the function itself, in source order (a
    nested function's call has another frame, which Lightning reads no parameters from)."""
    self_name = func.args.args[0].arg if func.args.args else ""
    stack: list[ast.AST] = list(reversed(func.body))
    while stack:
        node = stack.pop()
        if isinstance(node, (*FunctionNode, ast.ClassDef, ast.Lambda)):
            continue
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "save_hyperparameters"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == self_name
        ):
            yield node
        stack.extend(reversed(list(child_nodes(node))))


def first_save_call(func: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.Call | None:
    """The first `self.save_hyperparameters(...)` of a function, the one Lightning obeys."""
    return next(_own_calls(func), None)


def rebound_before(func: ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call) -> frozenset[str]:
    """Names the function binds before `call` (`x = float(x)`, `for x in ...`, `with ... as x`).

    `save_hyperparameters()` reads the frame's locals at the call (lightning 2.6, measured):
    a parameter converted before it is stored converted, so the caller's value no longer
    tells what the checkpoint holds (one rebound after the call is stored as passed)."""
    where = (call.lineno, call.col_offset)
    names: set[str] = set()
    stack: list[ast.AST] = list(func.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (*FunctionNode, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Name) and _stored_before(node, where):
            names.add(node.id)
        stack.extend(child_nodes(node))
    return frozenset(names)


def converted_before(
    func: ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call, qualified: Callable[[str], str]
) -> dict[str, ast.Call]:
    """Parameters the function binds before `call` only by converting themselves at its top
    level (`cfg = OmegaConf.to_container(cfg, resolve=True)`), with the converting call: the
    value stored is the caller's value so converted."""
    return {
        name: value
        for name, value in rebound_once(func, call).items()
        if isinstance(value, ast.Call)
        and len(value.args) == 1
        and isinstance(value.args[0], ast.Name)
        and value.args[0].id == name
        and qualified(dotted_name(value.func)) in CONVERTERS | ITEM_COPIES
    }


def rebound_once(
    func: ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call
) -> dict[str, ast.expr]:
    """Parameters the function binds before `call` only once, at its top level (`x =
    np.asarray(x, dtype=np.float32)`), with the value: what is stored."""
    where = (call.lineno, call.col_offset)
    params = {p.arg for p in init_parameters(func)}
    found: dict[str, ast.expr] = {}
    for stmt in func.body:
        if (stmt.lineno, stmt.col_offset) >= where:
            break
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
            if isinstance(target, ast.Name) and target.id in params:
                found.setdefault(target.id, stmt.value)
    return _bound_once(func, call, found)


def _bound_once(
    func: ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call, found: dict[str, ast.expr]
) -> dict[str, ast.expr]:
    """The entries of `found` whose name the function binds exactly once before `call`."""
    where = (call.lineno, call.col_offset)
    binds: dict[str, int] = {}
    for node in walk(func):
        if isinstance(node, ast.Name) and _stored_before(node, where):
            binds[node.id] = binds.get(node.id, 0) + 1
    return {name: value for name, value in found.items() if binds.get(name) == 1}


def guarded_rebinds(
    func: ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call
) -> dict[str, ast.expr]:
    """Parameters converted before `call` only when given: `if w is not None: w =
    np.asarray(w)` (or `if w:`) at the top of the body, the one binding of the name before
    the call. What is stored is the converted value whenever the caller passes one."""
    params = {p.arg for p in init_parameters(func)}
    found: dict[str, ast.expr] = {}
    for name, value in _tested_rebinds(func, call, given=True):
        if name in params:
            found.setdefault(name, value)
    return _bound_once(func, call, found)


def overwritten_after(
    func: ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call
) -> dict[str, ast.expr | None]:
    """Entries the function sets in `self.hparams` after `call` (`self.hparams.onset =
    float(onset)`): what the checkpoint then holds. The value of a store at the top of the
    body; None for one under a branch or loop, or for an entry set twice (not known which)."""
    where = (call.lineno, call.col_offset)
    found: dict[str, ast.expr | None] = {}
    for stmt in func.body:
        for node in walk(stmt):
            if not isinstance(node, ast.Assign) or (node.lineno, node.col_offset) < where:
                continue
            for target in node.targets:
                name = _hparams_entry(target)
                if name is None:
                    continue
                straight = node is stmt and len(node.targets) == 1 and name not in found
                found[name] = node.value if straight else None
    return found


def _hparams_entry(target: ast.expr) -> str | None:
    """`self.hparams.x` or `self.hparams["x"]` as a store's target: "x"."""
    holder = target.value if isinstance(target, (ast.Attribute, ast.Subscript)) else None
    if not (
        isinstance(holder, ast.Attribute)
        and holder.attr == "hparams"
        and isinstance(holder.value, ast.Name)
        and holder.value.id == "self"
    ):
        return None
    if isinstance(target, ast.Attribute):
        return target.attr
    key = target.slice if isinstance(target, ast.Subscript) else None
    return key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None


def none_fills(func: ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call) -> dict[str, ast.expr]:
    """Parameters filled in before `call` when left out: `if loss is None: loss = MSELoss()`
    at the top of the body (`if not loss:` too). What is stored is then either what the
    caller passed or that value, which takes the place of the `None` default."""
    return dict(_tested_rebinds(func, call, given=False))


def _tested_rebinds(
    func: ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call, given: bool
) -> Iterator[tuple[str, ast.expr]]:
    """`if x is None: x = v` / `if not x: x = v` (`given` False), or `if x is not None: x = v`
    / `if x: x = v` (`given` True), at the top of the body before `call`: the name and `v`.
    The same as one expression: `x = x if x is not None else v`, `x = x or v`."""
    for stmt in func.body:
        if (stmt.lineno, stmt.col_offset) >= (call.lineno, call.col_offset):
            break
        if isinstance(stmt, ast.Assign):
            found = _tested_expression(stmt, given)
            if found is not None:
                yield found
            continue
        if not isinstance(stmt, ast.If) or stmt.orelse or len(stmt.body) != 1:
            continue
        tested = _name_test(stmt.test)
        body = stmt.body[0]
        if (
            tested is not None
            and tested[1] is given
            and isinstance(body, ast.Assign)
            and len(body.targets) == 1
            and isinstance(body.targets[0], ast.Name)
            and body.targets[0].id == tested[0]
        ):
            yield tested[0], body.value


def _tested_expression(stmt: ast.Assign, given: bool) -> tuple[str, ast.expr] | None:
    """`x = x if x is not None else v` / `x = v if x is None else x` / `x = x or v` (`given`
    False: `v` fills a left-out `x`), or `x = f(x) if x is not None else None` (`given` True:
    `f(x)` is what a given `x` becomes): the name and `v` (or `f(x)`)."""
    if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
        return None
    name, value = stmt.targets[0].id, stmt.value
    if isinstance(value, ast.BoolOp) and isinstance(value.op, ast.Or) and not given:
        first, *rest = value.values
        if len(rest) == 1 and isinstance(first, ast.Name) and first.id == name:
            return name, rest[0]
        return None
    if not isinstance(value, ast.IfExp):
        return None
    tested = _name_test(value.test)
    if tested is None or tested[0] != name:
        return None
    when_given, when_left = (value.body, value.orelse) if tested[1] else (value.orelse, value.body)
    if given and (_names(when_left, name) or _is_none_constant(when_left)):
        return name, when_given
    if not given and _names(when_given, name):
        return name, when_left
    return None


def _names(expr: ast.expr, name: str) -> bool:
    return isinstance(expr, ast.Name) and expr.id == name


def _is_none_constant(expr: ast.expr) -> bool:
    return isinstance(expr, ast.Constant) and expr.value is None


def _name_test(test: ast.expr) -> tuple[str, bool] | None:
    """The name an `if` tests and whether the test passes when it holds a value: `x is not
    None` and `x` (True), `x is None` and `not x` (False)."""
    if isinstance(test, ast.Name):
        return test.id, True
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return (test.operand.id, False) if isinstance(test.operand, ast.Name) else None
    if (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and len(test.ops) == 1
        and isinstance(test.ops[0], (ast.Is, ast.IsNot))
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value is None
    ):
        return test.left.id, isinstance(test.ops[0], ast.IsNot)
    return None


def iterated_parameters(func: ast.FunctionDef | ast.AsyncFunctionDef) -> frozenset[str]:
    """Parameters the function loops over itself (`for h in hidden_sizes`, a comprehension,
    `enumerate(sizes)`, `zip(a, b)`): a value it iterates is a container (or a string)."""
    names: set[str] = set()
    for node in walk(func):
        if isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            over = node.iter
            if isinstance(over, ast.Call) and dotted_name(over.func) in ("enumerate", "zip"):
                names.update(a.id for a in over.args if isinstance(a, ast.Name))
            elif isinstance(over, ast.Name):
                names.add(over.id)
    params = {p.arg for p in init_parameters(func)}
    return frozenset(names & params)


def member_read_parameters(func: ast.FunctionDef | ast.AsyncFunctionDef) -> frozenset[str]:
    """Parameters the function reads a member of (`model_cfg.dim` not called, `spec["r"]`):
    a config node or a mapping, not a number or a string (whose members are methods)."""
    called = {id(n.func) for n in walk(func) if isinstance(n, ast.Call)}
    names: set[str] = set()
    for node in walk(func):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Load)
            and id(node) not in called
            and not node.attr.startswith("__")
            and node.attr not in _NUMBER_ATTRIBUTES
        ) or (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            owner = node.value
        else:
            continue
        if isinstance(owner, ast.Name):
            names.add(owner.id)
    params = {p.arg for p in init_parameters(func)}
    return frozenset(names & params)


_NUMBER_ATTRIBUTES = frozenset({"real", "imag", "numerator", "denominator"})


def _stored_before(node: ast.Name, where: tuple[int, int]) -> bool:
    return isinstance(node.ctx, ast.Store) and (node.lineno, node.col_offset) < where


ClassValue = Callable[[str], "ast.expr | None"]


def ignored_names(call: ast.Call, class_value: ClassValue | None = None) -> frozenset[str] | None:
    """The names of `ignore=`; None when it is not a literal of strings. `class_value` reads
    a class attribute of the instance's class: `ignore=list(self.hparams_ignore)` of a class
    that sets `hparams_ignore = ("scaler",)` (looked up from the class built, then its bases)."""
    for kw in call.keywords:
        if kw.arg is None:
            return None  # **options: ignore may be among them
        if kw.arg != "ignore":
            continue
        value = kw.value
        if isinstance(value, ast.Call) and dotted_name(value.func) in ("list", "tuple", "set"):
            value = value.args[0] if len(value.args) == 1 and not value.keywords else value
        attribute = _self_attribute(value)
        if attribute and class_value is not None:
            value = class_value(attribute) or value
        if isinstance(value, ast.Constant) and value.value is None:
            return frozenset()
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return frozenset({value.value})
        if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
            names = [e.value for e in value.elts if isinstance(e, ast.Constant)]
            if len(names) == len(value.elts) and all(isinstance(n, str) for n in names):
                return frozenset(str(n) for n in names)
        return None
    return frozenset()


def _self_attribute(value: ast.expr) -> str:
    """`self.X` or `type(self).X`: X; "" otherwise."""
    if not isinstance(value, ast.Attribute):
        return ""
    owner = value.value
    if isinstance(owner, ast.Name) and owner.id == "self":
        return value.attr
    if (
        isinstance(owner, ast.Call)
        and dotted_name(owner.func) == "type"
        and len(owner.args) == 1
        and isinstance(owner.args[0], ast.Name)
        and owner.args[0].id == "self"
    ):
        return value.attr
    return ""


def calls_super_init(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """`super().__init__(...)` in the function: its frame then holds `__class__`, which is how
    Lightning's save_hyperparameters, called further down, finds and stores its arguments."""
    return super_init_call(func) is not None


def inherited_hparams(
    func: ast.FunctionDef | ast.AsyncFunctionDef,
    base: SavedHparams,
    owner: str,
    class_value: ClassValue | None = None,
) -> SavedHparams | None:
    """What a base's `save_hyperparameters()` stores of a subclass `__init__`'s parameters
    (lightning 2.6 collects the arguments of every `__init__` frame up the `super()` chain,
    then applies the one call's `ignore=` or names)."""
    if base.container is not None:
        return None
    ignore = ignored_names(base.call, class_value) or frozenset()
    params = init_parameters(func)
    if base.named:
        names = {str(a.value) for a in base.call.args if _is_name(a)}  # type: ignore[attr-defined]
        kept = tuple(p for p in params if p.arg in names and p.arg not in ignore)
    else:
        kept = tuple(p for p in params if p.arg not in ignore)
    return SavedHparams(base.call, kept, named=base.named, owner=owner)


def _is_name(arg: ast.expr) -> bool:
    return isinstance(arg, ast.Constant) and isinstance(arg.value, str)


def saved_hparams(
    func: ast.FunctionDef | ast.AsyncFunctionDef, class_value: ClassValue | None = None
) -> SavedHparams | None:
    """What the first `self.save_hyperparameters(...)` of an `__init__` stores; None when
    there is none or its arguments are not literal enough to tell."""
    call = first_save_call(func)
    if call is None:
        return None
    ignore = ignored_names(call, class_value)
    if ignore is None or any(isinstance(a, ast.Starred) for a in call.args):
        return None
    params = {p.arg: p for p in init_parameters(func)}
    names = [str(a.value) for a in call.args if _is_name(a)]  # type: ignore[attr-defined]
    others = [a for a in call.args if not _is_name(a)]
    if len(others) == 1 and not names:
        held = others[0]
        if isinstance(held, ast.Name) and held.id in params:
            return SavedHparams(call, (), container=params[held.id])
        return None
    if others:
        return None
    if names:
        kept = tuple(params[n] for n in dict.fromkeys(names) if n in params and n not in ignore)
        return SavedHparams(call, kept, named=True)
    return SavedHparams(call, tuple(p for p in params.values() if p.arg not in ignore))
