"""One workspace folder as a project: its config, its index and its analyzer.

The config of a folder is `[tool.ckpt-lsp]` of its pyproject.toml with the
editor's settings on top. A bad pyproject or bad settings must not stop the
server: the error goes to the user once, and the last good config stays.

Everything here that touches an `Analyzer` or a `ProjectIndex` is called from
the session's single analysis thread only (they are not thread-safe).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ckpt_lsp.analysis.analyzer import Analyzer, FileResult
from ckpt_lsp.analysis.facts import ModuleFacts
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.analysis.save_calls import SaveCall
from ckpt_lsp.budget import file_budget_s
from ckpt_lsp.config import DEFAULT_EXCLUDES, Config, ConfigError, load_config, parse_settings
from ckpt_lsp.lsp.file_paths import is_within, norm_path

log = logging.getLogger("ckpt_lsp.lsp")

# The characters of source whose parsed facts a folder's index keeps (the rest are re-parsed
# from their kept text when an analysis needs them): ~65 bytes of tree per character.
# A 2,000-file workspace (1.04M lines of transformers) held 1.2 GB with no bound.
DEFAULT_INDEX_CHARS = 2_000_000


def index_chars() -> int:
    """CKPT_INDEX_CHARS when set to a positive whole number, else the default."""
    raw = os.environ.get("CKPT_INDEX_CHARS", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_INDEX_CHARS


SETTINGS_KEYS = ("enable", "select", "ignore", "severity", "extendModelBases", "extendHazards")


def interface_of(facts: ModuleFacts | None) -> tuple[Any, ...]:
    """What other modules can see of a module: its classes with their bases and
    method names, and the text of every block that is not a class (imports,
    factories, module-level names). Typing inside a method body does not change
    it, so it does not re-check every dependent on each keystroke."""
    if facts is None:
        return ()
    classes = tuple(
        (
            name,
            tuple(getattr(cf, "bases", ())),
            cf.method_names,
        )
        for name, cf in sorted(facts.classes.items())
    )
    others = tuple(
        (pb.block.kind, pb.block.text) for pb in facts.blocks if pb.block.kind != "class"
    )
    return classes, others


@dataclass
class Project:
    """One workspace folder (root set) or the files outside every folder (root None)."""

    root: str | None
    config: Config
    index: ProjectIndex
    analyzer: Analyzer
    enabled: bool = True
    settings: dict[str, Any] = field(default_factory=dict)
    config_error: str = ""  # the last error shown, so it is shown once

    @classmethod
    def create(cls, root: str | None) -> Project:
        base = Path(root) if root else Path.cwd()
        config = Config(root=base)
        index = ProjectIndex(base, max_chars=index_chars())
        return cls(root, config, index, Analyzer(config, index))

    def contains(self, path: str) -> bool:
        return self.root is not None and is_within(path, self.root)

    # -- configuration -------------------------------------------------------------------------
    def reconfigure(self, settings: Mapping[str, Any]) -> str | None:
        """Re-read pyproject.toml and apply `settings`. Returns an error to show, or None.

        On error the last good config stays in force."""
        self.settings = dict(settings)
        enable = settings.get("enable", True)
        self.enabled = enable is not False
        try:
            start = Path(self.root) if self.root else None
            base = load_config(start)
            config = parse_settings(settings, base)
        except ConfigError as exc:
            message = str(exc).splitlines()[0] if str(exc) else "invalid configuration"
            if message == self.config_error:
                return None
            self.config_error = message
            return message
        except Exception as exc:  # never let a config surprise stop the server
            log.exception("reading the configuration failed")
            return f"ckpt-lsp: cannot read the configuration: {exc}"
        self.config_error = ""
        if config != self.config:
            self.config = config
            self.analyzer = Analyzer(config, self.index)
        return None

    # -- analysis ------------------------------------------------------------------------------
    def update_source(self, path: str, text: str) -> bool:
        """Put a closed file's text into the index. True when what other modules see of it
        changed (its dependents need a re-check)."""
        before = interface_of(self.index.facts(path))
        facts = self.index.add_source(path, text)
        return not facts.broken and interface_of(facts) != before

    def remove_source(self, path: str) -> set[str]:
        """Drop a deleted file from the index; returns the files that depended on it."""
        dependents = self.index.dependents(path)
        self.index.remove(path)
        self.analyzer.forget(path)
        return dependents

    def analyze(self, path: str, text: str) -> tuple[FileResult, bool]:
        """Analyze a file's live text (the analyzer indexes it). Also says whether what
        other modules see of it changed; while a block of it does not parse, it says no,
        so dependents keep their diagnostics instead of flickering with every keystroke."""
        before = interface_of(self.index.facts(path))
        result = self.analyzer.analyze(path, text, budget_s=file_budget_s() or None)
        facts = self.index.facts(path)
        changed = facts is not None and not facts.broken and interface_of(facts) != before
        return result, changed

    def save_reach(self, path: str) -> tuple[tuple[SaveCall, ...], frozenset[str]]:
        """The calls of a module that pickle project objects, and the modules whose classes
        they reach: when the calls change, those modules' related locations do too (a
        finding in model.py names the torch.save in train.py)."""
        facts = self.index.facts(path)
        if facts is None or not self.analyzer.bites.saves(facts):
            return (), frozenset()
        calls = tuple(self.index.save_calls(path))
        return calls, frozenset(self.analyzer.bites.reached_paths(calls, facts))

    def python_files(self, limit: int = 200_000) -> list[str]:
        """The .py files of the folder, for the index and checkWorkspace."""
        if self.root is None:
            return []
        return discover_python_files([self.root], self.config, limit)


def discover_python_files(roots: Iterable[str], config: Config, limit: int = 200_000) -> list[str]:
    """Python files under `roots`, honouring the config's excludes."""
    try:
        from ckpt_lsp.discovery import discover

        found, errors = discover([Path(r) for r in roots], config)
        for error in errors[:5]:
            log.warning("%s: %s", error.filename, error.message)
        # notebooks reach the server through notebook sync, not from disk
        return [norm_path(p) for p in found if p.suffix == ".py"][:limit]
    except Exception:
        log.exception("file discovery failed; walking the folders instead")
    excluded = set(config.exclude) | set(config.extend_exclude) | set(DEFAULT_EXCLUDES)
    out: list[str] = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in excluded and not d.startswith("."))
            for name in sorted(filenames):
                if name.endswith((".py", ".pyi")):
                    out.append(norm_path(os.path.join(dirpath, name)))
                    if len(out) >= limit:
                        return out
    return out
