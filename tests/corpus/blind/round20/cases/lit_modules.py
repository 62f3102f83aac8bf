"""LightningModules for the three projects (molecules, 3D segmentation, point clouds), built by
factories from their configs the way the train scripts do."""
import argparse
import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from sklearn.preprocessing import StandardScaler
from torch import nn


class Readout(enum.Enum):
    SUM = "sum"
    MEAN = "mean"


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0


class DiceCELoss(nn.Module):
    def __init__(self, ce_weight=0.5):
        super().__init__()
        self.ce_weight = ce_weight

    def forward(self, logits, target):
        probs = logits.softmax(1)
        onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).float()
        dice = 1 - (2 * (probs * onehot).sum() + 1) / (probs.sum() + onehot.sum() + 1)
        return dice + self.ce_weight * F.cross_entropy(logits, target)


def _encoder(in_dim, hidden):
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden))


class LitMolRegressor(L.LightningModule):
    def __init__(
        self,
        in_dim: int = 6,
        hidden: int = 16,
        readout: Readout = Readout.SUM,  # truth: hparam
        target_scaler: Optional[StandardScaler] = None,  # truth: hparam
        target_mean: float = 0.0,  # truth: hparam
        tasks: Sequence[str] = ("logS",),
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = _encoder(in_dim, hidden)
        self.head = nn.Linear(hidden, len(tasks))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.head(self.encoder(x)), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class LitMolClassifier(L.LightningModule):
    """Clean: the encoder is ignored, class weights come in as a tensor, scaffolds as a plain list."""

    def __init__(
        self,
        encoder: nn.Module,
        hidden: int = 16,
        pos_weight: Optional[torch.Tensor] = None,
        scaffold_split: bool = True,
        split_sizes: Sequence[int] = (6, 2),
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        self.head = nn.Linear(hidden, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.head(self.encoder(x)).squeeze(-1)
        return F.binary_cross_entropy_with_logits(logits, y, pos_weight=self.hparams.pos_weight)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class LitSegmenter3D(L.LightningModule):
    def __init__(
        self,
        num_classes: int = 4,
        loss_fn: nn.Module = DiceCELoss(),  # truth: hparam
        spacing=(1.5, 1.5, 2.0),
        class_weights: Optional[np.ndarray] = None,  # truth: hparam
        fold: int = 0,
        data_root: Path = Path("data/amos"),  # truth: hparam
        lr_lambda=lambda epoch: 0.95**epoch,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Conv3d(1, num_classes, 3, padding=1)
        self.loss_fn = loss_fn

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self.net(x), y)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.01)
        return [opt], [torch.optim.lr_scheduler.LambdaLR(opt, self.hparams.lr_lambda)]


class LitSegmenterCV(L.LightningModule):
    """Clean: the loss is ignored, the fold's patients are plain strings, the optimizer config a dict."""

    def __init__(
        self,
        loss_fn: nn.Module,
        num_classes: int = 4,
        fold: int = 0,
        val_patients: Sequence[str] = (),
        optim: Optional[dict] = None,
        spacing: Sequence[float] = (1.5, 1.5, 2.0),
        compute_dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["loss_fn"])
        self.loss_fn = loss_fn
        self.net = nn.Conv3d(1, num_classes, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self.net(x), y)


class LitPointNet(L.LightningModule):
    def __init__(self, cfg: DictConfig):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.mlp = nn.Conv1d(3, cfg.model.emb_dims, 1)
        self.cls = nn.Linear(cfg.model.emb_dims, cfg.model.num_classes)

    def forward(self, pts):
        return self.cls(F.relu(self.mlp(pts.transpose(1, 2))).max(2).values)

    def training_step(self, batch, batch_idx):
        pts, y = batch
        return F.cross_entropy(self(pts), y)


class LitPointSeg(L.LightningModule):
    def __init__(
        self,
        emb_dims: int,
        num_parts: int,
        args: argparse.Namespace,  # truth: hparam
        optim_cfg: OptimConfig,  # truth: hparam
        part_names: list,
        voxel_size: float = 0.05,  # truth: hparam
        class_freq=None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.mlp = nn.Conv1d(3, emb_dims, 1)
        self.head = nn.Conv1d(emb_dims, num_parts, 1)

    def training_step(self, batch, batch_idx):
        pts, y = batch
        return F.cross_entropy(self.head(F.relu(self.mlp(pts.transpose(1, 2)))), y)


class LitPointCloudAE(L.LightningModule):
    """Clean: OmegaConf converted to a container, numpy values turned into Python numbers."""

    def __init__(
        self,
        model_cfg: dict,
        num_points: int = 64,
        chamfer_weight: float = 1.0,
        augment: Sequence[str] = ("jitter",),
        normalize: bool = True,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.enc = nn.Linear(3 * num_points, model_cfg["emb_dims"])
        self.dec = nn.Linear(model_cfg["emb_dims"], 3 * num_points)

    def training_step(self, batch, batch_idx):
        x = batch.flatten(1)
        return self.hparams.chamfer_weight * F.mse_loss(self.dec(self.enc(x)), x)


POINT_CFG = """
model: {emb_dims: 8, num_classes: 4}
data: {num_points: 64, voxel_size: 0.05}
"""


def build_mol_regressor():
    df = pd.DataFrame({"logS": np.linspace(-3.0, 1.0, 8)})
    scaler = StandardScaler().fit(df[["logS"]].to_numpy())
    return LitMolRegressor(readout=Readout.MEAN, target_scaler=scaler, target_mean=df["logS"].mean())


def build_mol_classifier():
    labels = np.array([0, 1, 0, 1, 0, 1, 1, 0])
    pos_weight = torch.tensor((labels == 0).sum() / max((labels == 1).sum(), 1), dtype=torch.float32)
    return LitMolClassifier(_encoder(6, 16), pos_weight=pos_weight, split_sizes=[6, 2])


def build_segmenter():
    counts = np.array([900, 40, 30, 30])
    return LitSegmenter3D(class_weights=counts.sum() / (len(counts) * counts), fold=1)


def build_segmenter_cv():
    return LitSegmenterCV(
        DiceCELoss(0.3),
        fold=2,
        val_patients=["case_001", "case_004"],
        optim=dict(lr=1e-3, momentum=0.9),
        spacing=np.array([1.5, 1.5, 2.0]).tolist(),
        compute_dtype=torch.bfloat16,
    )


def build_pointnet():
    return LitPointNet(OmegaConf.create(POINT_CFG))


def build_point_seg():
    parser = argparse.ArgumentParser()
    parser.add_argument("--emb_dims", type=int, default=8)
    parser.add_argument("--voxel_size", type=float, default=0.05)
    args = parser.parse_args([])
    cfg = OmegaConf.create(POINT_CFG)
    return LitPointSeg(
        emb_dims=args.emb_dims,
        num_parts=cfg.model.num_classes,
        args=args,
        optim_cfg=OptimConfig(lr=3e-4),
        part_names=["wing", "body", "tail", "engine"],
        voxel_size=np.float32(cfg.data.voxel_size),
        class_freq=torch.tensor([0.4, 0.3, 0.2, 0.1]),
    )


def build_point_ae():
    cfg = OmegaConf.create(POINT_CFG)
    return LitPointCloudAE(
        OmegaConf.to_container(cfg.model, resolve=True),
        num_points=int(cfg.data.num_points),
        chamfer_weight=float(np.float64(0.5)),
        augment=["jitter", "rotate_z"],
    )


FACTORIES = {
    "LitMolRegressor": build_mol_regressor,
    "LitMolClassifier": build_mol_classifier,
    "LitSegmenter3D": build_segmenter,
    "LitSegmenterCV": build_segmenter_cv,
    "LitPointNet": build_pointnet,
    "LitPointSeg": build_point_seg,
    "LitPointCloudAE": build_point_ae,
    "DiceCELoss": lambda: DiceCELoss(0.5),
}
NOT_BUILT = {"Readout": "an Enum: its members are built at import"}
