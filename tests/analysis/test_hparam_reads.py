"""CKPT010 of Lightning's `hparams` in a hand-written checkpoint: `module.hparams` whole is an
`AttributeDict` (refused even when its values are plain), and `module.hparams.stage`,
`["stage"]` or `.get("stage")` is what the call that built the module passed for `stage`, or
its default (lightning 2.6 keeps the argument as passed). VALID and INVALID."""

from __future__ import annotations

import pytest
from support.ckpt010 import weights_only_rows

HEADER = """\
import enum

import lightning as L
import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn


class Stage(enum.Enum):
    FIT = "fit"
    TUNE = "tune"


class LitPPO(L.LightningModule):
    def __init__(self, actor: nn.Module, gamma: float = 0.99, stage: Stage = Stage.FIT, lr=1e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["actor"])
        self.actor = actor


class LitPlain(L.LightningModule):
    def __init__(self, lr: float = 1e-3, stage: str = "fit", betas=(0.9, 0.95)):
        super().__init__()
        self.save_hyperparameters()


def build_ppo():
    return LitPPO(nn.Linear(2, 2), gamma=0.9, stage=Stage.TUNE)


"""

# (source, the rows of `source` with a finding)
INVALID = [
    (
        """
        def save(path):
            module = build_ppo()
            ckpt = dict(state_dict=module.state_dict(), gamma=module.hparams.gamma,
                        stage=module.hparams.stage)
            torch.save(ckpt, path)
        """,
        [5],
    ),
    (
        """
        def save(path):
            module = LitPPO(nn.Linear(2, 2))
            torch.save({"stage": module.hparams["stage"], "lr": module.hparams.lr}, path)
        """,
        [4],
    ),
    (
        """
        def save(path):
            module = LitPPO(nn.Linear(2, 2), lr=np.float32(3e-4))
            torch.save({"lr": module.hparams.get("lr"), "gamma": module.hparams.get("gamma")}, path)
        """,
        [4],
    ),
    # the whole AttributeDict, also of a module whose hparams are plain
    (
        """
        def save(path):
            module = LitPlain()
            torch.save({"state_dict": module.state_dict(), "hparams": module.hparams}, path)
        """,
        [4],
    ),
    (
        """
        def save(path, model: L.LightningModule):
            torch.save({"hp": model.hparams_initial}, path)
        """,
        [3],
    ),
]

VALID = [
    # plain values read back, the AttributeDict made a dict, a value a local of the building
    # call's function holds (not known where the module is read)
    """
    def save(path):
        module = build_ppo()
        plain = LitPlain(lr=0.1, stage=Stage.FIT.value)
        torch.save({"gamma": module.hparams.gamma, "hp": dict(module.hparams),
                    "stage": module.hparams.stage.value, "lr": plain.hparams.lr,
                    "s": plain.hparams["stage"], "b": plain.hparams.get("betas")}, path)
    """,
    # a project nn.Module (not Lightning) that keeps its own `hparams` dict
    """
    class Net(nn.Module):
        def __init__(self, **hparams):
            super().__init__()
            self.hparams = hparams

    def save(path):
        net = Net(lr=0.1)
        torch.save({"hp": net.hparams, "lr": net.hparams["lr"]}, path)
    """,
    # a parameter left out by `ignore=` is no hparam (`.get` gives None)
    """
    def save(path):
        module = LitPPO(nn.Linear(2, 2))
        torch.save({"actor": module.hparams.get("actor")}, path)
    """,
]


@pytest.mark.parametrize(("source", "rows"), INVALID)
def test_a_refused_hparam_read_back_is_reported(source: str, rows: list[int]) -> None:
    assert [row for row, _ in weights_only_rows(HEADER, source)] == rows


@pytest.mark.parametrize("source", VALID)
def test_plain_hparams_read_back_are_not_reported(source: str) -> None:
    assert weights_only_rows(HEADER, source) == []
