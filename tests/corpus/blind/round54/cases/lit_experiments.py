"""LightningModules / LightningDataModules for the three projects.

`train.py --experiment NAME` reads EXPERIMENTS_YAML, looks NAME up in BUILDERS and gets a
LightningModule back; the builders fit the text pipeline, design the band-pass filter or
derive the battery parameters from the price history before constructing the module.
"""
import argparse
import dataclasses
import functools
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import scipy.signal
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from omegaconf import OmegaConf
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import LabelEncoder

EXPERIMENTS_YAML = """
bigcn: {text_dim: 48, hidden: 32, optimizer: adamw, lr: 0.003, weight_decay: 1.0e-4, dropedge: 0.2}
text_baseline: {embed_dim: 32, max_len: 64, lr: 0.001}
physnet:
  base_ch: 8
  frames: 180
  lr: 0.0005
  loss: neg_pearson
  preproc: {fs: 30, low_hz: 0.7, high_hz: 3.0, order: 3}
rppg_regressor: {fs: 30.0, window_s: 6.0, band: [0.7, 3.0], order: 3, loss: neg_pearson, lr: 0.0005}
tscan: {frame_depth: 10, img_size: 36, hr_range: [40, 180], lr: 0.001, dropout: 0.25}
dqn:
  hidden_sizes: [64, 64]
  gamma: 0.99
  lr: 0.001
  target_sync: 100
  battery: {capacity_mwh: 2.0, power_mw: 1.0, efficiency: 0.92}
  eps: {start: 1.0, end: 0.05, decay_steps: 2000}
ppo: {clip_eps: 0.2, gae_lambda: 0.95, env: {window: 24, episode_hours: 48}}
"""

MARKET_YAML = "market: EPEX-DE-LU\nstart: 2024-03-01\n"

_TEXTS = ["breaking vaccine hoax video viral", "official police report confirmed", "leaked photo shocking claim",
          "president says cure debunked", "source confirmed official report", "viral claim fake election"] * 4
_LABELS = ["false", "non-rumor", "unverified", "true", "non-rumor", "false"] * 4


def load_experiments():
    return OmegaConf.create(EXPERIMENTS_YAML)


def fit_text_pipeline(max_features=48):
    vec = TfidfVectorizer(max_features=max_features, ngram_range=(1, 2)).fit(_TEXTS)
    return vec, LabelEncoder().fit(_LABELS)


def market_prices(hours=24 * 14, seed=0):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-03-01", periods=hours, freq="h")
    return pd.Series(60 + 25 * np.sin(idx.hour.to_numpy() / 24 * 2 * np.pi) + rng.normal(0, 8, hours), index=idx)


# ----------------------------------------------------------------------------- building blocks

class BiGCNEncoder(nn.Module):
    def __init__(self, d_in=3, hidden=32):
        super().__init__()
        self.td = nn.Linear(d_in, hidden)
        self.bu = nn.Linear(d_in, hidden)

    def forward(self, x, adj):
        return torch.cat([(adj @ self.td(x)).mean(0), (adj.t() @ self.bu(x)).mean(0)], -1)


class NegPearsonLoss(nn.Module):
    def forward(self, pred, target):
        pred, target = pred - pred.mean(-1, keepdim=True), target - target.mean(-1, keepdim=True)
        return (1 - (pred * target).sum(-1) / (pred.norm(dim=-1) * target.norm(dim=-1) + 1e-8)).mean()


class PhysNetLite(nn.Module):
    def __init__(self, base_ch=8):
        super().__init__()
        self.net = nn.Sequential(nn.Conv3d(3, base_ch, (3, 3, 3), padding=1), nn.ReLU(),
                                 nn.AdaptiveAvgPool3d((None, 1, 1)), nn.Conv3d(base_ch, 1, 1))

    def forward(self, video):
        return self.net(video.permute(0, 2, 1, 3, 4)).flatten(1)


@dataclasses.dataclass(frozen=True)
class BatterySpec:
    capacity_mwh: float = 2.0
    power_mw: float = 1.0
    efficiency: float = 0.92


def profit_minus_degradation(price, delta_mwh, efficiency, cost_per_mwh=4.0):
    sold = -delta_mwh * efficiency if delta_mwh < 0 else -delta_mwh
    return price * sold - cost_per_mwh * abs(delta_mwh)


def linear_epsilon(step, start=1.0, end=0.05, decay_steps=2000):
    return max(end, start - (start - end) * step / decay_steps)


def l1_attention_mask(mask):
    return mask / mask.abs().sum(dim=(-2, -1), keepdim=True).clamp_min(1e-6)


LOSSES = {"neg_pearson": NegPearsonLoss, "mse": nn.MSELoss, "smooth_l1": nn.SmoothL1Loss}
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
REWARDS = {"profit_minus_degradation": profit_minus_degradation}


# ----------------------------------------------------------------------------- fake news

class LitBiGCN(L.LightningModule):
    def __init__(
        self,
        text_dim: int,
        hidden: int = 32,
        num_classes: int = 4,
        graph_encoder: nn.Module = None,  # truth: hparam
        class_weights: torch.Tensor = None,
        label_names=None,  # truth: hparam
        optimizer: str = "adamw",
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        dropedge: float = 0.2,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.graph_encoder = graph_encoder if graph_encoder is not None else BiGCNEncoder(3, hidden)
        self.text_mlp = nn.Sequential(nn.Linear(text_dim, hidden), nn.ReLU())
        self.head = nn.Linear(3 * hidden, num_classes)
        self.register_buffer("loss_weights", class_weights if class_weights is not None else torch.ones(num_classes))

    def forward(self, x, adj, text):
        return self.head(torch.cat([self.graph_encoder(x, adj), self.text_mlp(text)], -1))

    def training_step(self, batch, batch_idx):
        x, adj, text, y = batch
        loss = F.cross_entropy(self(x, adj, text).unsqueeze(0), y.view(1), weight=self.loss_weights)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        opt_cls = OPTIMIZERS[self.hparams.optimizer]
        return opt_cls(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class LitTextBaseline(L.LightningModule):
    def __init__(
        self,
        vocab,  # truth: hparam
        idf=None,
        embed_dim: int = 32,
        num_classes: int = 4,
        max_len: int = 64,
        pad_idx: int = 0,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.EmbeddingBag(len(vocab) + 1, embed_dim, mode="mean", padding_idx=pad_idx)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, tokens):
        return self.head(self.embed(tokens))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def early_detection_parser():
    p = argparse.ArgumentParser()
    p.add_argument("--data-root", type=Path, default=Path("data/twitter16"))
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--deadline", type=int, default=60)
    p.add_argument("--lr", type=float, default=1e-3)
    return p


class LitEarlyDetector(L.LightningModule):
    def __init__(self, args):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(args)
        self.encoder = BiGCNEncoder(3, args.hidden)
        self.head = nn.Linear(2 * args.hidden, 4)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class CascadeDataModule(L.LightningDataModule):
    def __init__(self, data_dir: str = "data/twitter16", batch_size: int = 1, max_features: int = 48,
                 deadlines=(15, 30, 60, 120), num_workers: int = 0):
        super().__init__()
        self.save_hyperparameters()


# ----------------------------------------------------------------------------- rPPG

class LitPhysNet(L.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = PhysNetLite(cfg.base_ch)
        self.criterion = LOSSES[cfg.loss]()

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class LitRPPGRegressor(L.LightningModule):
    def __init__(
        self,
        fs: float = 30.0,
        window_s: float = 6.0,
        band=(0.7, 3.0),
        filter_coeffs=None,  # truth: hparam
        loss_fn: nn.Module = None,  # truth: hparam
        preproc: dict = None,
        lr: float = 5e-4,
    ):
        super().__init__()
        band = tuple(float(f) for f in band)
        self.save_hyperparameters()
        self.net = PhysNetLite(8)
        self.loss_fn = loss_fn if loss_fn is not None else NegPearsonLoss()
        self.window = int(round(fs * window_s))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class LitTSCAN(L.LightningModule):
    def __init__(
        self,
        frame_depth: int = 10,
        img_size: int = 36,
        hr_range=(40, 180),  # truth: hparam
        lr: float = 1e-3,
        attention_mask_fn=None,
        dropout: float = 0.25,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["attention_mask_fn"])
        self.attention_mask_fn = attention_mask_fn or l1_attention_mask
        self.motion = nn.Conv2d(3, 16, 3, padding=1)
        self.appearance = nn.Conv2d(3, 16, 3, padding=1)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(16, 1))

    def forward(self, diff, raw):
        mask = self.attention_mask_fn(torch.sigmoid(self.appearance(raw).mean(1, keepdim=True)))
        return self.head((self.motion(diff) * mask).mean((-2, -1))).squeeze(-1)


class LitPOSRefiner(L.LightningModule):
    """Learns a 2x3 correction on top of the POS projection."""

    def __init__(self, fs: float = 30.0, window: int = 48, projection=None, lr: float = 1e-2):
        super().__init__()
        self.save_hyperparameters("fs", "window", "lr")
        init = torch.as_tensor(projection if projection is not None else np.eye(2, 3), dtype=torch.float32)
        self.projection = nn.Parameter(init)


class RPPGDataModule(L.LightningDataModule):
    def __init__(self, root: str = "data/UBFC-rPPG", clip_len: int = 180, stride: int = 60,
                 subjects=("s01", "s02", "s03"), batch_size: int = 4):
        super().__init__()
        self.save_hyperparameters()


# ----------------------------------------------------------------------------- battery arbitrage

class LitDQNArbitrage(L.LightningModule):
    def __init__(
        self,
        obs_dim: int = 27,
        n_actions: int = 3,
        hidden_sizes=(64, 64),
        gamma: float = 0.99,
        lr: float = 1e-3,
        target_sync: int = 100,
        battery=None,  # truth: hparam
        reward_fn=None,  # truth: hparam
        epsilon_schedule=None,  # truth: hparam
        price_cap: float = 500.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        layers, d = [], obs_dim
        for h in hidden_sizes:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        self.q_net = nn.Sequential(*layers, nn.Linear(d, n_actions))
        self.reward_fn = reward_fn or profit_minus_degradation
        self.epsilon_schedule = epsilon_schedule or linear_epsilon

    def configure_optimizers(self):
        return torch.optim.Adam(self.q_net.parameters(), lr=self.hparams.lr)


class LitPPOArbitrage(L.LightningModule):
    def __init__(
        self,
        obs_dim: int = 27,
        n_actions: int = 3,
        clip_eps: float = 0.2,
        gae_lambda: float = 0.95,
        env_config: dict = None,
        price_transform=None,  # truth: hparam
        start_date=None,  # truth: hparam
        degradation_cost: float = 4.0,
        critic: nn.Module = None,
    ):
        super().__init__()
        degradation_cost = float(degradation_cost)
        self.save_hyperparameters(ignore=["critic"])
        transform = price_transform or np.log1p
        grid = np.linspace(0.0, 300.0, 64)
        self.register_buffer("price_grid", torch.as_tensor(transform(grid), dtype=torch.float32))
        self.actor = nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, n_actions))
        self.critic = critic if critic is not None else nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(),
                                                                       nn.Linear(64, 1))


class PriceDataModule(L.LightningDataModule):
    def __init__(self, market: str = "EPEX-DE-LU", start: str = "2024-03-01", hours: int = 24 * 14,
                 window: int = 24, batch_size: int = 64):
        super().__init__()
        self.save_hyperparameters()


# ----------------------------------------------------------------------------- builders

BUILDERS = {}


def builder(name):
    def deco(fn):
        BUILDERS[name] = fn
        return fn
    return deco


@builder("bigcn")
def _build_bigcn(c):
    vec, le = fit_text_pipeline(c.text_dim)
    counts = np.bincount(le.transform(_LABELS))
    weights = torch.tensor(counts.sum() / (len(counts) * counts), dtype=torch.float32)
    return LitBiGCN(len(vec.vocabulary_), hidden=c.hidden, num_classes=len(le.classes_),
                    graph_encoder=BiGCNEncoder(3, c.hidden), class_weights=weights,
                    label_names=list(le.classes_), optimizer=c.optimizer, lr=c.lr,
                    weight_decay=c.weight_decay, dropedge=c.dropedge)


@builder("text_baseline")
def _build_text_baseline(c):
    vec, le = fit_text_pipeline()
    return LitTextBaseline(vec.vocabulary_, idf=torch.from_numpy(vec.idf_).float(), embed_dim=c.embed_dim,
                           num_classes=len(le.classes_), max_len=c.max_len, lr=c.lr)


@builder("early")
def _build_early(c):
    return LitEarlyDetector(early_detection_parser().parse_args(["--deadline", "30"]))


@builder("physnet")
def _build_physnet(c):
    return LitPhysNet(c)


@builder("rppg_regressor")
def _build_rppg_regressor(c):
    b, a = scipy.signal.butter(c.order, list(c.band), btype="bandpass", fs=c.fs)
    return LitRPPGRegressor(fs=c.fs, window_s=c.window_s, band=c.band, filter_coeffs=np.stack([b, a]),
                            loss_fn=LOSSES[c.loss](), preproc=OmegaConf.to_container(c), lr=c.lr)


@builder("tscan")
def _build_tscan(c):
    return LitTSCAN(frame_depth=c.frame_depth, img_size=c.img_size, hr_range=c.hr_range, lr=c.lr,
                    attention_mask_fn=l1_attention_mask, dropout=c.dropout)


@builder("pos_refiner")
def _build_pos_refiner(c):
    return LitPOSRefiner(fs=30.0, window=48, projection=np.array([[0.0, 1.0, -1.0], [-2.0, 1.0, 1.0]]))


@builder("dqn")
def _build_dqn(c):
    prices = market_prices()
    return LitDQNArbitrage(hidden_sizes=tuple(c.hidden_sizes), gamma=c.gamma, lr=c.lr, target_sync=c.target_sync,
                           battery=BatterySpec(**c.battery), reward_fn=REWARDS["profit_minus_degradation"],
                           epsilon_schedule=functools.partial(linear_epsilon, **c.eps),
                           price_cap=float(prices.quantile(0.99)))


@builder("ppo")
def _build_ppo(c):
    market = yaml.safe_load(MARKET_YAML)
    prices = market_prices(seed=1)
    scale = prices.std()
    return LitPPOArbitrage(
        clip_eps=c.clip_eps,
        gae_lambda=c.gae_lambda,
        env_config=OmegaConf.to_container(c.env),
        price_transform=lambda p: np.log1p(np.clip(p, 0.0, None) / scale),
        start_date=market["start"],
        degradation_cost=prices.diff().abs().mean() * 0.05,
        critic=nn.Sequential(nn.Linear(27, 32), nn.Tanh(), nn.Linear(32, 1)),
    )


def build_module(name, cfg=None):
    cfg = cfg if cfg is not None else load_experiments()
    section = cfg[name] if name in cfg else OmegaConf.create({})
    return BUILDERS[name](section)


FACTORIES = {
    "LitBiGCN": lambda: build_module("bigcn"),
    "LitTextBaseline": lambda: build_module("text_baseline"),
    "LitEarlyDetector": lambda: build_module("early"),
    "LitPhysNet": lambda: build_module("physnet"),
    "LitRPPGRegressor": lambda: build_module("rppg_regressor"),
    "LitTSCAN": lambda: build_module("tscan"),
    "LitPOSRefiner": lambda: build_module("pos_refiner"),
    "LitDQNArbitrage": lambda: build_module("dqn"),
    "LitPPOArbitrage": lambda: build_module("ppo"),
}
