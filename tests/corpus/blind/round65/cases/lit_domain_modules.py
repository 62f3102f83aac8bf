"""Lightning modules / data modules for the ATC, radiology and vineyard projects, built from one
OmegaConf experiment file through a module registry: `build_module(CONFIG, "trajectory")`."""
import argparse
import datetime
import enum
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import yaml
from omegaconf import OmegaConf
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, TensorDataset

CONFIG = OmegaConf.create("""
seed: 11
trainer: {max_epochs: 30, precision: 32}
trajectory:
  hidden_dim: 32
  horizon: 6
  lr: 0.002
  teacher_forcing: 0.4
  airports: [EGLL, LFPG, EHAM]
  sample_period_s: 5.0
  loss: {name: huber, kwargs: {delta: 0.5}}
  phase_weights: {climb: 1.0, cruise: 0.5, descent: 1.0, approach: 2.0}
altitude: {n_levels: 41, ceiling_ft: 45000, lr: 0.001, horizon: 6, label_smoothing: 0.05}
report:
  d_model: 32
  lr: 3.0e-4
  warmup_steps: 200
  beam: {beam_size: 3, length_penalty: 0.7}
  labels: [cardiomegaly, edema, consolidation, atelectasis, effusion, pneumothorax]
vineyard:
  backbone: tiny_cnn
  bands: [R, G, B, RE, NIR]
  tile_px: 32
  classes: [healthy, downy_mildew, powdery_mildew, black_rot, esca, flavescence_doree]
  augment: {hflip: true, vflip: true, rot90: true, brightness: 0.1}
  lr: 0.001
  ema_decay: 0.999
  flights: [2024-06-20, 2024-07-12]
""")

REPORT_DATA_YAML = """
report_dir: /data/mimic-cxr/reports
split_date: 2023-06-30
min_freq: 3
"""

LOSSES = {"huber": nn.HuberLoss, "mse": nn.MSELoss, "l1": nn.L1Loss}
MODULES = {}


def register(name):
    def deco(cls):
        MODULES[name] = cls
        return cls
    return deco


class FlightPhase(enum.Enum):
    CLIMB = "climb"
    CRUISE = "cruise"
    DESCENT = "descent"


@dataclass
class BeamSettings:
    beam_size: int = 3
    length_penalty: float = 0.7


def make_tokenizer(lowercase=True, strip_numbers=True):
    pattern = re.compile(r"[a-z]+" if strip_numbers else r"\w+")

    def tokenize(text):
        return pattern.findall(text.lower() if lowercase else text)
    return tokenize


def synth_tracks(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "lat": 51 + rng.normal(0, 0.4, n), "lon": rng.normal(0, 0.6, n),
        "alt_ft": rng.uniform(0, 40000, n), "gs_kt": rng.uniform(150, 480, n),
    })


# ------------------------------------------------------------------ data modules

class TrajectoryDataModule(pl.LightningDataModule):
    def __init__(self, data_dir: str = "/data/adsb/resampled", batch_size: int = 64, history: int = 12,
                 horizon: int = 6, airports=("EGLL",), num_workers: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.tracks = synth_tracks()

    def setup(self, stage=None):
        x = torch.tensor(self.tracks.to_numpy(), dtype=torch.float32)
        self.train_set = TensorDataset(x[:, None].repeat(1, self.hparams.history, 1), x[:, None, :3].repeat(
            1, self.hparams.horizon, 1))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)


class ReportDataModule(pl.LightningDataModule):
    def __init__(self, report_dir: str = "/data/mimic-cxr/reports", image_size: int = 224, max_len: int = 60,
                 batch_size: int = 16, views=("PA", "AP")):
        super().__init__()
        self.save_hyperparameters()
        self.lengths = np.random.default_rng(0).integers(8, 80, size=300)


class VineyardDataModule(pl.LightningDataModule):
    def __init__(self, ortho_paths=(), tile_px: int = 32, stride_px: int = 24, val_block: str = "B",
                 batch_size: int = 32):
        super().__init__()
        self.save_hyperparameters()
        self.tiles = torch.rand(12, 5, tile_px, tile_px)


# ------------------------------------------------------------------ ATC

@register("trajectory")
class TrajectoryLitModule(pl.LightningModule):
    def __init__(
        self,
        input_dim: int, hidden_dim: int = 64, horizon: int = 12, lr: float = 1e-3,
        scaler_mean=None,  # truth: hparam
        scaler_std=None,
        loss_fn=None,  # truth: hparam
        airports=("EGLL",), sample_period_s: float = 5.0, phase_weights=None, teacher_forcing: float = 0.5,
        augment_rng=None,  # truth: hparam
    ):
        super().__init__()
        lr = float(lr)
        self.save_hyperparameters()
        self.encoder = nn.GRU(input_dim, hidden_dim, batch_first=True)
        self.head = nn.Linear(hidden_dim, horizon * 3)
        self.loss_fn = loss_fn if loss_fn is not None else nn.SmoothL1Loss()
        self.register_buffer("mean", torch.as_tensor(scaler_mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(scaler_std, dtype=torch.float32))

    def forward(self, x):
        _, h = self.encoder((x - self.mean) / self.std)
        return self.head(h[-1]).view(x.size(0), self.hparams.horizon, 3)

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.hparams.augment_rng is not None:
            x = x + torch.from_numpy(self.hparams.augment_rng.normal(0, 1e-3, x.shape)).float()
        loss = self.loss_fn(self(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class BaseForecastModule(pl.LightningModule):
    """Shared optimiser setup; subclasses pass their own arguments up through **kwargs."""

    def __init__(self, lr: float = 1e-3, weight_decay: float = 0.0, horizon: int = 6, **kwargs):
        super().__init__()
        self.save_hyperparameters()

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


@register("altitude")
class AltitudeForecastModule(BaseForecastModule):
    def __init__(
        self,
        n_levels: int = 41,
        altitude_bins=None,  # truth: hparam
        phase=FlightPhase.CRUISE,  # truth: hparam
        label_smoothing: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.net = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, n_levels))

    def training_step(self, batch, batch_idx):
        x, level = batch
        return nn.functional.cross_entropy(self.net(x), level, label_smoothing=self.hparams.label_smoothing)


# ------------------------------------------------------------------ radiology

@register("report_gen")
class ReportGenLitModule(pl.LightningModule):
    def __init__(
        self,
        vocab_size: int, d_model: int = 64, pad_idx: int = 0, max_len: int = 60, label_names=(),
        tokenizer=None,  # truth: hparam
        beam: BeamSettings = None,  # truth: hparam
        lr: float = 3e-4, warmup_steps: int = 500, pos_weight: torch.Tensor = None, special_tokens=None,
        study_cutoff=None,  # truth: hparam
    ):
        super().__init__()
        max_len = int(max_len)
        self.save_hyperparameters()
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=pad_idx)
        self.lm_head = nn.Linear(d_model, vocab_size)
        self.label_head = nn.Linear(d_model, len(label_names))

    def encode_batch(self, texts):
        stoi = self.hparams.special_tokens
        return [[stoi.get(w, stoi["<unk>"]) for w in self.hparams.tokenizer(t)] for t in texts]

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        warm = torch.optim.lr_scheduler.LinearLR(opt, 0.01, total_iters=self.hparams.warmup_steps)
        return [opt], [{"scheduler": warm, "interval": "step"}]


@register("chexpert_labeler")
class ChexpertLabelerLitModule(pl.LightningModule):
    def __init__(self, args, text_encoder=None):  # truth: hparam[args]
        super().__init__()
        self.save_hyperparameters(args)
        self.text_encoder = text_encoder if text_encoder is not None else nn.EmbeddingBag(1000, 32)
        self.classifier = nn.Linear(32, args.num_labels)


@register("report_classifier")
class ReportClassifierLitModule(pl.LightningModule):
    def __init__(self, cfg):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.fc = nn.Linear(cfg["d_model"], len(cfg["labels"]))


# ------------------------------------------------------------------ vineyard

def tiny_backbone(in_ch, width=16):
    return nn.Sequential(nn.Conv2d(in_ch, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


@register("vineyard_cls")
class VineyardLitModule(pl.LightningModule):
    def __init__(self, cfg, backbone=None, class_weights=None):  # truth: hparam[cfg]
        super().__init__()
        self.save_hyperparameters(cfg)
        self.backbone = backbone if backbone is not None else tiny_backbone(len(cfg.bands))
        self.fc = nn.Linear(16, len(cfg.classes))
        self.register_buffer("class_weights", class_weights)


@register("vineyard_seg")
class VineyardSegLitModule(pl.LightningModule):
    def __init__(
        self,
        backbone, num_classes: int, class_names=(),
        class_weights=None,  # truth: hparam
        band_means=(),
        ndvi_threshold: float = 0.4,  # truth: hparam
        flight_dates=(), tile_px: int = 32, augment=None, lr: float = 1e-3, ema_decay: float = 0.999,
        optimizer_factory=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.seg_head = nn.Conv2d(16, num_classes, 1)

    def configure_optimizers(self):
        return self.hparams.optimizer_factory(self.parameters(), lr=self.hparams.lr)


@register("severity")
class SeverityLitModule(pl.LightningModule):
    def __init__(self, lr: float, num_levels: int, severity_bins=None):
        super().__init__()
        self.save_hyperparameters("lr", "num_levels")
        self.register_buffer("bins", torch.as_tensor(severity_bins, dtype=torch.float32))
        self.head = nn.Linear(5, num_levels)


# ------------------------------------------------------------------ builders

def build_module(cfg, name, **overrides):
    kwargs = dict(BUILDERS[name](cfg))
    kwargs.update(overrides)
    return MODULES[name](**kwargs)


def _trajectory_kwargs(cfg):
    t = cfg.trajectory
    tracks = synth_tracks(seed=cfg.seed)
    scaler = StandardScaler().fit(tracks.to_numpy())
    return dict(
        input_dim=tracks.shape[1], hidden_dim=t.hidden_dim, horizon=t.horizon, lr=np.float32(t.lr),
        scaler_mean=scaler.mean_,
        scaler_std=scaler.scale_.tolist(),
        loss_fn=LOSSES[t.loss.name](**t.loss.kwargs),
        airports=tuple(t.airports), sample_period_s=t.sample_period_s,
        phase_weights=OmegaConf.to_container(t.phase_weights),
        teacher_forcing=t.teacher_forcing,
        augment_rng=np.random.default_rng(cfg.seed),
    )


def _altitude_kwargs(cfg):
    a = cfg.altitude
    return dict(n_levels=a.n_levels, altitude_bins=np.linspace(0, a.ceiling_ft, a.n_levels),
                label_smoothing=a.label_smoothing, lr=a.lr, horizon=a.horizon, weight_decay=1e-4)


def _report_kwargs(cfg):
    r = cfg.report
    data = yaml.safe_load(REPORT_DATA_YAML)
    lengths = ReportDataModule().lengths
    specials = {"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 3}
    prevalence = np.array([0.12, 0.08, 0.05, 0.15, 0.2, 0.02])
    return dict(
        vocab_size=1200, d_model=r.d_model, pad_idx=specials["<pad>"],
        max_len=np.percentile(lengths, 95).astype(int),
        label_names=list(r.labels),
        tokenizer=make_tokenizer(lowercase=True),
        beam=BeamSettings(**r.beam),
        lr=r.lr, warmup_steps=r.warmup_steps,
        pos_weight=torch.from_numpy((1 - prevalence) / prevalence).float(),
        special_tokens=specials,
        study_cutoff=data["split_date"],
    )


def _chexpert_kwargs(cfg):
    parser = argparse.ArgumentParser()
    parser.add_argument("--report-dir", type=Path, default=Path("/data/mimic-cxr/reports"))
    parser.add_argument("--num-labels", type=int, default=len(cfg.report.labels))
    parser.add_argument("--lr", type=float, default=1e-3)
    return dict(args=parser.parse_args([]))


def _report_classifier_kwargs(cfg):
    return dict(cfg=OmegaConf.to_container(cfg.report, resolve=True))


def _vineyard_kwargs(cfg):
    counts = np.array([40, 12, 9, 5, 7, 3])
    return dict(cfg=cfg.vineyard, class_weights=torch.tensor(counts.sum() / (len(counts) * counts)).float())


def _vineyard_seg_kwargs(cfg):
    v = cfg.vineyard
    counts = np.array([40, 12, 9, 5, 7, 3])
    ndvi = np.random.default_rng(cfg.seed).beta(5, 2, size=4096)
    return dict(
        backbone=tiny_backbone(len(v.bands)),
        num_classes=len(v.classes), class_names=list(v.classes),
        class_weights=counts.sum() / (len(counts) * counts),
        band_means=tuple(np.linspace(0.05, 0.45, len(v.bands)).round(3).tolist()),
        ndvi_threshold=np.quantile(ndvi, 0.25),
        flight_dates=[datetime.date.fromisoformat(str(d)).isoformat() for d in v.flights],
        tile_px=v.tile_px, augment=dict(v.augment), lr=v.lr, ema_decay=v.ema_decay,
        optimizer_factory=functools.partial(torch.optim.AdamW, weight_decay=1e-2),
    )


def _severity_kwargs(cfg):
    return dict(lr=1e-3, num_levels=5, severity_bins=np.array([0.0, 0.05, 0.15, 0.35, 0.6]))


BUILDERS = {
    "trajectory": _trajectory_kwargs,
    "altitude": _altitude_kwargs,
    "report_gen": _report_kwargs,
    "chexpert_labeler": _chexpert_kwargs,
    "report_classifier": _report_classifier_kwargs,
    "vineyard_cls": _vineyard_kwargs,
    "vineyard_seg": _vineyard_seg_kwargs,
    "severity": _severity_kwargs,
}

FACTORIES = {
    "TrajectoryLitModule": lambda: build_module(CONFIG, "trajectory"),
    "AltitudeForecastModule": lambda: build_module(CONFIG, "altitude"),
    "ReportGenLitModule": lambda: build_module(CONFIG, "report_gen"),
    "ChexpertLabelerLitModule": lambda: build_module(CONFIG, "chexpert_labeler"),
    "ReportClassifierLitModule": lambda: build_module(CONFIG, "report_classifier"),
    "VineyardLitModule": lambda: build_module(CONFIG, "vineyard_cls"),
    "VineyardSegLitModule": lambda: build_module(CONFIG, "vineyard_seg"),
    "SeverityLitModule": lambda: build_module(CONFIG, "severity"),
    "TrajectoryDataModule": lambda: TrajectoryDataModule(airports=tuple(CONFIG.trajectory.airports)),
    "VineyardDataModule": lambda: VineyardDataModule(ortho_paths=["/mnt/drone/2024-07-12/block_B/ortho.tif"]),
    "FlightPhase": lambda: FlightPhase.CLIMB,
}
