"""LightningModules and DataModules for the three projects (camera traps, churn, traffic).

Every module is built the way the project's entry points build it: through a
builder that reads a config (plain dict, dataclass or OmegaConf) and derives
some arguments from the data first.
"""
import enum
import functools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, TensorDataset

# ======================================================================= camera traps

CT_CONFIG = {
    "data": {"root": "data/snapshot_serengeti", "img_size": 32, "batch_size": 16, "num_workers": 0,
             "val_sites": ["S03", "S07"]},
    "model": {"backbone": "tinyconv", "width": 16, "drop_rate": 0.1},
    "optim": {"lr": 3e-3, "weight_decay": 0.05, "warmup_epochs": 1, "max_epochs": 10},
    "loss": {"name": "ce", "label_smoothing": 0.1},
}
CT_SPECIES = ["empty", "zebra", "wildebeest", "gazelle", "impala", "elephant", "hyena", "lion"]

LOSSES = {
    "ce": lambda c, w: nn.CrossEntropyLoss(weight=w, label_smoothing=c.get("label_smoothing", 0.0)),
    "focal": lambda c, w: FocalLoss(gamma=c.get("gamma", 2.0), weight=w),
}


class FocalLoss(nn.Module):
    def __init__(self, gamma=2.0, weight=None):
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", weight if weight is not None else torch.ones(1))

    def forward(self, logits, target):
        logp = F.log_softmax(logits, dim=1)
        pt = logp.gather(1, target[:, None]).exp().squeeze(1)
        return (-(1 - pt) ** self.gamma * logp.gather(1, target[:, None]).squeeze(1)).mean()


def ct_metadata(seed=0, n=120):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "species": rng.choice(CT_SPECIES, n),
        "site": rng.choice([f"S{i:02d}" for i in range(1, 10)], n),
        "hour": rng.integers(0, 24, n),
    })
    df["is_night"] = (df["hour"] < 6) | (df["hour"] > 19)
    return df


def make_species_filter(min_count, counts):
    keep = {s for s, c in counts.items() if c >= min_count}
    return lambda name: name in keep


class CameraTrapDataModule(L.LightningDataModule):
    def __init__(
        self,
        data_dir: str = "data/snapshot_serengeti",
        img_size: int = 32,
        batch_size: int = 16,
        num_workers: int = 0,
        val_sites: tuple = ("S03", "S07"),
    ):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        n = 64
        x = torch.randn(n, 3, self.hparams.img_size, self.hparams.img_size)
        y = torch.randint(0, len(CT_SPECIES), (n,))
        self.train_ds = TensorDataset(x, y)

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.hparams.batch_size, shuffle=True,
                          num_workers=self.hparams.num_workers)


class CameraTrapClassifier(L.LightningModule):
    def __init__(
        self,
        backbone: str = "tinyconv",
        num_classes: int = 8,
        class_names: list = None,
        class_weights: torch.Tensor = None,
        width: int = 16,
        lr: float = 3e-3,
        weight_decay: float = 0.05,
        warmup_epochs: int = 1,
        max_epochs: int = 10,
        img_mean: tuple = (0.485, 0.456, 0.406),
        loss_fn: nn.Module = None,  # truth: hparam
        data_root: Path = Path("data"),  # truth: hparam
        species_filter=None,  # truth: hparam
        night_fraction: float = 0.0,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(width, num_classes),
        )
        self.criterion = loss_fn or nn.CrossEntropyLoss()
        names = class_names or CT_SPECIES
        self.kept_classes = [n for n in names if species_filter is None or species_filter(n)]

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.criterion(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        warm = self.hparams.warmup_epochs
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: min(1.0, (e + 1) / max(warm, 1)))
        return {"optimizer": opt, "lr_scheduler": sched}


def build_camera_trap(config=CT_CONFIG):
    df = ct_metadata()
    counts = df["species"].value_counts()
    present = sorted(counts.index.tolist())
    freq = counts.reindex(present).to_numpy(dtype=np.float64)
    weights = torch.tensor(freq.sum() / (len(freq) * freq), dtype=torch.float32)
    loss_cfg = config["loss"]
    return CameraTrapClassifier(
        backbone=config["model"]["backbone"],
        num_classes=len(present),
        class_names=present,
        class_weights=weights,
        width=config["model"]["width"],
        lr=config["optim"]["lr"],
        weight_decay=config["optim"]["weight_decay"],
        warmup_epochs=config["optim"]["warmup_epochs"],
        max_epochs=config["optim"]["max_epochs"],
        loss_fn=LOSSES[loss_cfg["name"]](loss_cfg, weights),
        data_root=Path(config["data"]["root"]),
        species_filter=make_species_filter(3, counts.to_dict()),
        night_fraction=df["is_night"].mean(),
    )


def build_camera_trap_dm(config=CT_CONFIG):
    d = config["data"]
    return CameraTrapDataModule(str(Path(d["root"])), d["img_size"], d["batch_size"], d["num_workers"],
                                tuple(d["val_sites"]))


# ======================================================================= churn

class Plan(enum.Enum):
    MONTHLY = "monthly"
    ANNUAL = "annual"


@dataclass
class ChurnConfig:
    hidden: tuple = (64, 32)
    dropout: float = 0.2
    lr: float = 1e-3
    optimizer: str = "adamw"
    focus_plan: Plan = Plan.MONTHLY
    numeric: list = field(default_factory=lambda: ["tenure", "fee", "logins", "tickets"])


def churn_frame(seed=3, n=200):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "tenure": rng.integers(1, 60, n), "fee": rng.choice([9.99, 19.99], n),
        "logins": rng.poisson(6, n), "tickets": rng.poisson(1, n),
        "plan": rng.choice(["monthly", "annual"], n), "region": rng.choice(["na", "eu"], n),
    })
    df["churned"] = (rng.random(n) < 0.2).astype(int)
    return df


class ChurnLitModel(L.LightningModule):
    def __init__(
        self,
        n_features: int,
        hidden: tuple = (64, 32),
        dropout: float = 0.2,
        lr: float = 1e-3,
        optimizer: str = "adamw",
        threshold: float = 0.5,
        cat_cardinalities: dict = None,
        feature_names: list = None,
        pos_weight: float = 1.0,  # truth: hparam
        scaler: StandardScaler = None,  # truth: hparam
        focus_plan: Plan = Plan.MONTHLY,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        layers, d = [], n_features
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout)]
            d = h
        self.mlp = nn.Sequential(*layers, nn.Linear(d, 1))
        self.loss = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(float(pos_weight)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self.mlp(x).squeeze(-1), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        cls = {"adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[self.hparams.optimizer]
        return cls(self.parameters(), lr=self.hparams.lr)


class ChurnBaseline(L.LightningModule):
    """Logistic-regression baseline: the encoder is shared and kept out of hparams."""

    def __init__(self, encoder: nn.Module = None, n_features: int = 4, lr: float = 1e-2,
                 base_rate: float = 0.2, feature_stats: dict = None, train_config: dict = None):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder or nn.Identity()
        self.linear = nn.Linear(n_features, 1)

    def forward(self, x):
        return self.linear(self.encoder(x)).squeeze(-1)


class ChurnSelective(L.LightningModule):
    def __init__(self, n_features: int = 4, lr: float = 1e-3, quantile_edges=None, cohort_ids=None):
        super().__init__()
        self.save_hyperparameters("n_features", "lr")
        self.register_buffer("edges", torch.as_tensor(quantile_edges if quantile_edges is not None else [0.0]))
        self.cohorts = list(cohort_ids or [])
        self.head = nn.Linear(n_features, 1)


def build_churn(cfg: ChurnConfig = None):
    cfg = cfg or ChurnConfig()
    df = churn_frame()
    scaler = StandardScaler().fit(df[cfg.numeric])
    cats = ["plan", "region"]
    onehot = pd.get_dummies(df[cats])
    feature_names = cfg.numeric + onehot.columns.tolist()
    y = df["churned"]
    return ChurnLitModel(
        n_features=len(feature_names),
        hidden=cfg.hidden,
        dropout=cfg.dropout,
        lr=cfg.lr,
        optimizer=cfg.optimizer,
        threshold=float(np.clip(y.mean() * 2, 0.1, 0.9)),
        cat_cardinalities={c: df[c].nunique() for c in cats},
        feature_names=feature_names,
        pos_weight=(y == 0).sum() / (y == 1).sum(),
        scaler=scaler,
        focus_plan=cfg.focus_plan,
    )


def build_churn_baseline(cfg: ChurnConfig = None):
    cfg = cfg or ChurnConfig()
    df = churn_frame()
    stats = df[cfg.numeric].agg(["mean", "std"]).round(4).to_dict()
    plain = {**asdict(cfg), "focus_plan": cfg.focus_plan.value}
    return ChurnBaseline(nn.LayerNorm(len(cfg.numeric)), len(cfg.numeric), cfg.lr,
                         base_rate=float(df["churned"].mean()), feature_stats=stats, train_config=plain)


def build_churn_selective():
    df = churn_frame()
    edges = np.quantile(df["tenure"], [0.25, 0.5, 0.75])
    return ChurnSelective(4, 1e-3, quantile_edges=edges, cohort_ids=df["region"].unique())


# ======================================================================= traffic

TRAFFIC_YAML = """
data: {num_nodes: 8, in_steps: 12, out_steps: 12, interval_minutes: 5, null_value: 0.0}
model: {name: stgcn_lite, hidden: 16, cheb_k: 2, horizons: [3, 6, 12], activation: relu}
train: {lr: 0.002, warmup_steps: 100, max_epochs: 5}
"""

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
TRAFFIC_MODULES = {}


def register_module(name):
    def deco(cls):
        TRAFFIC_MODULES[name] = cls
        return cls
    return deco


def warmup_then_decay(step, warmup_steps=100, decay=0.999):
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return decay ** (step - warmup_steps)


def road_adjacency(num_nodes, seed=0):
    rng = np.random.default_rng(seed)
    dist = rng.uniform(0.2, 4.0, (num_nodes, num_nodes))
    dist = (dist + dist.T) / 2
    adj = np.exp(-(dist / dist.std()) ** 2)
    np.fill_diagonal(adj, 1.0)
    adj[adj < 0.1] = 0.0
    return adj


def speed_table(cfg, seed=0):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2012-03-01", periods=288, freq=f"{cfg.data.interval_minutes}min")
    return pd.DataFrame(rng.normal(55, 8, (len(idx), cfg.data.num_nodes)), index=idx,
                        columns=[f"40{i:04d}" for i in range(cfg.data.num_nodes)])


@register_module("stgcn_lite")
class TrafficGCNModule(L.LightningModule):
    def __init__(
        self,
        num_nodes: int,
        in_steps: int = 12,
        out_steps: int = 12,
        hidden: int = 16,
        cheb_k: int = 2,
        lr: float = 2e-3,
        null_value: float = 0.0,
        sensor_ids: list = None,
        laplacian: torch.Tensor = None,
        scaler_mean: float = 0.0,
        scaler_std: float = 1.0,  # truth: hparam
        horizons=(3, 6, 12),  # truth: hparam
        adj_mx=None,  # truth: hparam
        activation=nn.ReLU,  # truth: hparam
        lr_lambda=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.theta = nn.Linear(in_steps * cheb_k, hidden)
        self.act = activation()
        self.out = nn.Linear(hidden, out_steps)
        self.register_buffer("lap", laplacian if laplacian is not None else torch.eye(num_nodes))

    def forward(self, x):  # x: (B, N, T)
        feats = [x]
        for _ in range(1, self.hparams.cheb_k):
            feats.append(torch.einsum("nm,bmt->bnt", self.lap, feats[-1]))
        return self.out(self.act(self.theta(torch.cat(feats, -1))))

    def training_step(self, batch, batch_idx):
        x, y = batch
        x = (x - self.hparams.scaler_mean) / self.hparams.scaler_std
        pred = self(x)
        mask = (y != self.hparams.null_value).float()
        loss = (torch.abs(pred - y) * mask).sum() / mask.sum().clamp_min(1.0)
        self.log("train/mae", loss)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        if self.hparams.lr_lambda is None:
            return opt
        return [opt], [torch.optim.lr_scheduler.LambdaLR(opt, self.hparams.lr_lambda)]


@register_module("config_driven")
class TrafficLitForecaster(L.LightningModule):
    """Hydra-style module: takes the whole config node."""

    def __init__(self, cfg, adj: torch.Tensor = None):  # truth: hparam[cfg]
        super().__init__()
        self.save_hyperparameters(cfg)
        n = cfg.data.num_nodes
        self.register_buffer("adj", adj if adj is not None else torch.eye(n))
        self.proj = nn.Linear(cfg.data.in_steps, cfg.data.out_steps)


@register_module("plain_config")
class TrafficBaselineModule(L.LightningModule):
    """Historical-average + linear residual; stores a resolved plain config."""

    def __init__(self, config: dict, steps_per_day: int = 288, interval_minutes: int = 5):
        super().__init__()
        self.save_hyperparameters(config)
        self.residual = nn.Linear(config["in_steps"], config["out_steps"])


def build_traffic(cfg=None):
    cfg = cfg or OmegaConf.create(TRAFFIC_YAML)
    adj = road_adjacency(cfg.data.num_nodes)
    deg = adj.sum(1)
    lap = np.eye(len(adj)) - adj / np.sqrt(np.outer(deg, deg))
    speeds = speed_table(cfg)
    train = speeds.iloc[: int(len(speeds) * 0.7)].to_numpy()
    module_cls = TRAFFIC_MODULES[cfg.model.name]
    return module_cls(
        num_nodes=cfg.data.num_nodes,
        in_steps=cfg.data.in_steps,
        out_steps=cfg.data.out_steps,
        hidden=cfg.model.hidden,
        cheb_k=cfg.model.cheb_k,
        lr=cfg.train.lr,
        null_value=cfg.data.null_value,
        sensor_ids=speeds.columns.tolist(),
        laplacian=torch.from_numpy(lap).float(),
        scaler_mean=float(train.mean()),
        scaler_std=train.std(),
        horizons=cfg.model.horizons,
        adj_mx=adj,
        activation=ACTIVATIONS[cfg.model.activation],
        lr_lambda=functools.partial(warmup_then_decay, warmup_steps=cfg.train.warmup_steps),
    )


def build_traffic_forecaster():
    cfg = OmegaConf.merge(OmegaConf.create(TRAFFIC_YAML), {"model": {"name": "config_driven"}})
    return TRAFFIC_MODULES[cfg.model.name](cfg, torch.from_numpy(road_adjacency(cfg.data.num_nodes)).float())


def build_traffic_baseline():
    cfg = OmegaConf.create(TRAFFIC_YAML)
    flat = OmegaConf.to_container(cfg.data, resolve=True)
    flat["horizons"] = list(cfg.model.horizons)
    flat["steps_per_day"] = int(math.ceil(24 * 60 / cfg.data.interval_minutes))
    return TRAFFIC_MODULES["plain_config"](flat)


FACTORIES = {
    "Plan": lambda: Plan.ANNUAL,
    "FocalLoss": lambda: FocalLoss(2.0, torch.ones(8)),
    "CameraTrapDataModule": build_camera_trap_dm,
    "CameraTrapClassifier": build_camera_trap,
    "ChurnLitModel": build_churn,
    "ChurnBaseline": build_churn_baseline,
    "ChurnSelective": build_churn_selective,
    "TrafficGCNModule": build_traffic,
    "TrafficLitForecaster": build_traffic_forecaster,
    "TrafficBaselineModule": build_traffic_baseline,
}
NOT_BUILT = {}
