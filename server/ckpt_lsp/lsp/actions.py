"""Code actions: exclude attributes from pickling, ignore a line, fix a whole file.

The edits come from the shared fix engine (the same one as `ckpt-lsp --fix`), in
code points; they are converted to the client's encoding against the exact text
the findings were computed on, and sent with that document version when the
client accepts versioned edits, so an edit never lands on a text it was not made
for.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from lsprotocol import types

from ckpt_lsp.findings import Edit, Finding, Position
from ckpt_lsp.fixes import FixTarget, describe_fix, fix_edits
from ckpt_lsp.lsp.diagnostics import SOURCE
from ckpt_lsp.lsp.positions import LineIndex

log = logging.getLogger("ckpt_lsp.lsp")

FIX_ALL_KIND = f"{types.CodeActionKind.SourceFixAll.value}.{SOURCE}"
KINDS = [types.CodeActionKind.QuickFix, FIX_ALL_KIND]

_IGNORE_COMMENT = re.compile(r"#\s*ckpt:\s*ignore\[(?P<codes>[^\]]*)\]", re.IGNORECASE)


@dataclass(frozen=True)
class ActionContext:
    uri: str
    version: int | None
    text: str
    index: LineIndex
    document_changes: bool  # the client takes versioned TextDocumentEdits


def targets_for(findings: Iterable[Finding]) -> list[FixTarget]:
    """One fix target per class, with every attribute of it found."""
    by_class: dict[tuple[str, int], list[Finding]] = {}
    for f in findings:
        by_class.setdefault((f.class_name, f.class_line), []).append(f)
    targets = []
    for (name, line), group in by_class.items():
        attributes = tuple(dict.fromkeys(f.attribute for f in group if f.attribute))
        bases = tuple(dict.fromkeys(b for f in group for b in getattr(f, "bases", ()) or ()))
        targets.append(FixTarget(name, line, attributes, bases))
    return targets


def _text_edits(ctx: ActionContext, edits: Sequence[Edit]) -> list[types.TextEdit]:
    return [
        types.TextEdit(
            range=ctx.index.range_to_client(e.location, e.end_location), new_text=e.content
        )
        for e in edits
    ]


def workspace_edit(ctx: ActionContext, edits: Sequence[Edit]) -> types.WorkspaceEdit:
    text_edits = _text_edits(ctx, edits)
    if ctx.document_changes:
        return types.WorkspaceEdit(
            document_changes=[
                types.TextDocumentEdit(
                    text_document=types.OptionalVersionedTextDocumentIdentifier(
                        uri=ctx.uri, version=ctx.version
                    ),
                    edits=list(text_edits),
                )
            ]
        )
    return types.WorkspaceEdit(changes={ctx.uri: text_edits})


def fix_edits_for(ctx: ActionContext, findings: Iterable[Finding]) -> list[Edit]:
    """The edits that fix these findings' classes; [] when the fix engine declines
    (the file does not parse, the class is already handled, the edit would not parse)."""
    targets = targets_for(findings)
    if not targets:
        return []
    try:
        if len(targets) == 1:
            fix = describe_fix(ctx.text, targets[0])
            if not fix.available:
                log.debug("no fix for %s: %s", fix.class_name, fix.unavailable)
                return []
            return list(fix.edits)
        return list(fix_edits(ctx.text, targets))
    except Exception:
        log.exception("building the fix failed")
        return []


def ignore_edit(ctx: ActionContext, finding: Finding) -> Edit | None:
    """`# ckpt: ignore[CODE]` at the end of the statement's last line, or the code added
    to the list of an ignore comment already there. None when it is already listed."""
    row = finding.statement_rows[1] if finding.statement_rows[1] > 0 else finding.end_location.row
    line = ctx.index.line_text(row - 1)
    code = finding.code.upper()
    match = _IGNORE_COMMENT.search(line)
    if match is not None:
        listed = [c.strip().upper() for c in re.split(r"[\s,]+", match.group("codes")) if c]
        if code in listed:
            return None
        inner = match.group("codes").rstrip()
        close = match.start("codes") + len(inner)  # where the new code goes
        new = f", {code}" if inner.strip() else code
        pos = Position(row, close + 1)
        return Edit(new, pos, pos)
    content = line.rstrip()
    start = Position(row, len(content) + 1)
    end = Position(row, len(line) + 1)
    return Edit(f"  # ckpt: ignore[{code}]", start, end)


def _overlaps(finding: Finding, start: Position, end: Position) -> bool:
    return finding.location <= end and start <= finding.end_location


def _matches_only(kind: str, only: Sequence[str] | None) -> bool:
    if only is None:
        return True
    return any(kind == o or kind.startswith(f"{o}.") for o in only)


def code_actions(
    ctx: ActionContext,
    findings: Sequence[Finding],
    diagnostic: Callable[[int], types.Diagnostic | None],
    params: types.CodeActionParams,
) -> list[types.CodeAction]:
    """The actions for the requested range; `diagnostic(i)` is the published diagnostic
    of `findings[i]` (built on demand: most requests concern one line)."""
    only = [str(k) for k in params.context.only] if params.context.only else None
    start = ctx.index.from_client(params.range.start)
    end = ctx.index.from_client(params.range.end)
    actions: list[types.CodeAction] = []
    if _matches_only(types.CodeActionKind.QuickFix, only):
        hits = [i for i, f in enumerate(findings) if _overlaps(f, start, end)]
        seen_classes: set[tuple[str, int]] = set()
        for i in hits:
            finding = findings[i]
            actions.extend(_finding_actions(ctx, finding, diagnostic(i)))
            key = (finding.class_name, finding.class_line)
            if key in seen_classes:
                continue
            seen_classes.add(key)
            group = [
                (f, diagnostic(j))
                for j, f in enumerate(findings)
                if (f.class_name, f.class_line) == key
            ]
            if len({f.attribute for f, _ in group}) > 1:
                edits = fix_edits_for(ctx, [f for f, _ in group])
                if edits:
                    actions.append(
                        types.CodeAction(
                            title=f"Exclude all unpicklable attributes of `{finding.class_name}`",
                            kind=types.CodeActionKind.QuickFix,
                            diagnostics=[d for _, d in group if d is not None],
                            edit=workspace_edit(ctx, edits),
                        )
                    )
    if findings and _matches_only(FIX_ALL_KIND, only):
        edits = fix_edits_for(ctx, findings)
        if edits:
            actions.append(
                types.CodeAction(
                    title="Exclude all unpicklable attributes in this file (ckpt-lsp)",
                    kind=FIX_ALL_KIND,
                    edit=workspace_edit(ctx, edits),
                )
            )
    return actions


def _finding_actions(
    ctx: ActionContext, finding: Finding, diagnostic: types.Diagnostic | None
) -> list[types.CodeAction]:
    related = [diagnostic] if diagnostic is not None else None
    actions: list[types.CodeAction] = []
    edits = fix_edits_for(ctx, [finding])
    if edits:
        actions.append(
            types.CodeAction(
                title=(
                    f"Exclude `{finding.attribute}` from pickling (add __getstate__/__setstate__)"
                ),
                kind=types.CodeActionKind.QuickFix,
                diagnostics=related,
                is_preferred=True,
                edit=workspace_edit(ctx, edits),
            )
        )
    ignore = ignore_edit(ctx, finding)
    if ignore is not None:
        actions.append(
            types.CodeAction(
                title=f"Ignore {finding.code} on this line",
                kind=types.CodeActionKind.QuickFix,
                diagnostics=related,
                edit=workspace_edit(ctx, [ignore]),
            )
        )
    return actions
