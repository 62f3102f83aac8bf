"""Fraud-ring detection on a transaction graph.

Accounts are nodes, transfers are edges.  Features come from a pandas pipeline (amount stats,
velocity, device sharing), rings are seeded from connected components of the shared-device graph
(networkx), and a two-layer mean-aggregation GNN (plain torch, no torch_geometric) scores accounts.
Configs are dataclasses; the trainer returns tuples and metric dicts that the save functions pack.
"""
import dataclasses
import datetime as dt
import os
from collections import Counter, defaultdict, namedtuple
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
from sklearn.preprocessing import LabelEncoder, StandardScaler

SplitSizes = namedtuple("SplitSizes", ["train", "val", "test"])


@dataclass
class GraphConfig:
    n_accounts: int = 120
    n_transfers: int = 600
    ring_size: int = 6
    n_rings: int = 3
    seed: int = 7


@dataclass
class TrainConfig:
    hidden: int = 32
    lr: float = 5e-3
    epochs: int = 3
    weight_decay: float = 1e-4
    dropout: float = 0.2
    feature_cols: list = field(default_factory=lambda: ["amt_mean", "amt_max", "n_out", "n_in", "n_devices"])


# ---------------------------------------------------------------- data

def simulate_transactions(cfg: GraphConfig):
    rng = np.random.default_rng(cfg.seed)
    src = rng.integers(0, cfg.n_accounts, cfg.n_transfers)
    dst = rng.integers(0, cfg.n_accounts, cfg.n_transfers)
    amount = rng.lognormal(3.0, 1.0, cfg.n_transfers)
    ts = pd.Timestamp("2024-03-01") + pd.to_timedelta(rng.integers(0, 30 * 24 * 3600, cfg.n_transfers), unit="s")
    channel = rng.choice(["card", "wire", "p2p"], cfg.n_transfers)
    df = pd.DataFrame({"src": src, "dst": dst, "amount": amount, "ts": ts, "channel": channel})
    labels = np.zeros(cfg.n_accounts, dtype=np.int64)
    devices = {a: f"dev{a}" for a in range(cfg.n_accounts)}
    for r in range(cfg.n_rings):
        members = rng.choice(cfg.n_accounts, cfg.ring_size, replace=False)
        labels[members] = 1
        for m in members:
            devices[int(m)] = f"ring-dev{r}"
    return df, labels, devices


def account_features(df, n_accounts):
    out = df.groupby("src")["amount"].agg(amt_mean="mean", amt_max="max", n_out="count")
    inc = df.groupby("dst")["amount"].agg(n_in="count")
    feats = pd.DataFrame(index=pd.RangeIndex(n_accounts)).join(out).join(inc).fillna(0.0)
    return feats


def device_graph(devices):
    g = nx.Graph()
    g.add_nodes_from(devices)
    by_device = defaultdict(list)
    for acct, dev in devices.items():
        by_device[dev].append(acct)
    for accts in by_device.values():
        for a, b in zip(accts, accts[1:]):
            g.add_edge(a, b)
    return g, by_device


def normalized_adjacency(df, n):
    a = sp.coo_matrix((np.ones(len(df)), (df["src"].to_numpy(), df["dst"].to_numpy())), shape=(n, n))
    a = ((a + a.T) > 0).astype(np.float32) + sp.eye(n, dtype=np.float32)
    deg = np.asarray(a.sum(1)).ravel()
    d_inv = sp.diags(1.0 / deg)
    return (d_inv @ a).tocoo()


def to_torch_sparse(m):
    idx = torch.tensor(np.vstack([m.row, m.col]), dtype=torch.long)
    return torch.sparse_coo_tensor(idx, torch.tensor(m.data, dtype=torch.float32), m.shape).coalesce()


def prepare(gcfg: GraphConfig, tcfg: TrainConfig):
    df, labels, devices = simulate_transactions(gcfg)
    feats = account_features(df, gcfg.n_accounts)
    g, by_device = device_graph(devices)
    feats["n_devices"] = [len(by_device[devices[a]]) for a in feats.index]
    scaler = StandardScaler().fit(feats[tcfg.feature_cols].to_numpy())
    x = torch.tensor(scaler.transform(feats[tcfg.feature_cols].to_numpy()), dtype=torch.float32)
    adj = normalized_adjacency(df, gcfg.n_accounts)
    return df, feats, labels, g, scaler, x, adj


# ---------------------------------------------------------------- model

class MeanAggGNN(nn.Module):
    def __init__(self, in_dim=5, hidden=32, dropout=0.2):
        super().__init__()
        self.lin1 = nn.Linear(2 * in_dim, hidden)
        self.lin2 = nn.Linear(2 * hidden, 1)
        self.dropout = dropout

    def forward(self, x, adj):
        h = F.relu(self.lin1(torch.cat([x, torch.sparse.mm(adj, x)], -1)))
        h = F.dropout(h, self.dropout, self.training)
        return self.lin2(torch.cat([h, torch.sparse.mm(adj, h)], -1)).squeeze(-1)


class RingTrainer:
    def __init__(self, gcfg=None, tcfg=None):
        self.gcfg = gcfg or GraphConfig()
        self.tcfg = tcfg or TrainConfig()
        self.df, self.feats, self.labels, self.graph, self.scaler, self.x, adj = prepare(self.gcfg, self.tcfg)
        self.adj = to_torch_sparse(adj)
        self.model = MeanAggGNN(self.x.shape[1], self.tcfg.hidden, self.tcfg.dropout)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.tcfg.lr, weight_decay=self.tcfg.weight_decay)
        n = self.gcfg.n_accounts
        perm = np.random.default_rng(0).permutation(n)
        self.idx = {"train": perm[: n // 2], "val": perm[n // 2: 3 * n // 4], "test": perm[3 * n // 4:]}
        self.y = torch.tensor(self.labels, dtype=torch.float32)
        neg, pos = (self.labels == 0).sum(), (self.labels == 1).sum()
        self.pos_weight = neg / max(pos, 1)
        self.metrics = defaultdict(list)

    def split_sizes(self):
        return SplitSizes(*(len(self.idx[k]) for k in ("train", "val", "test")))

    def run(self):
        tr = torch.as_tensor(self.idx["train"])
        pw = torch.tensor(float(self.pos_weight))
        for epoch in range(self.tcfg.epochs):
            self.model.train()
            logits = self.model(self.x, self.adj)
            loss = F.binary_cross_entropy_with_logits(logits[tr], self.y[tr], pos_weight=pw)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.metrics["loss"].append(loss.item())
            for name, value in self.score("val").items():
                self.metrics[name].append(value)
        return self.metrics

    @torch.no_grad()
    def score(self, split):
        self.model.eval()
        idx = self.idx[split]
        p = torch.sigmoid(self.model(self.x, self.adj))[idx].numpy()
        y = self.labels[idx]
        if y.min() == y.max():
            y = y.copy()
            y[0] = 1 - y[0]
        return {"auc": roc_auc_score(y, p), "ap": average_precision_score(y, p)}

    @torch.no_grad()
    def pick_threshold(self):
        idx = self.idx["val"]
        p = torch.sigmoid(self.model(self.x, self.adj))[idx].numpy()
        y = self.labels[idx].copy()
        y[0] = 1
        prec, rec, thr = precision_recall_curve(y, p)
        f1 = 2 * prec * rec / np.clip(prec + rec, 1e-9, None)
        best = int(np.argmax(f1[:-1]))
        return thr[best], f1[best]


FACTORIES = {
    "RingTrainer": lambda: RingTrainer(GraphConfig(n_accounts=60, n_transfers=200), TrainConfig(epochs=1)),
}


# ---------------------------------------------------------------- checkpoints

def save_gnn_checkpoint(tmpdir):
    gcfg, tcfg = GraphConfig(), TrainConfig()
    trainer = RingTrainer(gcfg, tcfg)
    history = trainer.run()
    threshold, best_f1 = trainer.pick_threshold()
    ckpt = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.opt.state_dict(),
        "graph_config": dataclasses.asdict(gcfg),
        "train_config": tcfg,  # truth: weights_only
        "history": history,  # truth: weights_only
        "history_plain": dict(history),
        "threshold": threshold,  # truth: weights_only
        "best_f1": float(best_f1),
        "pos_weight": trainer.pos_weight,  # truth: weights_only
        "split": trainer.split_sizes(),  # truth: weights_only
        "split_dict": trainer.split_sizes()._asdict(),
    }
    path = os.path.join(tmpdir, "ring_gnn.pt")
    torch.save(ckpt, path)
    return path


def save_preprocessing(tmpdir):
    """Everything the scoring service needs to rebuild features for new accounts."""
    gcfg, tcfg = GraphConfig(seed=11), TrainConfig()
    df, feats, labels, g, scaler, x, adj = prepare(gcfg, tcfg)
    channel_enc = LabelEncoder().fit(df["channel"])
    state = {}
    state["scaler_mean"] = torch.tensor(scaler.mean_, dtype=torch.float32)
    state["scaler_scale"] = scaler.scale_.tolist()
    state["n_features"] = scaler.n_features_in_
    state["feature_cols"] = list(tcfg.feature_cols)
    state["scaler"] = scaler  # truth: weights_only
    state["channels"] = channel_enc.classes_  # truth: weights_only
    state["channel_list"] = channel_enc.classes_.tolist()
    state["amount_p99"] = df["amount"].quantile(0.99)  # truth: weights_only
    state["amount_median"] = float(df["amount"].median())
    state["n_merchants"] = df["dst"].nunique()
    state["channel_counts"] = df["channel"].value_counts().to_dict()
    state["last_seen"] = df["ts"].max()  # truth: weights_only
    state["last_seen_iso"] = df["ts"].max().isoformat()
    state["window"] = dt.timedelta(days=30)  # truth: weights_only
    state["window_seconds"] = dt.timedelta(days=30).total_seconds()
    state["feature_means"] = {c: float(v) for c, v in feats.mean().items()}
    path = os.path.join(tmpdir, "preprocessing.pt")
    torch.save(state, path)
    return path


def ring_report(g, labels):
    comps = [c for c in nx.connected_components(g) if len(c) > 1]
    sizes = sorted((len(c) for c in comps), reverse=True)
    purity = [labels[list(c)].mean() for c in comps]
    return comps, sizes, purity


def save_ring_seeds(tmpdir):
    gcfg = GraphConfig(n_rings=4)
    df, labels, devices = simulate_transactions(gcfg)
    g, by_device = device_graph(devices)
    comps, sizes, purity = ring_report(g, labels)
    label_counts = Counter(labels)
    seeds = {
        "rings": [sorted(int(a) for a in c) for c in comps],
        "ring_sizes": sizes,
        "n_components": nx.number_connected_components(g),
        "density": nx.density(g),
        "clustering": nx.average_clustering(g),
        "purity": purity,  # truth: weights_only
        "purity_float": [float(p) for p in purity],
        "label_counts": label_counts,  # truth: weights_only
        "label_counts_py": Counter(labels.tolist()),
        "shared_devices": {d: a for d, a in by_device.items() if len(a) > 1},
        "device_index": {d: list(a) for d, a in by_device.items()},
        "graph": g,  # truth: weights_only
        "edge_list": [tuple(e) for e in g.edges()],
    }
    path = os.path.join(tmpdir, "ring_seeds.pt")
    torch.save(seeds, path)
    return path


def save_adjacency(tmpdir):
    gcfg = GraphConfig()
    df, labels, _ = simulate_transactions(gcfg)
    adj = normalized_adjacency(df, gcfg.n_accounts)
    deg = np.asarray(adj.getnnz(axis=1))
    ckpt = {"adj_torch": to_torch_sparse(adj), "labels": torch.from_numpy(labels)}
    ckpt.update(
        adj_scipy=adj,  # truth: weights_only
        max_degree=int(deg.max()),
        mean_degree=float(deg.mean()),
        isolated=int((deg == 1).sum()),
        nnz=adj.nnz,
        shape=tuple(adj.shape),
    )
    path = os.path.join(tmpdir, "adjacency.pt")
    torch.save(ckpt, path)
    return path


def save_eval_only(tmpdir):
    trainer = RingTrainer(GraphConfig(seed=3), TrainConfig(epochs=2))
    trainer.run()
    results = {}
    for split in ("val", "test"):
        s = trainer.score(split)
        results[split] = {k: round(v, 4) for k, v in s.items()}
    out = {
        "model": trainer.model.state_dict(),
        "results": results,
        "created": dt.datetime.now().strftime("%Y%m%d-%H%M%S"),
        "epochs_run": len(trainer.metrics["loss"]),
        "final_loss": trainer.metrics["loss"][-1],
        "x_stats": {"mean": trainer.x.mean(0), "std": trainer.x.std(0)},
        "val_index": torch.as_tensor(trainer.idx["val"]),
        "test_index": trainer.idx["test"].tolist(),
    }
    path = os.path.join(tmpdir, "eval.pt")
    torch.save(out, path)
    return path
