"""Lightning modules of the three projects, each made by a small factory from an OmegaConf or
argparse config plus what the data step computed (class weights, header spacing, a fitted scaler).
The affine registration net also has a plain-torch warm-up loop with its own checkpoint."""
import argparse
import dataclasses
import os
from collections import deque
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Literal, Optional

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight
from torch import nn


class Modality(str, Enum):
    CT, MR = "CT", "MR"


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    level: float = 40.0
    width: float = 400.0


IMAGING_CFG = OmegaConf.create({
    "data": {"modality": "CT", "labels": [0, 0, 0, 1, 1, 0, 0, 1, 0],
             "window": {"level": 40.0, "width": 400.0}, "hu_clip": [-1000.0, 400.0]},
    "model": {"width": 8, "num_classes": 2},
    "optim": {"lr": 3e-4},
})


class LitSliceClassifier(L.LightningModule):
    def __init__(
        self, num_classes: int = 2, width: int = 8, lr: float = 3e-4,
        modality: Modality = Modality.CT,  # truth: hparam
        window: Optional[dict] = None, hu_clip: tuple = (-1000.0, 400.0),
        class_weights: Optional[np.ndarray] = None,  # truth: hparam
        loss_fn: nn.Module = nn.CrossEntropyLoss(),  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(width, num_classes))
        self.loss_fn = loss_fn
        cw = np.ones(num_classes) if class_weights is None else class_weights
        self.register_buffer("class_w", torch.as_tensor(cw, dtype=torch.float32))


def build_classifier(cfg):
    labels = np.asarray(cfg.data.labels)
    return LitSliceClassifier(
        num_classes=cfg.model.num_classes, width=cfg.model.width, lr=cfg.optim.lr,
        modality=Modality(cfg.data.modality),
        window=dataclasses.asdict(WindowSpec(**cfg.data.window)),
        hu_clip=tuple(cfg.data.hu_clip),
        class_weights=compute_class_weight("balanced", classes=np.unique(labels), y=labels),
    )


class AffineRegNet(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(2, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.fc = nn.Linear(width * 16, 6)
        nn.init.zeros_(self.fc.weight)
        with torch.no_grad():
            self.fc.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def forward(self, moving, fixed):
        theta = self.fc(self.enc(torch.cat([moving, fixed], dim=1))).view(-1, 2, 3)
        grid = F.affine_grid(theta, list(moving.shape), align_corners=False)
        return F.grid_sample(moving, grid, align_corners=False), theta


def ncc(a, b, eps=1e-5):
    a, b = a - a.mean(dim=(2, 3), keepdim=True), b - b.mean(dim=(2, 3), keepdim=True)
    return ((a * b).sum((2, 3)) / (a.norm(dim=(2, 3)) * b.norm(dim=(2, 3)) + eps)).mean()


class LitAffineRegistration(L.LightningModule):
    def __init__(
        self, image_size: tuple = (16, 16), similarity: Literal["ncc", "mse"] = "ncc", reg_weight: float = 0.1,
        voxel_spacing: tuple = (1.0, 1.0),  # truth: hparam
        fixed_template: Optional[np.ndarray] = None, lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters("image_size", "similarity", "reg_weight", "voxel_spacing", "lr")
        self.net = AffineRegNet()
        tpl = np.zeros(image_size, "float32") if fixed_template is None else fixed_template
        self.register_buffer("template", torch.as_tensor(tpl, dtype=torch.float32)[None, None])

    def training_step(self, moving, batch_idx):
        warped, theta = self.net(moving, self.template.expand_as(moving))
        reg = (theta - torch.eye(2, 3).expand_as(theta)).pow(2).mean()
        return -ncc(warped, self.template.expand_as(moving)) + self.hparams.reg_weight * reg


def read_header(seed=0):
    rng = np.random.default_rng(seed)
    return {"pixdim": np.array([1.0, 0.78125, 0.78125, 2.5]), "atlas": rng.normal(size=(16, 16)).astype("float32")}


def build_registration(header, lr=1e-3):
    atlas = header["atlas"]
    return LitAffineRegistration(image_size=tuple(int(s) for s in atlas.shape),
                                 voxel_spacing=tuple(header["pixdim"][1:3]),
                                 fixed_template=atlas, lr=lr)


class RegistrationWarmup:
    def __init__(self, net, lr=1e-3, patience=3):
        self.net = net
        self.opt = torch.optim.Adam(net.parameters(), lr=lr)
        self.recent = deque(maxlen=patience)
        self.step = 0

    def step_pair(self, moving, fixed):
        warped, theta = self.net(moving, fixed)
        loss = -ncc(warped, fixed)
        self.opt.zero_grad(); loss.backward(); self.opt.step()
        self.recent.append(-loss.item())
        self.step += 1
        return theta.detach()


def save_registration_warmup(tmpdir):
    torch.manual_seed(0)
    header = read_header()
    fixed = torch.from_numpy(header["atlas"])[None, None].repeat(2, 1, 1, 1)
    moving = torch.roll(fixed, shifts=2, dims=3)
    warm = RegistrationWarmup(AffineRegNet())
    for _ in range(4):
        theta = warm.step_pair(moving, fixed)
    ckpt = {
        "net": warm.net.state_dict(), "optimizer": warm.opt.state_dict(), "step": warm.step,
        "theta_last": theta,
        "recent_ncc": warm.recent,  # truth: weights_only
        "fixed_shape": fixed.shape,
        "spacing_mm": header["pixdim"][1:3].tolist(),
        "identity": np.eye(2, 3, dtype="float32"),  # truth: weights_only
    }
    path = os.path.join(tmpdir, "affine_warmup.pt")
    torch.save(ckpt, path)
    return path


SURV_CFG = OmegaConf.create({"model": {"emb_dim": 16, "n_bins": 4, "hidden": 16},
                             "optim": {"lr": 3e-3, "weight_decay": 1e-4}, "followup_days": 730})


class BaseSurvivalModule(L.LightningModule):
    def __init__(
        self, lr: float = 1e-3, weight_decay: float = 0.0,
        time_bins=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()


class LitDeepHit(BaseSurvivalModule):
    def __init__(
        self, vocab_size: int = 16, emb_dim: int = 16, n_bins: int = 4,
        max_time: float = 730.0,  # truth: hparam
        excluded_codes: frozenset = frozenset(),  # truth: hparam
        lr: float = 1e-3,
    ):
        super().__init__(lr=lr, time_bins=np.linspace(0.0, max_time, n_bins + 1))
        self.emb = nn.EmbeddingBag(vocab_size, emb_dim, mode="mean")
        self.head = nn.Linear(emb_dim, n_bins)


def build_deephit(cfg, durations, vocab):
    return LitDeepHit(vocab_size=len(vocab), emb_dim=cfg.model.emb_dim, n_bins=cfg.model.n_bins,
                      max_time=durations.max(), lr=cfg.optim.lr)


class LitCoxEHR(L.LightningModule):
    def __init__(self, cfg: DictConfig):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.encoder = nn.GRU(cfg.model.emb_dim, cfg.model.hidden, batch_first=True)
        self.risk = nn.Linear(cfg.model.hidden, 1)


@dataclasses.dataclass
class TabularSurvConfig:
    n_covariates: int = 9
    hidden: int = 32
    registry_csv: Path = Path("data/registry.csv")
    strata: str = "site"


class LitCoxTabular(L.LightningModule):
    def __init__(
        self, n_covariates: int = 9, hidden: int = 32,
        run_config: Optional[dict] = None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.mlp = nn.Sequential(nn.Linear(n_covariates, hidden), nn.SELU(), nn.Linear(hidden, 1))


def build_cox_tabular(overrides=()):
    cfg = OmegaConf.merge(OmegaConf.structured(TabularSurvConfig), OmegaConf.from_dotlist(list(overrides)))
    return LitCoxTabular(cfg.n_covariates, cfg.hidden, run_config=OmegaConf.to_container(cfg, resolve=True))


class LitForecaster(L.LightningModule):
    def __init__(
        self, n_features: int, n_assets: int, hidden: int = 16, lr: float = 1e-3, freq: str = "B",
        train_start: Optional[pd.Timestamp] = None,  # truth: hparam
        feature_means: Optional[list] = None, scaler: Optional[StandardScaler] = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["scaler"])
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_assets)


class LitVolatilityModel(L.LightningModule):
    def __init__(
        self, n_features: int = 6,
        scaler: Optional[StandardScaler] = None,  # truth: hparam
        horizon: int = 5, target_vol: float = 0.10, lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, 16), nn.Softplus(), nn.Linear(16, 1))


class LitPortfolio(L.LightningModule):
    def __init__(
        self, n_assets: int = 4, tickers: tuple = ("AAA", "BBB", "CCC", "DDD"), risk_aversion: float = 1.0,
        cost_bps: Decimal = Decimal("2.5"),  # truth: hparam
        rebalance: pd.DateOffset = pd.offsets.BMonthEnd(),  # truth: hparam
        activation: type = nn.Tanh,  # truth: hparam
        position_fn=lambda z: torch.tanh(z),  # truth: hparam
        benchmark_weights: Optional[list] = None, lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(3 * n_assets, 32), activation(), nn.Linear(32, n_assets))

    def forward(self, x):
        return self.hparams.position_fn(self.net(x))


def trading_data(periods=120, tickers=("AAA", "BBB", "CCC", "DDD"), seed=3):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2021-01-04", periods=periods, freq="B")
    rets = pd.DataFrame(rng.normal(0.0, 0.01, (periods, len(tickers))), index=idx, columns=list(tickers))
    feats = pd.concat({"r": rets, "m5": rets.rolling(5).sum(), "v5": rets.rolling(5).std()}, axis=1).dropna()
    return rets, feats, StandardScaler().fit(feats.to_numpy())


def build_forecaster(args):
    rets, feats, scaler = trading_data(tickers=tuple(args.tickers))
    return LitForecaster(n_features=feats.shape[1], n_assets=rets.shape[1], lr=args.lr, freq=args.freq,
                         train_start=feats.index[0], feature_means=scaler.mean_.tolist(), scaler=scaler)


def build_vol_model(args):
    rets, feats, scaler = trading_data(tickers=tuple(args.tickers))
    return LitVolatilityModel(n_features=feats.shape[1], scaler=scaler, lr=args.lr,
                              target_vol=float(rets.sum(axis=1).std() * np.sqrt(252)))


def build_portfolio(args):
    n = len(args.tickers)
    return LitPortfolio(n_assets=n, tickers=tuple(args.tickers), risk_aversion=args.risk_aversion,
                        benchmark_weights=(np.ones(n) / n).tolist(), lr=args.lr)


def trading_cli(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--tickers", nargs="+", default=["AAA", "BBB", "CCC", "DDD"])
    p.add_argument("--freq", default="B")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--risk-aversion", type=float, default=2.0)
    return p.parse_args(argv)


FACTORIES = {
    "Modality": lambda: Modality("CT"),
    "LitSliceClassifier": lambda: build_classifier(IMAGING_CFG),
    "LitAffineRegistration": lambda: build_registration(read_header()),
    "RegistrationWarmup": lambda: RegistrationWarmup(AffineRegNet()),
    "LitDeepHit": lambda: build_deephit(SURV_CFG, np.array([12.0, 400.0, 730.0]), {"<pad>": 0, "I10": 1}),
    "LitCoxEHR": lambda: LitCoxEHR(SURV_CFG),
    "LitCoxTabular": lambda: build_cox_tabular(["hidden=16"]),
    "LitForecaster": lambda: build_forecaster(trading_cli([])),
    "LitVolatilityModel": lambda: build_vol_model(trading_cli([])),
    "LitPortfolio": lambda: build_portfolio(trading_cli([])),
}
NOT_BUILT = {"BaseSurvivalModule": "abstract base: only its subclasses are trained"}
