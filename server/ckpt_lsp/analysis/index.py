"""The project index: facts of every module checked, so names resolve across files.

A `Layer(nn.Module)` in `proj/base.py` makes `class Block(Layer)` in
`proj/blocks.py` a model; a factory in `proj/io.py` that returns `lmdb.open(...)`
makes `self.env = open_env()` a hazard. Modules are found by dotted name; every
dotted suffix of a file's path is registered, so `src/` layouts and namespace
packages resolve without configuration.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ckpt_lsp.analysis.facts import ModuleFacts, module_facts


def module_name_for(path: Path, root: Path) -> str:
    """Dotted module name of `path` relative to `root` (or its stem when outside it)."""
    try:
        rel = path.resolve().relative_to(root.resolve())
        parts = list(rel.with_suffix("").parts)
    except ValueError:
        parts = [path.stem]
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(p for p in parts if p.isidentifier())


def _norm(path: str | Path) -> str:
    return os.path.normpath(os.path.abspath(str(path)))


class ProjectIndex:
    """Module facts by path and by dotted name; cheap to update one file at a time."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or Path.cwd()).resolve()
        self._facts: dict[str, ModuleFacts] = {}
        self._by_name: dict[str, set[str]] = {}
        self._generation = 0  # bumped by every change, so caches can tell
        self._changes: dict[str, int] = {}

    def generation_without(self, path: str | Path) -> int:
        """A number that changes whenever a module other than `path` changes."""
        return self._generation - self._changes.get(_norm(path), 0)

    def __len__(self) -> int:
        return len(self._facts)

    # -- updating --------------------------------------------------------
    def add_source(self, path: str | Path, text: str) -> ModuleFacts:
        key = _norm(path)
        self.remove(key)
        self._generation += 1
        self._changes[key] = self._changes.get(key, 0) + 1
        name = module_name_for(Path(key), self.root)
        facts = module_facts(key, name, text)
        self._facts[key] = facts
        for suffix in self._suffixes(name):
            self._by_name.setdefault(suffix, set()).add(key)
        return facts

    def remove(self, path: str | Path) -> None:
        key = _norm(path)
        old = self._facts.pop(key, None)
        if old is None:
            return
        self._generation += 1
        self._changes[key] = self._changes.get(key, 0) + 1
        for suffix in self._suffixes(old.module):
            paths = self._by_name.get(suffix)
            if paths is not None:
                paths.discard(key)
                if not paths:
                    del self._by_name[suffix]

    def scan(self, paths: Iterable[str | Path]) -> list[tuple[str, str]]:
        """Read and index files; returns (path, error) for those that could not be read."""
        errors: list[tuple[str, str]] = []
        for path in paths:
            try:
                text = Path(path).read_bytes().decode("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                errors.append((str(path), str(exc)))
                continue
            self.add_source(path, text)
        return errors

    @staticmethod
    def _suffixes(name: str) -> list[str]:
        parts = name.split(".") if name else []
        return [".".join(parts[i:]) for i in range(len(parts))]

    # -- lookups ---------------------------------------------------------
    def facts(self, path: str | Path) -> ModuleFacts | None:
        return self._facts.get(_norm(path))

    def all_facts(self) -> list[ModuleFacts]:
        return list(self._facts.values())

    def find_module(self, dotted: str, near: str = "") -> ModuleFacts | None:
        """The indexed module named `dotted`; among several, the one nearest to `near`."""
        candidates = self._by_name.get(dotted)
        if not candidates:
            return None
        if len(candidates) == 1:
            return self._facts[next(iter(candidates))]
        near_dir = os.path.dirname(_norm(near)) if near else ""

        def closeness(p: str) -> tuple[int, int, str]:
            common = os.path.commonpath([near_dir, p]) if near_dir else ""
            exact = self._facts[p].module == dotted
            return (-int(exact), -len(common), p)

        return self._facts[min(candidates, key=closeness)]

    def resolve_member(
        self, qualified: str, near: str = "", depth: int = 0
    ) -> tuple[ModuleFacts, str] | None:
        """Find the module that defines `pkg.mod.Name`, following re-exports a few levels."""
        if depth > 4 or "." not in qualified:
            return None
        module, _, member = qualified.rpartition(".")
        facts = self.find_module(module, near)
        if facts is None:
            return None
        if member in facts.classes or member in facts.functions or member in facts.assigns:
            return facts, member
        target = facts.imports.get(member)
        if target and target != qualified:
            return self.resolve_member(target, facts.path, depth + 1)
        for star in facts.star_imports:  # `from .feats import *` re-exports
            found = self.resolve_member(f"{star}.{member}", facts.path, depth + 1)
            if found is not None:
                return found
        return None

    def dependents(self, path: str | Path) -> set[str]:
        """Paths of modules whose analysis may change when `path` changes (transitively)."""
        start = self._facts.get(_norm(path))
        if start is None:
            return set()
        result: set[str] = set()
        frontier = {start.module}
        while frontier:
            names = frontier
            frontier = set()
            for facts in self._facts.values():
                if facts.path in result or facts.path == start.path:
                    continue
                if any(self._imports_from(facts, name) for name in names):
                    result.add(facts.path)
                    frontier.add(facts.module)
        return result

    @staticmethod
    def _imports_from(facts: ModuleFacts, module: str) -> bool:
        if not module:
            return False
        tail = module.rsplit(".", 1)[-1]
        for target in list(facts.imports.values()) + facts.star_imports:
            if target == module or target.startswith(module + "."):
                return True
            # suffix registration: `from core import X` may name `zoo.core`
            head = target.rsplit(".", 1)[0]
            if module.endswith("." + head) or head == tail or target == tail:
                return True
        return False
