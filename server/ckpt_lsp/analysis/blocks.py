"""Split a module's text into top-level blocks without parsing it.

The top-level block (a class, a function, a run of imports, other statements) is
the unit of parsing, caching and error recovery: while a user types most states
of a file do not parse, and one broken class must not hide the findings of the
others; and a keystroke changes one block, so only that block is re-parsed.

The splitter is a line scanner that tracks brackets, strings and line
continuations just well enough to find where top-level statements start. It
never raises: a block that it cuts wrongly simply fails to parse on its own.
"""

from __future__ import annotations

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

    @property
    def row_count(self) -> int:
        return self.end_row - self.start_row + 1


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def split_lines(text: str) -> list[str]:
    """Lines with their endings kept. Only `\\r\\n`, `\\n` and a lone `\\r` end a line,
    as for Python's tokenizer (str.splitlines would also split on form feeds and U+2028)."""
    return _LINE.findall(text)


def _scan_line(line: str, depth: int, quote: str | None) -> tuple[int, str | None, bool]:
    """Advance the bracket depth and open-string state over one line.

    Returns the new depth, the open triple-quote delimiter (or None) and whether
    the line ends with a backslash continuation.
    """
    i = 0
    n = len(line)
    while i < n:
        ch = line[i]
        if quote is not None:
            if ch == "\\":
                i += 2
                continue
            if line.startswith(quote, i):
                i += len(quote)
                quote = None
                continue
            if len(quote) == 1 and ch in "\r\n":
                quote = None  # an unterminated one-line string ends at the line end
            i += 1
            continue
        if ch == "#":
            break
        if ch in "\"'":
            triple = line[i : i + 3]
            if triple in ('"""', "'''"):
                quote = triple
                i += 3
            else:
                quote = ch
                i += 1
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        i += 1
    if quote is not None and len(quote) == 1:
        quote = None
    stripped = line.rstrip("\r\n")
    continued = stripped.endswith("\\") and quote is None
    return depth, quote, continued


# Clauses that continue the compound statement above them (`try:` ... `except:`).
_CONTINUATION = re.compile(r"(?:except|else|elif|finally)\b")


def _starts_statement(line: str) -> bool:
    if not line or line[0] in " \t\r\n#\f":
        return False
    if line.startswith((")", "]", "}")):
        return False
    return not _CONTINUATION.match(line)


def _kind_of(first_code_line: str) -> tuple[str, str]:
    m = _HEADER.match(first_code_line)
    if m:
        return m.group(1), m.group(2)
    if _IMPORT.match(first_code_line):
        return "import", ""
    return "other", ""


def split_blocks(text: str) -> list[Block]:
    """Cut `text` into top-level blocks. Comments and blank lines between blocks
    belong to the block before them; decorators belong to the block they decorate."""
    lines = split_lines(text)
    starts: list[int] = []  # 0-based indexes of lines that start a top-level statement
    depth = 0
    quote: str | None = None
    continued = False
    pending_decorator = False
    for idx, line in enumerate(lines):
        if depth == 0 and quote is None and not continued and _starts_statement(line):
            if pending_decorator:
                pending_decorator = line.startswith("@")
            else:
                starts.append(idx)
                pending_decorator = line.startswith("@")
        depth, quote, continued = _scan_line(line, depth, quote)
    if not starts:
        return []
    blocks: list[Block] = []
    for pos, start in enumerate(starts):
        end = starts[pos + 1] if pos + 1 < len(starts) else len(lines)
        chunk = lines[start:end]
        first = next((ln for ln in chunk if not ln.startswith("@")), chunk[0])
        kind, name = _kind_of(first)
        blocks.append(Block(kind, name, start + 1, end, "".join(chunk)))
    return _merge_imports(blocks)


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
