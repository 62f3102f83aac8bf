"""Code actions: exclude attributes from pickling, ignore a line, fix a whole file.

Which findings get a fix, and which kind, is the fix package's policy (`fix_targets`,
the same as `ckpt-lsp --fix`): this module only offers what it returns. The edits come
from the same fix package, in code points; they are converted to the client's encoding
against the exact text the findings were computed on, and sent with that document
version when the client accepts versioned edits, so an edit never lands on a text it
was not made for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from lsprotocol import types

from ckpt_lsp.findings import Edit, Finding, Position
from ckpt_lsp.fix import (
    FixTarget,
    ValueFix,
    describe_fix,
    fix_edits,
    fix_targets,
    ignore_edit,
    value_edits,
    value_edits_beside,
    value_fixes,
)
from ckpt_lsp.fix.policy import keras_summary, target_title
from ckpt_lsp.lsp.diagnostics import SOURCE
from ckpt_lsp.lsp.positions import LineIndex

log = logging.getLogger("ckpt_lsp.lsp")

FIX_ALL_KIND = f"{types.CodeActionKind.SourceFixAll.value}.{SOURCE}"
# VS Code asks a notebook-wide kind (`notebook.` first) once per notebook on save, before
# the per-cell kinds; its edit may change several cells.
NOTEBOOK_FIX_ALL_KIND = f"notebook.{FIX_ALL_KIND}"
KINDS = [types.CodeActionKind.QuickFix, FIX_ALL_KIND, NOTEBOOK_FIX_ALL_KIND]


@dataclass(frozen=True)
class ActionContext:
    uri: str
    version: int | None
    text: str
    index: LineIndex
    document_changes: bool  # the client takes versioned TextDocumentEdits


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


def _overlaps(finding: Finding, start: Position, end: Position) -> bool:
    return finding.location <= end and start <= finding.end_location


def matches_only(kind: str, only: Sequence[str] | None) -> bool:
    if only is None:
        return True
    return any(kind == o or kind.startswith(f"{o}.") for o in only)


def fix_data(
    ctx: ActionContext, targets: Iterable[FixTarget], values: Iterable[ValueFix] = ()
) -> dict[str, object]:
    """What resolving a fix action needs: the document state and the targets, whole
    (attributes, bases, and which to reset), so resolve decides nothing again."""
    data: dict[str, object] = {
        "ckpt": "fix",
        "uri": ctx.uri,
        "version": ctx.version,
        "targets": [t.to_json() for t in targets],
    }
    values = list(values)
    if values:  # checkpoint values (CKPT010), fixed where they are written
        data["values"] = [v.to_json() for v in values]
    return data


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
    if matches_only(types.CodeActionKind.QuickFix, only):
        hits = [i for i, f in enumerate(findings) if _overlaps(f, start, end)]
        seen_classes: set[tuple[str | None, int]] = set()
        for i in hits:
            finding = findings[i]
            actions.extend(_finding_actions(ctx, finding, diagnostic(i)))
            key = (finding.class_name, finding.class_line)
            if key in seen_classes:
                continue
            seen_classes.add(key)
            group = [j for j, f in enumerate(findings) if (f.class_name, f.class_line) == key]
            targets = fix_targets(findings[j] for j in group)
            if (
                targets
                and len(targets[0].attributes) + len(targets[0].keras) + len(targets[0].ignore) > 1
            ):
                related = [d for d in (diagnostic(j) for j in group) if d is not None]
                title = f"Exclude all unpicklable attributes of `{finding.class_name}`"
                if targets[0].keras:
                    title = target_title(targets[0])
                actions.append(
                    types.CodeAction(
                        title=title,
                        kind=types.CodeActionKind.QuickFix,
                        diagnostics=related,
                        data=fix_data(ctx, targets),
                    )
                )
    if findings and matches_only(FIX_ALL_KIND, only):
        targets = fix_targets(findings)
        values = value_fixes(findings)
        if targets or values:
            title = (
                "Exclude all unpicklable attributes in this file (ckpt-lsp)"
                if targets
                else "Fix all checkpoint values in this file (ckpt-lsp)"
            )
            actions.append(
                types.CodeAction(
                    title=title, kind=FIX_ALL_KIND, data=fix_data(ctx, targets, values)
                )
            )
    return actions


def action_targets(
    action: types.CodeAction,
) -> tuple[list[FixTarget], list[ValueFix]] | str:
    """The fix targets and checkpoint values a fix action carries, or why there are none."""
    data = action.data if isinstance(action.data, Mapping) else {}
    try:
        targets = [FixTarget.from_json(t) for t in data.get("targets", [])]
        values = [ValueFix.from_json(v) for v in data.get("values", [])]
    except (KeyError, TypeError, ValueError):
        return "the action's data is not ckpt-lsp's"
    if not targets and not values:
        return "nothing to fix"
    return targets, values


def planned_edits(
    text: str, targets: Sequence[FixTarget], values: Sequence[ValueFix] = ()
) -> list[Edit] | str:
    """The fix engine's edits of `text` for `targets` and checkpoint `values` (code points),
    or why not."""
    try:
        if not targets:
            edits = []
        elif len(targets) == 1 and not values:
            fix = describe_fix(text, targets[0])
            if not fix.available:
                return fix.unavailable or "the class already leaves these attributes out"
            edits = list(fix.edits)
        else:
            edits = list(fix_edits(text, targets))
        edits += value_edits_beside(text, values, edits)
    except Exception as exc:
        log.exception("building the fix failed")
        return f"building the fix failed: {exc}"
    return edits or "no change is needed or possible"


def resolve_fix(ctx: ActionContext, action: types.CodeAction) -> str | None:
    """Fill in the edit of a fix action for the text in `ctx` (which must be the state
    the action was made for). Returns why not, or None when the edit is in place."""
    carried = action_targets(action)
    if isinstance(carried, str):
        return carried
    edits = planned_edits(ctx.text, *carried)
    if isinstance(edits, str):
        return edits
    action.edit = workspace_edit(ctx, edits)
    return None


def _finding_actions(
    ctx: ActionContext, finding: Finding, diagnostic: types.Diagnostic | None
) -> list[types.CodeAction]:
    related = [diagnostic] if diagnostic is not None else None
    actions: list[types.CodeAction] = []
    for value in value_fixes([finding]):  # cheap (no libcst): the edit comes complete
        edits = value_edits(ctx.text, [value])
        if edits:
            actions.append(
                types.CodeAction(
                    title=value.title,
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=related,
                    is_preferred=True,
                    edit=workspace_edit(ctx, edits),
                )
            )
    targets = fix_targets([finding])
    if targets:  # the policy refuses some (CKPT004, a hook): then only "ignore" is offered
        title = f"Exclude `{finding.attribute}` from pickling (add __getstate__/__setstate__)"
        if targets[0].keras:
            title = f"Fix `{finding.class_name}` for Keras: {keras_summary(targets[0].keras)}"
        elif targets[0].ignore:
            title = f"Exclude `{finding.attribute}` from the saved hyperparameters (ignore=)"
        actions.append(
            types.CodeAction(
                title=title,
                kind=types.CodeActionKind.QuickFix,
                diagnostics=related,
                is_preferred=True,
                data=fix_data(ctx, targets),
            )
        )
    ignore = ignore_edit(finding, lambda row: ctx.index.line_text(row - 1))
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
