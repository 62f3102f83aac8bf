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
# Keras classes get their registration and config written instead (fix/keras.py).
KERAS_CODES = frozenset({"CKPT012", "CKPT013"})
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
    # Keras fixes (CKPT012/CKPT013), each "kind:argument": "register:<package>", "kwargs",
    # "config:<parameter>", "rebuild:<parameter>" (see fix/keras.py).
    keras: tuple[str, ...] = ()
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
        if self.keras:
            data["keras"] = list(self.keras)
        if self.ignore:
            data["ignore"] = list(self.ignore)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FixTarget:
        """The inverse of `to_json`; raises KeyError/TypeError/ValueError on other data."""
        lists = [data.get(key) or [] for key in ("attributes", "bases", "reset", "keras", "ignore")]
        if not all(isinstance(value, list) for value in lists):
            raise TypeError("attributes, bases, reset, keras and ignore must be lists")
        attributes, bases, reset, keras, ignore = (tuple(str(v) for v in value) for value in lists)
        return cls(str(data["class"]), int(data["line"]), attributes, bases, reset, keras, ignore)


def keras_op(finding: Finding) -> str | None:
    """The Keras fix a CKPT012/CKPT013 finding gets (see fix/keras.py); None: none."""
    mode = finding.fix_mode
    if mode.startswith("register:"):
        return mode
    if mode == "keras-kwargs":
        return "kwargs"
    if mode in _KERAS_PARAM_MODES and finding.attribute:
        return f"{mode[len('keras-') :]}:{finding.attribute}"
    return None


# "keras-none" and the rest: no certain fix (the finding stays reported)
_KERAS_PARAM_MODES = frozenset({"keras-config", "keras-rebuild", "keras-serialize", "keras-str"})


def is_keras(finding: Finding) -> bool:
    return finding.code in KERAS_CODES


# Findings about a value written to a checkpoint: fixed where the value is (fix/values.py).
VALUE_FIXED = frozenset({"CKPT010"})


def is_fixable(finding: Finding) -> bool:
    """Whether the policy has a fix for the finding: leaving the attribute out of the
    pickled state, or for a Keras class the registration or config it lacks. A checkpoint
    value (CKPT010) is fixed where it is written (fix/values.py), not here."""
    if is_keras(finding):
        return keras_op(finding) is not None
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
        pickled = [f for f in items if not is_keras(f) and f.fix_mode != IGNORE_HPARAM]
        attributes = tuple(dict.fromkeys(f.attribute or "" for f in pickled))
        bases = tuple(dict.fromkeys(b for f in pickled for b in f.bases))
        reset = tuple(dict.fromkeys(f.attribute or "" for f in pickled if f.fix_mode == "reset"))
        keras = tuple(dict.fromkeys(op for f in items if is_keras(f) and (op := keras_op(f))))
        ignore = tuple(
            dict.fromkeys(f.attribute or "" for f in items if f.fix_mode == IGNORE_HPARAM)
        )
        targets.append(FixTarget(name, line, attributes, bases, reset, keras, ignore))
    return targets


def target_title(target: FixTarget) -> str:
    """What fixing a target does, in a sentence (JSON `fix.message`, code action titles)."""
    if target.keras and not target.attributes:
        return f"Fix all Keras findings of `{target.class_name}`: {keras_summary(target.keras)}"
    if target.ignore and not target.attributes:
        return f"Leave unsafe hyperparameters of `{target.class_name}` out of the checkpoint"
    return (
        f"Exclude unpicklable attributes of `{target.class_name}` from pickling "
        "(add __getstate__/__setstate__)"
    )


def keras_summary(ops: Iterable[str]) -> str:
    """`register it, add **kwargs, put `units` in get_config` for a list of Keras fix ops."""
    words: list[str] = []
    for op in ops:
        kind, _, arg = op.partition(":")
        if kind == "register":
            words.append("register it")
        elif kind == "kwargs":
            words.append("add **kwargs")
        elif kind == "config":
            words.append(f"put `{arg}` in get_config")
        elif kind in ("rebuild", "serialize"):
            words.append(f"serialize `{arg}` and rebuild it in from_config")
        elif kind == "str":
            words.append(f"keep `{arg}` as a string in get_config")
    return ", ".join(words)
