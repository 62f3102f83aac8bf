"""Lightning modules for the recsys and graph experiments, built by `build_module(cfg)` from a
Hydra-style config, the way the project's `train.py` does it.
"""
import argparse
import dataclasses
import enum
import functools
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn


class Negatives(enum.Enum):
    IN_BATCH = "in_batch"
    UNIFORM = "uniform"


CONFIG = OmegaConf.create({
    "task": "two_tower",
    "model": {"embed_dim": 16, "hidden": 32, "num_layers": 2, "dropout": 0.1},
    "optim": {"lr": 1e-3, "weight_decay": 0.0},
    "data": {"num_users": 20, "num_items": 30, "num_nodes": 24, "num_classes": 3},
    "paths": {"cache": "/tmp/cache"},
})


def interactions_frame(cfg):
    rng = np.random.default_rng(0)
    n = 100
    return pd.DataFrame({
        "user_idx": rng.integers(0, cfg.data.num_users, n),
        "item_idx": rng.integers(0, cfg.data.num_items, n),
    })


def toy_graph(num_nodes, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, num_nodes, (60,), generator=g)
    dst = torch.randint(0, num_nodes, (60,), generator=g)
    return torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])


class LitTwoTower(L.LightningModule):
    def __init__(
        self,
        num_users: int,
        num_items: int,
        embed_dim: int = 16,
        temperature: float = 0.05,
        negatives: Negatives = Negatives.IN_BATCH,  # truth: hparam
        item_popularity=None,  # truth: hparam
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.user_emb = nn.Embedding(num_users, embed_dim)
        self.item_emb = nn.Embedding(num_items, embed_dim)
        if item_popularity is not None:
            self.register_buffer("log_q", torch.log(torch.as_tensor(item_popularity, dtype=torch.float32) + 1e-6))

    def training_step(self, batch, batch_idx):
        u, i = batch
        logits = F.normalize(self.user_emb(u), dim=-1) @ F.normalize(self.item_emb(i), dim=-1).T
        logits = logits / self.hparams.temperature
        if hasattr(self, "log_q"):
            logits = logits - self.log_q[i]
        return F.cross_entropy(logits, torch.arange(len(u), device=self.device))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class LitMatrixFactorization(L.LightningModule):
    def __init__(
        self,
        num_users: int,
        num_items: int,
        factors: int = 8,
        global_mean: float = 0.0,  # truth: hparam
        reg: float = 1e-4,
        loss_fn: nn.Module = nn.MSELoss(),  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.user = nn.Embedding(num_users, factors)
        self.item = nn.Embedding(num_items, factors)
        self.user_bias = nn.Embedding(num_users, 1)
        self.item_bias = nn.Embedding(num_items, 1)
        self.loss_fn = loss_fn

    def forward(self, u, i):
        dot = (self.user(u) * self.item(i)).sum(-1)
        return dot + self.user_bias(u).squeeze(-1) + self.item_bias(i).squeeze(-1) + self.hparams.global_mean

    def training_step(self, batch, batch_idx):
        u, i, r = batch
        return self.loss_fn(self(u, i), r) + self.hparams.reg * self.user.weight.pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SparseAdam(self.parameters(), lr=1e-2)


class LitSessionRec(L.LightningModule):
    def __init__(self, cfg: DictConfig):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.emb = nn.Embedding(cfg.data.num_items + 1, cfg.model.hidden, padding_idx=0)
        self.gru = nn.GRU(cfg.model.hidden, cfg.model.hidden, batch_first=True)
        self.head = nn.Linear(cfg.model.hidden, cfg.data.num_items + 1)

    def training_step(self, batch, batch_idx):
        seqs, targets = batch
        h, _ = self.gru(self.emb(seqs))
        return F.cross_entropy(self.head(h[:, -1]), targets)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.optim.lr)


class LitSessionRecPlain(L.LightningModule):
    """Same model, but the config is flattened into a plain dict before it is stored."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.emb = nn.Embedding(cfg["num_items"] + 1, cfg["hidden"], padding_idx=0)
        self.gru = nn.GRU(cfg["hidden"], cfg["hidden"], batch_first=True)
        self.head = nn.Linear(cfg["hidden"], cfg["num_items"] + 1)

    def training_step(self, batch, batch_idx):
        seqs, targets = batch
        h, _ = self.gru(self.emb(seqs))
        return F.cross_entropy(self.head(h[:, -1]), targets)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class DenseGCN(nn.Module):
    def __init__(self, in_dim, hidden, out_dim, num_layers=2, act=nn.ReLU):
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        self.lins = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.act = act()

    def forward(self, x, a_hat):
        for k, lin in enumerate(self.lins):
            x = a_hat @ lin(x)
            if k < len(self.lins) - 1:
                x = self.act(x)
        return x


def normalized_adjacency(edge_index, num_nodes):
    a = torch.zeros(num_nodes, num_nodes)
    a[edge_index[0], edge_index[1]] = 1.0
    a = a + torch.eye(num_nodes)
    d = a.sum(1).pow(-0.5)
    return d[:, None] * a * d[None, :]


class LitNodeClassifier(L.LightningModule):
    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        hidden: int = 16,
        num_layers: int = 2,
        activation=nn.ReLU,  # truth: hparam
        class_weights=None,
        adjacency=None,
        lr: float = 0.01,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["adjacency"])
        self.gcn = DenseGCN(in_dim, hidden, num_classes, num_layers, activation)
        self.register_buffer("a_hat", adjacency)
        self.register_buffer("class_weights", class_weights)

    def training_step(self, batch, batch_idx):
        x, y, mask = batch
        out = self.gcn(x, self.a_hat)
        return F.cross_entropy(out[mask], y[mask], weight=self.class_weights)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=5e-4)


class LitLinkPredictor(L.LightningModule):
    def __init__(
        self,
        encoder: nn.Module,
        num_nodes: int,  # truth: hparam
        num_neg: int = 1,
        neg_sampler=None,  # truth: hparam
        edge_dropout: float = 0.0,
        score_fn: str = "dot",
        lr: float = 0.005,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        self.neg_sampler = neg_sampler

    def training_step(self, batch, batch_idx):
        x, a_hat, pos = batch
        z = self.encoder(x, a_hat)
        neg = self.neg_sampler(pos, self.hparams.num_nodes, self.hparams.num_neg)
        pos_out = (z[pos[0]] * z[pos[1]]).sum(-1)
        neg_out = (z[neg[0]] * z[neg[1]]).sum(-1)
        return F.softplus(-pos_out).mean() + F.softplus(neg_out).mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def uniform_negatives(pos, num_nodes, num_neg, generator=None):
    return torch.randint(0, num_nodes, (2, pos.shape[1] * num_neg), generator=generator)


class LitGraphAutoEncoder(L.LightningModule):
    def __init__(
        self,
        in_dim: int,
        hidden: int = 16,
        latent: int = 8,
        args: argparse.Namespace = None,  # truth: hparam
        cache_dir: Path = Path("/tmp/gae"),  # truth: hparam
        feature_mean=None,
        beta: float = 1.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.enc = DenseGCN(in_dim, hidden, 2 * latent)

    def training_step(self, batch, batch_idx):
        x, a_hat, a = batch
        mu, logvar = self.enc(x, a_hat).chunk(2, dim=-1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = F.binary_cross_entropy_with_logits(z @ z.T, a)
        kl = -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
        return recon + self.hparams.beta * kl

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


class LitGraphSAGE(L.LightningModule):
    def __init__(self, args: argparse.Namespace):
        super().__init__()
        self.save_hyperparameters(args)
        self.self_lin = nn.Linear(args.in_dim, args.hidden)
        self.neigh_lin = nn.Linear(args.in_dim, args.hidden)
        self.out = nn.Linear(args.hidden, args.num_classes)

    def forward(self, x, edge_index):
        agg = torch.zeros_like(x).index_add_(0, edge_index[1], x[edge_index[0]])
        return self.out(F.relu(self.self_lin(x) + self.neigh_lin(agg)))

    def training_step(self, batch, batch_idx):
        x, edge_index, y = batch
        return F.cross_entropy(self(x, edge_index), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class LitRanker(L.LightningModule):
    def __init__(
        self,
        num_items: int,
        embed_dim: int = 16,
        margin: float = 0.5,
        activation: str = "relu",
        item_features_dim: int = 0,
        loss_weights: dict = None,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters("num_items", "embed_dim", "margin", "lr", "loss_weights")
        self.item_emb = nn.Embedding(num_items, embed_dim)
        self.act = getattr(F, activation)

    def training_step(self, batch, batch_idx):
        anchor, pos, neg = batch
        a, p, n = self.item_emb(anchor), self.item_emb(pos), self.item_emb(neg)
        return F.triplet_margin_loss(self.act(a), self.act(p), self.act(n), margin=self.hparams.margin)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


@dataclasses.dataclass
class SamplerConfig:
    num_neg: int = 4
    strategy: str = "popularity"
    alpha: float = 0.75


class LitBPR(L.LightningModule):
    def __init__(
        self,
        num_users: int,
        num_items: int,
        factors: int = 16,
        sampler: SamplerConfig = SamplerConfig(),  # truth: hparam
        sampler_kwargs: dict = None,
        item_filter=None,  # truth: hparam
        eval_ks: tuple = (10, 20),
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.user = nn.Embedding(num_users, factors, dtype=dtype)
        self.item = nn.Embedding(num_items, factors, dtype=dtype)

    def training_step(self, batch, batch_idx):
        u, pos = batch
        neg = torch.randint(0, self.hparams.num_items, pos.shape, device=self.device)
        diff = (self.user(u) * (self.item(pos) - self.item(neg))).sum(-1)
        return -F.logsigmoid(diff).mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def build_module(cfg):
    """What train.py does: pick the LightningModule for cfg.task and feed it data statistics."""
    if cfg.task == "two_tower":
        df = interactions_frame(cfg)
        pop = df.item_idx.value_counts().reindex(range(cfg.data.num_items), fill_value=0).to_numpy()
        return LitTwoTower(
            num_users=df.user_idx.nunique(),
            num_items=cfg.data.num_items,
            embed_dim=cfg.model.embed_dim,
            temperature=0.05,
            negatives=Negatives.UNIFORM,
            item_popularity=pop / pop.sum(),
            lr=cfg.optim.lr,
        )
    if cfg.task == "mf":
        ratings = np.random.default_rng(0).integers(1, 6, 50).astype("float32")
        return LitMatrixFactorization(
            cfg.data.num_users, cfg.data.num_items, factors=cfg.model.embed_dim,
            global_mean=ratings.mean(), reg=float(cfg.optim.weight_decay) or 1e-4,
        )
    if cfg.task == "session":
        return LitSessionRec(cfg)
    if cfg.task == "session_plain":
        flat = {**OmegaConf.to_container(cfg.model), **OmegaConf.to_container(cfg.data), "lr": cfg.optim.lr}
        return LitSessionRecPlain(flat)
    if cfg.task == "node":
        n = cfg.data.num_nodes
        edge_index = toy_graph(n)
        y = torch.arange(n) % cfg.data.num_classes
        counts = torch.bincount(y, minlength=cfg.data.num_classes).float()
        return LitNodeClassifier(
            in_dim=8,
            num_classes=cfg.data.num_classes,
            hidden=cfg.model.hidden,
            num_layers=cfg.model.num_layers,
            activation=nn.GELU,
            class_weights=counts.sum() / (len(counts) * counts),
            adjacency=normalized_adjacency(edge_index, n),
            lr=cfg.optim.lr,
        )
    if cfg.task == "link":
        edge_index = toy_graph(cfg.data.num_nodes)
        num_nodes = np.unique(edge_index.numpy()).max() + 1
        return LitLinkPredictor(
            encoder=DenseGCN(8, cfg.model.hidden, cfg.model.embed_dim),
            num_nodes=num_nodes,
            num_neg=2,
            neg_sampler=functools.partial(uniform_negatives, generator=torch.Generator().manual_seed(0)),
            edge_dropout=cfg.model.dropout,
        )
    if cfg.task == "gae":
        args = argparse.Namespace(latent=8, beta=0.5, epochs=10)
        x = torch.randn(cfg.data.num_nodes, 8)
        return LitGraphAutoEncoder(
            8, hidden=cfg.model.hidden, latent=args.latent, args=args,
            cache_dir=Path(cfg.paths.cache) / "gae", feature_mean=x.mean(0), beta=args.beta,
        )
    if cfg.task == "sage":
        args = argparse.Namespace(in_dim=8, hidden=cfg.model.hidden, num_classes=cfg.data.num_classes, lr=cfg.optim.lr)
        return LitGraphSAGE(args)
    if cfg.task == "ranker":
        return LitRanker(
            cfg.data.num_items, embed_dim=cfg.model.embed_dim, activation="gelu",
            item_features_dim=np.int64(4), loss_weights={"triplet": 1.0, "reg": float(np.float32(0.1))},
        )
    if cfg.task == "bpr":
        sampler = SamplerConfig(num_neg=2)
        return LitBPR(
            cfg.data.num_users, cfg.data.num_items, factors=cfg.model.embed_dim,
            sampler=sampler, sampler_kwargs=dataclasses.asdict(sampler),
            item_filter=lambda item: item != 0, eval_ks=tuple(sorted({5, 10, 20})),
        )
    raise ValueError(cfg.task)


def _built(task):
    return lambda: build_module(OmegaConf.merge(CONFIG, {"task": task}))


FACTORIES = {
    "LitTwoTower": _built("two_tower"),
    "LitMatrixFactorization": _built("mf"),
    "LitSessionRec": _built("session"),
    "LitSessionRecPlain": _built("session_plain"),
    "LitNodeClassifier": _built("node"),
    "LitLinkPredictor": _built("link"),
    "LitGraphAutoEncoder": _built("gae"),
    "LitGraphSAGE": _built("sage"),
    "LitRanker": _built("ranker"),
    "LitBPR": _built("bpr"),
    "DenseGCN": lambda: DenseGCN(4, 8, 2),
    "Negatives": lambda: Negatives.IN_BATCH,
}
