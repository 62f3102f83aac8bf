"""Lightning wrappers for the three tasks, assembled from one experiment YAML.

`train.py --task asc|credit|pointseg` loads EXPERIMENTS_YAML (plus overrides), then calls the
matching `build_*` function below, which resolves names through the registries (backbones, losses,
optimizers), computes data-dependent arguments (device weights, class weights, pos_weight, fitted
scalers) and constructs the LightningModule and its LightningDataModule.
"""
import functools
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import yaml
from omegaconf import OmegaConf
from sklearn.preprocessing import StandardScaler
from torch import nn

EXPERIMENTS_YAML = """
asc:
  data_root: data/TAU-urban-acoustic-scenes-2022-mobile
  sample_rate: 16000
  n_mels: 40
  scenes: [airport, bus, metro, metro_station, park, public_square, shopping_mall,
           street_pedestrian, street_traffic, tram]
  backbone: {name: cnn_small, width: 16}
  spec_augment: {freq_mask: 8, time_mask: 16, num_masks: 2}
  device_counts: {a: 10215, b: 749, c: 748, s1: 745, s2: 745, s3: 745}
  lr: 0.001
  mixup_alpha: 0.3
  distill: {temperature: 2.0, alpha: 0.7, teacher_ckpt: runs/asc_teacher/best.ckpt}
credit:
  target: default.payment.next.month
  numeric: [LIMIT_BAL, AGE, BILL_AMT1, BILL_AMT2, PAY_AMT1, PAY_AMT2]
  categorical: [SEX, EDUCATION, MARRIAGE, PAY_0]
  hidden: [64, 32]
  emb_dim: 4
  dropout: 0.1
  optimizer: adamw
  lr: 0.002
  weight_decay: 1.0e-5
  batch_size: 256
pointseg:
  data_root: data/s3dis/processed
  class_names: [ceiling, floor, wall, beam, column, window, door, table, chair, sofa, bookcase, board, clutter]
  in_channels: 6
  width: 32
  num_points: 4096
  voxel_size: 0.05
  test_area: 5
  ignore_index: -100
  lr: 0.002
  finetune_classes: [floor, wall, table, chair]
"""


def load_experiments(overrides=()):
    cfg = OmegaConf.create(yaml.safe_load(EXPERIMENTS_YAML))
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))


# ------------------------------------------------------------------ registries

BACKBONES, LOSSES = {}, {}
OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def register(table, name):
    def deco(fn):
        table[name] = fn
        return fn
    return deco


@register(BACKBONES, "cnn_small")
def cnn_small(width=16):
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )


@register(BACKBONES, "cnn_wide")
def cnn_wide(width=48):
    return cnn_small(width)


@register(LOSSES, "kd")
def kd_loss():
    return nn.KLDivLoss(reduction="batchmean")


class OptimizerName(Enum):
    ADAMW = "adamw"
    SGD = "sgd"


@dataclass
class SpecAugmentConfig:
    freq_mask: int = 8
    time_mask: int = 16
    num_masks: int = 2


# ------------------------------------------------------------------ acoustic scenes

class SceneClassifier(L.LightningModule):
    def __init__(
        self,
        backbone,  # truth: hparam
        n_mels=40,
        num_classes=10,
        sample_rate=16000,
        lr=1e-3,
        mixup_alpha=0.3,
        spec_augment=None,  # truth: hparam
        device_weights=None,  # truth: hparam
        class_names=(),
        scene_prior=None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = backbone
        self.head = nn.LazyLinear(num_classes)

    def forward(self, x):
        return self.head(self.backbone(x.unsqueeze(1)))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class SceneDistiller(L.LightningModule):
    def __init__(
        self,
        teacher,
        student,
        temperature=2.0,
        alpha=0.7,
        loss_fn=None,  # truth: hparam
        lr=5e-4,
        teacher_ckpt="",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["teacher", "student"])
        self.teacher = teacher.eval().requires_grad_(False)
        self.student = student
        self.kd = loss_fn if loss_fn is not None else nn.KLDivLoss(reduction="batchmean")

    def training_step(self, batch, batch_idx):
        x, y = batch
        t = self.hparams.temperature
        s_logits = self.student(x)
        with torch.no_grad():
            t_logits = self.teacher(x)
        kd = self.kd(F.log_softmax(s_logits / t, -1), F.softmax(t_logits / t, -1)) * t * t
        return self.hparams.alpha * kd + (1 - self.hparams.alpha) * F.cross_entropy(s_logits, y)


class SceneEnsemble(L.LightningModule):
    def __init__(self, members, weights=None, num_classes=10, temperature=1.0):
        super().__init__()
        self.save_hyperparameters("num_classes", "temperature")
        self.members = nn.ModuleList(members)
        self.register_buffer("weights", torch.as_tensor(weights if weights is not None else np.ones(len(members)),
                                                        dtype=torch.float32))

    def forward(self, x):
        probs = torch.stack([m(x).div(self.hparams.temperature).softmax(-1) for m in self.members])
        return (self.weights[:, None, None] * probs).sum(0) / self.weights.sum()


class AcousticSceneDataModule(L.LightningDataModule):
    def __init__(self, data_root="data/TAU", sample_rate=16000, clip_seconds=1.0, batch_size=32,
                 num_workers=0, train_devices=("a", "b", "c", "s1"), val_fold="fold1"):
        super().__init__()
        self.save_hyperparameters()


def build_scene_classifier(cfg):
    asc = cfg.asc
    spec = OmegaConf.to_container(asc.backbone)
    backbone = BACKBONES[spec.pop("name")](**spec)
    counts = np.array([asc.device_counts[d] for d in asc.device_counts], dtype=np.float64)
    inv = counts.sum() / (len(counts) * counts)
    prior = torch.full((len(asc.scenes),), 1.0 / len(asc.scenes))
    return SceneClassifier(
        backbone=backbone,
        n_mels=asc.n_mels,
        num_classes=len(asc.scenes),
        sample_rate=asc.sample_rate,
        lr=asc.lr,
        mixup_alpha=asc.mixup_alpha,
        spec_augment=SpecAugmentConfig(**asc.spec_augment),
        device_weights=dict(zip(asc.device_counts.keys(), inv)),
        class_names=tuple(asc.scenes),
        scene_prior=prior,
    )


def build_scene_distiller(cfg):
    d = cfg.asc.distill
    teacher = nn.Sequential(BACKBONES["cnn_wide"](48), nn.Linear(96, len(cfg.asc.scenes)))
    student = nn.Sequential(BACKBONES["cnn_small"](8), nn.Linear(16, len(cfg.asc.scenes)))
    return SceneDistiller(teacher, student, temperature=d.temperature, alpha=d.alpha, loss_fn=LOSSES["kd"](),
                          teacher_ckpt=str(Path(d.teacher_ckpt)))


def build_scene_ensemble(cfg, n_members=3):
    members = [nn.Sequential(BACKBONES["cnn_small"](8), nn.Linear(16, len(cfg.asc.scenes))) for _ in range(n_members)]
    val_acc = np.array([0.61, 0.64, 0.59])
    return SceneEnsemble(members, weights=val_acc / val_acc.sum(), num_classes=len(cfg.asc.scenes))


# ------------------------------------------------------------------ credit default

def synth_credit_frame(cfg, n=500, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({c: rng.gamma(2.0, 20_000.0, n).round(0) for c in cfg.credit.numeric})
    df["AGE"] = rng.integers(21, 75, n)
    for c in cfg.credit.categorical:
        df[c] = rng.integers(0, 4, n)
    df[cfg.credit.target] = (rng.uniform(size=n) < 0.22).astype(int)
    return df


class CreditScorer(L.LightningModule):
    def __init__(
        self,
        num_numeric,
        cardinalities,
        feature_names,  # truth: hparam
        emb_dim=4,
        hidden=(64, 32),
        dropout=0.1,
        pos_weight=1.0,  # truth: hparam
        threshold=0.5,
        optimizer="adamw",
        lr=2e-3,
        weight_decay=1e-5,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.embeddings = nn.ModuleList(nn.Embedding(c, emb_dim) for c in cardinalities)
        layers, width = [], num_numeric + emb_dim * len(cardinalities)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.mlp = nn.Sequential(*layers, nn.Linear(width, 1))
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(float(pos_weight)))

    def configure_optimizers(self):
        cls = OPTIMIZERS[self.hparams.optimizer]
        return cls(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class ScorecardModule(L.LightningModule):
    """Keeps the fitted scaler next to the weights so the scoring service can standardise raw rows."""

    def __init__(
        self,
        scaler,  # truth: hparam
        optimizer_factory,  # truth: hparam
        n_features=6,
        hidden=64,
        lr_scheduler="cosine",
        monitor="val_auc",
        scaler_mean=None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.register_buffer("mean", torch.tensor(scaler_mean or [0.0] * n_features))

    def configure_optimizers(self):
        opt = self.hparams.optimizer_factory(self.parameters())
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
        return {"optimizer": opt, "lr_scheduler": sched, "monitor": self.hparams.monitor}


class CreditScorerFromConfig(L.LightningModule):
    def __init__(
        self,
        cfg,  # truth: hparam
        feature_count=6,
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = nn.Sequential(nn.Linear(feature_count, cfg.hidden[0]), nn.ReLU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(cfg.hidden[0], 1))


class CreditScorerFromDict(L.LightningModule):
    def __init__(self, cfg, feature_count=6):
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg, resolve=True))
        self.net = nn.Sequential(nn.Linear(feature_count, cfg.hidden[-1]), nn.ReLU(), nn.Linear(cfg.hidden[-1], 1))


class CreditDataModule(L.LightningDataModule):
    def __init__(self, frame, target="default.payment.next.month", batch_size=256, valid_size=0.2, seed=7,
                 stratify=True):
        super().__init__()
        self.save_hyperparameters(ignore=["frame"])
        self.frame = frame

    def setup(self, stage=None):
        valid = self.frame.sample(frac=self.hparams.valid_size, random_state=self.hparams.seed)
        self.valid_frame, self.train_frame = valid, self.frame.drop(valid.index)


def build_credit_scorer(cfg, df):
    c = cfg.credit
    y = df[c.target].to_numpy()
    return CreditScorer(
        num_numeric=len(c.numeric),
        cardinalities=[int(df[col].nunique()) + 1 for col in c.categorical],
        feature_names=df[list(c.numeric)].columns,
        emb_dim=c.emb_dim,
        hidden=tuple(c.hidden),
        dropout=c.dropout,
        pos_weight=(y == 0).sum() / max((y == 1).sum(), 1),
        threshold=float(y.mean()),
        optimizer=OptimizerName(c.optimizer).value,
        lr=c.lr,
        weight_decay=c.weight_decay,
    )


def build_scorecard(cfg, df):
    c = cfg.credit
    scaler = StandardScaler().fit(df[list(c.numeric)])
    factory = functools.partial(OPTIMIZERS[c.optimizer], lr=c.lr, weight_decay=c.weight_decay)
    return ScorecardModule(scaler, factory, n_features=len(c.numeric), scaler_mean=scaler.mean_.tolist())


# ------------------------------------------------------------------ point clouds

def make_miou(num_classes, ignore_index):
    def miou(pred, target):
        keep = target != ignore_index
        cm = torch.bincount(target[keep] * num_classes + pred[keep], minlength=num_classes ** 2)
        cm = cm.reshape(num_classes, num_classes).double()
        inter = cm.diag()
        return (inter / (cm.sum(0) + cm.sum(1) - inter).clamp(min=1)).mean()
    return miou


class PointSegModule(L.LightningModule):
    def __init__(
        self,
        class_names,
        in_channels=6,
        width=32,
        class_weights=None,  # truth: hparam
        ignore_index=-100,
        lr=2e-3,
        data_root="data/s3dis",  # truth: hparam
        metric_fn=None,  # truth: hparam
        voxel_size=0.05,
    ):
        super().__init__()
        self.save_hyperparameters()
        num_classes = len(class_names)
        self.encoder = nn.Sequential(nn.Conv1d(in_channels, width, 1), nn.BatchNorm1d(width), nn.ReLU(),
                                     nn.Conv1d(width, 2 * width, 1), nn.BatchNorm1d(2 * width), nn.ReLU())
        self.head = nn.Sequential(nn.Conv1d(4 * width, width, 1), nn.ReLU(), nn.Conv1d(width, num_classes, 1))
        weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.criterion = nn.CrossEntropyLoss(weight=weight, ignore_index=ignore_index)

    def forward(self, x):
        local = self.encoder(x)
        glob = local.max(2, keepdim=True).values.expand_as(local)
        return self.head(torch.cat([local, glob], 1))

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", self.criterion(logits, y))
        if self.hparams.metric_fn is not None:
            self.log("val_miou", self.hparams.metric_fn(logits.argmax(1), y))


class PointSegFinetune(PointSegModule):
    def __init__(
        self,
        head_classes,  # truth: hparam
        pretrained_path="",
        freeze_encoder=True,
        **kwargs,
    ):
        super().__init__(class_names=list(head_classes), **kwargs)
        if freeze_encoder:
            self.encoder.requires_grad_(False)


class PointCloudDataModule(L.LightningDataModule):
    def __init__(self, data_root="data/s3dis", num_points=4096, voxel_size=0.05, test_area=5, batch_size=8,
                 augment=True):
        super().__init__()
        self.save_hyperparameters()


def _pointseg_kwargs(cfg):
    p = cfg.pointseg
    hist = np.bincount(np.random.default_rng(p.test_area).integers(0, len(p.class_names), 10_000),
                       minlength=len(p.class_names))
    return dict(
        in_channels=p.in_channels,
        width=p.width,
        class_weights=1.0 / np.log(1.2 + hist / hist.sum()),
        ignore_index=p.ignore_index,
        lr=p.lr,
        data_root=Path(p.data_root),
        metric_fn=make_miou(len(p.class_names), p.ignore_index),
        voxel_size=p.voxel_size,
    )


def build_pointseg(cfg):
    return PointSegModule(class_names=list(cfg.pointseg.class_names), **_pointseg_kwargs(cfg))


def build_pointseg_finetune(cfg, pretrained="runs/pointnet/last.ckpt"):
    return PointSegFinetune(head_classes=cfg.pointseg.finetune_classes, pretrained_path=pretrained,
                            **_pointseg_kwargs(cfg))


def build_datamodule(cfg, task):
    if task == "asc":
        return AcousticSceneDataModule(data_root=cfg.asc.data_root, sample_rate=cfg.asc.sample_rate)
    if task == "credit":
        return CreditDataModule(synth_credit_frame(cfg), target=cfg.credit.target, batch_size=cfg.credit.batch_size)
    p = cfg.pointseg
    return PointCloudDataModule(data_root=str(Path(p.data_root)), num_points=p.num_points, voxel_size=p.voxel_size,
                                test_area=p.test_area)


CFG = load_experiments()

FACTORIES = {
    "SceneClassifier": lambda: build_scene_classifier(CFG),
    "SceneDistiller": lambda: build_scene_distiller(CFG),
    "SceneEnsemble": lambda: build_scene_ensemble(CFG),
    "AcousticSceneDataModule": lambda: build_datamodule(CFG, "asc"),
    "CreditScorer": lambda: build_credit_scorer(CFG, synth_credit_frame(CFG)),
    "ScorecardModule": lambda: build_scorecard(CFG, synth_credit_frame(CFG, seed=1)),
    "CreditScorerFromConfig": lambda: CreditScorerFromConfig(CFG.credit, feature_count=len(CFG.credit.numeric)),
    "CreditScorerFromDict": lambda: CreditScorerFromDict(CFG.credit, feature_count=len(CFG.credit.numeric)),
    "CreditDataModule": lambda: build_datamodule(CFG, "credit"),
    "PointSegModule": lambda: build_pointseg(CFG),
    "PointSegFinetune": lambda: build_pointseg_finetune(CFG),
    "PointCloudDataModule": lambda: build_datamodule(CFG, "pointseg"),
    "OptimizerName": lambda: OptimizerName.ADAMW,
}
