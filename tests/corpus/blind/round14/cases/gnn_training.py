"""Full-batch GCN node classification (Cora-style), trimmed from a train_gcn.py script."""
import argparse
import os
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import f1_score


def build_parser():
    p = argparse.ArgumentParser(description="GCN node classification")
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--self-loops", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    return p


def random_graph(n=12, f=8, c=3, seed=0):
    rng = np.random.default_rng(seed)
    adj = (rng.random((n, n)) < 0.25).astype(np.float32)
    adj = np.triu(adj, 1)
    adj = adj + adj.T
    x = rng.normal(size=(n, f)).astype(np.float32)
    y = rng.integers(0, c, size=n)
    return adj, x, y


def normalize_adj(adj, self_loops=True):
    if self_loops:
        adj = adj + np.eye(adj.shape[0], dtype=adj.dtype)
    deg = adj.sum(axis=1)
    d_inv_sqrt = np.power(np.maximum(deg, 1.0), -0.5)
    return d_inv_sqrt[:, None] * adj * d_inv_sqrt[None, :], deg


def feature_stats(x):
    mu = x.mean(axis=0)
    sigma = x.std(axis=0) + 1e-6
    return mu, sigma


def split_masks(n, seed=0, train_frac=0.5, val_frac=0.25):
    perm = np.random.RandomState(seed).permutation(n)
    n_tr, n_va = int(train_frac * n), int(val_frac * n)
    train_mask = np.zeros(n, dtype=bool)
    val_mask = np.zeros(n, dtype=bool)
    test_mask = np.zeros(n, dtype=bool)
    train_mask[perm[:n_tr]] = True
    val_mask[perm[n_tr:n_tr + n_va]] = True
    test_mask[perm[n_tr + n_va:]] = True
    return train_mask, val_mask, test_mask


class GCNLayer(nn.Module):
    def __init__(self, d_in=8, d_out=16):
        super().__init__()
        self.lin = nn.Linear(d_in, d_out)

    def forward(self, a_hat, h):
        return a_hat @ self.lin(h)


class GCN(nn.Module):
    def __init__(self, d_in=8, hidden=16, n_classes=3, dropout=0.5):
        super().__init__()
        self.conv1 = GCNLayer(d_in, hidden)
        self.conv2 = GCNLayer(hidden, n_classes)
        self.dropout = dropout

    def forward(self, a_hat, x):
        h = F.relu(self.conv1(a_hat, x))
        h = F.dropout(h, self.dropout, self.training)
        return self.conv2(a_hat, h)


class EarlyStopping:
    def __init__(self, patience=3, mode="max"):
        self.patience = patience
        self.mode = mode
        self.best_score = None
        self.best_epoch = -1
        self.counter = 0

    def step(self, score, epoch):
        better = self.best_score is None or (score > self.best_score if self.mode == "max" else score < self.best_score)
        if better:
            self.best_score = score
            self.best_epoch = epoch
            self.counter = 0
        else:
            self.counter += 1
        return self.counter >= self.patience


def _accuracy(logits, y, mask):
    pred = logits.argmax(1).numpy()
    return (pred[mask] == y[mask]).mean()


class NodeTrainer:
    def __init__(self, args=None):
        self.args = args if args is not None else build_parser().parse_args([])
        torch.manual_seed(self.args.seed)
        adj, x, y = random_graph(seed=self.args.seed)
        a_hat, self.degree = normalize_adj(adj, self.args.self_loops)
        self.mu, self.sigma = feature_stats(x)
        self.a_hat = torch.from_numpy(a_hat.astype(np.float32))
        self.x = torch.from_numpy((x - self.mu) / self.sigma)
        self.y = y
        self.masks = split_masks(len(y), self.args.seed)
        self.model = GCN(x.shape[1], self.args.hidden, int(y.max()) + 1)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.args.lr,
                                          weight_decay=self.args.weight_decay)
        self.stopper = EarlyStopping(self.args.patience)
        self.history = []
        self.epoch = 0

    def train_epoch(self):
        self.model.train()
        self.optimizer.zero_grad()
        out = self.model(self.a_hat, self.x)
        tr = torch.from_numpy(self.masks[0])
        loss = F.cross_entropy(out[tr], torch.as_tensor(self.y)[tr])
        loss.backward()
        self.optimizer.step()
        return loss.item()

    @torch.no_grad()
    def evaluate(self):
        self.model.eval()
        out = self.model(self.a_hat, self.x)
        return _accuracy(out, self.y, self.masks[1]), _accuracy(out, self.y, self.masks[2])

    def fit(self):
        for epoch in range(self.args.epochs):
            self.epoch = epoch
            loss = self.train_epoch()
            val_acc, test_acc = self.evaluate()
            self.history.append({"epoch": epoch, "loss": loss, "val_acc": val_acc, "test_acc": test_acc})
            if self.stopper.step(val_acc, epoch):
                break
        return self

    def save_checkpoint(self, path, extra=None):
        state = {
            "epoch": self.epoch,
            "model_state_dict": self.model.state_dict(),
            "optimizer_state_dict": self.optimizer.state_dict(),
        }
        if extra:
            state.update(extra)
        torch.save(state, path)
        return path


FACTORIES = {"NodeTrainer": lambda: NodeTrainer(build_parser().parse_args(["--epochs", "2"]))}


def save_gcn_best(tmpdir):
    args = build_parser().parse_args(["--epochs", "5", "--self-loops"])
    trainer = NodeTrainer(args).fit()
    path = os.path.join(tmpdir, "gcn_best.pt")
    torch.save({
        "epoch": trainer.epoch,
        "best_epoch": trainer.stopper.best_epoch,
        "best_val_acc": trainer.stopper.best_score,  # truth: weights_only
        "model_state_dict": trainer.model.state_dict(),
        "optimizer_state_dict": trainer.optimizer.state_dict(),
        "args": args,  # truth: weights_only
        "num_nodes": trainer.a_hat.shape[0],
    }, path)
    return path


def save_gcn_with_graph_stats(tmpdir):
    trainer = NodeTrainer(build_parser().parse_args(["--epochs", "2"])).fit()
    train_mask, val_mask, test_mask = trainer.masks
    ckpt = {"model": trainer.model.state_dict(), "hparams": vars(trainer.args)}
    ckpt["degree"] = trainer.degree  # truth: weights_only
    ckpt["degree_t"] = torch.from_numpy(trainer.degree)
    ckpt["max_degree"] = int(trainer.degree.max())
    ckpt["mean_degree"] = trainer.degree.mean()  # truth: weights_only
    ckpt["splits"] = {
        "train": torch.as_tensor(train_mask),
        "val": val_mask,  # truth: weights_only
        "test": test_mask.nonzero()[0].tolist(),
    }
    ckpt["norm"] = dict(
        mean=torch.tensor(trainer.mu),
        std=trainer.sigma,  # truth: weights_only
    )
    path = os.path.join(tmpdir, "gcn_graph.pt")
    torch.save(ckpt, path)
    return path


def save_gcn_history(tmpdir):
    trainer = NodeTrainer(build_parser().parse_args(["--epochs", "4"])).fit()
    clean_history = [{k: float(v) for k, v in row.items()} for row in trainer.history]
    val_curve = [row["val_acc"] for row in trainer.history]
    path = os.path.join(tmpdir, "gcn_history.pt")
    torch.save({
        "model": trainer.model.state_dict(),
        "history": clean_history,
        "raw_history": trainer.history,  # truth: weights_only
        "best_val": max(val_curve),  # truth: weights_only
        "best_epoch": int(np.argmax(val_curve)),
        "argmax_epoch": np.argmax(val_curve).item(),
        "median_val": statistics.median(float(v) for v in val_curve),
        "val_curve": torch.tensor(val_curve),
    }, path)
    return path


def save_gcn_final_eval(tmpdir):
    trainer = NodeTrainer(build_parser().parse_args(["--epochs", "3"])).fit()
    trainer.model.eval()
    with torch.no_grad():
        pred = trainer.model(trainer.a_hat, trainer.x).argmax(1).numpy()
    test = trainer.masks[2]
    started = time.time()
    extra = {
        "test_macro_f1": f1_score(trainer.y[test], pred[test], average="macro"),
        "test_acc": float((pred[test] == trainer.y[test]).mean()),
        "n_test": int(test.sum()),
        "eval_seconds": time.time() - started,
        "class_counts": np.bincount(trainer.y).tolist(),
        "early_stop_counter": trainer.stopper.counter,
    }
    return trainer.save_checkpoint(os.path.join(tmpdir, "gcn_final.pt"), extra=extra)


def save_gcn_whole_model(tmpdir):
    trainer = NodeTrainer(build_parser().parse_args(["--epochs", "1"])).fit()
    path = os.path.join(tmpdir, "gcn_model.pt")
    torch.save(trainer.model, path)  # truth: weights_only
    return path
