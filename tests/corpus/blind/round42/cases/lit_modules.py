"""LightningModules and DataModules for the three projects (forecasting, KWS, LiDAR detection).

Each module is built by a `build_*` function from the project's config (YAML for the retail team,
OmegaConf for the others), as `train.py` does before `Trainer.fit`.
"""
import dataclasses
import enum
import functools
import os
from collections import Counter
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.ao.quantization as tq
import torch.nn as nn
import yaml
from omegaconf import OmegaConf
from sklearn.preprocessing import LabelEncoder

RETAIL_YAML = """
split: {train_end: 2024-02-15, horizon: 14}
model: {window: 28, hidden: 64, quantiles: [0.1, 0.5, 0.9]}
reconcile: {method: mint_shrink}
data: {n_stores: 4, n_items: 10, n_days: 120}
"""

CONFIG = OmegaConf.create("""
kws:
  labels: ["yes", "no", up, down, _silence_, _unknown_]
  n_mfcc: 10
  n_mels: 40
  width: 24
  backend: qnnpack
  augment: {name: time_shift, params: {max_ms: 100}}
lidar:
  data_root: /data/kitti_mini
  class_names: [Car, Pedestrian, Cyclist]
  point_cloud_range: [0.0, -19.2, -3.0, 38.4, 19.2, 1.0]
  voxel_size: [0.6, 0.6, 4.0]
  max_points_per_voxel: 16
  backbone: {name: bev_small, channels: [16, 32]}
  head: {num_classes: 3, heads: {reg: 2, height: 1, dim: 3, rot: 2}}
  optim: {lr: 0.003, weight_decay: 0.01}
  eval: {dist_thresholds: [0.5, 1.0, 2.0], max_dets: 50}
""")


# ------------------------------------------------------------------ retail forecasting

class Reconciliation(enum.Enum):
    OLS = "ols"
    WLS = "wls_struct"
    MINT = "mint_shrink"


def store_item_tables(n_stores, n_items, seed=0):
    rng = np.random.default_rng(seed)
    stores = pd.DataFrame({"store_id": [f"S{i}" for i in range(n_stores)],
                           "region": ["north", "south"] * (n_stores // 2) + ["north"] * (n_stores % 2)})
    items = pd.DataFrame({"item_id": [f"I{j}" for j in range(n_items)],
                          "dept": rng.choice(["FOODS", "HOBBIES", "HOUSEHOLD"], n_items),
                          "revenue": rng.gamma(2.0, 50.0, n_items)})
    return stores, items


def build_summing_matrix(stores, items):
    n_b = len(stores) * len(items)
    store_rows = np.kron(np.eye(len(stores)), np.ones((1, len(items))))
    return np.vstack([np.ones((1, n_b)), store_rows, np.eye(n_b)])


class PinballLoss(nn.Module):
    def __init__(self, quantiles=(0.1, 0.5, 0.9)):
        super().__init__()
        self.register_buffer("q", torch.tensor(quantiles))

    def forward(self, pred, target):
        diff = target.unsqueeze(-1) - pred
        return torch.maximum(self.q * diff, (self.q - 1) * diff).mean()


class LitHierForecaster(L.LightningModule):
    def __init__(
        self,
        window: int = 28,
        horizon: int = 14,
        hidden: int = 64,
        quantiles: tuple = (0.1, 0.5, 0.9),
        summing_matrix=None,  # truth: hparam
        reconciliation: Reconciliation = Reconciliation.OLS,  # truth: hparam
        train_end=None,  # truth: hparam
        level_weights=None,
        lr: float = 1e-3,
        n_stores: int = 4,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("S", torch.as_tensor(summing_matrix, dtype=torch.float32))
        self.net = nn.Sequential(nn.Linear(window, hidden), nn.ReLU(), nn.Linear(hidden, horizon * len(quantiles)))
        self.loss_fn = PinballLoss(quantiles)

    def forward(self, x):
        return self.net(x).view(x.shape[0], self.hparams.horizon, -1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class LitGlobalForecaster(L.LightningModule):
    """Static covariates (store, dept) as embeddings; revenue weights for the WRMSSE-style loss."""

    def __init__(
        self,
        static_cardinalities: dict,
        embedding_sizes: dict,
        series_weights=None,  # truth: hparam
        scaler_stats=None,
        freq: str = "D",
        hidden: int = 32,
        dropout: float = 0.1,
        loss_fn: nn.Module = None,
        lr: float = 3e-3,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["loss_fn"])
        self.embs = nn.ModuleDict({k: nn.Embedding(n, embedding_sizes[k]) for k, n in static_cardinalities.items()})
        self.head = nn.Sequential(nn.Linear(sum(embedding_sizes.values()) + 28, hidden), nn.Dropout(dropout),
                                  nn.Linear(hidden, 14))
        self.loss_fn = loss_fn or nn.L1Loss()


class RetailDataModule(L.LightningDataModule):
    def __init__(self, n_stores=4, n_items=10, n_days=120, window=28, horizon=14, batch_size=64,
                 num_workers=0, store_csv="stores.csv"):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        self.stores, self.items = store_item_tables(self.hparams.n_stores, self.hparams.n_items)


def build_forecaster(yaml_text=RETAIL_YAML):
    cfg = yaml.safe_load(yaml_text)
    stores, items = store_item_tables(cfg["data"]["n_stores"], cfg["data"]["n_items"])
    S = build_summing_matrix(stores, items)
    level_rows = {"total": 1, "store": len(stores), "item": len(stores) * len(items)}
    return LitHierForecaster(
        window=cfg["model"]["window"],
        horizon=cfg["split"]["horizon"],
        hidden=cfg["model"]["hidden"],
        quantiles=tuple(cfg["model"]["quantiles"]),
        summing_matrix=S,
        reconciliation=Reconciliation(cfg["reconcile"]["method"]),
        train_end=cfg["split"]["train_end"],
        level_weights={k: 1.0 / n for k, n in level_rows.items()},
        n_stores=stores["store_id"].nunique(),
    )


def build_global_forecaster():
    stores, items = store_item_tables(4, 10)
    grid = stores.merge(items, how="cross")
    cards = {"store_id": grid["store_id"].nunique(), "dept": grid["dept"].nunique()}
    weights = grid.set_index(["store_id", "item_id"])["revenue"]
    return LitGlobalForecaster(
        static_cardinalities=cards,
        embedding_sizes={k: min(8, (n + 1) // 2) for k, n in cards.items()},
        series_weights=weights / weights.sum(),
        scaler_stats={"mean": float(grid["revenue"].mean()), "std": float(grid["revenue"].std())},
        loss_fn=PinballLoss((0.5,)),
    )


# ------------------------------------------------------------------ keyword spotting

AUGMENTATIONS = {}


def register_aug(name):
    def deco(fn):
        AUGMENTATIONS[name] = fn
        return fn
    return deco


@register_aug("time_shift")
def time_shift(max_ms=100, sample_rate=16000):
    max_shift = int(sample_rate * max_ms / 1000)

    def _shift(wav):
        return torch.roll(wav, int(torch.randint(-max_shift, max_shift + 1, ())), dims=-1)
    return _shift


def log_mel(wav, n_mels=40, n_fft=480, hop=320):
    spec = torch.stft(wav, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True).abs() ** 2
    return torch.log(spec[..., :n_mels, :] + 1e-6)


class TinyDSCNN(nn.Module):
    def __init__(self, n_classes=6, width=24, n_blocks=2):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        layers = [nn.Conv2d(1, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        for _ in range(n_blocks):
            layers += [nn.Conv2d(width, width, 3, padding=1, groups=width), nn.BatchNorm2d(width), nn.ReLU(),
                       nn.Conv2d(width, width, 1), nn.BatchNorm2d(width), nn.ReLU()]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(width, n_classes)

    def forward(self, x):
        return self.dequant(self.fc(self.features(self.quant(x))))


class LitKWS(L.LightningModule):
    def __init__(
        self,
        labels,  # truth: hparam
        n_mfcc: int = 10,
        width: int = 24,
        n_blocks: int = 2,
        qconfig=None,  # truth: hparam
        qat_start_epoch: int = 3,
        backend: str = "qnnpack",
        augment=None,  # truth: hparam
        feature_fn=None,  # truth: hparam
        class_weights=None,
        lr: float = 2e-3,
        label_smoothing: float = 0.1,
        spec_augment=None,
    ):
        super().__init__()
        labels = list(labels)
        self.save_hyperparameters()
        self.model = TinyDSCNN(len(labels), width, n_blocks)
        self.criterion = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)

    def on_train_epoch_start(self):
        if self.current_epoch == self.hparams.qat_start_epoch:
            self.model.qconfig = self.hparams.qconfig
            tq.prepare_qat(self.model, inplace=True)

    def training_step(self, batch, batch_idx):
        wav, y = batch
        feats = self.hparams.feature_fn(self.hparams.augment(wav)).unsqueeze(1)
        return self.criterion(self.model(feats), y)


class LitKWSDistill(L.LightningModule):
    """Student DS-CNN distilled from a larger float teacher (teacher weights come from its own ckpt)."""

    def __init__(
        self,
        teacher: nn.Module,
        labels,
        temperature: float = 4.0,
        alpha: float = 0.7,
        student_width: int = 16,
        backend: str = "qnnpack",
    ):
        super().__init__()
        labels = [str(label) for label in labels]
        self.save_hyperparameters(ignore=["teacher"])
        self.teacher = teacher.eval()
        self.student = TinyDSCNN(len(labels), student_width)


class KWSDataModule(L.LightningDataModule):
    def __init__(self, labels=("yes", "no"), clips_per_label=12, sample_rate=16000, batch_size=32,
                 background_noise_db=-20.0, frontend=None):
        super().__init__()
        self.save_hyperparameters()


def build_kws(cfg=None):
    cfg = cfg or CONFIG.kws
    encoder = LabelEncoder().fit(list(cfg.labels))
    counts = Counter({label: 12 for label in cfg.labels})
    freq = torch.tensor([counts[label] for label in encoder.classes_], dtype=torch.float32)
    aug = cfg.augment
    return LitKWS(
        labels=encoder.classes_,
        n_mfcc=cfg.n_mfcc,
        width=cfg.width,
        qconfig=tq.get_default_qat_qconfig(cfg.backend),
        backend=cfg.backend,
        augment=AUGMENTATIONS[aug.name](**aug.params),
        feature_fn=functools.partial(log_mel, n_mels=cfg.n_mels),
        class_weights=freq.sum() / (len(freq) * freq),
        spec_augment={"time_masks": 2, "time_width": 10, "freq_masks": 2, "freq_width": 4},
    )


def build_kws_distill(cfg=None):
    cfg = cfg or CONFIG.kws
    encoder = LabelEncoder().fit(list(cfg.labels))
    teacher = TinyDSCNN(len(encoder.classes_), width=64, n_blocks=4)
    return LitKWSDistill(teacher, labels=encoder.classes_, backend=cfg.backend)


# ------------------------------------------------------------------ LiDAR detection

BACKBONES = {}


def register_backbone(name):
    def deco(cls):
        BACKBONES[name] = cls
        return cls
    return deco


@register_backbone("bev_small")
class BEVSmall(nn.Module):
    def __init__(self, in_channels=16, channels=(16, 32)):
        super().__init__()
        layers, c = [], in_channels
        for out in channels:
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            c = out
        self.net = nn.Sequential(*layers)


class LitVoxelDet(L.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.backbone = BEVSmall(16, tuple(cfg.backbone.channels))


class LitDetectorBase(L.LightningModule):
    def __init__(
        self,
        class_names,  # truth: hparam
        lr: float = 3e-3,
        weight_decay: float = 0.01,
        eval_cfg=None,  # truth: hparam
        data_root=None,  # truth: hparam
        **kwargs,
    ):
        super().__init__()
        self.save_hyperparameters()

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class LitPointPillars(LitDetectorBase):
    def __init__(
        self,
        voxel_size=(0.6, 0.6, 4.0),  # truth: hparam
        point_cloud_range=(0.0, -19.2, -3.0, 38.4, 19.2, 1.0),
        max_points_per_voxel: int = 16,
        backbone: nn.Module = None,  # truth: hparam
        head_cfg=None,
        grid_size=None,
        device_hint=torch.device("cpu"),
        precision_dtype=torch.float16,
        **kwargs,
    ):
        voxel_size = np.asarray(voxel_size, dtype=np.float32)
        super().__init__(**kwargs)
        self.backbone = backbone
        self.heads = nn.ModuleDict({k: nn.Conv2d(32, n, 1) for k, n in head_cfg["heads"].items()})


class LitPillarsExport(L.LightningModule):
    """Same network for the export job: the config is flattened to plain containers first."""

    def __init__(self, cfg):
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg, resolve=True))
        self.backbone = BEVSmall(16, tuple(cfg.backbone.channels))


class LitAnchorHead(L.LightningModule):
    def __init__(self, num_classes: int, lr: float = 1e-3, anchor_priors=None):
        super().__init__()
        self.save_hyperparameters("num_classes", "lr")
        self.register_buffer("priors", torch.as_tensor(anchor_priors, dtype=torch.float32))


class LidarDataModule(L.LightningDataModule):
    def __init__(self, data_root="/data", point_cloud_range=(0.0, -19.2, -3.0, 38.4, 19.2, 1.0),
                 voxel_size=(0.6, 0.6, 4.0), batch_size=2, shuffle_points=True, num_workers=0):
        super().__init__()
        voxel_size = [float(v) for v in voxel_size]
        self.save_hyperparameters()


def grid_from(cfg):
    pc = np.asarray(cfg.point_cloud_range)
    return [int(g) for g in np.round((pc[3:] - pc[:3]) / np.asarray(cfg.voxel_size))]


def build_pointpillars(cfg=None):
    cfg = cfg or CONFIG.lidar
    bb = cfg.backbone
    return LitPointPillars(
        voxel_size=list(cfg.voxel_size),
        point_cloud_range=list(cfg.point_cloud_range),
        max_points_per_voxel=cfg.max_points_per_voxel,
        backbone=BACKBONES[bb.name](16, tuple(bb.channels)),
        head_cfg=OmegaConf.to_container(cfg.head),
        grid_size=grid_from(cfg),
        class_names=cfg.class_names,
        lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay,
        eval_cfg=dict(cfg.eval),
        data_root=Path(cfg.data_root),
    )


FACTORIES = {
    "Reconciliation": lambda: Reconciliation.MINT,
    "LitHierForecaster": build_forecaster,
    "LitGlobalForecaster": build_global_forecaster,
    "LitKWS": build_kws,
    "LitKWSDistill": build_kws_distill,
    "KWSDataModule": lambda: KWSDataModule(labels=list(CONFIG.kws.labels), frontend={"n_mfcc": CONFIG.kws.n_mfcc}),
    "LitVoxelDet": lambda: LitVoxelDet(CONFIG.lidar),
    "LitPointPillars": build_pointpillars,
    "LitPillarsExport": lambda: LitPillarsExport(CONFIG.lidar),
    "LitAnchorHead": lambda: LitAnchorHead(3, anchor_priors=np.array([[3.9, 1.6, 1.56], [0.8, 0.6, 1.73]])),
    "LidarDataModule": lambda: LidarDataModule(os.fspath(Path(CONFIG.lidar.data_root)),
                                               list(CONFIG.lidar.point_cloud_range),
                                               np.asarray(CONFIG.lidar.voxel_size)),
}

NOT_BUILT = {"LitDetectorBase": "abstract base: built through LitPointPillars, which stores its params"}
