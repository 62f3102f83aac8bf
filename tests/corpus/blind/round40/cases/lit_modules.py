"""LightningModules and LightningDataModules for the retrieval, VO and epidemic
projects. Everything is built from one OmegaConf experiment config through the
registries below, the way `train.py --config configs/<exp>.yaml` builds it.
"""
import functools
import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from scipy.spatial.transform import Rotation

EXPERIMENT = OmegaConf.create("""
retriever:
  model: biencoder
  encoder: bag
  vocab_size: 2048
  dim: 64
  temperature: 0.05
  hard_negatives: 4
  similarity: cosine
  label_smoothing: 0.1
  topk: [1, 5, 20]
  optim: {lr: 2e-5, weight_decay: 0.01, warmup_steps: 500}
  data: {passages: data/passages.jsonl, queries: data/train_queries.jsonl, batch_size: 32, max_len: 64}
vo:
  model: deepvo
  image_size: [64, 208]
  camera: {fx: 718.856, fy: 718.856, cx: 607.19, cy: 185.22}
  rig_euler_deg: [-90.0, 0.0, -90.0]
  rot_weight: 100.0
  window: 5
  rotation_repr: quat
  depth_percentile: 99
  data_root: /data/kitti/odometry
  train_seqs: ["00", "02", "08"]
  val_seqs: ["05"]
  lr_sweep: [1e-4, 3e-4, 1e-3]
  keyframe: {min_parallax_px: 8.0, min_inlier_ratio: 0.4, max_gap: 5}
epi:
  model: seir_residual
  regions: [north, south, east, west, capital]
  compartments: [S, E, I, R]
  start: "2024-01-07"
  residual: mlp
  seasonality: weekly
  hidden: 32
  dropout: 0.1
  horizon_weeks: 4
  quantiles: [0.025, 0.5, 0.975]
  optim: {lr: 1e-2, weight_decay: 1e-4}
""")

MODELS = {}


def register(name):
    def deco(cls):
        MODELS[name] = cls
        return cls
    return deco


class Similarity(Enum):
    DOT = "dot"
    COSINE = "cosine"


@dataclass
class KeyframeCfg:
    min_parallax_px: float = 8.0
    min_inlier_ratio: float = 0.4
    max_gap: int = 5


class BagEncoder(nn.Module):
    def __init__(self, vocab_size=2048, dim=64):
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab_size, dim, mode="mean", padding_idx=0)
        self.proj = nn.Linear(dim, dim)

    def forward(self, ids):
        return self.proj(self.embed(ids))


ENCODERS = {"bag": BagEncoder}
RESIDUALS = {
    "mlp": lambda n_in, hidden, p: nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Dropout(p), nn.Linear(hidden, 1)),
    "linear": lambda n_in, hidden, p: nn.Linear(n_in, 1),
}


def weekly_seasonality(week):
    return torch.stack([torch.sin(2 * math.pi * week / 52), torch.cos(2 * math.pi * week / 52)], dim=-1)


SEASONALITY = {"weekly": weekly_seasonality}


class BaseLit(L.LightningModule):
    """Shared optimizer/scheduler setup; subclasses pass their own arguments on."""

    def __init__(self, lr: float = 1e-3, weight_decay: float = 0.0, warmup_steps: int = 0):
        super().__init__()
        self.save_hyperparameters()

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        warm = max(self.hparams.warmup_steps, 1)
        sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0 / warm, total_iters=warm)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


# ---------------------------------------------------------------- retrieval

@register("biencoder")
class LitBiEncoder(BaseLit):
    def __init__(
        self,
        encoder: nn.Module,  # truth: hparam
        loss_fn: nn.Module,  # truth: hparam
        similarity: Similarity = Similarity.DOT,  # truth: hparam
        temperature: float = 0.05,
        hard_negatives: int = 4,
        topk: tuple = (1, 5, 20),
        lr: float = 2e-5,
        weight_decay: float = 0.01,
        warmup_steps: int = 500,
    ):
        super().__init__(lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps)
        self.encoder = encoder
        self.loss_fn = loss_fn

    def score(self, q, p):
        if self.hparams.similarity is Similarity.COSINE:
            q, p = F.normalize(q, dim=-1), F.normalize(p, dim=-1)
        return q @ p.T / self.hparams.temperature

    def training_step(self, batch, batch_idx):
        q, p = self.encoder(batch["query_ids"]), self.encoder(batch["passage_ids"])
        logits = self.score(q, p)
        loss = self.loss_fn(logits, torch.arange(len(q), device=logits.device))
        self.log("train/loss", loss)
        return loss


class LitDistilledRetriever(L.LightningModule):
    """Student bi-encoder distilled from a cross-encoder's cached scores."""

    def __init__(self, student: nn.Module, teacher: nn.Module, kd_temperature: float = 2.0,
                 alpha: float = 0.5, score_cache: str = "cache/teacher_scores.pt"):
        super().__init__()
        self.save_hyperparameters(ignore=["student", "teacher"])
        self.student = student
        self.teacher = teacher.requires_grad_(False)

    def training_step(self, batch, batch_idx):
        s = self.student(batch["query_ids"]) @ self.student(batch["passage_ids"]).T
        t = batch["teacher_scores"]
        tau = self.hparams.kd_temperature
        kd = F.kl_div(F.log_softmax(s / tau, -1), F.softmax(t / tau, -1), reduction="batchmean") * tau ** 2
        ce = F.cross_entropy(s, torch.arange(len(s)))
        return self.hparams.alpha * kd + (1 - self.hparams.alpha) * ce


@register("reranker")
class LitCrossEncoderReranker(BaseLit):
    def __init__(self, vocab_size: int, dim: int = 64, max_len: int = 128, pos_weight: float = 1.0,
                 class_weights: torch.Tensor = None, compute_dtype: torch.dtype = torch.float32, lr: float = 3e-5):
        super().__init__(lr=lr)
        self.encoder = BagEncoder(vocab_size, dim)
        self.head = nn.Linear(dim, 1)
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.ones(2))

    def forward(self, pair_ids):
        return self.head(self.encoder(pair_ids.to(torch.long))).squeeze(-1)


class QADataModule(L.LightningDataModule):
    def __init__(self, passages_path: str, queries_path: str, batch_size: int = 32, max_len: int = 64,
                 num_hard_negatives: int = 4, num_workers: int = 0):
        super().__init__()
        self.save_hyperparameters()


def build_retriever(cfg):
    r = cfg.retriever
    encoder = ENCODERS[r.encoder](r.vocab_size, r.dim)
    return MODELS[r.model](
        encoder=encoder,
        loss_fn=nn.CrossEntropyLoss(label_smoothing=r.label_smoothing),
        similarity=Similarity(r.similarity),
        temperature=r.temperature,
        hard_negatives=r.hard_negatives,
        topk=tuple(r.topk),
        **r.optim,
    )


def build_reranker(cfg, labels=np.array([0, 0, 0, 1, 0, 1, 0, 0])):
    pos = np.count_nonzero(labels)
    weights = torch.tensor(np.bincount(labels, minlength=2), dtype=torch.float32)
    return MODELS["reranker"](cfg.retriever.vocab_size, cfg.retriever.dim,
                              pos_weight=float((len(labels) - pos) / pos),
                              class_weights=weights.sum() / (2 * weights), compute_dtype=torch.bfloat16)


# ---------------------------------------------------------------- visual odometry

@register("deepvo")
class LitDeepVO(L.LightningModule):
    def __init__(
        self,
        intrinsics: np.ndarray,  # truth: hparam
        image_size: tuple = (64, 208),
        rig_rotation: Rotation = None,  # truth: hparam
        keyframe: KeyframeCfg = None,  # truth: hparam
        data_root: Path = Path("data/kitti"),  # truth: hparam
        max_depth: float = 80.0,
        rot_weight: float = 100.0,
        window: int = 5,
        rotation_repr: str = "quat",
        lr: float = 1e-4,
    ):
        super().__init__()
        lr = float(lr)  # sweeps hand us numpy scalars, YAML sometimes strings
        self.save_hyperparameters()
        self.register_buffer("K", torch.as_tensor(intrinsics, dtype=torch.float32))
        self.net = nn.Sequential(nn.Conv2d(2 * window, 32, 5, 2, 2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(32, 7 if rotation_repr == "quat" else 6))

    def training_step(self, batch, batch_idx):
        pred = self.net(batch["frames"])
        t_loss = F.mse_loss(pred[:, :3], batch["t"])
        r_loss = F.mse_loss(pred[:, 3:], batch["r"])
        return t_loss + self.hparams.rot_weight * r_loss


class LitPoseGraphRefiner(L.LightningModule):
    """Differentiable translation pose-graph refinement over a sliding window."""

    def __init__(
        self,
        graph: dict,
        solver=None,
        window: int = 10,
        huber_delta: float = 0.5,  # truth: hparam
        num_iters: int = 20,
    ):
        super().__init__()
        self.save_hyperparameters("window", "huber_delta", "num_iters")
        self.register_buffer("poses", torch.as_tensor(graph["poses"], dtype=torch.float32))
        self.edges = [tuple(map(int, e)) for e in graph["edges"]]
        self.solver = solver

    def forward(self):
        r = torch.stack([self.poses[j, :3, 3] - self.poses[i, :3, 3] for i, j in self.edges])
        return F.huber_loss(r, torch.zeros_like(r), delta=self.hparams.huber_delta)


class KittiOdometryDataModule(L.LightningDataModule):
    def __init__(self, root: str, train_seqs: tuple = ("00", "02"), val_seqs: tuple = ("05",), stride: int = 1,
                 image_size: tuple = (64, 208), batch_size: int = 8):
        super().__init__()
        self.save_hyperparameters()


def build_vo(cfg, trial=1, depth_samples=None):
    v = cfg.vo
    c = v.camera
    depth_samples = depth_samples if depth_samples is not None else np.random.default_rng(0).gamma(2.0, 9.0, 4096)
    lrs = np.asarray(v.lr_sweep)
    return MODELS[v.model](
        intrinsics=np.array([[c.fx, 0.0, c.cx], [0.0, c.fy, c.cy], [0.0, 0.0, 1.0]]),
        image_size=tuple(v.image_size),
        rig_rotation=Rotation.from_euler("xyz", list(v.rig_euler_deg), degrees=True),
        keyframe=KeyframeCfg(**v.keyframe),
        data_root=Path(v.data_root),
        max_depth=float(np.percentile(depth_samples, v.depth_percentile)),
        rot_weight=v.rot_weight,
        window=v.window,
        rotation_repr=v.rotation_repr,
        lr=lrs[trial],
    )


def build_pose_graph_refiner(n=6, seed=0):
    rng = np.random.default_rng(seed)
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, 0, 3] = np.arange(n) * 0.9 + rng.normal(0, 0.05, n)
    edges = np.stack([np.arange(n - 1), np.arange(1, n)], axis=1)
    residual_norms = np.abs(np.diff(poses[:, 0, 3]) - 0.9)
    # robust scale from the odometry residuals (MAD -> sigma)
    delta = 1.4826 * np.median(np.abs(residual_norms - np.median(residual_norms)))
    return LitPoseGraphRefiner({"poses": poses, "edges": edges},
                               solver=functools.partial(torch.linalg.lstsq, driver="gelsd"),
                               window=n, huber_delta=max(delta, 1e-3), num_iters=len(edges) * 2)


def build_kitti_datamodule(cfg):
    v = cfg.vo
    return KittiOdometryDataModule(str(Path(v.data_root) / "sequences"), tuple(v.train_seqs), tuple(v.val_seqs),
                                   image_size=tuple(v.image_size))


# ---------------------------------------------------------------- epidemic forecasting

@register("seir_residual")
class LitSEIRResidual(BaseLit):
    def __init__(
        self,
        region_table: pd.DataFrame,  # truth: hparam
        compartments,  # truth: hparam
        start_date,  # truth: hparam
        residual_factory,  # truth: hparam
        seasonality=weekly_seasonality,  # truth: hparam
        population: dict = None,
        hidden: int = 32,
        dropout: float = 0.1,
        horizon_weeks: int = 4,
        quantiles: tuple = (0.025, 0.5, 0.975),
        lr: float = 1e-2,
        weight_decay: float = 1e-4,
    ):
        super().__init__(lr=lr, weight_decay=weight_decay)
        n = len(region_table)
        self.register_buffer("pop", torch.tensor(region_table["population"].to_numpy(), dtype=torch.float32))
        self.log_beta = nn.Parameter(torch.full((n,), math.log(0.3)))
        self.residual = residual_factory(2 + 2, hidden, dropout)
        self.region_embed = nn.Embedding(n, 2)
        self.seasonality = seasonality

    def forward(self, weeks):
        season = self.seasonality(weeks.float())
        x = torch.cat([season[None].expand(len(self.pop), -1, -1),
                       self.region_embed.weight[:, None].expand(-1, len(weeks), -1)], dim=-1)
        return self.log_beta.exp()[:, None] * self.residual(x).squeeze(-1).exp()


class LitMetapopulation(L.LightningModule):
    """Coupled regions with a learned mobility matrix; keeps the resolved config as hparams."""

    def __init__(self, cfg: DictConfig, mobility_scale: float = 0.05):
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg, resolve=True))
        n = len(cfg.regions)
        self.mobility_logits = nn.Parameter(torch.full((n, n), math.log(mobility_scale)))


class RegionWeeklyDataModule(L.LightningDataModule):
    def __init__(self, region_table: pd.DataFrame, window: int = 8, horizon: int = 4, val_weeks: int = 4,
                 batch_size: int = 16):
        super().__init__()
        self.save_hyperparameters(ignore=["region_table"])
        self.region_table = region_table


def make_region_table(regions, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"region": list(regions), "population": rng.integers(200_000, 3_000_000, len(regions))})


def build_forecaster(cfg):
    e = cfg.epi
    table = make_region_table(e.regions)
    return MODELS[e.model](
        region_table=table,
        compartments=e.compartments,
        start_date=pd.Timestamp(e.start),
        residual_factory=RESIDUALS[e.residual],
        seasonality=SEASONALITY[e.seasonality],
        population=dict(zip(table["region"], table["population"].tolist())),
        hidden=e.hidden,
        dropout=e.dropout,
        horizon_weeks=e.horizon_weeks,
        quantiles=tuple(e.quantiles),
        **e.optim,
    )


FACTORIES = {
    "Similarity": lambda: Similarity("cosine"),
    "BagEncoder": lambda: ENCODERS[EXPERIMENT.retriever.encoder](EXPERIMENT.retriever.vocab_size, 16),
    "LitBiEncoder": lambda: build_retriever(EXPERIMENT),
    "LitDistilledRetriever": lambda: LitDistilledRetriever(BagEncoder(512, 16), BagEncoder(512, 16), kd_temperature=1.5),
    "LitCrossEncoderReranker": lambda: build_reranker(EXPERIMENT),
    "QADataModule": lambda: QADataModule(**{k: v for k, v in EXPERIMENT.retriever.data.items() if k != "passages"
                                            and k != "queries"}, passages_path=EXPERIMENT.retriever.data.passages,
                                         queries_path=EXPERIMENT.retriever.data.queries),
    "LitDeepVO": lambda: build_vo(EXPERIMENT),
    "LitPoseGraphRefiner": build_pose_graph_refiner,
    "KittiOdometryDataModule": lambda: build_kitti_datamodule(EXPERIMENT),
    "LitSEIRResidual": lambda: build_forecaster(EXPERIMENT),
    "LitMetapopulation": lambda: LitMetapopulation(EXPERIMENT.epi),
    "RegionWeeklyDataModule": lambda: RegionWeeklyDataModule(make_region_table(EXPERIMENT.epi.regions), window=6),
}
