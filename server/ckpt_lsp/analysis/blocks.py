"""Split a module's text into top-level blocks without parsing it.

The top-level block (a class, a function, a run of imports, other statements) is
the unit of parsing, caching and error recovery: while a user types most states
of a file do not parse, and one broken class must not hide the findings of the
others; and a keystroke changes one block, so only that block is re-parsed.

The splitter looks only at the first character of each line (C-speed string
checks, no tokenizing): a guess that is right for formatted code. It never
raises; a block it cuts wrongly fails to parse on its own, and then the exact
blocks of a whole-text parse are used instead (see facts.module_facts).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

_HEADER = re.compile(r"(?:async\s+)?(class|def)\s+([A-Za-z_]\w*)")
_IMPORT = re.compile(r"(?:import|from)\s")


@dataclass(frozen=True)
class Block:
    kind: str  # "class" | "def" | "import" | "other"
    name: str  # class or function name; "" for other kinds
    start_row: int  # 1-based row of the first line (decorators included)
    end_row: int  # 1-based row of the last line
    text: str  # the block's lines, joined with their original line endings
    # A class or def statement at column 0 was joined into the block because a triple
    # quote looked open: a guess that a `\'\'\'` inside a `"""` docstring or a quote in a
    # comment gets wrong, and then the block holds further top-level classes and functions
    # (facts._read_block parses such a block whole).
    joins_definitions: bool = False

    @property
    def row_count(self) -> int:
        return self.end_row - self.start_row + 1


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def split_lines(text: str) -> list[str]:
    """Lines with their endings kept. Only `\\r\\n`, `\\n` and a lone `\\r` end a line,
    as for Python's tokenizer (str.splitlines would also split on form feeds and U+2028)."""
    return _LINE.findall(text)


# Clauses that continue the compound statement above them (`try:` ... `except:`).
_CONTINUATION = re.compile(r"(?:except|else|elif|finally)\b")
_TRIPLES = ('"""', "'''")


def _starts_statement(line: str, previous: str) -> bool:
    """A line at column 0 that can begin a top-level statement (cheap, no tokenizing)."""
    if not line or line[0] in " \t\r\n#\f)]}":
        return False
    if previous.rstrip("\r\n").endswith("\\"):
        return False  # a backslash continuation
    return not _CONTINUATION.match(line)


def odd_triple_quotes(text: str, start: int = 0, end: int | None = None) -> bool:
    """An odd number of triple quotes in text[start:end] (counted in place, no copy): the
    chunk ends inside a triple-quoted string."""
    stop = len(text) if end is None else end
    return any(text.count(q, start, stop) % 2 for q in _TRIPLES)


def _kind_of(text: str) -> tuple[str, str]:
    m = _HEADER.match(text)
    if m:
        return m.group(1), m.group(2)
    if _IMPORT.match(text):
        return "import", ""
    return "other", ""


# What may follow a decorator line at column 0: another decorator or the decorated statement.
_DECORATED = re.compile(r"@|class\b|def\b|async\s+def\b")
# a class or def statement at the start of a line (after \n, \r\n or a lone \r)
_HEADER_LINE = re.compile(r"(?:^|(?<=\r))(?:async\s+)?(?:class|def)\s+[A-Za-z_]", re.MULTILINE)
# A line that can start a top-level statement: not indented, a comment, a closing bracket,
# a clause continuing the statement above (`else:`), nor after a backslash. The match
# starts at the newline before the line: a literal first character lets the regex engine
# skip to candidates at C speed (`^` would try every position). Row 1 is checked alone.
_CANDIDATE = re.compile(
    r"\n(?<!\\\n)(?<!\\\r\n)(?!(?:except|else|elif|finally)\b)[^ \t\r\n#\f)\]}]"
)


def split_blocks(text: str) -> list[Block]:
    """Cut `text` into top-level blocks. Comments and blank lines between blocks
    belong to the block before them; decorators belong to the block they decorate.

    A statement starts at a column-0 line; a chunk that ends inside a triple-quoted
    string (column-0 text in a docstring) is joined with the next. This is a guess found
    by one regex pass (no tokenizing): `blocks_from_tree` gives exact blocks when the
    whole text parses, and callers use it when a guessed block does not parse.
    """
    if "\r" in text and text.count("\r") != text.count("\r\n"):
        # lone CR line ends: `^` does not see them, so go line by line
        lines = split_lines(text)
        kept, joined = _join_strings(lines, _starts_by_line(lines))
        return _merge_imports(_make_blocks(lines, kept, joined))
    return _merge_imports(_blocks_by_offset(text, _starts_by_regex(text)))


def _starts_by_regex(text: str) -> list[tuple[int, int]]:
    """(0-based row, offset) of each line that starts a top-level statement."""
    starts: list[tuple[int, int]] = []
    row = 0
    last = 0
    pending_decorator = False
    first = [0] if _starts_statement(text[:1], "") and not _CONTINUATION.match(text) else []
    for offset in first + [m.start() + 1 for m in _CANDIDATE.finditer(text)]:
        row += text.count("\n", last, offset)
        last = offset
        if pending_decorator and not _DECORATED.match(text, offset):
            continue  # column-0 text inside a decorator's arguments (a docstring)
        if not pending_decorator:
            starts.append((row, offset))
        pending_decorator = text.startswith("@", offset)
    return starts


def _blocks_by_offset(text: str, starts: list[tuple[int, int]]) -> list[Block]:
    """Blocks as slices of the text (no list of lines): the same blocks `_make_blocks`
    makes from `_join_strings` of the same starts, at a fraction of the cost."""
    if not starts:
        return []
    rows = text.count("\n") + (0 if text.endswith("\n") else 1)
    kept: list[tuple[int, int]] = []
    joined: set[int] = set()  # positions in kept of blocks that took in a class or def
    open_string = False
    for pos, (row, offset) in enumerate(starts):
        if not open_string:
            kept.append((row, offset))
        elif _DECORATED.match(text, offset):
            joined.add(len(kept) - 1)
        end = starts[pos + 1][1] if pos + 1 < len(starts) else len(text)
        if odd_triple_quotes(text, offset, end):
            open_string = not open_string
    blocks: list[Block] = []
    for pos, (row, offset) in enumerate(kept):
        end_row, end = kept[pos + 1] if pos + 1 < len(kept) else (rows, len(text))
        chunk = text[offset:end]
        blocks.append(Block(*_chunk_kind(chunk), row + 1, end_row, chunk, pos in joined))
    return blocks


def _chunk_kind(chunk: str) -> tuple[str, str]:
    """Kind and name of a block from its text; a decorated one from the statement past
    the decorators (and past their arguments)."""
    if chunk.startswith("@"):
        header = _HEADER_LINE.search(chunk)
        if header is not None:
            return _kind_of(chunk[header.start() :])
    return _kind_of(chunk)


def _starts_by_line(lines: list[str]) -> list[int]:
    starts: list[int] = []
    previous = ""
    pending_decorator = False
    for idx, line in enumerate(lines):
        if _starts_statement(line, previous):
            if pending_decorator and not _DECORATED.match(line):
                previous = line
                continue
            if not pending_decorator:
                starts.append(idx)
            pending_decorator = line.startswith("@")
        previous = line
    return starts


def _join_strings(lines: list[str], starts: list[int]) -> tuple[list[int], set[int]]:
    """The starts kept, and the kept starts whose block took in a class or def."""
    kept: list[int] = []
    joined: set[int] = set()
    open_string = False
    for pos, start in enumerate(starts):
        if not open_string:
            kept.append(start)
        elif _DECORATED.match(lines[start]):
            joined.add(kept[-1])
        end = starts[pos + 1] if pos + 1 < len(starts) else len(lines)
        if odd_triple_quotes("".join(lines[start:end])):
            open_string = not open_string
    return kept, joined


def _make_blocks(
    lines: list[str], starts: list[int], joined: set[int] | frozenset[int] = frozenset()
) -> list[Block]:
    blocks: list[Block] = []
    for pos, start in enumerate(starts):
        end = starts[pos + 1] if pos + 1 < len(starts) else len(lines)
        chunk = "".join(lines[start:end])
        blocks.append(Block(*_chunk_kind(chunk), start + 1, end, chunk, start in joined))
    return blocks


def blocks_from_tree(text: str, tree: ast.Module) -> list[Block]:
    """Exact blocks from a parse of the whole text (top-level statements)."""
    lines = split_lines(text)
    starts: list[int] = []
    for stmt in tree.body:
        first = stmt.lineno
        for deco in getattr(stmt, "decorator_list", ()):
            first = min(first, deco.lineno)
        if not starts or first - 1 > starts[-1]:
            starts.append(first - 1)
    if starts:
        starts[0] = min(starts[0], _first_code_line(lines))
    return _merge_imports(_make_blocks(lines, starts))


def _first_code_line(lines: list[str]) -> int:
    for idx, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#"):
            return idx
    return 0


def _merge_imports(blocks: list[Block]) -> list[Block]:
    """Join consecutive import statements: they are parsed and cached together."""
    merged: list[Block] = []
    for block in blocks:
        prev = merged[-1] if merged else None
        if prev is not None and prev.kind == "import" and block.kind == "import":
            merged[-1] = Block("import", "", prev.start_row, block.end_row, prev.text + block.text)
        else:
            merged.append(block)
    return merged
