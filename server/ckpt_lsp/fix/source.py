"""Parse the file being fixed and read the few module facts the fix needs.

The stdlib `ast` gives the rows and columns the edits are placed by (it is ~10x
faster than libcst on big files, and edits never re-print existing code, so the
user's formatting is kept by construction). A file that does not parse as a
whole (the user is typing elsewhere) is parsed block by block: the top-level
blocks that parse still provide the class and the module-level names.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterator
from dataclasses import dataclass, field

from ckpt_lsp.fix.bases import UNKNOWN_GETSTATE, BaseProtocol, lookup
from ckpt_lsp.fix.text import LineTable

BUILTIN_NAMES = frozenset(dir(builtins))
_CONTINUATIONS = ("else", "elif", "except", "finally")
FunctionNode = (ast.FunctionDef, ast.AsyncFunctionDef)
NEW_SCOPES = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Lambda,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)


@dataclass
class ParsedModule:
    tree: ast.Module
    table: LineTable
    names: set[str] = field(default_factory=set)  # bound at module level
    imports: dict[str, str] = field(default_factory=dict)  # local name -> qualified name
    star_import: bool = False
    whole: bool = True  # False when only some top-level blocks parsed


def _parse(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):  # ValueError: null bytes
        return None


def _starts_block(line: str) -> bool:
    if not line.strip() or line[0] in " \t\f#)]}":
        return False
    word = line.split(None, 1)[0].rstrip(":")
    return word not in _CONTINUATIONS


def top_level_blocks(table: LineTable) -> list[tuple[int, int]]:
    """(first row, last row) of each top-level statement, decorators kept with their def."""
    blocks: list[tuple[int, int]] = []
    start = 0
    decorating = False
    for row in range(1, table.row_count + 1):
        line = table.line(row)
        if not _starts_block(line):
            continue
        if decorating and not line.startswith("@"):
            decorating = False
            continue
        if start:
            blocks.append((start, row - 1))
        start = row
        decorating = line.startswith("@")
    if start:
        blocks.append((start, table.row_count))
    return blocks


def parse_module(source: str) -> ParsedModule | None:
    """The module's tree (or the union of its blocks that parse), or None."""
    table = LineTable(source)
    tree = _parse(source)
    whole = tree is not None
    if tree is None:
        body: list[ast.stmt] = []
        for first, last in top_level_blocks(table):
            # Pad with empty lines so rows in the block's tree match the file.
            chunk = "\n" * (first - 1) + "".join(table.lines[first - 1 : last])
            part = _parse(chunk)
            if part is not None:
                body.extend(part.body)
        if not body:
            return None
        tree = ast.Module(body=body, type_ignores=[])
    module = ParsedModule(tree=tree, table=table, whole=whole)
    for stmt in tree.body:
        _collect_module_names(stmt, module)
    return module


def _collect_module_names(stmt: ast.stmt, module: ParsedModule) -> None:
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        for alias in stmt.names:
            if alias.name == "*":
                module.star_import = True
                continue
            if isinstance(stmt, ast.Import):
                local = alias.asname or alias.name.split(".")[0]
                module.imports[local] = alias.name if alias.asname else local
            else:
                local = alias.asname or alias.name
                if stmt.level == 0 and stmt.module:
                    module.imports[local] = f"{stmt.module}.{alias.name}"
            module.names.add(local)
        return
    if isinstance(stmt, (*FunctionNode, ast.ClassDef)):
        module.names.add(stmt.name)
        return
    for node in _walk_same_scope(stmt):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            module.names.add(node.id)
        elif isinstance(node, (*FunctionNode, ast.ClassDef)):
            module.names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            _collect_module_names(node, module)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            module.names.add(node.name)


def _walk_same_scope(node: ast.AST) -> Iterator[ast.AST]:
    """Nodes of one scope: nested functions, classes, lambdas and comprehensions are not entered."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        for child in ast.iter_child_nodes(current):
            if isinstance(child, NEW_SCOPES):
                yield child  # its name (for defs) belongs to this scope; its body does not
                continue
            stack.append(child)


def walk_same_scope(node: ast.AST) -> Iterator[ast.AST]:
    """Public alias: every node of the scope that `node` opens, `node` included."""
    for child in ast.iter_child_nodes(node):
        yield from _walk_same_scope(child)


def _child_statements(node: ast.AST) -> Iterator[ast.stmt]:
    """Statements directly inside a statement's blocks (classes only live in statements)."""
    for name in ("body", "orelse", "finalbody", "handlers", "cases"):
        for child in getattr(node, name, None) or []:
            if isinstance(child, ast.stmt):
                yield child
            else:  # except handlers and match cases hold statements
                yield from getattr(child, "body", [])


def _classes(
    node: ast.AST, prefix: str | None, depth: int
) -> Iterator[tuple[ast.ClassDef, str | None, int]]:
    """Every class under node with its dotted name (None inside functions) and depth."""
    for child in _child_statements(node):
        if isinstance(child, ast.ClassDef):
            dotted = None if prefix is None else f"{prefix}{child.name}"
            yield child, dotted, depth
            yield from _classes(child, None if dotted is None else f"{dotted}.", depth + 1)
        elif isinstance(child, FunctionNode):
            yield from _classes(child, None, depth + 1)
        else:
            yield from _classes(child, prefix, depth)


def find_class(
    tree: ast.Module, class_name: str, class_line: int
) -> tuple[ast.ClassDef, int] | None:
    """The class a target names, and its nesting depth; the row wins over the name."""
    last = class_name.split(".")[-1]
    by_name: list[tuple[ast.ClassDef, int]] = []
    for node, dotted, depth in _classes(tree, "", 0):
        if node.lineno == class_line and node.name == last:
            return node, depth
        if dotted == class_name:
            by_name.append((node, depth))
    return by_name[0] if len(by_name) == 1 else None


def qualify(expr: ast.expr, imports: dict[str, str]) -> str | None:
    """`nn.Module` -> `torch.nn.Module` through the module's imports."""
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name):
        return None
    root = imports.get(expr.id, expr.id)
    return ".".join([root, *reversed(parts)])


def class_methods(cls: ast.ClassDef) -> dict[str, ast.stmt]:
    """Names bound directly in the class body (the last binding wins, as at runtime)."""
    found: dict[str, ast.stmt] = {}
    for stmt in cls.body:
        if isinstance(stmt, (*FunctionNode, ast.ClassDef)):
            found[stmt.name] = stmt
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                for node in ast.walk(target):
                    if isinstance(node, ast.Name):
                        found[node.id] = stmt
    return found


def base_protocol(
    cls: ast.ClassDef, module: ParsedModule, extra_bases: tuple[str, ...]
) -> BaseProtocol | None:
    """What the class's bases define: from the analyzer's names, the table and this module."""
    top_classes = {s.name: s for s in module.tree.body if isinstance(s, ast.ClassDef)}
    found: list[BaseProtocol] = []
    seen: set[str] = set()

    def from_class(node: ast.ClassDef) -> None:
        if node.name in seen:
            return
        seen.add(node.name)
        methods = class_methods(node)
        if "__getstate__" in methods or "__setstate__" in methods:
            found.append(
                BaseProtocol(
                    getstate="__getstate__" in methods,
                    setstate="__setstate__" in methods,
                    fresh=False,
                )
            )
        for base in node.bases:
            if isinstance(base, ast.Name) and base.id in top_classes:
                from_class(top_classes[base.id])
                continue
            name = qualify(base, module.imports)
            known = lookup(name) if name else None
            if known:
                found.append(known)

    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id in top_classes and base.id != cls.name:
            from_class(top_classes[base.id])
        else:
            name = qualify(base, module.imports)
            known = lookup(name) if name else None
            if known:
                found.append(known)
    for name in extra_bases:
        known = lookup(name)
        if known:
            found.append(known)
    if not found:
        return None
    getstate = [p for p in found if p.getstate]
    return BaseProtocol(
        getstate=bool(getstate),
        setstate=any(p.setstate for p in found),
        fresh=bool(getstate) and all(p.fresh for p in getstate),
        submodules=any(p.submodules for p in found),
    )


__all__ = [
    "BUILTIN_NAMES",
    "UNKNOWN_GETSTATE",
    "ParsedModule",
    "base_protocol",
    "class_methods",
    "find_class",
    "parse_module",
    "qualify",
    "top_level_blocks",
    "walk_same_scope",
]


_LIBRARY_ROOTS = frozenset(
    {"builtins", "object", "torch", "lightning", "pytorch_lightning", "sklearn", "transformers"}
) | frozenset(getattr(__import__("sys"), "stdlib_module_names", ()))


def has_foreign_base(cls: ast.ClassDef, module: ParsedModule) -> bool:
    """A base from another project file (or the class is unknown): it may be an nn.Module."""
    top_classes = {s.name for s in module.tree.body if isinstance(s, ast.ClassDef)}
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id in top_classes:
            continue
        name = qualify(base, module.imports)
        if name is None or name.split(".")[0] not in _LIBRARY_ROOTS:
            return True
    return False
