"""Lightning wrappers for the three projects (fire spread, product search ranking, protein LM).

Everything is built from one experiment YAML through registries and `build_*` helpers (`FACTORIES`).
"""
import dataclasses
import datetime
import functools
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

EXPERIMENTS = OmegaConf.create("""
wildfire:
  bands: [elevation, th, vs, tmmn, tmmx, sph, pr, pdsi, NDVI, population, erc, PrevFireMask]
  width: 8
  lr: 1.0e-3
  crs: EPSG:4326
  season: {start: "2021-06-01", end: "2021-10-31"}
  loss: {name: focal, kwargs: {alpha: 0.75, gamma: 2.0}}
  data: {root: data/ndws, crop: 32, batch_size: 16, num_workers: 2}
ranking:
  hidden: 32
  loss: listnet
  ndcg_ks: [5, 10]
  temperature: 1.0
  warmup_steps: 100
  gain: {base: 2.0}
  optim: {lr: 2.0e-3, weight_decay: 0.01}
  data: {list_size: 8, batch_size: 32, min_impressions: 3, query_col: query_id}
protein:
  backbone: tiny_esm
  d_model: 32
  pooling: mean
  activation: gelu
  lr: 3.0e-4
  warmup_steps: 200
  mask_prob: 0.15
  lora: {r: 8, alpha: 16, dropout: 0.05, targets: [q_proj, v_proj]}
  head: {hidden: 64, dropout: 0.1, n_outputs: 1}
  data: {fasta: data/meltome.fasta, max_len: 512, batch_size: 8, split_seed: 0}
""")
AMINO = "ACDEFGHIKLMNPQRSTVWY"
ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu}
LOSSES = {}


def register_loss(name):
    def deco(cls):
        LOSSES[name] = cls
        return cls
    return deco


@register_loss("focal")
class FocalLoss(nn.Module):
    def __init__(self, alpha=0.25, gamma=2.0):
        super().__init__()
        self.alpha, self.gamma = alpha, gamma

    def forward(self, logits, target):
        ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        pt = torch.exp(-ce)
        return ((self.alpha * target + (1 - self.alpha) * (1 - target)) * (1 - pt) ** self.gamma * ce).mean()


@dataclasses.dataclass
class LoraSpec:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05



def toy_rasters(n=8, bands=12, size=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, bands, size, size)).astype("float32")
    y = (rng.random((n, size, size)) < 0.08).astype("float32")
    return x, y


# ------------------------------------------------------------------------------------ wildfire

class FireSpreadModule(pl.LightningModule):
    def __init__(
        self,
        in_channels: int = 12,
        width: int = 8,
        lr: float = 1e-3,
        band_names: tuple = (),
        band_stats=None,  # truth: hparam
        pos_weight=1.0,  # truth: hparam
        loss=None,  # truth: hparam
        crs: str = "EPSG:4326",
        threshold: float = 0.5,
        season_start=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 1, 1))
        self.loss_fn = loss if loss is not None else nn.BCEWithLogitsLoss()

    def forward(self, x):
        return self.net(x).squeeze(1)

    def training_step(self, batch, _):
        x, y = batch
        return self.loss_fn(self(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class FireSpreadLite(pl.LightningModule):
    """The variant the export job loads: every hyperparameter reduced to plain values."""

    def __init__(
        self,
        in_channels: int,
        width: int,
        lr: float,
        band_mean: list,
        band_std: list,
        pos_weight: float,
        loss_name: str,
        season_start: str,
        threshold=0.5,
        loss=None,
    ):
        super().__init__()
        threshold = float(threshold)
        self.save_hyperparameters(ignore=["loss"])
        self.net = nn.Conv2d(in_channels, 1, 3, padding=1)
        self.loss_fn = loss if loss is not None else nn.BCEWithLogitsLoss()


class FireDataModule(pl.LightningDataModule):
    def __init__(self, root: str = "data/ndws", crop: int = 32, batch_size: int = 16, num_workers: int = 0,
                 bands: tuple = (), val_fraction: float = 0.2):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        x, y = toy_rasters(bands=len(self.hparams.bands) or 12)
        self.train_set = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)


def fire_statistics(x, y):
    mean, std = x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))
    pos = (y == 1).sum()
    return mean, std, (y.size - pos) / pos


def build_fire_module(cfg=EXPERIMENTS.wildfire, lite=False):
    x, y = toy_rasters(bands=len(cfg.bands))
    mean, std, pos_weight = fire_statistics(x, y)
    loss = LOSSES[cfg.loss.name](**cfg.loss.kwargs)
    threshold = np.quantile(x[:, -1], 0.9)
    if lite:
        return FireSpreadLite(in_channels=x.shape[1], width=cfg.width, lr=cfg.lr, band_mean=mean.tolist(),
                              band_std=std.tolist(), pos_weight=float(pos_weight), loss_name=cfg.loss.name,
                              season_start=cfg.season.start, threshold=threshold, loss=loss)
    return FireSpreadModule(
        in_channels=x.shape[1],
        width=cfg.width,
        lr=cfg.lr,
        band_names=tuple(cfg.bands),
        band_stats={"mean": mean, "std": std},
        pos_weight=pos_weight,
        loss=loss,
        crs=cfg.crs,
        threshold=float(threshold),
        season_start=datetime.date.fromisoformat(cfg.season.start),
    )


def build_fire_data(cfg=EXPERIMENTS.wildfire):
    return FireDataModule(bands=tuple(cfg.bands), **cfg.data)


# ------------------------------------------------------------------------------------ ranking

def exp_gain(grade, base=2.0):
    return base ** grade - 1.0


def linear_warmup(warmup_steps):
    return lambda step: min(1.0, (step + 1) / warmup_steps)


def toy_ranking_frame(n=64, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "query_id": np.repeat(np.arange(n // 8), 8),
        "grade": rng.integers(0, 4, size=n),
        "bm25": rng.gamma(2.0, 2.0, size=n),
        "price_z": rng.normal(size=n),
        "rating": rng.uniform(1, 5, size=n),
        "ctr_7d": rng.beta(2, 30, size=n),
        "position": np.tile(np.arange(1, 9), n // 8),
    })
    return frame


class LtrModule(pl.LightningModule):
    def __init__(
        self,
        n_features: int,
        hidden: int = 32,
        loss: str = "listnet",
        ndcg_ks=(5, 10),
        gain_fn=None,  # truth: hparam
        position_bias=None,  # truth: hparam
        feature_names=None,  # truth: hparam
        lr_lambda=None,  # truth: hparam
        temperature: float = 1.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.scorer = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.gain_fn = gain_fn

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=2e-3)
        return [opt], [torch.optim.lr_scheduler.LambdaLR(opt, self.hparams.lr_lambda)]


class LtrFromConfig(pl.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.scorer = nn.Linear(cfg.n_features, 1)


class CrossEncoderRanker(pl.LightningModule):
    def __init__(self, cfg):
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg, resolve=True))
        self.proj = nn.Linear(cfg.n_features, cfg.hidden)


class CalibratedRanker(pl.LightningModule):
    def __init__(self, n_features: int, hidden: int, lr: float, scaler=None, click_log=None):
        super().__init__()
        self.save_hyperparameters("n_features", "hidden", "lr")
        self.scaler = scaler
        self.net = nn.Linear(n_features, hidden)


class RankDataModule(pl.LightningDataModule):
    def __init__(self, list_size: int = 8, batch_size: int = 32, min_impressions: int = 3,
                 query_col: str = "query_id", feature_cols: tuple = ()):
        super().__init__()
        self.save_hyperparameters()


def build_ranker(cfg=EXPERIMENTS.ranking, kind="ltr"):
    frame = toy_ranking_frame()
    features = frame.drop(columns=["query_id", "grade", "position"])
    if kind == "config":
        return LtrFromConfig(OmegaConf.merge(cfg, {"n_features": features.shape[1]}))
    if kind == "cross":
        return CrossEncoderRanker(OmegaConf.merge(cfg, {"n_features": features.shape[1]}))
    if kind == "calibrated":
        scaler = StandardScaler().fit(features)
        return CalibratedRanker(features.shape[1], cfg.hidden, cfg.optim.lr, scaler=scaler, click_log=frame)
    ctr = frame.groupby("position")["grade"].apply(lambda g: (g > 0).mean())
    return LtrModule(
        n_features=features.shape[1],
        hidden=cfg.hidden,
        loss=cfg.loss,
        ndcg_ks=tuple(cfg.ndcg_ks),
        gain_fn=functools.partial(exp_gain, base=cfg.gain.base),
        position_bias=(ctr / ctr.iloc[0]).to_numpy(),
        feature_names=features.columns,
        lr_lambda=linear_warmup(cfg.warmup_steps),
        temperature=cfg.temperature,
    )


def build_rank_data(cfg=EXPERIMENTS.ranking):
    frame = toy_ranking_frame()
    return RankDataModule(feature_cols=tuple(frame.columns[2:].tolist()), **cfg.data)


# ------------------------------------------------------------------------------------ protein

class ProteinRegressor(pl.LightningModule):
    def __init__(
        self,
        backbone: str = "tiny_esm",
        d_model: int = 32,
        lora_cfg=None,  # truth: hparam
        target_modules=frozenset({"q_proj", "v_proj"}),  # truth: hparam
        activation=F.gelu,  # truth: hparam
        pooling: str = "mean",
        lr: float = 3e-4,
        label_stats=None,
        pretrained: str = "",
        tokenizer=None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["tokenizer"])
        self.tokenizer = tokenizer
        self.head = nn.Sequential(nn.Linear(d_model, d_model), nn.LayerNorm(d_model), nn.Linear(d_model, 1))
        self.act = activation


class ProteinMLMModule(pl.LightningModule):
    def __init__(
        self,
        vocab_size: int,
        mask_prob: float = 0.15,
        head_cfg=None,  # truth: hparam
        lr: float = 3e-4,
        warmup_steps: int = 0,
        aa_background=None,
        dtype=torch.float32,
        special_ids=frozenset(),
        pooling: str = "mean",
        lora_targets=("q_proj", "v_proj"),
    ):
        super().__init__()
        special_ids = sorted(special_ids)
        self.save_hyperparameters()
        self.lm_head = nn.Linear(32, vocab_size)


class ProteinDataModule(pl.LightningDataModule):
    def __init__(self, fasta: str = "data/meltome.fasta", max_len: int = 512, batch_size: int = 8,
                 split_seed: int = 0, alphabet: str = AMINO):
        super().__init__()
        self.save_hyperparameters()


def build_protein(cfg=EXPERIMENTS.protein, task="regression"):
    vocab = {tok: i for i, tok in enumerate(["<pad>", "<cls>", "<eos>", "<unk>", "<mask>", *AMINO])}
    if task == "mlm":
        counts = np.array([1.0 + (ord(a) % 7) for a in AMINO])
        return ProteinMLMModule(
            vocab_size=len(vocab),
            mask_prob=cfg.mask_prob,
            head_cfg=cfg.head,
            lr=cfg.lr,
            warmup_steps=cfg.warmup_steps,
            aa_background=torch.from_numpy(counts / counts.sum()).float(),
            dtype=torch.bfloat16,
            special_ids=frozenset(vocab[t] for t in ("<pad>", "<cls>", "<eos>", "<mask>")),
            pooling=cfg.pooling,
            lora_targets=tuple(cfg.lora.targets),
        )
    labels = np.random.default_rng(0).normal(55.0, 8.0, size=200)
    return ProteinRegressor(
        backbone=cfg.backbone,
        d_model=cfg.d_model,
        lora_cfg=LoraSpec(**cfg.lora.get("spec", {"r": cfg.lora.r, "alpha": cfg.lora.alpha})),
        target_modules=frozenset(cfg.lora.targets),
        activation=ACTIVATIONS[cfg.activation],
        pooling=cfg.pooling,
        lr=cfg.lr,
        label_stats={"mean": float(labels.mean()), "std": float(labels.std()), "n": int(labels.size)},
        pretrained=str(Path("checkpoints") / f"{cfg.backbone}.pt"),
        tokenizer=vocab,
    )


def build_protein_data(cfg=EXPERIMENTS.protein):
    return ProteinDataModule(**cfg.data)


FACTORIES = {
    "FireSpreadModule": build_fire_module,
    "FireSpreadLite": functools.partial(build_fire_module, lite=True),
    "FireDataModule": build_fire_data,
    "LtrModule": build_ranker,
    "LtrFromConfig": functools.partial(build_ranker, kind="config"),
    "CrossEncoderRanker": functools.partial(build_ranker, kind="cross"),
    "CalibratedRanker": functools.partial(build_ranker, kind="calibrated"),
    "RankDataModule": build_rank_data,
    "ProteinRegressor": build_protein,
    "ProteinMLMModule": functools.partial(build_protein, task="mlm"),
    "ProteinDataModule": build_protein_data,
}
