"""LightningModules for the three project lines (credit risk, frame interpolation, traffic
forecasting), each with the factory / registry / config object that builds it in the launcher."""
import argparse
import dataclasses
import enum
import functools
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.preprocessing import StandardScaler

CATS = ["grade", "purpose", "region"]
NUMS = ["income", "dti", "revol_util"]


def credit_frame(n=300, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "grade": rng.choice(list("ABCDEFG"), n),
        "purpose": rng.choice(["car", "debt", "card", "other"], n),
        "region": rng.choice([f"r{i}" for i in range(9)], n),
        "income": rng.lognormal(10.5, 0.4, n),
        "dti": rng.uniform(0, 35, n),
        "revol_util": rng.uniform(0, 1, n),
    })
    df["default"] = (rng.random(n) < 0.18).astype(int)
    return df


# =========================================================================== credit risk

def credit_args(argv=None):
    p = argparse.ArgumentParser("credit")
    p.add_argument("--emb_dim", type=int, default=6)
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 32])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--ckpt_dir", type=Path, default=Path("checkpoints/credit"))
    p.add_argument("--max_epochs", type=int, default=20)
    return p.parse_args(argv)


class CreditEmbeddingMLP(L.LightningModule):
    def __init__(
        self,
        cardinalities,  # truth: hparam
        n_numeric: int,
        emb_dim: int = 6,
        hidden=(64, 32),
        lr: float = 1e-3,
        pos_weight: float = 1.0,
        loss_fn=None,  # truth: hparam
        run_args=None,  # truth: hparam
    ):
        super().__init__()
        pos_weight = float(pos_weight)
        self.save_hyperparameters()
        self.embs = nn.ModuleList([nn.Embedding(int(c), emb_dim) for c in cardinalities])
        dims = [emb_dim * len(cardinalities) + n_numeric, *hidden]
        self.mlp = nn.Sequential(*[m for a, b in zip(dims, dims[1:]) for m in (nn.Linear(a, b), nn.ReLU())])
        self.head = nn.Linear(dims[-1], 1)
        self.loss_fn = loss_fn or nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight))

    def forward(self, x_cat, x_num):
        e = torch.cat([emb(x_cat[:, i]) for i, emb in enumerate(self.embs)], 1)
        return self.head(self.mlp(torch.cat([e, x_num], 1))).squeeze(1)

    def training_step(self, batch, batch_idx):
        x_cat, x_num, y = batch
        loss = self.loss_fn(self(x_cat, x_num), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def build_credit_module(args, df):
    cards = df[CATS].nunique().to_numpy() + 1
    pos_weight = (df["default"] == 0).sum() / (df["default"] == 1).sum()
    return CreditEmbeddingMLP(
        cards,
        n_numeric=len(NUMS),
        emb_dim=args.emb_dim,
        hidden=list(args.hidden),
        lr=args.lr,
        pos_weight=pos_weight,
        loss_fn=nn.BCEWithLogitsLoss(pos_weight=torch.tensor(float(pos_weight))),
        run_args=args,
    )


MODEL_REGISTRY = {}


def register(name):
    def deco(cls):
        MODEL_REGISTRY[name] = cls
        return cls
    return deco


@register("tab_resnet")
class TabResNetLit(L.LightningModule):
    def __init__(
        self,
        cat_levels: dict,
        num_mean,  # truth: hparam
        num_std: list,
        target_prior,  # truth: hparam
        n_blocks: int = 2,
        d: int = 32,
        lr: float = 1e-3,
        export_dir: str = "exports",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.embs = nn.ModuleDict({c: nn.Embedding(len(v) + 1, d) for c, v in cat_levels.items()})
        self.num_proj = nn.Linear(len(num_std), d)
        self.blocks = nn.ModuleList([nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.ReLU()) for _ in range(n_blocks)])
        self.head = nn.Linear(d, 1)
        with torch.no_grad():
            p = float(target_prior)
            self.head.bias.fill_(np.log(p / (1 - p)))

    def forward(self, x_cat, x_num):
        h = self.num_proj(x_num) + sum(self.embs[c](x_cat[:, i]) for i, c in enumerate(self.embs))
        for blk in self.blocks:
            h = h + blk(h)
        return self.head(h).squeeze(1)


@register("woe_scorecard")
class WoEScorecardLit(L.LightningModule):
    """Logistic scorecard on WoE-encoded bins; hparams come straight from the CLI namespace."""

    def __init__(self, hparams: argparse.Namespace):
        super().__init__()
        self.save_hyperparameters(hparams)
        self.linear = nn.Linear(len(hparams.features), 1)
        self.register_buffer("pdo", torch.tensor(hparams.pdo, dtype=torch.float32))

    def forward(self, woe):
        return self.linear(woe).squeeze(1)


def scorecard_args(argv=None):
    p = argparse.ArgumentParser("scorecard")
    p.add_argument("--features", nargs="+", default=["grade", "purpose", "dti_bin"])
    p.add_argument("--pdo", type=float, default=20.0)
    p.add_argument("--base_score", type=int, default=600)
    p.add_argument("--min_iv", type=float, default=0.02)
    p.add_argument("--out", default="scorecards/v1")
    return p.parse_args(argv)


def build_from_registry(name, df=None, **overrides):
    df = credit_frame() if df is None else df
    cls = MODEL_REGISTRY[name]
    if cls is WoEScorecardLit:
        return cls(scorecard_args([]))
    kwargs = dict(
        cat_levels={c: sorted(df[c].unique().tolist()) for c in CATS},
        num_mean=df[NUMS].mean(),
        num_std=df[NUMS].std().round(4).tolist(),
        target_prior=df["default"].mean(),
        export_dir=str(Path("exports") / name),
    )
    kwargs.update(overrides)
    return cls(**kwargs)


# =========================================================================== frame interpolation

class WarpMode(enum.Enum):
    BILINEAR = "bilinear"
    NEAREST = "nearest"


@dataclasses.dataclass
class FlowConfig:
    channels: int = 16
    lr: float = 2e-4
    crop: tuple = (32, 32)
    n_inter: int = 3
    charb_eps: float = 1e-3
    warp: str = "bilinear"
    epe_weight: float = 0.01


def charbonnier(x, y, eps=1e-3):
    return torch.sqrt((x - y) ** 2 + eps ** 2).mean()


class FlowInterpLit(L.LightningModule):
    def __init__(
        self,
        cfg: FlowConfig,  # truth: hparam
        recon_loss=None,  # truth: hparam
        warp_mode: str = "bilinear",
        epe_weight: float = 0.01,
    ):
        super().__init__()
        self.save_hyperparameters()
        c = cfg.channels
        self.enc = nn.Sequential(nn.Conv2d(7, c, 3, 2, 1), nn.PReLU(c), nn.Conv2d(c, c, 3, 1, 1), nn.PReLU(c))
        self.dec = nn.ConvTranspose2d(c, 5, 4, 2, 1)

    def forward(self, x0, x1, t):
        tt = t.view(-1, 1, 1, 1).expand(-1, 1, *x0.shape[2:])
        out = self.dec(self.enc(torch.cat([x0, x1, tt], 1)))
        return out[:, :2], out[:, 2:4], torch.sigmoid(out[:, 4:5])

    def training_step(self, batch, batch_idx):
        x0, x1, gt, t = batch
        f0, f1, m = self(x0, x1, t)
        pred = m * x0 + (1 - m) * x1
        loss_fn = self.hparams.recon_loss or charbonnier
        return loss_fn(pred, gt)


def build_flow_module(cfg: FlowConfig):
    return FlowInterpLit(
        cfg,
        recon_loss=functools.partial(charbonnier, eps=cfg.charb_eps),
        warp_mode=WarpMode(cfg.warp).value,
        epe_weight=cfg.epe_weight,
    )


class MultiFrameInterpLit(L.LightningModule):
    def __init__(
        self,
        timesteps,  # truth: hparam
        t_weights,
        occ_weight_fn=None,  # truth: hparam
        flow_backbone=None,
        crop=(32, 32),
        fps_in: float = 30.0,
        started_at=None,  # truth: hparam
        run_name: str = "",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["flow_backbone"])
        self.flow_backbone = flow_backbone if flow_backbone is not None else nn.Conv2d(6, 4, 3, padding=1)
        w = occ_weight_fn or (lambda t: 1.0)
        self.register_buffer("t", torch.tensor([float(t) for t in timesteps]))
        self.register_buffer("occ_w", torch.tensor([w(float(t)) * tw for t, tw in zip(timesteps, t_weights)]))

    def forward(self, x0, x1):
        return self.flow_backbone(torch.cat([x0, x1], 1))


def make_multiframe(n_inter=3, fps_in=30.0, backbone=None):
    ts = [Fraction(i, n_inter + 1) for i in range(1, n_inter + 1)]
    now = datetime.now()
    return MultiFrameInterpLit(
        timesteps=ts,
        t_weights=[1.0 / n_inter] * n_inter,
        occ_weight_fn=lambda t: 1.0 + 4.0 * t * (1.0 - t),
        flow_backbone=backbone or nn.Conv2d(6, 4, 3, padding=1),
        crop=tuple(FlowConfig().crop),
        fps_in=fps_in,
        started_at=now,
        run_name=f"mf{n_inter}-{now:%Y%m%d}",
    )


# =========================================================================== traffic forecasting

TRAFFIC_CFG = OmegaConf.create({
    "data": {"num_nodes": 6, "in_len": 12, "out_len": 12, "null_val": 0.0},
    "model": {"hidden": 16, "k_hops": 2, "dropout": 0.1, "layers": 2},
    "optim": {"lr": 1e-3, "weight_decay": 1e-4},
    "eval": {"horizons": [3, 6, 12]},
})


def traffic_graph(num_nodes=6, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"sensor_{i:03d}" for i in range(num_nodes)]
    rows = [(a, b, rng.uniform(200, 3000)) for a in ids for b in ids if a != b and rng.random() < 0.5]
    dist = pd.DataFrame(rows, columns=["from", "to", "cost"])
    idx = {s: i for i, s in enumerate(ids)}
    sigma = dist["cost"].std()
    adj = np.zeros((num_nodes, num_nodes), np.float32)
    for a, b, c in rows:
        adj[idx[a], idx[b]] = np.exp(-(c / sigma) ** 2)
    return ids, dist, adj


class GraphForecastLit(L.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        n, h = cfg.data.num_nodes, cfg.model.hidden
        self.inp = nn.Linear(cfg.data.in_len, h)
        self.mix = nn.Parameter(torch.eye(n))
        self.out = nn.Linear(h, cfg.data.out_len)

    def forward(self, x):  # (B, T, N)
        h = self.inp(x.transpose(1, 2))
        h = torch.einsum("nm,bmh->bnh", torch.softmax(self.mix, -1), h)
        return self.out(F.relu(h)).transpose(1, 2)


class STGCNLit(L.LightningModule):
    def __init__(
        self,
        adj,
        num_nodes: int,
        horizons,  # truth: hparam
        scaler=None,  # truth: hparam
        null_val: float = 0.0,
        lr: float = 1e-3,
        node_ids=(),
        optimizer_cls=torch.optim.Adam,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["adj"])
        self.register_buffer("adj", torch.as_tensor(adj, dtype=torch.float32))
        self.temporal = nn.Conv1d(1, 8, 3, padding=1)
        self.graph = nn.Linear(8, 8)
        self.head = nn.Linear(8, max(horizons))

    def configure_optimizers(self):
        return self.hparams.optimizer_cls(self.parameters(), lr=self.hparams.lr)


def make_stgcn(cfg=TRAFFIC_CFG, train_speeds=None):
    ids, dist, adj = traffic_graph(cfg.data.num_nodes)
    if train_speeds is None:
        train_speeds = np.random.default_rng(1).normal(60, 8, size=(200, cfg.data.num_nodes))
    scaler = StandardScaler().fit(train_speeds[train_speeds > 0].reshape(-1, 1))
    return STGCNLit(
        adj,
        num_nodes=adj.shape[0],
        horizons=cfg.eval.horizons,
        scaler=scaler,
        null_val=cfg.data.null_val,
        lr=cfg.optim.lr,
        node_ids=tuple(ids),
    )


class DCRNNLit(L.LightningModule):
    def __init__(
        self,
        adj,
        sigma,  # truth: hparam
        k_hops: int = 2,
        mask_threshold: float = 0.1,
        scaler_mean: float = 0.0,
        scaler_std: float = 1.0,
        eval_horizons=(3, 6, 12),
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters("sigma", "k_hops", "mask_threshold", "scaler_mean", "scaler_std", "eval_horizons", "lr")
        a = torch.as_tensor(adj) + torch.eye(len(adj))
        self.register_buffer("p_fwd", a / a.sum(1, keepdim=True))
        self.gru = nn.GRU(1 + 2 * k_hops, 16, batch_first=True)


class GraphWaveNetLit(L.LightningModule):
    def __init__(
        self,
        supports,
        hidden: int = 16,
        k_hops: int = 2,
        dropout: float = 0.1,
        layers: int = 2,
        adaptive_adj: bool = True,
        dtype=torch.float32,
        horizon_names=(),
    ):
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("supports_0", supports.to(dtype))
        self.node_emb = nn.Parameter(torch.randn(supports.shape[0], 4)) if adaptive_adj else None
        self.convs = nn.ModuleList([nn.Conv1d(hidden if i else 1, hidden, 2, dilation=2 ** i) for i in range(layers)])


FORECASTERS = {
    "dcrnn": lambda cfg, ids, dist, adj, scaler: DCRNNLit(
        adj,
        sigma=dist["cost"].std(),
        k_hops=cfg.model.k_hops,
        mask_threshold=float(np.quantile(adj[adj > 0], 0.1)),
        scaler_mean=float(scaler.mean_[0]),
        scaler_std=float(scaler.scale_[0]),
        eval_horizons=tuple(cfg.eval.horizons),
        lr=cfg.optim.lr,
    ),
    "gwnet": lambda cfg, ids, dist, adj, scaler: GraphWaveNetLit(
        torch.from_numpy(adj),
        **OmegaConf.to_container(cfg.model),
        horizon_names=tuple(f"h{h}" for h in cfg.eval.horizons),
    ),
}


def build_forecaster(name, cfg=TRAFFIC_CFG):
    if name == "graph_mix":
        return GraphForecastLit(cfg)
    if name == "stgcn":
        return make_stgcn(cfg)
    ids, dist, adj = traffic_graph(cfg.data.num_nodes)
    scaler = StandardScaler().fit(np.random.default_rng(2).normal(55, 9, (300, 1)))
    return FORECASTERS[name](cfg, ids, dist, adj, scaler)


FACTORIES = {
    "CreditEmbeddingMLP": lambda: build_credit_module(credit_args([]), credit_frame()),
    "TabResNetLit": lambda: build_from_registry("tab_resnet"),
    "WoEScorecardLit": lambda: build_from_registry("woe_scorecard"),
    "WarpMode": lambda: WarpMode.BILINEAR,
    "FlowInterpLit": lambda: build_flow_module(FlowConfig()),
    "MultiFrameInterpLit": lambda: make_multiframe(3),
    "GraphForecastLit": lambda: build_forecaster("graph_mix"),
    "STGCNLit": lambda: build_forecaster("stgcn"),
    "DCRNNLit": lambda: build_forecaster("dcrnn"),
    "GraphWaveNetLit": lambda: build_forecaster("gwnet"),
}
