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
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FixTarget:
        """The inverse of `to_json`; raises KeyError/TypeError/ValueError on other data."""
        lists = [data.get(key) or [] for key in ("attributes", "bases", "reset")]
        if not all(isinstance(value, list) for value in lists):
            raise TypeError("attributes, bases and reset must be lists")
        attributes, bases, reset = (tuple(str(v) for v in value) for value in lists)
        keras = data.get("keras") or []
        if not isinstance(keras, list):
            raise TypeError("keras must be a list")
        return cls(
            str(data["class"]),
            int(data["line"]),
            attributes,
            bases,
            reset,
            tuple(str(v) for v in keras),
        )


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


def is_fixable(finding: Finding) -> bool:
    """Whether the policy has a fix for the finding: leaving the attribute out of the
    pickled state, or for a Keras class the registration or config it lacks."""
    if is_keras(finding):
        return keras_op(finding) is not None
    return bool(finding.attribute) and finding.code not in UNFIXABLE and finding.fix_mode != "none"


def fix_targets(findings: Iterable[Finding]) -> list[FixTarget]:
    """One FixTarget per class, in the order of the classes in the file: every fixable
    attribute of the class is fixed together, each reset or re-created as its hazard says."""
    grouped: dict[tuple[str, int], list[Finding]] = {}
    for finding in findings:
        if is_fixable(finding):
            grouped.setdefault((finding.class_name, finding.class_line), []).append(finding)
    targets = []
    for (name, line), items in sorted(grouped.items(), key=lambda kv: kv[0][1]):
        pickled = [f for f in items if not is_keras(f)]
        attributes = tuple(dict.fromkeys(f.attribute for f in pickled))
        bases = tuple(dict.fromkeys(b for f in pickled for b in f.bases))
        reset = tuple(dict.fromkeys(f.attribute for f in pickled if f.fix_mode == "reset"))
        keras = tuple(dict.fromkeys(op for f in items if is_keras(f) and (op := keras_op(f))))
        targets.append(FixTarget(name, line, attributes, bases, reset, keras))
    return targets


def target_title(target: FixTarget) -> str:
    """What fixing a target does, in a sentence (JSON `fix.message`, code action titles)."""
    if target.keras and not target.attributes:
        return f"Fix all Keras findings of `{target.class_name}`: {keras_summary(target.keras)}"
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
