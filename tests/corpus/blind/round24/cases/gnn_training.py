"""Graph neural networks in plain torch: GCN node classification and GraphSAGE-style link
prediction with negative sampling, on a small synthetic two-community graph.

Mirrors the usual `train.py` of a GNN paper repo: build Â = D^-1/2 (A + I) D^-1/2 once, full-batch
training with early stopping on validation accuracy, best.pt with the run's bookkeeping.
"""
import argparse
import dataclasses
import datetime
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import List

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score
from torch import nn


@dataclasses.dataclass
class GraphSplit:
    train_idx: torch.Tensor
    val_idx: torch.Tensor
    test_idx: torch.Tensor


def make_graph(n=40, feat_dim=8, p_in=0.3, p_out=0.02, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    same = labels[:, None] == labels[None, :]
    prob = torch.where(same, torch.tensor(p_in), torch.tensor(p_out))
    adj = (torch.rand(n, n, generator=g) < prob).float().triu(1)
    adj = adj + adj.T
    x = torch.randn(n, feat_dim, generator=g) + labels[:, None].float()
    edge_index = adj.nonzero().T
    return x, edge_index, labels


def gcn_norm(edge_index, num_nodes):
    loops = torch.arange(num_nodes).repeat(2, 1)
    ei = torch.cat([edge_index, loops], dim=1)
    deg = torch.zeros(num_nodes).scatter_add_(0, ei[0], torch.ones(ei.shape[1]))
    w = deg[ei[0]].pow(-0.5) * deg[ei[1]].pow(-0.5)
    return torch.sparse_coo_tensor(ei, w, (num_nodes, num_nodes)).coalesce()


def split_nodes(n, seed=0, val_frac=0.2, test_frac=0.2):
    perm = np.random.default_rng(seed).permutation(n)
    n_val, n_test = int(n * val_frac), int(n * test_frac)
    return GraphSplit(
        train_idx=torch.from_numpy(perm[n_val + n_test:]),
        val_idx=torch.from_numpy(perm[:n_val]),
        test_idx=torch.from_numpy(perm[n_val:n_val + n_test]),
    )


class GCNLayer(nn.Module):
    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.lin = nn.Linear(in_dim, out_dim)

    def forward(self, x, a_hat):
        return torch.sparse.mm(a_hat, self.lin(x))


class GCN(nn.Module):
    def __init__(self, in_dim, hidden, num_classes, dropout=0.5):
        super().__init__()
        self.conv1 = GCNLayer(in_dim, hidden)
        self.conv2 = GCNLayer(hidden, num_classes)
        self.dropout = dropout

    def forward(self, x, a_hat):
        h = F.dropout(F.relu(self.conv1(x, a_hat)), self.dropout, self.training)
        return self.conv2(h, a_hat)


class NodeTrainer:
    def __init__(self, args):
        self.args = args
        self.x, self.edge_index, self.y = make_graph(seed=args.seed)
        self.a_hat = gcn_norm(self.edge_index, self.x.shape[0])
        self.split = split_nodes(self.x.shape[0], seed=args.seed)
        self.model = GCN(self.x.shape[1], args.hidden, int(self.y.max()) + 1, args.dropout)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.lr, weight_decay=5e-4)
        self.val_curve: List[float] = []
        self.best_state = None
        self.best_epoch = -1
        self.patience_left = args.patience
        self.started = time.time()

    def step(self):
        self.model.train()
        out = self.model(self.x, self.a_hat)
        loss = F.cross_entropy(out[self.split.train_idx], self.y[self.split.train_idx])
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()

    @torch.no_grad()
    def evaluate(self, idx):
        self.model.eval()
        pred = self.model(self.x, self.a_hat).argmax(-1)
        y_true, y_pred = self.y[idx].numpy(), pred[idx].numpy()
        return {
            "acc": (y_true == y_pred).mean(),
            "macro_f1": f1_score(y_true, y_pred, average="macro"),
        }

    def fit(self, epochs):
        for epoch in range(epochs):
            self.step()
            val = self.evaluate(self.split.val_idx)
            self.val_curve.append(float(val["acc"]))
            if self.best_state is None or val["acc"] >= max(self.val_curve):
                self.best_state = OrderedDict((k, v.clone()) for k, v in self.model.state_dict().items())
                self.patience_left = self.args.patience
            else:
                self.patience_left -= 1
            if self.patience_left == 0:
                break
        self.best_epoch = np.argmax(self.val_curve)
        return self

    def state_dict(self):
        return {
            "model": self.best_state,
            "optimizer": self.optimizer.state_dict(),
            "val_curve": list(self.val_curve),
            "patience_left": self.patience_left,
            "elapsed": time.time() - self.started,
        }


def parse_args(argv=()):
    p = argparse.ArgumentParser("gcn")
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-dir", default="checkpoints/gcn")
    return p.parse_args(list(argv))


def save_gcn_best(tmpdir):
    torch.manual_seed(0)
    args = parse_args(["--save-dir", tmpdir])
    trainer = NodeTrainer(args).fit(args.epochs)
    test = trainer.evaluate(trainer.split.test_idx)
    ckpt = trainer.state_dict()
    ckpt["args"] = args  # truth: weights_only
    ckpt["best_epoch"] = trainer.best_epoch  # truth: weights_only
    ckpt["test_acc"] = test["acc"]  # truth: weights_only
    ckpt["test_macro_f1"] = test["macro_f1"]
    ckpt["split"] = trainer.split  # truth: weights_only
    path = os.path.join(args.save_dir, "best.pt")
    torch.save(ckpt, path)
    return path


def save_gcn_last(tmpdir):
    torch.manual_seed(0)
    args = parse_args()
    trainer = NodeTrainer(args).fit(2)
    ckpt = trainer.state_dict()
    ckpt.update(
        args=vars(args),
        best_epoch=int(trainer.best_epoch),
        split=dataclasses.asdict(trainer.split),
        a_hat=trainer.a_hat,
        class_counts=torch.bincount(trainer.y).tolist(),
        device=torch.device("cpu"),
        dtype=trainer.x.dtype,
    )
    path = os.path.join(tmpdir, "last.pt")
    torch.save(ckpt, path)
    return path


def save_graph_stats(tmpdir):
    x, edge_index, labels = make_graph()
    deg = np.bincount(edge_index[0].numpy(), minlength=x.shape[0])
    stats = {"num_nodes": x.shape[0], "num_edges": edge_index.shape[1] // 2}
    for name, fn in (("mean", np.mean), ("max", np.max)):
        stats[f"deg_{name}"] = float(fn(deg))
    stats["isolated"] = int((deg == 0).sum())
    stats["label_hist"] = np.bincount(labels.numpy())  # truth: weights_only
    stats["feature_mean"] = x.mean(0)
    stats["homophily"] = (labels[edge_index[0]] == labels[edge_index[1]]).float().mean().item()
    stats["computed_on"] = datetime.date.today()  # truth: weights_only
    path = os.path.join(tmpdir, "graph_stats.pt")
    torch.save(stats, path)
    return path


class SAGELinkPredictor(nn.Module):
    def __init__(self, in_dim, hidden=16):
        super().__init__()
        self.self_lin = nn.Linear(in_dim, hidden)
        self.neigh_lin = nn.Linear(in_dim, hidden)

    def encode(self, x, edge_index):
        src, dst = edge_index
        agg = torch.zeros_like(x).index_add_(0, dst, x[src])
        deg = torch.bincount(dst, minlength=x.shape[0]).clamp(min=1)[:, None]
        return F.relu(self.self_lin(x) + self.neigh_lin(agg / deg))

    def decode(self, z, pairs):
        return (z[pairs[0]] * z[pairs[1]]).sum(-1)


def negative_sampling(edge_index, num_nodes, num_neg, generator):
    existing = set(map(tuple, edge_index.T.tolist()))
    neg = []
    while len(neg) < num_neg:
        i, j = torch.randint(0, num_nodes, (2,), generator=generator).tolist()
        if i != j and (i, j) not in existing:
            neg.append((i, j))
    return torch.tensor(neg).T


def train_link_predictor(epochs=3, seed=0):
    x, edge_index, _ = make_graph(seed=seed)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(edge_index.shape[1], generator=gen)
    n_val = edge_index.shape[1] // 10
    val_pos, train_pos = edge_index[:, perm[:n_val]], edge_index[:, perm[n_val:]]
    model = SAGELinkPredictor(x.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(epochs):
        z = model.encode(x, train_pos)
        neg = negative_sampling(train_pos, x.shape[0], train_pos.shape[1], gen)
        pos_out, neg_out = model.decode(z, train_pos), model.decode(z, neg)
        loss = F.binary_cross_entropy_with_logits(
            torch.cat([pos_out, neg_out]), torch.cat([torch.ones_like(pos_out), torch.zeros_like(neg_out)]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        z = model.encode(x, train_pos)
        val_neg = negative_sampling(edge_index, x.shape[0], val_pos.shape[1], gen)
        scores = torch.cat([model.decode(z, val_pos), model.decode(z, val_neg)]).sigmoid().numpy()
    y = np.r_[np.ones(val_pos.shape[1]), np.zeros(val_neg.shape[1])]
    return model, opt, gen, {"auc": roc_auc_score(y, scores), "ap": average_precision_score(y, scores),
                             "pos_score_mean": scores[: val_pos.shape[1]].mean(),
                             "val_pos": val_pos, "val_neg": val_neg}


def save_link_predictor(tmpdir):
    torch.manual_seed(0)
    model, opt, gen, val = train_link_predictor()
    ckpt = OrderedDict()
    ckpt["model"] = model.state_dict()
    ckpt["optimizer"] = opt.state_dict()
    ckpt["val_edges"] = {"pos": val["val_pos"], "neg": val["val_neg"]}
    ckpt["val_auc"] = val["auc"]
    ckpt["val_ap"] = val["ap"]
    ckpt["pos_score_mean"] = val["pos_score_mean"]  # truth: weights_only
    ckpt["sampler_generator"] = gen  # truth: weights_only
    ckpt["sampler_state"] = gen.get_state()
    path = os.path.join(tmpdir, "link_pred.pt")
    torch.save(ckpt, path)
    return path


def save_link_predictor_for_export(tmpdir):
    torch.manual_seed(0)
    model, _, gen, val = train_link_predictor(epochs=1)
    t0 = time.perf_counter()
    export = {
        "encoder": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "metrics": {k: round(float(val[k]), 4) for k in ("auc", "ap", "pos_score_mean")},
        "sampler_state": gen.get_state(),
        "export_seconds": time.perf_counter() - t0,
        "num_val_edges": int(val["val_pos"].shape[1]),
        "save_dir": os.fspath(Path(tmpdir)),
    }
    path = os.path.join(tmpdir, "export.pt")
    torch.save(export, path)
    return path


def save_training_timer(tmpdir):
    started = datetime.datetime(2026, 1, 1, 12, 0, 0)
    finished = started + datetime.timedelta(minutes=3, seconds=7)
    record = dict(
        wall_time=finished - started,  # truth: weights_only
        wall_seconds=(finished - started).total_seconds(),
        finished=finished.isoformat(),
    )
    path = os.path.join(tmpdir, "timer.pt")
    torch.save(record, path)
    return path


FACTORIES = {
    "GraphSplit": lambda: split_nodes(10),
    "GCNLayer": lambda: GCNLayer(4, 2),
    "GCN": lambda: GCN(4, 8, 2),
    "NodeTrainer": lambda: NodeTrainer(parse_args()),
    "SAGELinkPredictor": lambda: SAGELinkPredictor(4),
}
