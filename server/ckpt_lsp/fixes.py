"""Fix checkpoint hazards by giving a class `__getstate__`/`__setstate__`.

The CLI (`--fix`, `--diff`) and the language server's code actions both call
this module. `fix_edits` returns the minimal text edits; `describe_fix` tells the
server whether a fix is possible for a class (and what it re-creates) so that it
never offers one that would change nothing or could not be made safely.
"""

from __future__ import annotations

from ckpt_lsp.fix.bases import BASE_PROTOCOLS, BaseProtocol
from ckpt_lsp.fix.engine import (
    ClassFix,
    FixTarget,
    describe_fix,
    fix_edits,
    fix_source,
    plan_fixes,
)
from ckpt_lsp.fix.text import apply_edits

__all__ = [
    "BASE_PROTOCOLS",
    "BaseProtocol",
    "ClassFix",
    "FixTarget",
    "apply_edits",
    "describe_fix",
    "fix_edits",
    "fix_source",
    "plan_fixes",
]
