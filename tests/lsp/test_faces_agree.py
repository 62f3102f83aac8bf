"""Both faces write the same fixes: `ckpt-lsp --check --fix` and the server's code actions.

Every case file of the corpora (marks stripped, as tests/corpus does) is fixed twice: by
the CLI on one copy of the case tree, and by the server's fix-all (`source.fixAll`), and
for a file with one flagged class by its quick fix, on another, driven the way an editor
drives it. The resulting texts must be equal.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from lsp_helpers import apply_edits, edits_of, initialize, open_doc, published, wait_for
from lsprotocol import types
from pytest_lsp import LanguageClient

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent


def _corpus_module() -> ModuleType:
    """tests/corpus/test_corpus.py, for its mark stripping and the corpora's places."""
    spec = importlib.util.spec_from_file_location(
        "corpus_truth", TESTS / "corpus" / "test_corpus.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


CORPUS = _corpus_module()
CASE_TREES = {
    "ours": CORPUS.HERE / "cases",
    "shared": CORPUS.SHARED / "cases",
    # the blind rounds of the checkpoint-value, hparam and Keras rules, whose fixes are new
    "blind-round8": CORPUS.HERE / "blind" / "round8" / "cases",
    "blind-round9": CORPUS.HERE / "blind" / "round9" / "cases",
}


def _cli_fix(root: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "server"), env.get("PYTHONPATH", "")) if p
    )
    proc = subprocess.run(
        [sys.executable, "-m", "ckpt_lsp", "--check", "--fix", "--no-cache", "."],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode in (0, 1), f"ckpt-lsp --fix failed: {proc.stderr[-2000:]}"


def _files(root: Path) -> Iterator[Path]:
    yield from sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


async def _resolved(
    client: LanguageClient, uri: str, rng: types.Range, only: list[str]
) -> list[types.CodeAction]:
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=rng,
            context=types.CodeActionContext(diagnostics=[], only=only),
        )
    )
    out = []
    for action in result or []:
        if isinstance(action, types.CodeAction):
            if action.edit is None:
                action = await client.code_action_resolve_async(action)
            out.append(action)
    return out


# the titles of the fixes of a whole class: pickled attributes, Keras registration and config
_WHOLE_CLASS = ("Exclude all unpicklable attributes of", "Fix all Keras findings of")


def _class_fix(actions: list[types.CodeAction]) -> types.CodeAction | None:
    """The quick fix that fixes a whole class: the class-wide one, else the one attribute's."""
    excludes = [a for a in actions if a.title.startswith(("Exclude", "Fix `"))]
    whole = [a for a in actions if a.title.startswith(_WHOLE_CLASS)]
    chosen = whole or excludes
    return chosen[0] if chosen else None


def _applied(text: str, uri: str, action: types.CodeAction | None) -> str:
    if action is None or action.edit is None:
        return text  # nothing offered, or nothing the server could build: unchanged
    return apply_edits(text, edits_of(action.edit, uri))


@pytest.mark.slow
@pytest.mark.parametrize("corpus", sorted(CASE_TREES))
async def test_cli_fix_and_editor_fixes_agree(
    client: LanguageClient, tmp_path: Path, corpus: str
) -> None:
    cases = CASE_TREES[corpus]
    if not cases.is_dir():
        pytest.skip(f"the {corpus} corpus is not at {cases} (it sits next to the checkout)")
    by_cli = CORPUS.copy_unmarked(cases, tmp_path / "cli")
    in_editor = CORPUS.copy_unmarked(cases, tmp_path / "editor")
    _cli_fix(by_cli)

    await initialize(client, in_editor)
    # the workspace is indexed first, so bases and factories in other files are known
    await wait_for(
        lambda: any("indexed" in m.message for m in client.log_messages),
        timeout=60,
        what="the workspace index",
    )
    mismatches: list[str] = []
    checked = 0
    for path in _files(in_editor):
        rel = path.relative_to(in_editor)
        text = path.read_text(encoding="utf-8")
        expected = (by_cli / rel).read_text(encoding="utf-8")
        uri = open_doc(client, path, text)
        params = await published(client, uri, version=1, timeout=60)
        start = types.Position(0, 0)
        fix_all = await _resolved(client, uri, types.Range(start, start), ["source.fixAll"])
        if _applied(text, uri, fix_all[0] if fix_all else None) != expected:
            mismatches.append(f"fix-all: {rel}")
        classes = {(d.data["class"], d.data["class_line"]) for d in params.diagnostics}  # type: ignore[index]
        # one class's quick fix is the whole file's fix only when every finding is about that
        # class (a checkpoint value in a module function has no class, and its own fix)
        if len(classes) == 1 and None not in {name for name, _ in classes}:
            whole = types.Range(
                min(d.range.start for d in params.diagnostics),
                max(d.range.end for d in params.diagnostics),
            )
            quick = await _resolved(client, uri, whole, [types.CodeActionKind.QuickFix])
            if _applied(text, uri, _class_fix(quick)) != expected:
                mismatches.append(f"quick fix of the class: {rel}")
        client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        checked += 1
    assert checked > 0
    assert mismatches == [], "the editor and --fix disagree on:\n" + "\n".join(mismatches)
