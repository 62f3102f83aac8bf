"""Suppression comments: `# ckpt: ignore[CKPT001]`, bare `# ckpt: ignore`, `# noqa: CKPT001`.

A comment on any line of the flagged statement counts, so a multi-line call can
carry it on whichever line the formatter leaves room for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_CKPT = re.compile(r"#\s*ckpt:\s*ignore(?:\[(?P<codes>[^\]]*)\])?", re.IGNORECASE)
_NOQA = re.compile(
    r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.IGNORECASE
)


def suppressed_codes(line: str) -> frozenset[str] | None:
    """Codes a line's comment suppresses; `{"*"}` for all; None when there is no such comment."""
    if "#" not in line:
        return None
    codes: set[str] = set()
    found = False
    for pattern in (_CKPT, _NOQA):
        for match in pattern.finditer(line):
            found = True
            listed = match.group("codes")
            if listed is None or not listed.strip():
                codes.add("*")
            else:
                codes.update(c.strip().upper() for c in re.split(r"[\s,]+", listed) if c.strip())
    return frozenset(codes) if found else None


def is_suppressed(code: str, lines: Iterable[str]) -> bool:
    for line in lines:
        codes = suppressed_codes(line)
        if codes and ("*" in codes or code in codes or any(code.startswith(c) for c in codes)):
            return True
    return False
