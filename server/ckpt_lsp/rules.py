"""The public rule table: codes, names, default severities and docs links.

The codes are a contract with users (suppression comments, config, CI filters),
so they never change meaning; new rules take the next free code.
"""

from __future__ import annotations

from dataclasses import dataclass

DOCS_BASE = "https://github.com/ckpt-lsp/ckpt-lsp/blob/main/docs/rules"


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    summary: str
    severity: str  # "error" | "warning"

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
    )
}

# The save paths a message talks about, in the order messages list them.
SAVE_PATHS: dict[str, str] = {
    "torch.save": "torch.save(model)",
    "pickle": "pickle",
    "spawn": "spawn workers",
    "deepcopy": "deepcopy",
    "weights_only": "weights-only formats",
}


def rule_for(code: str) -> Rule | None:
    return RULES.get(code.upper())
