"""Matrix factorisation (BPR in torch, ALS warm start in numpy) and a GRU4Rec-style session model.

Interactions come in as a pandas frame (user_id, item_id, session_id, ts), items are re-indexed,
sessions are cut into prefixes, and each experiment writes one checkpoint with torch.save.
"""
import argparse
import collections
import math
import os
import random
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.metrics import mean_squared_error, ndcg_score
from torch import nn

DEFAULTS = OmegaConf.create({
    "data": {"min_session_len": 2, "max_len": 8},
    "model": {"factors": 8, "hidden": 16, "dropout": 0.1},
    "optim": {"lr": 0.01, "weight_decay": 1e-5, "epochs": 2},
})

SessionBatch = collections.namedtuple("SessionBatch", ["inputs", "targets", "lengths"])


def load_interactions(n_users=30, n_items=40, n=300, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "user_id": rng.integers(0, n_users, n),
        "item_id": rng.integers(100, 100 + n_items, n),
        "session_id": rng.integers(0, 60, n),
        "ts": np.arange(n, dtype="float64"),
        "rating": rng.integers(1, 6, n).astype("float32"),
    })
    return df


def reindex(df):
    item_codes, item_uniques = pd.factorize(df["item_id"])
    user_codes, _ = pd.factorize(df["user_id"])
    df = df.assign(item_idx=item_codes, user_idx=user_codes)
    return df, item_uniques


class BPRMF(nn.Module):
    def __init__(self, n_users, n_items, factors=8):
        super().__init__()
        self.user = nn.Embedding(n_users, factors)
        self.item = nn.Embedding(n_items, factors)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)

    def forward(self, u, i):
        return (self.user(u) * self.item(i)).sum(-1)


def bpr_epoch(model, opt, users, pos, n_items, batch_size=64):
    total = []
    for start in range(0, len(users), batch_size):
        u = users[start:start + batch_size]
        p = pos[start:start + batch_size]
        neg = torch.randint(0, n_items, p.shape)
        loss = -F.logsigmoid(model(u, p) - model(u, neg)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        total.append(loss.detach())
    return torch.stack(total).mean()


def als_warm_start(R, factors, reg=0.1, iters=2, seed=0):
    rng = np.random.RandomState(seed)
    U = rng.normal(scale=0.1, size=(R.shape[0], factors))
    V = rng.normal(scale=0.1, size=(R.shape[1], factors))
    eye = reg * np.eye(factors)
    for _ in range(iters):
        U = R @ V @ np.linalg.inv(V.T @ V + eye)
        V = R.T @ U @ np.linalg.inv(U.T @ U + eye)
    rmse = math.sqrt(mean_squared_error(R.ravel(), (U @ V.T).ravel()))
    return U, V, rmse, rng


def save_bpr_checkpoint(tmpdir):
    torch.manual_seed(0)
    cfg = DEFAULTS
    df, item_uniques = reindex(load_interactions())
    n_users, n_items = df.user_idx.nunique(), df.item_idx.nunique()
    model = BPRMF(n_users, n_items, cfg.model.factors)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    users = torch.as_tensor(df.user_idx.values)
    pos = torch.as_tensor(df.item_idx.values)
    losses = [bpr_epoch(model, opt, users, pos, n_items).item() for _ in range(cfg.optim.epochs)]
    ckpt = {
        "state_dict": model.state_dict(),
        "optimizer": opt.state_dict(),
        "n_users": n_users,
        "n_items": n_items,
        "item_ids": item_uniques,  # truth: weights_only
        "losses": losses,
        "final_loss": statistics.fmean(losses),
        "cfg": cfg,  # truth: weights_only
        "optim_cfg": OmegaConf.to_container(cfg.optim),
    }
    path = os.path.join(tmpdir, "bpr.pt")
    torch.save(ckpt, path)
    return path


def save_als_factors(tmpdir):
    df, _ = reindex(load_interactions())
    R = np.zeros((df.user_idx.max() + 1, df.item_idx.max() + 1))
    R[df.user_idx.values, df.item_idx.values] = df.rating.values
    U, V, rmse, rng = als_warm_start(R, factors=4)
    out = {}
    out["user_factors"] = torch.from_numpy(U).float()
    out["item_factors"] = torch.tensor(V, dtype=torch.float32)
    out["rmse"] = rmse
    out["rating_mean"] = df.rating.mean()  # truth: weights_only
    out["rating_hist"] = df.rating.value_counts().sort_index().to_dict()
    out["rng"] = rng.get_state()  # truth: weights_only
    out["sparsity"] = 1.0 - np.count_nonzero(R) / R.size  # truth: weights_only
    path = Path(tmpdir) / "als.pt"
    torch.save(out, path)
    return str(path)


class GRU4Rec(nn.Module):
    def __init__(self, n_items, hidden=16, dropout=0.1):
        super().__init__()
        self.emb = nn.Embedding(n_items + 1, hidden, padding_idx=0)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, n_items + 1)

    def forward(self, seqs, lengths):
        h, _ = self.gru(self.drop(self.emb(seqs)))
        last = h[torch.arange(len(seqs)), lengths - 1]
        return self.out(last)


def session_batches(df, max_len):
    seqs = df.sort_values("ts").groupby("session_id")["item_idx"].apply(list)
    inputs, targets, lengths = [], [], []
    for seq in seqs:
        seq = [i + 1 for i in seq[-(max_len + 1):]]
        if len(seq) < 2:
            continue
        x = seq[:-1]
        inputs.append(x + [0] * (max_len - len(x)))
        targets.append(seq[-1])
        lengths.append(len(x))
    return SessionBatch(torch.tensor(inputs), torch.tensor(targets), torch.tensor(lengths))


def evaluate_sessions(model, batch, k=5):
    model.eval()
    with torch.no_grad():
        scores = model(batch.inputs, batch.lengths)
    rel = F.one_hot(batch.targets, scores.shape[1]).numpy()
    ndcg = ndcg_score(rel, scores.numpy(), k=k)
    hit = (scores.topk(k).indices == batch.targets[:, None]).any(1).float().mean()
    ranks = (scores > scores.gather(1, batch.targets[:, None])).sum(1).numpy() + 1
    return {"ndcg": ndcg, "hit": hit, "mrr": np.mean(1.0 / ranks)}


class EarlyStopping:
    def __init__(self, patience=2):
        self.patience = patience
        self.best = -math.inf
        self.bad_epochs = 0
        self.history = collections.deque(maxlen=5)

    def step(self, value):
        self.history.append(value)
        if value > self.best:
            self.best = value
            self.bad_epochs = 0
            return True
        self.bad_epochs += 1
        return False


def save_session_model(tmpdir):
    torch.manual_seed(0)
    random.seed(0)
    df, item_uniques = reindex(load_interactions())
    batch = session_batches(df, DEFAULTS.data.max_len)
    model = GRU4Rec(len(item_uniques), DEFAULTS.model.hidden, DEFAULTS.model.dropout)
    opt = torch.optim.Adagrad(model.parameters(), lr=0.05)
    stopper = EarlyStopping()
    metrics = {}
    for epoch in range(2):
        model.train()
        loss = F.cross_entropy(model(batch.inputs, batch.lengths), batch.targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        metrics = evaluate_sessions(model, batch)
        stopper.step(metrics["ndcg"])
    session_lengths = batch.lengths.numpy()
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": epoch,
        "ndcg@5": metrics["ndcg"],
        "hit@5": metrics["hit"],
        "mrr@5": metrics["mrr"],  # truth: weights_only
        "early_stopping": {
            "best": stopper.best,
            "bad_epochs": stopper.bad_epochs,
            "history": stopper.history,  # truth: weights_only
        },
        "median_session_len": statistics.median(session_lengths),  # truth: weights_only
        "max_session_len": int(session_lengths.max()),
        "python_rng": random.getstate(),
        "torch_rng": torch.get_rng_state(),
    }
    path = os.path.join(tmpdir, "gru4rec.pt")
    torch.save(checkpoint, path)
    return path


def save_session_batch_cache(tmpdir):
    df, _ = reindex(load_interactions())
    batch = session_batches(df, max_len=4)
    path = os.path.join(tmpdir, "val_batch.pt")
    torch.save(batch, path)  # truth: weights_only
    return path


def save_popularity_baseline(tmpdir):
    df, item_uniques = reindex(load_interactions())
    counts = collections.Counter(df.item_idx.tolist())
    top = [item for item, _ in counts.most_common(10)]
    per_user = {}
    for user, group in df.groupby("user_idx"):
        per_user[int(user)] = group.item_idx.value_counts().head(3).index.tolist()
    baseline = {
        "counts": counts,
        "top10": top,
        "top10_raw_ids": [int(item_uniques[i]) for i in top],
        "per_user": per_user,
        "n_sessions": int(df.session_id.nunique()),
        "coverage": len(counts) / len(item_uniques),
    }
    path = os.path.join(tmpdir, "popularity.pt")
    torch.save(baseline, path)
    return path


def save_from_cli(tmpdir):
    parser = argparse.ArgumentParser()
    parser.add_argument("--factors", type=int, default=8)
    parser.add_argument("--reg", type=float, default=0.1)
    parser.add_argument("--out", type=Path, default=Path(tmpdir))
    args = parser.parse_args([])
    cfg = OmegaConf.merge(DEFAULTS, {"model": {"factors": args.factors}})
    model = BPRMF(10, 12, cfg.model.factors)
    hparams = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    ckpt = dict(
        state_dict=model.state_dict(),
        hparams=hparams,
        model_cfg=cfg.model,  # truth: weights_only
        reg=args.reg,
        out_dir=args.out,  # truth: weights_only
        out_name=args.out.name,
    )
    path = args.out / "cli.pt"
    torch.save(ckpt, path)
    return str(path)


FACTORIES = {
    "BPRMF": lambda: BPRMF(5, 6),
    "GRU4Rec": lambda: GRU4Rec(10),
}
