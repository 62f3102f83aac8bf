"""Suppression comments: `# ckpt: ignore[CKPT001]`, bare `# ckpt: ignore`, `# noqa: CKPT001`.

The one grammar of these comments: the analysis asks which codes a line suppresses,
the hover asks which code is under the cursor, and the "ignore" fix asks where a new
code goes. A comment on any line of the flagged statement counts, so a multi-line call
can carry it on whichever line the formatter leaves room for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_CKPT = re.compile(r"#\s*ckpt:\s*ignore(?:\[(?P<codes>[^\]]*)\])?", re.IGNORECASE)
_NOQA = re.compile(
    r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.IGNORECASE
)
_LISTED = re.compile(r"[^\s,]+")  # one code of a list (codes are separated by blanks or commas)


@dataclass(frozen=True)
class ListedCode:
    code: str  # upper case
    start: int  # 0-based code point columns in the line, end exclusive
    end: int


@dataclass(frozen=True)
class Suppression:
    """One suppression comment of a line."""

    kind: str  # "ckpt" or "noqa"
    codes: tuple[ListedCode, ...]  # empty: every code
    list_start: int  # columns of the code list (`[` + 1 to `]`); -1 when there is none
    list_end: int


def suppressions(line: str) -> list[Suppression]:
    """Every suppression comment in `line`, in the order the grammar finds them."""
    if "#" not in line:
        return []
    found: list[Suppression] = []
    for kind, pattern in (("ckpt", _CKPT), ("noqa", _NOQA)):
        for match in pattern.finditer(line):
            start, end = match.span("codes")
            listed = match.group("codes") or ""
            codes = tuple(
                ListedCode(m.group(0).upper(), start + m.start(), start + m.end())
                for m in _LISTED.finditer(listed)
            )
            found.append(Suppression(kind, codes, start, end))
    return found


def suppressed_codes(line: str) -> frozenset[str] | None:
    """Codes a line's comment suppresses; `{"*"}` for all; None when there is no such comment."""
    found = suppressions(line)
    if not found:
        return None
    codes: set[str] = set()
    for suppression in found:
        if suppression.codes:
            codes.update(c.code for c in suppression.codes)
        else:
            codes.add("*")
    return frozenset(codes)


def is_suppressed(code: str, lines: Iterable[str]) -> bool:
    """Whether a comment on any of `lines` suppresses `code` (a listed prefix counts)."""
    for line in lines:
        codes = suppressed_codes(line)
        if codes and ("*" in codes or code in codes or any(code.startswith(c) for c in codes)):
            return True
    return False


def code_at(line: str, column: int) -> str | None:
    """The code listed in a suppression comment under 0-based code point `column`."""
    for suppression in suppressions(line):
        for listed in suppression.codes:
            if listed.start <= column <= listed.end:
                return listed.code
    return None


def add_code(line: str, code: str) -> tuple[int, int, str] | None:
    """How to make `line` suppress `code`: (start, end, text), 0-based code point columns of
    the span to replace. The code joins the list of the first `# ckpt: ignore[...]` there;
    without one, a new comment goes at the end of the line. None when it is listed already."""
    code = code.upper()
    for suppression in suppressions(line):
        if suppression.kind != "ckpt" or suppression.list_start < 0:
            continue
        if any(listed.code == code for listed in suppression.codes):
            return None
        inner = line[suppression.list_start : suppression.list_end].rstrip()
        close = suppression.list_start + len(inner)  # where the new code goes
        return close, close, f", {code}" if inner.strip() else code
    content = line.rstrip()
    return len(content), len(line), f"  # ckpt: ignore[{code}]"
