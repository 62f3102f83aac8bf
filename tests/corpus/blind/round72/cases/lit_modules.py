"""Lightning wrappers for the molecule, CLV and document-layout projects.

Every module is built the way the train entry points build it: from a dataclass config
(molecules), from argparse arguments (CLV) or from an OmegaConf YAML config (layout), with
losses, optimizers, pooling functions and augmentations looked up in registries.
"""
import argparse
import functools
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset

# ----------------------------------------------------------------------------- registries

LOSSES = {"mse": nn.MSELoss, "huber": nn.SmoothL1Loss, "bce": nn.BCEWithLogitsLoss}
POOLING = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax}
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
NORMS = {"bn": nn.BatchNorm2d, "in": nn.InstanceNorm2d, "gn": "group"}
AUGMENTATIONS = {}

ATOMS = ["C", "N", "O", "S", "F", "Cl", "Br", "P"]
LAYOUT_CLASSES = ["text", "title", "list", "table", "figure"]
PALETTE = [[255, 255, 255], [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189]]


def register_augmentation(name):
    def deco(fn):
        AUGMENTATIONS[name] = fn
        return fn
    return deco


@register_augmentation("jitter")
def make_jitter(strength):
    def jitter(img):
        return (img + strength * torch.randn_like(img)).clamp(0, 1)
    return jitter


@register_augmentation("none")
def make_identity(strength=0.0):
    return None


# ----------------------------------------------------------------------------- molecules

@dataclass
class MolTrainConfig:
    hidden: int = 32
    depth: int = 3
    readout: str = "sum"
    loss: str = "huber"
    lr: float = 1e-3
    tasks: list = field(default_factory=lambda: ["logS"])


def toy_graph_tensors(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, len(ATOMS), (n, 9), generator=g)
    y = (x != 0).float().mean(1, keepdim=True) * -2 + torch.randn(n, 1, generator=g) * 0.2
    return x, y


class LitMPNN(pl.LightningModule):
    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 64,
        depth: int = 3,
        readout: str = "sum",
        pool=torch.sum,  # truth: hparam
        lr: float = 1e-3,
        target_mean: float = 0.0,  # truth: hparam
        target_std: float = 1.0,
        atom_vocab=None,
        task_names=("logS",),
        loss_fn=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(in_dim, hidden_dim)
        self.mix = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim) for _ in range(depth))
        self.head = nn.Linear(hidden_dim, len(task_names))
        self.loss_fn = loss_fn or nn.MSELoss()

    def forward(self, atoms):
        h = self.embed(atoms)
        for lin in self.mix:
            h = h + F.relu(lin(h))
        return self.head(self.hparams.pool(h, dim=1))

    def training_step(self, batch, _):
        x, y = batch
        y = (y - self.hparams.target_mean) / self.hparams.target_std
        loss = self.loss_fn(self(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def build_mpnn_module(cfg: MolTrainConfig, y_train: np.ndarray):
    return LitMPNN(
        in_dim=len(ATOMS),
        hidden_dim=cfg.hidden,
        depth=cfg.depth,
        readout=cfg.readout,
        pool=POOLING[cfg.readout],
        lr=cfg.lr,
        target_mean=y_train.mean(),
        target_std=float(y_train.std()),
        atom_vocab=list(ATOMS),
        task_names=tuple(cfg.tasks),
        loss_fn=LOSSES[cfg.loss](),
    )


class LitMaskedAtomPretrain(pl.LightningModule):
    def __init__(
        self,
        encoder: nn.Module,
        mask_rate: float = 0.15,
        atom_weights: torch.Tensor = None,
        lr: float = 5e-4,
        scheduler=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        self.decoder = nn.Linear(encoder.embedding_dim, len(ATOMS))

    def training_step(self, batch, _):
        atoms = batch[0]
        mask = torch.rand(atoms.shape) < self.hparams.mask_rate
        logits = self.decoder(self.encoder(atoms.masked_fill(mask, 0)))
        return F.cross_entropy(logits[mask], atoms[mask], weight=self.hparams.atom_weights)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        return [opt], [self.hparams.scheduler(opt)] if self.hparams.scheduler else []


def build_pretrain_module(n_molecules=64, warmup_steps=100):
    atoms, _ = toy_graph_tensors(n_molecules)
    counts = torch.bincount(atoms.flatten(), minlength=len(ATOMS)).float()
    return LitMaskedAtomPretrain(
        encoder=nn.Embedding(len(ATOMS), 32),
        mask_rate=0.15,
        atom_weights=counts.sum() / (counts + 1) / len(ATOMS),
        scheduler=functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=warmup_steps),
    )


class MolDataModule(pl.LightningDataModule):
    def __init__(self, n_molecules: int = 64, batch_size: int = 16, split=(0.8, 0.1, 0.1), seed: int = 0,
                 num_workers: int = 0, featurizer: str = "atom_onehot"):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        x, y = toy_graph_tensors(self.hparams.n_molecules, self.hparams.seed)
        n_train = int(self.hparams.split[0] * len(x))
        self.train_set = TensorDataset(x[:n_train], y[:n_train])
        self.val_set = TensorDataset(x[n_train:], y[n_train:])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True,
                          num_workers=self.hparams.num_workers)


# ----------------------------------------------------------------------------- CLV

def clv_arg_parser():
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", type=Path, default=Path("data/retail"))
    p.add_argument("--cutoff", default="2023-06-30")
    p.add_argument("--horizon-days", type=int, default=365)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--optim", default="adamw", choices=sorted(OPTIMIZERS))
    p.add_argument("--loss", default="ziln")
    p.add_argument("--quantiles", type=float, nargs="+", default=[0.1, 0.5, 0.9])
    return p


def toy_rfm_frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": np.arange(n),
        "recency": rng.integers(0, 365, n),
        "frequency": rng.poisson(3, n),
        "monetary": rng.lognormal(3, 0.7, n),
        "channel": rng.choice(["web", "app", "store"], n),
        "target": np.where(rng.random(n) < 0.4, 0.0, rng.lognormal(4, 1, n)),
    })


class LitCLV(pl.LightningModule):
    def __init__(
        self,
        n_features: int,
        hidden: int = 64,
        lr: float = 3e-3,
        loss: str = "ziln",
        quantiles=(0.1, 0.5, 0.9),
        feature_means=None,  # truth: hparam
        feature_stds=None,
        spend_cap=None,  # truth: hparam
        optimizer_cls=torch.optim.AdamW,  # truth: hparam
        cutoff=None,  # truth: hparam
        horizon_days: int = 365,
        channels=("web", "app", "store"),
        n_customers: int = 0,
        scheduler_kwargs=None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, _):
        x, y = batch
        p_logit, mu, _ = self(x).unbind(-1)
        y = y.clamp(max=float(self.hparams.spend_cap))
        return F.binary_cross_entropy_with_logits(p_logit, (y > 0).float()) + F.mse_loss(mu, torch.log1p(y))

    def configure_optimizers(self):
        opt = self.hparams.optimizer_cls(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.StepLR(opt, **(self.hparams.scheduler_kwargs or {"step_size": 10}))
        return {"optimizer": opt, "lr_scheduler": sched}


def build_clv_module(argv=()):
    args = clv_arg_parser().parse_args(list(argv))
    df = toy_rfm_frame()
    num = df[["recency", "frequency", "monetary"]]
    return LitCLV(
        n_features=num.shape[1],
        hidden=args.hidden,
        lr=args.lr,
        loss=args.loss,
        quantiles=tuple(args.quantiles),
        feature_means=num.mean().to_numpy(),
        feature_stds=num.std().tolist(),
        spend_cap=df["target"].quantile(0.99),
        optimizer_cls=OPTIMIZERS[args.optim],
        cutoff=pd.Timestamp(args.cutoff).date(),
        horizon_days=args.horizon_days,
        channels=tuple(sorted(df["channel"].unique().tolist())),
        n_customers=df["customer_id"].nunique(),
        scheduler_kwargs={"step_size": 5, "gamma": 0.5},
    )


class LitCLVFromArgs(pl.LightningModule):
    """The older entry point: the whole argparse namespace goes into the checkpoint."""

    def __init__(self, args, n_features: int = 3):  # truth: hparam[args]
        super().__init__()
        self.save_hyperparameters(args)
        self.net = nn.Linear(n_features, 3)

    def forward(self, x):
        return self.net(x)


class CLVDataModule(pl.LightningDataModule):
    def __init__(self, data_dir: str = "data/retail", cutoff: str = "2023-06-30", horizon_days: int = 365,
                 batch_size: int = 128, features=("recency", "frequency", "monetary")):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        df = toy_rfm_frame()
        x = torch.tensor(df[list(self.hparams.features)].to_numpy(np.float32))
        self.train_set = TensorDataset(x, torch.tensor(df["target"].to_numpy(np.float32)))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)


# ----------------------------------------------------------------------------- layout

LAYOUT_YAML = """
data:
  root: /datasets/publaynet
  img_size: [128, 96]
  classes: [text, title, list, table, figure]
model:
  backbone: tiny_conv
  width: 16
  norm: bn
  loss: ce
train:
  lr: 0.002
  augment: jitter
  aug_strength: 0.05
"""


def load_layout_config(overrides=()):
    return OmegaConf.merge(OmegaConf.create(LAYOUT_YAML), OmegaConf.from_dotlist(list(overrides)))


class LitLayoutDetector(pl.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        width = cfg.model.width
        self.backbone = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.ReLU(), nn.Conv2d(width, width, 3, 2, 1))
        self.cls_head = nn.Conv2d(width, len(cfg.data.classes), 1)

    def forward(self, images):
        return self.cls_head(self.backbone(images))


class LitReadingOrder(pl.LightningModule):
    def __init__(self, config: dict, feature_dim: int = 8, margin: float = 1.0, pairwise: bool = True,
                 features=("x0", "y0", "x1", "y1", "cx", "cy", "w", "h"), max_regions: int = 64):
        super().__init__()
        self.save_hyperparameters()
        self.scorer = nn.Sequential(nn.Linear(feature_dim, 32), nn.ReLU(), nn.Linear(32, 1))

    def training_step(self, batch, _):
        a, b = batch
        return F.margin_ranking_loss(self.scorer(a), self.scorer(b), torch.ones(len(a), 1),
                                     margin=self.hparams.margin)


def build_reading_order(overrides=()):
    cfg = load_layout_config(overrides)
    counts = np.array([7, 12, 9, 15])
    return LitReadingOrder(config=OmegaConf.to_container(cfg.train, resolve=True),
                           max_regions=int(np.max(counts)))


class LitLayoutSegmenter(pl.LightningModule):
    def __init__(
        self,
        num_classes: int,
        backbone: str = "tiny_conv",
        class_names=None,  # truth: hparam
        class_weights: torch.Tensor = None,
        label_map: dict = None,
        palette=None,  # truth: hparam
        augment=None,  # truth: hparam
        img_size=(128, 96),
        ignore_index: int = 255,
        norm_layer=nn.BatchNorm2d,  # truth: hparam
        loss=nn.CrossEntropyLoss(),
        lr: float = 1e-3,
        dice_smooth: float = 1.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        norm = norm_layer if isinstance(norm_layer, type) else nn.Identity
        self.encoder = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1), norm(16), nn.ReLU())
        self.classifier = nn.Conv2d(16, num_classes + 1, 1)

    def forward(self, images):
        return self.classifier(self.encoder(images))

    def training_step(self, batch, _):
        images, masks = batch
        if self.hparams.augment is not None:
            images = self.hparams.augment(images)
        logits = self(images)
        return F.cross_entropy(logits, masks, weight=self.hparams.class_weights,
                               ignore_index=self.hparams.ignore_index)


def build_segmenter(overrides=()):
    cfg = load_layout_config(overrides)
    freq = np.array([0.62, 0.05, 0.08, 0.11, 0.14])
    weights = np.median(freq) / freq
    return LitLayoutSegmenter(
        num_classes=len(cfg.data.classes),
        backbone=cfg.model.backbone,
        class_names=cfg.data.classes,
        class_weights=torch.tensor([1.0, *weights.tolist()]),
        label_map={name: i + 1 for i, name in enumerate(cfg.data.classes)},
        palette=np.array(PALETTE, dtype=np.uint8),
        augment=AUGMENTATIONS[cfg.train.augment](cfg.train.aug_strength),
        img_size=tuple(cfg.data.img_size),
        norm_layer=NORMS[cfg.model.norm],
        loss=cfg.model.loss,
        lr=float(cfg.train.lr),
    )


class LayoutDataModule(pl.LightningDataModule):
    def __init__(self, root: str = "/datasets/publaynet", img_size=(128, 96), batch_size: int = 4,
                 classes=tuple(LAYOUT_CLASSES), num_workers: int = 0):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        h, w = self.hparams.img_size
        self.train_set = TensorDataset(torch.rand(8, 3, h, w), torch.randint(0, 6, (8, h, w)))


def _mol_cfg_targets():
    cfg = MolTrainConfig(readout="mean", loss="huber")
    _, y = toy_graph_tensors()
    return cfg, y.numpy()


FACTORIES = {
    "MolTrainConfig": MolTrainConfig,
    "LitMPNN": lambda: build_mpnn_module(*_mol_cfg_targets()),
    "LitMaskedAtomPretrain": build_pretrain_module,
    "LitCLV": lambda: build_clv_module(["--optim", "adam", "--hidden", "32"]),
    "LitCLVFromArgs": lambda: LitCLVFromArgs(clv_arg_parser().parse_args(["--hidden", "32"])),
    "LitLayoutDetector": lambda: LitLayoutDetector(load_layout_config(["model.width=8"])),
    "LitReadingOrder": build_reading_order,
    "LitLayoutSegmenter": build_segmenter,
    "LayoutDataModule": lambda: LayoutDataModule(img_size=(64, 48)),
}
