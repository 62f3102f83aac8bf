"""Whether a hazardous assignment is still in the state when the object is pickled.

Not when the same method later replaces or deletes it, nor for the lazy-open idiom
outside `__init__` (a guard on the attribute, or a helper called only under such guards):
that is how per-worker handles are meant to be made.
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.assignments import Assignment, is_cached_property
from ckpt_lsp.analysis.facts import ClassFacts, dotted_name
from ckpt_lsp.analysis.nodes import child_nodes, walk

if TYPE_CHECKING:
    from ckpt_lsp.analysis.value_context import ValueContext


def _parents(func: ast.AST) -> dict[int, ast.AST]:
    """Child -> parent map of a function, built once per node (kept on the node)."""
    cached: dict[int, ast.AST] | None = getattr(func, "_ckpt_parents", None)
    if cached is None:
        cached = {id(c): n for n in walk(func) for c in child_nodes(n)}
        func._ckpt_parents = cached  # type: ignore[attr-defined]
    return cached


def _mentions_attr(test: ast.expr, attribute: str) -> bool:
    """`self.x is None`, `not self.x`, `not hasattr(self, "x")`: a lazy-initialization guard."""
    for node in walk(test):
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
    for node in walk(func):
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
        for node in walk(method):
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


# Methods that run in the parent process before any pickling: `__init__` (and a
# dataclass's `__post_init__`), and `__len__`, which DataLoader(shuffle=True) calls at
# construction (RandomSampler checks len(dataset)), as do progress bars and trainers.
_PARENT_ROOTS = ("__init__", "__post_init__", "__len__")
_MAX_REACH = 4  # call levels followed from a root


def _is_property(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for deco in func.decorator_list:
        name = deco.attr if isinstance(deco, ast.Attribute) else getattr(deco, "id", "")
        if name in ("property", "cached_property", "lazy_property"):
            return True
    return False


def _callees(cls: ClassFacts, method: ast.AST) -> list[tuple[str, ast.AST]]:
    """Methods of the class a method runs: `self.m()`, a property read `self.p`,
    `len(self)`; each with the node that runs it."""
    found: list[tuple[str, ast.AST]] = []
    for node in walk(method):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "len"
            and len(node.args) == 1
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id == "self"
        ):
            found.append(("__len__", node))
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Load)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            target = cls.method(node.attr)
            if target is None or target is method:
                continue
            # a bound method handed on uncalled (`worker_init_fn=self.open_db`) does not run
            parent = _parents(method).get(id(node))
            if _is_property(target) or (isinstance(parent, ast.Call) and parent.func is node):
                found.append((node.attr, node))
    return found


def _reached_from_parent(cls: ClassFacts, name: str) -> tuple[ast.AST, ast.AST] | None:
    """The root method (`__init__`, `__len__`) whose run reaches method `name`, with the
    node in the root that leads there; None when no root reaches it."""
    for root_name in _PARENT_ROOTS:
        root = cls.method(root_name)
        if root is None or root_name == name:
            continue
        frontier: list[tuple[ast.AST, ast.AST]] = [(root, root)]
        seen = {root_name}
        for _ in range(_MAX_REACH):
            following: list[tuple[ast.AST, ast.AST]] = []
            for method, via in frontier:
                for callee, node in _callees(cls, method):
                    origin = node if method is root else via
                    if callee == name:
                        return root, origin
                    if callee in seen:
                        continue
                    seen.add(callee)
                    func = cls.method(callee)
                    if func is not None and (callee != "__len__" or method is root):
                        following.append((func, origin))
            frontier = following
    return None


def _top_statement(root: ast.AST, node: ast.AST) -> ast.stmt | None:
    """The statement of the root's body that holds node."""
    parents = _parents(root)
    current: ast.AST | None = node
    while current is not None:
        parent = parents.get(id(current))
        if parent is root and isinstance(current, ast.stmt):
            return current
        current = parent
    return None


def _nulls(cls: ClassFacts, helper: str, attribute: str, depth: int = 0) -> bool:
    """Whether calling `self.<helper>()` leaves the attribute None or deleted:
    `def close(self): self.fh.close(); self.fh = None`, also through
    `for n in ("fh", "db"): setattr(self, n, None)` or a further helper."""
    func = cls.method(helper)
    if func is None or depth > 2:
        return False
    loops: dict[str, set[str]] = {}
    for node in walk(func):
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name):
            names = {
                e.value
                for e in getattr(node.iter, "elts", [])
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            }
            loops[node.target.id] = names
    for stmt in func.body:
        if _resets(stmt, attribute, loops):
            return True
        if _resets_inside(stmt, attribute, loops):
            return True
        call = _self_call(stmt)
        if call and call != helper and _nulls(cls, call, attribute, depth + 1):
            return True
    return False


def _resets_inside(stmt: ast.stmt, attribute: str, loops: dict[str, set[str]]) -> bool:
    """A reset one block down that runs whatever happens: `if self.fh is not None: ...;
    self.fh = None` (None either way), a loop over names, `with`, `try`/`finally`."""
    if isinstance(stmt, ast.If) and not _mentions_attr(stmt.test, attribute):
        return False
    if isinstance(stmt, ast.Try):
        blocks = [stmt.body, stmt.finalbody]
    elif isinstance(stmt, (ast.If, ast.For, ast.With)):
        blocks = [stmt.body]
    else:
        return False
    return any(_resets(inner, attribute, loops) for block in blocks for inner in block)


def _resets(stmt: ast.stmt, attribute: str, loops: dict[str, set[str]]) -> bool:
    if isinstance(stmt, ast.Assign) and _is_none(stmt.value):
        return any(
            isinstance(t, ast.Attribute) and t.attr == attribute and _is_self_name(t.value)
            for t in stmt.targets
        )
    if isinstance(stmt, ast.Delete):
        return any(isinstance(t, ast.Attribute) and t.attr == attribute for t in stmt.targets)
    if (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Call)
        and isinstance(stmt.value.func, ast.Name)
        and stmt.value.func.id in ("setattr", "delattr")
        and len(stmt.value.args) >= 2
        and _is_self_name(stmt.value.args[0])
    ):
        call = stmt.value
        if dotted_name(call.func) == "setattr" and (
            len(call.args) < 3 or not _is_none(call.args[2])
        ):
            return False
        key = call.args[1]
        if isinstance(key, ast.Constant):
            return key.value == attribute
        return isinstance(key, ast.Name) and attribute in loops.get(key.id, set())
    return False


def _is_none(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _is_self_name(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"


def _self_call(stmt: ast.stmt) -> str:
    """`self.close()` as a statement: the method's name, else ""."""
    if (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Call)
        and isinstance(stmt.value.func, ast.Attribute)
        and _is_self_name(stmt.value.func.value)
    ):
        return stmt.value.func.attr
    return ""


def _reset_later(
    cls: ClassFacts, body: list[ast.stmt], after: int, attribute: str, ctx: ValueContext
) -> bool | None:
    """Whether a statement of `body` past line `after` replaces or clears the attribute:
    True when it is cleared, False when replaced by another hazard, None when untouched."""
    for stmt in body:
        if isinstance(stmt, ast.Try) and stmt.finalbody and (stmt.end_lineno or 0) > after:
            # `try: ...; finally: self.close()` runs the clean-up whatever happens
            found = _reset_later(cls, stmt.finalbody, after, attribute, ctx)
            if found is not None:
                return found
        if stmt.lineno <= after:
            continue
        if isinstance(stmt, ast.Delete) and any(
            isinstance(t, ast.Attribute) and t.attr == attribute for t in stmt.targets
        ):
            return True
        call = _self_call(stmt)
        if call and _nulls(cls, call, attribute):
            return True
        if isinstance(stmt, ast.If) and _resets_inside(stmt, attribute, {}):
            return True  # `if self.fh is not None: self.fh.close(); self.fh = None`
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if any(
                isinstance(t, ast.Attribute) and t.attr == attribute and _is_self_name(t.value)
                for t in targets
            ):
                return ctx.classify(stmt.value) is None
    return None


_DEF = re.compile(r"^[ \t]*(?:async[ \t]+)?def[ \t]+(\w+)", re.MULTILINE)
_INIT_FN = re.compile(r"worker_init_fn\s*=\s*(?:[\w.]*\.)?(\w+)")


def _opened_by_worker_init(text: str, name: str) -> bool:
    """A method called on the dataset a worker receives (`get_worker_info().dataset.open_db()`
    in a worker_init_fn, a lambda given as worker_init_fn): it runs in each worker, never
    in the parent."""
    handed = set(_INIT_FN.findall(text))
    if name in handed:  # worker_init_fn=ds.open_env: the worker's own copy opens
        return True
    call = f".{name}("
    if call not in text:
        return False
    if f".dataset{call}" in text:
        return True
    if any(call in line for line in text.splitlines() if "worker_init" in line):
        return True
    starts = list(_DEF.finditer(text))
    for i, match in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        chunk = text[match.start() : end]
        func = match.group(1)
        if call in chunk and (
            "worker_init" in func or func in handed or "get_worker_info" in chunk
        ):
            return True
    return False


def _left_for_workers(cls: ClassFacts, text: str, name: str) -> bool:
    """A dataset's opener that nothing in its module calls, where the module speaks of
    worker_init_fn: meant to run in each worker. (A Lightning module's `setup` is never
    called in its module either, but the trainer calls it in the parent.)"""
    if "worker_init" not in text or not any(b.endswith("Dataset") for b in cls.bases):
        return False
    return f".{name}(" not in text and f"self.{name}" not in text


def persists(cls: ClassFacts, assignment: Assignment, ctx: ValueContext) -> bool:
    """Whether a hazardous assignment can still be in the state when the object is pickled.

    Not when the same method later replaces it unconditionally (`self.tmp = open(p)`, read,
    `self.tmp = None`) or calls a helper that clears it (`self.close()`), nor when it is
    the lazy-open idiom outside the methods the parent runs (`if self._file is None:
    self._file = h5py.File(...)` in __getitem__), which is how per-worker handles are
    meant to be made. A guarded opener that __init__ or __len__ reaches (a property
    read there, a helper called there) has opened the handle in the parent anyway.
    """
    if assignment.spread and assignment.value is not None and _consumed(assignment.value, ctx):
        return False
    method = cls.method(assignment.method)
    if method is None or assignment.mutation:
        return True
    attribute = assignment.attribute
    if assignment.method != "__init__":
        reached = (
            (method, assignment.statement)
            if assignment.method in _PARENT_ROOTS
            else _reached_from_parent(cls, assignment.method)
        )
        if reached is not None:
            root, via = reached
            top = _top_statement(root, via)
            if (
                top is not None
                and isinstance(root, (ast.FunctionDef, ast.AsyncFunctionDef))
                and _reset_later(cls, root.body, top.lineno, attribute, ctx)
            ):
                return False
        elif is_cached_property(method):
            return False  # computed at first read, which the parent never does
        else:
            parents = _parents(method)
            if _guarded(assignment.statement, method, parents, {attribute}):
                return False
            if _lazily_called(cls, assignment.method):
                return False
            if not _called_in_class(cls, assignment.method) and (
                _opened_by_worker_init(ctx.facts.text, assignment.method)
                or _left_for_workers(cls, ctx.facts.text, assignment.method)
            ):
                return False
    later = _reset_later(cls, method.body, assignment.statement.lineno, attribute, ctx)
    return later is not True


def _consumed(value: ast.expr, ctx: ValueContext) -> bool:
    """Whether iterating the value on the spot (`self.layers.extend(make_layers())`) leaves
    nothing of it behind: a generator or lazy iterator whose items are not known hazards."""
    hazard = ctx.classify(value)
    if hazard is None or hazard.rule != "CKPT006" or hazard.elements:
        return False
    return "generator" in hazard.what or "iterator" in hazard.what


def _called_in_class(cls: ClassFacts, name: str) -> bool:
    for method in cls.methods_mentioning(name):
        if getattr(method, "name", "") == name:
            continue
        for node in walk(method):
            if isinstance(node, ast.Attribute) and node.attr == name and _is_self_name(node.value):
                return True
    return False
