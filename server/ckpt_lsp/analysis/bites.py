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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, dotted_name
from ckpt_lsp.analysis.names import qualify, star_candidates
from ckpt_lsp.analysis.save_calls import SaveCall, Target, module_save_calls
from ckpt_lsp.findings import Finding

if TYPE_CHECKING:
    from ckpt_lsp.analysis.index import ProjectIndex

# Related locations per finding: the nearest first (same file, then others by path and row).
MAX_RELATED = 5
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


class Bites:
    """The sites reaching each class of a project, rebuilt when the index changes."""

    def __init__(self, index: ProjectIndex | None) -> None:
        self.index = index
        self._stamp: object = None
        self._table: dict[tuple[str, str], list[Site]] = {}
        self._read: set[str] = set()  # modules the table was made from (cache dependencies)

    def attach(
        self, facts: ModuleFacts, findings: list[Finding], show: Callable[[str], str]
    ) -> list[Finding]:
        """The findings with the sites that reach their class appended to `related`;
        `show` writes a module's path the way the findings' filename is written."""
        if not findings:
            return findings
        table = self._current(facts)
        out: list[Finding] = []
        for finding in findings:
            sites = table.get((facts.path, finding.class_name), ())
            chosen = _nearest([s for s in sites if s.save_path in finding.breaks], facts.path)
            if not chosen:
                out.append(finding)
                continue
            extra = tuple((show(s.path), s.row, s.column, s.message) for s in chosen)
            out.append(replace(finding, related=finding.related + extra))
        return out

    def reached_paths(self, calls: Iterable[SaveCall], facts: ModuleFacts) -> set[str]:
        """The modules whose classes `calls` (of the module `facts`) reach: their findings'
        related locations change with these calls."""
        out: set[str] = set()
        for call in calls:
            saved = self._resolve(call.target, facts)
            if saved is not None:
                out.update(ref[0].path for ref, _ in _carried(self, saved))
        return out

    # -- the table -------------------------------------------------------------------------
    def _current(self, facts: ModuleFacts) -> dict[tuple[str, str], list[Site]]:
        index = self.index
        stamp: object = index.generation if index is not None else facts
        if stamp != self._stamp:
            self._table, self._read = self._build(facts)
            self._stamp = stamp
        if index is not None and index.touched is not None:
            index.touched.update(self._read)
        return self._table

    def _build(self, facts: ModuleFacts) -> tuple[dict[tuple[str, str], list[Site]], set[str]]:
        table: dict[tuple[str, str], list[Site]] = {}
        index = self.index
        modules = index.calling_modules() if index is not None else [facts]
        read = {m.path for m in modules}
        for module in modules:
            calls = index.save_calls(module.path) if index is not None else None
            for call in calls if calls is not None else module_save_calls(module):
                saved = self._resolve(call.target, module)
                if saved is None:
                    continue
                for (owner, cls), how in _carried(self, saved):
                    site = Site(module.path, call.row, call.column, call.path, "")
                    message = _message(call, saved[1].name, how, cls.name)
                    sites = table.setdefault((owner.path, cls.name), [])
                    if all(
                        (s.path, s.row, s.column) != (site.path, site.row, site.column)
                        for s in sites
                    ):
                        sites.append(replace(site, message=message))
        return table, read

    # -- resolving names to project classes ----------------------------------------------------
    def _resolve(self, target: Target, facts: ModuleFacts) -> ClassRef | None:
        if target[0] == "self":
            _, class_name, attribute = target
            owner = facts.classes.get(class_name)
            if owner is None:
                return None
            for holder in [(facts, owner), *self.bases((facts, owner))]:
                dotted = attribute_names(holder[1]).get(attribute)
                if dotted:
                    return self.find_class(dotted, holder[0])
            return None
        return self.find_class(target[1], facts)

    def find_class(self, dotted: str, facts: ModuleFacts) -> ClassRef | None:
        """The project class `dotted` names in `facts`' module, if it is one."""
        local = facts.classes.get(dotted)
        if local is not None:
            return facts, local
        index = self.index
        if index is None:
            return None
        qualified = qualify(dotted, facts)
        for name in (qualified, *star_candidates(dotted, facts)):
            found = index.resolve_member(name, facts.path) if "." in name else None
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


def attribute_names(cls: ClassFacts) -> dict[str, str]:
    """Attribute -> the dotted class name it holds, as written in the class's module: from
    `self.x = Name(...)`, `self.x: Name = ...`, `self.x = param` with `param: Name`, and
    class-level annotations (dataclass fields)."""
    out: dict[str, str] = {}
    for stmt in cls.class_level():
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            _note(out, stmt.target.id, dotted_name(stmt.annotation))
    for method in cls.assigning_methods():
        params = {
            a.arg: dotted_name(a.annotation)
            for a in (*method.args.args, *method.args.kwonlyargs)
            if a.annotation is not None
        }
        for node in ast.walk(method):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                name = _self_attribute(node.targets[0])
                if name:
                    _note(out, name, _value_class(node.value, params))
            elif isinstance(node, ast.AnnAssign):
                name = _self_attribute(node.target)
                if name:
                    _note(out, name, dotted_name(node.annotation))
    return {k: v for k, v in out.items() if v}


def _note(out: dict[str, str], name: str, dotted: str) -> None:
    """An attribute bound to two different classes holds neither for sure."""
    if name in out and out[name] != dotted:
        out[name] = ""
    else:
        out[name] = dotted


def _self_attribute(target: ast.expr) -> str:
    if (
        isinstance(target, ast.Attribute)
        and isinstance(target.value, ast.Name)
        and target.value.id == "self"
    ):
        return target.attr
    return ""


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
