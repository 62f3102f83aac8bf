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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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


def target_json(target: FixTarget) -> dict[str, object]:
    return {
        "class": target.class_name,
        "line": target.class_line,
        "attributes": list(target.attributes),
        "bases": list(target.bases),
    }


def target_from_json(data: Mapping[str, Any]) -> FixTarget:
    """The inverse of `target_json`; raises KeyError/TypeError/ValueError on other data."""
    attributes = data.get("attributes") or []
    bases = data.get("bases") or []
    if not isinstance(attributes, list) or not isinstance(bases, list):
        raise TypeError("attributes and bases must be lists")
    return FixTarget(
        str(data["class"]),
        int(data["line"]),
        tuple(str(a) for a in attributes),
        tuple(str(b) for b in bases),
    )


def fix_data(ctx: ActionContext, findings: Iterable[Finding]) -> dict[str, object]:
    """What resolving a fix action needs: the document state and the targets."""
    return {
        "ckpt": "fix",
        "uri": ctx.uri,
        "version": ctx.version,
        "targets": [target_json(t) for t in targets_for(findings)],
    }


def is_fix_action(action: types.CodeAction) -> bool:
    return isinstance(action.data, Mapping) and action.data.get("ckpt") == "fix"


def code_actions(
    ctx: ActionContext,
    findings: Sequence[Finding],
    diagnostic: Callable[[int], types.Diagnostic | None],
    params: types.CodeActionParams,
) -> list[types.CodeAction]:
    """The actions for the requested range; `diagnostic(i)` is the published diagnostic
    of `findings[i]` (built on demand: most requests concern one line).

    Fix actions come without their edit, with `data` to build it (`resolve_fix`): on a
    large file the fix engine takes far longer than a cursor move may, and an editor
    asks for code actions at every cursor move but applies one now and then. Ignore
    actions are cheap and come complete."""
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
            group = [j for j, f in enumerate(findings) if (f.class_name, f.class_line) == key]
            if len({findings[j].attribute for j in group}) > 1:
                related = [d for d in (diagnostic(j) for j in group) if d is not None]
                actions.append(
                    types.CodeAction(
                        title=f"Exclude all unpicklable attributes of `{finding.class_name}`",
                        kind=types.CodeActionKind.QuickFix,
                        diagnostics=related,
                        data=fix_data(ctx, [findings[j] for j in group]),
                    )
                )
    if findings and _matches_only(FIX_ALL_KIND, only):
        actions.append(
            types.CodeAction(
                title="Exclude all unpicklable attributes in this file (ckpt-lsp)",
                kind=FIX_ALL_KIND,
                data=fix_data(ctx, findings),
            )
        )
    return actions


def resolve_fix(ctx: ActionContext, action: types.CodeAction) -> str | None:
    """Fill in the edit of a fix action for the text in `ctx` (which must be the state
    the action was made for). Returns why not, or None when the edit is in place."""
    data = action.data if isinstance(action.data, Mapping) else {}
    try:
        targets = [target_from_json(t) for t in data.get("targets", [])]
    except (KeyError, TypeError, ValueError):
        return "the action's data is not ckpt-lsp's"
    if not targets:
        return "nothing to fix"
    try:
        if len(targets) == 1:
            fix = describe_fix(ctx.text, targets[0])
            if not fix.available:
                return fix.unavailable or "the class already leaves these attributes out"
            edits = list(fix.edits)
        else:
            edits = list(fix_edits(ctx.text, targets))
    except Exception as exc:
        log.exception("building the fix failed")
        return f"building the fix failed: {exc}"
    if not edits:
        return "no change is needed or possible"
    action.edit = workspace_edit(ctx, edits)
    return None


def _finding_actions(
    ctx: ActionContext, finding: Finding, diagnostic: types.Diagnostic | None
) -> list[types.CodeAction]:
    related = [diagnostic] if diagnostic is not None else None
    actions: list[types.CodeAction] = [
        types.CodeAction(
            title=f"Exclude `{finding.attribute}` from pickling (add __getstate__/__setstate__)",
            kind=types.CodeActionKind.QuickFix,
            diagnostics=related,
            is_preferred=True,
            data=fix_data(ctx, [finding]),
        )
    ]
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
