"""Which statements of a function can change what some of its expressions read, so that a
local flow asked about those expressions alone skips the others.

A save call at the end of a long training method reads a handful of names; the flow of the
whole method would judge every assignment in it (each a catalog lookup, often the flow of a
helper or of a method). Here a name matters when a wanted expression reads it, or when a
statement that matters reads it; a statement matters when it mentions a name that matters
(binding, mutating or handing it on: the flow's effects are all on names a statement
mentions). A statement that matters makes what it reads matter, not what it binds: in
`out = model(x)`, with `model` mattering, `out` need not. An `if` holding a statement that
matters makes its test matter (the flow may decide the arm from it). Attributes of `self`
count one by one (`self.best`), as the flow keeps them; a bare `self` that matters makes
all of them matter.

An attribute of `self` that matters only through `if` tests (`if self.is_deepspeed_enabled:`)
needs no value from the class's other methods: the flow decides an arm from a name's truth
as the function itself set it, never from what the class assigned elsewhere.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Union

from ckpt_lsp.analysis.nodes import child_nodes

FunctionNode = Union[ast.FunctionDef, ast.AsyncFunctionDef]
_SELF = "self"


@dataclass
class _Unit:
    """A statement (or a compound statement's header) with the names it reads and binds."""

    stmt: ast.stmt
    reads: frozenset[str]
    binds: frozenset[str]
    ifs: tuple[_Unit, ...]  # the `if` headers it is nested in, innermost last
    needed: bool = False
    mentions_self: bool = field(init=False)

    def __post_init__(self) -> None:
        self.mentions_self = any(n.startswith("self.") for n in (*self.reads, *self.binds))


@dataclass(frozen=True)
class Demand:
    """What a flow asked about a few expressions needs: the statements it may skip."""

    idle: frozenset[int]  # ids of statements (a `for`: its target) nothing wanted depends on
    returns: bool  # whether what the returns give is wanted
    relevant: frozenset[str] = frozenset()  # the names (locals, `self.x`) that matter
    tested: frozenset[str] = frozenset()  # of those, the ones only `if` tests read

    def self_attributes(self) -> frozenset[str] | None:
        """The attributes of `self` whose values matter (`best` of `self.best`), not those
        only `if` tests read; None when `self` itself does (handed on or saved whole: any
        of them may)."""
        if _SELF in self.relevant:
            return None
        return frozenset(
            n[len(_SELF) + 1 :] for n in self.relevant - self.tested if n.startswith("self.")
        )


def demand(
    func: FunctionNode,
    wanted: Iterable[ast.expr],
    names: Iterable[str] = (),
    returns: bool = False,
) -> Demand:
    """The statements of `func` that cannot change what `wanted` (and the local `names`)
    read where they are, nor, with `returns`, what its `return` statements give (each of
    them is then wanted)."""
    units: list[_Unit] = []
    _collect(func.body, (), units)
    # globals, imports and builtins hold nothing in the flow's state: only locals link
    local = {a.arg for a in (*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs)}
    local.update(a.arg for a in (func.args.vararg, func.args.kwarg) if a is not None)
    for unit in units:
        local |= unit.binds
    for unit in units:
        unit.reads = frozenset(n for n in unit.reads if n in local or n.startswith("self."))
    seeds: set[str] = set()
    for expr in wanted:
        _names_in(expr, seeds, seeds)
    relevant = {n for n in (*seeds, *names) if n in local or n.startswith("self.")}
    valued = set(relevant)  # read by a wanted expression or by a statement other than a test
    changed = True
    while changed:
        changed = False
        for unit in units:
            if unit.needed:
                continue
            if not (_hits(unit, relevant) or (returns and isinstance(unit.stmt, ast.Return))):
                continue
            unit.needed = True
            relevant |= unit.reads
            if not isinstance(unit.stmt, ast.If):
                valued |= unit.reads
            for header in unit.ifs:  # the flow may decide the arm from the test
                if not header.needed:
                    header.needed = True
                    relevant |= header.reads
            changed = True
    idle = frozenset(id(u.stmt) for u in units if not u.needed)
    return Demand(idle, returns, frozenset(relevant), frozenset(relevant - valued))


def of_returns(func: FunctionNode) -> Demand:
    """What a flow asked only what the function's returns give needs."""
    return demand(func, (), returns=True)


def _hits(unit: _Unit, relevant: set[str]) -> bool:
    if not unit.reads.isdisjoint(relevant) or not unit.binds.isdisjoint(relevant):
        return True
    return unit.mentions_self and _SELF in relevant


def _collect(body: list[ast.stmt], ifs: tuple[_Unit, ...], units: list[_Unit]) -> None:
    for stmt in body:
        if isinstance(stmt, ast.If):
            header = _unit(stmt, [stmt.test], (), ifs)
            units.append(header)
            _collect(stmt.body, (*ifs, header), units)
            _collect(stmt.orelse, (*ifs, header), units)
        elif isinstance(stmt, (ast.For, ast.AsyncFor)):
            units.append(_unit(stmt, [stmt.iter], [stmt.target], ifs))
            _collect(stmt.body, ifs, units)
            _collect(stmt.orelse, ifs, units)
        elif isinstance(stmt, ast.While):
            units.append(_unit(stmt, [stmt.test], (), ifs))
            _collect(stmt.body, ifs, units)
            _collect(stmt.orelse, ifs, units)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            items = [i.context_expr for i in stmt.items]
            targets = [i.optional_vars for i in stmt.items if i.optional_vars is not None]
            units.append(_unit(stmt, items, targets, ifs))
            _collect(stmt.body, ifs, units)
        elif isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
            for part in ("body", "orelse", "finalbody"):
                _collect(getattr(stmt, part, []), ifs, units)
            for handler in getattr(stmt, "handlers", []):
                _collect(handler.body, ifs, units)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            units.append(_Unit(stmt, frozenset(), frozenset({stmt.name}), ifs))
        else:
            units.append(_unit(stmt, [stmt], (), ifs))


def _unit(
    stmt: ast.stmt, read: Iterable[ast.AST], bound: Iterable[ast.AST], ifs: tuple[_Unit, ...]
) -> _Unit:
    reads: set[str] = set()
    binds: set[str] = set()
    for node in (*read, *bound):
        _names_in(node, reads, binds)
    if isinstance(stmt, ast.AugAssign):  # `best += x` reads what `best` held
        reads |= binds
    return _Unit(stmt, frozenset(reads), frozenset(binds), ifs)


def _names_in(node: ast.AST, reads: set[str], binds: set[str]) -> None:
    """The names under `node`: `self.x` as one name; a name stored to (not through) binds."""
    stack = [node]
    while stack:
        here = stack.pop()
        if (
            isinstance(here, ast.Attribute)
            and isinstance(here.value, ast.Name)
            and here.value.id == _SELF
        ):
            name = f"{_SELF}.{here.attr}"
            (binds if isinstance(here.ctx, (ast.Store, ast.Del)) else reads).add(name)
            continue
        if isinstance(here, ast.Name):
            (binds if isinstance(here.ctx, (ast.Store, ast.Del)) else reads).add(here.id)
            continue
        stack.extend(child_nodes(here))
