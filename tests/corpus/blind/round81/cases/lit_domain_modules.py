"""LightningModules and DataModules for the three projects (seismic picking, hotel demand, surgical
phases). Each module is built by the project's own builder from its config, the way `train.py` does."""
import argparse
import functools
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchmetrics
from omegaconf import OmegaConf
from sklearn.preprocessing import LabelEncoder, StandardScaler
from torch.utils.data import DataLoader, TensorDataset


# ----------------------------------------------------------------------------- seismic

def picker_arg_parser():
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default="data/waveforms")
    p.add_argument("--out-dir", type=Path, default=Path("runs/lit_picker"))
    p.add_argument("--stations", nargs="+", default=["IU.ANMO", "IU.COR", "II.PFO"])
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--freqmin", type=float, default=1.0)
    p.add_argument("--freqmax", type=float, default=20.0)
    p.add_argument("--window", type=int, default=400)
    return p


def inventory_stats(stations, seed=0):
    """What the station inventory + a pass over the training traces give us."""
    rng = np.random.default_rng(seed)
    srs = np.array([100.0 if s.startswith("IU") else 40.0 for s in stations])
    amps = rng.normal(0, [1.0, 1.2, 0.8], size=(256, 3))
    return {"sampling_rate": np.median(srs), "std": amps.std(axis=0),
            "threshold": np.percentile(np.abs(amps), 95), "n_stations": len(stations)}


class SeismicDataModule(L.LightningDataModule):
    def __init__(
        self,
        data_dir: str = "data/waveforms",
        window: int = 400,
        batch_size: int = 16,
        num_workers: int = 0,
        stations: tuple = ("IU.ANMO", "IU.COR"),
        val_fraction: float = 0.2,
    ):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        x = torch.randn(64, 3, self.hparams.window)
        self.train_set = TensorDataset(x, torch.randint(0, 3, (64, self.hparams.window)))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True,
                          num_workers=self.hparams.num_workers)


class PhasePickerModule(L.LightningModule):
    def __init__(
        self,
        in_channels: int = 3,
        n_phases: int = 3,
        width: int = 8,
        lr: float = 1e-3,
        sampling_rate: float = 100.0,  # truth: hparam
        norm_std=None,  # truth: hparam
        loss_fn: nn.Module = None,
        pick_threshold: float = 0.3,
        band: tuple = (1.0, 20.0),
        label_sigma_s: float = 0.1,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["loss_fn"])
        self.loss_fn = loss_fn or nn.CrossEntropyLoss()
        self.net = nn.Sequential(
            nn.Conv1d(in_channels, width, 7, padding=3), nn.ReLU(),
            nn.Conv1d(width, width, 7, padding=3), nn.ReLU(),
            nn.Conv1d(width, n_phases, 1),
        )
        std = torch.ones(in_channels) if norm_std is None else torch.as_tensor(norm_std, dtype=torch.float32)
        self.register_buffer("norm_std", std)

    def forward(self, x):
        return self.net(x / self.norm_std[None, :, None])

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def build_picker(args):
    stats = inventory_stats(args.stations)
    return PhasePickerModule(
        width=args.width,
        lr=args.lr,
        sampling_rate=stats["sampling_rate"],
        norm_std=stats["std"],
        loss_fn=nn.CrossEntropyLoss(label_smoothing=0.05),
        pick_threshold=float(stats["threshold"]),
        band=(args.freqmin, args.freqmax),
    )


class EventDetectorModule(L.LightningModule):
    def __init__(self, args):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(args)
        self.encoder = nn.Sequential(nn.Conv1d(3, args.width, 9, padding=4), nn.ReLU(), nn.AdaptiveAvgPool1d(1))
        self.head = nn.Linear(args.width, 2)

    def forward(self, x):
        return self.head(self.encoder(x).flatten(1))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class MagnitudeHeadModule(L.LightningModule):
    """Fine-tunes a magnitude regressor on top of a pretrained (frozen) picker encoder."""

    def __init__(
        self,
        backbone: nn.Module,
        hidden: int = 32,
        lr: float = 5e-4,
        freeze_backbone: bool = True,
        mag_scale: str = "ML",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone.requires_grad_(not freeze_backbone)
        self.head = nn.Sequential(nn.LazyLinear(hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x):
        return self.head(self.backbone(x).flatten(1))


def build_detector_from_cli(argv=("--width", "12")):
    args = picker_arg_parser().parse_args(list(argv))
    return EventDetectorModule(args)


# ----------------------------------------------------------------------------- hotel demand

@dataclass
class ForecastConfig:
    horizon: int = 7
    lookback: int = 28
    hidden: int = 32
    quantiles: tuple = (0.1, 0.5, 0.9)
    lr: float = 3e-3
    weight_decay: float = 1e-4
    granularity: str = "D"
    holidays: list = field(default_factory=lambda: ["2017-01-01", "2017-12-25"])


def load_bookings(days=120, seed=0):
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2017-01-01", periods=days, freq="D")
    return pd.DataFrame({
        "arrival_date": dates,
        "room_nights": rng.poisson(60, size=days),
        "adr": rng.normal(100, 12, size=days),
        "lead_time": rng.integers(0, 200, size=days),
        "market_segment": [["Online TA", "Direct", "Groups"][i % 3] for i in range(days)],
        "is_canceled": (rng.random(days) < 0.3).astype(int),
    })


class HotelDataModule(L.LightningDataModule):
    def __init__(
        self,
        csv_path: str = "data/hotel_bookings.csv",
        lookback: int = 28,
        horizon: int = 7,
        batch_size: int = 32,
        hotel: str = "City Hotel",
        features: tuple = ("adr", "lead_time"),
    ):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        df = load_bookings()
        x = torch.tensor(df[list(self.hparams.features)].to_numpy(), dtype=torch.float32)
        self.series = TensorDataset(x[:-self.hparams.horizon], x[self.hparams.horizon:, :1])


class DemandForecastModule(L.LightningModule):
    def __init__(
        self,
        n_features: int,
        horizon: int = 7,
        hidden: int = 32,
        quantiles: tuple = (0.1, 0.5, 0.9),
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        scaler: StandardScaler = None,  # truth: hparam
        feature_names=None,  # truth: hparam
        train_start: str = None,
        holidays: tuple = (),
        target_stats: dict = None,  # truth: hparam
        granularity: str = "D",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, horizon * len(quantiles))

    def forward(self, x):
        h, _ = self.lstm(x)
        return self.head(h[:, -1]).view(-1, self.hparams.horizon, len(self.hparams.quantiles))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


def build_forecaster(cfg: ForecastConfig, frame: pd.DataFrame):
    feats = frame[["adr", "lead_time"]].assign(dow=frame["arrival_date"].dt.dayofweek)
    scaler = StandardScaler().fit(feats.to_numpy(dtype=float))
    y = frame["room_nights"]
    return DemandForecastModule(
        n_features=feats.shape[1],
        horizon=cfg.horizon,
        hidden=cfg.hidden,
        quantiles=tuple(cfg.quantiles),
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        scaler=scaler,
        feature_names=feats.columns,
        train_start=str(frame["arrival_date"].min().date()),
        holidays=tuple(sorted(set(cfg.holidays))),
        target_stats={"mean": float(y.mean()), "std": y.std(), "n": len(y)},
        granularity=cfg.granularity,
    )


class CancellationClassifier(L.LightningModule):
    def __init__(
        self,
        n_features: int,
        hidden: int = 64,
        pos_weight: float = 1.0,
        class_names: list = None,
        segment_vocab: dict = None,
        calibrate=None,  # truth: hparam
        auroc=None,  # truth: hparam
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.auroc = auroc
        self.register_buffer("pos_weight", torch.tensor([pos_weight]))

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x).squeeze(-1)
        return F.binary_cross_entropy_with_logits(logits, y.float(), pos_weight=self.pos_weight)

    def predict_step(self, batch, batch_idx):
        p = torch.sigmoid(self.net(batch[0]).squeeze(-1)).numpy()
        return self.hparams.calibrate(p) if self.hparams.calibrate else p


def build_cancellation(frame=None):
    frame = load_bookings(seed=5) if frame is None else frame
    enc = LabelEncoder().fit(frame["market_segment"])
    neg, pos = np.bincount(frame["is_canceled"], minlength=2)
    return CancellationClassifier(
        n_features=4,
        pos_weight=float(neg / max(pos, 1)),
        class_names=["kept", "canceled"],
        segment_vocab=dict(zip(enc.classes_.tolist(), range(len(enc.classes_)))),
        calibrate=functools.partial(np.clip, a_min=0.01, a_max=0.99),
        auroc=torchmetrics.classification.BinaryAUROC(),
    )


# ----------------------------------------------------------------------------- surgical phases

SURGERY_CFG = """
dataset:
  root: data/cholec80
  fps: 1
  clip_len: 64
  phases: [Preparation, CalotTriangleDissection, ClippingCutting, GallbladderDissection,
           GallbladderPackaging, CleaningCoagulation, GallbladderRetraction]
  tools: [Grasper, Bipolar, Hook, Scissors, Clipper, Irrigator, SpecimenBag]
model:
  kind: refiner
  num_stages: 2
  num_layers: 4
  num_f_maps: 16
  feature_dim: 32
optim:
  lr: 5e-4
  weight_decay: 1.0e-5
  ema_decay: 0.99
"""


def load_surgery_cfg(overrides=()):
    return OmegaConf.merge(OmegaConf.create(SURGERY_CFG), OmegaConf.from_dotlist(list(overrides)))


class CholecDataModule(L.LightningDataModule):
    def __init__(
        self,
        root: str = "data/cholec80",
        fps: int = 1,
        clip_len: int = 64,
        batch_size: int = 1,
        num_workers: int = 0,
        phases: list = None,
    ):
        super().__init__()
        self.save_hyperparameters()


class PhaseRecognitionModule(L.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        m = cfg.model
        self.proj = nn.Conv1d(m.feature_dim, m.num_f_maps, 1)
        self.out = nn.Conv1d(m.num_f_maps, len(cfg.dataset.phases), 1)

    def forward(self, x):
        return self.out(F.relu(self.proj(x)))


class TemporalRefinerModule(L.LightningModule):
    def __init__(
        self,
        encoder: nn.Module,
        num_stages: int = 2,
        num_layers: int = 4,
        num_f_maps: int = 16,
        phase_names=None,  # truth: hparam
        class_weights: torch.Tensor = None,
        smoothing=None,  # truth: hparam
        lr: float = 5e-4,
        ema_decay: float = 0.99,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        n = len(phase_names) if phase_names is not None else 7
        self.stages = nn.ModuleList(nn.Conv1d(num_f_maps if i == 0 else n, n, 3, padding=1)
                                    for i in range(num_stages))

    def training_step(self, batch, batch_idx):
        x, y = batch
        h = self.encoder(x)
        loss = 0.0
        for stage in self.stages:
            h = stage(h)
            loss = loss + F.cross_entropy(h, y, weight=self.hparams.class_weights)
            if self.hparams.smoothing is not None:
                loss = loss + self.hparams.smoothing(h)
        return loss


class ToolPresenceModule(L.LightningModule):
    def __init__(
        self,
        backbone: nn.Module,
        num_tools: int = 7,
        lr: float = 1e-3,
        pos_weight=None,  # truth: hparam
        tool_names: list = None,
        threshold: float = 0.5,
    ):
        super().__init__()
        self.save_hyperparameters("num_tools", "lr", "pos_weight", "tool_names")
        self.backbone = backbone
        self.head = nn.LazyLinear(num_tools)
        self.threshold = float(threshold)


class SurgicalBaseModule(L.LightningModule):
    def __init__(self, lr: float = 1e-3, weight_decay: float = 0.0, warmup_epochs: int = 1, **kwargs):
        super().__init__()
        self.save_hyperparameters()

    def configure_optimizers(self):
        opt_cls = self.hparams.get("optimizer_cls", torch.optim.AdamW)
        return opt_cls(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class AnticipationModule(SurgicalBaseModule):
    def __init__(
        self,
        horizon_min: int = 5,
        num_instruments: int = 5,
        optimizer_cls=torch.optim.AdamW,  # truth: hparam
        lr: float = 1e-3,
        weight_decay: float = 0.0,
    ):
        super().__init__(lr=lr, weight_decay=weight_decay)
        self.save_hyperparameters()
        self.head = nn.Linear(32, num_instruments)


def tmse_smoothing(weight):
    return lambda logits: weight * (logits[..., 1:] - logits[..., :-1].detach()).pow(2).mean()


def _frame_encoder(dim, out):
    return nn.Sequential(nn.Conv1d(dim, out, 1), nn.ReLU())


LIT_REGISTRY = {}


def register(name):
    def deco(fn):
        LIT_REGISTRY[name] = fn
        return fn
    return deco


@register("phase")
def _build_phase(cfg):
    return PhaseRecognitionModule(cfg)


@register("refiner")
def _build_refiner(cfg):
    m, phases = cfg.model, cfg.dataset.phases
    counts = np.arange(1, len(phases) + 1, dtype=np.float64)
    return TemporalRefinerModule(
        encoder=_frame_encoder(m.feature_dim, m.num_f_maps),
        num_stages=m.num_stages,
        num_layers=m.num_layers,
        num_f_maps=m.num_f_maps,
        phase_names=phases,
        class_weights=torch.from_numpy(np.median(counts) / counts).float(),
        smoothing=tmse_smoothing(0.15),
        lr=float(cfg.optim.lr),
        ema_decay=cfg.optim.ema_decay,
    )


@register("tools")
def _build_tools(cfg):
    labels = np.random.default_rng(1).random((500, len(cfg.dataset.tools))) < 0.2
    pos = labels.sum(0)
    return ToolPresenceModule(
        backbone=_frame_encoder(cfg.model.feature_dim, 16),
        num_tools=len(cfg.dataset.tools),
        lr=cfg.optim.lr,
        pos_weight=(len(labels) - pos) / pos,
        tool_names=list(cfg.dataset.tools),
        threshold=np.float64(0.4),
    )


@register("anticipation")
def _build_anticipation(cfg):
    return AnticipationModule(horizon_min=3, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)


def build_surgical(kind=None, overrides=()):
    cfg = load_surgery_cfg(overrides)
    return LIT_REGISTRY[kind or cfg.model.kind](cfg)


def build_cholec_datamodule(cfg=None):
    cfg = cfg or load_surgery_cfg()
    d = cfg.dataset
    return CholecDataModule(root=d.root, fps=d.fps, clip_len=d.clip_len, phases=list(d.phases))


FACTORIES = {
    "SeismicDataModule": lambda: SeismicDataModule(stations=("IU.ANMO", "II.PFO", "CI.PASC")),
    "PhasePickerModule": lambda: build_picker(picker_arg_parser().parse_args([])),
    "EventDetectorModule": build_detector_from_cli,
    "MagnitudeHeadModule": lambda: MagnitudeHeadModule(backbone=build_picker(picker_arg_parser().parse_args([])).net),
    "HotelDataModule": HotelDataModule,
    "DemandForecastModule": lambda: build_forecaster(ForecastConfig(), load_bookings()),
    "CancellationClassifier": build_cancellation,
    "CholecDataModule": build_cholec_datamodule,
    "PhaseRecognitionModule": lambda: build_surgical("phase"),
    "TemporalRefinerModule": lambda: build_surgical(),
    "ToolPresenceModule": lambda: build_surgical("tools"),
    "SurgicalBaseModule": lambda: SurgicalBaseModule(lr=2e-4),
    "AnticipationModule": lambda: build_surgical("anticipation"),
}
