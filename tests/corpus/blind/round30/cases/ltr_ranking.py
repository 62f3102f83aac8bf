"""Learning to rank for product search: listwise training over query groups, NDCG / MRR by hand.

Judgments come as one row per (query, document) with graded labels 0-4. Documents of a query are
padded into a list, a small MLP scores each document, and a ListNet (softmax cross-entropy) or an
ApproxNDCG-style loss is minimised. Evaluation sorts each query's documents by score and computes
NDCG@k and reciprocal rank with numpy.
"""
import dataclasses
import enum
import math
import os
import statistics

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import label_ranking_average_precision_score, ndcg_score

FEATURES = ("bm25", "tfidf_cos", "doc_len", "pagerank", "click_prior")
MAX_LABEL = 4


class ListwiseLoss(enum.Enum):
    LISTNET = "listnet"
    APPROX_NDCG = "approx_ndcg"


@dataclasses.dataclass
class RankConfig:
    hidden: int = 16
    lr: float = 5e-3
    epochs: int = 3
    k: int = 5
    temperature: float = 1.0
    loss: ListwiseLoss = ListwiseLoss.LISTNET
    n_eval_queries: int = 4


def make_judgments(n_queries=14, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for qid in range(100, 100 + n_queries):
        n_docs = int(rng.integers(4, 10))
        feats = rng.normal(size=(n_docs, len(FEATURES)))
        rel = np.clip(np.round(1.5 + feats[:, 0] + 0.5 * feats[:, 4] + rng.normal(0, 0.5, n_docs)), 0, MAX_LABEL)
        for d in range(n_docs):
            rows.append({"qid": qid, "doc_id": f"d{qid}_{d}", **dict(zip(FEATURES, feats[d])), "label": int(rel[d])})
    return pd.DataFrame(rows)


class FeatureNormaliser:
    """Global z-score fitted on training queries; kept with the ranker for serving."""

    def __init__(self, columns=FEATURES, eps=1e-6):
        self.columns = list(columns)
        self.eps = eps
        self.mean_ = None
        self.std_ = None

    def fit(self, df):
        self.mean_ = df[self.columns].mean()
        self.std_ = df[self.columns].std(ddof=0)
        return self

    def transform(self, df):
        out = df.copy()
        out[self.columns] = (df[self.columns] - self.mean_) / (self.std_ + self.eps)
        return out

    def state_dict(self):
        return {
            "columns": self.columns,
            "eps": self.eps,
            "mean": torch.tensor(self.mean_.to_numpy(), dtype=torch.float32),
            "std": torch.tensor(self.std_.to_numpy(), dtype=torch.float32),
        }


def pad_groups(df):
    groups = df.groupby("qid", sort=True)
    sizes = groups.size()
    width = int(sizes.max())
    x = torch.zeros(len(sizes), width, len(FEATURES))
    y = torch.zeros(len(sizes), width)
    mask = torch.zeros(len(sizes), width, dtype=torch.bool)
    for i, (_, g) in enumerate(groups):
        n = len(g)
        x[i, :n] = torch.tensor(g[list(FEATURES)].to_numpy(), dtype=torch.float32)
        y[i, :n] = torch.tensor(g["label"].to_numpy(), dtype=torch.float32)
        mask[i, :n] = True
    return x, y, mask, sizes


def listnet_loss(scores, labels, mask, temperature=1.0):
    scores = scores.masked_fill(~mask, -1e4)
    target = F.softmax((labels / temperature).masked_fill(~mask, -1e4), dim=-1)
    return -(target * F.log_softmax(scores, dim=-1)).sum(-1).mean()


def approx_ndcg_loss(scores, labels, mask, temperature=1.0):
    scores = scores.masked_fill(~mask, -1e4)
    diff = (scores.unsqueeze(-1) - scores.unsqueeze(-2)) / temperature
    approx_rank = 0.5 + torch.sigmoid(-diff).sum(-1)
    gains = (2 ** labels - 1) * mask
    dcg = (gains / torch.log2(1 + approx_rank)).sum(-1)
    ideal = (torch.sort(gains, descending=True).values / torch.log2(torch.arange(2, labels.shape[1] + 2))).sum(-1)
    return -(dcg / ideal.clamp(min=1e-6)).mean()


LOSSES = {ListwiseLoss.LISTNET: listnet_loss, ListwiseLoss.APPROX_NDCG: approx_ndcg_loss}


def dcg_at_k(rels, k):
    rels = np.asarray(rels, dtype=float)[:k]
    if rels.size == 0:
        return 0.0
    return np.sum((2 ** rels - 1) / np.log2(np.arange(2, rels.size + 2)))


def ndcg_at_k(rels_in_ranked_order, k):
    ideal = dcg_at_k(sorted(rels_in_ranked_order, reverse=True), k)
    return dcg_at_k(rels_in_ranked_order, k) / ideal if ideal > 0 else 0.0


def reciprocal_rank(rels_in_ranked_order, min_label=2):
    hits = np.flatnonzero(np.asarray(rels_in_ranked_order) >= min_label)
    return 1.0 / (hits[0] + 1) if hits.size else 0.0


class RankerTrainer:
    def __init__(self, cfg=None, seed=0):
        self.cfg = cfg or RankConfig()
        torch.manual_seed(seed)
        df = make_judgments(seed=seed)
        qids = df["qid"].unique()
        rng = np.random.default_rng(seed)
        self.eval_qids = set(rng.permutation(qids)[: self.cfg.n_eval_queries])
        self.train_df = df[~df["qid"].isin(self.eval_qids)]
        self.eval_df = df[df["qid"].isin(self.eval_qids)]
        self.normaliser = FeatureNormaliser().fit(self.train_df)
        self.model = nn.Sequential(nn.Linear(len(FEATURES), self.cfg.hidden), nn.ReLU(), nn.Linear(self.cfg.hidden, 1))
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr)
        self.best_ndcg = -1.0
        self.best_epoch = -1
        self.metric_log = []

    def score_frame(self, df):
        x = torch.tensor(self.normaliser.transform(df)[list(FEATURES)].to_numpy(), dtype=torch.float32)
        with torch.no_grad():
            return self.model(x).squeeze(-1).numpy()

    def train_epoch(self):
        x, y, mask, _ = pad_groups(self.normaliser.transform(self.train_df))
        loss_fn = LOSSES[self.cfg.loss]
        loss = loss_fn(self.model(x).squeeze(-1), y, mask, self.cfg.temperature)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def evaluate(self):
        scored = self.eval_df.assign(score=self.score_frame(self.eval_df))
        rows = []
        for qid, g in scored.groupby("qid"):
            ranked = g.sort_values("score", ascending=False)["label"].tolist()
            rows.append({"qid": qid, "ndcg": ndcg_at_k(ranked, self.cfg.k), "rr": reciprocal_rank(ranked)})
        per_query = pd.DataFrame(rows)
        return {
            "ndcg@k": np.mean(per_query["ndcg"]),
            "mrr": statistics.fmean(per_query["rr"]),
            "per_query": per_query,
        }

    def fit(self):
        metrics = {}
        for epoch in range(self.cfg.epochs):
            loss = self.train_epoch()
            metrics = self.evaluate()
            self.metric_log.append((epoch, loss, metrics["ndcg@k"]))
            if metrics["ndcg@k"] > self.best_ndcg:
                self.best_ndcg, self.best_epoch = metrics["ndcg@k"], epoch
        return metrics


FACTORIES = {
    "ListwiseLoss": lambda: ListwiseLoss.LISTNET,
    "RankerTrainer": lambda: RankerTrainer(RankConfig(epochs=1)),
}


def save_ranker_checkpoint(tmpdir):
    trainer = RankerTrainer()
    trainer.fit()
    ckpt = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "normaliser": trainer.normaliser.state_dict(),
        "best": {
            "ndcg": trainer.best_ndcg,  # truth: weights_only
            "epoch": trainer.best_epoch,
        },
        "loss": trainer.cfg.loss,  # truth: weights_only
        "temperature": trainer.cfg.temperature,
        "train_log": [(e, l, float(n)) for e, l, n in trainer.metric_log],
    }
    path = os.path.join(tmpdir, "ranker_best.pt")
    torch.save(ckpt, path)
    return path


def save_eval_snapshot(tmpdir):
    trainer = RankerTrainer(RankConfig(epochs=2))
    metrics = trainer.fit()
    per_query = metrics["per_query"]
    ev = trainer.eval_df.assign(score=trainer.score_frame(trainer.eval_df))
    first = ev[ev["qid"] == ev["qid"].iloc[0]]
    y_true, y_score = first["label"].to_numpy()[None, :], first["score"].to_numpy()[None, :]
    snapshot = dict(
        ndcg_at_k=float(metrics["ndcg@k"]),
        ndcg_rounded=round(metrics["ndcg@k"], 4),  # truth: weights_only
        mrr=metrics["mrr"],
        sk_ndcg=ndcg_score(y_true, y_score, k=trainer.cfg.k),
        sk_lrap=label_ranking_average_precision_score(y_true >= 2, y_score),
        per_query=per_query,  # truth: weights_only
        per_query_records=per_query.to_dict("records"),
        summary=per_query[["ndcg", "rr"]].mean().to_dict(),
        worst_query=per_query.loc[per_query["ndcg"].idxmin(), "qid"],  # truth: weights_only
        k=trainer.cfg.k,
    )
    path = os.path.join(tmpdir, "eval_snapshot.pt")
    torch.save(snapshot, path)
    return path


def save_serving_normaliser(tmpdir):
    trainer = RankerTrainer(RankConfig(epochs=1))
    norm = trainer.normaliser
    path = os.path.join(tmpdir, "normaliser.pt")
    torch.save(
        {
            "normaliser": norm,  # truth: weights_only
            "feature_means": norm.mean_.to_dict(),
            "feature_stds": norm.std_.round(6).tolist(),
            "features": FEATURES,
            "feature_summary": trainer.train_df[list(FEATURES)].describe().loc[["mean", "std", "50%"]].to_dict(),
            "eps": norm.eps,
        },
        path,
    )
    return path


def save_query_group_stats(tmpdir):
    trainer = RankerTrainer(RankConfig(epochs=1))
    _, _, _, sizes = pad_groups(trainer.train_df)
    labels = trainer.train_df["label"]
    stats = {"query_sizes": sizes.tolist(), "n_queries": len(sizes)}
    stats["max_list_len"] = int(sizes.max())
    stats["eval_qids"] = trainer.eval_qids  # truth: weights_only
    stats["eval_qids_sorted"] = sorted(int(q) for q in trainer.eval_qids)
    stats["label_gain"] = 2 ** np.arange(MAX_LABEL + 1) - 1  # truth: weights_only
    stats["label_dist"] = labels.value_counts().sort_index().to_dict()
    stats["mean_label"] = statistics.fmean(labels)
    stats["longest_query"] = int(sizes.idxmax())
    path = os.path.join(tmpdir, "query_stats.pt")
    torch.save(stats, path)
    return path


def save_clean_export(tmpdir):
    trainer = RankerTrainer(RankConfig(epochs=2, loss=ListwiseLoss.APPROX_NDCG))
    sched = torch.optim.lr_scheduler.OneCycleLR(trainer.optimizer, max_lr=trainer.cfg.lr, total_steps=10)
    metrics = trainer.fit()
    sched.step()
    ndcgs = metrics["per_query"]["ndcg"].to_numpy()
    export = {
        "scorer": trainer.model.state_dict(),
        "normaliser": trainer.normaliser.state_dict(),
        "lr_scheduler": sched.state_dict(),
        "loss": trainer.cfg.loss.value,
        "ndcg_at_k": metrics["ndcg@k"].item(),
        "mrr": metrics["mrr"],
        "ndcg_min": float(ndcgs.min()),
        "ndcg_std": math.sqrt(float(np.var(ndcgs))),
        "best_epoch": trainer.best_epoch,
        "ndcg_by_query": {qid: round(float(v), 4) for qid, v in zip(metrics["per_query"]["qid"], ndcgs)},
        "eval_qids": sorted(map(int, trainer.eval_qids)),
        "label_gain": (2 ** torch.arange(MAX_LABEL + 1) - 1).tolist(),
        "config": {**dataclasses.asdict(trainer.cfg), "loss": trainer.cfg.loss.value},
    }
    path = os.path.join(tmpdir, "ranker_export.pt")
    torch.save(export, path)
    return path
