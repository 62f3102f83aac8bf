"""LightningModules for the three projects (music LM, satellite segmentation, LLM pretraining),
each built the way its project's launcher builds it: from an OmegaConf config, from an argparse
namespace through a registry, from a dataclass config, or from a small factory function.
"""
import argparse
import dataclasses
import datetime
import enum
import functools
import math
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf


# =========================================================================== music

MUSIC_CFG = OmegaConf.create({
    "model": {"vocab_size": 308, "d_model": 32, "n_layers": 1, "lr": 3e-4},
    "data": {"pitch_range": [21, 108], "max_len": 256},
    "sampling": {"temperatures": [1.2, 1.0, 0.9, 0.8], "top_k": 32},
    "loss": {"label_smoothing": 0.1},
})


class MusicEventLM(pl.LightningModule):
    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        n_layers: int = 2,
        lr: float = 3e-4,
        temperatures=None,  # truth: hparam
        pitch_range=(21, 108),
        loss_fn=None,  # truth: hparam
        event_weights=None,
        special_tokens=("<pad>", "<bos>", "<eos>", "<bar>"),
        top_k: int = 32,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(vocab_size, d_model)
        self.rnn = nn.GRU(d_model, d_model, num_layers=n_layers, batch_first=True)
        self.head = nn.Linear(d_model, vocab_size)
        self.loss_fn = loss_fn or nn.CrossEntropyLoss()

    def forward(self, x):
        h, _ = self.rnn(self.emb(x))
        return self.head(h)

    def training_step(self, batch, batch_idx):
        logits = self(batch[:, :-1])
        loss = self.loss_fn(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
        self.log("train/nll", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def build_music_lm(cfg: DictConfig) -> MusicEventLM:
    weights = torch.ones(cfg.model.vocab_size)
    weights[4:132] = 1.5  # up-weight NOTE_ON events
    return MusicEventLM(
        vocab_size=cfg.model.vocab_size,
        d_model=cfg.model.d_model,
        n_layers=cfg.model.n_layers,
        lr=cfg.model.lr,
        temperatures=cfg.sampling.temperatures,
        pitch_range=tuple(cfg.data.pitch_range),
        loss_fn=nn.CrossEntropyLoss(label_smoothing=cfg.loss.label_smoothing),
        event_weights=weights,
        top_k=cfg.sampling.top_k,
    )


class MusicVAE(pl.LightningModule):
    """MusicVAE-style bar encoder; the whole OmegaConf node goes into hparams."""

    def __init__(
        self,
        cfg,  # truth: hparam
        kl_anneal_steps: int = 1000,
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.kl_anneal_steps = kl_anneal_steps
        self.enc = nn.Linear(cfg.data.max_len, 2 * cfg.model.d_model)
        self.dec = nn.Linear(cfg.model.d_model, cfg.data.max_len)

    def kl_weight(self):
        return min(1.0, self.global_step / self.kl_anneal_steps)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.model.lr)


def build_music_vae(cfg: DictConfig) -> MusicVAE:
    return MusicVAE(cfg, kl_anneal_steps=int(cfg.data.max_len) * 4)


# =========================================================================== satellite

class Split(enum.Enum):
    TRAIN = "train"
    VAL = "val"


SEG_REGISTRY = {}


def register_seg(name):
    def deco(cls):
        SEG_REGISTRY[name] = cls
        return cls
    return deco


@register_seg("unet")
class SegmentationModule(pl.LightningModule):
    def __init__(
        self,
        in_bands: int = 4,
        n_classes: int = 5,
        band_mean=None,  # truth: hparam
        band_std=None,
        class_weights=None,
        ignore_index: int = 255,
        data_root=None,  # truth: hparam
        geotransform=(0.0, 10.0, 0.0, 0.0, 0.0, -10.0),
        split=None,  # truth: hparam
        encoder=None,
        tile_size: int = 256,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder or nn.Sequential(nn.Conv2d(in_bands, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(8, n_classes, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        w = self.hparams.class_weights
        loss = F.cross_entropy(self.head(self.encoder(x)), y, weight=w, ignore_index=self.hparams.ignore_index)
        self.log("train/ce", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-2, momentum=0.9)


def seg_parser():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="unet")
    p.add_argument("--data_root", type=Path, default=Path("/data/s2/tiles"))
    p.add_argument("--bands", nargs="+", default=["B02", "B03", "B04", "B08"])
    p.add_argument("--n_classes", type=int, default=5)
    p.add_argument("--tile_size", type=int, default=64)
    p.add_argument("--pixel_size", type=float, default=10.0)
    return p


def build_seg_from_args(argv=()):
    args = seg_parser().parse_args(list(argv))
    rng = np.random.default_rng(0)
    sample = rng.normal(1200.0, 300.0, size=(8, len(args.bands), 16, 16))
    mask = rng.integers(0, args.n_classes, size=(8, 16, 16))
    freq = np.bincount(mask.ravel(), minlength=args.n_classes) / mask.size
    cls = SEG_REGISTRY[args.arch]
    return cls(
        in_bands=len(args.bands),
        n_classes=args.n_classes,
        band_mean=sample.mean(axis=(0, 2, 3)),
        band_std=sample.std(axis=(0, 2, 3)).tolist(),
        class_weights=torch.tensor(1.0 / freq, dtype=torch.float32),
        data_root=args.data_root,
        geotransform=(500000.0, args.pixel_size, 0.0, 4600000.0, 0.0, -args.pixel_size),
        split=Split.TRAIN,
        encoder=nn.Sequential(nn.Conv2d(len(args.bands), 8, 3, padding=1), nn.ReLU()),
        tile_size=args.tile_size,
    )


class ChangeDetector(pl.LightningModule):
    """Bi-temporal change detection; the launcher passes the tile table and helpers in."""

    def __init__(
        self,
        tile_meta=None,  # truth: hparam
        valid_classes=None,  # truth: hparam
        started_at=None,  # truth: hparam
        norm_fn=None,  # truth: hparam
        band_mean=None,
        class_names=("no_change", "change"),
        threshold: float = 0.5,
        n_tiles: int = 0,
        crs: str = "EPSG:32633",
    ):
        super().__init__()
        band_mean = None if band_mean is None else [float(m) for m in band_mean]
        self.save_hyperparameters()
        self.net = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, before, after):
        if self.hparams.norm_fn is not None:
            before, after = self.hparams.norm_fn(before), self.hparams.norm_fn(after)
        return torch.sigmoid(self.net(torch.cat([before, after], 1)))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def make_change_detector(seed=0):
    rng = np.random.default_rng(seed)
    meta = pd.DataFrame({
        "tile_id": np.arange(6),
        "cloud_cover": rng.uniform(0, 0.3, 6),
        "acquired": pd.date_range("2023-06-01", periods=6, freq="7D"),
    })
    mask = rng.integers(0, 2, size=(6, 16, 16))
    mean = rng.normal(1200.0, 50.0, size=8)
    std = 300.0
    return ChangeDetector(
        tile_meta=meta,
        valid_classes=set(np.unique(mask)),
        started_at=datetime.datetime(2024, 3, 1, 12, 0),
        norm_fn=lambda x: (x - 1200.0) / std,
        band_mean=mean,
        threshold=float(np.float32(0.5)),
        n_tiles=meta["tile_id"].nunique(),
        crs=str("EPSG:32633"),
    )


# =========================================================================== LLM pretraining

@dataclasses.dataclass
class GPTConfig:
    vocab_size: int = 256
    block_size: int = 16
    n_layer: int = 1
    n_head: int = 2
    d_model: int = 32
    dropout: float = 0.0


def cosine_mult(step, warmup=100, max_steps=10_000, floor=0.1):
    if step < warmup:
        return (step + 1) / warmup
    ratio = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return floor + 0.5 * (1 - floor) * (1 + math.cos(math.pi * ratio))


class LitGPT(pl.LightningModule):
    def __init__(
        self,
        config,  # truth: hparam
        lr: float = 6e-4,
        betas=(0.9, 0.95),
        weight_decay: float = 0.1,
        lr_lambda=None,  # truth: hparam
        total_tokens=None,  # truth: hparam
        mixture=None,
        dtype=torch.bfloat16,
        log_dir: str = "runs",
        warmup_steps: int = 100,
        grad_clip: float = 1.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.config = config
        self.tok = nn.Embedding(config.vocab_size, config.d_model)
        layer = nn.TransformerEncoderLayer(config.d_model, config.n_head, 4 * config.d_model,
                                           dropout=config.dropout, batch_first=True)
        self.blocks = nn.TransformerEncoder(layer, config.n_layer, enable_nested_tensor=False)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.grad_norms = []
        self.tokens_seen = 0

    @classmethod
    def from_config(cls, cfg: GPTConfig, steps: int = 2000, batch_size: int = 8, **kw):
        batch_shape = (batch_size, cfg.block_size)
        mixture = np.array([0.55, 0.2, 0.1, 0.1, 0.05])
        mixture = mixture / mixture.sum()
        return cls(
            cfg,
            lr_lambda=functools.partial(cosine_mult, warmup=kw.get("warmup_steps", 100), max_steps=steps),
            total_tokens=np.prod(batch_shape) * steps,
            mixture=dict(zip(("web", "code", "books", "wiki", "math"), mixture.tolist())),
            log_dir=str(Path("runs") / f"gpt-{cfg.n_layer}l"),
            **kw,
        )

    def forward(self, idx):
        mask = nn.Transformer.generate_square_subsequent_mask(idx.size(1))
        return self.head(self.blocks(self.tok(idx), mask=mask, is_causal=True))

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        self.tokens_seen += x.numel()
        self.log_dict({"train/loss": loss, "tokens": float(self.tokens_seen)})
        return loss

    def on_before_optimizer_step(self, optimizer):
        norms = [p.grad.norm() for p in self.parameters() if p.grad is not None]
        if norms:
            self.grad_norms.append(torch.stack(norms).norm().item())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, betas=self.hparams.betas,
                                weight_decay=self.hparams.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self.hparams.lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class LitGPTFinetune(pl.LightningModule):
    """Continued pretraining on a new mixture; only the scalar knobs are hyperparameters."""

    def __init__(
        self,
        base_model=None,
        token_budget=None,
        lr: float = 1e-4,
        warmup_steps: int = 50,
        max_steps: int = 1000,
        mixture_name: str = "code-heavy",
        seq_len: int = 16,
    ):
        super().__init__()
        self.save_hyperparameters("lr", "warmup_steps", "max_steps", "mixture_name", "seq_len")
        self.model = base_model if base_model is not None else nn.Linear(4, 4)
        self.token_budget = token_budget

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        return opt


FINETUNE_PRESETS = {
    "code-heavy": dict(lr=1e-4, warmup_steps=50, max_steps=1000),
    "math-anneal": dict(lr=3e-5, warmup_steps=0, max_steps=200),
}


def build_finetune(argv=()):
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="code-heavy", choices=sorted(FINETUNE_PRESETS))
    p.add_argument("--seq_len", type=int, default=16)
    p.add_argument("--budget_tokens", type=float, default=2e9)
    args = p.parse_args(list(argv))
    base = LitGPT(GPTConfig()).blocks
    return LitGPTFinetune(
        base_model=base,
        token_budget=np.int64(args.budget_tokens),
        mixture_name=args.preset,
        seq_len=args.seq_len,
        **FINETUNE_PRESETS[args.preset],
    )


FACTORIES = {
    "MusicEventLM": lambda: build_music_lm(MUSIC_CFG),
    "MusicVAE": lambda: build_music_vae(MUSIC_CFG),
    "Split": lambda: Split.TRAIN,
    "SegmentationModule": lambda: build_seg_from_args(["--tile_size", "32"]),
    "ChangeDetector": lambda: make_change_detector(seed=1),
    "LitGPT": lambda: LitGPT.from_config(GPTConfig(n_layer=1), steps=500, warmup_steps=20),
    "LitGPTFinetune": lambda: build_finetune(["--preset", "math-anneal"]),
}
