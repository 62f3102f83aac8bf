"""Fix classes: where `__getstate__`/`__setstate__` go and what they say, as text edits.

Each class is planned inside its own top-level block (`ClassPlanner`): a few
insertions and replacements on the original text; nothing that exists is
re-printed, so comments, quotes and layout stay as written. A plan is kept only
when its block, with every edit kept there, still parses (libcst and ast) and it
overlaps no other class's edit: otherwise the class is left as it is and its
ClassFix says why.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import libcst as cst

from ckpt_lsp.analysis.facts import ParsedBlock
from ckpt_lsp.findings import Edit, Position
from ckpt_lsp.fix.cst_block import BlockSyntax, parses
from ckpt_lsp.fix.hparams_ignore import ignore_spans
from ckpt_lsp.fix.keras import plan_keras
from ckpt_lsp.fix.module import FixModule, FoundClass, find_class, load_module
from ckpt_lsp.fix.planner import ClassPlanner, Unavailable
from ckpt_lsp.fix.policy import FixTarget
from ckpt_lsp.fix.text import LineTable, Span, apply_spans, spans_overlap, spans_to_edits


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
    ignored: tuple[str, ...] = ()  # parameters left out of save_hyperparameters (CKPT011)

    @property
    def available(self) -> bool:
        """True when applying the edits changes the class."""
        return self.unavailable is None and bool(self.edits)

    @property
    def title(self) -> str:
        names = ", ".join(f"`{a}`" for a in self.attributes)
        hparams = ", ".join(f"`{a}`" for a in self.ignored)
        pickling = f"Leave {names} out of pickling ({self.class_name}.__getstate__/__setstate__)"
        stored = f"Leave {hparams} out of {self.class_name}'s save_hyperparameters()"
        if not self.ignored:
            return pickling
        return stored if not self.attributes else f"{pickling}; {stored[0].lower()}{stored[1:]}"


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
                tuple(target.reset),
                tuple(dict.fromkeys(target.keras)),
                tuple(dict.fromkeys(target.ignore)),
            )
        else:
            merged[key] = FixTarget(
                old.class_name,
                old.class_line,
                tuple(dict.fromkeys(old.attributes + tuple(target.attributes))),
                tuple(dict.fromkeys(old.bases + tuple(target.bases))),
                tuple(dict.fromkeys(old.reset + tuple(target.reset))),
                tuple(dict.fromkeys(old.keras + tuple(target.keras))),
                tuple(dict.fromkeys(old.ignore + tuple(target.ignore))),
            )
    return list(merged.values())


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
        return self.edits_of(self.spans)

    def edits_of(self, spans: Sequence[Span]) -> list[Edit]:
        rows = self.parsed.row_offset
        out = []
        for edit in spans_to_edits(LineTable(self.parsed.block.text), spans):
            start, end = edit.location, edit.end_location
            out.append(
                Edit(
                    edit.content,
                    Position(start.row + rows, start.column),
                    Position(end.row + rows, end.column),
                )
            )
        return out


@dataclass(frozen=True)
class _Elsewhere:
    """A span a class's fix needs in another block (the `import keras` a decorator uses)."""

    block: _BlockEdit
    span: Span


@dataclass
class _KerasSpans:
    """A Keras class's plan, shaped like the pickling planner's."""

    spans: list[Span]
    elsewhere: list[_Elsewhere] = field(default_factory=list)
    recreated: tuple[str, ...] = ()
    reset: tuple[str, ...] = ()


def _add_import(
    module: FixModule,
    found: FoundClass,
    by_block: dict[int, _BlockEdit],
    plan: _KerasSpans,
) -> None:
    """`import keras` after the module's last leading import, once per file; above the
    class when the module imports nothing before it."""
    anchor: tuple[ParsedBlock, ast.stmt] | None = None
    for parsed in module.facts.blocks:
        if parsed is found.parsed or parsed.block.kind == "class":
            break
        tree = parsed.tree
        for stmt in tree.body if tree is not None else ():
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                anchor = (parsed, stmt)
    newline = "\r\n" if "\r\n" in module.source else "\n"
    text = f"import keras{newline}"
    if anchor is None:
        plan.spans.append(Span(0, 0, text + newline * 2, -1))
        return
    parsed, stmt = anchor
    block = by_block.get(id(parsed)) or _BlockEdit(parsed, module.block_offset(parsed), [])
    if any(s.text == text for s in block.spans):
        return
    table = LineTable(parsed.block.text)
    at = table.row_end(stmt.end_lineno or stmt.lineno)
    lead = "" if table.has_newline(stmt.end_lineno or stmt.lineno) else newline
    plan.elsewhere.append(_Elsewhere(block, Span(at, at, lead + text)))


@dataclass
class _Plan:
    fixes: list[ClassFix]
    blocks: list[_BlockEdit]


def _plan(source: str, targets: Sequence[FixTarget], module: FixModule | None = None) -> _Plan:
    """Plan each class on its own; keep its spans when its block still parses with them
    (and with the spans already kept there) and they overlap no other class's.

    `module`: the source's facts when the caller already has them (one file's classes are
    planned one at a time, and the facts are the same for each)."""
    module = module if module is not None else load_module(source)
    syntaxes: dict[int, BlockSyntax | str] = {}
    by_block: dict[int, _BlockEdit] = {}
    fixes: list[ClassFix] = []
    for target in _merge(targets):
        name, line, attributes = target.class_name, target.class_line, target.attributes
        ignored = target.ignore
        found = find_class(module, name, line)
        if isinstance(found, str):
            fixes.append(ClassFix(name, line, attributes, unavailable=found, ignored=ignored))
            continue
        key = id(found.parsed)

        def syntax_of(parsed: ParsedBlock = found.parsed, key: int = key) -> BlockSyntax | str:
            if key not in syntaxes:
                syntaxes[key] = BlockSyntax.parse(parsed.block.text)
            return syntaxes[key]

        block = by_block.get(key) or _BlockEdit(found.parsed, module.block_offset(found.parsed), [])
        if target.keras:
            kept = _keras_kept(module, found, by_block, block, target.keras, syntax_of)
        else:
            kept = _class_kept(module, found, block, target, syntax_of)
        if isinstance(kept, str):
            fixes.append(ClassFix(name, line, attributes, unavailable=kept, ignored=ignored))
            continue
        spans, recreated, reset, elsewhere = kept
        block.spans += spans
        if spans:
            by_block[key] = block
        edits = _BlockEdit(found.parsed, block.offset, spans).edits()
        for other in elsewhere:
            other.block.spans.append(other.span)
            by_block[id(other.block.parsed)] = other.block
            edits = [*other.block.edits_of([other.span]), *edits]
        fixes.append(
            ClassFix(name, line, attributes, tuple(edits), recreated, reset, ignored=ignored)
        )
    return _Plan(fixes, list(by_block.values()))


# A class's kept plan: its spans, what is re-created and reset, and spans in other blocks.
_Kept = tuple[list[Span], tuple[str, ...], tuple[str, ...], list["_Elsewhere"]]


def _class_kept(
    module: FixModule,
    found: FoundClass,
    block: _BlockEdit,
    target: FixTarget,
    syntax_of: Callable[[], BlockSyntax | str],
) -> _Kept | str:
    """A pickling or hparams fix (planned on the block's libcst syntax), or why not."""
    syntax = syntax_of()
    if isinstance(syntax, str):
        return syntax
    planned = _class_spans(module, found, syntax, target)
    if isinstance(planned, str):
        return planned
    spans, recreated, reset = planned
    reason = _refused(block, spans)
    return reason if reason is not None else (spans, recreated, reset, [])


def _keras_kept(
    module: FixModule,
    found: FoundClass,
    by_block: dict[int, _BlockEdit],
    block: _BlockEdit,
    ops: tuple[str, ...],
    syntax_of: Callable[[], BlockSyntax | str],
) -> _Kept | str:
    """A Keras fix, or why not. It is planned on the ast alone, so the block's own libcst
    parse (~16 ms for a 200-line class) is needed only to say why a fix is refused: when
    libcst parses the edited block, it parses the block, since the edit only adds
    statements, decorators and arguments to it."""
    keras = _keras_spans(module, found, by_block, ops)
    reason = keras if isinstance(keras, str) else _refused(block, keras.spans)
    if reason is None and not isinstance(keras, str) and keras.spans:
        return keras.spans, (), (), keras.elsewhere
    syntax = syntax_of()  # the reasons come in the order a pickling fix gives them
    if isinstance(syntax, str):
        return syntax
    if isinstance(keras, str):
        return keras
    return reason if reason is not None else (keras.spans, (), (), keras.elsewhere)


def _refused(block: _BlockEdit, spans: list[Span]) -> str | None:
    """Why a class's spans cannot be kept in its block, or None."""
    if spans_overlap(spans, block.spans):
        return "its edit overlaps the edit of another class"
    if spans and not parses(block.text(spans)):
        return "the edit would not parse"
    return None


def _keras_spans(
    module: FixModule,
    found: FoundClass,
    by_block: dict[int, _BlockEdit],
    ops: tuple[str, ...],
) -> _KerasSpans | str:
    """A Keras class's registration and config edits (and an import elsewhere), or why not."""
    try:
        keras_plan = plan_keras(module, found, ops)
    except Unavailable as exc:
        return str(exc)
    except (cst.ParserSyntaxError, cst.CSTValidationError):
        return "the edit would not parse"
    except RecursionError:
        return "the class is too deeply nested to edit"
    plan = _KerasSpans(keras_plan.spans)
    if keras_plan.needs_import:
        _add_import(module, found, by_block, plan)
    return plan


def _class_spans(
    module: FixModule, found: FoundClass, syntax: BlockSyntax, target: FixTarget
) -> tuple[list[Span], tuple[str, ...], tuple[str, ...]] | str:
    """The spans of one class's fix (its block's text), what is re-created and reset; or
    why there is no fix: __getstate__/__setstate__ for attributes, `ignore=` for hparams."""
    spans: list[Span] = []
    recreated: tuple[str, ...] = ()
    reset: tuple[str, ...] = ()
    if target.attributes:
        try:
            plan = ClassPlanner(
                module, found, syntax, target.attributes, target.bases, target.reset
            ).plan()
        except Unavailable as exc:
            return str(exc)
        except (cst.ParserSyntaxError, cst.CSTValidationError):
            return "the edit would not parse"
        except RecursionError:
            return "the class is too deeply nested to edit"
        spans, recreated, reset = list(plan.spans), plan.recreated, plan.reset
    if target.ignore:
        extra = ignore_spans(found.parsed.block.text, found.node, target.ignore)
        if isinstance(extra, str):
            return extra
        if spans_overlap(spans, extra):
            return "its edits overlap"
        spans += extra
    return spans, recreated, reset


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


def fix_edits(
    source: str, targets: Sequence[FixTarget], module: FixModule | None = None
) -> list[Edit]:
    """Minimal text edits (1-based rows, code-point columns, end exclusive) that turn source
    into fix_source(source, targets). Usually one insertion per class. `module`: the
    source's `load_module`, when the caller fixes its classes one at a time."""
    plan = _plan(source, targets, module)
    return [edit for block in plan.blocks for edit in block.edits()]
