"""LightningModules for the three projects: sensor anomaly detection, gridded forecasting, audio tagging.

Each is built the way its train script builds it (see FACTORIES at the bottom).
"""
import argparse
import enum
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from sklearn.preprocessing import LabelEncoder, StandardScaler

AUDIO_LABELS = ["dog_bark", "siren", "drilling", "siren", "engine_idling"]


class Var(enum.Enum):
    T2M = "t2m"
    Z500 = "z500"


@dataclass
class SpecAugment:
    freq_mask: int = 2
    time_mask: int = 4


class MelFrontend:
    """Plain feature extractor: a numpy filterbank applied to power spectrograms."""

    def __init__(self, n_mels=8, n_freqs=65):
        self.fb = np.abs(np.random.default_rng(0).standard_normal((n_mels, n_freqs))).astype("float32")

    def __call__(self, spec):
        return torch.log(torch.from_numpy(self.fb) @ spec + 1e-6)


def gru_encoder(n_in, hidden):
    return nn.GRU(n_in, hidden, batch_first=True)


# ----------------------------------------------------------------------------- sensors


class LitSensorAE(pl.LightningModule):
    def __init__(
        self,
        n_sensors: int = 4,
        hidden: int = 8,
        lr: float = 1e-3,
        window: int = 16,
        sensor_names: list = None,
        loss_fn: nn.Module = nn.SmoothL1Loss(),  # truth: hparam
        sensor_scaler=None,  # truth: hparam
        threshold=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = gru_encoder(n_sensors, hidden)
        self.decoder = nn.Linear(hidden, n_sensors)
        self.loss_fn = loss_fn

    def forward(self, x):
        h, _ = self.encoder(x)
        return self.decoder(h)

    def training_step(self, batch, batch_idx):
        return self.loss_fn(self(batch), batch)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class LitSensorForecaster(pl.LightningModule):
    """Backbone and criterion are passed in, and left out of the hparams on purpose."""

    def __init__(
        self,
        backbone: nn.Module,
        criterion: nn.Module,
        horizon: int = 4,
        lr: float = 3e-4,
        score_quantile: float = 0.99,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone", "criterion"])
        self.backbone = backbone
        self.criterion = criterion
        self.head = nn.Linear(8, horizon)

    def forward(self, x):
        h, _ = self.backbone(x)
        return self.head(h[:, -1])


class LitSensorScorer(pl.LightningModule):
    def __init__(
        self,
        n_sensors: int = 4,
        score_fn=lambda err: err.abs().mean(-1),  # truth: hparam
        smoothing: int = 5,
        contamination: float = 0.01,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.proj = nn.Linear(n_sensors, n_sensors)

    def anomaly_score(self, x):
        return self.hparams.score_fn(self.proj(x) - x)


# ----------------------------------------------------------------------------- weather


class LitWeatherUNet(pl.LightningModule):
    def __init__(
        self,
        cfg: DictConfig,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        c = cfg.model.channels
        self.net = nn.Conv2d(c, c, 3, padding=1)


class LitWeatherClim(pl.LightningModule):
    def __init__(
        self,
        variables=(Var.T2M, Var.Z500),  # truth: hparam
        climatology=None,  # truth: hparam
        lat_weights: torch.Tensor = None,
        lead_hours: tuple = (6, 24),
        data_root: Path = Path("/data/era5"),  # truth: hparam
        lr=None,  # truth: hparam
        grid_shape=(8, 16),
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Conv2d(len(variables), len(variables), 3, padding=1)
        self.register_buffer("w", lat_weights if lat_weights is not None else torch.ones(grid_shape[0]))


class LitWeatherFromDict(pl.LightningModule):
    """The train script turns the OmegaConf config into plain containers before it gets here."""

    def __init__(
        self,
        channels: int = 2,
        variables: list = None,
        lead_hours: int = 6,
        optim: dict = None,
        grid: dict = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Conv2d(channels, channels, 3, padding=1)


# ----------------------------------------------------------------------------- audio


class LitAudioCNN(pl.LightningModule):
    def __init__(
        self,
        n_classes: int = 4,
        n_mels: int = 8,
        class_names=None,  # truth: hparam
        class_weights: torch.Tensor = None,
        spec_augment: SpecAugment = SpecAugment(),  # truth: hparam
        mixup_alpha: float = 0.4,
        label_smoothing: float = 0.1,
        args: argparse.Namespace = None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.head = nn.Linear(8, n_classes)

    def forward(self, x):
        return self.head(F.relu(self.conv(x.unsqueeze(1))).mean(dim=(2, 3)))


class LitAudioTagger(pl.LightningModule):
    """Only three named hyperparameters are stored; the frontend object stays out."""

    def __init__(
        self,
        frontend: MelFrontend,
        n_classes: int = 4,
        lr: float = 1e-3,
        sample_rate: int = 8000,
        activation: nn.Module = nn.GELU(),
    ):
        super().__init__()
        self.save_hyperparameters("n_classes", "lr", "sample_rate")
        self.frontend = frontend
        self.act = activation
        self.head = nn.Linear(8, n_classes)


class LitAudioDistill(pl.LightningModule):
    def __init__(
        self,
        teacher: nn.Module = None,  # truth: hparam
        temperature: float = 2.0,
        alpha: float = 0.5,
        n_classes: int = 4,
        class_names: list = None,
        sample_rate=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.student = nn.Linear(8, n_classes)


def _fitted_scaler():
    x = np.random.default_rng(0).standard_normal((32, 4))
    return StandardScaler().fit(x)


def _weather_cfg():
    return OmegaConf.create({"model": {"channels": 2, "width": 8}, "optim": {"lr": 1e-3}, "data": {"lead": 6}})


def _audio_args():
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=16)
    return p.parse_args([])


def _lats(n=8):
    return np.linspace(-78.75, 78.75, n)


FACTORIES = {
    "LitSensorAE": lambda: LitSensorAE(
        sensor_names=["temp", "pressure", "flow", "vibration"],
        sensor_scaler=_fitted_scaler(),
        threshold=np.quantile(np.random.default_rng(1).random(100), 0.99),
    ),
    "LitSensorForecaster": lambda: LitSensorForecaster(gru_encoder(4, 8), nn.HuberLoss(), horizon=4),
    "LitSensorScorer": lambda: LitSensorScorer(),
    "LitWeatherUNet": lambda: LitWeatherUNet(_weather_cfg()),
    "LitWeatherClim": lambda: LitWeatherClim(
        climatology=np.zeros((2, 8, 16), dtype="float32"),
        lat_weights=torch.from_numpy(np.cos(np.deg2rad(_lats()))).float(),
        lr=1e-3 * np.sqrt(32 / 256),
        grid_shape=(8, 16),
    ),
    "LitWeatherFromDict": lambda: LitWeatherFromDict(**{
        k: v for k, v in OmegaConf.to_container(OmegaConf.create({
            "channels": 2, "variables": [v.value for v in Var], "lead_hours": 6,
            "optim": {"lr": 1e-3, "betas": [0.9, 0.95]},
            "grid": {"n_lat": 8, "n_lon": 16, "lats": _lats().tolist()},
        })).items()
    }),
    "LitAudioCNN": lambda: LitAudioCNN(
        n_classes=len(np.unique(AUDIO_LABELS)),
        class_names=list(LabelEncoder().fit(AUDIO_LABELS).classes_),
        class_weights=torch.tensor([1.0, 2.0, 0.5, 1.0]),
        args=_audio_args(),
    ),
    "LitAudioTagger": lambda: LitAudioTagger(MelFrontend(), n_classes=4),
    "LitAudioDistill": lambda: LitAudioDistill(
        teacher=nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)),
        class_names=LabelEncoder().fit(AUDIO_LABELS).classes_.tolist(),
        sample_rate=np.int64(8000),
    ),
}
NOT_BUILT = {"Var": "an Enum: its members exist already"}
