"""Whether a hazardous assignment is still in the state when the object is pickled.

Not when the same method later replaces or deletes it, nor for the lazy-open idiom
outside `__init__` (a guard on the attribute, or a helper called only under such guards):
that is how per-worker handles are meant to be made.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.assignments import Assignment
from ckpt_lsp.analysis.facts import ClassFacts

if TYPE_CHECKING:
    from ckpt_lsp.analysis.value_context import ValueContext


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


def persists(cls: ClassFacts, assignment: Assignment, ctx: ValueContext) -> bool:
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
