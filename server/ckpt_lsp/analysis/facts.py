"""Module facts: what one module defines and imports, from its blocks.

Facts need names only (imports, classes and their base expressions, top-level
functions and module-level assignments), so they come from the stdlib `ast` of each block, parsed
on its own and cached by the block's text: a keystroke re-parses one block.
"""

from __future__ import annotations

import ast
import hashlib
import re
import sys
import warnings
from dataclasses import dataclass, field
from functools import cached_property

from ckpt_lsp.analysis.blocks import Block, blocks_from_tree, split_blocks, split_lines
from ckpt_lsp.analysis.memo import BoundedCache

_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ()))


@dataclass
class ParsedBlock:
    """A block parsed on its own: rows in `tree` are relative to the block's first row."""

    block: Block
    tree: ast.Module | None  # None when the block does not parse
    error: str = ""

    @property
    def row_offset(self) -> int:
        return self.block.start_row - 1

    @property
    def error_row(self) -> int:
        """Row (within the block) a syntax error points at, 0 when unknown."""
        m = re.search(r"\(line (\d+)\)$", self.error)
        return int(m.group(1)) if m else 0


@dataclass
class ClassFacts:
    name: str
    node: ast.ClassDef
    parsed: ParsedBlock
    bases: tuple[str, ...]  # dotted source text of each base ("nn.Module"); "" when not a name

    @property
    def row(self) -> int:
        return self.node.lineno + self.parsed.row_offset

    def method(self, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        for stmt in self.node.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
                return stmt
        return None


@dataclass
class ModuleFacts:
    path: str
    module: str  # dotted module name ("proj.blocks"), "" when unknown
    imports: dict[str, str] = field(default_factory=dict)  # local name -> qualified name
    module_names: set[str] = field(default_factory=set)  # local names bound by `import x`
    star_imports: list[str] = field(default_factory=list)
    classes: dict[str, ClassFacts] = field(default_factory=dict)
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = field(default_factory=dict)
    assigns: dict[str, ast.expr] = field(default_factory=dict)  # top-level `NAME = value`
    copyreg_classes: set[str] = field(default_factory=set)  # copyreg.pickle(Cls, reducer)
    blocks: list[ParsedBlock] = field(default_factory=list)
    text: str = ""  # the text these facts were made from

    @property
    def broken(self) -> list[ParsedBlock]:
        return [b for b in self.blocks if b.tree is None]

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


# A syntax tree takes about 65 bytes per character of source: one million characters of
# cached blocks keep at most ~65 MB of trees alive, however long the editing session.
_CACHED_ENTRIES = 2048
_CACHED_CHARS = 1_000_000
_PARSE_CACHE: BoundedCache[str, tuple[ast.Module | None, str]] = BoundedCache(
    _CACHED_ENTRIES, _CACHED_CHARS
)


def parse_block(block: Block) -> ParsedBlock:
    """Parse one block, memoized by its text (a keystroke re-parses only its block)."""
    key = hashlib.blake2b(block.text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    hit = _PARSE_CACHE.get(key)
    if hit is None:
        hit = _parse_text(block.text)
        _PARSE_CACHE.put(key, hit, len(block.text))
    return ParsedBlock(block, hit[0], hit[1])


def _parse_text(text: str) -> tuple[ast.Module | None, str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(text), ""
    except SyntaxError as exc:
        return None, f"{exc.msg} (line {exc.lineno})"
    except (ValueError, RecursionError, MemoryError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


_MAX_MERGE = 6


def _repair(blocks: list[ParsedBlock]) -> list[ParsedBlock]:
    """Join a block that does not parse with the next ones while that makes it parse (a
    bracket or string holding column-0 lines); a block broken on its own stays alone."""
    out: list[ParsedBlock] = []
    i = 0
    while i < len(blocks):
        current = blocks[i]
        if current.tree is None and _split_suspect(current):
            for extra in range(1, min(_MAX_MERGE, len(blocks) - i - 1) + 1):
                joined = Block(
                    current.block.kind,
                    current.block.name,
                    current.block.start_row,
                    blocks[i + extra].block.end_row,
                    "".join(b.block.text for b in blocks[i : i + extra + 1]),
                )
                attempt = parse_block(joined)
                if attempt.tree is not None:
                    current = attempt
                    i += extra
                    break
        out.append(current)
        i += 1
    return out


def _split_suspect(parsed: ParsedBlock) -> bool:
    """A parse failure that a wrong cut explains: an unclosed bracket or string opened on
    the block's own column-0 lines, not inside an indented body."""
    if parsed.tree is not None:
        return False
    if (
        "never closed" not in parsed.error
        and "unterminated" not in parsed.error
        and ("EOF" not in parsed.error)
    ):
        return False
    row = parsed.error_row
    line = line_text(parsed, row) if row else ""
    return not line[:1].isspace()


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


_FACTS_CACHE: BoundedCache[tuple[str, str], _BlockFacts] = BoundedCache(
    _CACHED_ENTRIES, _CACHED_CHARS
)


def module_facts(path: str, module: str, text: str) -> ModuleFacts:
    facts = ModuleFacts(path=path, module=module, text=text)
    package = facts.package
    parsed_blocks = _repair([parse_block(block) for block in split_blocks(text)])
    if any(_split_suspect(p) for p in parsed_blocks):
        # the cheap split may have cut a statement whose brackets hold column-0 lines:
        # a whole parse tells (not done for an ordinary syntax error inside a body, which
        # is what the editor sees on most keystrokes)
        whole, _ = _parse_text(text)
        if whole is not None:
            parsed_blocks = [parse_block(block) for block in blocks_from_tree(text, whole)]
    for parsed in parsed_blocks:
        facts.blocks.append(parsed)
        if parsed.tree is None:
            continue
        found = _block_facts(parsed, package)
        facts.imports.update(found.imports)
        facts.module_names.difference_update(found.unbound_modules)
        facts.module_names.update(found.module_names)
        facts.star_imports.extend(found.star_imports)
        for name, node, bases in found.classes:
            facts.classes[name] = ClassFacts(name, node, parsed, bases)
        facts.functions.update(found.functions)
        facts.assigns.update(found.assigns)
        for callee, class_name in found.registrations:
            head, _, rest = callee.partition(".")
            if f"{facts.imports.get(head, head)}.{rest}" in _COPYREG:
                facts.copyreg_classes.add(class_name)
    return facts


_COPYREG = frozenset({"copyreg.pickle", "copy_reg.pickle"})


def _block_facts(parsed: ParsedBlock, package: str) -> _BlockFacts:
    key = (parsed.block.text, package)
    found = _FACTS_CACHE.get(key)
    if found is not None:
        return found
    found = _BlockFacts()
    assert parsed.tree is not None
    for stmt in parsed.tree.body:
        _collect(stmt, found, package)
    _FACTS_CACHE.put(key, found, len(parsed.block.text))
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
        # `Dataset[dict]` (a generic alias) subclasses Dataset
        bases = tuple(
            dotted_name(b.value if isinstance(b, ast.Subscript) else b) for b in stmt.bases
        )
        facts.classes.append((stmt.name, stmt, bases))
    elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        facts.functions[stmt.name] = stmt
    elif isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        for target in targets:
            if isinstance(target, ast.Name):
                facts.assigns[target.id] = stmt.value
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
        for child in ast.iter_child_nodes(stmt):
            if isinstance(child, ast.stmt):
                _collect(child, facts, package)
            elif isinstance(child, ast.ExceptHandler):
                for sub in child.body:
                    _collect(sub, facts, package)


_CLASS_LINE = re.compile(r"^class\s+([A-Za-z_]\w*)", re.MULTILINE)


def class_names_in(text: str) -> list[str]:
    """Names of top-level classes in text that may not parse (for keeping last good results)."""
    return _CLASS_LINE.findall(text)


def line_text(parsed: ParsedBlock, rel_row: int) -> str:
    lines = split_lines(parsed.block.text)
    if 1 <= rel_row <= len(lines):
        return lines[rel_row - 1]
    return ""
