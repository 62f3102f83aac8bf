"""Module facts: what one module defines and imports, from its blocks.

Facts need names only (imports, classes and their base expressions, top-level
functions and module-level assignments), so they come from the stdlib `ast` of each block, parsed
on its own through the analyzer's text caches (parsing.py): a keystroke re-parses one block.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ckpt_lsp.analysis.blocks import Block, blocks_from_tree, split_blocks, split_lines
from ckpt_lsp.analysis.class_text import (
    ClassText,
    FunctionNode,
    function_named,
    split_body,
)
from ckpt_lsp.analysis.layout import class_layout
from ckpt_lsp.analysis.nodes import child_nodes, walk
from ckpt_lsp.analysis.parsing import UNCACHED, ParsedBlock, TextCaches
from ckpt_lsp.analysis.stdlib import STDLIB_MODULES

_STDLIB = STDLIB_MODULES


class ClassFacts:
    """A top-level class: its name and bases, and its methods parsed on demand.

    A class cut by `layout.class_layout` (see ClassText) has its header (bases,
    class-level statements) parsed at once, the methods that may assign `self` when the
    classifier first asks, and any other method only when asked for by name. A class
    that cannot be cut, or whose pieces do not parse, is read whole."""

    def __init__(
        self,
        name: str,
        node: ast.ClassDef,
        parsed: ParsedBlock,
        bases: tuple[str, ...],  # dotted source text of each base; "" when not a name
        shape: ClassText | None = None,
    ) -> None:
        self.name = name
        self.parsed = parsed
        self.bases = bases
        self._node = node  # the whole class (not cut), or its header
        self._shape = shape
        self._split: tuple[list[FunctionNode], list[ast.stmt]] | None = None

    @property
    def row(self) -> int:
        return self._node.lineno + self.parsed.row_offset

    @property
    def node(self) -> ast.ClassDef:
        """The whole class (read whole now if it was cut)."""
        return self._shape.whole() if self._shape is not None else self._node

    @property
    def decorators(self) -> list[ast.expr]:
        """The class's decorators, from its header: the class is not read whole for them."""
        return self._node.decorator_list  # the header has them as the whole class does

    @property
    def keywords(self) -> list[ast.keyword]:
        """The keywords of its class statement (`metaclass=...`), from its header too."""
        return self._node.keywords

    @property
    def method_names(self) -> tuple[str, ...]:
        """The names of its methods, in order (without parsing them)."""
        shape = self._shape
        if shape is not None and shape.layout is not None:
            return tuple(piece.name for piece in shape.layout.pieces)
        return tuple(
            stmt.name
            for stmt in self.node.body
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
        )

    def method_names_where(self, test: Callable[[str], bool]) -> tuple[str, ...]:
        """The names of its methods whose text passes `test` (each name once, in order; all
        of them when the class is not cut): `method(name)` is one of those pieces."""
        shape = self._shape
        if shape is None or shape.layout is None:
            return tuple(dict.fromkeys(self.method_names))
        pieces = shape.layout.pieces
        return tuple(dict.fromkeys(piece.name for piece in pieces if test(piece.text)))

    def method(self, name: str) -> FunctionNode | None:
        shape = self._shape
        if shape is not None and shape.layout is not None:
            return shape.method(name)
        return function_named(self.node.body, name)

    def methods_mentioning(self, word: str) -> list[FunctionNode]:
        """The methods whose text holds `word` (all of them when the class is not cut):
        a property setter holds "setter", a call of `self.open()` holds "open"."""
        return self.methods_where(lambda text: word in text)

    def methods_where(self, test: Callable[[str], bool]) -> list[FunctionNode]:
        """The methods whose text passes `test` (all of them when the class is not cut);
        the others are not parsed."""
        shape = self._shape
        if shape is None or shape.layout is None:
            body = self.node.body
            return [s for s in body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
        found: list[FunctionNode] = []
        for i, piece in enumerate(shape.layout.pieces):
            if test(piece.text):
                found.extend(
                    stmt
                    for stmt in shape.piece(i) or ()
                    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
                )
        return found

    def parts_where(self, test: Callable[[str], bool]) -> list[ast.AST] | None:
        """The class as nodes to walk, without reading it whole: its header (decorators,
        bases, keywords, the statements before its first method) and the methods whose text
        passes `test`. None when the class is not cut, or one of those does not parse alone."""
        shape = self._shape
        if shape is None or shape.layout is None:
            return None
        header = shape.header
        parts: list[ast.AST] = [*header.decorator_list, *header.bases, *header.keywords]
        parts += header.body[:-1]  # the header's own statements, without its `pass`
        for i, piece in enumerate(shape.layout.pieces):
            if test(piece.text):
                statements = shape.piece(i)
                if statements is None:
                    return None
                parts += statements
        return parts

    def assigning_methods(self) -> list[FunctionNode]:
        """The methods that may assign attributes of self (all of them when not cut)."""
        return self._parts()[0]

    def class_level(self) -> list[ast.stmt]:
        """The statements of the class body that are not methods, in order."""
        return self._parts()[1]

    @property
    def failure(self) -> str:
        """Why the parts of the class that matter do not parse; "" when they do."""
        if self._shape is None:
            return ""
        self._shape.read()
        return self._shape.failure

    def _parts(self) -> tuple[list[FunctionNode], list[ast.stmt]]:
        if self._shape is not None:
            return self._shape.read()
        if self._split is None:
            self._split = split_body(self._node.body)
        return self._split


class LazyFunctions(Mapping[str, FunctionNode]):
    """Module-level functions by name; a `def` block is parsed when its node is first
    asked for (a name alone is enough to resolve one, and most are never called by a
    model). A function whose block does not parse has no node."""

    def __init__(self) -> None:
        self._nodes: dict[str, FunctionNode | ParsedBlock | None] = {}

    def set(self, name: str, value: FunctionNode | ParsedBlock) -> None:
        self._nodes[name] = value  # the last definition wins, as at runtime

    def get(self, name: str, default: object = None) -> Any:
        if name not in self._nodes:
            return default
        value = self._nodes[name]
        if isinstance(value, ParsedBlock):  # the last definition wins, as at runtime
            tree = value.tree
            value = function_named(reversed(tree.body), name) if tree is not None else None
            self._nodes[name] = value
        return value if value is not None else default

    def __getitem__(self, name: str) -> FunctionNode:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value  # type: ignore[no-any-return]

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)


@dataclass
class ModuleFacts:
    path: str
    module: str  # dotted module name ("proj.blocks"), "" when unknown
    # local name -> qualified name; with the imports inside module-level functions (`def
    # main(): import numpy as np`) of names no module-level statement binds
    imports: dict[str, str] = field(default_factory=dict)
    module_names: set[str] = field(default_factory=set)  # local names bound by `import x`
    star_imports: list[str] = field(default_factory=list)
    classes: dict[str, ClassFacts] = field(default_factory=dict)
    functions: LazyFunctions = field(default_factory=LazyFunctions)
    assigns: dict[str, ast.expr] = field(default_factory=dict)  # top-level `NAME = value`
    copyreg_classes: set[str] = field(default_factory=set)  # copyreg.pickle(Cls, reducer)
    blocks: list[ParsedBlock] = field(default_factory=list)
    text: str = ""  # the text these facts were made from

    # Blocks read when the facts were made and found not to parse. A function or a
    # method read later is not added: what a file reports must not depend on what other
    # files asked of it first (a class whose methods do not parse is found out when the
    # class itself is analyzed: ClassFacts.failure).
    broken: list[ParsedBlock] = field(default_factory=list)

    @cached_property
    def class_names(self) -> frozenset[str]:
        """The top-level class names (asked for once the facts are complete)."""
        return frozenset(self.classes)

    @property
    def package(self) -> str:
        """The package relative imports start from."""
        if self.path.endswith("__init__.py"):
            return self.module
        return self.module.rpartition(".")[0]


def dotted_name(expr: ast.expr) -> str:
    """`a.b.c` for a Name/Attribute chain, else ""."""
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if isinstance(expr, ast.Name):
        parts.append(expr.id)
        return ".".join(reversed(parts))
    return ""


def super_init_call(func: ast.AST) -> ast.Call | None:
    """The `super().__init__(...)` call inside `func`, if any."""
    for node in walk(func):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "__init__"
            and isinstance(node.func.value, ast.Call)
            and isinstance(node.func.value.func, ast.Name)
            and node.func.value.func.id == "super"
        ):
            return node
    return None


def resolve_relative(package: str, level: int, module: str | None) -> str:
    """The absolute module a `from ..x import y` names, as well as it can be known."""
    if level == 0:
        return module or ""
    parts = package.split(".") if package else []
    if level > 1:
        parts = parts[: len(parts) - (level - 1)] if level - 1 <= len(parts) else []
    base = ".".join(parts)
    if module:
        return f"{base}.{module}" if base else module
    return base


def record_import(
    node: ast.Import | ast.ImportFrom,
    package: str,
    names: dict[str, str],
    modules: set[str],
    stars: list[str] | None = None,
) -> None:
    """Add the bindings of one import statement to an alias table."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                names[alias.asname] = alias.name
                modules.add(alias.asname)
            else:
                head = alias.name.split(".")[0]
                names[head] = head
                modules.add(head)
        return
    source = resolve_relative(package, node.level, node.module)
    for alias in node.names:
        if alias.name == "*":
            if stars is not None:
                stars.append(source)
            continue
        local = alias.asname or alias.name
        qualified = f"{source}.{alias.name}" if source else alias.name
        names[local] = qualified
        if is_known_module(qualified):
            modules.add(local)
        else:
            modules.discard(local)


# Submodules people import with `from pkg import sub` and then store by mistake.
_KNOWN_SUBMODULES = frozenset(
    {
        "torch.nn",
        "torch.nn.functional",
        "torch.optim",
        "torch.distributed",
        "torch.cuda",
        "torch.utils",
        "torch.utils.data",
        "numpy.random",
        "numpy.linalg",
        "numpy.fft",
        "os.path",
        "scipy.stats",
        "scipy.sparse",
        "scipy.signal",
        "xml.etree",
        "concurrent.futures",
        "multiprocessing.pool",
        "matplotlib.pyplot",
        "urllib.request",
        "urllib.parse",
        "importlib.util",
        "logging.handlers",
        "email.mime",
    }
)


def is_known_module(qualified: str) -> bool:
    if qualified in _KNOWN_SUBMODULES:
        return True
    return "." not in qualified and qualified in _STDLIB


def _read_block(block: Block, caches: TextCaches) -> tuple[ParsedBlock, ClassFacts | None]:
    """What module facts need of a block at once: imports and module-level statements are
    parsed; a function waits until it is asked for; a class has its header parsed and is
    cut at its methods (a class that cannot be cut is parsed whole)."""
    if block.kind not in ("def", "class") or block.joins_definitions:
        # chunks joined over a quote the splitter misread may hold more top-level classes
        # and functions than the first: parsed whole, every one of them is seen
        return caches.parse_block(block), None
    if block.kind == "def":
        return caches.deferred(block), None
    shape = caches.shapes.get(block.text) if caches.memoize else None
    if shape is None:
        shape = _class_text(block, caches)
        if caches.memoize:
            caches.shapes.put(block.text, shape, len(block.text))
    if not isinstance(shape, ClassText):
        return caches.parse_block(block), None
    parsed = caches.deferred(block)
    header = shape.header
    return parsed, ClassFacts(header.name, header, parsed, shape.bases, shape)


def _class_text(block: Block, caches: TextCaches) -> ClassText | bool:
    layout = class_layout(block.text)
    if layout is None:
        return False
    header, _ = caches.parse_text(layout.header + layout.indent + "pass\n")
    node = header.body[0] if header is not None and len(header.body) == 1 else None
    if not isinstance(node, ast.ClassDef) or node.name != block.name:
        return False
    return ClassText(block.text, node.name, layout, node, _base_names(node), caches)


def _base_names(node: ast.ClassDef) -> tuple[str, ...]:
    # `Dataset[dict]` (a generic alias) subclasses Dataset
    return tuple(dotted_name(b.value if isinstance(b, ast.Subscript) else b) for b in node.bases)


_MAX_MERGE = 6


def _repair(blocks: list[ParsedBlock], caches: TextCaches) -> list[ParsedBlock]:
    """Join a block that does not parse with the next ones while that makes it parse (a
    bracket or string holding column-0 lines); a block broken on its own stays alone."""
    out: list[ParsedBlock] = []
    i = 0
    while i < len(blocks):
        current = blocks[i]
        if current.failed and (_split_suspect(current) or _string_follows(blocks, i)):
            for extra in range(1, min(_MAX_MERGE, len(blocks) - i - 1) + 1):
                joined = Block(
                    current.block.kind,
                    current.block.name,
                    current.block.start_row,
                    blocks[i + extra].block.end_row,
                    "".join(b.block.text for b in blocks[i : i + extra + 1]),
                )
                attempt = caches.parse_block(joined)
                if attempt.tree is not None:
                    current = attempt
                    i += extra
                    break
        out.append(current)
        i += 1
    return out


# A string literal at column 0 (a prefix, then a quote).
_STRING_START = re.compile(r"[rRbBuUfF]{0,2}['\"]")


def _string_follows(blocks: list[ParsedBlock], i: int) -> bool:
    """Whether the block after a failed one starts with a string at column 0: rarely a
    statement of its own, mostly the next line of a string the splitter cut (numpy's
    f2py/rules.py writes C code in strings at column 0 inside a module-level list)."""
    return i + 1 < len(blocks) and _STRING_START.match(blocks[i + 1].block.text) is not None


def _split_suspect(parsed: ParsedBlock) -> bool:
    """A parse failure that a wrong cut explains: an unclosed bracket or string opened on
    the block's own column-0 lines, or on its last line of code, whose continuation at
    column 0 the splitter took for a new statement (`fcontent = (` followed by a
    triple-quoted string at column 0, in numpy's tests). An unclosed bracket inside a
    body, with code after it, is what the editor sees while typing: that is an ordinary
    syntax error."""
    if not parsed.failed:
        return False
    if (
        "never closed" not in parsed.error
        and "unterminated" not in parsed.error
        and ("EOF" not in parsed.error)
    ):
        return False
    row = parsed.error_row
    lines = split_lines(parsed.block.text)
    line = lines[row - 1] if 1 <= row <= len(lines) else ""
    if not line[:1].isspace():
        return True
    return all(not rest.strip() or rest.lstrip().startswith("#") for rest in lines[row:])


@dataclass
class _BlockFacts:
    """What one parsed block binds at module level; cached by (text, package)."""

    imports: dict[str, str] = field(default_factory=dict)
    module_names: set[str] = field(default_factory=set)
    unbound_modules: set[str] = field(default_factory=set)
    star_imports: list[str] = field(default_factory=list)
    classes: list[tuple[str, ast.ClassDef, tuple[str, ...]]] = field(default_factory=list)
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = field(default_factory=dict)
    assigns: dict[str, ast.expr] = field(default_factory=dict)
    registrations: list[tuple[str, str]] = field(default_factory=list)  # (callee, class name)


def module_facts(path: str, module: str, text: str, caches: TextCaches = UNCACHED) -> ModuleFacts:
    """What the module defines and imports, its text read block by block through `caches`."""
    facts = ModuleFacts(path=path, module=module, text=text)
    package = facts.package
    blocks = split_blocks(text)
    read = [_read_block(block, caches) for block in blocks]
    if any(parsed.failed for parsed, _ in read):
        # a block that does not parse may be a wrong cut, which the block before it
        # explains: read every block, as _repair needs to see them
        read = [(caches.parse_block(block), None) for block in blocks]
    cut = {id(parsed): cls for parsed, cls in read if cls is not None}
    parsed_blocks = _repair([parsed for parsed, _ in read], caches)
    if any(_split_suspect(p) for p in parsed_blocks):
        # the cheap split may have cut a statement whose brackets hold column-0 lines:
        # a whole parse tells (not done for an ordinary syntax error inside a body, which
        # is what the editor sees on most keystrokes)
        whole, _ = caches.parse_text(text)
        if whole is not None:
            read = [_read_block(block, caches) for block in blocks_from_tree(text, whole)]
            cut = {id(parsed): cls for parsed, cls in read if cls is not None}
            parsed_blocks = [parsed for parsed, _ in read]
    inner: dict[str, str] = {}  # imports inside functions
    for parsed in parsed_blocks:
        facts.blocks.append(parsed)
        if parsed.failed and parsed.block.kind == "def":
            # read only because another block failed: judged as when it is not read (a
            # function is known by name, has no node, and is not reported)
            facts.functions.set(parsed.block.name, parsed)
            continue
        if parsed.failed:
            facts.broken.append(parsed)
            continue
        cls = cut.get(id(parsed))
        if cls is not None:
            facts.classes[cls.name] = cls
            continue
        if parsed.pending:  # a function, parsed when it is asked for
            facts.functions.set(parsed.block.name, parsed)
            _function_imports(parsed.block.text, package, inner)
            continue
        found = _block_facts(parsed, package, caches)
        facts.imports.update(found.imports)
        facts.module_names.difference_update(found.unbound_modules)
        facts.module_names.update(found.module_names)
        facts.star_imports.extend(found.star_imports)
        for name, node, bases in found.classes:
            facts.classes[name] = ClassFacts(name, node, parsed, bases)
        for name, func in found.functions.items():
            facts.functions.set(name, func)
        facts.assigns.update(found.assigns)
        for callee, class_name in found.registrations:
            head, _, rest = callee.partition(".")
            if f"{facts.imports.get(head, head)}.{rest}" in _COPYREG:
                facts.copyreg_classes.add(class_name)
    bound = facts.imports.keys() | facts.classes.keys() | facts.assigns.keys()
    for name, qualified in inner.items():
        if name not in bound and name not in facts.functions:
            facts.imports[name] = qualified
    return facts


_COPYREG = frozenset({"copyreg.pickle", "copy_reg.pickle"})
# an import statement on one indented line of a function (not a parenthesized one)
_INDENTED_IMPORT = re.compile(
    r"^[ \t]+((?:from[ \t]+[\w.]+[ \t]+)?import[ \t]+[\w., \t]+)$", re.MULTILINE
)


def _function_imports(text: str, package: str, into: dict[str, str]) -> None:
    """The imports written inside a function's text, read line by line without parsing the
    function (it is parsed only when asked for)."""
    if "import" not in text:
        return
    for line in _INDENTED_IMPORT.findall(text):
        try:
            tree = ast.parse(line.strip())
        except SyntaxError:
            continue
        for stmt in tree.body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                record_import(stmt, package, into, set(), [])


def _block_facts(parsed: ParsedBlock, package: str, caches: TextCaches) -> _BlockFacts:
    key = (parsed.block.text, package)
    found = caches.block_facts.get(key) if caches.memoize else None
    if found is not None:
        return found
    found = _BlockFacts()
    assert parsed.tree is not None
    for stmt in parsed.tree.body:
        _collect(stmt, found, package)
    if caches.memoize:
        caches.block_facts.put(key, found, len(parsed.block.text))
    return found


def _collect(stmt: ast.stmt, facts: _BlockFacts, package: str) -> None:
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        before = set(facts.module_names)
        record_import(stmt, package, facts.imports, facts.module_names, facts.star_imports)
        for alias in stmt.names:
            local = (alias.asname or alias.name).split(".")[0]
            if local in before and local not in facts.module_names:
                facts.unbound_modules.add(local)
            elif local not in facts.module_names and isinstance(stmt, ast.ImportFrom):
                facts.unbound_modules.add(alias.asname or alias.name)
    elif isinstance(stmt, ast.ClassDef):
        facts.classes.append((stmt.name, stmt, _base_names(stmt)))
    elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        facts.functions[stmt.name] = stmt
    elif isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        for target in targets:
            if isinstance(target, ast.Name):
                facts.assigns[target.id] = stmt.value
            elif _paired(target, stmt.value):  # `MODELS, DATAMODULES = {}, {}`
                assert isinstance(target, ast.Tuple) and isinstance(stmt.value, ast.Tuple)
                for name, value in zip(target.elts, stmt.value.elts):
                    if isinstance(name, ast.Name):
                        facts.assigns[name.id] = value
    elif (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Call)
        and stmt.value.args
        and isinstance(stmt.value.args[0], ast.Name)
        and "." in dotted_name(stmt.value.func)
    ):  # copyreg.pickle(Model, reduce_model): pickling is taken over
        facts.registrations.append((dotted_name(stmt.value.func), stmt.value.args[0].id))
    elif isinstance(stmt, (ast.If, ast.Try)) or type(stmt).__name__ == "TryStar":
        # imports and definitions guarded by `try:` / `if TYPE_CHECKING:` still bind names
        for child in child_nodes(stmt):
            if isinstance(child, ast.stmt):
                _collect(child, facts, package)
            elif isinstance(child, ast.ExceptHandler):
                for sub in child.body:
                    _collect(sub, facts, package)


def _paired(target: ast.expr, value: ast.expr) -> bool:
    """`a, b = x, y`: each name bound to its own element (no starred one)."""
    return (
        isinstance(target, ast.Tuple)
        and isinstance(value, ast.Tuple)
        and len(target.elts) == len(value.elts)
        and not any(isinstance(e, ast.Starred) for e in [*target.elts, *value.elts])
    )


_CLASS_LINE = re.compile(r"^class\s+([A-Za-z_]\w*)", re.MULTILINE)


def class_names_in(text: str) -> list[str]:
    """Names of top-level classes in text that may not parse (for keeping last good results)."""
    return _CLASS_LINE.findall(text)


def line_text(parsed: ParsedBlock, rel_row: int) -> str:
    lines = split_lines(parsed.block.text)
    if 1 <= rel_row <= len(lines):
        return lines[rel_row - 1]
    return ""


def self_attribute(target: ast.expr) -> str:
    """`x` of `self.x`; "" for any other expression."""
    if (
        isinstance(target, ast.Attribute)
        and isinstance(target.value, ast.Name)
        and target.value.id == "self"
    ):
        return target.attr
    return ""
