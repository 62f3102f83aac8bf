"""CTR model with hashed categorical features: vocab sizes from pandas, AUC/logloss, calibration."""
import datetime
import hashlib
import os
from collections import OrderedDict, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import log_loss, roc_auc_score
from torch import nn

CATEGORICAL = ["user_id", "item_id", "site"]
NUM_BUCKETS = 64


def hash_bucket(value, buckets=NUM_BUCKETS):
    digest = hashlib.md5(str(value).encode()).hexdigest()
    return int(digest, 16) % buckets


def make_frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "user_id": rng.integers(0, 50, n),
        "item_id": rng.integers(0, 30, n),
        "site": rng.choice(["a.com", "b.com", "c.org"], n),
        "price": rng.gamma(2.0, 3.0, n),
    })
    df["click"] = (rng.random(n) < 0.3).astype(int)
    return df


class DeepFM(nn.Module):
    def __init__(self, n_fields=3, buckets=NUM_BUCKETS, dim=4):
        super().__init__()
        self.emb = nn.Embedding(n_fields * buckets, dim)
        self.linear = nn.Embedding(n_fields * buckets, 1)
        self.mlp = nn.Sequential(nn.Linear(n_fields * dim + 1, 8), nn.ReLU(), nn.Linear(8, 1))
        self.offsets = torch.arange(n_fields) * buckets

    def forward(self, ids, dense):
        ids = ids + self.offsets
        e = self.emb(ids)
        fm = 0.5 * (e.sum(1) ** 2 - (e ** 2).sum(1)).sum(1, keepdim=True)
        deep = self.mlp(torch.cat([e.flatten(1), dense], 1))
        return (self.linear(ids).sum(1) + fm + deep).squeeze(1)


def encode(df):
    ids = np.stack([df[c].map(hash_bucket).to_numpy() for c in CATEGORICAL], axis=1)
    dense = np.log1p(df[["price"]].to_numpy(dtype=np.float32))
    return torch.from_numpy(ids).long(), torch.from_numpy(dense), torch.tensor(df["click"].to_numpy(), dtype=torch.float32)


def calibration(y_true, p, bins=5):
    """Expected calibration error and the mean predicted / observed CTR ratio."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(p[m].mean() - y_true[m].mean())
    return ece, p.mean() / max(y_true.mean(), 1e-6)


class CTRTrainer:
    def __init__(self, df, lr=0.01, out_dir="runs/ctr"):
        self.df = df
        self.model = DeepFM()
        self.opt = torch.optim.Adagrad(self.model.parameters(), lr=lr)
        self.out_dir = Path(out_dir)
        self.history = defaultdict(list)
        self.vocab_sizes = {}
        self.best_auc = 0.0
        self.bad_epochs = 0

    def fit_vocab(self):
        for col in CATEGORICAL:
            self.vocab_sizes[col] = self.df[col].nunique()
        self.cardinality = self.df[CATEGORICAL].nunique()
        self.pos_rate = self.df["click"].mean()

    def run_epoch(self):
        ids, dense, y = encode(self.df)
        logits = self.model(ids, dense)
        loss = F.binary_cross_entropy_with_logits(logits, y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        p = torch.sigmoid(logits).detach().numpy()
        yt = y.numpy()
        auc = roc_auc_score(yt, p)
        ll = log_loss(yt, p)
        ece, ratio = calibration(yt, p)
        self.history["auc"].append(auc)
        self.history["logloss"].append(ll)
        self.ece, self.calib_ratio = ece, ratio
        if auc > self.best_auc:
            self.best_auc = auc
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        return loss.item()


NOT_BUILT = {"CTRTrainer": "plain trainer, needs a DataFrame; only its state reaches checkpoints"}


def _run(epochs=2, seed=0):
    trainer = CTRTrainer(make_frame(seed=seed))
    trainer.fit_vocab()
    for _ in range(epochs):
        trainer.run_epoch()
    return trainer


def save_ctr_checkpoint(tmpdir):
    trainer = _run()
    ckpt = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.opt.state_dict(),
        "vocab_sizes": trainer.vocab_sizes,
        "num_buckets": NUM_BUCKETS,
        "best_auc": trainer.best_auc,
        "pos_rate": trainer.pos_rate,  # truth: weights_only
        "history": trainer.history,  # truth: weights_only
        "out_dir": trainer.out_dir,  # truth: weights_only
    }
    path = os.path.join(tmpdir, "ctr.pt")
    torch.save(ckpt, path)
    return path


def save_ctr_metrics(tmpdir):
    trainer = _run(seed=1)
    metrics = {}
    metrics["auc"] = trainer.history["auc"][-1]
    metrics["logloss"] = trainer.history["logloss"][-1]
    metrics["ece"] = trainer.ece  # truth: weights_only
    metrics["calibration_ratio"] = float(trainer.calib_ratio)
    metrics["cardinality"] = trainer.cardinality  # truth: weights_only
    metrics["cardinality_dict"] = trainer.cardinality.to_dict()
    metrics["bad_epochs"] = trainer.bad_epochs
    ckpt = {"model": trainer.model.state_dict(), "metrics": metrics}
    path = os.path.join(tmpdir, "metrics.pt")
    torch.save(ckpt, path)
    return path


def save_ctr_export(tmpdir):
    trainer = _run(seed=2)
    vocab = OrderedDict((c, int(n)) for c, n in trainer.cardinality.items())
    export = {
        "weights": trainer.model.state_dict(),
        "vocab": vocab,
        "history": {k: list(v) for k, v in trainer.history.items()},
        "exported_at": datetime.datetime.now().isoformat(),
        "out_dir": str(trainer.out_dir / "export"),
        "pos_rate": trainer.pos_rate.item(),
    }
    path = os.path.join(tmpdir, "export.pt")
    torch.save(export, path)
    return path


def save_ctr_snapshot(tmpdir):
    trainer = _run(seed=3)
    ids, dense, y = encode(trainer.df.head(8))
    with torch.no_grad():
        scores = torch.sigmoid(trainer.model(ids, dense)).numpy()
    snapshot = dict(
        sample_scores=scores,  # truth: weights_only
        sample_labels=y,
        top_item=trainer.df["item_id"].value_counts().idxmax(),  # truth: weights_only
        site_ctr=trainer.df.groupby("site")["click"].mean().round(4).tolist(),
        created=datetime.datetime.now(),  # truth: weights_only
        price_quantiles=np.quantile(trainer.df["price"], [0.5, 0.9]).tolist(),
    )
    path = os.path.join(tmpdir, "snapshot.pt")
    torch.save(snapshot, path)
    return path


def save_whole_model(tmpdir):
    trainer = _run(seed=4)
    path = os.path.join(tmpdir, "deepfm_full.pt")
    torch.save(trainer.model, path)  # truth: weights_only
    return path
