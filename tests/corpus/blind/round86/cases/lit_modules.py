"""LightningModules and DataModules shared by the theft-detection, secondary-structure and
drone-landing projects.

Nothing here is built by hand: the `build_*` helpers at the bottom create every module from the
kind of config its project uses (pandas frames for theft detection, a preset registry for the
secondary-structure models, OmegaConf / argparse / dataclasses for the landing controllers).
"""
import argparse
import dataclasses
import enum
import functools
import math
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


# ============================================================== electricity theft

def toy_daily_kwh(n_meters=40, n_days=28, seed=0):
    rng = np.random.default_rng(seed)
    days = pd.date_range("2023-01-02", periods=n_days, freq="D")
    season = 1 + 0.2 * np.sin(np.arange(n_days) / 7 * 2 * np.pi)
    base = rng.gamma(3.0, 2.0, size=(n_meters, 1)) * season * rng.lognormal(0, 0.1, (n_meters, n_days))
    daily = pd.DataFrame(base, columns=days, index=[f"M{i:04d}" for i in range(n_meters)])
    labels = pd.Series((np.arange(n_meters) % 5 == 0).astype(int), index=daily.index, name="theft")
    daily.loc[labels == 1, days[n_days // 2:]] *= 0.3
    return daily, labels


def summary_features(daily):
    X = daily.to_numpy()
    return pd.DataFrame({"mean": X.mean(1), "std": X.std(1), "min": X.min(1),
                         "late_ratio": X[:, -7:].mean(1) / X[:, :7].mean(1)}, index=daily.index)


class MeterCNNModule(pl.LightningModule):
    """1-D CNN over one meter's daily consumption; target 1 = theft."""

    def __init__(
        self,
        n_days: int = 28,
        channels: int = 16,
        lr: float = 1e-3,
        pos_weight: float = 1.0,  # truth: hparam
        feature_means: torch.Tensor = None,
    ):
        super().__init__()
        lr = float(lr)  # learning-rate sweeps hand in numpy floats
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Conv1d(1, channels, 5, padding=2), nn.ReLU(),
                                 nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(channels, 1))
        self.register_buffer("center", feature_means if feature_means is not None else torch.zeros(n_days))
        self.loss = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([float(pos_weight)]))

    def forward(self, x):
        return self.net((x - self.center).unsqueeze(1)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x), y.float())
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class MeterAutoencoderModule(pl.LightningModule):
    """Unsupervised: reconstruction error of the (scaled) daily series is the theft score."""

    def __init__(
        self,
        n_days: int = 28,
        latent: int = 8,
        scaler: StandardScaler = None,
        threshold_quantile: float = 0.99,
        export_dir: str = "exports/meter_ae",  # truth: hparam
    ):
        super().__init__()
        export_dir = Path(export_dir).expanduser()
        self.save_hyperparameters(ignore=["scaler"])
        self.scaler = scaler
        self.encoder = nn.Sequential(nn.Linear(n_days, 16), nn.ReLU(), nn.Linear(16, latent))
        self.decoder = nn.Sequential(nn.Linear(latent, 16), nn.ReLU(), nn.Linear(16, n_days))

    def forward(self, x):
        return self.decoder(self.encoder(x))

    def training_step(self, batch, batch_idx):
        x = batch[0]
        return nn.functional.mse_loss(self(x), x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class TheftTabularModule(pl.LightningModule):
    """MLP over hand-made per-meter features."""

    def __init__(
        self,
        feature_names: list,
        hidden: tuple = (64, 32),
        dropout: float = 0.2,
        lr: float = 2e-3,
        loss_fn: nn.Module = nn.BCEWithLogitsLoss(),  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        dims = [len(feature_names), *hidden]
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(dropout)]
        self.mlp = nn.Sequential(*layers, nn.Linear(dims[-1], 1))
        self.loss_fn = loss_fn

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self.mlp(x).squeeze(-1), y.float())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


@dataclasses.dataclass
class GRUConfig:
    n_days: int = 28
    hidden: int = 32
    layers: int = 1
    bidirectional: bool = True
    lr: float = 1e-3


class TheftGRUModule(pl.LightningModule):
    def __init__(
        self,
        cfg: GRUConfig,
    ):
        super().__init__()
        self.save_hyperparameters(dataclasses.asdict(cfg))
        self.gru = nn.GRU(1, cfg.hidden, cfg.layers, batch_first=True, bidirectional=cfg.bidirectional)
        self.head = nn.Linear(cfg.hidden * (2 if cfg.bidirectional else 1), 1)

    def forward(self, x):
        out, _ = self.gru(x.unsqueeze(-1))
        return self.head(out[:, -1]).squeeze(-1)


class MeterDataModule(pl.LightningDataModule):
    def __init__(self, data_dir: str = "data/sgcc", batch_size: int = 32, window_days: int = 28,
                 val_fraction: float = 0.2, num_workers: int = 0, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        daily, labels = toy_daily_kwh(n_days=self.hparams.window_days, seed=self.hparams.seed)
        X = torch.tensor(daily.to_numpy(), dtype=torch.float32)
        y = torch.tensor(labels.to_numpy())
        n_val = int(len(X) * self.hparams.val_fraction)
        self.train_set = TensorDataset(X[n_val:], y[n_val:])
        self.val_set = TensorDataset(X[:n_val], y[:n_val])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True,
                          num_workers=self.hparams.num_workers)


THEFT_MODELS = {"cnn": MeterCNNModule, "ae": MeterAutoencoderModule, "tabular": TheftTabularModule}


def build_theft_module(kind, daily, labels, **overrides):
    if kind == "cnn":
        kwargs = dict(n_days=daily.shape[1],
                      lr=np.logspace(-4, -2, 5)[2],
                      pos_weight=(labels == 0).sum() / labels.sum(),
                      feature_means=torch.tensor(daily.mean(axis=0).to_numpy(), dtype=torch.float32))
    elif kind == "ae":
        kwargs = dict(n_days=daily.shape[1], scaler=StandardScaler().fit(daily.to_numpy()),
                      threshold_quantile=1.0 - labels.mean().item())
    else:
        kwargs = dict(feature_names=summary_features(daily).columns.tolist())
    kwargs.update(overrides)
    return THEFT_MODELS[kind](**kwargs)


# ============================================================== protein secondary structure

class LabelScheme(enum.Enum):
    Q3 = "q3"
    Q8 = "q8"


SS_REGISTRY = {}


def register(name):
    def deco(cls):
        SS_REGISTRY[name] = cls
        return cls
    return deco


@register("bigru")
class ProteinSSModule(pl.LightningModule):
    def __init__(
        self,
        n_features: int = 40,
        hidden: int = 64,
        n_classes: int = 3,
        lr: float = 1e-3,
        label_scheme: LabelScheme = LabelScheme.Q3,  # truth: hparam
        class_weights: torch.Tensor = None,
        input_proj: nn.Module = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["input_proj"])
        self.input_proj = input_proj or nn.Linear(n_features, hidden)
        self.encoder = nn.GRU(hidden, hidden // 2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(hidden, n_classes)
        self.criterion = nn.CrossEntropyLoss(weight=class_weights, ignore_index=-100)

    def forward(self, x):
        h, _ = self.encoder(self.input_proj(x))
        return self.head(h)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        return self.criterion(logits.flatten(0, 1), y.flatten())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def warmup_cosine(step, warmup, total):
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


@register("focal")
class FocalProteinSSModule(ProteinSSModule):
    """Focal loss for the rare Q8 states (I, B) with a warm-up cosine schedule."""

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: list = None,
        lr_lambda=None,  # truth: hparam
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.gamma = gamma
        self.lr_lambda = lr_lambda

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x).flatten(0, 1)
        ce = nn.functional.cross_entropy(logits, y.flatten(), reduction="none", ignore_index=-100)
        return ((1 - torch.exp(-ce)) ** self.gamma * ce).mean()

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.LambdaLR(opt, self.lr_lambda)]


@register("transformer")
class ResidueTransformerModule(pl.LightningModule):
    def __init__(
        self,
        n_features: int = 40,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        dropout: float = 0.1,
        activation: type = nn.GELU,  # truth: hparam
        n_classes: int = 3,
        max_len: int = 512,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Linear(n_features, d_model)
        self.pos = nn.Parameter(torch.zeros(1, max_len, d_model))
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, dropout,
                                           activation=activation(), batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x) + self.pos[:, : x.shape[1]]))


class Q8ProteinModule(pl.LightningModule):
    """Eight-state head on top of a (possibly pretrained) residue encoder."""

    def __init__(
        self,
        n_classes: int,  # truth: hparam
        lr: float = 1e-3,
        hidden: int = 48,
        state_names: str = "HGIEBTSC",
        encoder: nn.Module = None,
    ):
        super().__init__()
        self.save_hyperparameters("n_classes", "lr", "hidden")
        self.encoder = encoder or nn.Sequential(nn.Linear(40, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, int(n_classes))
        self.state_names = state_names

    def forward(self, x):
        return self.head(self.encoder(x))


def pad_batch(items):
    xs, ys = zip(*items)
    x = nn.utils.rnn.pad_sequence(xs, batch_first=True)
    y = nn.utils.rnn.pad_sequence(ys, batch_first=True, padding_value=-100)
    return x, y


class ProteinDataModule(pl.LightningDataModule):
    def __init__(self, records: list = None, tokenizer: dict = None, max_len: int = 512,
                 batch_size: int = 8, collate_fn=pad_batch):
        super().__init__()
        self.save_hyperparameters(ignore=["records", "collate_fn"])
        self.records = records or []
        self.collate_fn = collate_fn

    def train_dataloader(self):
        return DataLoader(self.records, batch_size=self.hparams.batch_size, collate_fn=self.collate_fn)


SS_PRESETS = {
    "bigru_q3": {"arch": "bigru", "hidden": 64},
    "focal_q8": {"arch": "focal", "n_classes": 8, "label_scheme": LabelScheme.Q8, "gamma": 2.0},
    "transformer_q3": {"arch": "transformer", "d_model": 32, "n_heads": 4, "n_layers": 1},
}


def build_ss_module(preset, q8_labels=None, total_steps=2000):
    spec = dict(SS_PRESETS[preset])
    cls = SS_REGISTRY[spec.pop("arch")]
    if q8_labels is not None and cls is FocalProteinSSModule:
        freq = np.bincount(q8_labels, minlength=8) + 1
        spec["alpha"] = (freq.sum() / (8 * freq)).tolist()
        spec["lr_lambda"] = functools.partial(warmup_cosine, warmup=total_steps // 20, total=total_steps)
    elif q8_labels is not None:
        freq = np.bincount(q8_labels, minlength=3)[:3] + 1
        spec["class_weights"] = torch.tensor(freq.sum() / (3 * freq), dtype=torch.float32)
    return cls(**spec)


def build_q8_module(q8_labels, pretrained=None):
    return Q8ProteinModule(n_classes=q8_labels.max() + 1, lr=5e-4, encoder=pretrained)


# ============================================================== drone landing

BC_YAML = """
model:
  obs_dim: 4
  act_dim: 2
  hidden: [64, 64]
  dropout: 0.0
optim:
  lr: 1.0e-3
  weight_decay: 1.0e-5
data:
  demos: data/mpc_landing_demos.npz
  batch_size: 256
  val_fraction: 0.1
"""


class DroneBCModule(pl.LightningModule):
    """Behaviour cloning of an MPC landing controller from logged demonstrations."""

    def __init__(
        self,
        cfg: DictConfig,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        sizes = [cfg.model.obs_dim, *cfg.model.hidden]
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.Tanh()]
        self.policy = nn.Sequential(*layers, nn.Linear(sizes[-1], cfg.model.act_dim), nn.Tanh())

    def training_step(self, batch, batch_idx):
        obs, act = batch
        return nn.functional.mse_loss(self.policy(obs), act)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.optim.lr,
                                weight_decay=self.hparams.optim.weight_decay)


class DroneCriticModule(pl.LightningModule):
    """Offline value estimate of landing states (fitted Q evaluation on logged flights)."""

    def __init__(
        self,
        config: dict,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(config)
        self.q = nn.Sequential(nn.Linear(6, config["hidden"]), nn.ReLU(), nn.Linear(config["hidden"], 1))
        self.q_target = nn.Sequential(nn.Linear(6, config["hidden"]), nn.ReLU(), nn.Linear(config["hidden"], 1))
        self.q_target.load_state_dict(self.q.state_dict())

    def configure_optimizers(self):
        return torch.optim.Adam(self.q.parameters(), lr=self.hparams.lr)


def build_bc_parser():
    p = argparse.ArgumentParser()
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--demos", type=str, default="data/mpc_landing_demos.npz")
    p.add_argument("--wind", choices=["calm", "steady", "gusty"], default="gusty")
    p.add_argument("--epochs", type=int, default=20)
    return p


class LandingPolicyModule(pl.LightningModule):
    def __init__(
        self,
        args: argparse.Namespace,
        obs_dim: int = 4,
        act_dim: int = 2,
    ):
        super().__init__()
        self.save_hyperparameters(args)
        self.net = nn.Sequential(nn.Linear(obs_dim, args.hidden), nn.ReLU(), nn.Linear(args.hidden, act_dim))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


@dataclasses.dataclass
class LanderConfig:
    obs_dim: int = 4
    act_dim: int = 2
    hidden: int = 64
    lr: float = 3e-4
    wind: str = "gusty"
    horizon: int = 20


class WindAwareLanderModule(pl.LightningModule):
    """Policy conditioned on an estimated wind vector (estimator GRU over the last `horizon` steps)."""

    def __init__(
        self,
        cfg: LanderConfig,  # truth: hparam
        wind_profile: str = "gusty",
        wind_dim: int = 2,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.wind_estimator = nn.GRU(cfg.obs_dim + cfg.act_dim, wind_dim, batch_first=True)
        self.policy = nn.Sequential(nn.Linear(cfg.obs_dim + wind_dim, cfg.hidden), nn.ReLU(),
                                    nn.Linear(cfg.hidden, cfg.act_dim), nn.Tanh())


class LandingDemoDataModule(pl.LightningDataModule):
    def __init__(self, cfg: DictConfig):
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg.data, resolve=True))
        self.cfg = cfg

    def setup(self, stage=None):
        rng = np.random.default_rng(0)
        obs = torch.tensor(rng.normal(size=(512, self.cfg.model.obs_dim)), dtype=torch.float32)
        self.demos = TensorDataset(obs, torch.tanh(obs[:, : self.cfg.model.act_dim]))

    def train_dataloader(self):
        return DataLoader(self.demos, batch_size=self.hparams.batch_size, shuffle=True)


TRAIN_PRESETS = {
    "critic_small": {"hidden": 64, "lr": 3e-4, "gamma": 0.99, "demos": Path("data/landing_flights.npz")},
}


def build_lander(overrides=()):
    base = OmegaConf.structured(LanderConfig)
    cfg = OmegaConf.to_object(OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides))))
    return WindAwareLanderModule(cfg, wind_profile=cfg.wind)


# ============================================================== how the projects build them

_DAILY, _LABELS = toy_daily_kwh()
_Q8 = np.random.default_rng(1).integers(0, 8, size=300)

FACTORIES = {
    "MeterCNNModule": lambda: build_theft_module("cnn", _DAILY, _LABELS),
    "MeterAutoencoderModule": lambda: build_theft_module("ae", _DAILY, _LABELS),
    "TheftTabularModule": lambda: build_theft_module("tabular", _DAILY, _LABELS, hidden=(32,)),
    "TheftGRUModule": lambda: TheftGRUModule(GRUConfig(n_days=_DAILY.shape[1])),
    "MeterDataModule": lambda: MeterDataModule(batch_size=16),
    "ProteinSSModule": lambda: build_ss_module("bigru_q3", q8_labels=_Q8 % 3),
    "FocalProteinSSModule": lambda: build_ss_module("focal_q8", q8_labels=_Q8, total_steps=500),
    "ResidueTransformerModule": lambda: build_ss_module("transformer_q3"),
    "Q8ProteinModule": lambda: build_q8_module(_Q8),
    "ProteinDataModule": lambda: ProteinDataModule(tokenizer={aa: i for i, aa in enumerate("ACDEFGHIKLMNPQRSTVWY")}),
    "DroneBCModule": lambda: DroneBCModule(OmegaConf.create(BC_YAML)),
    "DroneCriticModule": lambda: DroneCriticModule(dict(TRAIN_PRESETS["critic_small"])),
    "LandingPolicyModule": lambda: LandingPolicyModule(build_bc_parser().parse_args(["--hidden", "32"])),
    "WindAwareLanderModule": lambda: build_lander(["hidden=32"]),
    "LandingDemoDataModule": lambda: LandingDemoDataModule(OmegaConf.create(BC_YAML)),
    "LabelScheme": lambda: LabelScheme.Q8,
}
