"""Scope: which classes get checkpointed (and so are worth a finding).

Bases resolve through the module's imports to qualified names, then through the
project index to other project classes, transitively and across files. The
knowledge of library bases is data (data/scope.toml).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ckpt_lsp.analysis.external import ExternalBases
from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, dotted_name
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.analysis.names import qualify

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class ScopeData:
    model_bases: frozenset[str]
    model_prefixes: tuple[str, ...]
    prefix_exceptions: frozenset[str]
    excluded: frozenset[str]
    protocol_methods: frozenset[str]
    model_names: tuple[tuple[str, re.Pattern[str]], ...]
    whitelisting_bases: frozenset[str]


@lru_cache(maxsize=1)
def scope_data() -> ScopeData:
    with (Path(__file__).parent.parent / "data" / "scope.toml").open("rb") as fh:
        raw = tomllib.load(fh)
    return ScopeData(
        frozenset(raw["model_bases"]),
        tuple(raw["model_prefixes"]),
        frozenset(raw["prefix_exceptions"]),
        frozenset(raw["excluded"]),
        frozenset(raw["protocol_methods"]),
        tuple(
            (entry["prefix"], re.compile(entry["pattern"])) for entry in raw.get("model_names", [])
        ),
        frozenset(raw.get("whitelisting_bases", [])),
    )


@dataclass(frozen=True)
class ScopeVerdict:
    in_scope: bool
    library_bases: tuple[str, ...]  # the library classes the class derives from (for fixes)
    project_bases: tuple[tuple[ModuleFacts, ClassFacts], ...]  # project classes, nearest first
    pickled_by_library: bool = False  # a library base's __getstate__ keeps only its own fields


def library_verdict(qualified: str, extra: Sequence[str]) -> bool | None:
    """True/False for a known library base, None when it says nothing."""
    data = scope_data()
    if qualified in data.excluded:
        return False
    if qualified in data.model_bases or qualified in extra:
        return True
    if qualified in data.prefix_exceptions:
        return None
    last = qualified.rsplit(".", 1)[-1]
    # private bases name classes too: torch's losses derive from `_Loss`, its convs from `_ConvNd`
    if last.lstrip("_")[:1].isupper() and any(qualified.startswith(p) for p in data.model_prefixes):
        return True
    for prefix, pattern in data.model_names:
        if qualified.startswith(prefix) and pattern.fullmatch(last):
            return True
    return None


class ScopeResolver:
    """Decides scope for classes, memoized per analysis run."""

    def __init__(
        self,
        index: ProjectIndex | None,
        extra_bases: Sequence[str] = (),
        external: ExternalBases | None = None,
    ) -> None:
        self.index = index
        self.extra = tuple(extra_bases)
        self.external = external
        self._memo: dict[tuple[str, str], ScopeVerdict] = {}

    def verdict(self, facts: ModuleFacts, cls: ClassFacts, depth: int = 0) -> ScopeVerdict:
        key = (facts.path, f"{cls.name}:{cls.row}")
        cached = self._memo.get(key)
        if cached is not None:
            return cached
        self._memo[key] = ScopeVerdict(False, (), ())  # cycle guard
        result = self._compute(facts, cls, depth)
        self._memo[key] = result
        return result

    def _compute(self, facts: ModuleFacts, cls: ClassFacts, depth: int) -> ScopeVerdict:
        in_scope = False
        excluded = False
        library: list[str] = []
        project: list[tuple[ModuleFacts, ClassFacts]] = []
        whitelisted = False
        for base in cls.bases:
            if not base:
                continue
            qualified, found = self.resolve(base, facts)
            whitelisted = whitelisted or qualified in scope_data().whitelisting_bases
            verdict = library_verdict(qualified, self.extra)
            if verdict is False:
                excluded = True
                continue
            if verdict:
                in_scope = True
                library.append(qualified)
                continue
            if found is None and self.external is not None:
                inherited = self.external.model_base(
                    qualified, lambda q: library_verdict(q, self.extra)
                )
                if inherited:  # an installed package's class derived from a model base
                    in_scope = True
                    library.append(inherited)
                continue
            if found is None or depth > 20:
                continue
            base_facts, base_cls = found
            project.append((base_facts, base_cls))
            sub = self.verdict(base_facts, base_cls, depth + 1)
            project.extend(sub.project_bases)
            library.extend(sub.library_bases)
            in_scope = in_scope or sub.in_scope
            whitelisted = whitelisted or sub.pickled_by_library
        if excluded and not in_scope:
            return ScopeVerdict(False, tuple(library), tuple(project))
        if not in_scope:
            protocols = scope_data().protocol_methods
            in_scope = any(cls.method(m) is not None for m in protocols)
        libs = tuple(dict.fromkeys(library))
        return ScopeVerdict(in_scope, libs, tuple(project), whitelisted)

    def resolve(
        self, dotted: str, facts: ModuleFacts, depth: int = 0
    ) -> tuple[str, tuple[ModuleFacts, ClassFacts] | None]:
        """What a base expression names: its qualified name, and the project class when it
        is one. Follows module-level aliases (`Base = nn.Module`, `LightningModule =
        pl.LightningModule` in a compat module), re-exports and star imports."""
        head, _, rest = dotted.partition(".")
        if not rest and head in facts.classes:
            return qualify(dotted, facts), (facts, facts.classes[head])
        alias = facts.assigns.get(head)
        if alias is not None and head not in facts.imports and depth < 8:
            target = dotted_name(alias)
            if target:
                return self.resolve(f"{target}.{rest}" if rest else target, facts, depth + 1)
        qualified = qualify(dotted, facts)
        if self.index is None or library_verdict(qualified, self.extra) is not None:
            return qualified, None
        candidates = [qualified]
        if not rest and head not in facts.imports:
            candidates += [f"{star}.{head}" for star in facts.star_imports]
        for candidate in candidates:
            found = self.index.resolve_member(candidate, facts.path)
            if found is None:
                continue
            mod, member = found
            if member in mod.classes:
                return candidate, (mod, mod.classes[member])
            alias = mod.assigns.get(member)
            target = dotted_name(alias) if alias is not None else ""
            if target and depth < 8:
                return self.resolve(target, mod, depth + 1)
        return qualified, None
