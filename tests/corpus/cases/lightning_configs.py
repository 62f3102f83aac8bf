"""Lightning modules configured the usual ways: Hydra configs, dicts, norm-layer classes,
timestamps, loss functions passed in by a builder. Marked parameters break the checkpoint's
`hyper_parameters` for the default torch.load (or are dropped because pickle refuses them).
"""
import datetime
import uuid
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn


class HydraLit(L.LightningModule):
    def __init__(
        self,
        model_cfg: DictConfig,  # truth: hparam
        optim_cfg: DictConfig,  # truth: hparam
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(model_cfg.width, model_cfg.width)


class DictConfigured(L.LightningModule):
    def __init__(self, cfg: dict):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = nn.Linear(cfg["width"], cfg["width"])


class PlainClassifier(L.LightningModule):
    def __init__(
        self,
        num_classes: int = 3,
        class_names: list = ["cat", "dog", "bird"],
        mean: tuple = (0.5, 0.5, 0.5),
        scheduler: str = "cosine",
        warmup: float = 0.1,
        run_id: str = str(uuid.uuid4()),
        label_map: dict = {"cat": 0, "dog": 1, "bird": 2},
    ):
        super().__init__()
        self.save_hyperparameters()
        self.head = nn.Linear(8, num_classes)


class TinyTransformer(L.LightningModule):
    def __init__(
        self,
        d_model: int = 32,
        norm_layer=nn.LayerNorm,  # truth: hparam
        nhead: int = 4,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.norm = norm_layer(d_model)


class TimedRun(L.LightningModule):
    def __init__(
        self,
        lr: float = 1e-3,
        started_at=datetime.datetime.now(),  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(2, 2)


class CheckpointedElsewhere(L.LightningModule):
    def __init__(self, ckpt_dir: Path = Path("checkpoints"), hidden: int = 8):
        super().__init__()
        self.save_hyperparameters(ignore=["ckpt_dir"])
        self.ckpt_dir = ckpt_dir
        self.net = nn.Linear(hidden, hidden)


class MetricLit(L.LightningModule):
    def __init__(
        self,
        metric_fn=None,  # truth: hparam
        reduction: str = "mean",
    ):
        super().__init__()
        self.save_hyperparameters()


class RobustRegressor(L.LightningModule):
    def __init__(
        self,
        in_features,
        criterion,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(in_features, 1)


class FocalLit(L.LightningModule):
    def __init__(self, gamma: float = 2.0, alpha: float = 0.25):
        super().__init__()
        self.save_hyperparameters()


def build_robust(width):
    loss = nn.HuberLoss(delta=0.5)
    return RobustRegressor(width, loss)


FACTORIES = {
    "HydraLit": lambda: HydraLit(
        OmegaConf.create({"width": 4}), OmegaConf.create({"lr": 0.1, "betas": [0.9, 0.99]})
    ),
    "DictConfigured": lambda: DictConfigured({"width": 4, "dropout": 0.1, "act": "gelu"}),
    "MetricLit": lambda: MetricLit(metric_fn=F.l1_loss),
    "RobustRegressor": lambda: build_robust(4),
    "FocalLit": lambda: FocalLit(gamma=float(np.float32(2.0)), alpha=0.5),
}
