"""The module facts the fix needs, taken from the analysis.

The analysis already splits the file into top-level blocks (each parsed on its
own and cached by its text), reads the imports and the classes with their bases.
The fix reuses all of it: a file that does not parse as a whole (the user is
typing elsewhere) still gives the blocks that do, and the class being fixed is
found in its own block. What is added here is only what editing needs: the
names that exist at module level after unpickling, the class a target names,
and what the class's bases do about pickling.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from ckpt_lsp.analysis.facts import ModuleFacts, ParsedBlock, dotted_name, module_facts
from ckpt_lsp.analysis.names import qualify
from ckpt_lsp.analysis.nodes import child_nodes, walk
from ckpt_lsp.analysis.parsing import TextCaches
from ckpt_lsp.analysis.stdlib import STDLIB_MODULES
from ckpt_lsp.fix.bases import BaseProtocol, lookup
from ckpt_lsp.fix.text import LineTable

BUILTIN_NAMES = frozenset(dir(builtins))
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
class FixModule:
    """The analysis's facts of the file, and every name bound at module level."""

    source: str
    facts: ModuleFacts
    names: set[str] = field(default_factory=set)

    @property
    def imports(self) -> dict[str, str]:
        """Local name -> qualified name (relative imports included)."""
        return self.facts.imports

    def block_offset(self, parsed: ParsedBlock) -> int:
        """Offset of a block's first character in the source: blocks follow each other to
        the end of the file, so no line table of the whole file is needed (one is made
        only if that ever stops being so)."""
        after = 0
        for other in reversed(self.facts.blocks):
            after += len(other.block.text)
            if other is parsed:
                break
        offset = len(self.source) - after
        if self.source.startswith(parsed.block.text, offset):
            return offset
        return LineTable(self.source).row_start(parsed.block.start_row)


@dataclass(frozen=True)
class FoundClass:
    node: ast.ClassDef  # rows relative to its block
    parsed: ParsedBlock  # the top-level block it lives in
    depth: int  # 0 for a top-level class


# A code action re-reads the text the last one read: its blocks come from here. (The fix
# package has no instance to own it yet; the analysis's caches belong to each Analyzer.)
_TEXT_CACHES = TextCaches()


def load_module(source: str, facts: ModuleFacts | None = None) -> FixModule:
    """The module's facts (from the analysis, blocks cached by text) and bound names.
    `facts`: the analysis's own facts of this very text, when the caller has them (a batch
    run fixes the file it just analyzed: its blocks are parsed already)."""
    if facts is None or facts.text != source:
        facts = module_facts("", "", source, _TEXT_CACHES)
    module = FixModule(source, facts)
    module.names = set(facts.imports) | set(facts.classes) | set(facts.functions)
    module.names |= set(facts.assigns)
    for parsed in facts.blocks:
        # Tuple targets, loops, `with`, except handlers... beyond the analysis's facts.
        if parsed.tree is not None and parsed.block.kind == "other":
            for stmt in parsed.tree.body:
                module.names |= bound_names(_walk_same_scope(stmt))
    return module


def bound_names(nodes: Iterable[ast.AST], deleted: bool = False) -> set[str]:
    """Names that these nodes of one scope bind: assignment (and, when asked, `del`)
    targets, defs and classes, imports, except handlers; not the `global`/`nonlocal` ones."""
    targets = (ast.Store, ast.Del) if deleted else (ast.Store,)
    names: set[str] = set()
    declared: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Name) and isinstance(node.ctx, targets):
            names.add(node.id)
        elif isinstance(node, (*FunctionNode, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared |= set(node.names)
    return names - declared


def _walk_same_scope(node: ast.AST) -> Iterator[ast.AST]:
    """Nodes of one scope: nested functions, classes, lambdas and comprehensions are not entered."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        for child in child_nodes(current):
            if isinstance(child, NEW_SCOPES):
                yield child  # its name (for defs) belongs to this scope; its body does not
                continue
            stack.append(child)


def walk_same_scope(node: ast.AST) -> Iterator[ast.AST]:
    """Every node of the scope that `node` opens (its own children, nested scopes not entered)."""
    for child in child_nodes(node):
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


def find_class(module: FixModule, class_name: str, class_line: int) -> FoundClass | str:
    """The class a target names, or why it cannot be had; the row wins over the name."""
    last = class_name.split(".")[-1]
    reason = "the class was not found"
    for parsed in module.facts.blocks:  # the block that holds the row first
        if parsed.block.start_row <= class_line <= parsed.block.end_row:
            if parsed.tree is None:
                reason = "the class does not parse"
                break
            for node, _, depth in _classes(parsed.tree, "", 0):
                if node.lineno + parsed.row_offset == class_line and node.name == last:
                    return FoundClass(node, parsed, depth)
    by_name = [
        FoundClass(node, parsed, depth)
        for parsed in module.facts.blocks
        if parsed.tree is not None
        for node, dotted, depth in _classes(parsed.tree, "", 0)
        if dotted == class_name
    ]
    return by_name[0] if len(by_name) == 1 else reason


def class_methods(cls: ast.ClassDef) -> dict[str, ast.stmt]:
    """Names bound directly in the class body (the last binding wins, as at runtime)."""
    found: dict[str, ast.stmt] = {}
    for stmt in cls.body:
        if isinstance(stmt, (*FunctionNode, ast.ClassDef)):
            found[stmt.name] = stmt
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                for node in walk(target):
                    if isinstance(node, ast.Name):
                        found[node.id] = stmt
    return found


def base_names(cls: ast.ClassDef) -> list[str]:
    """Dotted source text of each base, as the analysis reads them ("" when not a name)."""
    return [dotted_name(b.value if isinstance(b, ast.Subscript) else b) for b in cls.bases]


def base_protocol(
    cls: ast.ClassDef, module: FixModule, extra_bases: tuple[str, ...]
) -> BaseProtocol | None:
    """What the class's bases define: from the analyzer's names, the table and this module."""
    local = module.facts.classes
    found: list[BaseProtocol] = []
    seen: set[str] = set()

    def from_bases(names: Sequence[str], own: str) -> None:
        for name in names:
            if name in local and name != own:
                from_class(name)
            else:
                known = lookup(qualify(name, module.facts)) if name else None
                if known:
                    found.append(known)

    def from_class(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        node = local[name].node
        methods = class_methods(node)
        if "__getstate__" in methods or "__setstate__" in methods:
            found.append(
                BaseProtocol(
                    getstate="__getstate__" in methods,
                    setstate="__setstate__" in methods,
                    fresh=False,
                )
            )
        from_bases(local[name].bases, name)

    from_bases(base_names(cls), cls.name)
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


_LIBRARY_ROOTS = (
    frozenset(
        {"builtins", "object", "torch", "lightning", "pytorch_lightning", "sklearn", "transformers"}
    )
    | STDLIB_MODULES
)


def has_foreign_base(cls: ast.ClassDef, module: FixModule) -> bool:
    """A base from another project file (or the class is unknown): it may be an nn.Module."""
    for name in base_names(cls):
        if name in module.facts.classes:
            continue
        qualified = qualify(name, module.facts)
        if not qualified or qualified.split(".")[0] not in _LIBRARY_ROOTS:
            return True
    return False
