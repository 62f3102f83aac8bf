"""The fix: keep unpicklable attributes out of a class's pickled state.

The CLI (`--fix`, `--diff`, the JSON report's fixes) and the language server's code
actions both use this package, through these names:

- `policy`: which findings get a fix and which kind (`fix_targets`, `FixTarget`);
- `edits`: the API on text: `fix_edits`, `fix_source`, `describe_fix`, `plan_fixes`;
- `ignore`: the other fix, a suppression comment (`ignore_edit`);
- `values`: a checkpoint value (CKPT010) replaced by its loadable form (`value_fixes`,
  `value_edits`), and the whole file fixed at once (`fix_file_source`).

The parts behind them: `module` (the analysis's module facts, the class a target
names, its bases), `bases` (what library bases do about pickling), `state_methods`
(the shapes of an existing `__getstate__`/`__setstate__`), `recreate` (what
`__setstate__` can build again), `cst_block` (the class's block under libcst),
`planner` (one class's edits), `text` (line tables and spans).
"""

from __future__ import annotations

from ckpt_lsp.fix.bases import BASE_PROTOCOLS, BaseProtocol
from ckpt_lsp.fix.edits import ClassFix, describe_fix, fix_edits, fix_source, plan_fixes
from ckpt_lsp.fix.ignore import ignore_edit
from ckpt_lsp.fix.policy import UNFIXABLE, FixTarget, fix_targets, is_fixable
from ckpt_lsp.fix.text import apply_edits
from ckpt_lsp.fix.values import ValueFix, fix_file_source, value_edits, value_fixes

__all__ = [
    "BASE_PROTOCOLS",
    "UNFIXABLE",
    "BaseProtocol",
    "ClassFix",
    "FixTarget",
    "apply_edits",
    "describe_fix",
    "fix_edits",
    "fix_source",
    "fix_targets",
    "ignore_edit",
    "is_fixable",
    "plan_fixes",
    "ValueFix",
    "fix_file_source",
    "value_edits",
    "value_fixes",
]
