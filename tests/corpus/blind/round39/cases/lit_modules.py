"""Lightning wrappers shared by the three project tracks: velocity-model inversion, county crop yield,
and sign recognition. Every module is created through the track's builder, the way `train.py`
does it (OmegaConf for seismic, a run dataclass for yield, registry + argparse for signs).
"""
import argparse
import datetime
import functools
import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.preprocessing import StandardScaler

SEISMIC_YAML = """
data:
  n_shots: 5
  out_size: [70, 70]
  vmin: 1500
  vmax: 4500
  log_k: 1.0
model:
  channels: [32, 64, 128]
loss:
  name: l1l2
  kwargs: {alpha: 0.5}
optim:
  name: adamw
  lr: 0.0001
  weight_decay: 0.0001
  milestones: [20, 40]
picker:
  channels: 16
  threshold: 0.5
  agc_window_ms: 250
"""


class L1L2Loss(nn.Module):
    def __init__(self, alpha=0.5):
        super().__init__()
        self.alpha = alpha

    def forward(self, pred, target):
        return self.alpha * F.l1_loss(pred, target) + (1 - self.alpha) * F.mse_loss(pred, target)


LOSSES = {"l1": nn.L1Loss, "huber": nn.SmoothL1Loss, "l1l2": L1L2Loss}


def conv_stack(channels, in_ch):
    layers = []
    for ch in channels:
        layers += [nn.Conv2d(in_ch, ch, 3, stride=2, padding=1), nn.BatchNorm2d(ch), nn.LeakyReLU(0.2)]
        in_ch = ch
    return nn.Sequential(*layers)


# ================================================================== seismic

class InversionLit(L.LightningModule):
    def __init__(
        self,
        n_shots=5,
        encoder_channels=(32, 64),  # truth: hparam
        out_size=(70, 70),
        vel_range=(1500.0, 4500.0),
        loss_fn=None,  # truth: hparam
        lr=1e-4,
        optim_cfg=None,  # truth: hparam
        log_k=1.0,
        data_stats=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = conv_stack(list(encoder_channels), n_shots)
        self.decoder = nn.Conv2d(encoder_channels[-1], 1, 1)
        self.loss_fn = loss_fn or nn.L1Loss()

    def forward(self, x):
        return torch.tanh(F.interpolate(self.decoder(self.encoder(x)), size=self.hparams.out_size))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.optim_cfg.weight_decay)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(self.hparams.optim_cfg.milestones))
        return [opt], [sched]


class FirstBreakLit(L.LightningModule):
    def __init__(self, cfg, picker=None):  # truth: hparam[cfg]
        super().__init__()
        self.save_hyperparameters(cfg)
        self.picker = picker or nn.Conv1d(1, 1, 9, padding=4)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.binary_cross_entropy_with_logits(self.picker(x).squeeze(1), y)


class TraceDenoiseLit(L.LightningModule):
    def __init__(self, in_channels=1, depth=3, lr=1e-3, noise_profile=None):
        super().__init__()
        self.save_hyperparameters("in_channels", "depth", "lr")
        self.register_buffer("noise_psd", torch.as_tensor(noise_profile if noise_profile is not None else [1.0]))
        self.net = nn.Sequential(*[nn.Conv1d(in_channels, in_channels, 5, padding=2) for _ in range(depth)])


def load_seismic_cfg(overrides=()):
    return OmegaConf.merge(OmegaConf.create(SEISMIC_YAML), OmegaConf.from_dotlist(list(overrides)))


def shot_statistics(cfg, n=8, seed=0):
    """Clip range of the log-transformed gathers, measured on a few shots."""
    x = np.random.default_rng(seed).normal(0.0, 10.0, size=(n, cfg.data.n_shots, 128, 16))
    logx = np.sign(x) * np.log1p(np.abs(cfg.data.log_k * x))
    return {"log_min": float(logx.min()), "log_max": float(logx.max()), "rms": np.sqrt(np.mean(logx ** 2))}


def build_inversion_module(cfg):
    return InversionLit(
        n_shots=cfg.data.n_shots,
        encoder_channels=cfg.model.channels,
        out_size=tuple(cfg.data.out_size),
        vel_range=(float(cfg.data.vmin), float(cfg.data.vmax)),
        loss_fn=LOSSES[cfg.loss.name](**cfg.loss.kwargs),
        lr=cfg.optim.lr,
        optim_cfg=cfg.optim,
        log_k=cfg.data.log_k,
        data_stats=shot_statistics(cfg),
    )


def build_denoiser(cfg):
    psd = np.abs(np.fft.rfft(np.random.default_rng(0).normal(size=64))) ** 2
    return TraceDenoiseLit(in_channels=1, depth=cfg.picker.channels // 8, lr=cfg.optim.lr, noise_profile=psd)


# ================================================================== crop yield

class Crop(Enum):
    CORN = "corn"
    SOYBEAN = "soybean"


@dataclass
class YieldRunConfig:
    crop: str = "soybean"
    bands: list = field(default_factory=lambda: ["red", "nir", "swir1", "lst_day"])
    weather: list = field(default_factory=lambda: ["tmax", "tmin", "prcp"])
    hidden: int = 32
    dropout: float = 0.2
    lr: float = 1e-3
    n_bins: int = 16
    data_root: str = "/data/modis/histograms"
    batch_size: int = 64


def synth_yield_frame(run, n=60, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({w: rng.normal(20, 3, n) for w in run.weather})
    df["fips"] = [f"19{i % 12:03d}" for i in range(n)]
    df["yield_bu_ac"] = 50 + 0.5 * df[run.weather[0]] + rng.normal(0, 2, n)
    return df


class YieldLSTMLit(L.LightningModule):
    def __init__(
        self,
        n_bands,
        n_weather,
        hidden=64,
        dropout=0.2,
        weather_mean=None,
        weather_std=None,
        target_mean=0.0,  # truth: hparam
        target_std=1.0,
        counties=None,
        crop=Crop.CORN,  # truth: hparam
        lr=1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.lstm = nn.LSTM(n_bands, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden + n_weather, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, 1))

    def forward(self, seq, weather):
        _, (h, _) = self.lstm(seq)
        z = self.head(torch.cat([h[-1], weather], 1)).squeeze(1)
        return z * self.hparams.target_std + self.hparams.target_mean


class YieldHistCNNLit(L.LightningModule):
    def __init__(
        self,
        bin_edges,  # truth: hparam
        n_bands=7,
        channels=(32, 64),
        data_root="data/histograms",
        season_end=datetime.date(2016, 9, 30),  # truth: hparam
        loss_weights=None,
        lr=3e-4,
    ):
        super().__init__()
        bin_edges = np.asarray(bin_edges, dtype=np.float32)
        loss_weights = torch.as_tensor(loss_weights if loss_weights is not None else [1.0])
        self.save_hyperparameters()
        self.conv = conv_stack(list(channels), n_bands)
        self.head = nn.LazyLinear(1)


class CropDataModule(L.LightningDataModule):
    def __init__(self, data_dir="data/", batch_size=64, num_workers=4, val_year=2016, bands=("red", "nir"),
                 n_bins=32):
        super().__init__()
        self.save_hyperparameters()
        self.frame = None

    def setup(self, stage=None):
        self.frame = pd.read_parquet(self.hparams.data_dir)


def build_yield_module(run, df=None):
    df = synth_yield_frame(run) if df is None else df
    scaler = StandardScaler().fit(df[run.weather])
    target = df["yield_bu_ac"]
    return YieldLSTMLit(
        n_bands=len(run.bands),
        n_weather=len(run.weather),
        hidden=run.hidden,
        dropout=run.dropout,
        weather_mean=scaler.mean_.tolist(),
        weather_std=torch.tensor(scaler.scale_, dtype=torch.float32),
        target_mean=target.mean(),
        target_std=float(target.std()),
        counties=sorted(df.fips.unique().tolist()),
        crop=Crop(run.crop),
        lr=run.lr,
    )


def build_hist_module(run):
    edges = np.linspace(0.0, 1.0, run.n_bins + 1)
    weights = np.linspace(1.0, 2.0, 5)  # later seasons' years count more
    return YieldHistCNNLit(
        bin_edges=edges.tolist(),
        n_bands=len(run.bands),
        channels=(16, 32),
        data_root=str(Path(run.data_root) / run.crop),
        loss_weights=weights,
        lr=run.lr,
    )


# ================================================================== sign recognition

def make_augment(rotation_deg=15.0, scale=(0.9, 1.1)):
    theta = math.radians(rotation_deg)

    def augment(x):
        a = (torch.rand(()) * 2 - 1) * theta
        rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        s = scale[0] + torch.rand(()) * (scale[1] - scale[0])
        return torch.cat([x[..., :2] @ rot.T * s, x[..., 2:]], -1)

    return augment


class SignClassifierLit(L.LightningModule):
    def __init__(
        self,
        backbone,
        num_classes,
        glosses=None,
        joint_ids=None,  # truth: hparam
        augment=None,  # truth: hparam
        label_smoothing=0.1,
        lr=1e-3,
        max_frames=64,
        mean_pose=None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.head = nn.Linear(32, num_classes)

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.hparams.augment is not None:
            x = self.hparams.augment(x)
        x = x[:, : self.hparams.max_frames, list(self.hparams.joint_ids)]
        logits = self.head(self.backbone(x.flatten(2)).mean(1))
        return F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)


class CSLRLit(L.LightningModule):
    def __init__(self, args, vocab_size=1000):  # truth: hparam[args]
        super().__init__()
        self.save_hyperparameters(args)
        self.rnn = nn.GRU(args.joints * 3, args.hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * args.hidden, vocab_size)


class BaseSignLit(L.LightningModule):
    def __init__(self, num_classes, lr=1e-3, weight_decay=0.01, warmup_epochs=2):
        super().__init__()
        self.save_hyperparameters()

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class GestureTCNLit(BaseSignLit):
    def __init__(
        self,
        num_classes,
        kernel_sizes=(3, 5, 7),
        dropout=0.3,
        class_weights=None,  # truth: hparam
        optimizer_cls=torch.optim.AdamW,  # truth: hparam
        lr=1e-3,
        fps=30,
    ):
        super().__init__(num_classes, lr=lr)
        self.blocks = nn.ModuleList(nn.Conv1d(63, 63, k, padding=k // 2) for k in kernel_sizes)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(63, num_classes)
        self.criterion = nn.CrossEntropyLoss(
            weight=None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32))

    def configure_optimizers(self):
        return self.hparams.optimizer_cls(self.parameters(), lr=self.hparams.lr)


class KeypointDataModule(L.LightningDataModule):
    def __init__(self, root="data/wlasl_kp", clip_len=64, batch_size=32, signer_split=(0.8, 0.2), mirror=True,
                 num_workers=2):
        super().__init__()
        self.save_hyperparameters()


SIGN_BACKBONES = {
    "gru": lambda joints, hidden: nn.GRU(joints * 3, hidden, batch_first=True),
    "mlp": lambda joints, hidden: nn.Sequential(nn.Linear(joints * 3, hidden), nn.GELU()),
}


def build_sign_module(name="mlp", glosses=("HELLO", "THANKS", "PLEASE"), joints=range(0, 48), train_poses=None):
    poses = torch.randn(8, 16, 48, 3) if train_poses is None else train_poses
    return SignClassifierLit(
        backbone=SIGN_BACKBONES[name](len(joints), 32),
        num_classes=len(glosses),
        glosses=list(glosses),
        joint_ids=joints,
        augment=make_augment(rotation_deg=10.0),
        label_smoothing=0.05,
        max_frames=poses.shape[1],
        mean_pose=poses.mean(dim=(0, 1)),
    )


def cslr_parser():
    p = argparse.ArgumentParser()
    p.add_argument("--joints", type=int, default=48)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--ckpt-dir", type=Path, default=Path("runs/cslr"))
    return p


def build_gesture_module(labels=None):
    labels = np.random.default_rng(0).integers(0, 5, 200) if labels is None else labels
    counts = np.bincount(labels, minlength=5)
    weights = counts.sum() / (len(counts) * np.maximum(counts, 1))
    return GestureTCNLit(num_classes=len(counts), class_weights=weights, optimizer_cls=torch.optim.AdamW,
                         lr=5e-4, fps=int(round(29.97)))


FACTORIES = {
    "InversionLit": lambda: build_inversion_module(load_seismic_cfg()),
    "FirstBreakLit": lambda: FirstBreakLit(load_seismic_cfg(["picker.threshold=0.4"])),
    "TraceDenoiseLit": lambda: build_denoiser(load_seismic_cfg()),
    "L1L2Loss": lambda: LOSSES["l1l2"](alpha=0.3),
    "YieldLSTMLit": lambda: build_yield_module(YieldRunConfig()),
    "YieldHistCNNLit": lambda: build_hist_module(YieldRunConfig(n_bins=8)),
    "CropDataModule": lambda: CropDataModule(data_dir="data/county_hist.parquet", val_year=2017),
    "Crop": lambda: Crop("corn"),
    "SignClassifierLit": lambda: build_sign_module("mlp"),
    "CSLRLit": lambda: CSLRLit(cslr_parser().parse_args(["--hidden", "32"]), vocab_size=120),
    "BaseSignLit": lambda: BaseSignLit(num_classes=10),
    "GestureTCNLit": build_gesture_module,
    "KeypointDataModule": lambda: KeypointDataModule(clip_len=48),
}
