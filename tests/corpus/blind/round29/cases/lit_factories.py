"""LightningModules built the way config-driven projects build them: factories that read an
OmegaConf config, argparse arguments or a dataclass, run helper objects over the data first
(class balancing, target statistics, EMA settings), then construct the module, which calls
self.save_hyperparameters(...)."""
import argparse
import dataclasses
import enum
import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.preprocessing import StandardScaler
from torch import nn

BASE_CFG = """
model:
  name: convnet
  width: 8
  num_classes: 3
  label_smoothing: 0.1
optim:
  lr: 0.001
  weight_decay: 0.05
  betas: [0.9, 0.999]
data:
  quantiles: [0.1, 0.5, 0.9]
  horizon: 6
  context: 12
lm:
  vocab_size: 32
  n_embd: 16
  n_layer: 1
  dropout: 0.0
trainer:
  max_epochs: 3
"""


def load_cfg(overrides=()):
    cfg = OmegaConf.create(BASE_CFG)
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))


def fake_labels(n=60, num_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.choice(num_classes, size=n, p=[0.6, 0.3, 0.1])


class Scaling(enum.Enum):
    NONE = "none"
    STANDARD = "standard"
    ROBUST = "robust"


class ClassBalancer:
    """Inverse-frequency class weights, computed from the training labels before the model exists."""

    def __init__(self, smoothing=1.0):
        self.smoothing = smoothing
        self.counts = None
        self.classes_ = []

    def fit(self, labels):
        self.classes_ = sorted(set(labels.tolist()))
        self.counts = np.bincount(labels, minlength=len(self.classes_)) + self.smoothing
        return self

    @property
    def weights(self):
        w = self.counts.sum() / (len(self.counts) * self.counts)
        return w / w.mean()

    def as_tensor(self):
        return torch.tensor(self.weights, dtype=torch.float32)


class TargetStats:
    def __init__(self):
        self.mean = 0.0
        self.std = 1.0
        self.scaler = None

    def fit(self, frame, target="y"):
        self.mean = frame[target].mean()
        self.std = float(frame[target].std())
        self.scaler = StandardScaler().fit(frame.drop(columns=[target]))
        return self


class EmaSchedule:
    def __init__(self, half_life_steps=200, warmup=10):
        self.half_life_steps = half_life_steps
        self.warmup = warmup

    def decay(self):
        return np.power(0.5, 1.0 / self.half_life_steps)

    def decay_float(self):
        return 0.5 ** (1.0 / self.half_life_steps)


@dataclass
class ForecastConfig:
    context: int = 12
    horizon: int = 6
    hidden: int = 16
    dropout: float = 0.1
    quantiles: tuple = (0.1, 0.5, 0.9)
    extra: dict = field(default_factory=dict)


def smooth_l1(pred, target):
    return F.smooth_l1_loss(pred, target)


def build_backbone(width=8):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


# ---------------------------------------------------------------- image classifier

class LitClassifier(pl.LightningModule):
    def __init__(
        self,
        num_classes: int,
        lr: float,
        backbone: nn.Module,  # truth: hparam
        class_weights=None,  # truth: hparam
        loss_fn=None,  # truth: hparam
        optimizer_cls=torch.optim.AdamW,  # truth: hparam
        label_smoothing: float = 0.0,
        weight_decay: float = 0.0,
        betas=(0.9, 0.999),
    ):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = backbone
        self.head = nn.LazyLinear(num_classes)
        self.loss_fn = loss_fn or nn.CrossEntropyLoss(weight=torch.as_tensor(class_weights, dtype=torch.float32))

    def forward(self, x):
        return self.head(self.backbone(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self(x), y)

    def configure_optimizers(self):
        return self.hparams.optimizer_cls(self.parameters(), lr=self.hparams.lr,
                                          weight_decay=self.hparams.weight_decay, betas=self.hparams.betas)


def build_classifier(cfg):
    labels = fake_labels(num_classes=cfg.model.num_classes)
    balancer = ClassBalancer().fit(labels)
    weights = balancer.weights
    return LitClassifier(
        num_classes=len(balancer.classes_),
        lr=cfg.optim.lr,
        backbone=build_backbone(cfg.model.width),
        class_weights=weights,
        loss_fn=nn.CrossEntropyLoss(weight=balancer.as_tensor(), label_smoothing=cfg.model.label_smoothing),
        optimizer_cls=torch.optim.AdamW,
        label_smoothing=cfg.model.label_smoothing,
        weight_decay=cfg.optim.weight_decay,
        betas=tuple(cfg.optim.betas),
    )


class LitClassifierIgnored(pl.LightningModule):
    """Same module, with the objects left out of the hyperparameters."""

    def __init__(
        self,
        backbone: nn.Module,
        loss_fn: nn.Module,
        class_weights: torch.Tensor,
        num_classes: int = 3,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone", "loss_fn"])
        self.backbone = backbone
        self.loss_fn = loss_fn
        self.head = nn.LazyLinear(num_classes)


def build_classifier_ignored(cfg):
    balancer = ClassBalancer().fit(fake_labels())
    return LitClassifierIgnored(
        backbone=build_backbone(cfg.model.width),
        loss_fn=nn.CrossEntropyLoss(weight=balancer.as_tensor()),
        class_weights=balancer.as_tensor(),
        num_classes=cfg.model.num_classes,
        lr=float(cfg.optim.lr),
    )


# ---------------------------------------------------------------- language model

class LitCharLM(pl.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.tok = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size)


class LitCharLMPlain(pl.LightningModule):
    def __init__(self, cfg, ema_decay=0.999, swa_epoch_start=2):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.ema_decay = ema_decay
        self.swa_epoch_start = swa_epoch_start
        self.tok = nn.Embedding(cfg["vocab_size"], cfg["n_embd"])
        self.head = nn.Linear(cfg["n_embd"], cfg["vocab_size"])


class LitEmaLM(pl.LightningModule):
    def __init__(
        self,
        vocab_size: int = 32,
        n_embd: int = 16,
        ema_decay=0.999,  # truth: hparam
        ema_decay_float: float = 0.999,
        warmup_steps: int = 10,
        lr_lambda=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.tok = nn.Embedding(vocab_size, n_embd)
        self.head = nn.Linear(n_embd, vocab_size)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self.hparams.lr_lambda)
        return [opt], [sched]


def build_lm(cfg):
    return LitCharLM(cfg.lm)


def build_lm_plain(cfg):
    return LitCharLMPlain(OmegaConf.to_container(cfg.lm, resolve=True), swa_epoch_start=int(cfg.trainer.max_epochs) - 1)


def build_ema_lm(cfg):
    ema = EmaSchedule(half_life_steps=100, warmup=5)
    return LitEmaLM(
        vocab_size=cfg.lm.vocab_size,
        n_embd=cfg.lm.n_embd,
        ema_decay=ema.decay(),
        ema_decay_float=ema.decay_float(),
        warmup_steps=ema.warmup,
        lr_lambda=lambda step: min(1.0, (step + 1) / ema.warmup),
    )


# ---------------------------------------------------------------- tabular regressor

class LitRegressor(pl.LightningModule):
    def __init__(
        self,
        n_features: int,
        feature_names: list,
        target_mean: float,
        target_std: float,
        feature_mean: list,
        feature_scale: torch.Tensor,
        log_dir,  # truth: hparam
        hidden: int = 16,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.register_buffer("mu", torch.as_tensor(feature_mean, dtype=torch.float32))


def make_table(n=50, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    frame["y"] = frame.a * 2 - frame.b + rng.normal(0, 0.1, n)
    return frame


def build_regressor(args):
    frame = make_table()
    stats = TargetStats().fit(frame)
    return LitRegressor(
        n_features=len(stats.scaler.feature_names_in_),
        feature_names=stats.scaler.feature_names_in_.tolist(),
        target_mean=float(stats.mean),
        target_std=stats.std,
        feature_mean=stats.scaler.mean_.tolist(),
        feature_scale=torch.from_numpy(stats.scaler.scale_).float(),
        log_dir=args.log_dir / "regressor",
        hidden=args.hidden,
    )


class LitArgsModel(pl.LightningModule):
    """The argparse style: the module receives the whole Namespace."""

    def __init__(self, args):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(args)
        self.net = nn.Linear(3, args.hidden)


class LitArgsModelClean(pl.LightningModule):
    def __init__(self, args):
        super().__init__()
        self.save_hyperparameters(args)
        self.net = nn.Linear(3, args.hidden)


def parse_args(argv=()):
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--log_dir", type=Path, default=Path("lightning_logs"))
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(list(argv))


def plain_args(argv=()):
    args = parse_args(argv)
    args.log_dir = str(args.log_dir)
    return args


# ---------------------------------------------------------------- forecaster

class LitForecaster(pl.LightningModule):
    def __init__(
        self,
        config: ForecastConfig,  # truth: hparam
        scaling=Scaling.STANDARD,  # truth: hparam
        quantiles=(0.1, 0.5, 0.9),  # truth: hparam
        scaling_name: str = "standard",
        loss=smooth_l1,  # truth: hparam
        horizon: int = 6,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(config.context, config.hidden), nn.ReLU(),
                                 nn.Linear(config.hidden, horizon * len(quantiles)))


class LitForecasterFlat(pl.LightningModule):
    def __init__(self, context=12, horizon=6, hidden=16, dropout=0.1, quantiles=(0.5,), extra=None,
                 scaling="standard", optimizer="adamw"):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(context, horizon * len(quantiles))


def build_forecaster(cfg):
    fc = ForecastConfig(context=cfg.data.context, horizon=cfg.data.horizon, quantiles=tuple(cfg.data.quantiles))
    return LitForecaster(
        config=fc,
        scaling=Scaling.ROBUST,
        quantiles=cfg.data.quantiles,
        scaling_name=Scaling.ROBUST.value,
        loss=smooth_l1,
        horizon=cfg.data.horizon,
    )


def build_forecaster_flat(cfg):
    fc = ForecastConfig(context=cfg.data.context, horizon=cfg.data.horizon, quantiles=tuple(cfg.data.quantiles))
    return LitForecasterFlat(**dataclasses.asdict(fc), scaling=Scaling.ROBUST.value)


FACTORIES = {
    "Scaling": lambda: Scaling.ROBUST,
    "ClassBalancer": lambda: ClassBalancer().fit(fake_labels()),
    "TargetStats": lambda: TargetStats().fit(make_table()),
    "LitClassifier": lambda: build_classifier(load_cfg()),
    "LitClassifierIgnored": lambda: build_classifier_ignored(load_cfg()),
    "LitCharLM": lambda: build_lm(load_cfg()),
    "LitCharLMPlain": lambda: build_lm_plain(load_cfg()),
    "LitEmaLM": lambda: build_ema_lm(load_cfg()),
    "LitRegressor": lambda: build_regressor(parse_args()),
    "LitArgsModel": lambda: LitArgsModel(parse_args(["--hidden", "8"])),
    "LitArgsModelClean": lambda: LitArgsModelClean(plain_args(["--hidden", "8"])),
    "LitForecaster": lambda: build_forecaster(load_cfg()),
    "LitForecasterFlat": lambda: build_forecaster_flat(load_cfg()),
}
