"""LightningModules for the pose, fraud and ranking projects, built by factories.

Each project builds its module from whatever config it has: an OmegaConf tree (pose), argparse
(fraud, logs), a model registry fed from a pandas frame (fraud), a dataclass plus a loss registry
(ranking), or a base class shared by several keypoint heads. Every module calls
`self.save_hyperparameters(...)`, so whatever the factory passes in ends up in the checkpoint.
"""
import argparse
import dataclasses
import enum
import functools
import os
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping
from omegaconf import OmegaConf
from sklearn.ensemble import IsolationForest

POSE_YAML = """
data:
  joints: [nose, l_eye, r_eye, l_shoulder, r_shoulder, l_wrist, r_wrist]
  flip_pairs: [[1, 2], [3, 4], [5, 6]]
  heatmap_size: [8, 8]
  sigma: 2.0
  joint_weights: [1.0, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5]
optim:
  base_lr: 0.001
  weight_decay: 0.0001
model:
  lr: ${optim.base_lr}
  backbone:
    name: tiny
    width: 8
    norm: bn
"""
KPT_SIGMAS = np.array([0.026, 0.025, 0.025, 0.079, 0.079, 0.062, 0.062])
TX_FEATURES = ["amount", "log_amount", "hour", "merchant_risk"]
RANK_FEATURES = ("bm25", "tfidf_cos", "doc_len", "pagerank", "click_prior")


def load_pose_config(overrides=()):
    cfg = OmegaConf.create(POSE_YAML)
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))


def tiny_backbone(width, out_channels):
    return nn.Sequential(
        nn.Conv2d(3, width, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, out_channels, 1),
    )


# ----------------------------------------------------------------------------- pose


class LitHeatmapPose(L.LightningModule):
    def __init__(
        self,
        num_joints: int,
        heatmap_size,  # truth: hparam
        sigma: float,
        flip_pairs,
        joint_weights,  # truth: hparam
        backbone_cfg,  # truth: hparam
        lr: float = 1e-3,
        criterion: nn.Module = nn.MSELoss(reduction="none"),  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = tiny_backbone(backbone_cfg.width, num_joints)
        self.criterion = criterion
        self.register_buffer("joint_w", torch.as_tensor(joint_weights, dtype=torch.float32))

    def training_step(self, batch, batch_idx):
        images, targets = batch
        loss = self.criterion(self.net(images), targets).mean(dim=(2, 3))
        return (loss * self.joint_w).mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def build_pose_module(cfg):
    d = cfg.data
    return LitHeatmapPose(
        num_joints=len(d.joints),
        heatmap_size=d.heatmap_size,
        sigma=d.sigma,
        flip_pairs=[tuple(p) for p in d.flip_pairs],
        joint_weights=np.asarray(d.joint_weights, dtype=np.float32),
        backbone_cfg=cfg.model.backbone,
        lr=cfg.model.lr,
    )


class LitPoseFromConfig(L.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = tiny_backbone(cfg.model.backbone.width, len(cfg.data.joints))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.model.lr)


class LitPoseResolved(L.LightningModule):
    def __init__(self, cfg):
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg, resolve=True))
        self.net = tiny_backbone(cfg.model.backbone.width, len(cfg.data.joints))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams["model"]["lr"])


class Schedule(enum.Enum):
    COSINE = "cosine"
    STEP = "step"


class BaseKeypointModule(L.LightningModule):
    def __init__(
        self,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        schedule: Schedule = Schedule.COSINE,  # truth: hparam
        warmup_steps: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if self.hparams.schedule is Schedule.COSINE:
            return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)]
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=5)]


@dataclasses.dataclass
class RefinerConfig:
    num_joints: int = 7
    lr: float = 3e-4
    schedule: Schedule = Schedule.COSINE
    flip_test: bool = True
    joints: tuple = ("nose", "l_eye", "r_eye", "l_shoulder", "r_shoulder", "l_wrist", "r_wrist")


class LitRefinerStructured(L.LightningModule):
    """Built from `OmegaConf.structured(RefinerConfig)` merged with CLI overrides."""

    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        cfg = OmegaConf.to_container(cfg, resolve=True)
        self.save_hyperparameters(cfg)
        self.refine = nn.Linear(cfg["num_joints"] * 2, cfg["num_joints"] * 2)


class LitRefinerYaml(L.LightningModule):
    def __init__(self, cfg):
        super().__init__()
        cfg = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        self.save_hyperparameters(cfg)
        self.refine = nn.Linear(cfg["num_joints"] * 2, cfg["num_joints"] * 2)


def gaussian_heatmap(coords, size=8, sigma=2.0):
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return torch.exp(-((xs - coords[..., :1, None]) ** 2 + (ys - coords[..., 1:, None]) ** 2) / (2 * sigma**2))


class LitKeypointRefiner(BaseKeypointModule):
    """Refines decoded coordinates; OKS-weighted L1 with per-joint sigmas."""

    def __init__(
        self,
        num_joints: int,
        oks_sigmas,
        run_dir,
        target_fn=None,  # truth: hparam
        **base_kwargs,
    ):
        super().__init__(**base_kwargs)
        self.refine = nn.Sequential(nn.Linear(num_joints * 2, 32), nn.ReLU(), nn.Linear(32, num_joints * 2))
        self.register_buffer("sigmas", oks_sigmas.float())

    def training_step(self, batch, batch_idx):
        coords, gt = batch
        pred = self.refine(coords.flatten(1)).view_as(gt)
        return (F.l1_loss(pred, gt, reduction="none").sum(-1) / self.sigmas).mean()


def build_refiner(run_root, total_steps=1000):
    return LitKeypointRefiner(
        num_joints=len(KPT_SIGMAS),
        oks_sigmas=torch.from_numpy(KPT_SIGMAS),
        run_dir=os.fspath(Path(run_root) / "refiner"),
        target_fn=functools.partial(gaussian_heatmap, size=8, sigma=2.0),
        lr=3e-4,
        schedule=Schedule.STEP,
        warmup_steps=int(0.05 * total_steps),
    )


class BestMetricTracker(L.Callback):
    def __init__(self, monitor="val_pck", mode="max"):
        self.monitor = monitor
        self.mode = mode
        self.best = None

    def on_validation_end(self, trainer, pl_module):
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None and (self.best is None or (value > self.best) == (self.mode == "max")):
            self.best = value.item()

    def state_dict(self):
        return {"monitor": self.monitor, "mode": self.mode, "best": self.best}


# ----------------------------------------------------------------------------- fraud / logs

MODEL_REGISTRY = {}


def register(name):
    def deco(cls):
        MODEL_REGISTRY[name] = cls
        return cls

    return deco


@register("tx_ae")
class LitTxAutoencoder(L.LightningModule):
    def __init__(
        self,
        n_features: int,
        feature_names,
        threshold=None,
        contamination=0.02,
        baseline=None,
        score_fn=None,  # truth: hparam
        recon_loss=F.mse_loss,  # truth: hparam
        bottleneck: int = 3,
        lr: float = 1e-2,
    ):
        super().__init__()
        feature_names = [str(c) for c in feature_names]
        self.save_hyperparameters(ignore=["baseline"])
        self.baseline = baseline
        self.encoder = nn.Sequential(nn.Linear(n_features, 8), nn.Tanh(), nn.Linear(8, bottleneck))
        self.decoder = nn.Sequential(nn.Linear(bottleneck, 8), nn.Tanh(), nn.Linear(8, n_features))

    def forward(self, x):
        return self.decoder(self.encoder(x))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return self.hparams.recon_loss(self(x), x)

    def anomaly_score(self, x):
        if self.hparams.score_fn is not None:
            return self.hparams.score_fn(x)
        return ((self(x) - x) ** 2).mean(-1)


def tx_frame(n=300, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, n).round(2),
            "hour": rng.integers(0, 24, n),
            "merchant": rng.choice(["grocery", "fuel", "online"], n),
            "is_fraud": (rng.uniform(size=n) < 0.03).astype(int),
        }
    )
    df["log_amount"] = np.log1p(df["amount"])
    df["merchant_risk"] = df.groupby("merchant")["is_fraud"].transform("mean")
    return df


def build_from_registry(name, frame, **overrides):
    X = frame[TX_FEATURES]
    iso = IsolationForest(n_estimators=10, random_state=0).fit(X)
    scores = -iso.score_samples(X)
    kwargs = dict(
        n_features=X.shape[1],
        feature_names=X.columns,
        threshold=float(np.percentile(scores, 99)),
        contamination=round(float(frame["is_fraud"].mean()), 4),
        baseline=iso,
        score_fn=lambda x: -iso.score_samples(x),
    )
    kwargs.update(overrides)
    return MODEL_REGISTRY[name](**kwargs)


def parse_fraud_args(argv=None):
    p = argparse.ArgumentParser("train_fraud_ae")
    p.add_argument("--data-dir", type=Path, default=Path("data/transactions"))
    p.add_argument("--hidden", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--threshold-pct", type=float, default=99.0)
    return p.parse_args(argv)


class LitFraudFromArgs(L.LightningModule):
    def __init__(self, args):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(args)
        self.net = nn.Sequential(nn.Linear(len(TX_FEATURES), args.hidden), nn.ReLU(), nn.Linear(args.hidden, 1))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def parse_log_args(argv=None):
    p = argparse.ArgumentParser("train_log_lstm")
    p.add_argument("--window", type=int, default=10)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--top-g", type=int, default=9)
    p.add_argument("--log-file", default="logs/hdfs_train.log")
    return p.parse_args(argv)


class LitLogKeyLSTM(L.LightningModule):
    """DeepLog-style next-template prediction; a window is anomalous if the true key is not in top-g."""

    def __init__(self, args, vocab_size: int):  # truth: hparam[args]
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(vocab_size, args.hidden)
        self.lstm = nn.LSTM(args.hidden, args.hidden, batch_first=True)
        self.head = nn.Linear(args.hidden, vocab_size)


class LitSessionScorer(L.LightningModule):
    def __init__(self, args):
        super().__init__()
        self.save_hyperparameters(args)
        self.head = nn.Linear(args.window, 1)


# ----------------------------------------------------------------------------- ranking


class ListNetLoss(nn.Module):
    def forward(self, scores, labels):
        return -(F.softmax(labels, -1) * F.log_softmax(scores, -1)).sum(-1).mean()


class ApproxNDCGLoss(nn.Module):
    def __init__(self, temperature=1.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, scores, labels):
        diff = (scores.unsqueeze(-1) - scores.unsqueeze(-2)) / self.temperature
        rank = 0.5 + torch.sigmoid(-diff).sum(-1)
        return -((2**labels - 1) / torch.log2(1 + rank)).sum(-1).mean()


LOSS_REGISTRY = {"listnet": ListNetLoss, "approx_ndcg": ApproxNDCGLoss}


@dataclasses.dataclass
class RankerHParams:
    hidden: int = 16
    dropout: float = 0.1
    loss: str = "listnet"
    lr: float = 5e-3
    k: int = 5


class LitListwiseRanker(L.LightningModule):
    def __init__(
        self,
        hp: RankerHParams,  # truth: hparam
        loss_cls=ListNetLoss,  # truth: hparam
        metric_ks=(1, 5, 10),
        feature_stats=None,  # truth: hparam
        n_features: int = len(RANK_FEATURES),
    ):
        super().__init__()
        self.save_hyperparameters()
        self.scorer = nn.Sequential(
            nn.Linear(n_features, hp.hidden), nn.ReLU(), nn.Dropout(hp.dropout), nn.Linear(hp.hidden, 1)
        )
        self.loss_fn = loss_cls()


class LitRankerFlat(L.LightningModule):
    def __init__(
        self,
        hidden: int = 16,
        dropout: float = 0.1,
        loss: str = "listnet",
        lr: float = 5e-3,
        k: int = 5,
        label_gain=None,
        n_queries: int = 0,
        feature_names=RANK_FEATURES,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.scorer = nn.Sequential(nn.Linear(len(feature_names), hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.loss_fn = LOSS_REGISTRY[loss]()

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def judgments_frame(seed=0):
    rng = np.random.default_rng(seed)
    n = 60
    df = pd.DataFrame(rng.normal(size=(n, len(RANK_FEATURES))), columns=list(RANK_FEATURES))
    df["qid"] = rng.integers(100, 110, n)
    df["label"] = rng.integers(0, 5, n)
    return df


def build_ranker(hp, df):
    return LitListwiseRanker(
        hp,
        loss_cls=LOSS_REGISTRY[hp.loss],
        feature_stats=df[list(RANK_FEATURES)].describe(),
        n_features=len(RANK_FEATURES),
    )


def build_flat_ranker(hp, df):
    return LitRankerFlat(
        **dataclasses.asdict(hp),
        label_gain=2 ** torch.arange(5) - 1,
        n_queries=df["qid"].nunique(),
    )


FACTORIES = {
    "LitHeatmapPose": lambda: build_pose_module(load_pose_config()),
    "LitPoseFromConfig": lambda: LitPoseFromConfig(load_pose_config(["data.sigma=3.0"])),
    "LitPoseResolved": lambda: LitPoseResolved(load_pose_config()),
    "Schedule": lambda: Schedule.COSINE,
    "LitKeypointRefiner": lambda: build_refiner("runs/pose"),
    "LitRefinerStructured": lambda: LitRefinerStructured(
        OmegaConf.merge(OmegaConf.structured(RefinerConfig), OmegaConf.from_dotlist(["schedule=STEP"]))
    ),
    "LitRefinerYaml": lambda: LitRefinerYaml(OmegaConf.structured(RefinerConfig(lr=1e-4))),
    "LitTxAutoencoder": lambda: build_from_registry("tx_ae", tx_frame()),
    "LitFraudFromArgs": lambda: LitFraudFromArgs(parse_fraud_args(["--hidden", "4"])),
    "LitLogKeyLSTM": lambda: LitLogKeyLSTM(parse_log_args([]), vocab_size=12),
    "LitSessionScorer": lambda: LitSessionScorer(parse_log_args(["--window", "5"])),
    "LitListwiseRanker": lambda: build_ranker(RankerHParams(loss="approx_ndcg"), judgments_frame()),
    "LitRankerFlat": lambda: build_flat_ranker(RankerHParams(), judgments_frame()),
}


def save_pose_export(tmpdir):
    module = LitPoseResolved(load_pose_config(["model.backbone.width=4"]))
    early = EarlyStopping(monitor="val_pck", mode="max", patience=3)
    tracker = BestMetricTracker(monitor="val_pck")
    tracker.best = 0.42
    ckpt = {
        "state_dict": module.state_dict(),
        "hyper_parameters": module.hparams,  # truth: weights_only
        "pytorch-lightning_version": L.__version__,
        "callbacks": {
            "EarlyStopping": early.state_dict(),
            "BestMetricTracker": tracker,  # truth: weights_only
        },
    }
    path = os.path.join(tmpdir, "pose-export.ckpt")
    torch.save(ckpt, path)
    return path


def save_ranker_plain(tmpdir):
    df = judgments_frame()
    module = build_flat_ranker(RankerHParams(hidden=8), df)
    tracker = BestMetricTracker(monitor="val_ndcg")
    ckpt = {
        "epoch": 0,
        "global_step": 0,
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "hparams_initial": {k: v for k, v in module.hparams_initial.items()},
        "optimizer_states": [module.configure_optimizers().state_dict()],
        "callbacks": {"BestMetricTracker": tracker.state_dict()},
        "pytorch-lightning_version": str(L.__version__),
    }
    path = os.path.join(tmpdir, "ranker-plain.ckpt")
    torch.save(ckpt, path)
    return path
