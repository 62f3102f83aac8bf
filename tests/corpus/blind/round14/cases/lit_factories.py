"""LightningModules for 3D segmentation and node/graph classification, built by factories from configs."""
import argparse
import enum
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

CFG_YAML = """
model:
  name: unet
  in_channels: 1
  n_classes: 2
  base: 4
loss:
  name: dice_ce
  smooth: 1.0e-5
  ce_weight: 1.0
optim:
  lr: 3.0e-4
  weight_decay: 1.0e-5
data:
  root: /data/Task02_Heart
  spacings:
    - [1.37, 0.68, 0.68]
    - [1.25, 0.71, 0.71]
    - [1.30, 0.70, 0.70]
  n_folds: 5
graph:
  hidden: 16
  norm: batch
  dropout: 0.5
"""


def load_config(overrides=()):
    cfg = OmegaConf.create(CFG_YAML)
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))


class Norm(str, enum.Enum):
    BATCH = "batch"
    LAYER = "layer"
    NONE = "none"


NOT_BUILT = {"Norm": "an Enum: built from its value by the factories, not with Norm()"}


@dataclass
class GNNConfig:
    in_dim: int = 8
    hidden: int = 16
    n_classes: int = 3
    dropout: float = 0.5
    lr: float = 1e-2


def graph_parser():
    p = argparse.ArgumentParser()
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--norm", choices=[n.value for n in Norm], default="batch")
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--pool", default="mean")
    return p


def toy_graph(n=10, f=8, c=3, seed=0):
    rng = np.random.default_rng(seed)
    adj = np.triu((rng.random((n, n)) < 0.3).astype(np.float32), 1)
    adj = adj + adj.T
    x = rng.normal(size=(n, f)).astype(np.float32)
    y = rng.integers(0, c, n)
    return adj, x, y


class TinyUNet(nn.Module):
    def __init__(self, in_channels=1, n_classes=2, base=4):
        super().__init__()
        self.body = nn.Sequential(nn.Conv3d(in_channels, base, 3, padding=1), nn.ReLU(), nn.Conv3d(base, n_classes, 1))

    def forward(self, x):
        return self.body(x)


class SoftDiceCELoss(nn.Module):
    def __init__(self, smooth=1e-5, ce_weight=1.0):
        super().__init__()
        self.smooth = smooth
        self.ce_weight = ce_weight

    def forward(self, logits, target):
        probs = logits.softmax(1)
        onehot = F.one_hot(target, probs.shape[1]).movedim(-1, 1).float()
        inter = (probs * onehot).sum()
        dice = (2 * inter + self.smooth) / (probs.sum() + onehot.sum() + self.smooth)
        return self.ce_weight * F.cross_entropy(logits, target) + 1 - dice


LOSSES = {"dice_ce": SoftDiceCELoss, "ce": nn.CrossEntropyLoss}


def build_loss(loss_cfg):
    kwargs = {k: v for k, v in loss_cfg.items() if k != "name"}
    return LOSSES[loss_cfg.name](**kwargs)


class DenseGCN(nn.Module):
    def __init__(self, in_dim=8, hidden=16, n_classes=3, norm="batch", dropout=0.5, activation=None):
        super().__init__()
        self.lin1 = nn.Linear(in_dim, hidden)
        self.norm = nn.BatchNorm1d(hidden) if norm == "batch" else (nn.LayerNorm(hidden) if norm == "layer" else nn.Identity())
        self.act = activation if activation is not None else nn.ReLU()
        self.lin2 = nn.Linear(hidden, n_classes)
        self.dropout = dropout

    def forward(self, a_hat, x):
        h = self.act(self.norm(a_hat @ self.lin1(x)))
        return a_hat @ self.lin2(F.dropout(h, self.dropout, self.training))


# ---------------------------------------------------------------- segmentation


class LitSegmentation(L.LightningModule):
    def __init__(
        self,
        net,
        loss_fn,  # truth: hparam
        lr=3e-4,
        weight_decay=0.0,
        target_spacing=(1.0, 1.0, 1.0),  # truth: hparam
        data_root=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        self.loss_fn = loss_fn

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


def build_segmentation(cfg):
    spacings = np.asarray(cfg.data.spacings, dtype=np.float64)
    return LitSegmentation(
        net=TinyUNet(cfg.model.in_channels, cfg.model.n_classes, cfg.model.base),
        loss_fn=build_loss(cfg.loss),
        lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay,
        target_spacing=tuple(np.median(spacings, axis=0)),
        data_root=Path(cfg.data.root),
    )


class LitSegmentationCfg(L.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = TinyUNet(cfg.model.in_channels, cfg.model.n_classes, cfg.model.base)
        self.loss_fn = build_loss(cfg.loss)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.optim.lr)


class LitSegmentationPlain(L.LightningModule):
    def __init__(
        self,
        cfg,
        fold=0,
        spacing=(1.0, 1.0, 1.0),
    ):
        super().__init__()
        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)
        spacing = tuple(float(s) for s in spacing)
        self.save_hyperparameters()
        m = cfg["model"]
        self.net = TinyUNet(m["in_channels"], m["n_classes"], m["base"])
        self.loss_fn = build_loss(OmegaConf.create(cfg["loss"]))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.cfg["optim"]["lr"])


class LitUNetFold(L.LightningModule):
    def __init__(
        self,
        net,
        loss_fn,
        lr=1e-3,
        fold=0,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters("lr", "fold")
        self.net = net
        self.loss_fn = loss_fn

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.99)


def build_fold_modules(cfg):
    folds = np.arange(cfg.data.n_folds)
    return [LitUNetFold(TinyUNet(), build_loss(cfg.loss), lr=cfg.optim.lr, fold=f) for f in folds]


# ---------------------------------------------------------------- graphs


class LitGCN(L.LightningModule):
    def __init__(
        self,
        in_dim,
        hidden,
        n_classes,
        norm=Norm.BATCH,  # truth: hparam
        dropout=0.5,
        feat_stats=None,  # truth: hparam
        activation=nn.ReLU(),  # truth: hparam
        num_nodes=0,
        lr=1e-2,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = DenseGCN(in_dim, hidden, n_classes, Norm(norm).value, dropout, activation)

    def training_step(self, batch, batch_idx):
        a_hat, x, y = batch
        return F.cross_entropy(self.model(a_hat, x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def build_gcn(argv=("--norm", "layer")):
    args = graph_parser().parse_args(list(argv))
    adj, x, y = toy_graph()
    return LitGCN(
        in_dim=x.shape[1],
        hidden=args.hidden,
        n_classes=len(np.unique(y)),
        norm=Norm(args.norm),
        dropout=args.dropout,
        feat_stats={"mean": x.mean(axis=0), "std": x.std(axis=0)},
        num_nodes=adj.shape[0],
        lr=args.lr,
    )


class LitGCNArgs(L.LightningModule):
    def __init__(self, args):
        super().__init__()
        self.save_hyperparameters(args)
        self.model = DenseGCN(8, args.hidden, 3, args.norm, args.dropout)

    def training_step(self, batch, batch_idx):
        a_hat, x, y = batch
        return F.cross_entropy(self.model(a_hat, x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class LitGraphClassifier(L.LightningModule):
    def __init__(
        self,
        args,  # truth: hparam
        n_classes=2,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = DenseGCN(8, args.hidden, n_classes, args.norm, args.dropout)

    def forward(self, a_hat, x):
        h = self.model(a_hat, x)
        return h.mean(0) if self.hparams.args.pool == "mean" else h.max(0).values

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.args.lr)


class LitGCNFromDataclass(L.LightningModule):
    def __init__(
        self,
        config,  # truth: hparam
        class_weights=None,
        train_mask=None,
    ):
        super().__init__()
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
        self.save_hyperparameters(ignore=["train_mask"])
        self.model = DenseGCN(config.in_dim, config.hidden, config.n_classes, "none", config.dropout)
        self.register_buffer("train_mask", torch.as_tensor(train_mask) if train_mask is not None else torch.ones(1))

    def training_step(self, batch, batch_idx):
        a_hat, x, y = batch
        out = self.model(a_hat, x)
        return F.cross_entropy(out, y, weight=self.hparams.class_weights)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.config.lr)


class LitNodeSplits(L.LightningModule):
    def __init__(
        self,
        hidden=16,
        lr=1e-2,
        split_sizes=(5, 3, 2),
        best_val_acc=0.0,
        split_seed=0,
        loss_name="ce",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = DenseGCN(8, hidden, 3, "none", 0.0)

    def training_step(self, batch, batch_idx):
        a_hat, x, y = batch
        return F.cross_entropy(self.model(a_hat, x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def build_node_splits(seed=0):
    _, _, y = toy_graph(seed=seed)
    perm = np.random.RandomState(seed).permutation(len(y))
    masks = [np.isin(np.arange(len(y)), part) for part in np.split(perm, [5, 8])]
    val_accs = np.array([0.4, 0.55, 0.5])
    return LitNodeSplits(
        hidden=16,
        lr=1e-2,
        split_sizes=tuple(int(m.sum()) for m in masks),
        best_val_acc=val_accs.max().item(),
        split_seed=seed,
        loss_name=str(Path("losses/ce").name),
    )


def _class_weights(y, n_classes=3):
    counts = np.bincount(y, minlength=n_classes)
    return len(y) / (n_classes * np.maximum(counts, 1))


FACTORIES = {
    "LitSegmentation": lambda: build_segmentation(load_config()),
    "LitSegmentationCfg": lambda: LitSegmentationCfg(load_config(["optim.lr=0.001"])),
    "LitSegmentationPlain": lambda: LitSegmentationPlain(load_config(), fold=1, spacing=np.array([1.25, 0.7, 0.7])),
    "LitUNetFold": lambda: build_fold_modules(load_config())[1],
    "LitGCN": build_gcn,
    "LitGCNArgs": lambda: LitGCNArgs(graph_parser().parse_args(["--hidden", "8"])),
    "LitGraphClassifier": lambda: LitGraphClassifier(graph_parser().parse_args(["--pool", "max"]), n_classes=2),
    "LitGCNFromDataclass": lambda: LitGCNFromDataclass(
        GNNConfig(hidden=8), class_weights=_class_weights(toy_graph()[2]), train_mask=np.ones(10, dtype=bool)
    ),
    "LitNodeSplits": build_node_splits,
}
