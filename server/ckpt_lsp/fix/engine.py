"""Plan the fix of each class: where `__getstate__`/`__setstate__` go and what they say.

A plan is a set of insertions and replacements on the original text; nothing
that exists is re-printed, so comments, quotes and layout stay as written.
Each class's plan is applied and parsed on its own before it is kept: a class
whose edit would not parse (or that the fix cannot read safely) is left as it
is and its ClassFix says why.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ckpt_lsp.analysis.facts import ClassFacts, ParsedBlock
from ckpt_lsp.analysis.protocol import excluded_attributes, is_excluded
from ckpt_lsp.findings import Edit, Position
from ckpt_lsp.fix.bases import BaseProtocol
from ckpt_lsp.fix.protocol import GetstateShape, keys_it_sets, read_getstate, read_setstate
from ckpt_lsp.fix.recreate import (
    find_origin,
    mangle,
    may_hold_submodule,
    source_name,
    why_not_recreatable,
)
from ckpt_lsp.fix.source import (
    FixModule,
    FoundClass,
    FunctionNode,
    base_names,
    base_protocol,
    class_methods,
    find_class,
    has_foreign_base,
    load_module,
)
from ckpt_lsp.fix.text import (
    LineTable,
    Span,
    apply_spans,
    detect_newline,
    leading_ws,
    spans_overlap,
    spans_to_edits,
)

TODO = "TODO(ckpt-lsp)"


@dataclass(frozen=True)
class FixTarget:
    """A class and the instance attributes to keep out of its pickled state."""

    class_name: str  # top-level name, or dotted "Outer.Inner" for a nested class
    class_line: int  # 1-based row of the `class` keyword line (decorators excluded)
    attributes: tuple[str, ...]
    # Qualified names of library bases as the analyzer resolved them ("torch.nn.Module").
    bases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClassFix:
    """What the fix does to one class, or why it does nothing.

    No edits and no `unavailable` reason means the class already leaves every
    attribute out (and re-creates it): there is nothing to offer.
    """

    class_name: str
    class_line: int
    attributes: tuple[str, ...]
    edits: tuple[Edit, ...] = ()
    recreated: tuple[str, ...] = ()  # rebuilt in __setstate__ from their original expression
    reset: tuple[str, ...] = ()  # set to None in __setstate__: a person must finish them
    unavailable: str | None = None  # why the class is left unchanged

    @property
    def available(self) -> bool:
        """True when applying the edits changes the class."""
        return self.unavailable is None and bool(self.edits)

    @property
    def title(self) -> str:
        names = ", ".join(f"`{a}`" for a in self.attributes)
        return f"Leave {names} out of pickling ({self.class_name}.__getstate__/__setstate__)"


@dataclass
class _Layout:
    """Indentation and line ending the new code must use to look native."""

    newline: str
    indent: str  # of the class body
    unit: str  # one more level


@dataclass
class _Decision:
    name: str  # as written after `self.`
    key: str  # the __dict__ key (private names mangled)
    expression: str | None  # source text to re-create it, or None
    reason: str | None  # why it is reset to None
    guard: bool = False  # only set it when the base did not restore it (nn.Module children)


def _merge(targets: Sequence[FixTarget]) -> list[FixTarget]:
    """One target per class: attributes and bases of duplicates are joined, order kept."""
    merged: dict[tuple[str, int], FixTarget] = {}
    for target in targets:
        key = (target.class_name, target.class_line)
        old = merged.get(key)
        if old is None:
            merged[key] = FixTarget(
                target.class_name,
                target.class_line,
                tuple(dict.fromkeys(target.attributes)),
                tuple(target.bases),
            )
        else:
            merged[key] = FixTarget(
                old.class_name,
                old.class_line,
                tuple(dict.fromkeys(old.attributes + tuple(target.attributes))),
                tuple(dict.fromkeys(old.bases + tuple(target.bases))),
            )
    return list(merged.values())


class _Unavailable(Exception):
    """Raised inside planning; becomes ClassFix.unavailable."""


class _ClassPlanner:
    def __init__(self, module: FixModule, target: FixTarget) -> None:
        self.module = module
        self.target = target
        self.newline = detect_newline(module.source)
        # The class's top-level block: ast rows and the edits are relative to it.
        self.table = LineTable("")
        self.source = ""

    # -- text helpers ---------------------------------------------------------------
    def start_offset(self, node: ast.AST) -> int:
        return self.table.offset_of_utf8(node.lineno, node.col_offset)  # type: ignore[attr-defined]

    def end_offset(self, node: ast.AST) -> int:
        return self.table.offset_of_utf8(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]

    def starts_line(self, node: ast.AST) -> bool:
        row = node.lineno  # type: ignore[attr-defined]
        return not self.source[self.table.row_start(row) : self.start_offset(node)].strip()

    def ends_line(self, node: ast.AST) -> bool:
        row = node.end_lineno  # type: ignore[attr-defined]
        rest = self.table.line(row)[self.end_offset(node) - self.table.row_start(row) :].strip()
        return not rest or rest.startswith("#")

    def text(self, node: ast.AST) -> str:
        return self.source[self.start_offset(node) : self.end_offset(node)]

    def after(self, node: ast.stmt, indent: str) -> tuple[int, str, str]:
        """Offset after a statement (and comments indented under it), and the text needed
        before and after an inserted block there."""
        row = node.end_lineno or node.lineno
        probe = row + 1
        while probe <= self.table.row_count:
            line = self.table.line(probe)
            if not line.strip():
                probe += 1
                continue
            if line.lstrip().startswith("#") and len(leading_ws(line)) > len(indent):
                row = probe
                probe += 1
                continue
            break
        newline = self.newline
        if not self.table.has_newline(row):
            return len(self.source), newline, ""
        following = self.table.line(row + 1) if row < self.table.row_count else ""
        return self.table.row_end(row), "", newline if following.strip() else ""

    # -- planning -------------------------------------------------------------------
    def plan(self) -> tuple[ClassFix, list[Span], FoundClass | None]:
        """The fix, its spans (relative to the class's top-level block) and the class."""
        target = self.target
        found = find_class(self.module, target.class_name, target.class_line)
        if isinstance(found, str):
            return self._fail(found), [], None
        self.source = found.parsed.block.text
        self.table = LineTable(self.source)
        try:
            fix, spans = self._plan_class(found)
        except _Unavailable as exc:
            return self._fail(str(exc)), [], found
        return fix, spans, found

    def _fail(self, reason: str) -> ClassFix:
        t = self.target
        return ClassFix(t.class_name, t.class_line, t.attributes, unavailable=reason)

    def _layout(self, cls: ast.ClassDef) -> _Layout:
        first = cls.body[0]
        if first.lineno == cls.lineno or not self.starts_line(first):
            raise _Unavailable("its body shares a line with the class statement")
        indent = leading_ws(self.table.line(first.lineno))
        outer = leading_ws(self.table.line(cls.lineno))
        if indent.startswith(outer) and len(indent) > len(outer):
            unit = indent[len(outer) :]
        else:
            unit = "\t" if "\t" in indent else "    "
        return _Layout(self.newline, indent, unit)

    def _plan_class(self, found: FoundClass) -> tuple[ClassFix, list[Span]]:
        cls, depth = found.node, found.depth
        layout = self._layout(cls)
        methods = class_methods(cls)
        for name in ("__reduce__", "__reduce_ex__"):
            if name in methods:
                raise _Unavailable(f"it defines {name}, which decides what is pickled")
        base = base_protocol(cls, self.module, self.target.bases)
        names = [source_name(a, cls.name) for a in self.target.attributes]
        wanted = {mangle(n, cls.name): n for n in names}

        getstate = methods.get("__getstate__")
        shape: GetstateShape | None = None
        excluded: frozenset[str] = frozenset()
        kept: set[str] = set()
        if getstate is not None:
            shape = read_getstate(getstate, base, self._texts(getstate))
            if shape.problem:
                raise _Unavailable(shape.problem)
            excluded = self._left_out(found, getstate)
            kept = keys_it_sets(getstate)  # type: ignore[arg-type]
        to_pop = [k for k in wanted if k not in kept and not is_excluded(k, excluded)]

        setstate = methods.get("__setstate__")
        assigned: set[str] = set()
        sshape = None
        if setstate is not None:
            sshape = read_setstate(setstate, cls.name)
            assigned = sshape.assigned
        to_set = [k for k in wanted if k not in assigned]
        if sshape is not None and sshape.problem and to_set:
            raise _Unavailable(sshape.problem)

        def gone(key: str) -> bool:
            """Not in the state when __setstate__ runs (nor set by it yet)."""
            return key not in assigned and (key in wanted or is_excluded(key, excluded))

        # Without the analyzer's bases, a base from another file may be an nn.Module.
        submodules = (base is not None and base.submodules) or (
            not self.target.bases and has_foreign_base(cls, self.module)
        )
        decisions = self._decide(cls, [(wanted[k], k) for k in to_set], gone, submodules)
        recreated = {d.key for d in decisions if d.expression is not None}

        spans: list[Span] = []
        order = -10 * depth
        nl = layout.newline
        pops = [self._pop_line(shape.var if shape else "state", k, k in recreated) for k in to_pop]
        sets = [line for d in decisions for line in self._set_lines(d, layout.unit)]

        if getstate is not None and shape is not None and to_pop:
            spans += self._extend_getstate(getstate, shape, pops, order)
        if setstate is not None and sshape is not None and sets:
            spans += self._extend_setstate(setstate, sets, order)

        new_methods: list[str] = []
        if getstate is None:
            body = [f"state = {self._state_source(base)}", *pops, "return state"]
            new_methods.append(self._method(layout, "__getstate__(self)", body))
        if setstate is None and sets:
            first = (
                "super().__setstate__(state)"
                if base is not None and base.setstate
                else "self.__dict__.update(state)"
            )
            new_methods.append(self._method(layout, "__setstate__(self, state)", [first, *sets]))
        if new_methods:
            anchor = self._anchor(cls, methods)
            offset, before, after = self.after(anchor, layout.indent)
            text = before + nl + nl.join(new_methods) + after
            spans.append(Span(offset, offset, text, order + 1))

        t = self.target
        fix = ClassFix(
            t.class_name,
            t.class_line,
            t.attributes,
            recreated=tuple(d.name for d in decisions if d.expression is not None),
            reset=tuple(d.name for d in decisions if d.expression is None),
        )
        return fix, spans

    def _left_out(self, found: FoundClass, getstate: ast.stmt) -> frozenset[str]:
        """What the class's own __getstate__ already leaves out, as the analysis reads it."""
        cls = found.node
        facts = ClassFacts(cls.name, cls, found.parsed, tuple(base_names(cls)))
        if facts.method("__getstate__") is not getstate:
            raise _Unavailable("it binds __getstate__ more than once; extend it by hand")
        return excluded_attributes(self.module.facts, facts, ()) or frozenset()

    def _texts(self, func: ast.stmt) -> dict[int, str]:
        return {id(n): self.text(n) for n in ast.walk(func) if isinstance(n, ast.expr)}

    def _anchor(self, cls: ast.ClassDef, methods: dict[str, ast.stmt]) -> ast.stmt:
        """New methods go after __getstate__ (when only __setstate__ is new), __init__, or last."""
        getstate = methods.get("__getstate__")
        if isinstance(getstate, FunctionNode) and getstate in cls.body:
            return getstate
        init = methods.get("__init__")
        if isinstance(init, FunctionNode) and init in cls.body:
            return init
        return cls.body[-1]

    @staticmethod
    def _state_source(base: BaseProtocol | None) -> str:
        if base is None or not base.getstate:
            # object.__getstate__ only exists from Python 3.11 on.
            return "self.__dict__.copy()"
        if base.fresh:
            return "super().__getstate__()"
        return "dict(super().__getstate__())"  # the base may return the live __dict__

    @staticmethod
    def _pop_line(var: str, key: str, recreated: bool) -> str:
        then = "re-created" if recreated else "reset to None"
        return f'{var}.pop("{key}", None)  # unpicklable: {then} in __setstate__'

    @staticmethod
    def _set_lines(decision: _Decision, unit: str) -> list[str]:
        name = decision.name
        if decision.expression is None:
            line = f"self.{name} = None  # {TODO}: re-create {name} after unpickling"
        else:
            expression = decision.expression
            if "\n" in expression or "\r" in expression:
                expression = f"({expression})"  # keeps a multi-line expression one statement
            line = f"self.{name} = {expression}"
        if not decision.guard:
            return [line]
        # A submodule or parameter lives in _modules/_parameters and came back with the base.
        return [f'if not hasattr(self, "{name}"):  # not restored as a submodule', unit + line]

    @staticmethod
    def _method(layout: _Layout, signature: str, body: list[str]) -> str:
        inner = layout.indent + layout.unit
        lines = [f"{layout.indent}def {signature}:"] + [inner + line for line in body]
        return "".join(line + layout.newline for line in lines)

    def _decide(
        self,
        cls: ast.ClassDef,
        items: list[tuple[str, str]],
        gone: Callable[[str], bool],
        submodules: bool,
    ) -> list[_Decision]:
        """Re-create what can be, in the given order, except that an attribute which needs
        another dropped one comes after it (round by round)."""
        rounds: dict[str, int] = {}
        done: dict[str, _Decision] = {}
        reasons: dict[str, str] = {}
        pending = list(items)
        round_no = 0
        guards = {
            key: submodules and may_hold_submodule(find_origin(cls, name), self.module)
            for name, key in items
        }
        while pending:
            back = {k for k, d in done.items() if d.expression is not None}

            def still_gone(key: str, back: set[str] = back) -> bool:
                return key not in back and gone(key)

            ready = []
            for name, key in pending:
                origin = find_origin(cls, name)
                reason = why_not_recreatable(origin, self.module, still_gone, cls.name)
                if reason is None and origin.expr is not None:
                    ready.append((name, key, self.text(origin.expr)))
                else:
                    reasons[key] = reason or "no expression"
            if not ready:
                break
            for name, key, expression in ready:
                done[key] = _Decision(name, key, expression, None, guards[key])
                rounds[key] = round_no
                pending.remove((name, key))
            round_no += 1
        for name, key in pending:
            done[key] = _Decision(name, key, None, reasons.get(key), guards[key])
            rounds[key] = 0
        index = {key: i for i, (_, key) in enumerate(items)}
        return sorted(done.values(), key=lambda d: (rounds[d.key], index[d.key]))

    def _extend_getstate(
        self, func: ast.stmt, shape: GetstateShape, pops: list[str], order: int
    ) -> list[Span]:
        ret = shape.ret
        assert ret is not None
        if not self.starts_line(ret):
            raise _Unavailable("its __getstate__ returns on a line shared with other code")
        nl = self.newline
        indent = leading_ws(self.table.line(ret.lineno))
        spans: list[Span] = []
        if shape.rewrite is not None:
            if not self.ends_line(ret):
                raise _Unavailable("its __getstate__ return shares its line with other code")
            lines = [f"{shape.var} = {shape.rewrite}"] + [indent + p for p in pops]
            lines.append(f"{indent}return {shape.var}")
            spans.append(Span(self.start_offset(ret), self.end_offset(ret), nl.join(lines), order))
            return spans
        if shape.copy_after is not None:
            stmt = shape.copy_after
            if not self.ends_line(stmt) or not self.table.has_newline(stmt.end_lineno or 0):
                raise _Unavailable("its __getstate__ is laid out in a way the fix cannot follow")
            stmt_indent = leading_ws(self.table.line(stmt.lineno))
            offset = self.table.row_end(stmt.end_lineno or stmt.lineno)
            note = "# a copy: pop must not touch the object"
            copy = f"{stmt_indent}{shape.var} = dict({shape.var})  {note}{nl}"
            spans.append(Span(offset, offset, copy, order))
        offset = self.table.row_start(ret.lineno)
        spans.append(Span(offset, offset, "".join(indent + p + nl for p in pops), order))
        return spans

    def _extend_setstate(self, func: ast.stmt, sets: list[str], order: int) -> list[Span]:
        assert isinstance(func, ast.FunctionDef)
        first, last = func.body[0], func.body[-1]
        if first.lineno == func.lineno or not self.starts_line(first) or not self.ends_line(last):
            raise _Unavailable("its __setstate__ is laid out in a way the fix cannot follow")
        nl = self.newline
        indent = leading_ws(self.table.line(first.lineno))
        row = last.end_lineno or last.lineno
        text = "".join(indent + s + nl for s in sets)
        if not self.table.has_newline(row):
            return [Span(len(self.source), len(self.source), nl + text, order)]
        offset = self.table.row_end(row)
        return [Span(offset, offset, text, order)]


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


@dataclass
class _BlockEdit:
    """The kept spans of one top-level block, relative to the block's text."""

    parsed: ParsedBlock
    offset: int  # of the block's first character in the source
    spans: list[Span]

    def text(self, extra: Sequence[Span] = ()) -> str:
        return apply_spans(self.parsed.block.text, [*self.spans, *extra])

    def shifted(self) -> list[Span]:
        shift = self.offset
        return [Span(s.start + shift, s.end + shift, s.text, s.order) for s in self.spans]

    def edits(self) -> list[Edit]:
        rows = self.parsed.row_offset
        out = []
        for edit in spans_to_edits(LineTable(self.parsed.block.text), self.spans):
            start, end = edit.location, edit.end_location
            out.append(
                Edit(
                    edit.content,
                    Position(start.row + rows, start.column),
                    Position(end.row + rows, end.column),
                )
            )
        return out


@dataclass
class _Plan:
    fixes: list[ClassFix]
    blocks: list[_BlockEdit]


def _plan(source: str, targets: Sequence[FixTarget]) -> _Plan:
    """Plan each class on its own; keep its spans when its block still parses with them
    (and with the spans already kept there) and they overlap no other class's."""
    module = load_module(source)
    by_block: dict[int, _BlockEdit] = {}
    fixes: list[ClassFix] = []
    for target in _merge(targets):
        planner = _ClassPlanner(module, target)
        fix, spans, found = planner.plan()
        if fix.unavailable is None and spans and found is not None:
            key = id(found.parsed)
            block = by_block.get(key) or _BlockEdit(
                found.parsed, module.block_offset(found.parsed), []
            )
            try:
                valid = _parses(block.text(spans))
            except ValueError:  # overlapping spans
                valid = False
            if spans_overlap(spans, block.spans):
                fix = planner._fail("its edit overlaps the edit of another class")
            elif not valid:
                fix = planner._fail("the edit would not parse")
            else:
                block.spans += spans
                by_block[key] = block
                fix = ClassFix(
                    fix.class_name,
                    fix.class_line,
                    fix.attributes,
                    edits=tuple(_BlockEdit(found.parsed, block.offset, spans).edits()),
                    recreated=fix.recreated,
                    reset=fix.reset,
                )
        fixes.append(fix)
    return _Plan(fixes, list(by_block.values()))


def plan_fixes(source: str, targets: Sequence[FixTarget]) -> tuple[list[ClassFix], list[Span]]:
    """One ClassFix per class named by the targets, and the spans (offsets in `source`)
    of the kept ones."""
    plan = _plan(source, targets)
    return plan.fixes, [s for block in plan.blocks for s in block.shifted()]


def describe_fix(source: str, target: FixTarget) -> ClassFix:
    """What fixing one class would do (edits, re-created and reset attributes) or why not.

    The language server offers the code action only when `.available` is true.
    """
    return _plan(source, [target]).fixes[0]


def fix_source(source: str, targets: Sequence[FixTarget]) -> str:
    """Return the source with __getstate__/__setstate__ inserted or extended in each class."""
    _, spans = plan_fixes(source, targets)
    return apply_spans(source, spans) if spans else source


def fix_edits(source: str, targets: Sequence[FixTarget]) -> list[Edit]:
    """Minimal text edits (1-based rows, code-point columns, end exclusive) that turn source
    into fix_source(source, targets). Usually one insertion per class."""
    return [edit for block in _plan(source, targets).blocks for edit in block.edits()]
