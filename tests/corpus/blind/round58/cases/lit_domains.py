"""Lightning modules and data modules for the three projects of this round.

Solar flares (SHARP + Bz cutouts), clinical-trial patient matching and retail shelf SKU
recognition. Every module is built the way the launch scripts build it: `build_*(cfg)` reads an
OmegaConf config, fits the preprocessing, looks classes up in registries and passes the results
to the module, whose `__init__` calls `self.save_hyperparameters(...)`.
"""
import dataclasses
import enum
import functools
import re
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

CONFIG = OmegaConf.create({
    "solar": {"lookback": 6, "n_features": 9, "hidden": 48, "lr": 2e-4, "flare_class": "M",
              "window_hours": 24, "patch": 32, "channels": [8, 16], "data_dir": "data/sharp"},
    "trial": {"emb_dim": 64, "lr": 1e-3, "temperature": 0.07, "age_edges": [18, 40, 65, 90],
              "ecog_pattern": r"ECOG\s*(?:PS)?\s*0-(\d)", "top_k": [1, 5, 10], "phase": "phase2",
              "neg_per_pos": 4, "max_len": 128},
    "shelf": {"backbone": "tiny", "embed_dim": 64, "margin": 0.3, "scale": 30.0,
              "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "image_size": [64, 64],
              "augment": "jitter", "strength": 0.3, "anchor_sizes": [16, 32, 64], "rows": 5,
              "batch_size": 32},
})


# ------------------------------------------------------------------ shared registries / helpers

class FlareClass(enum.Enum):
    C = 1e-6
    M = 1e-5
    X = 1e-4


BACKBONES, AUGMENTS = {}, {}


def register(table, name):
    def deco(obj):
        table[name] = obj
        return obj
    return deco


@register(BACKBONES, "tiny")
class TinyBackbone(nn.Module):
    def __init__(self, out_dim=64):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(16, out_dim))

    def forward(self, x):
        return self.net(x)


@register(AUGMENTS, "jitter")
def jitter(x, strength=0.3):
    return x * (1 + strength * (torch.rand_like(x[:, :1]) - 0.5))


class BoxCoder:
    """Encodes detector boxes relative to anchors (as in Faster R-CNN)."""

    def __init__(self, weights=(10.0, 10.0, 5.0, 5.0)):
        self.weights = weights

    def encode(self, boxes, anchors):
        wx, wy, ww, wh = self.weights
        aw, ah = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
        return torch.stack([wx * (boxes[:, 0] - anchors[:, 0]) / aw, wy * (boxes[:, 1] - anchors[:, 1]) / ah,
                            ww * torch.log((boxes[:, 2] - boxes[:, 0]) / aw),
                            wh * torch.log((boxes[:, 3] - boxes[:, 1]) / ah)], dim=1)


@dataclasses.dataclass
class SamplerConfig:
    neg_per_pos: int = 4
    hard_fraction: float = 0.5


def synth_labels(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return rng.lognormal(size=(n, 9)), (10 ** rng.uniform(-7.5, -3.8, n) >= 1e-5).astype(int)


# ------------------------------------------------------------------ solar flares

class FlareForecastModule(L.LightningModule):
    def __init__(
        self,
        n_features: int,
        lookback: int,
        hidden: int = 64,
        lr: float = 1e-3,
        pos_weight=1.0,  # truth: hparam
        class_prior: float = 0.05,
        flare_class=FlareClass.M,  # truth: hparam
        window_hours: int = 24,
        feature_mean=None,
        feature_scaler=None,
        data_dir: str = "data",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["feature_scaler"])
        self.gru = nn.GRU(n_features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)
        self.register_buffer("feature_mean", torch.zeros(n_features) if feature_mean is None else feature_mean)

    def forward(self, x):
        _, h = self.gru(x - self.feature_mean)
        return self.head(h[-1]).squeeze(-1)

    def training_step(self, batch, _):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y.float(),
                                                  pos_weight=torch.tensor(self.hparams.pos_weight))
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def build_flare_module(cfg: DictConfig):
    x, y = synth_labels()
    scaler = StandardScaler().fit(np.log1p(x))
    w = compute_class_weight("balanced", classes=np.array([0, 1]), y=y)
    return FlareForecastModule(
        n_features=cfg.solar.n_features,
        lookback=cfg.solar.lookback,
        hidden=cfg.solar.hidden,
        lr=cfg.solar.lr,
        pos_weight=w[1] / w[0],
        class_prior=float(y.mean()),
        flare_class=FlareClass[cfg.solar.flare_class],
        window_hours=cfg.solar.window_hours,
        feature_mean=torch.from_numpy(scaler.mean_).float(),
        feature_scaler=scaler,
        data_dir=str(Path(cfg.solar.data_dir)),
    )


class BaseForecastModule(L.LightningModule):
    """Shared optimiser/metrics; subclasses only add their encoder."""

    def __init__(self, lr: float = 1e-3, weight_decay: float = 1e-4, warmup_epochs: int = 1):
        super().__init__()
        self.save_hyperparameters()

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class FlareCNNModule(BaseForecastModule):
    def __init__(
        self,
        patch: int = 32,
        channels=(8, 16),
        loss_fn=None,  # truth: hparam
        flare_class_name: str = "M",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.cnn = nn.Sequential(nn.Conv2d(1, channels[0], 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(channels[0], channels[1], 3, padding=1), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels[1], 1))
        self.loss_fn = loss_fn

    def training_step(self, batch, _):
        bz, y = batch
        return self.loss_fn(self.cnn(bz).squeeze(-1), y.float())


def build_flare_cnn(cfg: DictConfig):
    return FlareCNNModule(patch=cfg.solar.patch, channels=tuple(cfg.solar.channels),
                          loss_fn=nn.BCEWithLogitsLoss(), flare_class_name=cfg.solar.flare_class,
                          lr=cfg.solar.lr, warmup_epochs=2)


class FlareDataModule(L.LightningDataModule):
    def __init__(self, data_dir: str = "data/sharp", batch_size: int = 64, lookback: int = 6,
                 window_hours: int = 24, val_years=(2015,), num_workers: int = 2):
        super().__init__()
        self.save_hyperparameters()


# ------------------------------------------------------------------ clinical-trial matching

class TrialMatcherModule(L.LightningModule):
    """Config-driven variant: the whole `trial` config node is the hyperparameter set."""

    def __init__(
        self,
        cfg,  # truth: hparam
        text_encoder=None,
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.text_encoder = text_encoder or nn.EmbeddingBag(5000, cfg.emb_dim)
        self.proj = nn.Linear(cfg.emb_dim, cfg.emb_dim)


class PatientEncoderModule(L.LightningModule):
    def __init__(
        self,
        vocab_size: int,
        dx_classes,
        age_bins,  # truth: hparam
        ecog_re=None,  # truth: hparam
        class_weights=None,
        emb_dim: int = 64,
        lr: float = 1e-3,
        phase: str = "phase2",
        sampler=None,
    ):
        super().__init__()
        age_bins = list(age_bins)
        class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
        self.save_hyperparameters()
        self.dx = nn.Embedding(len(dx_classes), emb_dim)
        self.age = nn.Embedding(len(age_bins) + 1, emb_dim)
        self.text = nn.EmbeddingBag(vocab_size, emb_dim)


def build_patient_encoder(cfg: DictConfig):
    patients = pd.DataFrame({"dx": ["C34.1", "C50.9", "C61", "C34.1"], "age": [61, 47, 70, 55]})
    le = LabelEncoder().fit(patients.dx)
    weights = compute_class_weight("balanced", classes=np.arange(len(le.classes_)), y=le.transform(patients.dx))
    return PatientEncoderModule(
        vocab_size=5000,
        dx_classes=le.classes_.tolist(),
        age_bins=np.asarray(cfg.trial.age_edges),
        ecog_re=re.compile(cfg.trial.ecog_pattern),
        class_weights=weights,
        emb_dim=cfg.trial.emb_dim,
        lr=cfg.trial.lr,
        phase=cfg.trial.phase,
        sampler=dataclasses.asdict(SamplerConfig(neg_per_pos=cfg.trial.neg_per_pos)),
    )


class MatchRankerModule(L.LightningModule):
    def __init__(
        self,
        emb_dim: int = 64,
        temperature: float = 0.07,
        top_k=(1, 5),  # truth: hparam
        collate_fn=None,  # truth: hparam
        max_len: int = 128,
        criteria_fields=("age", "ecog", "egfr", "dx"),
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.scorer = nn.Bilinear(emb_dim, emb_dim, 1)

    def validation_step(self, batch, _):
        for k in self.hparams.top_k:
            self.log(f"val/recall@{k}", torch.zeros(()))


def build_ranker(cfg: DictConfig):
    def pad_collate(batch, max_len=cfg.trial.max_len):
        return torch.nn.utils.rnn.pad_sequence([b[:max_len] for b in batch], batch_first=True)
    return MatchRankerModule(emb_dim=cfg.trial.emb_dim, temperature=cfg.trial.temperature,
                             top_k=cfg.trial.top_k, collate_fn=pad_collate, max_len=cfg.trial.max_len,
                             criteria_fields=("age", "ecog", "egfr", "dx", "prior"), lr=cfg.trial.lr)


class ListwiseRankerModule(L.LightningModule):
    """Same ranker, trained from a plain dict config (what the sweep agent passes)."""

    def __init__(self, cfg: dict, encoder=None):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.encoder = encoder if encoder is not None else nn.Linear(cfg["emb_dim"], cfg["emb_dim"])


class TrialDataModule(L.LightningDataModule):
    def __init__(self, registry_csv: str = "registry.csv", batch_size: int = 32, neg_per_pos: int = 4,
                 cutoff: str = "2023-06-30", sites=("MGH", "DFCI")):
        super().__init__()
        self.save_hyperparameters()


# ------------------------------------------------------------------ retail shelf recognition

class SkuEmbedderModule(L.LightningModule):
    def __init__(
        self,
        backbone_name: str,
        backbone_cls,  # truth: hparam
        embed_dim: int,
        n_skus: int,
        mean,  # truth: hparam
        std,
        augment=None,  # truth: hparam
        head_cfg=None,
        image_size=(64, 64),
        ean_index=None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = backbone_cls(out_dim=embed_dim)
        self.weight = nn.Parameter(torch.randn(n_skus, embed_dim) * 0.01)
        self.augment = augment

    def training_step(self, batch, _):
        x, y = batch
        emb = F.normalize(self.backbone(self.augment(x)), dim=1)
        logits = emb @ F.normalize(self.weight, dim=1).T
        return F.cross_entropy(self.hparams.head_cfg["scale"] * logits, y)


def build_sku_embedder(cfg: DictConfig, ean_index: pd.Index):
    return SkuEmbedderModule(
        backbone_name=cfg.shelf.backbone,
        backbone_cls=BACKBONES[cfg.shelf.backbone],
        embed_dim=cfg.shelf.embed_dim,
        n_skus=len(ean_index),
        mean=cfg.shelf.mean,
        std=list(cfg.shelf.std),
        augment=functools.partial(AUGMENTS[cfg.shelf.augment], strength=cfg.shelf.strength),
        head_cfg=dict(margin=cfg.shelf.margin, scale=cfg.shelf.scale),
        image_size=tuple(cfg.shelf.image_size),
        ean_index=list(ean_index),
    )


class ShelfDetectorModule(L.LightningModule):
    def __init__(
        self,
        backbone: nn.Module,
        anchor_sizes=(16, 32, 64),
        box_coder=None,  # truth: hparam
        score_thresh: float = 0.05,
        nms_iou: float = 0.5,
        dtype=torch.float32,
        sampler_fn=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.cls_head = nn.Linear(64, len(anchor_sizes))
        self.box_head = nn.Linear(64, 4 * len(anchor_sizes))


def build_detector(cfg: DictConfig):
    rng = np.random.default_rng(0)
    scores = rng.beta(2, 5, 500)

    def balanced_sampler(labels, k=256):
        pos = torch.nonzero(labels > 0).flatten()
        neg = torch.nonzero(labels == 0).flatten()
        return torch.cat([pos[: k // 4], neg[: k - min(len(pos), k // 4)]])

    return ShelfDetectorModule(
        backbone=BACKBONES[cfg.shelf.backbone](out_dim=64),
        anchor_sizes=tuple(cfg.shelf.anchor_sizes),
        box_coder=BoxCoder(),
        score_thresh=float(np.quantile(scores, 0.1)),
        nms_iou=0.5,
        dtype=torch.float16,
        sampler_fn=balanced_sampler,
    )


class PlanogramComplianceModule(L.LightningModule):
    def __init__(self, n_rows: int, tolerance: float, lr: float = 1e-3, planogram=None, row_heights=None,
                 expected_facings=None):
        super().__init__()
        self.save_hyperparameters("n_rows", "tolerance", "lr", "expected_facings")
        self.row_heights = torch.as_tensor(row_heights, dtype=torch.float32)
        self.row_head = nn.Linear(64, n_rows)


def build_planogram(cfg: DictConfig):
    facings = pd.Series([3, 2, 4, 2, 1], index=["4006381333931", "5000112637922", "7622300441937",
                                                 "4000417025005", "8000500310427"])
    heights = np.linspace(0.2, 1.0, cfg.shelf.rows)
    return PlanogramComplianceModule(
        n_rows=cfg.shelf.rows,
        tolerance=float(np.percentile(heights, 10)),
        lr=1e-3,
        planogram=facings,
        row_heights=heights,
        expected_facings=facings.to_dict(),
    )


class ShelfDataModule(L.LightningDataModule):
    def __init__(self, crops_dir: str = "crops", batch_size: int = 32, image_size=(64, 64),
                 mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), min_crops_per_sku: int = 3):
        super().__init__()
        self.save_hyperparameters()


def build_shelf_datamodule(cfg: DictConfig):
    return ShelfDataModule(crops_dir=str(Path("/mnt/planogram") / "crops"), batch_size=cfg.shelf.batch_size,
                           image_size=tuple(cfg.shelf.image_size), mean=tuple(cfg.shelf.mean),
                           std=tuple(float(s) for s in cfg.shelf.std))


EAN_INDEX = pd.Index([4006381333931, 5000112637922, 7622300441937, 4000417025005])

FACTORIES = {
    "FlareClass": lambda: FlareClass.M,
    "FlareForecastModule": lambda: build_flare_module(CONFIG),
    "BaseForecastModule": lambda: BaseForecastModule(lr=3e-4),
    "FlareCNNModule": lambda: build_flare_cnn(CONFIG),
    "FlareDataModule": lambda: FlareDataModule(data_dir=str(Path(CONFIG.solar.data_dir)), val_years=(2015, 2016)),
    "TrialMatcherModule": lambda: TrialMatcherModule(CONFIG.trial),
    "PatientEncoderModule": lambda: build_patient_encoder(CONFIG),
    "MatchRankerModule": lambda: build_ranker(CONFIG),
    "ListwiseRankerModule": lambda: ListwiseRankerModule(OmegaConf.to_container(CONFIG.trial, resolve=True),
                                                         encoder=nn.Linear(64, 64)),
    "TrialDataModule": lambda: TrialDataModule(cutoff="2024-01-31"),
    "SkuEmbedderModule": lambda: build_sku_embedder(CONFIG, EAN_INDEX),
    "ShelfDetectorModule": lambda: build_detector(CONFIG),
    "PlanogramComplianceModule": lambda: build_planogram(CONFIG),
    "ShelfDataModule": lambda: build_shelf_datamodule(CONFIG),
}
