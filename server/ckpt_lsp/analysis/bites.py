"""Where a finding bites: the calls of the project that would fail on the flagged object.

A finding on `Net.lock` is worth more with `train.py:88 torch.save(model) pickles Net here`
beside it. The save calls of every module are module facts (save_calls.py, kept by the
project index by text); here each call's argument is resolved to a project class, and the
classes it carries are worked out:

- the class itself and every project class it derives from (a subclass instance pickles
  the attributes it inherits);
- one level of containment: the classes its attributes hold (`self.net = Net()`, an
  attribute annotated with a class, a parameter annotated with one and stored), with their
  bases. A finding on a class two attributes deep is not linked.

The table is rebuilt when the index changes, only for a file that has findings, and never
parses a module without a trigger word (save_calls.has_trigger).
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, dotted_name, self_attribute
from ckpt_lsp.analysis.memo import BoundedCache
from ckpt_lsp.analysis.names import qualify, star_candidates
from ckpt_lsp.analysis.nodes import walk
from ckpt_lsp.analysis.parsing import TextCaches
from ckpt_lsp.analysis.save_calls import TRIGGERS, SaveCall, Target, module_save_calls
from ckpt_lsp.findings import Finding

if TYPE_CHECKING:
    from ckpt_lsp.analysis.index import ProjectIndex

# Related locations per finding: the nearest first (same file, then others by path and row).
MAX_RELATED = 5
# Calling modules read per class (the nearest first).
MAX_MODULES = 16
_WORD = re.compile(r"[A-Za-z_]\w*")
_DEPTH = 8  # bases followed at most this deep (a cycle must not hang the analysis)

Related = tuple[str, int, int, str]
ClassRef = tuple[ModuleFacts, ClassFacts]


@dataclass(frozen=True)
class Site:
    """A save call that reaches a class: where, and what its message says."""

    path: str  # normalized path of the module that calls
    row: int
    column: int
    save_path: str  # "torch.save" | "pickle" | "deepcopy" | "spawn"
    message: str


# The findings about an attribute that pickling carries: the ones whose object a save call
# pickles (the other rules name the call or the class they are about themselves).
ATTRIBUTE_CODES = frozenset(f"CKPT00{n}" for n in range(1, 10))


class Bites:
    """The sites reaching each class with findings, looked up by name.

    A call can reach class C only from a module whose text names C or a class that extends
    or holds C (`Runner` holding a `Net`); such a class is defined in C's own module or in a
    module that saves. So the modules searched are the ones with a trigger word (save_calls)
    whose text holds one of those names; the calls found are then resolved through the index.
    Sites from other modules are kept while no other module changes (a keystroke in the
    file being edited re-reads only its own calls)."""

    def __init__(self, index: ProjectIndex | None, caches: TextCaches) -> None:
        self.index = index
        self._caches = caches  # the analyzer's: its memo of words by block
        self._stamp: object = None
        # sites in other modules, by the class name and the names searched for it
        self._others: dict[tuple[str, ...], list[Site]] = {}
        self._calling: tuple[int, list[tuple[str, str]]] | None = None  # see _calling_texts
        self._own_refs: dict[str, list[str]] | None = None  # see _refs
        self._header: object = None  # see _refresh_header
        self._words: BoundedCache[str, frozenset[str]] = BoundedCache(4096, 4_000_000)
        self._read: set[str] = set()  # modules searched (what the result depends on)
        # memos valid while the stamp holds
        self._classes: dict[tuple[str, str], ClassRef | None] = {}
        self._carried: dict[tuple[str, str], list[tuple[ClassRef, str]]] = {}

    def attach(
        self, facts: ModuleFacts, findings: list[Finding], show: Callable[[str], str]
    ) -> list[Finding]:
        """The findings with the sites that reach their class appended to `related`;
        `show` writes a module's path the way the findings' filename is written."""
        if not findings:
            return findings
        self._refresh(facts)
        if not self.saves(facts) and all(p == facts.path for p, _ in self._calling_texts()):
            return findings  # nothing in the project pickles anything
        self._refresh_header(facts)
        by_class: dict[str, list[Site]] = {}
        out: list[Finding] = []
        for finding in findings:
            name = finding.class_name
            if name is None or finding.code not in ATTRIBUTE_CODES:
                out.append(finding)  # a checkpoint value, hparam, Keras or __main__ finding
                continue
            if name not in by_class:
                by_class[name] = self.sites(facts, name)
            sites = by_class[name]
            chosen = _nearest([s for s in sites if s.save_path in finding.breaks], facts.path)
            if not chosen:
                out.append(finding)
                continue
            extra = tuple((show(s.path), s.row, s.column, s.message) for s in chosen)
            out.append(replace(finding, related=finding.related + extra))
        index = self.index
        if index is not None and index.touched is not None:
            index.touched.update(self._read)
        self._classes.clear()  # they hold module facts the bounded index may have dropped
        self._carried.clear()
        return out

    def sites(self, facts: ModuleFacts, name: str) -> list[Site]:
        """The calls of the project that reach class `name` of the module `facts`."""
        if name not in facts.classes:
            return []
        names = self._names(facts, name)
        own = self._module_sites(facts, facts, name, names)
        others = self._others.get(names)
        if others is None:
            others = []
            for module in self._searched(facts.path, names):
                others.extend(self._module_sites(module, facts, name, names))
            self._others[names] = others
        return own + others

    def reached_paths(self, calls: Iterable[SaveCall], facts: ModuleFacts) -> set[str]:
        """The modules whose classes `calls` (of the module `facts`) reach: their findings'
        related locations change with these calls."""
        out: set[str] = set()
        self._classes.clear()
        self._carried.clear()
        for call in calls:
            saved = self._resolve(call.target, facts)
            if saved is not None:
                out.update(ref[0].path for ref, _ in self.carried(saved))
        self._classes.clear()
        self._carried.clear()
        return out

    # -- searching -------------------------------------------------------------------------
    def _refresh(self, facts: ModuleFacts) -> None:
        """Drop what other modules were found to hold once one of them changed."""
        index = self.index
        stamp: object = id(facts)
        if index is not None:
            stamp = (facts.path, index.generation_without(facts.path))
        if stamp != self._stamp:
            self._stamp = stamp
            self._header = None
            self._others.clear()
            self._read = set()
        self._classes.clear()  # the file's own classes may have changed: resolve again
        self._carried.clear()
        self._own_refs = None

    def _refresh_header(self, facts: ModuleFacts) -> None:
        """Sites in other modules resolve to this file's classes by name and base: a class
        renamed or rebased here finds them again."""
        header = tuple((n, c.bases) for n, c in facts.classes.items())
        if header != self._header:
            self._header = header
            self._others.clear()

    def saves(self, facts: ModuleFacts) -> bool:
        """Whether the file holds a trigger word (in an editor block by block: a keystroke
        changes one block, the others are answered from the memo by text)."""
        return self._caches.mentions(facts.blocks, facts.text, TRIGGERS)

    def _refs(self, facts: ModuleFacts) -> dict[str, list[str]]:
        """Class name -> the other classes of the file whose text names it (read once per
        analysis, and only when some module of the project saves anything)."""
        if self._own_refs is None:
            self._own_refs = {}
            for other, cls in facts.classes.items():
                for word in self._words_of(cls.parsed.block.text) & facts.class_names:
                    if word != other:
                        self._own_refs.setdefault(word, []).append(other)
        return self._own_refs

    def _words_of(self, text: str) -> frozenset[str]:
        words = self._words.get(text)
        if words is None:
            words = frozenset(_WORD.findall(text))
            self._words.put(text, words, len(text))
        return words

    def _calling_texts(self) -> list[tuple[str, str]]:
        """index.calling_texts(), kept until any module changes (reading every loader once
        makes the texts the index's own: a batch run's later files change nothing)."""
        index = self.index
        if index is None:
            return []
        if self._calling is None or self._calling[0] != index.generation:
            texts = index.calling_texts()
            self._calling = (index.generation, texts)
        return self._calling[1]

    def _calls(self, facts: ModuleFacts, names: tuple[str, ...]) -> list[SaveCall]:
        index = self.index
        if index is None:
            return module_save_calls(facts, names)
        return index.save_calls(facts.path, names)

    def _names(self, facts: ModuleFacts, name: str) -> tuple[str, ...]:
        """`name`, and the classes of its own module that name it (they may extend or hold
        it: a script may save `Runner` without naming `Net`)."""
        return (name, *self._refs(facts).get(name, ()))

    def _searched(self, own: str, names: tuple[str, ...]) -> list[ModuleFacts]:
        """The calling modules whose text holds one of `names`: the MAX_MODULES nearest to
        `own` (by the folders they share, then by path), so a base class that a whole
        library derives from does not make every one of its modules read."""
        index = self.index
        if index is None:
            return []
        found: list[str] = []
        for path, text in self._calling_texts():
            self._read.add(path)
            if path != own and any(n in text for n in names):
                found.append(path)
        folder = os.path.dirname(own)
        found.sort(key=lambda p: (-_shared(folder, p), p))
        out: list[ModuleFacts] = []
        for path in found[:MAX_MODULES]:
            facts = index.facts(path)
            if facts is not None:
                out.append(facts)
        return out

    def _module_sites(
        self, module: ModuleFacts, facts: ModuleFacts, name: str, names: tuple[str, ...]
    ) -> list[Site]:
        """The calls of `module` that reach class `name` of `facts`."""
        if module is not facts:  # a class of this module may extend or hold it
            names = (*names, *_holders(module, names))
        out: list[Site] = []
        # the file's own calls are read whole once per text (every class of the file with
        # findings asks); another module's only where they name the class
        for call in self._calls(module, () if module is facts else names):
            if not _may_name(call.target, module, names):
                continue
            saved = self._resolve(call.target, module)
            if saved is None:
                continue
            for (owner, cls), how in self.carried(saved):
                if owner.path == facts.path and cls.name == name:
                    message = _message(call, saved[1].name, how, name)
                    out.append(Site(module.path, call.row, call.column, call.path, message))
                    break
        return out

    # -- resolving names to project classes ----------------------------------------------------
    def _resolve(self, target: Target, facts: ModuleFacts) -> ClassRef | None:
        if target[0] == "self":
            _, class_name, attribute = target
            owner = facts.classes.get(class_name)
            if owner is None:
                return None
            for holder in [(facts, owner), *self.bases((facts, owner))]:
                dotted = attribute_names(holder[1], attribute).get(attribute)
                if dotted:
                    return self.find_class(dotted, holder[0])
            return None
        return self.find_class(target[1], facts)

    def find_class(self, dotted: str, facts: ModuleFacts) -> ClassRef | None:
        """The project class `dotted` names in `facts`' module, if it is one."""
        key = (facts.path, dotted)
        if key not in self._classes:
            self._classes[key] = self._find_class(dotted, facts)
        return self._classes[key]

    def carried(self, saved: ClassRef) -> list[tuple[ClassRef, str]]:
        key = (saved[0].path, saved[1].name)
        if key not in self._carried:
            self._carried[key] = _carried(self, saved)
        return self._carried[key]

    def _find_class(self, dotted: str, facts: ModuleFacts) -> ClassRef | None:
        local = facts.classes.get(dotted)
        if local is not None:
            return facts, local
        index = self.index
        if index is None:
            return None
        qualified = qualify(dotted, facts)
        for name in (qualified, *star_candidates(dotted, facts)):
            # one re-export followed, not four: a whole library's __init__ chains cost seconds
            found = index.resolve_member(name, facts.path, 3) if "." in name else None
            if found is not None and found[1] in found[0].classes:
                return found[0], found[0].classes[found[1]]
        return None

    def bases(self, ref: ClassRef) -> list[ClassRef]:
        """The project classes `ref` derives from, nearest first."""
        out: list[ClassRef] = []
        frontier = [ref]
        for _ in range(_DEPTH):
            nxt: list[ClassRef] = []
            for facts, cls in frontier:
                for base in cls.bases:
                    found = self.find_class(base, facts) if base else None
                    if found is not None and all(found[1] is not o[1] for o in out + [ref]):
                        out.append(found)
                        nxt.append(found)
            if not nxt:
                break
            frontier = nxt
        return out


def _shared(folder: str, path: str) -> int:
    """How much of its folder `path` shares with `folder` (0 across drives)."""
    try:
        return len(os.path.commonpath([folder, path]))
    except ValueError:
        return 0


def _holders(module: ModuleFacts, names: tuple[str, ...]) -> list[str]:
    """The classes of `module` that may extend or hold one of `names`, by their text: a
    base so named, a constructor call or an annotation."""
    out: list[str] = []
    for other, cls in module.classes.items():
        if other in names:
            continue
        text = cls.parsed.block.text
        if any(b.rpartition(".")[2] in names for b in cls.bases) or _names_a_class(text, names):
            out.append(other)
    return out


def _may_name(target: Target, module: ModuleFacts, names: tuple[str, ...]) -> bool:
    """Whether a call's argument may be one of `names` (before resolving anything): a
    constructor so named, or an attribute of a class whose text names one."""
    if target[0] == "name":
        return target[1].rpartition(".")[2] in names
    owner = module.classes.get(target[1])
    return owner is not None and _names_a_class(owner.parsed.block.text, names)


def _names_a_class(text: str, names: tuple[str, ...]) -> bool:
    """A constructor call or an annotation of one of `names` in `text`."""
    return any(f"{n}(" in text or f": {n}" in text for n in names)


def _carried(bites: Bites, saved: ClassRef) -> list[tuple[ClassRef, str]]:
    """The classes whose attributes go with an object of class `saved`, and how:
    "" (itself), "extends" (a base), "holds" (an attribute's class or its base)."""
    own = [saved, *bites.bases(saved)]
    out: list[tuple[ClassRef, str]] = [(saved, "")]
    out.extend((base, "extends") for base in own[1:])
    for facts, cls in own:
        for dotted in attribute_names(cls).values():
            held = bites.find_class(dotted, facts)
            if held is None:
                continue
            for ref in (held, *bites.bases(held)):
                if all(ref[1] is not o[0][1] for o in out):
                    out.append((ref, "holds"))
    return out


def attribute_names(cls: ClassFacts, only: str = "") -> dict[str, str]:
    """Attribute -> the dotted class name it holds, as written in the class's module: from
    `self.x = Name(...)`, `self.x: Name = ...`, `self.x = param` with `param: Name`, and
    class-level annotations (dataclass fields). `only`: one attribute is wanted (the
    methods that do not mention it are not read)."""
    out: dict[str, str] = {}
    for stmt in cls.class_level():
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            _note(out, stmt.target.id, dotted_name(stmt.annotation))
    methods = cls.methods_mentioning(f"self.{only}") if only else cls.assigning_methods()
    for method in methods:
        params = {
            a.arg: dotted_name(a.annotation)
            for a in (*method.args.args, *method.args.kwonlyargs)
            if a.annotation is not None
        }
        for node in walk(method):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                name = self_attribute(node.targets[0])
                if name:
                    _note(out, name, _value_class(node.value, params))
            elif isinstance(node, ast.AnnAssign):
                name = self_attribute(node.target)
                if name:
                    _note(out, name, dotted_name(node.annotation))
    return {k: v for k, v in out.items() if v}


def _note(out: dict[str, str], name: str, dotted: str) -> None:
    """An attribute bound to two different classes holds neither for sure."""
    if name in out and out[name] != dotted:
        out[name] = ""
    else:
        out[name] = dotted


def _value_class(value: ast.expr, params: dict[str, str]) -> str:
    if isinstance(value, ast.Call):
        return dotted_name(value.func)
    if isinstance(value, ast.Name):
        return params.get(value.id, "")
    return ""


def _message(call: SaveCall, saved: str, how: str, reached: str) -> str:
    """ "torch.save(model) pickles Net here"; the class named is the one saved."""
    what = saved
    if how == "extends":
        what = f"{saved} (a {reached})"
    elif how == "holds":
        what = f"{saved} (which holds a {reached})"
    return f"{call.label} {call.verb} {what} here{call.note}"


def _nearest(sites: list[Site], path: str) -> list[Site]:
    """The first MAX_RELATED sites: the finding's own file first, then by path and row."""
    ordered = sorted(sites, key=lambda s: (s.path != path, s.path, s.row, s.column))
    return ordered[:MAX_RELATED]
