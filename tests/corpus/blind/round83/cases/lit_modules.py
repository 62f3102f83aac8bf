"""Lightning ports of the three projects: plume segmentation / triage / emission regression,
odds calibration and Kelly staking, grasp-quality networks.

Modules are never constructed by hand in the training scripts: they come out of the
`build_*` functions below (registries, config dataclasses, OmegaConf configs, argparse),
which is also how FACTORIES builds them.
"""
import argparse
import functools
import math
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from enum import Enum
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from scipy import optimize
from torch.utils.data import DataLoader, TensorDataset

BANDS = ("B8A", "B11", "B12")


# ============================================================================ shared helpers

def synthetic_tiles(n=24, bands=4, tile=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.25, 0.02, (n, bands, tile, tile)).astype(np.float32)
    yy, xx = np.mgrid[0:tile, 0:tile]
    y = np.zeros((n, tile, tile), np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(4, tile - 4, 2)
        y[i] = ((yy - cy) ** 2 / 9.0 + (xx - cx) ** 2 / 2.5) < 1.0
        x[i, 2] -= 0.03 * y[i]
    return x, y


def tile_statistics(x, y):
    return {"mean": x.mean(axis=(0, 2, 3)), "std": x.std(axis=(0, 2, 3)) + 1e-6, "plume_fraction": y.mean()}


def conv_stack(cin, width, depth=2):
    layers = []
    for i in range(depth):
        layers += [nn.Conv2d(cin if i == 0 else width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
    return nn.Sequential(*layers)


class RandomFlip:
    """Flip tile and mask together along a random axis."""

    def __init__(self, p=0.5, seed=0):
        self.p = p
        self.rng = np.random.default_rng(seed)

    def __call__(self, x, y):
        if self.rng.random() < self.p:
            axis = int(self.rng.integers(1, 3))
            x, y = np.flip(x, axis=axis).copy(), np.flip(y, axis=axis - 1).copy()
        return x, y


# ============================================================================ methane plumes

class PlumeSegLit(pl.LightningModule):
    def __init__(
        self,
        in_bands: int = 4,
        base_channels: int = 8,
        lr: float = 1e-3,
        band_means=None,  # truth: hparam
        band_stds=None,
        pos_weight: float = 4.0,
        loss_fn: nn.Module | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["loss_fn"])
        self.loss_fn = loss_fn or nn.BCEWithLogitsLoss(pos_weight=torch.tensor([pos_weight]))
        mean = torch.as_tensor(band_means if band_means is not None else [0.0] * in_bands, dtype=torch.float32)
        std = torch.as_tensor(band_stds if band_stds is not None else [1.0] * in_bands, dtype=torch.float32)
        self.register_buffer("band_mean", mean.view(1, -1, 1, 1))
        self.register_buffer("band_std", std.view(1, -1, 1, 1))
        self.net = nn.Sequential(conv_stack(in_bands, base_channels), nn.Conv2d(base_channels, 1, 1))

    def forward(self, x):
        return self.net((x - self.band_mean) / self.band_std).squeeze(1)

    def segmentation_loss(self, logits, y):
        return self.loss_fn(logits, y)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.segmentation_loss(self(x), y.float())
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self(x) > 0
        inter = (pred & y.bool()).sum()
        union = (pred | y.bool()).sum().clamp(min=1)
        self.log("val/iou", inter / union)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


class PlumeSegDiceLit(PlumeSegLit):
    def __init__(
        self,
        dice_weight: float = 0.5,  # truth: hparam
        smooth: float = 1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.dice_weight = dice_weight
        self.smooth = smooth

    def segmentation_loss(self, logits, y):
        p = torch.sigmoid(logits)
        inter = (p * y).sum(dim=(1, 2))
        dice = 1 - ((2 * inter + self.smooth) / (p.sum(dim=(1, 2)) + y.sum(dim=(1, 2)) + self.smooth)).mean()
        return (1 - self.dice_weight) * self.loss_fn(logits, y) + self.dice_weight * dice


PLUME_MODELS = {"bce": PlumeSegLit, "bce+dice": PlumeSegDiceLit}


def build_plume_module(kind, x, y, **overrides):
    stats = tile_statistics(x, y)
    frac = stats["plume_fraction"]
    kwargs = dict(
        in_bands=x.shape[1],
        band_means=stats["mean"],
        band_stds=stats["std"].tolist(),
        pos_weight=float((1 - frac) / max(frac, 1e-3)),
    )
    if kind == "bce+dice":
        kwargs["dice_weight"] = 1.0 - frac
    kwargs.update(overrides)
    return PLUME_MODELS[kind](**kwargs)


class PlumeDetectorLit(pl.LightningModule):
    """Scene-level plume / no-plume triage ahead of segmentation."""

    def __init__(
        self,
        data_root: str,  # truth: hparam
        log_dir: str = "lightning_logs",
        threshold: float = 0.5,
        postprocess=None,  # truth: hparam
        width: int = 16,
    ):
        super().__init__()
        data_root = Path(data_root).expanduser()
        log_dir = str(log_dir)
        self.save_hyperparameters()
        self.backbone = nn.Sequential(
            nn.Conv2d(len(BANDS) + 1, width, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 1))

    def forward(self, x):
        return self.backbone(x).squeeze(1)

    def training_step(self, batch, batch_idx):
        x, has_plume = batch
        loss = F.binary_cross_entropy_with_logits(self(x), has_plume.float())
        self.log("train/bce", loss)
        return loss

    def predict_step(self, batch, batch_idx):
        probs = torch.sigmoid(self(batch[0]))
        if self.hparams.postprocess is not None:
            return self.hparams.postprocess(probs)
        return probs > self.hparams.threshold

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class PlumeDetectorTTALit(PlumeDetectorLit):
    """Same detector, averaging logits over flipped copies at predict time."""

    def __init__(self, tta_flips=None, **kwargs):
        PlumeDetectorLit.__init__(self, **kwargs)
        self.tta_flips = tta_flips if tta_flips is not None else np.zeros((1, 2), np.int64)

    def forward(self, x):
        outs = []
        for fy, fx in self.tta_flips.tolist():
            dims = [d for d, f in ((2, fy), (3, fx)) if f]
            outs.append(self.backbone(torch.flip(x, dims) if dims else x))
        return torch.stack(outs).mean(0).squeeze(1)


def build_plume_detector(data_root, threshold=0.5, tta=False):
    log_dir = Path("lightning_logs") / ("detector_tta" if tta else "detector")
    min_cover = 0.05

    def postprocess(p):
        return (p > threshold) & (p.mean() > min_cover)

    common = dict(data_root=str(data_root), log_dir=log_dir, threshold=threshold, postprocess=postprocess)
    if tta:
        return PlumeDetectorTTALit(tta_flips=np.array([[0, 0], [1, 0], [0, 1]]), **common)
    return PlumeDetectorLit(**common)


def emission_arg_parser():
    p = argparse.ArgumentParser("emission-regressor")
    p.add_argument("--data-root", type=Path, default=Path("data/plume_crops"))
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--wind-features", nargs="+", default=["u10", "v10", "speed"])
    p.add_argument("--log-target", action="store_true")
    return p


class EmissionRateRegressor(pl.LightningModule):
    """Plume crop + wind features -> log source rate (kg/h)."""

    def __init__(self, args: argparse.Namespace):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(args)
        self.encoder = nn.Sequential(conv_stack(1, 8, depth=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(8 + len(args.wind_features), args.hidden), nn.ReLU(),
                                  nn.Linear(args.hidden, 1))

    def forward(self, enh, wind):
        return self.head(torch.cat([self.encoder(enh), wind], dim=1)).squeeze(1)

    def training_step(self, batch, batch_idx):
        enh, wind, q = batch
        target = torch.log1p(q) if self.hparams.log_target else q
        loss = F.smooth_l1_loss(self(enh, wind), target)
        self.log("train/huber", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class PlumeTileDataModule(pl.LightningDataModule):
    def __init__(
        self,
        data_dir: str,
        tile: int = 16,
        batch_size: int = 8,
        bands: tuple = BANDS,
        num_workers: int = 0,
        transform=None,
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["transform"])
        self.transform = transform

    def setup(self, stage=None):
        x, y = synthetic_tiles(32, len(self.hparams.bands) + 1, self.hparams.tile, self.hparams.seed)
        if self.transform is not None:
            pairs = [self.transform(a, b) for a, b in zip(x, y)]
            x, y = np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs])
        self.train_set = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True,
                          num_workers=self.hparams.num_workers)


# ============================================================================ odds calibration

class Market(Enum):
    MATCH_ODDS = "1x2"
    OVER_UNDER_25 = "ou2.5"


@dataclass
class OddsTrainConfig:
    hidden: list = field(default_factory=lambda: [32, 16])
    lr: float = 3e-3
    label_smoothing: float = 0.05
    bankroll: str = "1000.00"
    kelly_fraction: float = 0.25
    max_stake_frac: float = 0.05
    batch_size: int = 64
    seed: int = 17


ODDS_PRESETS = {
    "epl-1x2": {"hidden": [32, 16], "lr": 3e-3, "label_smoothing": 0.05},
    "lowlimit": {"hidden": [16], "lr": 1e-3, "label_smoothing": 0.1, "kelly_fraction": 0.1},
}


def synthetic_odds_frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    p_home = rng.uniform(0.25, 0.65, n)
    p_draw = rng.uniform(0.2, 0.3, n)
    p = np.stack([p_home, p_draw, 1 - p_home - p_draw], axis=1).clip(0.05)
    p = p / p.sum(1, keepdims=True)
    df = pd.DataFrame({
        "match_id": np.arange(n),
        "kickoff": pd.date_range("2023-08-12", periods=n, freq="1D"),
        "league": rng.choice(["EPL", "LALIGA"], n),
        "odds_home": np.round(1 / (p[:, 0] * 1.05), 2),
        "odds_draw": np.round(1 / (p[:, 1] * 1.05), 2),
        "odds_away": np.round(1 / (p[:, 2] * 1.05), 2),
        "elo_diff": rng.normal(0, 0.3, n),
        "rest_diff": rng.integers(-3, 4, n),
        "result": np.array([rng.choice(3, p=row) for row in p]),
    })
    return df


class OddsCalibratorLit(pl.LightningModule):
    def __init__(
        self,
        n_features: int,
        hidden: tuple = (32, 16),
        market: Market = Market.MATCH_ODDS,  # truth: hparam
        lr: float = 3e-3,
        class_weights: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
        outcomes: tuple = ("home", "draw", "away"),
    ):
        super().__init__()
        self.save_hyperparameters()
        dims = [n_features, *hidden]
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.GELU()]
        self.net = nn.Sequential(*layers, nn.Linear(dims[-1], len(outcomes)))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, weight=self.hparams.class_weights,
                               label_smoothing=self.hparams.label_smoothing)
        self.log("train/nll", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def build_odds_calibrator(cfg: OddsTrainConfig, frame, feature_cols):
    freq = frame.result.value_counts(normalize=True).sort_index().to_numpy()
    return OddsCalibratorLit(
        n_features=len(feature_cols),
        hidden=tuple(cfg.hidden),
        lr=cfg.lr,
        class_weights=torch.tensor(1.0 / freq, dtype=torch.float32),
        label_smoothing=cfg.label_smoothing,
    )


class KellyStakingLit(pl.LightningModule):
    """Learns a stake fraction per bet; the loss is the negative log-growth of the bankroll."""

    def __init__(
        self,
        n_features: int,
        lr: float = 1e-3,
        bankroll=Decimal("1000.00"),  # truth: hparam
        kelly_fraction: float = 0.25,
        max_stake_frac: float = 0.05,
        odds_table: pd.DataFrame | None = None,
        risk_model: nn.Module | None = None,
    ):
        super().__init__()
        self.save_hyperparameters("n_features", "lr", "bankroll", "kelly_fraction", "max_stake_frac")
        self.odds_table = odds_table
        self.risk_model = risk_model or nn.Identity()
        self.policy = nn.Sequential(nn.Linear(n_features, 16), nn.Tanh(), nn.Linear(16, 3))

    def training_step(self, batch, batch_idx):
        x, odds, won = batch
        frac = torch.softmax(self.policy(self.risk_model(x)), dim=1) * self.hparams.max_stake_frac
        growth = torch.log1p((frac * (odds - 1) * won).sum(1) - (frac * (1 - won)).sum(1))
        loss = -growth.mean()
        self.log("train/neg_log_growth", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


def build_kelly_module(cfg: OddsTrainConfig, frame, feature_cols):
    return KellyStakingLit(
        n_features=len(feature_cols),
        lr=cfg.lr,
        bankroll=Decimal(cfg.bankroll),
        kelly_fraction=cfg.kelly_fraction,
        max_stake_frac=cfg.max_stake_frac,
        odds_table=frame[["match_id", "odds_home", "odds_draw", "odds_away"]].copy(),
    )


def multiclass_nll(logits, target):
    return F.cross_entropy(logits, target)


class TemperatureScalerLit(pl.LightningModule):
    def __init__(
        self,
        base_model: nn.Module,
        init_temperature: float = 1.5,
        calibrate_on: str = "val",
        metric_fn=multiclass_nll,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["base_model"])
        self.base_model = base_model.eval()
        for p in self.base_model.parameters():
            p.requires_grad_(False)
        self.temperature = nn.Parameter(torch.tensor([init_temperature]))

    def forward(self, x):
        return self.base_model(x) / self.temperature

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.hparams.metric_fn(self(x), y)
        self.log("calib/nll", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.LBFGS([self.temperature], lr=0.05, max_iter=50)


def build_temperature_scaler(base_lit: OddsCalibratorLit, frame, feature_cols):
    with torch.no_grad():
        logits = base_lit(torch.tensor(frame[feature_cols].to_numpy(np.float32))).numpy()
    y = frame.result.to_numpy()

    def nll(t):
        z = logits / t
        z = z - z.max(1, keepdims=True)
        return float(-(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1))).mean())

    res = optimize.minimize_scalar(nll, bounds=(0.05, 10.0), method="bounded")
    return TemperatureScalerLit(base_model=base_lit.net, init_temperature=float(res.x))


class MatchOddsDataModule(pl.LightningDataModule):
    def __init__(
        self,
        frame: pd.DataFrame,
        feature_cols: list,
        target: str = "result",
        batch_size: int = 64,
        val_from: str = "2024-02-01",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["frame"])
        self.frame = frame

    def setup(self, stage=None):
        hp = self.hparams
        is_val = self.frame.kickoff >= pd.Timestamp(hp.val_from)
        X = torch.tensor(self.frame[hp.feature_cols].to_numpy(np.float32))
        y = torch.tensor(self.frame[hp.target].to_numpy())
        self.train_set = TensorDataset(X[~is_val.to_numpy()], y[~is_val.to_numpy()])
        self.val_set = TensorDataset(X[is_val.to_numpy()], y[is_val.to_numpy()])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.hparams.batch_size)


def build_match_datamodule(cfg: OddsTrainConfig, frame, feature_cols):
    return MatchOddsDataModule(
        frame=frame,
        feature_cols=feature_cols,
        batch_size=cfg.batch_size,
        val_from=frame.kickoff.quantile(0.8).isoformat(),
    )


# ============================================================================ grasp quality

GRASP_YAML = """
model:
  name: gqcnn
  in_size: ${data.crop_size}
  channels: [8, 16]
  fc: 32
data:
  crop_size: 16
  depth_range: [0.45, 0.85]
  batch_size: 32
gripper:
  max_width: 0.085
  finger_depth: 0.02
  friction_coef: 0.6
sampler:
  num_candidates: 64
optim:
  lr: 0.002
"""

CAMERA_K = [[525.0, 0.0, 319.5], [0.0, 525.0, 239.5], [0.0, 0.0, 1.0]]


@dataclass
class GripperSpec:
    max_width: float = 0.085
    finger_depth: float = 0.02
    friction_coef: float = 0.6


def make_gqcnn(model_cfg):
    c0, c1 = model_cfg.channels
    flat = c1 * (model_cfg.in_size // 4) ** 2
    return nn.Sequential(
        nn.Conv2d(1, c0, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c0, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(flat, model_cfg.fc), nn.ReLU(), nn.Linear(model_cfg.fc, 1))


class GraspQualityLit(pl.LightningModule):
    def __init__(self, cfg: DictConfig):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = make_gqcnn(cfg.model)

    def forward(self, depth):
        return self.net(depth).squeeze(1)

    def training_step(self, batch, batch_idx):
        depth, label = batch
        loss = F.binary_cross_entropy_with_logits(self(depth), label.float())
        self.log("train/bce", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.optim.lr)


class GraspQualityPortableLit(pl.LightningModule):
    """Same network; stores a plain-dict copy of the config so checkpoints load anywhere."""

    def __init__(self, cfg: DictConfig):
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg, resolve=True))
        self.net = make_gqcnn(cfg.model)

    def forward(self, depth):
        return self.net(depth).squeeze(1)

    def training_step(self, batch, batch_idx):
        depth, label = batch
        loss = F.binary_cross_entropy_with_logits(self(depth), label.float())
        self.log("train/bce", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.optim["lr"])


GRASP_MODELS = {"gqcnn": GraspQualityLit, "gqcnn-portable": GraspQualityPortableLit}


def load_grasp_config(overrides=()):
    return OmegaConf.merge(OmegaConf.create(GRASP_YAML), OmegaConf.from_dotlist(list(overrides)))


def build_grasp_module(cfg: DictConfig):
    return GRASP_MODELS[cfg.model.name](cfg)


def sample_antipodal(depth, num, friction_coef, seed=0):
    rng = np.random.default_rng(seed)
    gy, gx = np.gradient(depth)
    centres = rng.integers(2, depth.shape[-1] - 2, (num, 2))
    angles = np.arctan2(gy[centres[:, 0], centres[:, 1]], gx[centres[:, 0], centres[:, 1]])
    keep = np.abs(np.sin(angles)) < math.sin(math.atan(friction_coef))
    return centres[keep], angles[keep]


class AntipodalGraspLit(pl.LightningModule):
    def __init__(
        self,
        gripper: GripperSpec,  # truth: hparam
        crop_size: int = 16,
        depth_range=(0.45, 0.85),  # truth: hparam
        camera_intrinsics: torch.Tensor | None = None,
        friction_coef: float = 0.6,
        backbone: nn.Module | None = None,  # truth: hparam
        sampler=None,
        num_candidates: int = 64,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["sampler"])
        self.backbone = backbone if backbone is not None else nn.Identity()
        self.sampler = sampler
        self.width_head = nn.Linear(1, 1)

    def forward(self, depth):
        return self.backbone(depth).squeeze(1)

    def training_step(self, batch, batch_idx):
        depth, label = batch
        lo, hi = self.hparams.depth_range
        depth = (depth.clamp(lo, hi) - lo) / (hi - lo)
        loss = F.binary_cross_entropy_with_logits(self(depth), label.float())
        self.log("train/bce", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-3)


def build_antipodal_module(cfg: DictConfig):
    return AntipodalGraspLit(
        gripper=GripperSpec(**cfg.gripper),
        crop_size=cfg.data.crop_size,
        depth_range=cfg.data.depth_range,
        camera_intrinsics=torch.tensor(CAMERA_K),
        friction_coef=float(cfg.gripper.friction_coef),
        backbone=make_gqcnn(cfg.model),
        sampler=functools.partial(sample_antipodal, num=cfg.sampler.num_candidates,
                                  friction_coef=cfg.gripper.friction_coef),
        num_candidates=cfg.sampler.num_candidates,
    )


class GraspDataModule(pl.LightningDataModule):
    def __init__(self, cfg: dict):
        super().__init__()
        self.save_hyperparameters(cfg)

    def setup(self, stage=None):
        rng = np.random.default_rng(0)
        c = self.hparams.crop_size
        lo, hi = self.hparams.depth_range
        depth = rng.uniform(lo, hi, (64, 1, c, c)).astype(np.float32)
        label = (depth.mean(axis=(1, 2, 3)) < (lo + hi) / 2).astype(np.int64)
        self.train_set = TensorDataset(torch.from_numpy(depth), torch.from_numpy(label))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)


# ============================================================================ factories

def _plume_data():
    return synthetic_tiles(n=16, bands=len(BANDS) + 1, tile=16, seed=3)


def _odds_setup(preset="epl-1x2"):
    cfg = OddsTrainConfig(**ODDS_PRESETS[preset])
    frame = synthetic_odds_frame(120, seed=cfg.seed)
    feature_cols = list(frame.columns[3:8])
    return cfg, frame, feature_cols


FACTORIES = {
    "PlumeSegLit": lambda: build_plume_module("bce", *_plume_data()),
    "PlumeSegDiceLit": lambda: build_plume_module("bce+dice", *_plume_data(), base_channels=4),
    "PlumeDetectorLit": lambda: build_plume_detector(Path("data") / "s2_tiles"),
    "PlumeDetectorTTALit": lambda: build_plume_detector(Path("data") / "s2_tiles", threshold=0.4, tta=True),
    "EmissionRateRegressor": lambda: EmissionRateRegressor(
        emission_arg_parser().parse_args(["--hidden", "16", "--log-target"])),
    "PlumeTileDataModule": lambda: PlumeTileDataModule(
        data_dir=str(Path("data") / "s2_tiles"), bands=tuple(BANDS), transform=RandomFlip(p=0.5, seed=1)),
    "Market": lambda: Market.MATCH_ODDS,
    "OddsCalibratorLit": lambda: build_odds_calibrator(*_odds_setup()),
    "KellyStakingLit": lambda: build_kelly_module(*_odds_setup("lowlimit")),
    "TemperatureScalerLit": lambda: build_temperature_scaler(
        build_odds_calibrator(*_odds_setup()), *_odds_setup()[1:]),
    "MatchOddsDataModule": lambda: build_match_datamodule(*_odds_setup()),
    "GraspQualityLit": lambda: build_grasp_module(load_grasp_config()),
    "GraspQualityPortableLit": lambda: build_grasp_module(load_grasp_config(["model.name=gqcnn-portable"])),
    "AntipodalGraspLit": lambda: build_antipodal_module(load_grasp_config(["gripper.friction_coef=0.5"])),
    "GraspDataModule": lambda: GraspDataModule(OmegaConf.to_container(load_grasp_config().data, resolve=True)),
}
