"""One fix policy for both faces: the editor's code actions and `--fix` write the same code.

In process: the server's code-action logic (`lsp.actions`) against the CLI's path
(`fix_targets` then `fix_source`), on the cases where the two used to disagree.
"""

from __future__ import annotations

import ast
import textwrap

from ckpt_lsp.analysis.analyzer import analyze_text
from ckpt_lsp.fix import FixTarget, fix_source, fix_targets
from ckpt_lsp.lsp.actions import FIX_ALL_KIND, ActionContext, code_actions, resolve_fix
from ckpt_lsp.lsp.hover import finding_markdown
from ckpt_lsp.lsp.positions import LineIndex
from lsp_helpers import apply_edits, edits_of
from lsprotocol import types
from pygls.workspace import PositionCodec

URI = "file:///model.py"

LMDB_AND_OBJECT_ARRAY = textwrap.dedent(
    """\
    import lmdb
    import numpy as np
    import torch.nn as nn


    class Store(nn.Module):
        def __init__(self):
            super().__init__()
            self.env = lmdb.open("/data/db")
            self.table = np.array([{}, []], dtype=object)
    """
)


def _editor(
    text: str, only: list[str] | None = None
) -> tuple[ActionContext, list[types.CodeAction]]:
    """The actions the server offers over the whole text, as a resolving client gets them."""
    ctx = ActionContext(URI, 1, text, LineIndex(text, PositionCodec("utf-16")), True)
    rows = text.count("\n") + 1
    params = types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=URI),
        range=types.Range(types.Position(0, 0), types.Position(rows, 0)),
        context=types.CodeActionContext(diagnostics=[], only=only),
    )
    return ctx, code_actions(ctx, analyze_text(text), lambda i: None, params)


def _applied(ctx: ActionContext, action: types.CodeAction) -> str:
    reason = resolve_fix(ctx, action)
    assert reason is None, reason
    assert action.edit is not None
    return apply_edits(ctx.text, edits_of(action.edit, URI))


def _cli(text: str) -> str:
    return fix_source(text, fix_targets(analyze_text(text)))


def _setstate(text: str) -> str:
    tree = ast.parse(text)
    method = next(
        n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "__setstate__"
    )
    return ast.unparse(method)


def test_lmdb_on_a_constant_path_is_reset_by_both_faces() -> None:
    cli = _cli(LMDB_AND_OBJECT_ARRAY)
    assert "self.env = None" in _setstate(cli)
    assert "lmdb.open" not in _setstate(cli)  # re-opening it in the same process fails
    ctx, actions = _editor(LMDB_AND_OBJECT_ARRAY)
    quick = next(a for a in actions if a.title.startswith("Exclude `env`"))
    assert _applied(ctx, quick) == cli
    ctx, actions = _editor(LMDB_AND_OBJECT_ARRAY, only=[FIX_ALL_KIND])
    (fix_all,) = actions
    assert _applied(ctx, fix_all) == cli


def test_object_arrays_get_no_fix_in_the_editor_either() -> None:
    findings = analyze_text(LMDB_AND_OBJECT_ARRAY)
    assert {f.code for f in findings} == {"CKPT002", "CKPT004"}
    assert [t.attributes for t in fix_targets(findings)] == [("env",)]
    _, actions = _editor(LMDB_AND_OBJECT_ARRAY)
    titles = [a.title for a in actions]
    assert not any(t.startswith("Exclude `table`") for t in titles)
    assert "Ignore CKPT004 on this line" in titles  # the other way out stays
    # one fixable attribute: no class-wide action that would promise more than it does
    assert not any(t.startswith("Exclude all unpicklable attributes of") for t in titles)
    # and the hover does not promise a quick fix the editor does not offer
    hovers = {f.code: finding_markdown(f) for f in findings}
    assert "There is no automatic fix" in hovers["CKPT004"]
    assert 'The quick fix "Exclude `env` from pickling"' in hovers["CKPT002"]


def test_only_object_arrays_means_no_fix_all() -> None:
    text = LMDB_AND_OBJECT_ARRAY.replace('        self.env = lmdb.open("/data/db")\n', "")
    assert [f.code for f in analyze_text(text)] == ["CKPT004"]
    _, actions = _editor(text, only=[FIX_ALL_KIND])
    assert actions == []
    assert _cli(text) == text


def test_a_fix_target_carries_everything_resolve_needs() -> None:
    target = FixTarget("Store", 6, ("env", "log"), ("torch.nn.Module",), ("env",))
    assert FixTarget.from_json(target.to_json()) == target
    ctx, actions = _editor(LMDB_AND_OBJECT_ARRAY, only=[FIX_ALL_KIND])
    data = actions[0].data
    assert isinstance(data, dict)
    assert data["targets"] == [
        {
            "class": "Store",
            "line": 6,
            "attributes": ["env"],
            "bases": ["torch.nn.Module"],
            "reset": ["env"],
        }
    ]


CHECKPOINT_VALUES = textwrap.dedent(
    """\
    import argparse
    import numpy as np
    import threading
    import torch
    import torch.nn as nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lock = threading.Lock()


    def save(path):
        args = argparse.ArgumentParser().parse_args([])
        torch.save({"loss": np.mean([1.0]), "args": args, "model": Net()}, path)
    """
)


def test_checkpoint_values_are_fixed_alike_by_both_faces() -> None:
    from ckpt_lsp.fix import fix_file_source

    cli = fix_file_source(CHECKPOINT_VALUES, analyze_text(CHECKPOINT_VALUES))
    assert '"loss": np.mean([1.0]).item(), "args": vars(args), "model": Net().state_dict()' in cli
    assert "def __getstate__" in cli  # the class fix is planned on the same text
    ctx, actions = _editor(CHECKPOINT_VALUES, only=[FIX_ALL_KIND])
    (fix_all,) = actions
    assert _applied(ctx, fix_all) == cli
    ctx, actions = _editor(CHECKPOINT_VALUES)
    quick = next(a for a in actions if a.title.startswith("Save a dict"))
    assert quick.edit is not None  # cheap: it comes complete, no resolve
    fixed = apply_edits(ctx.text, edits_of(quick.edit, URI))
    assert '"args": vars(args)' in fixed and '"loss": np.mean([1.0])' in fixed
    value = next(f for f in analyze_text(CHECKPOINT_VALUES) if f.code == "CKPT010")
    assert "rewrites the value" in finding_markdown(value)
