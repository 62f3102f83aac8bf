"""CKPT011's fix, `ignore=` in save_hyperparameters, is the same from both faces: the CLI's
`--fix` and the server's quick fix and fix-all (tests/lsp/test_faces_agree.py, on one file).
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

from ckpt_lsp.fix import FixTarget, fix_source
from lsp_helpers import change_doc, initialize, open_doc, published, wait_for
from lsprotocol import types
from pytest_lsp import LanguageClient
from test_faces_agree import _applied, _class_fix, _cli_fix, _resolved

SOURCE = textwrap.dedent(
    """\
    import lightning as L
    import torch
    from torch import nn


    class Lit(L.LightningModule):
        def __init__(self, loss=nn.MSELoss(), optimizer=torch.optim.Adam, lr=1e-3):
            super().__init__()
            self.save_hyperparameters(logger=False)
            self.head = nn.Linear(4, 2)
    """
)


async def test_cli_and_server_write_the_same_ignore(client: LanguageClient, tmp_path: Path) -> None:
    by_cli, in_editor = tmp_path / "cli", tmp_path / "editor"
    for root in (by_cli, in_editor):
        root.mkdir()
        (root / "pyproject.toml").write_text("")
        (root / "lit.py").write_text(SOURCE, encoding="utf-8")
    _cli_fix(by_cli)
    expected = (by_cli / "lit.py").read_text(encoding="utf-8")
    assert 'self.save_hyperparameters(logger=False, ignore=["loss", "optimizer"])' in expected
    ast.parse(expected)

    await initialize(client, in_editor)
    await wait_for(
        lambda: any("indexed" in m.message for m in client.log_messages),
        timeout=60,
        what="the workspace index",
    )
    uri = open_doc(client, in_editor / "lit.py", SOURCE)
    params = await published(client, uri, version=1, timeout=60)
    assert {d.code for d in params.diagnostics} == {"CKPT011"}
    start = types.Position(0, 0)
    fix_all = await _resolved(client, uri, types.Range(start, start), ["source.fixAll"])
    assert _applied(SOURCE, uri, fix_all[0] if fix_all else None) == expected
    whole = types.Range(
        min(d.range.start for d in params.diagnostics),
        max(d.range.end for d in params.diagnostics),
    )
    quick = await _resolved(client, uri, whole, [types.CodeActionKind.QuickFix])
    assert _applied(SOURCE, uri, _class_fix(quick)) == expected
    one = params.diagnostics[0]
    single = await _resolved(client, uri, one.range, [types.CodeActionKind.QuickFix])
    titles = [a.title for a in single]
    assert any("saved hyperparameters (ignore=)" in t for t in titles), titles


def test_the_fix_engine_merges_into_every_ignore_form() -> None:
    forms = {
        "self.save_hyperparameters()": 'self.save_hyperparameters(ignore=["loss"])',
        'self.save_hyperparameters(ignore="x")': 'self.save_hyperparameters(ignore=["x", "loss"])',
        "self.save_hyperparameters(ignore=['x'])": "self.save_hyperparameters(ignore=['x', \"loss\"])",
        "self.save_hyperparameters(ignore=[])": 'self.save_hyperparameters(ignore=["loss"])',
        "self.save_hyperparameters(ignore=())": 'self.save_hyperparameters(ignore=("loss",))',
        "self.save_hyperparameters(ignore=('x',))": "self.save_hyperparameters(ignore=('x', \"loss\",))",
        "self.save_hyperparameters(ignore=None)": 'self.save_hyperparameters(ignore=["loss"])',
        'self.save_hyperparameters("lr", "loss")': 'self.save_hyperparameters("lr")',
        'self.save_hyperparameters("loss", "lr")': 'self.save_hyperparameters("lr")',
        "self.save_hyperparameters(\n            logger=False,\n        )": (
            'self.save_hyperparameters(\n            logger=False, ignore=["loss"],\n        )'
        ),
    }
    template = textwrap.dedent(
        """\
        import lightning as L
        from torch import nn


        class Lit(L.LightningModule):
            def __init__(self, x=1, loss=nn.MSELoss(), lr=1e-3):
                super().__init__()
                CALL
        """
    )
    target = FixTarget("Lit", 5, (), ("lightning.LightningModule",), (), ignore=("loss",))
    for before, after in forms.items():
        fixed = fix_source(template.replace("CALL", before), [target])
        assert fixed == template.replace("CALL", after), before
        ast.parse(fixed)


def test_a_lone_name_is_never_removed() -> None:
    source = textwrap.dedent(
        """\
        import lightning as L


        class Lit(L.LightningModule):
            def __init__(self, loss=None):
                super().__init__()
                self.save_hyperparameters("loss")
        """
    )
    target = FixTarget("Lit", 4, (), (), (), ignore=("loss",))
    assert fix_source(source, [target]) == source


def test_a_target_with_hparams_round_trips_through_json() -> None:
    target = FixTarget(
        "Lit", 5, ("fn",), ("lightning.LightningModule",), (), ignore=("loss", "opt")
    )
    assert FixTarget.from_json(target.to_json()) == target


LIT = """\
import lightning as L


class Lit(L.LightningModule):
    def __init__(self, loss=None, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
"""
TRAIN = "from lit import Lit\n\nmodel = Lit(lr=0.1)\n"


async def test_a_caller_changed_in_the_editor_rechecks_the_module(
    client: LanguageClient, tmp_path: Path
) -> None:
    """CKPT011 depends on the calls that build the class: editing one re-checks the module."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "lit.py").write_text(LIT)
    (tmp_path / "train.py").write_text(TRAIN)
    await initialize(client, tmp_path)
    lit_uri = open_doc(client, tmp_path / "lit.py", LIT)
    await published(client, lit_uri, check=lambda d: len(d) == 0)
    train_uri = open_doc(client, tmp_path / "train.py", TRAIN)
    change_doc(client, train_uri, TRAIN.replace("lr=0.1", "loss=lambda y: y"), 2)
    await published(client, lit_uri, check=lambda d: [x.code for x in d] == ["CKPT011"])
    change_doc(client, train_uri, TRAIN, 3)
    await published(client, lit_uri, check=lambda d: len(d) == 0)
