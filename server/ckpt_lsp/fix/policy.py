"""Which findings get a fix, and which kind: the one policy the CLI and the editor share.

`fix_targets` is the only place that turns findings into fix targets. `--fix`, `--diff`,
the JSON report's fixes, and the server's quick fixes, fix-all and resolve all go
through it, so the editor never offers a fix the CLI refuses or writes different code.

- Refused, because dropping the value would lose data or change nothing: object arrays
  (CKPT004: they pickle; only weights-only formats reject them) and hazards whose
  catalog entry says `fix = "none"` (a child module or a registered hook does not live
  in the instance `__dict__`).
- Reset to None instead of re-created: hazards whose entry says `fix = "reset"`
  (re-opening an lmdb environment in the process that unpickles it fails).
- Re-created from the expression that first built it, when that can run again: the rest.
- Lightning hyperparameters (CKPT011) are not attributes: the fix leaves the parameter out of
  what `save_hyperparameters()` stores (`ignore=`), see fix/hparams_ignore.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ckpt_lsp.findings import Finding

# Object arrays pickle; only weights-only formats reject them, so dropping them from the
# pickled state would lose data for nothing. They get no automatic fix.
UNFIXABLE = frozenset({"CKPT004"})
# A finding fixed by leaving its parameter out of save_hyperparameters (its fix_mode).
IGNORE_HPARAM = "hparams-ignore"


@dataclass(frozen=True)
class FixTarget:
    """A class and the instance attributes to keep out of its pickled state."""

    class_name: str  # top-level name, or dotted "Outer.Inner" for a nested class
    class_line: int  # 1-based row of the `class` keyword line (decorators excluded)
    attributes: tuple[str, ...]
    # Qualified names of library bases as the analyzer resolved them ("torch.nn.Module").
    bases: tuple[str, ...] = ()
    # Attributes to set to None instead of re-creating: re-opening them in the process that
    # unpickles fails (an lmdb environment may be open once per process).
    reset: tuple[str, ...] = ()
    # `__init__` parameters to leave out of what save_hyperparameters() stores (CKPT011)
    ignore: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """Everything a fix needs, as JSON (a code action's data carries it to resolve)."""
        data: dict[str, object] = {
            "class": self.class_name,
            "line": self.class_line,
            "attributes": list(self.attributes),
            "bases": list(self.bases),
            "reset": list(self.reset),
        }
        if self.ignore:
            data["ignore"] = list(self.ignore)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FixTarget:
        """The inverse of `to_json`; raises KeyError/TypeError/ValueError on other data."""
        lists = [data.get(key) or [] for key in ("attributes", "bases", "reset", "ignore")]
        if not all(isinstance(value, list) for value in lists):
            raise TypeError("attributes, bases, reset and ignore must be lists")
        attributes, bases, reset, ignore = (tuple(str(v) for v in value) for value in lists)
        return cls(str(data["class"]), int(data["line"]), attributes, bases, reset, ignore)


# Findings about a value written to a checkpoint: fixed where the value is (fix/values.py).
VALUE_FIXED = frozenset({"CKPT010"})


def is_fixable(finding: Finding) -> bool:
    """Whether leaving the attribute out of the pickled state is a fix for the finding."""
    return (
        bool(finding.attribute)
        and finding.class_name is not None
        and finding.code not in UNFIXABLE
        and finding.code not in VALUE_FIXED
        and finding.fix_mode != "none"
    )


def fix_targets(findings: Iterable[Finding]) -> list[FixTarget]:
    """One FixTarget per class, in the order of the classes in the file: every fixable
    attribute of the class is fixed together, each reset or re-created as its hazard says."""
    grouped: dict[tuple[str, int], list[Finding]] = {}
    for finding in findings:
        if is_fixable(finding):
            grouped.setdefault((finding.class_name or "", finding.class_line), []).append(finding)
    targets = []
    for (name, line), items in sorted(grouped.items(), key=lambda kv: kv[0][1]):
        pickled = [f for f in items if f.fix_mode != IGNORE_HPARAM]
        attributes = tuple(dict.fromkeys(f.attribute or "" for f in pickled))
        bases = tuple(dict.fromkeys(b for f in pickled for b in f.bases))
        reset = tuple(dict.fromkeys(f.attribute or "" for f in pickled if f.fix_mode == "reset"))
        ignore = tuple(
            dict.fromkeys(f.attribute or "" for f in items if f.fix_mode == IGNORE_HPARAM)
        )
        targets.append(FixTarget(name, line, attributes, bases, reset, ignore))
    return targets
