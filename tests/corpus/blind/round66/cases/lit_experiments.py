"""Lightning modules of the three projects sharing one launcher (`train.py --task epf|review|tracking`):
price quantile forecasting, review comment tagging, nucleus segmentation + link prediction.
Built from one OmegaConf experiment config through registries and `build_*` helpers (as the launcher does).
"""
import functools
import re
from dataclasses import dataclass

import lightning.pytorch as L
import numpy as np
import pandas as pd
import scipy.ndimage as ndi
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from sklearn.metrics import f1_score
from sklearn.preprocessing import RobustScaler, StandardScaler
from sklearn.utils.class_weight import compute_class_weight

EXPERIMENT_YAML = """
epf:
  market: NL
  days: 30
  lags: [24, 168]
  quantiles: [0.1, 0.5, 0.9]
  hidden: 32
  loss: pinball
  scaler: robust
  lr: 0.001
review:
  labels: [bug, nit, praise, question, security, style]
  embed_dim: 32
  max_len: 24
  lr: 0.003
  token_pattern: "[a-z_]+|[0-9]+"
  optimizer: adamw
tracking:
  in_channels: 1
  width: 8
  max_disp: 7.0
  features: [dist, d_area, int_ratio]
  lr: 0.01
"""


def load_experiment(text=EXPERIMENT_YAML) -> DictConfig:
    return OmegaConf.create(text)


# ----------------------------------------------------------------------------- registries

LOSSES = {}
SCALERS = {"standard": StandardScaler, "robust": RobustScaler}
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def register_loss(name):
    def deco(cls):
        LOSSES[name] = cls
        return cls
    return deco


@register_loss("pinball")
class PinballLoss(nn.Module):
    def __init__(self, quantiles=(0.1, 0.5, 0.9)):
        super().__init__()
        self.register_buffer("q", torch.tensor(list(quantiles), dtype=torch.float32))

    def forward(self, pred, target):
        err = target.unsqueeze(-1) - pred
        return torch.maximum(self.q * err, (self.q - 1) * err).mean()


register_loss("mae")(nn.L1Loss)


def build_loss(name, **kw):
    return LOSSES[name](**kw)


@dataclass(frozen=True)
class TrackerCfg:
    max_disp: float = 7.0
    division_radius: float = 9.0
    min_area: int = 6


# ----------------------------------------------------------------------------- data helpers

def price_frame(days=30, seed=0):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-03-01", periods=days * 24, freq="h", tz="Europe/Amsterdam")
    h = idx.hour.to_numpy()
    price = 70 + 25 * np.sin((h - 8) / 24 * 2 * np.pi) + rng.normal(0, 9, len(idx))
    return pd.DataFrame({"price": price, "load": 12 + 3 * np.cos(h / 24 * 2 * np.pi)}, index=idx)


def epf_features(df, lags):
    X = pd.concat({f"lag{l}": df["price"].shift(l) for l in lags}, axis=1)
    X["load"] = df["load"]
    X["hour"] = df.index.hour
    return X.dropna()


def review_corpus(labels, n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(labels), n)
    y[: len(labels)] = np.arange(len(labels))
    texts = [f"{labels[k]} comment about buf_{i % 7} line {i}" for i, k in enumerate(y)]
    return texts, y


def microscopy_stack(n=4, size=32, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    stack = np.zeros((n, size, size), np.float32)
    for t in range(n):
        for cy, cx in rng.uniform(6, size - 6, (4, 2)):
            stack[t] += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0).astype(np.float32)
    return stack + rng.normal(0, 0.03, stack.shape).astype(np.float32)


# ----------------------------------------------------------------------------- EPF

class DayAheadQuantileModule(L.LightningModule):
    def __init__(
        self,
        n_features: int,
        quantiles: list,
        hidden: int = 32,
        loss: nn.Module = None,
        price_mean: float = 0.0,  # truth: hparam
        price_std: float = 1.0,
        history_start: str = "",
        lr: float = 1e-3,
        market: str = "DE-LU",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["loss"])
        self.loss = loss if loss is not None else build_loss("pinball", quantiles=quantiles)
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, len(quantiles)))

    def forward(self, x):
        return self.net(x) * self.hparams.price_std + self.hparams.price_mean

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x), y)
        self.log("train/pinball", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class _ForecastBase(L.LightningModule):
    """Shared optimiser setup; subclasses' __init__ arguments are collected too."""

    def __init__(self, lr: float = 1e-3, weight_decay: float = 0.0):
        super().__init__()
        self.save_hyperparameters()

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class LearStyleModule(_ForecastBase):
    def __init__(
        self,
        lags,  # truth: hparam
        feature_names,
        scaler=None,  # truth: hparam
        alpha: float = 1e-3,
        holidays=(),
        lr: float = 1e-3,
        weight_decay: float = 0.0,
    ):
        super().__init__(lr=lr, weight_decay=weight_decay)
        self.linear = nn.Linear(len(feature_names), 24)


class EPFDataModule(L.LightningDataModule):
    def __init__(self, market: str = "NL", days: int = 30, lags=(24, 168), val_days: int = 5,
                 batch_size: int = 64, tz: str = "Europe/Amsterdam"):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        X = torch.tensor(epf_features(price_frame(self.hparams.days), self.hparams.lags).to_numpy())
        self.train_set, self.val_set = X[: -24 * self.hparams.val_days], X[-24 * self.hparams.val_days:]


BUILDERS = {}


def builder(name):
    def deco(fn):
        BUILDERS[name] = fn
        return fn
    return deco


@builder("DayAheadQuantileModule")
def build_epf_module(cfg):
    df = price_frame(cfg.epf.days)
    X = epf_features(df, cfg.epf.lags)
    return DayAheadQuantileModule(
        n_features=X.shape[1], quantiles=list(cfg.epf.quantiles), hidden=cfg.epf.hidden,
        loss=build_loss(cfg.epf.loss, quantiles=cfg.epf.quantiles),
        price_mean=df["price"].mean(), price_std=float(df["price"].std()),
        history_start=df.index[0].isoformat(), lr=cfg.epf.lr, market=cfg.epf.market)


@builder("LearStyleModule")
def build_lear_module(cfg):
    X = epf_features(price_frame(cfg.epf.days, seed=1), cfg.epf.lags)
    scaler = SCALERS[cfg.epf.scaler]().fit(X.to_numpy())
    return LearStyleModule(lags=cfg.epf.lags, feature_names=X.columns.tolist(), scaler=scaler,
                           holidays=("2024-03-29", "2024-04-01"), lr=cfg.epf.lr)


# ----------------------------------------------------------------------------- review comments

class ReviewTaggerModule(L.LightningModule):
    def __init__(
        self,
        vocab_size: int,
        labels: list,
        embed_dim: int = 32,
        class_weights=None,  # truth: hparam
        pad_idx: int = 0,
        tokenizer=None,  # truth: hparam
        max_len: int = 24,
        lr: float = 3e-3,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.EmbeddingBag(vocab_size, embed_dim, padding_idx=pad_idx)
        self.out = nn.Linear(embed_dim, len(labels))
        w = torch.ones(len(labels)) if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_w", w)

    def forward(self, ids):
        return self.out(self.emb(ids))

    def training_step(self, batch, batch_idx):
        ids, y = batch
        return F.cross_entropy(self(ids), y, weight=self.class_w, label_smoothing=self.hparams.label_smoothing)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class ReviewEncoderModule(L.LightningModule):
    """Fine-tunes a small encoder; the whole `review` config node is stored as hparams."""

    def __init__(
        self,
        cfg,  # truth: hparam
        encoder: nn.Module = None,
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.encoder = encoder or nn.EmbeddingBag(256, cfg.embed_dim)
        self.head = nn.Linear(cfg.embed_dim, len(cfg.labels))

    def forward(self, ids):
        return self.head(self.encoder(ids))


class MultiLabelReviewModule(L.LightningModule):
    def __init__(
        self,
        labels,
        thresholds: dict,  # truth: hparam
        metric_fn=None,
        optimizer_cls=torch.optim.AdamW,  # truth: hparam
        lr: float = 3e-3,
        warmup_steps: int = 10,
    ):
        super().__init__()
        self.save_hyperparameters("labels", "thresholds", "lr", "optimizer_cls", "warmup_steps")
        self.metric_fn = metric_fn or functools.partial(f1_score, average="micro", zero_division=0)
        self.head = nn.Linear(32, len(labels))

    def configure_optimizers(self):
        opt = self.hparams.optimizer_cls(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.LinearLR(opt, 0.1, total_iters=self.hparams.warmup_steps)]


class ReviewDataModule(L.LightningDataModule):
    def __init__(self, n_comments: int = 120, max_len: int = 24, batch_size: int = 32,
                 val_frac: float = 0.2, seed: int = 0, labels=("bug", "nit", "style")):
        super().__init__()
        self.save_hyperparameters()


def build_vocab(texts, pattern):
    tok = re.compile(pattern)
    words = sorted({w for t in texts for w in tok.findall(t.lower())})
    return {w: i for i, w in enumerate(["<pad>", "<unk>"] + words)}


@builder("ReviewTaggerModule")
def build_review_module(cfg):
    labels = list(cfg.review.labels)
    texts, y = review_corpus(labels)
    vocab = build_vocab(texts, cfg.review.token_pattern)
    weights = compute_class_weight("balanced", classes=np.arange(len(labels)), y=y)
    return ReviewTaggerModule(
        vocab_size=len(vocab), labels=labels, embed_dim=cfg.review.embed_dim, class_weights=weights,
        pad_idx=vocab["<pad>"], tokenizer=re.compile(cfg.review.token_pattern).findall,
        max_len=cfg.review.max_len, lr=cfg.review.lr, label_smoothing=0.05)


@builder("ReviewEncoderModule")
def build_review_encoder(cfg):
    return ReviewEncoderModule(cfg.review)


@builder("MultiLabelReviewModule")
def build_multilabel_module(cfg):
    labels = list(cfg.review.labels)
    rng = np.random.default_rng(3)
    scores, truth = rng.random((80, len(labels))), rng.random((80, len(labels))) > 0.6
    grid = np.linspace(0.2, 0.8, 13)
    thresholds = {}
    for j, name in enumerate(labels):
        f1s = [f1_score(truth[:, j], scores[:, j] >= t, zero_division=0) for t in grid]
        thresholds[name] = grid[int(np.argmax(f1s))]
    return MultiLabelReviewModule(labels=labels, thresholds=thresholds,
                                  optimizer_cls=OPTIMIZERS[cfg.review.optimizer], lr=cfg.review.lr)


# ----------------------------------------------------------------------------- cell tracking

class CellSegModule(L.LightningModule):
    def __init__(
        self,
        in_channels: int = 1,
        width: int = 8,
        norm_mean: float = 0.0,
        norm_std: float = 1.0,  # truth: hparam
        input_dtype: str = "float32",
        postprocess=None,  # truth: hparam
        px_size_um=(0.65, 0.65),
        lr: float = 1e-2,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 1, 1))

    def forward(self, x):
        return self.net((x - self.hparams.norm_mean) / self.hparams.norm_std)

    def predict_step(self, batch, batch_idx):
        masks = (torch.sigmoid(self(batch)) > 0.5).squeeze(1).cpu().numpy()
        post = self.hparams.postprocess
        return [post(m) if post is not None else m for m in masks]


class LinkPredictionModule(L.LightningModule):
    def __init__(
        self,
        feature_names,
        tracker_cfg=None,  # truth: hparam
        gate=None,  # truth: hparam
        max_disp: float = 7.0,
        feature_stats=None,
        pos_weight: float = 1.0,
        hidden: int = 16,
        lr: float = 1e-2,
        sampler=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.sampler = sampler
        self.mlp = nn.Sequential(nn.Linear(len(feature_names), hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def training_step(self, batch, batch_idx):
        f, y = batch
        pw = torch.tensor(self.hparams.pos_weight)
        return F.binary_cross_entropy_with_logits(self.mlp(f).squeeze(-1), y, pos_weight=pw)


class TrackingDataModule(L.LightningDataModule):
    def __init__(self, n_frames: int = 4, size: int = 32, batch_size: int = 2, seed: int = 0,
                 channels=("nuclei",)):
        super().__init__()
        self.save_hyperparameters()


@builder("CellSegModule")
def build_seg_module(cfg):
    stack = microscopy_stack()
    return CellSegModule(
        in_channels=cfg.tracking.in_channels, width=cfg.tracking.width,
        norm_mean=float(stack.mean()), norm_std=stack.std(), input_dtype=str(stack.dtype),
        postprocess=functools.partial(ndi.binary_opening, iterations=1), lr=cfg.tracking.lr)


@builder("LinkPredictionModule")
def build_link_module(cfg):
    rng = np.random.default_rng(11)
    feats = rng.gamma(2.0, 2.0, (200, len(cfg.tracking.features)))
    labels = (feats[:, 0] < cfg.tracking.max_disp / 2).astype(np.float32)
    max_disp = cfg.tracking.max_disp
    return LinkPredictionModule(
        feature_names=list(cfg.tracking.features), tracker_cfg=TrackerCfg(max_disp=max_disp),
        gate=lambda d: d <= max_disp, max_disp=max_disp,
        feature_stats={"mean": feats.mean(0).tolist(), "std": feats.std(0).tolist()},
        pos_weight=float((1 - labels.mean()) / max(labels.mean(), 1e-3)), lr=cfg.tracking.lr, sampler=rng)


def build_module(name, cfg=None):
    return BUILDERS[name](cfg if cfg is not None else load_experiment())


FACTORIES = {name: functools.partial(build_module, name) for name in BUILDERS}
FACTORIES["EPFDataModule"] = lambda: EPFDataModule(lags=list(load_experiment().epf.lags))
