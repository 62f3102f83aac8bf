"""The public rule table: codes, names, default severities, the docs pages and links.

The codes are a contract with users (suppression comments, config, CI filters),
so they never change meaning; new rules take the next free code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DOCS_BASE = "https://github.com/ckpt-lsp/ckpt-lsp/blob/main/docs/rules"
# The rule pages shipped with the package (`--explain` prints them, the hover quotes them).
RULE_DOCS = Path(__file__).resolve().parent / "data" / "rules"
# The levels a rule may report at; a config may move a rule to any of them.
SEVERITIES: tuple[str, ...] = ("error", "warning", "information", "hint")


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    summary: str
    severity: str  # its default level, one of SEVERITIES

    @property
    def url(self) -> str:
        return f"{DOCS_BASE}/{self.code}.md"


RULES: dict[str, Rule] = {
    r.code: r
    for r in (
        Rule("CKPT001", "open-file", "File handles and file-like OS resources", "error"),
        Rule(
            "CKPT002", "connection", "Sockets, connections, cursors, pools, subprocesses", "error"
        ),
        Rule("CKPT003", "local-callable", "Lambdas, nested functions and local classes", "error"),
        Rule(
            "CKPT004",
            "object-array",
            "Object-dtype numpy arrays (weights-only formats fail)",
            "warning",
        ),
        Rule("CKPT005", "sync-primitive", "Locks, events, threads, queues, executors", "error"),
        Rule(
            "CKPT006",
            "live-iterator",
            "Generators, coroutines, dict views, scandir iterators",
            "error",
        ),
        Rule("CKPT007", "module-object", "Module objects stored on the instance", "error"),
        Rule("CKPT008", "weak-reference", "Weak references and weak containers", "error"),
        Rule("CKPT009", "native-object", "Other values without pickle support", "error"),
        Rule(
            "CKPT010",
            "weights-only",
            "Checkpoint values the default torch.load refuses (weights_only=True)",
            "error",
        ),
        Rule(
            "CKPT011",
            "hparams",
            "Lightning hyperparameters that are dropped or that the default torch.load refuses",
            "error",
        ),
        Rule(
            "CKPT012",
            "keras-unregistered",
            "Custom Keras classes that load_model cannot locate (not registered)",
            "error",
        ),
        Rule(
            "CKPT013",
            "keras-config",
            "Keras __init__ arguments that the class's config does not give back",
            "warning",
        ),
        Rule(
            "CKPT014",
            "main-module-class",
            "A model class defined in __main__ (a notebook, a script) saved whole",
            "warning",
        ),
    )
}

# The save paths a message talks about, in the order messages list them.
SAVE_PATHS: dict[str, str] = {
    "torch.save": "torch.save(model)",
    "pickle": "pickle",
    "spawn": "spawn workers",
    "deepcopy": "deepcopy",
    "weights_only": "weights-only formats",
    "keras": "model.save + keras.models.load_model",
    "save_weights": "save_weights/load_weights",
}


def rule_for(code: str) -> Rule | None:
    return RULES.get(code.upper())


def rule_page(code: str) -> str | None:
    """The markdown page of a rule as shipped with the package; None when it is missing."""
    try:
        return (RULE_DOCS / f"{code.upper()}.md").read_text(encoding="utf-8")
    except OSError:
        return None
