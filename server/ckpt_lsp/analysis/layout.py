"""Class layout: a class block cut into its methods, without parsing it.

Most lines of a model class are methods that never assign an attribute of `self`
(`forward`, helpers, properties). Nothing in them can put a hazard into the instance,
so they are parsed only when something asks for one by name (a factory method, a
`__getstate__`). The cut is a guess from indentation and the test for "may assign
`self`" is a text search that errs towards reading: a piece that does not parse
sends the whole class back to an ordinary parse (see facts.ClassFacts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ckpt_lsp.analysis.blocks import odd_triple_quotes

# A def (its name and first parameter) and a decorator's `@`; whether either starts its
# line is checked after. Each regex starts with a literal, which the regex engine finds
# at C speed (a pattern starting with `^` tries every position of the text).
_DEF = re.compile(r"def[ \t]+([A-Za-z_]\w*)[ \t]*\(\s*([A-Za-z_]\w*)?")


@dataclass(frozen=True)
class Piece:
    """One method (with its decorators and any class-level lines after it)."""

    name: str  # the method's name
    start_row: int  # 1-based row of its first line within the class block
    text: str
    first: str  # its first parameter ("" when it has none we can see)
    indent: str  # the methods' indentation

    @property
    def must_read(self) -> bool:
        """Whether it may assign an attribute of self or holds class-level statements.
        Asked only of the classes that are analyzed, not of every class read for its
        bases."""
        return (
            not self.first
            or _may_store(self.text, self.first)
            or _class_level(self.text, self.indent)
        )


@dataclass(frozen=True)
class Layout:
    header: str  # the block from its first line up to the first method
    indent: str  # the methods' indentation
    pieces: tuple[Piece, ...]


@lru_cache(maxsize=64)
def _self_stores(self_name: str) -> tuple[re.Pattern[str], ...]:
    """Text that may store into `self_name` (see `_may_store`). A call between `self.x`
    and `=` is a keyword argument (`self.attn(h, mask=m)`), not a store."""
    s = re.escape(self_name)
    return (
        re.compile(
            rf"{s}\s*\.\s*(?:"
            # the `=` can only follow the longest run: taken atomically (a lookahead and its
            # backreference, as Python < 3.11 has no `*+`), a miss is not retried shorter
            # self.x = / self.a, self.b = / self.x: T = / self.x <<= (not <=, >=, ==, !=)
            r"(?=(\w+[^\n=(]*))\1(?:(?<![=!<>])|(?<=<<)|(?<=>>))=(?!=)"
            rf"|[\w.]*\[[^\n]*\]\s*{_OP}=(?!=)"  # self.x[key(k)] = v
            r"|[^\n]*\.\s*(?:append|extend|add|insert|appendleft|update|setdefault)\b"
            r")"
        ),
        re.compile(rf"as\s+\(?\s*{s}\s*\."),  # with open(p) as self.f
        re.compile(rf"for\s[^\n]*?{s}\s*\.\w+[^\n]*?\bin\b"),  # for self.x in
    )


_OP = r"[-+*/%&|^@<>]{0,2}"
# `) = v` / `] = v` closing a target written over several lines
_CLOSING = (re.compile(rf"\)[ \t]*{_OP}=(?!=)"), re.compile(rf"\][ \t]*{_OP}=(?!=)"))
_HOOK = re.compile(r"register_\w*hook")


def _may_store(text: str, self_name: str) -> bool:
    """Whether a method's text may assign an attribute of `self_name`: a superset of what
    classify.walk_function records (plain, tuple, annotated and augmented targets,
    subscripts, setattr, mutators, hook registrations, `with ... as self.x`,
    `for self.x in`), erring towards yes."""
    if "setattr" in text or "\\\n" in text or "\\\r" in text:  # setattr; a continuation
        return True
    if "register_" in text and _HOOK.search(text):
        return True
    stores, *others = _self_stores(self_name)
    if any(p.search(text) for p in others):
        return True
    for m in stores.finditer(text):
        if not _inside_call(text, m.start()):
            return True
    for pattern in _CLOSING:
        for m in pattern.finditer(text):
            if _starts_line(text, m.start()):
                return True
    return False


def _inside_call(text: str, pos: int) -> bool:
    """Whether pos provably lies inside the brackets of a call or a subscript opened
    earlier on its line (`softmax(self.w, dim=-1)`): an `=` there is a keyword argument,
    and nothing in brackets is ever an assignment target. In doubt (a quote, `;` or `#`
    before it, which may hide a bracket; a bracket from an earlier line) the answer is no."""
    start = text.rfind("\n", 0, pos) + 1
    prefix = text[start:pos]
    if "(" not in prefix and "[" not in prefix and "{" not in prefix:
        return False
    if '"' in prefix or "'" in prefix or ";" in prefix or "#" in prefix:
        return False
    opened: list[int] = []
    for i, char in enumerate(prefix):
        if char in "([{":
            opened.append(i)
        elif char in ")]}":
            if not opened:
                return False
            opened.pop()
    if not opened:
        return False
    before = prefix[: opened[0]].rstrip()
    return bool(before) and (before[-1].isalnum() or before[-1] in "_)]")


def _starts_line(text: str, pos: int) -> bool:
    """Whether only blanks stand between the start of pos's line and pos."""
    start = text.rfind("\n", 0, pos) + 1
    return not text[start:pos].strip(" \t")


def _class_level(text: str, indent: str) -> bool:
    """Whether a piece holds a statement at the methods' own indentation besides its def
    line: a class-level assignment after the method (`__call__ = forward`). (A piece
    starts at its first line, so only later lines follow a newline.)"""
    pattern = _class_level_pattern(indent)
    return pattern.search(text) is not None


@lru_cache(maxsize=64)
def _class_level_pattern(indent: str) -> re.Pattern[str]:
    return re.compile(rf"\n{re.escape(indent)}(?!(?:async[ \t]+)?def[ \t])[^ \t\r\n#)\]}}@]")


def _members(text: str) -> list[tuple[int, str, str, str]]:
    """(line start, indentation, def name or "" for a decorator, first parameter) of the
    indented defs and decorators of a class block, in order."""
    found: list[tuple[int, str, str, str]] = []
    for m in _DEF.finditer(text):
        start = text.rfind("\n", 0, m.start()) + 1
        prefix = text[start : m.start()]
        rest = prefix.lstrip(" \t")
        indent = prefix[: len(prefix) - len(rest)]
        if rest.startswith("async") and len(rest) > 5 and not rest[5:].strip(" \t"):
            rest = ""  # async def
        if indent and not rest:
            found.append((start, indent, m.group(1), m.group(2) or ""))
    pos = text.find("@")
    while pos != -1:
        start = text.rfind("\n", 0, pos) + 1
        prefix = text[start:pos]
        if prefix and not prefix.strip(" \t"):
            found.append((start, prefix, "", ""))
        pos = text.find("@", pos + 1)
    found.sort()
    return found


def class_layout(text: str) -> Layout | None:
    """The class block `text` cut at its methods; None when there is nothing to cut
    (no method, or the guess is unsafe): the class is then parsed whole."""
    members = _members(text)
    defs = [m for m in members if m[2]]
    if not defs:
        return None
    indent = min((m[1] for m in defs), key=len)
    starts: list[tuple[int, str, str]] = []  # (offset, name, first parameter)
    pending: int | None = None  # offset of a decorator run, waiting for its def
    for offset, member_indent, name, first in members:
        if member_indent != indent:
            continue
        if not name:
            if pending is None:
                pending = offset
            continue
        starts.append((pending if pending is not None else offset, name, first))
        pending = None
    if not starts or pending is not None:
        return None
    # join a piece that ends inside a triple-quoted string with the ones after it
    cuts = [starts[0][0]]
    kept = [starts[0]]
    open_string = odd_triple_quotes(text, 0, starts[0][0])
    if open_string:
        return None  # the header's docstring holds method-like lines: parse it whole
    for pos, start in enumerate(starts):
        end = starts[pos + 1][0] if pos + 1 < len(starts) else len(text)
        if pos > 0 and not open_string:
            cuts.append(start[0])
            kept.append(start)
        if odd_triple_quotes(text, start[0], end):
            open_string = not open_string
    if open_string:
        return None
    pieces: list[Piece] = []
    row = text.count("\n", 0, cuts[0]) + 1
    for pos, (offset, name, first) in enumerate(kept):
        end = cuts[pos + 1] if pos + 1 < len(cuts) else len(text)
        piece = text[offset:end]
        pieces.append(Piece(name, row, piece, first, indent))
        row += piece.count("\n")
    return Layout(text[: cuts[0]], indent, tuple(pieces))
