"""LightningModules whose save_hyperparameters() puts their __init__ arguments in every checkpoint.

Written the way training code is: losses and optimizer classes passed in, configs from argparse
and OmegaConf, activation functions as arguments, a tokenizer function with a lambda default.
Marked parameters make the checkpoint's `hyper_parameters` fail: the default torch.load refuses
them, or pickle does and Lightning drops them when fit starts.
"""
import argparse
import functools
from pathlib import Path
from typing import Callable, Optional, Union

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn


class LitClassifier(L.LightningModule):
    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int = 10,
        loss_fn: nn.Module = nn.CrossEntropyLoss(),  # truth: hparam
        lr: float = 1e-3,
        class_weights: Optional[list] = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.head(self.backbone(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.hparams.loss_fn(self(x), y)


class LitRegressor(L.LightningModule):
    def __init__(
        self,
        in_features: int = 8,
        optimizer_cls=torch.optim.AdamW,  # truth: hparam
        scheduler_kwargs: Optional[dict] = None,
        weight_decay: float = 0.01,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(in_features, 32), nn.ReLU(), nn.Linear(32, 1))

    def configure_optimizers(self):
        return self.hparams.optimizer_cls(self.parameters(), weight_decay=self.hparams.weight_decay)


class LitTagger(L.LightningModule):
    def __init__(
        self,
        vocab_size: int = 1000,
        tokenize=lambda text: text.lower().split(),  # truth: hparam
        max_len: int = 128,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(vocab_size, 32)


class LitFromConfig(L.LightningModule):
    def __init__(self, cfg: DictConfig):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.layer = nn.Linear(cfg.model.width, cfg.model.width)


class LitNamedOnly(L.LightningModule):
    def __init__(self, hidden: int = 64, lr: float = 3e-4, data_root: Path = Path("data")):
        super().__init__()
        self.save_hyperparameters("hidden", "lr")
        self.data_root = data_root
        self.layer = nn.Linear(hidden, hidden)


class LitActivations(L.LightningModule):
    def __init__(
        self,
        width: int = 32,
        activation: Callable = F.gelu,  # truth: hparam
        dropout: float = 0.1,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.layer = nn.Linear(width, width)

    def forward(self, x):
        return self.hparams.activation(self.layer(x))


class LitFromArgs(L.LightningModule):
    def __init__(self, args: argparse.Namespace):  # truth: hparam
        super().__init__()
        self.save_hyperparameters()
        self.layer = nn.Linear(args.hidden, args.hidden)


class LitArgsAsDict(L.LightningModule):
    def __init__(self, args: argparse.Namespace):
        super().__init__()
        self.save_hyperparameters(args)
        self.layer = nn.Linear(args.hidden, args.hidden)


class LitSGD(L.LightningModule):
    def __init__(
        self,
        hidden: int = 16,
        optimizer=functools.partial(torch.optim.SGD, momentum=0.9),  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.layer = nn.Linear(hidden, hidden)


class LitPlain(L.LightningModule):
    def __init__(
        self,
        hidden: int = 64,
        dropout: float = 0.1,
        layers: tuple = (32, 16),
        label_names: list = ["neg", "pos"],
        root: Union[str, Path] = "data",
        weights: Optional[np.ndarray] = None,
        precision_dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.layer = nn.Linear(hidden, hidden)


class LitIgnoresCriterion(L.LightningModule):
    def __init__(self, criterion: nn.Module = nn.MSELoss(), lr: float = 1e-3):
        super().__init__()
        self.save_hyperparameters(ignore="criterion")
        self.criterion = criterion
        self.layer = nn.Linear(4, 1)


class LitBase(L.LightningModule):
    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.get("lr", 1e-3))


class LitWithStats(LitBase):
    def __init__(
        self,
        feature_mean=None,  # truth: hparam
        feature_std: float = 1.0,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.layer = nn.Linear(4, 1)


class LitWithHead(LitBase):
    def __init__(
        self,
        head=None,  # truth: hparam
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Linear(8, 8)


class LitBackboneBase(L.LightningModule):
    def __init__(self, lr: float = 1e-3, **kwargs):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])


class LitSegmenter(LitBackboneBase):
    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int = 3,
        criterion=nn.BCEWithLogitsLoss(),  # truth: hparam
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.head = nn.Linear(4, num_classes)


class LitSmoothing(L.LightningModule):
    def __init__(
        self,
        kernel=None,  # truth: hparam
        window: int = 5,
    ):
        super().__init__()
        self.save_hyperparameters()


class LitSmoothingEMA(LitSmoothing):
    def training_step(self, batch, batch_idx):
        return None


def build_stats_model(features):
    mean = np.mean(features)
    return LitWithStats(feature_mean=mean, feature_std=float(np.std(features)))


def build_head_model():
    head = nn.Sequential(nn.Linear(8, 2), nn.Softmax(dim=-1))
    return LitWithHead(head, lr=3e-4)


FACTORIES = {
    "LitClassifier": lambda: LitClassifier(nn.Sequential(nn.Linear(8, 16), nn.ReLU())),
    "LitFromConfig": lambda: LitFromConfig(OmegaConf.create({"model": {"width": 8}})),
    "LitFromArgs": lambda: LitFromArgs(argparse.Namespace(hidden=8, lr=0.01)),
    "LitArgsAsDict": lambda: LitArgsAsDict(argparse.Namespace(hidden=8, lr=0.01)),
    "LitWithStats": lambda: build_stats_model(np.arange(10.0)),
    "LitWithHead": build_head_model,
    "LitSegmenter": lambda: LitSegmenter(nn.Linear(4, 4), lr=0.01),
    "LitSmoothingEMA": lambda: LitSmoothingEMA(kernel=np.linspace(0.0, 1.0, 5)),
}

NOT_BUILT = {"LitSmoothing": "a base class: the code builds it as LitSmoothingEMA"}
