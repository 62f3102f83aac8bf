"""LightningModules and DataModules for the three production models.

Every model is built by `build_*` from an OmegaConf experiment config and the statistics that its
DataModule computes on the training split; encoders, activations and norms come from small
registries so that configs only carry names.
"""
import functools
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import yaml
from omegaconf import OmegaConf
from sklearn.preprocessing import StandardScaler


class Registry:
    def __init__(self, name="registry"):
        self.name = name
        self._items = {}

    def register(self, key, obj=None):
        if obj is not None:
            self._items[key] = obj
            return obj
        return lambda o: self.register(key, o)

    def get(self, key):
        if key not in self._items:
            raise KeyError(f"unknown {self.name} {key!r}; known: {sorted(self._items)}")
        return self._items[key]

    def build(self, key, **kwargs):
        return self.get(key)(**kwargs)


ENCODERS = Registry("encoder")
NORMS = Registry("norm")
ACTIVATIONS = Registry("activation")
NORMS.register("layernorm", functools.partial(nn.LayerNorm, eps=1e-6))
NORMS.register("none", nn.Identity)
ACTIVATIONS.register("relu", nn.ReLU)
ACTIVATIONS.register("leaky", lambda: nn.LeakyReLU(0.1))


@ENCODERS.register("gru")
class GRUEncoder(nn.Module):
    def __init__(self, n_in=9, hidden=32, layers=1):
        super().__init__()
        self.rnn = nn.GRU(n_in, hidden, num_layers=layers, batch_first=True)
        self.out_dim = hidden

    def forward(self, x):
        return self.rnn(x)[1][-1]


@ENCODERS.register("conv")
class ConvEncoder(nn.Module):
    def __init__(self, n_in=9, hidden=32, layers=2):
        super().__init__()
        blocks = [nn.Conv1d(n_in if i == 0 else hidden, hidden, 3, padding=1) for i in range(layers)]
        self.net = nn.Sequential(*[m for b in blocks for m in (b, nn.GELU())])
        self.out_dim = hidden

    def forward(self, x):
        return self.net(x.transpose(1, 2)).mean(-1)


# ------------------------------------------------------------------ transients

ASTRO_CFG = OmegaConf.create("""
encoder: {name: gru, hidden: 32, layers: 1}
model: {lr: 0.002, weight_decay: 0.0001, label_smoothing: 0.05, norm: layernorm}
data: {n_objects: 48, max_len: 32, batch_size: 16}
""")
PASSBANDS = ("u", "g", "r", "i", "z", "y")


class LightCurveDataModule(L.LightningDataModule):
    def __init__(self, n_objects=48, max_len=32, batch_size=16, seed=0, val_fraction=0.25, num_workers=0):
        super().__init__()
        self.save_hyperparameters()
        rng = np.random.default_rng(seed)
        self.labels = rng.integers(0, 6, n_objects)
        self.flux = rng.lognormal(3.0, 1.0, (n_objects, max_len)).astype(np.float32)

    def flux_scale(self):
        return np.nanpercentile(self.flux, 99)

    def class_counts(self):
        return np.bincount(self.labels, minlength=6).tolist()


class LightCurveClassifier(L.LightningModule):
    def __init__(
        self,
        encoder,  # truth: hparam
        n_classes=6,
        class_weights=None,  # truth: hparam
        flux_scale=1.0,  # truth: hparam
        norm_layer=nn.Identity,  # truth: hparam
        lr=1e-3,
        weight_decay=1e-4,
        passbands=PASSBANDS,
        label_smoothing=0.0,
        max_len=32,
    ):
        super().__init__()
        if class_weights is not None:
            class_weights = np.asarray(class_weights, dtype=np.float32)
        self.save_hyperparameters()
        self.encoder = encoder
        self.norm = norm_layer(encoder.out_dim)
        self.head = nn.Linear(encoder.out_dim, n_classes)
        w = torch.ones(n_classes) if class_weights is None else torch.from_numpy(class_weights)
        self.register_buffer("class_weights", w)
        self.flux_scale = float(flux_scale)

    def forward(self, x):
        x = torch.cat([x[..., :1] / self.flux_scale, x[..., 1:]], dim=-1)
        return self.head(self.norm(self.encoder(x)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y, weight=self.class_weights,
                                           label_smoothing=self.hparams.label_smoothing)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class LightCurveAutoencoder(L.LightningModule):
    """Self-supervised pretraining of the encoder on unlabelled alerts."""

    def __init__(self, encoder, latent_dim=16, lr=1e-3, mask_ratio=0.3, flux_scale=1.0):
        super().__init__()
        self.save_hyperparameters("latent_dim", "lr", "mask_ratio")
        self.encoder = encoder
        self.to_latent = nn.Linear(encoder.out_dim, latent_dim)
        self.decoder = nn.Linear(latent_dim, 32)
        self.flux_scale = float(flux_scale)

    def training_step(self, batch, batch_idx):
        x = batch[0]
        keep = torch.rand(x.shape[:2]) > self.hparams.mask_ratio
        recon = self.decoder(self.to_latent(self.encoder(x * keep.unsqueeze(-1))))
        return nn.functional.mse_loss(recon, x[..., 0] / self.flux_scale)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def build_lightcurve_module(cfg, dm):
    enc = ENCODERS.build(cfg.encoder.name, n_in=3 + len(PASSBANDS), hidden=cfg.encoder.hidden,
                         layers=cfg.encoder.layers)
    counts = np.asarray(dm.class_counts(), dtype=float)
    weights = (counts.sum() / np.maximum(counts, 1) / len(counts)).tolist()
    return LightCurveClassifier(
        encoder=enc,
        n_classes=len(counts),
        class_weights=weights,
        flux_scale=dm.flux_scale(),
        norm_layer=NORMS.get(cfg.model.norm),
        lr=cfg.model.lr,
        weight_decay=cfg.model.weight_decay,
        label_smoothing=cfg.model.label_smoothing,
        max_len=dm.hparams.max_len,
    )


def build_pretrainer(cfg, dm):
    enc = ENCODERS.build("conv", n_in=3 + len(PASSBANDS), hidden=cfg.encoder.hidden)
    return LightCurveAutoencoder(enc, latent_dim=16, lr=cfg.model.lr, flux_scale=dm.flux_scale())


# ------------------------------------------------------------------ player tracking

@dataclass
class Pitch:
    length: float = 105.0
    width: float = 68.0


TRACKING_CFG = OmegaConf.create({"model": {"seq_in": 12, "seq_out": 8, "hidden": 32, "base_lr": 1e-3,
                                           "dropout": 0.1, "activation": "leaky", "formation": "4-3-3"},
                                 "data": {"n_matches": 2, "batch_size": 128, "fps": "30000/1001"}})


class TrackingDataModule(L.LightningDataModule):
    def __init__(self, n_matches=2, seq_in=12, seq_out=8, batch_size=128, pitch_length=105.0, pitch_width=68.0):
        super().__init__()
        self.save_hyperparameters()
        rng = np.random.default_rng(n_matches)
        steps = rng.normal(0, 0.3, (n_matches * 22, 200, 2))
        self.xy = np.cumsum(steps, axis=1) + [pitch_length / 2, pitch_width / 2]
        self.teams = ["ARS", "CHE", "LIV", "MCI"][: 2 * n_matches]

    def position_scaler(self):
        return StandardScaler().fit(self.xy.reshape(-1, 2))


class TrajectoryForecaster(L.LightningModule):
    def __init__(
        self,
        pitch,  # truth: hparam
        formation="4-3-3",
        fps=25,  # truth: hparam
        seq_in=12,
        seq_out=8,
        hidden=32,
        lr=1e-3,
        teams=None,  # truth: hparam
        act_layer=nn.ReLU,  # truth: hparam
        dropout=0.1,
        pos_mean=(0.0, 0.0),
        pos_std=(1.0, 1.0),
    ):
        super().__init__()
        lr = float(lr)
        self.save_hyperparameters()
        self.team_index = {t: i for i, t in enumerate(sorted(teams or ()))}
        self.dt = 1.0 / float(fps)
        self.encoder = nn.GRU(2, hidden, batch_first=True)
        self.team_emb = nn.Embedding(max(len(self.team_index), 1), hidden)
        self.head = nn.Sequential(nn.Dropout(dropout), act_layer(), nn.Linear(hidden, 2 * seq_out))
        self.register_buffer("mean", torch.tensor(pos_mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(pos_std, dtype=torch.float32))

    def forward(self, past, team):
        z = (past - self.mean) / self.std
        h = self.encoder(z)[1][-1] + self.team_emb(team)
        return past[:, -1:, :] + self.head(h).view(len(past), -1, 2) * self.std

    def training_step(self, batch, batch_idx):
        past, fut, team = batch
        ade = (self(past, team) - fut).norm(dim=-1).mean()
        self.log("train/ade", ade)
        return ade

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def build_forecaster(cfg, dm, pitch=None):
    m = cfg.model
    scaler = dm.position_scaler()
    return TrajectoryForecaster(
        pitch=pitch or Pitch(dm.hparams.pitch_length, dm.hparams.pitch_width),
        formation=m.formation,
        fps=Fraction(cfg.data.fps),
        seq_in=m.seq_in,
        seq_out=m.seq_out,
        hidden=m.hidden,
        lr=m.base_lr * np.sqrt(cfg.data.batch_size / 64),
        teams=frozenset(dm.teams),
        act_layer=ACTIVATIONS.get(m.activation),
        dropout=m.dropout,
        pos_mean=tuple(scaler.mean_.tolist()),
        pos_std=tuple(scaler.scale_.tolist()),
    )


# ------------------------------------------------------------------ demand planning

PLANNING_YAML = """
data: {start: 2023-01-02, weeks: 60, stores: [S01, S02, S03], holidays: [2023-04-07, 2023-11-24, 2023-12-25]}
model: {lookback: 8, horizon: 4, quantiles: [0.1, 0.5, 0.9], hidden: 32, lr: 0.003, loss: pinball}
inventory: {service_level: 0.95}
"""


@dataclass
class WarehouseConfig:
    data_dir: Path = Path("data/warehouses")
    n_warehouses: int = 3
    lead_time_days: int = 7
    holding_rate: float = 0.22
    hidden: int = 64
    lanes: list = field(default_factory=lambda: ["DC1->S01", "DC1->S02"])


class SalesDataModule(L.LightningDataModule):
    def __init__(self, weeks=60, n_skus=8, lookback=8, horizon=4, batch_size=256):
        super().__init__()
        self.save_hyperparameters()
        rng = np.random.default_rng(weeks)
        self.sales = pd.DataFrame({
            "sku": np.repeat([f"SKU{k:03d}" for k in range(n_skus)], weeks),
            "week": np.tile(np.arange(weeks), n_skus),
            "price": rng.uniform(2, 15, n_skus * weeks).round(2),
        })
        self.sales["qty"] = rng.poisson(400 / self.sales["price"])

    def elasticity(self):
        return np.polyfit(np.log(self.sales["price"]), np.log1p(self.sales["qty"]), 1)[0]


class DemandForecaster(L.LightningModule):
    def __init__(
        self,
        lookback=8,
        horizon=4,
        quantiles=(0.1, 0.5, 0.9),  # truth: hparam
        hidden=32,
        lr=3e-3,
        n_skus=8,
        sku_vocab=None,
        start_date=None,  # truth: hparam
        holidays=None,  # truth: hparam
        price_elasticity=-1.0,  # truth: hparam
        loss="pinball",
        service_level=0.95,
        store_ids=(),
    ):
        super().__init__()
        self.save_hyperparameters()
        self.sku_emb = nn.Embedding(n_skus, 8)
        self.net = nn.Sequential(nn.Linear(lookback + 9, hidden), nn.ReLU(), nn.Linear(hidden, horizon * len(quantiles)))
        self.register_buffer("q", torch.tensor(list(quantiles)))
        self.elasticity = float(price_elasticity)

    def forward(self, hist, sku, log_price):
        x = torch.cat([hist, self.sku_emb(sku), self.elasticity * log_price.unsqueeze(-1)], dim=-1)
        return self.net(x).view(len(hist), self.hparams.horizon, -1)

    def training_step(self, batch, batch_idx):
        hist, sku, log_price, y = batch
        diff = y.unsqueeze(-1) - self(hist, sku, log_price)
        return torch.maximum(self.q * diff, (self.q - 1) * diff).mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class InventoryAwareForecaster(L.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg))
        self.net = nn.Sequential(nn.Linear(cfg.n_warehouses * 4, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.l1_loss(self.net(x).squeeze(-1), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class ReplenishmentPolicyNet(L.LightningModule):
    def __init__(self, cfg, n_actions=5, reward_scale=1.0):
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg, resolve=True))
        self.policy = nn.Sequential(nn.Linear(cfg.model.lookback, cfg.model.hidden), nn.Tanh(),
                                    nn.Linear(cfg.model.hidden, n_actions))
        self.reward_scale = reward_scale

    def training_step(self, batch, batch_idx):
        obs, act, ret = batch
        logp = self.policy(obs).log_softmax(-1).gather(1, act[:, None]).squeeze(1)
        return -(logp * ret / self.reward_scale).mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.model["lr"])


def build_demand_forecaster(dm, text=PLANNING_YAML):
    raw = yaml.safe_load(text)
    cfg = OmegaConf.create(text)
    skus = sorted(dm.sales["sku"].unique())
    return DemandForecaster(
        lookback=cfg.model.lookback,
        horizon=cfg.model.horizon,
        quantiles=cfg.model.quantiles,
        hidden=cfg.model.hidden,
        lr=cfg.model.lr,
        n_skus=dm.sales["sku"].nunique(),
        sku_vocab={s: i for i, s in enumerate(skus)},
        start_date=raw["data"]["start"],
        holidays=pd.to_datetime(raw["data"]["holidays"]),
        price_elasticity=dm.elasticity(),
        loss=cfg.model.loss,
        service_level=cfg.inventory.service_level,
        store_ids=tuple(cfg.data.stores),
    )


FACTORIES = {
    "LightCurveClassifier": lambda: build_lightcurve_module(ASTRO_CFG, LightCurveDataModule(**ASTRO_CFG.data)),
    "LightCurveAutoencoder": lambda: build_pretrainer(ASTRO_CFG, LightCurveDataModule(n_objects=64)),
    "TrajectoryForecaster": lambda: build_forecaster(TRACKING_CFG, TrackingDataModule(n_matches=2)),
    "DemandForecaster": lambda: build_demand_forecaster(SalesDataModule(weeks=40)),
    "InventoryAwareForecaster": lambda: InventoryAwareForecaster(
        OmegaConf.structured(WarehouseConfig(data_dir=Path("/srv/planning/warehouses")))),
    "ReplenishmentPolicyNet": lambda: ReplenishmentPolicyNet(OmegaConf.create(PLANNING_YAML), n_actions=7),
}
