"""LightningModules and DataModules for the three projects (docking scoring, watch time, bridge SHM).

Modules are built the way the training entry points build them: from an OmegaConf config through
`build_*` factories and small registries of losses, transforms and optimizers.
"""
import argparse
import dataclasses
import datetime as dt
import enum
import functools
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import scipy.signal as ss
import torch
import torch.nn as nn
from omegaconf import OmegaConf
from sklearn.preprocessing import StandardScaler

# ------------------------------------------------------------------ registries

LOSSES = {
    "mse": nn.MSELoss,
    "huber": nn.HuberLoss,
    "smooth_l1": nn.SmoothL1Loss,
}

TARGET_TRANSFORMS = {
    "log1p": lambda y: torch.log1p(y),
    "sqrt": lambda y: torch.sqrt(y.clamp_min(0)),
}

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}

BASE_CFG = OmegaConf.create({
    "docking": {"hidden": 64, "dropout": 0.1, "lr": 3e-4, "loss": "huber",
                "receptor": "data/pdbbind/refined/1a30/1a30_protein.pdb", "n_features": 288},
    "watch": {"emb_dim": 16, "hidden": 64, "lr": 1e-3, "transform": "log1p", "optimizer": "adamw",
              "huber_delta": 5.0},
    "shm": {"fs": 200, "sensors": ["A1", "A2", "A3", "A4"], "band": [0.5, 40.0], "latent": 8,
            "channels": [16, 32], "lr": 2e-3, "threshold_q": 0.99},
})


class Severity(enum.Enum):
    NONE = 0
    MINOR = 1
    SEVERE = 2


@dataclasses.dataclass
class WatchCfg:
    emb_dim: int = 16
    hidden: int = 64
    lr: float = 1e-3
    cap_minutes: float = 240.0


def synthetic_affinities(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(3, 11, n).astype(np.float32)


def synthetic_sessions(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "user_id": rng.integers(0, 40, n),
        "title_id": rng.integers(0, 70, n),
        "genre": rng.choice(["drama", "comedy", "kids", "docu"], n),
        "device": rng.choice(["tv", "mobile", "web"], n),
        "minutes": rng.gamma(2.0, 20.0, n),
    })


# ------------------------------------------------------------------ docking

class DockingScoreModule(pl.LightningModule):
    def __init__(
        self,
        n_features: int = 288,
        hidden: int = 64,
        dropout: float = 0.1,
        lr: float = 3e-4,
        loss_fn=None,  # truth: hparam
        element_vocab=("C", "N", "O", "S"),
        affinity_mean=0.0,  # truth: hparam
        affinity_std: float = 1.0,
        box_center=None,
        receptor_path=None,  # truth: hparam
        scheduler: str = "cosine",
        pose_weight: float = 0.5,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.SiLU(), nn.Dropout(dropout), nn.Linear(hidden, 2))
        self.loss_fn = loss_fn if loss_fn is not None else nn.MSELoss()

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        aff = self(x)[:, 0] * self.hparams.affinity_std + self.hparams.affinity_mean
        return self.loss_fn(aff, y)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def build_docking_module(cfg):
    d = cfg.docking
    y = synthetic_affinities()
    center = np.array([12.1, -3.4, 27.9])
    return DockingScoreModule(
        n_features=d.n_features,
        hidden=d.hidden,
        dropout=d.dropout,
        lr=d.lr,
        loss_fn=LOSSES[d.loss](),
        element_vocab=tuple(["C", "N", "O", "S", "P", "Halogen"]),
        affinity_mean=y.mean(),
        affinity_std=float(y.std()),
        box_center=torch.as_tensor(center, dtype=torch.float32),
        receptor_path=Path(d.receptor),
        pose_weight=float(np.float32(0.25)),
    )


class DockingPoseModule(pl.LightningModule):
    """Pose classifier trained from the argparse entry point: hparams come in as a Namespace."""

    def __init__(self, args):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(args)
        self.head = nn.Linear(args.n_features, 1)

    def forward(self, x):
        return self.head(x).squeeze(-1)


class DockingRescoreModule(pl.LightningModule):
    """Same entry point, but the script turns paths into strings before building the module."""

    def __init__(self, args):
        super().__init__()
        self.save_hyperparameters(args)
        self.head = nn.Linear(args.n_features, 1)


def docking_args(extra=()):
    p = argparse.ArgumentParser()
    p.add_argument("--n-features", type=int, default=288)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--pose-dir", type=Path, default=Path("poses/vina"))
    p.add_argument("--rmsd-cut", type=float, default=2.0)
    return p.parse_args(list(extra))


def build_rescore_module():
    args = docking_args(["--lr", "5e-4"])
    args.pose_dir = str(args.pose_dir)
    return DockingRescoreModule(args)


class DockingDataModule(pl.LightningDataModule):
    def __init__(self, data_dir: str = "data/pdbbind", batch_size: int = 32, num_workers: int = 2,
                 split=(0.8, 0.1, 0.1), featurizer: str = "ifp-4shell"):
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = data_dir
        self.batch_size = batch_size


# ------------------------------------------------------------------ watch time

class WatchTimeModule(pl.LightningModule):
    def __init__(
        self,
        cfg: WatchCfg,  # truth: hparam
        n_users: int,
        n_titles: int,
        device_vocab: list,
        genre_prior,  # truth: hparam
        class_weights=None,
        target_transform=None,  # truth: hparam
        optimizer_cls=torch.optim.Adam,  # truth: hparam
        huber_delta: float = 5.0,
        encoder: nn.Module = None,
        max_minutes: float = 240.0,
    ):
        super().__init__()
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder or nn.Identity()
        self.user_emb = nn.Embedding(n_users + 1, cfg.emb_dim)
        self.title_emb = nn.Embedding(n_titles + 1, cfg.emb_dim)
        self.head = nn.Linear(2 * cfg.emb_dim, 1)

    def forward(self, u, t):
        return self.head(torch.cat([self.user_emb(u), self.title_emb(t)], -1)).squeeze(-1)

    def configure_optimizers(self):
        return self.hparams.optimizer_cls(self.parameters(), lr=self.hparams.cfg.lr)


def build_watch_module(cfg, df=None):
    w = cfg.watch
    df = synthetic_sessions() if df is None else df
    prior = df.groupby("genre")["minutes"].mean().to_numpy()
    weights = (1.0 / df["device"].value_counts(normalize=True)).to_numpy()
    return WatchTimeModule(
        cfg=WatchCfg(emb_dim=w.emb_dim, hidden=w.hidden, lr=w.lr),
        n_users=df["user_id"].nunique(),
        n_titles=df["title_id"].nunique(),
        device_vocab=sorted(df["device"].unique().tolist()),
        genre_prior=prior,
        class_weights=weights,
        target_transform=TARGET_TRANSFORMS[w.transform],
        optimizer_cls=OPTIMIZERS[w.optimizer],
        huber_delta=w.huber_delta,
        encoder=nn.LayerNorm(4),
        max_minutes=float(df["minutes"].quantile(0.99)),
    )


class WatchRankerModule(pl.LightningModule):
    """Pairwise ranker: stores only its sizes; popularity and history are data, not hparams."""

    def __init__(self, n_users=40, n_titles=70, emb_dim=16, lr=1e-3, popularity=None, user_history=None,
                 temperature=0.07):
        super().__init__()
        self.save_hyperparameters("n_users", "n_titles", "emb_dim", "lr", "temperature")
        self.user = nn.Embedding(n_users, emb_dim)
        self.item = nn.Embedding(n_titles, emb_dim)
        self.register_buffer("popularity", torch.as_tensor(popularity if popularity is not None else np.ones(n_titles),
                                                           dtype=torch.float32))


def build_ranker(cfg):
    df = synthetic_sessions(seed=2)
    pop = df["title_id"].value_counts().reindex(range(70), fill_value=0).to_numpy()
    history = {int(u): g["title_id"].to_numpy() for u, g in df.groupby("user_id")}
    return WatchRankerModule(n_users=40, n_titles=70, emb_dim=cfg.watch.emb_dim, lr=cfg.watch.lr,
                             popularity=pop, user_history=history, temperature=0.05)


class WatchTimeDataModule(pl.LightningDataModule):
    def __init__(self, parquet_glob: str = "s3://events/sessions/*.parquet", batch_size: int = 256,
                 min_minutes: float = 0.5, lookback_days: int = 28, devices=("tv", "mobile", "web")):
        super().__init__()
        self.save_hyperparameters()


# ------------------------------------------------------------------ structural health monitoring

class VibrationAEModule(pl.LightningModule):
    def __init__(self, cfg, sensor_layout=None):  # truth: hparam[cfg]
        super().__init__()
        self.save_hyperparameters(cfg)
        c1, c2 = cfg.channels
        self.enc = nn.Conv1d(len(cfg.sensors), c1, 7, padding=3)
        self.dec = nn.Conv1d(c1, len(cfg.sensors), 7, padding=3)

    def forward(self, x):
        return self.dec(torch.relu(self.enc(x)))


def build_vibration_ae(cfg):
    # sensor positions along the deck (m)
    layout = tuple(map(tuple, np.array([[0.0, 0.0], [12.5, 0.0], [25.0, 0.0], [37.5, 0.0]]).tolist()))
    return VibrationAEModule(cfg.shm, sensor_layout=layout)


class DamageClassifier(pl.LightningModule):
    def __init__(
        self,
        n_sensors: int,
        feature_names: list,
        sensors=None,  # truth: hparam
        severity: Severity = Severity.MINOR,  # truth: hparam
        window=dt.timedelta(minutes=10),  # truth: hparam
        threshold: float = 3.0,
        mode_freqs=(2.9, 7.4, 13.1),
        scaler=None,  # truth: hparam
        prefilter=None,  # truth: hparam
        backbone: nn.Module = None,
        fs: int = 200,
        num_classes: int = 3,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone or nn.Identity()
        self.head = nn.Linear(n_sensors * len(feature_names), num_classes)

    def forward(self, feats):
        return self.head(self.backbone(feats).flatten(1))


def fit_feature_scaler(n_sensors, n_features, seed=0):
    rng = np.random.default_rng(seed)
    return StandardScaler().fit(rng.normal(size=(64, n_sensors * n_features)))


def build_damage_classifier(cfg):
    s = cfg.shm
    feats = ["rms", "kurtosis", "crest", "band_energy"]
    baseline = np.random.default_rng(1).gamma(2.0, 1.0, 500)
    sos = ss.butter(4, list(s.band), btype="band", fs=s.fs, output="sos")
    return DamageClassifier(
        n_sensors=len(s.sensors),
        feature_names=feats,
        sensors=s.sensors,
        severity=Severity.SEVERE,
        window=dt.timedelta(minutes=5),
        threshold=float(np.quantile(baseline, s.threshold_q)),
        mode_freqs=tuple(round(float(f), 2) for f in np.array([2.91, 7.38, 13.07])),
        scaler=fit_feature_scaler(len(s.sensors), len(feats)),
        prefilter=functools.partial(ss.sosfiltfilt, sos),
        backbone=nn.Sequential(nn.Flatten(), nn.Unflatten(1, (len(s.sensors), len(feats)))),
        fs=s.fs,
        num_classes=len(Severity),
    )


class ModalTrackerModule(pl.LightningModule):
    """Regresses natural frequencies; the config sub-node is flattened to a plain dict first."""

    def __init__(self, fs: int = 200, sensors=("A1", "A2"), band=(0.5, 40.0), n_modes: int = 3,
                 lr: float = 1e-3, severity_level: int = 0, window_s: float = 600.0, latent: int = 8):
        super().__init__()
        self.save_hyperparameters()
        self.head = nn.Linear(len(sensors) * 4, n_modes)


def build_modal_tracker(cfg):
    s = OmegaConf.to_container(cfg.shm, resolve=True)
    return ModalTrackerModule(
        fs=s["fs"],
        sensors=tuple(s["sensors"]),
        band=s["band"],
        n_modes=3,
        lr=s["lr"],
        severity_level=Severity.MINOR.value,
        window_s=dt.timedelta(minutes=10).total_seconds(),
        latent=s["latent"],
    )


class SHMDataModule(pl.LightningDataModule):
    def __init__(self, root: str = "/mnt/shm/deck-07", sensors=("A1", "A2", "A3", "A4"), fs: int = 200,
                 window_s: float = 10.24, batch_size: int = 32):
        super().__init__()
        self.save_hyperparameters()


FACTORIES = {
    "DockingScoreModule": lambda: build_docking_module(BASE_CFG),
    "DockingPoseModule": lambda: DockingPoseModule(docking_args()),
    "DockingRescoreModule": build_rescore_module,
    "WatchTimeModule": lambda: build_watch_module(BASE_CFG),
    "WatchRankerModule": lambda: build_ranker(BASE_CFG),
    "VibrationAEModule": lambda: build_vibration_ae(BASE_CFG),
    "DamageClassifier": lambda: build_damage_classifier(BASE_CFG),
    "ModalTrackerModule": lambda: build_modal_tracker(BASE_CFG),
    "Severity": lambda: Severity.MINOR,
}
