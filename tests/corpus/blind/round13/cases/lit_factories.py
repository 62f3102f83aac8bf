"""Lightning modules for forecasting and recommendation, built by a registry from a YAML-style config."""
import argparse
import datetime
import enum
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import lightning as L
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from sklearn.preprocessing import MinMaxScaler
from torch import nn

BASE_CONFIG = """
data:
  root: data/electricity
  freq: h
  input_size: 24
  horizon: 6
model:
  name: nbeats
  hidden: [32, 32]
  dropout: 0.1
optim:
  lr: 0.001
  weight_decay: 0.0001
rec:
  emb_dim: 16
  loss: bpr
  num_neg: 4
"""


def load_config(overrides=()):
    cfg = OmegaConf.create(BASE_CONFIG)
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))


class LossType(enum.Enum):
    BPR = "bpr"
    BCE = "bce"
    SOFTMAX = "softmax"


NOT_BUILT = {"LossType": "an Enum: members are looked up by value"}


@dataclass
class WindowSpec:
    input_size: int = 24
    horizon: int = 6
    freq: str = "h"


@dataclass
class OptimSpec:
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: Sequence[float] = field(default_factory=lambda: (0.9, 0.999))


def interactions():
    rng = np.random.default_rng(7)
    return pd.DataFrame({"user_id": rng.integers(0, 40, 200), "item_id": rng.integers(0, 90, 200)})


def series():
    idx = pd.date_range("2024-01-01", periods=96, freq="h")
    return pd.DataFrame({"y": np.linspace(1.0, 2.0, 96)}, index=idx)


class LitNBeats(L.LightningModule):
    def __init__(
        self,
        input_size: int,
        horizon: int,
        hidden_sizes,  # truth: hparam
        dropout: float,
        window: WindowSpec,  # truth: hparam
        lr: float = 1e-3,
        loss_fn: nn.Module = nn.SmoothL1Loss(),  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        layers, d = [], input_size
        for h in hidden_sizes:
            layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout)]
            d = h
        self.backbone = nn.Sequential(*layers, nn.Linear(d, horizon))
        self.loss_fn = loss_fn

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self.backbone(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def build_nbeats(cfg: DictConfig):
    return LitNBeats(
        input_size=cfg.data.input_size,
        horizon=cfg.data.horizon,
        hidden_sizes=cfg.model.hidden,
        dropout=cfg.model.dropout,
        window=WindowSpec(cfg.data.input_size, cfg.data.horizon, cfg.data.freq),
        lr=cfg.optim.lr,
    )


class LitConfigForecaster(L.LightningModule):
    def __init__(self, cfg: DictConfig):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = nn.Linear(cfg.data.input_size, cfg.data.horizon)

    def forward(self, x):
        return self.net(x)


class LitPlainConfigForecaster(L.LightningModule):
    """The same model, with the config flattened to builtins before it reaches the module."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = nn.Linear(cfg["data"]["input_size"], cfg["data"]["horizon"])


class LitScaledForecaster(L.LightningModule):
    def __init__(
        self,
        input_size: int,
        horizon: int,
        scaler: MinMaxScaler,  # truth: hparam
        target_mean: float,  # truth: hparam
        last_train_time,  # truth: hparam
        max_time: datetime.timedelta,  # truth: hparam
        inverse_transform: Optional[Callable] = None,  # truth: hparam
        freq: str = "h",
        data_root: str = "data",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.GRU(1, 8, batch_first=True)
        self.head = nn.Linear(8, horizon)


def build_scaled_forecaster(cfg: DictConfig):
    df = series()
    train = df.iloc[:-cfg.data.horizon]
    scaler = MinMaxScaler().fit(train[["y"]])
    lo, hi = float(scaler.data_min_[0]), float(scaler.data_max_[0])
    return LitScaledForecaster(
        input_size=cfg.data.input_size,
        horizon=cfg.data.horizon,
        scaler=scaler,
        target_mean=train["y"].mean(),
        last_train_time=train.index.max(),
        max_time=datetime.timedelta(hours=2),
        inverse_transform=lambda y: y * (hi - lo) + lo,
        freq=pd.infer_freq(train.index),
        data_root=str(Path(cfg.data.root) / "processed"),
    )


class LitMatrixFactorization(L.LightningModule):
    def __init__(
        self,
        num_users: int,
        num_items: int,  # truth: hparam
        emb_dim: int,
        loss: LossType,  # truth: hparam
        data_dir: Path,  # truth: hparam
        num_neg: int = 4,
        item_popularity: Optional[torch.Tensor] = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.user_emb = nn.Embedding(num_users, emb_dim)
        self.item_emb = nn.Embedding(num_items, emb_dim)

    def forward(self, u, i):
        return (self.user_emb(u) * self.item_emb(i)).sum(-1)


def build_mf(cfg: DictConfig):
    df = interactions()
    counts = df["item_id"].value_counts().sort_index()
    return LitMatrixFactorization(
        num_users=df["user_id"].nunique(),
        num_items=df["item_id"].max() + 1,
        emb_dim=cfg.rec.emb_dim,
        loss=LossType(cfg.rec.loss),
        data_dir=Path(cfg.data.root).parent / "ml-100k",
        num_neg=cfg.rec.num_neg,
        item_popularity=torch.tensor(counts.to_numpy(), dtype=torch.float32),
    )


class LitTwoTower(L.LightningModule):
    def __init__(
        self,
        user_tower: nn.Module,
        item_tower: nn.Module,
        num_items: int,
        loss: str = "softmax",
        temperature: float = 0.05,
        data_dir: str = "data",
        hidden: Sequence[int] = (32,),
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["user_tower", "item_tower"])
        self.user_tower = user_tower
        self.item_tower = item_tower


def build_two_tower(cfg: DictConfig):
    df = interactions()
    d = cfg.rec.emb_dim
    return LitTwoTower(
        user_tower=nn.Sequential(nn.Embedding(64, d), nn.Linear(d, d)),
        item_tower=nn.Sequential(nn.Embedding(128, d), nn.Linear(d, d)),
        num_items=int(df["item_id"].max()) + 1,
        loss=LossType.SOFTMAX.value,
        temperature=float(np.float32(0.05)),
        data_dir=str(Path(cfg.data.root)),
        hidden=list(cfg.model.hidden),
    )


class LitSeqRec(L.LightningModule):
    def __init__(
        self,
        args: argparse.Namespace,  # truth: hparam
        item_encoder: nn.Module,
        optim: OptimSpec,  # truth: hparam
        max_len: int = 20,
    ):
        super().__init__()
        self.save_hyperparameters(ignore="item_encoder")
        self.item_encoder = item_encoder
        self.pos_emb = nn.Embedding(max_len, 8)


class LitSeqRecFlat(L.LightningModule):
    def __init__(self, item_encoder: nn.Module, max_len: int = 20, **kwargs):
        super().__init__()
        self.save_hyperparameters(ignore=["item_encoder"])
        self.item_encoder = item_encoder
        self.pos_emb = nn.Embedding(max_len, 8)


def parse_rec_args(argv=()):
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="ml-1m")
    p.add_argument("--max-len", type=int, default=20)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=1e-3)
    return p.parse_args(list(argv))


def build_seqrec():
    args = parse_rec_args()
    return LitSeqRec(args, nn.Embedding(50, 8), OptimSpec(lr=args.lr), max_len=args.max_len)


def build_seqrec_flat():
    args = parse_rec_args()
    optim = OptimSpec(lr=args.lr, weight_decay=1e-5)
    return LitSeqRecFlat(nn.Embedding(50, 8), optim=asdict(optim), **vars(args))


class LitNamedHparams(L.LightningModule):
    def __init__(
        self,
        encoder: nn.Module,
        horizon: int,
        quantiles: np.ndarray,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters("horizon", "lr")
        self.encoder = encoder
        self.register_buffer("q", torch.as_tensor(quantiles, dtype=torch.float32))


MODEL_REGISTRY = {
    "nbeats": build_nbeats,
    "scaled": build_scaled_forecaster,
    "mf": build_mf,
    "two_tower": build_two_tower,
}


def build_model(name, overrides=()):
    return MODEL_REGISTRY[name](load_config(overrides))


FACTORIES = {
    "LitNBeats": lambda: build_model("nbeats"),
    "LitConfigForecaster": lambda: LitConfigForecaster(load_config(["data.horizon=12"])),
    "LitPlainConfigForecaster": lambda: LitPlainConfigForecaster(
        OmegaConf.to_container(load_config(), resolve=True)),
    "LitScaledForecaster": lambda: build_model("scaled"),
    "LitMatrixFactorization": lambda: build_model("mf"),
    "LitTwoTower": lambda: build_model("two_tower"),
    "LitSeqRec": build_seqrec,
    "LitSeqRecFlat": build_seqrec_flat,
    "LitNamedHparams": lambda: LitNamedHparams(nn.Linear(4, 4), 6, np.array([0.1, 0.5, 0.9])),
}
