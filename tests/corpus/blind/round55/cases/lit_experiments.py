"""Lightning wrappers for the three projects (air quality, lip reading, job-shop RL).

`train.py --experiment NAME` reads EXPERIMENTS[NAME], merges CLI overrides and calls
`build_module(cfg)` / `build_datamodule(cfg)`; the FACTORIES at the bottom go through the same code.
"""
import argparse
import functools
import math
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, TensorDataset

EXPERIMENTS = OmegaConf.create({
    "aq_gru": {
        "task": "aq", "seed": 3,
        "data": {"root": "data/purpleair", "n_stations": 6, "features": ["pm25", "pm10", "no2", "rh", "temp"],
                 "targets": ["pm25"], "lookback": 24, "horizon": 6},
        "model": {"kind": "gru", "hidden": 64, "layers": 2, "loss": "huber", "k": 3},
        "optim": {"lr": 1e-3, "weight_decay": "1e-4"},
    },
    "lip_ctc": {
        "task": "lip", "seed": 0,
        "data": {"speakers": ["s1", "s2", "s3", "s4"], "frames": 75, "crop": [88, 88]},
        "frontend": {"name": "conv3d", "channels": [32, 64]},
        "model": {"kind": "ctc", "hidden": 256, "d_model": 128, "heads": 4},
        "decode": {"mode": "beam", "beam_width": 10},
        "optim": {"lr": 3e-4, "warmup": 500, "label_smoothing": 0.1},
        "pretrain": {"frontend": {"name": "conv3d_light", "channels": [16, 32]}, "temperature": 0.07,
                     "lr": 1e-3, "max_epochs": 100},
    },
    "jssp_reinforce": {
        "task": "jssp", "seed": 1234,
        "env": {"num_jobs": 6, "num_machines": 6, "duration_range": [1, 99], "instance_dir": "data/taillard"},
        "policy": {"name": "mlp", "hidden_dims": [128, 128]},
        "ppo": {"clip_eps": 0.2, "epochs": 4, "entropy_coef": 0.01},
        "optim": {"lr": 1e-4},
    },
})

LOSSES = {"mae": nn.L1Loss, "mse": nn.MSELoss, "huber": nn.HuberLoss}


def station_table(n, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"station_id": np.arange(n) + 101,
                         "lat": 47.6 + rng.normal(0, 0.05, n), "lon": -122.3 + rng.normal(0, 0.05, n),
                         "elevation_m": rng.uniform(0, 120, n)})


def haversine_km(lat, lon):
    lat, lon = np.radians(lat), np.radians(lon)
    dlat = lat[:, None] - lat[None, :]
    dlon = lon[:, None] - lon[None, :]
    a = np.sin(dlat / 2) ** 2 + np.cos(lat[:, None]) * np.cos(lat[None, :]) * np.sin(dlon / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(a))


def fit_feature_scaler(cfg):
    rng = np.random.default_rng(cfg.seed)
    history = rng.gamma(2.0, 8.0, size=(500, len(cfg.data.features)))
    return StandardScaler().fit(history)


class AirQualityDataModule(pl.LightningDataModule):
    def __init__(self, data_root: str = "data/purpleair", stations: list = None, lookback: int = 24,
                 horizon: int = 6, batch_size: int = 64, num_workers: int = 0, val_fraction: float = 0.2):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        n = 64
        x = torch.randn(n, self.hparams.lookback, 5)
        y = torch.randn(n, self.hparams.horizon)
        cut = int(n * (1 - self.hparams.val_fraction))
        self.train_ds, self.val_ds = TensorDataset(x[:cut], y[:cut]), TensorDataset(x[cut:], y[cut:])

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.hparams.batch_size, shuffle=True)


class AirQualityForecaster(pl.LightningModule):
    def __init__(
        self,
        n_features: int,
        hidden_size: int = 64,
        num_layers: int = 2,
        horizon: int = 6,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        target_cols: tuple = ("pm25",),
        scaler=None,  # truth: hparam
        station_coords=None,  # truth: hparam
        loss_fn=None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["loss_fn"])
        self.loss_fn = loss_fn if loss_fn is not None else nn.L1Loss()
        self.gru = nn.GRU(n_features, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, horizon * len(target_cols))
        if station_coords is not None:
            self.register_buffer("coords", torch.as_tensor(station_coords, dtype=torch.float32))

    def forward(self, x):
        _, h = self.gru(x)
        return self.head(h[-1])

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class GraphAirQualityForecaster(AirQualityForecaster):
    """Adds a neighbour average over stations within `radius_km` before the GRU."""

    def __init__(self, n_features, adjacency=None, k_neighbors: int = 3,
                 radius_km=None,  # truth: hparam
                 **kwargs):
        super().__init__(n_features, **kwargs)
        if adjacency is not None:
            self.register_buffer("adj", adjacency / adjacency.sum(-1, keepdim=True).clamp(min=1))


def build_aq_model(cfg):
    stations = station_table(cfg.data.n_stations, cfg.seed)
    common = dict(
        hidden_size=cfg.model.hidden,
        num_layers=cfg.model.layers,
        horizon=cfg.data.horizon,
        lr=cfg.optim.lr,
        weight_decay=float(cfg.optim.weight_decay),
        target_cols=tuple(cfg.data.targets),
        scaler=fit_feature_scaler(cfg),
        station_coords=stations[["lat", "lon"]].to_numpy(),
        loss_fn=LOSSES[cfg.model.loss](),
    )
    if cfg.model.kind == "graph":
        dist = haversine_km(stations["lat"].to_numpy(), stations["lon"].to_numpy())
        radius = np.percentile(dist[dist > 0], 30)
        adjacency = torch.as_tensor((dist > 0) & (dist < radius), dtype=torch.float32)
        return GraphAirQualityForecaster(len(cfg.data.features), adjacency=adjacency, k_neighbors=cfg.model.k,
                                         radius_km=radius, **common)
    return AirQualityForecaster(len(cfg.data.features), **common)


class DecodeMode(Enum):
    GREEDY = "greedy"
    BEAM = "beam"


FRONTENDS = {}


def register_frontend(name):
    def wrap(cls):
        FRONTENDS[name] = cls
        return cls
    return wrap


@register_frontend("conv3d")
class Conv3dFrontend(nn.Module):
    def __init__(self, channels=(32, 64)):
        super().__init__()
        self.out_dim = channels[-1]
        self.stem = nn.Sequential(nn.Conv3d(1, channels[0], (5, 7, 7), (1, 2, 2), (2, 3, 3)),
                                  nn.BatchNorm3d(channels[0]), nn.ReLU(), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
        self.trunk = nn.Sequential(nn.Conv3d(channels[0], channels[1], 3, padding=1), nn.ReLU(),
                                   nn.AdaptiveAvgPool3d((None, 1, 1)))

    def forward(self, x):
        return self.trunk(self.stem(x.unsqueeze(1))).flatten(2).transpose(1, 2)


@register_frontend("conv3d_light")
class LightConv3dFrontend(Conv3dFrontend):
    def __init__(self, channels=(16, 32)):
        super().__init__(channels)


class LipReadingDataModule(pl.LightningDataModule):
    def __init__(self, speakers=("s1", "s2", "s3"), frames: int = 75, crop_size=(88, 88), batch_size: int = 8,
                 vocab: str = "abcdefghijklmnopqrstuvwxyz '", augment: bool = True):
        super().__init__()
        self.save_hyperparameters()


class LipReadingModule(pl.LightningModule):
    def __init__(
        self,
        vocab_size: int,
        frontend: nn.Module,  # truth: hparam
        hidden: int = 256,
        decode_mode: DecodeMode = DecodeMode.GREEDY,  # truth: hparam
        beam_width: int = 8,
        blank_id: int = 0,
        lr: float = 3e-4,
        label_smoothing: float = 0.0,
        text_normalizer=None,  # truth: hparam
        decoder=None,  # truth: hparam
        warmup_steps: int = 1000,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.frontend = frontend
        self.rnn = nn.GRU(frontend.out_dim, hidden, batch_first=True, bidirectional=True)
        self.classifier = nn.Linear(2 * hidden, vocab_size)
        self.ctc = nn.CTCLoss(blank=blank_id, zero_infinity=True)

    def forward(self, video):
        y, _ = self.rnn(self.frontend(video))
        return self.classifier(y).log_softmax(-1)

    def validation_step(self, batch, batch_idx):
        video, texts = batch
        norm = self.hparams.text_normalizer or (lambda s: s)
        refs = [norm(t) for t in texts]
        hyps = self.hparams.decoder(self(video).argmax(-1)) if self.hparams.decoder else []
        self.log("val/n_refs", float(len(refs)))
        return refs, hyps

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        warm = self.hparams.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
        return [opt], [{"scheduler": sched, "interval": "step"}]


class ConformerLipReader(pl.LightningModule):
    def __init__(self, vocab_size: int, frontend: nn.Module = None, d_model: int = 128, n_heads: int = 4,
                 dropout: float = 0.1, pos_table=None):
        super().__init__()
        self.save_hyperparameters("vocab_size", "d_model", "n_heads", "dropout")
        self.frontend = frontend if frontend is not None else Conv3dFrontend((16, d_model))
        self.register_buffer("pos", torch.as_tensor(pos_table, dtype=torch.float32) if pos_table is not None
                             else torch.zeros(1, d_model))
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 2 * d_model, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2)
        self.classifier = nn.Linear(d_model, vocab_size)


class VisualFrontendPretrainer(pl.LightningModule):
    """Contrastive (time-shifted clip) pre-training of the visual front end."""

    def __init__(self,
                 cfg,  # truth: hparam
                 log_every: int = 50):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.frontend = FRONTENDS[cfg.frontend.name](tuple(cfg.frontend.channels))
        self.proj = nn.Linear(self.frontend.out_dim, 64)


class WordClassifier(pl.LightningModule):
    """LRW-style word classification on top of a registered front end."""

    def __init__(self, num_words: int = 500, frontend_name: str = "conv3d", class_weights=None,
                 label_smoothing: float = 0.1, mixup_alpha: float = 0.4, lr: float = 3e-4):
        super().__init__()
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
        self.save_hyperparameters()
        self.frontend = FRONTENDS[frontend_name]()
        self.head = nn.Linear(self.frontend.out_dim, num_words)


def sinusoid_table(n_pos, d_model):
    pos = np.arange(n_pos)[:, None] / np.power(10000, 2 * (np.arange(d_model)[None, :] // 2) / d_model)
    pos[:, 0::2], pos[:, 1::2] = np.sin(pos[:, 0::2]), np.cos(pos[:, 1::2])
    return pos


def build_tokenizer(cfg):
    chars = sorted(set("abcdefghijklmnopqrstuvwxyz '"))
    return {"<blank>": 0, **{c: i + 1 for i, c in enumerate(chars)}}


def make_greedy_decoder(stoi, blank=0):
    itos = {i: c for c, i in stoi.items()}

    def decode(best_path):
        out = []
        for seq in best_path.tolist():
            ids = [t for i, t in enumerate(seq) if t != blank and (i == 0 or t != seq[i - 1])]
            out.append("".join(itos[t] for t in ids))
        return out
    return decode


def build_lipreader(cfg):
    stoi = build_tokenizer(cfg)
    frontend = FRONTENDS[cfg.frontend.name](tuple(cfg.frontend.channels))
    if cfg.model.kind == "conformer":
        return ConformerLipReader(len(stoi), frontend=frontend, d_model=cfg.model.d_model, n_heads=cfg.model.heads,
                                  pos_table=sinusoid_table(cfg.data.frames, cfg.model.d_model))
    return LipReadingModule(
        vocab_size=len(stoi),
        frontend=frontend,
        hidden=cfg.model.hidden,
        decode_mode=DecodeMode[cfg.decode.mode.upper()],
        beam_width=cfg.decode.beam_width,
        lr=cfg.optim.lr,
        label_smoothing=cfg.optim.label_smoothing,
        text_normalizer=lambda s: s.lower().replace("sil", "").strip(),
        decoder=make_greedy_decoder(stoi),
        warmup_steps=cfg.optim.warmup,
    )


@dataclass
class PPOConfig:
    clip_eps: float = 0.2
    epochs: int = 4
    entropy_coef: float = 0.01


def dispatch_score(durations, remaining, weight=0.5):
    """Prior logits: mix of shortest-processing-time and most-work-remaining."""
    return -weight * durations + (1 - weight) * remaining


class JSSPPolicyModule(pl.LightningModule):
    """REINFORCE with a greedy-rollout baseline on batches of random JSSP instances."""

    def __init__(
        self,
        num_jobs: int,
        num_machines: int,
        policy_name: str = "mlp",
        hidden_dims=(64, 64),  # truth: hparam
        gamma: float = 1.0,
        lr: float = 1e-4,
        reward_scale: float = 1.0,  # truth: hparam
        instance_file=None,  # truth: hparam
        dispatch_prior=None,  # truth: hparam
        ppo: PPOConfig = None,  # truth: hparam
        baseline: str = "greedy_rollout",
        max_duration: int = 99,
    ):
        super().__init__()
        max_duration = int(max_duration)
        self.save_hyperparameters()
        dims = [3 * num_jobs + num_machines, *hidden_dims]
        self.body = nn.Sequential(*[m for a, b in zip(dims, dims[1:]) for m in (nn.Linear(a, b), nn.ReLU())])
        self.logits = nn.Linear(dims[-1], num_jobs)

    def training_step(self, batch, batch_idx):
        obs, durations, remaining = batch
        logits = self.logits(self.body(obs))
        if self.hparams.dispatch_prior is not None:
            logits = logits + self.hparams.dispatch_prior(durations, remaining)
        return -logits.log_softmax(-1).max(-1).values.mean() * self.hparams.reward_scale


class InstanceSampler:
    def __init__(self, num_jobs=6, num_machines=6, low=1, high=99, seed=0):
        self.shape = (num_jobs, num_machines)
        self.low, self.high = low, high
        self.rng = np.random.default_rng(seed)

    def sample(self, n):
        return self.rng.integers(self.low, self.high + 1, size=(n, *self.shape))


class JSSPCriticModule(pl.LightningModule):
    def __init__(self, args, sampler=None):
        super().__init__()
        self.save_hyperparameters(args)
        self.sampler = sampler or InstanceSampler(args.num_jobs, args.num_machines, seed=args.seed)
        self.value = nn.Sequential(nn.Linear(args.num_jobs * args.num_machines, args.hidden), nn.ReLU(),
                                   nn.Linear(args.hidden, 1))


class JSSPInstanceDataModule(pl.LightningDataModule):
    def __init__(self, num_instances: int = 256, num_jobs: int = 6, num_machines: int = 6,
                 duration_range=(1, 99), seed: int = 1234, batch_size: int = 32):
        super().__init__()
        self.save_hyperparameters()


def build_jssp_module(cfg):
    lo, hi = cfg.env.duration_range
    sampler = InstanceSampler(cfg.env.num_jobs, cfg.env.num_machines, lo, hi, cfg.seed)
    durations = sampler.sample(64)
    return JSSPPolicyModule(
        num_jobs=cfg.env.num_jobs,
        num_machines=cfg.env.num_machines,
        policy_name=cfg.policy.name,
        hidden_dims=cfg.policy.hidden_dims,
        lr=cfg.optim.lr,
        reward_scale=1.0 / durations.sum(axis=2).max(),
        instance_file=Path(cfg.env.instance_dir) / "ta01.txt",
        dispatch_prior=functools.partial(dispatch_score, weight=0.7),
        ppo=PPOConfig(**cfg.ppo),
        max_duration=durations.max(),
    )


def critic_args(argv=()):
    p = argparse.ArgumentParser()
    p.add_argument("--num-jobs", type=int, default=6)
    p.add_argument("--num-machines", type=int, default=6)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--instance-dir", default="data/taillard")
    return p.parse_known_args(list(argv))[0]


MODULE_BUILDERS = {"aq": build_aq_model, "lip": build_lipreader, "jssp": build_jssp_module}


def build_module(name, overrides=()):
    cfg = OmegaConf.merge(EXPERIMENTS[name], OmegaConf.from_dotlist(list(overrides)))
    return MODULE_BUILDERS[cfg.task](cfg)


def build_datamodule(name):
    cfg = EXPERIMENTS[name]
    if cfg.task == "aq":
        return AirQualityDataModule(cfg.data.root, [f"st{i}" for i in range(cfg.data.n_stations)],
                                    cfg.data.lookback, cfg.data.horizon)
    if cfg.task == "lip":
        return LipReadingDataModule(tuple(cfg.data.speakers), cfg.data.frames, tuple(cfg.data.crop))
    lo, hi = cfg.env.duration_range
    return JSSPInstanceDataModule(num_jobs=cfg.env.num_jobs, num_machines=cfg.env.num_machines,
                                  duration_range=(lo, hi), seed=cfg.seed)


FACTORIES = {
    "AirQualityDataModule": lambda: build_datamodule("aq_gru"),
    "AirQualityForecaster": lambda: build_module("aq_gru"),
    "GraphAirQualityForecaster": lambda: build_module("aq_gru", ["model.kind=graph"]),
    "DecodeMode": lambda: DecodeMode.BEAM,
    "LipReadingDataModule": lambda: build_datamodule("lip_ctc"),
    "LipReadingModule": lambda: build_module("lip_ctc", ["frontend.channels=[8,16]", "model.hidden=32"]),
    "ConformerLipReader": lambda: build_module("lip_ctc", ["model.kind=conformer", "model.d_model=32", "frontend.channels=[8,32]"]),
    "VisualFrontendPretrainer": lambda: VisualFrontendPretrainer(EXPERIMENTS.lip_ctc.pretrain),
    "WordClassifier": lambda: WordClassifier(num_words=50, class_weights=np.linspace(0.5, 1.5, 50)),
    "JSSPPolicyModule": lambda: build_module("jssp_reinforce"),
    "JSSPCriticModule": lambda: JSSPCriticModule(critic_args(["--hidden", "32"])),
    "JSSPInstanceDataModule": lambda: build_datamodule("jssp_reinforce"),
}
