"""Lightning wrappers for the three model families (genotyper, CTR ranker, glacier U-Net).

The training entry points never construct these classes directly: `build(name, ...)` looks the
builder up in BUILDERS, and each builder turns its domain config (argparse namespace, OmegaConf
config, YAML dict) plus the fitted preprocessing into constructor arguments.
"""
import argparse
import enum
import functools
from pathlib import Path
from typing import Optional, Sequence

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from omegaconf import DictConfig, OmegaConf

BUILDERS = {}


def register_builder(name):
    def deco(fn):
        BUILDERS[name] = fn
        return fn
    return deco


def build(name, *args, **kwargs):
    return BUILDERS[name](*args, **kwargs)


# ----------------------------------------------------------------------------- genomics

BASE_TO_INDEX = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate("ACGT"):
    BASE_TO_INDEX[ord(_b)] = _i


def genotyper_args(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--reference", type=Path, default=Path("/refs/GRCh38_no_alt.fa"))
    p.add_argument("--examples", default="/data/HG002/examples.tfrecord")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-mapq", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    return p.parse_args(argv or [])


class VariantDataModule(L.LightningDataModule):
    def __init__(self, examples_path: str, holdout_contig: str = "chr20", batch_size: int = 64,
                 num_workers: int = 0, window: int = 15, depth: int = 12):
        super().__init__()
        self.save_hyperparameters()


class GenotypeClassifier(L.LightningModule):
    def __init__(
        self,
        in_channels: int = 6,
        width: int = 32,
        num_classes: int = 3,
        dropout: float = 0.2,
        lr: float = 2e-3,
        class_weights: Optional[torch.Tensor] = None,
        min_mapq: int = 20,
        genotype_names: Sequence[str] = ("0/0", "0/1", "1/1"),
        base_encoding=None,  # truth: hparam
        contigs=range(1, 23),  # truth: hparam
        reference_fasta=None,  # truth: hparam
        criterion: Optional[nn.Module] = None,  # truth: hparam
    ):
        super().__init__()
        min_mapq = int(min_mapq)
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(width, num_classes))
        self.criterion = criterion or nn.CrossEntropyLoss(weight=class_weights)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.criterion(self(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class ReadEncoderPretrain(L.LightningModule):
    """Masked k-mer model over read sequences; the k-mer table is data, not a hyperparameter."""

    def __init__(self, vocab_size: int = 4 ** 6 + 2, embed_dim: int = 64, n_layers: int = 2,
                 mask_prob: float = 0.15, lr: float = 5e-4, kmer_table=None, loss_fn=None):
        super().__init__()
        self.save_hyperparameters("vocab_size", "embed_dim", "n_layers", "mask_prob", "lr")
        self.kmer_table = torch.as_tensor(kmer_table if kmer_table is not None else np.zeros(4 ** 6, np.int64))
        self.embed = nn.Embedding(vocab_size, embed_dim)
        layer = nn.TransformerEncoderLayer(embed_dim, 4, embed_dim * 2, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers)
        self.out = nn.Linear(embed_dim, vocab_size)
        self.loss_fn = loss_fn or nn.CrossEntropyLoss(ignore_index=-100)

    def training_step(self, batch, batch_idx):
        tokens, labels = batch
        logits = self.out(self.encoder(self.embed(tokens)))
        return self.loss_fn(logits.flatten(0, 1), labels.flatten())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


@register_builder("genotyper")
def build_genotyper(args):
    labels = np.random.default_rng(0).choice(3, 500, p=[0.6, 0.3, 0.1])
    freq = np.bincount(labels, minlength=3) / len(labels)
    weights = torch.tensor(1.0 / freq, dtype=torch.float32)
    return GenotypeClassifier(
        width=args.width,
        lr=args.lr,
        class_weights=weights / weights.sum(),
        min_mapq=np.int64(args.min_mapq),
        base_encoding=BASE_TO_INDEX,
        reference_fasta=args.reference,
        criterion=nn.CrossEntropyLoss(weight=weights, label_smoothing=0.05),
    )


@register_builder("read_encoder")
def build_read_encoder(k=6):
    kmers = np.arange(4 ** k, dtype=np.int64) + 2
    return ReadEncoderPretrain(vocab_size=4 ** k + 2, kmer_table=kmers,
                               loss_fn=nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=0.1))


# ----------------------------------------------------------------------------- click-through rate

CTR_YAML = """
data:
  sparse_fields: [user_bucket, item_id, category, device, hour]
  dense_fields: [log_price, position]
  batch_size: 512
model:
  embed_dim: 8
  mlp_dims: [64, 32]
  dropout: 0.1
optim:
  lr: 0.002
  weight_decay: 1.0e-6
  gamma: 0.9
"""


def impression_stats(seed=0, n=2000):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "clicked": (rng.random(n) < 0.07).astype(np.int64),
        "device": rng.choice(["ios", "android", "web"], n),
        "item_id": rng.integers(0, 500, n),
    })
    return df


class CTRDataModule(L.LightningDataModule):
    def __init__(self, parquet_glob: str, sparse_fields: list, dense_fields: list,
                 batch_size: int = 512, val_days: int = 1, min_count: int = 2):
        super().__init__()
        self.save_hyperparameters()


class DeepFMLit(L.LightningModule):
    def __init__(
        self,
        field_dims: Sequence[int],
        n_dense: int,
        embed_dim: int = 8,
        mlp_dims=(64, 32),  # truth: hparam
        dropout: float = 0.1,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        pos_weight: float = 1.0,
        device_vocab: Optional[dict] = None,
        base_ctr=0.05,  # truth: hparam
        optimizer_cls=torch.optim.Adam,  # truth: hparam
        scheduler_factory=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        total = int(sum(field_dims))
        self.offsets = torch.tensor([0, *np.cumsum(field_dims)[:-1].tolist()])
        self.embed = nn.Embedding(total, embed_dim)
        self.linear = nn.Embedding(total, 1)
        self.dense = nn.Linear(n_dense, embed_dim)
        dims, layers = embed_dim * (len(field_dims) + 1), []
        for h in mlp_dims:
            layers += [nn.Linear(dims, h), nn.ReLU(), nn.Dropout(dropout)]
            dims = h
        self.mlp = nn.Sequential(*layers, nn.Linear(dims, 1))
        bias = float(np.log(base_ctr / (1 - base_ctr)))
        nn.init.constant_(self.mlp[-1].bias, bias)

    def forward(self, sparse, dense):
        idx = sparse + self.offsets
        e = torch.cat([self.embed(idx), self.dense(dense).unsqueeze(1)], 1)
        fm = 0.5 * (e.sum(1).pow(2) - e.pow(2).sum(1)).sum(1, keepdim=True)
        return (self.linear(idx).sum(1) + fm + self.mlp(e.flatten(1))).squeeze(1)

    def training_step(self, batch, batch_idx):
        sparse, dense, y = batch
        logits = self(sparse, dense)
        return F.binary_cross_entropy_with_logits(logits, y, pos_weight=torch.tensor(self.hparams.pos_weight))

    def configure_optimizers(self):
        opt = self.hparams.optimizer_cls(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        return {"optimizer": opt, "lr_scheduler": self.hparams.scheduler_factory(opt)}


class DINLit(L.LightningModule):
    """Deep Interest Network variant; takes the whole run config like the sweep launcher passes it."""

    def __init__(self, cfg: DictConfig, n_items: int = 500):  # truth: hparam[cfg]
        super().__init__()
        self.save_hyperparameters(cfg)
        d = cfg.model.embed_dim
        self.item_embed = nn.Embedding(n_items, d)
        self.attn = nn.Sequential(nn.Linear(4 * d, 32), nn.Sigmoid(), nn.Linear(32, 1))
        self.mlp = nn.Sequential(nn.Linear(2 * d, cfg.model.mlp_dims[0]), nn.ReLU(), nn.Linear(cfg.model.mlp_dims[0], 1))


class WideDeepLit(L.LightningModule):
    def __init__(self, cfg: dict, n_wide: int = 1000):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.wide = nn.EmbeddingBag(n_wide, 1, mode="sum")
        self.deep = nn.Sequential(nn.Linear(cfg["model"]["embed_dim"], cfg["model"]["mlp_dims"][0]), nn.ReLU(),
                                  nn.Linear(cfg["model"]["mlp_dims"][0], 1))


@register_builder("deepfm")
def build_deepfm(cfg=None):
    cfg = cfg or OmegaConf.create(CTR_YAML)
    df = impression_stats()
    n_pos = int(df["clicked"].sum())
    devices = sorted(df["device"].unique().tolist())
    return DeepFMLit(
        field_dims=[64, 500, 6, 4, 24],
        n_dense=len(cfg.data.dense_fields),
        embed_dim=cfg.model.embed_dim,
        mlp_dims=cfg.model.mlp_dims,
        dropout=cfg.model.dropout,
        lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay,
        pos_weight=(len(df) - n_pos) / max(n_pos, 1),
        device_vocab={d: i for i, d in enumerate(devices)},
        base_ctr=df["clicked"].mean(),
        optimizer_cls=torch.optim.AdamW,
        scheduler_factory=functools.partial(torch.optim.lr_scheduler.ExponentialLR, gamma=cfg.optim.gamma),
    )


@register_builder("din")
def build_din():
    return DINLit(OmegaConf.create(CTR_YAML))


@register_builder("wide_deep")
def build_wide_deep():
    return WideDeepLit(OmegaConf.to_container(OmegaConf.create(CTR_YAML), resolve=True))


@register_builder("ctr_data")
def build_ctr_data(cfg=None):
    cfg = cfg or OmegaConf.create(CTR_YAML)
    return CTRDataModule("s3://clicks/impressions/dt=*/part-*.parquet", list(cfg.data.sparse_fields),
                         list(cfg.data.dense_fields), batch_size=cfg.data.batch_size)


# ----------------------------------------------------------------------------- glacier segmentation

GLACIER_YAML = """
data:
  root: /data/calfin/sentinel2
  bands: [B2, B3, B4, B8]
  tile: 256
  acquired_after: 2019-06-01
  val_fraction: 0.15
model:
  base: 16
  depth: 4
  ignore_index: 255
optim:
  lr: 3.0e-4
  weight_decay: 1.0e-4
loss:
  name: dice_ce
  dice_weight: 0.5
"""


class Sensor(str, enum.Enum):
    SENTINEL2 = "sentinel-2"
    LANDSAT8 = "landsat-8"


def make_loss(name, dice_weight=0.5, ignore_index=255):
    def dice_ce(logits, target):
        ce = F.cross_entropy(logits, target, ignore_index=ignore_index)
        probs = logits.softmax(1)
        onehot = F.one_hot(target.clamp(max=logits.shape[1] - 1), logits.shape[1]).permute(0, 3, 1, 2)
        dice = 1 - (2 * (probs * onehot).sum() + 1) / (probs.sum() + onehot.sum() + 1)
        return (1 - dice_weight) * ce + dice_weight * dice
    if name != "dice_ce":
        raise KeyError(name)
    return dice_ce


class GlacierDataModule(L.LightningDataModule):
    def __init__(self, root: str, bands: Sequence[str] = ("B2", "B3", "B4", "B8"), tile_size: int = 256,
                 batch_size: int = 8, num_workers: int = 4, val_fraction: float = 0.15,
                 acquired_after: Optional[str] = None):
        super().__init__()
        self.save_hyperparameters()


class GlacierSegLit(L.LightningModule):
    def __init__(
        self,
        in_channels: int = 4,
        num_classes: int = 4,
        base: int = 16,
        depth: int = 4,
        lr: float = 3e-4,
        weight_decay: float = 1e-4,
        ignore_index: int = 255,
        class_names: Sequence[str] = ("background", "glacier", "rock", "ocean"),
        tile_bounds: Optional[tuple] = None,
        compute_dtype: torch.dtype = torch.float32,
        band_stats: Optional[dict] = None,  # truth: hparam
        loss_fn=None,  # truth: hparam
        sensor: Sensor = Sensor.SENTINEL2,  # truth: hparam
        acquired_after=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        stats = band_stats or {"mean": np.zeros(in_channels), "std": np.ones(in_channels)}
        self.register_buffer("mean", torch.as_tensor(stats["mean"], dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(stats["std"], dtype=torch.float32).view(1, -1, 1, 1))
        self.encoder = nn.Sequential(nn.Conv2d(in_channels, base, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(base, base, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(base, num_classes, 1)

    def forward(self, x):
        return self.head(self.encoder((x - self.mean) / self.std))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.hparams.loss_fn(self(x), y)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


def band_statistics(n_bands=4, seed=1):
    rng = np.random.default_rng(seed)
    pixels = rng.gamma(2.0, 0.08, size=(n_bands, 4096)).astype(np.float32)
    return {"mean": pixels.mean(axis=1), "std": pixels.std(axis=1)}


@register_builder("glacier_unet")
def build_glacier(cfg_text=GLACIER_YAML):
    cfg = yaml.safe_load(cfg_text)
    d, m, o = cfg["data"], cfg["model"], cfg["optim"]
    return GlacierSegLit(
        in_channels=len(d["bands"]),
        base=m["base"],
        depth=m["depth"],
        lr=o["lr"],
        weight_decay=o["weight_decay"],
        ignore_index=m["ignore_index"],
        tile_bounds=(-1_210_000.0, -2_150_000.0, -1_144_464.0, -2_084_464.0),
        band_stats=band_statistics(len(d["bands"])),
        loss_fn=make_loss(**cfg["loss"], ignore_index=m["ignore_index"]),
        acquired_after=d["acquired_after"],
    )


@register_builder("glacier_data")
def build_glacier_data(cfg_text=GLACIER_YAML):
    d = yaml.safe_load(cfg_text)["data"]
    return GlacierDataModule(d["root"], tuple(d["bands"]), d["tile"], val_fraction=d["val_fraction"],
                             acquired_after=d["acquired_after"].isoformat())


FACTORIES = {
    "VariantDataModule": lambda: VariantDataModule("/data/HG002/examples.tfrecord", batch_size=32),
    "GenotypeClassifier": lambda: build("genotyper", genotyper_args()),
    "ReadEncoderPretrain": lambda: build("read_encoder"),
    "CTRDataModule": lambda: build("ctr_data"),
    "DeepFMLit": lambda: build("deepfm"),
    "DINLit": lambda: build("din"),
    "WideDeepLit": lambda: build("wide_deep"),
    "GlacierDataModule": lambda: build("glacier_data"),
    "GlacierSegLit": lambda: build("glacier_unet"),
    "Sensor": lambda: Sensor.LANDSAT8,
}
