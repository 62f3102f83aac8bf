"""Code actions applied the way an editor applies them, then re-checked; hover."""

from __future__ import annotations

import ast
import pickle
import sys
import types as pytypes
from pathlib import Path

import pytest
from lsp_helpers import (
    EAGER_CAPS,
    MODEL,
    apply_edits,
    attributes,
    change_doc,
    edits_of,
    initialize,
    open_doc,
    published,
)
from lsprotocol import types
from pytest_lsp import LanguageClient

PROFILES = ["visual-studio-code", "neovim", EAGER_CAPS]


async def _actions(
    client: LanguageClient, uri: str, rng: types.Range, only: list[str] | None = None
) -> list[types.CodeAction]:
    """The actions for a range, resolved the way an editor resolves the one it applies."""
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=rng,
            context=types.CodeActionContext(diagnostics=[], only=only),
        )
    )
    found = [a for a in result or [] if isinstance(a, types.CodeAction)]
    resolved = []
    for action in found:
        if action.edit is None:
            action = await client.code_action_resolve_async(action)
        resolved.append(action)
    return resolved


def _diag(params: types.PublishDiagnosticsParams, attribute: str) -> types.Diagnostic:
    return next(d for d in params.diagnostics if d.data["attribute"] == attribute)


@pytest.mark.parametrize("profile", PROFILES)
async def test_exclude_one_attribute_then_recheck(
    client: LanguageClient, workspace: Path, profile: str
) -> None:
    result = await initialize(client, workspace, profile)
    encoding = result.capabilities.position_encoding or "utf-16"
    path = workspace / "model.py"
    path.write_text(MODEL)
    uri = open_doc(client, path)
    params = await published(client, uri, version=1)
    log = _diag(params, "log")
    listed = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=log.range,
            context=types.CodeActionContext(diagnostics=[log]),
        )
    )
    fixes = [a for a in listed or [] if isinstance(a, types.CodeAction) and a.is_preferred]
    # clients that resolve get the (costly) edit only for the action they apply
    assert (fixes[0].edit is None) == (profile != EAGER_CAPS)
    actions = await _actions(client, uri, log.range)
    titles = [a.title for a in actions]
    assert "Exclude `log` from pickling (add __getstate__/__setstate__)" in titles
    assert "Ignore CKPT001 on this line" in titles
    assert "Exclude all unpicklable attributes of `Model`" in titles
    preferred = next(a for a in actions if a.is_preferred)
    assert preferred.title.startswith("Exclude `log`")
    assert preferred.kind == types.CodeActionKind.QuickFix
    assert preferred.diagnostics and preferred.diagnostics[0].data["attribute"] == "log"
    assert preferred.edit is not None
    if profile != "neovim":  # VS Code takes versioned edits
        assert preferred.edit.document_changes is not None
        assert preferred.edit.document_changes[0].text_document.version == 1
    else:
        assert preferred.edit.changes is not None
    fixed = apply_edits(MODEL, edits_of(preferred.edit, uri), encoding)
    ast.parse(fixed)
    assert "__getstate__" in fixed and "__setstate__" in fixed
    change_doc(client, uri, fixed, 2)
    after = await published(client, uri, version=2)
    assert sorted(attributes(after.diagnostics)) == ["act", "guard", "lock"]


async def test_exclude_all_of_a_class_round_trips(client: LanguageClient, workspace: Path) -> None:
    """The class-wide fix clears the class's diagnostics and the fixed class pickles."""
    await initialize(client, workspace)
    source = MODEL.replace("import torch.nn as nn\n", "").replace("(nn.Module)", "(Base)")
    source = (
        "import threading\n\n\nclass Base:\n    def __getstate__(self):\n        return self.__dict__\n\n"
        + source.replace("import threading\n", "").replace("        super().__init__()\n", "")
    )
    path = workspace / "model.py"
    path.write_text(source)
    uri = open_doc(client, path)
    params = await published(client, uri, version=1, check=lambda d: len(d) == 4)
    lock = _diag(params, "lock")
    actions = await _actions(client, uri, lock.range)
    whole = next(a for a in actions if a.title == "Exclude all unpicklable attributes of `Model`")
    assert whole.edit is not None
    fixed = apply_edits(source, edits_of(whole.edit, uri))
    change_doc(client, uri, fixed, 2)
    after = await published(client, uri, version=2)
    assert attributes(after.diagnostics) == ["guard"]
    module = pytypes.ModuleType("ckpt_lsp_fixed_model")
    exec(compile(fixed, str(path), "exec"), module.__dict__)
    sys.modules[module.__name__] = module
    try:
        model = module.Model(str(workspace / "log.txt"))
        copy = pickle.loads(pickle.dumps(model))
    finally:
        del sys.modules[module.__name__]
    assert copy.path == model.path
    assert copy.act(3) == 3  # re-created in __setstate__
    assert copy.lock is not model.lock
    if copy.log is not None:  # re-opened, or left to the user (it needs `path`)
        copy.log.close()
    model.log.close()


async def test_fix_all_source_action(client: LanguageClient, workspace: Path) -> None:
    await initialize(client, workspace)
    path = workspace / "model.py"
    path.write_text(MODEL)
    uri = open_doc(client, path)
    params = await published(client, uri, version=1)
    everything = types.Range(types.Position(0, 0), types.Position(0, 0))
    actions = await _actions(client, uri, everything, only=["source.fixAll"])
    assert [a.kind for a in actions] == ["source.fixAll.ckpt-lsp"]
    fixed = apply_edits(MODEL, edits_of(actions[0].edit, uri))  # type: ignore[arg-type]
    ast.parse(fixed)
    change_doc(client, uri, fixed, 2)
    after = await published(client, uri, version=2)
    assert list(after.diagnostics) == []
    # quickfix-only requests get no source action
    quick = await _actions(client, uri, _diag(params, "log").range, only=["quickfix"])
    assert quick == []  # the document changed: no findings left, no actions


async def test_ignore_line_adds_and_extends_comments(
    client: LanguageClient, workspace: Path
) -> None:
    await initialize(client, workspace)
    source = MODEL.replace(
        "self.act = lambda x: x", "self.act = lambda x: x  # ckpt: ignore[CKPT005]"
    )
    path = workspace / "model.py"
    path.write_text(source)
    uri = open_doc(client, path)
    params = await published(client, uri, version=1)
    # a fresh comment
    ignore = next(
        a
        for a in await _actions(client, uri, _diag(params, "log").range)
        if a.title == "Ignore CKPT001 on this line"
    )
    text = apply_edits(source, edits_of(ignore.edit, uri))  # type: ignore[arg-type]
    assert '        self.log = open(path, "a")  # ckpt: ignore[CKPT001]\n' in text
    change_doc(client, uri, text, 2)
    params = await published(client, uri, version=2)
    assert sorted(attributes(params.diagnostics)) == ["act", "guard", "lock"]
    # an existing list is extended
    ignore = next(
        a
        for a in await _actions(client, uri, _diag(params, "act").range)
        if a.title == "Ignore CKPT003 on this line"
    )
    text = apply_edits(text, edits_of(ignore.edit, uri))  # type: ignore[arg-type]
    assert "self.act = lambda x: x  # ckpt: ignore[CKPT005, CKPT003]\n" in text
    change_doc(client, uri, text, 3)
    params = await published(client, uri, version=3)
    assert sorted(attributes(params.diagnostics)) == ["guard", "lock"]
    # on a statement over several lines the comment goes on its last line
    source = MODEL.replace(
        'self.log = open(path, "a")',
        'self.log = open(\n            path,\n            "a",\n        )',
    )
    path = workspace / "multiline.py"
    path.write_text(source)
    uri = open_doc(client, path)
    params = await published(client, uri, version=1)
    ignore = next(
        a
        for a in await _actions(client, uri, _diag(params, "log").range)
        if a.title.startswith("Ignore")
    )
    text = apply_edits(source, edits_of(ignore.edit, uri))  # type: ignore[arg-type]
    assert '            "a",\n        )  # ckpt: ignore[CKPT001]\n' in text
    change_doc(client, uri, text, 2)
    params = await published(client, uri, version=2)
    assert "log" not in attributes(params.diagnostics)


async def test_hover_explains_a_finding_and_a_suppressed_code(
    client: LanguageClient, workspace: Path
) -> None:
    await initialize(client, workspace)
    source = MODEL.replace("self.path = path", "self.path = path  # ckpt: ignore[CKPT009]")
    path = workspace / "model.py"
    path.write_text(source)
    uri = open_doc(client, path)
    params = await published(client, uri, version=1)
    log = _diag(params, "log")
    inside = types.Position(log.range.start.line, log.range.start.character + 6)
    hover = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=inside)
    )
    assert hover is not None
    assert isinstance(hover.contents, types.MarkupContent)
    assert hover.contents.kind == types.MarkupKind.Markdown
    text = hover.contents.value
    assert "CKPT001" in text and "open-file" in text
    assert "`self.log`" in text and "`Model.log`" in text
    assert "**Why:**" in text and "**Fix:**" in text  # from the rule page
    assert "torch.save(model)" in text and "state_dict()" in text
    assert "/CKPT001.md" in text
    assert hover.range == log.range
    # off any finding: nothing
    nothing = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(0, 0)
        )
    )
    assert nothing is None
    # on a code inside a suppression comment
    line = source.splitlines().index("        self.path = path  # ckpt: ignore[CKPT009]")
    col = source.splitlines()[line].index("CKPT009") + 3
    code_hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line, col),
        )
    )
    assert code_hover is not None
    assert "CKPT009" in code_hover.contents.value  # type: ignore[union-attr]
    assert "native-object" in code_hover.contents.value  # type: ignore[union-attr]
