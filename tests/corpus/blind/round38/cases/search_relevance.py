"""E-commerce search relevance: a pairwise ranker over query/product text features, a
position-based click model fitted with EM, position-bias (propensity) estimates, and an A/B
test summary written next to the ranker checkpoint."""
import argparse
import copy
import datetime as dt
import os
from collections import Counter, defaultdict

import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import ndcg_score, roc_auc_score
from torch import nn

QUERIES = ["red running shoe", "wireless earbuds", "usb c cable", "running shoe men", "earbuds noise cancel"]
TITLES = [
    "Men's red running shoe lightweight",
    "Wireless earbuds with charging case",
    "USB-C to USB-C cable 2m braided",
    "Trail running shoe waterproof",
    "Noise cancelling wireless earbuds pro",
    "Phone case red silicone",
]


def parse_args(argv=None):
    p = argparse.ArgumentParser("ranker")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-positions", type=int, default=10)
    p.add_argument("--run-name", default="pairwise-v3")
    return p.parse_args(argv or [])


def make_click_log(n=600, n_pos=10, seed=0):
    rng = np.random.default_rng(seed)
    pos = rng.integers(1, n_pos + 1, size=n)
    rel = rng.random(n)
    exam = 1.0 / pos
    click = (rng.random(n) < exam * rel).astype(int)
    return pd.DataFrame({
        "query_id": rng.integers(0, len(QUERIES), size=n),
        "doc_id": rng.integers(0, len(TITLES), size=n),
        "position": pos,
        "click": click,
        "bucket": rng.choice(["control", "treatment"], size=n),
        "revenue": rng.gamma(2.0, 10.0, size=n) * click,
    })


class TextFeaturizer:
    """TF-IDF over query + title, plus a token Counter for the vocabulary report."""

    def __init__(self, max_features=64):
        self.vec = TfidfVectorizer(max_features=max_features)
        self.token_counts = Counter()

    def fit(self, texts):
        self.vec.fit(texts)
        for t in texts:
            self.token_counts.update(t.lower().split())
        return self

    def transform(self, texts):
        return torch.from_numpy(self.vec.transform(texts).toarray()).float()


class PairwiseRanker(nn.Module):
    def __init__(self, dim, hidden=32):
        super().__init__()
        self.q = nn.Linear(dim, hidden)
        self.d = nn.Linear(dim, hidden)

    def forward(self, q, d):
        return (torch.tanh(self.q(q)) * torch.tanh(self.d(d))).sum(-1)


class RankerTrainer:
    def __init__(self, args=None):
        self.args = args or parse_args()
        self.feat = TextFeaturizer().fit(QUERIES + TITLES)
        dim = len(self.feat.vec.vocabulary_)
        self.model = PairwiseRanker(dim, self.args.hidden)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.args.lr)
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, step_size=2, gamma=0.5)
        self.history = defaultdict(list)
        self.best_ndcg = -1.0
        self.best_epoch = -1
        self.best_state = None
        self.epoch = 0

    def _batch(self):
        q = self.feat.transform(QUERIES)
        d = self.feat.transform(TITLES[: len(QUERIES)])
        return q, d

    def train_epoch(self):
        q, d = self._batch()
        pos = self.model(q, d)
        neg = self.model(q, d.roll(1, 0))
        loss = nn.functional.softplus(neg - pos).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.sched.step()
        return loss.item()

    @torch.no_grad()
    def evaluate(self):
        q, d = self._batch()
        scores = (self.model(q[:, None].expand(-1, d.shape[0], -1).reshape(-1, q.shape[1]),
                             d.repeat(q.shape[0], 1)).reshape(q.shape[0], d.shape[0])).numpy()
        gains = np.eye(q.shape[0], d.shape[0])
        labels = gains.ravel().astype(int)
        return {
            "ndcg@5": ndcg_score(gains, scores, k=5),
            "auc": roc_auc_score(labels, scores.ravel()),
            "mean_score": scores.mean(),
            "score_std": float(scores.std()),
        }

    def fit(self):
        for self.epoch in range(self.args.epochs):
            loss = self.train_epoch()
            m = self.evaluate()
            self.history["loss"].append(loss)
            self.history["ndcg@5"].append(m["ndcg@5"])
            if m["ndcg@5"] > self.best_ndcg:
                self.best_ndcg = m["ndcg@5"]
                self.best_epoch = self.epoch
                self.best_state = copy.deepcopy(self.model.state_dict())
        return m


# ------------------------------------------------------------------ click model / position bias

def fit_pbm(log, n_pos, iters=20):
    """Position-based model: P(click) = theta[pos] * alpha[query, doc].  EM, returns both tables."""
    theta = np.full(n_pos, 0.5)
    alpha = np.full((len(QUERIES), len(TITLES)), 0.5)
    p = log["position"].to_numpy() - 1
    qi, di, c = log["query_id"].to_numpy(), log["doc_id"].to_numpy(), log["click"].to_numpy()
    for _ in range(iters):
        t, a = theta[p], alpha[qi, di]
        e_exam = c + (1 - c) * t * (1 - a) / (1 - t * a)
        e_attr = c + (1 - c) * (1 - t) * a / (1 - t * a)
        theta = np.bincount(p, weights=e_exam, minlength=n_pos) / np.maximum(np.bincount(p, minlength=n_pos), 1)
        num = np.zeros_like(alpha)
        den = np.zeros_like(alpha)
        np.add.at(num, (qi, di), e_attr)
        np.add.at(den, (qi, di), 1)
        alpha = np.where(den > 0, num / np.maximum(den, 1), 0.5)
    return theta, alpha


def propensities(log):
    ctr = log.groupby("position")["click"].mean()
    return ctr / ctr.iloc[0]


def ab_summary(log, metric="click"):
    a = log.loc[log.bucket == "control", metric].to_numpy()
    b = log.loc[log.bucket == "treatment", metric].to_numpy()
    t, p = stats.ttest_ind(b, a, equal_var=False)
    rng = np.random.default_rng(1)
    boot = [rng.choice(b, b.size).mean() - rng.choice(a, a.size).mean() for _ in range(200)]
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {
        "n_control": int(a.size),
        "n_treatment": int(b.size),
        "lift": (b.mean() - a.mean()) / max(a.mean(), 1e-9),
        "t_stat": t,
        "p_value": p,
        "ci": (lo, hi),
    }


# ------------------------------------------------------------------ save functions

def save_ranker(out_dir):
    trainer = RankerTrainer()
    last = trainer.fit()
    ckpt = {
        "model": trainer.model.state_dict(),
        "best_model": trainer.best_state,
        "optimizer": trainer.opt.state_dict(),
        "scheduler": trainer.sched.state_dict(),
        "epoch": trainer.epoch,
        "best_epoch": trainer.best_epoch,
        "best_ndcg": trainer.best_ndcg,
        "args": vars(trainer.args),
    }
    ckpt["history"] = trainer.history  # truth: weights_only
    ckpt["last_auc"] = last["auc"]
    ckpt["last_mean_score"] = last["mean_score"]  # truth: weights_only
    ckpt["last_score_std"] = last["score_std"]
    ckpt["vocab"] = {tok: int(ix) for tok, ix in trainer.feat.vec.vocabulary_.items()}
    ckpt["idf"] = trainer.feat.vec.idf_  # truth: weights_only
    ckpt["top_tokens"] = trainer.feat.token_counts.most_common(10)
    ckpt["feature_names"] = trainer.feat.vec.get_feature_names_out().tolist()
    path = os.path.join(out_dir, "ranker.pt")
    torch.save(ckpt, path)
    return path


def save_click_model(out_dir):
    args = parse_args()
    log = make_click_log(n_pos=args.max_positions)
    theta, alpha = fit_pbm(log, args.max_positions)
    prop = propensities(log)
    ctr_by_pos = log.groupby("position")["click"].mean().to_dict()
    state = dict(
        n_positions=args.max_positions,
        examination=theta,  # truth: weights_only
        attractiveness=torch.from_numpy(alpha).float(),
        propensity=prop,  # truth: weights_only
        propensity_list=prop.tolist(),
        ctr_by_position=ctr_by_pos,
        n_sessions=len(log),
        n_clicks=int(log["click"].sum()),
        global_ctr=log["click"].mean(),  # truth: weights_only
        config=args,  # truth: weights_only
    )
    state.update(
        fitted_at=dt.datetime(2024, 5, 2, 9, 30).isoformat(),
        top_position_ctr=float(ctr_by_pos[1]),
        query_ids=set(log["query_id"].unique()),  # truth: weights_only
        doc_ids=sorted(int(d) for d in log["doc_id"].unique()),
    )
    path = os.path.join(out_dir, "pbm.pt")
    torch.save(state, path)
    return path


def save_ab_report(out_dir):
    log = make_click_log(seed=3)
    ctr = ab_summary(log, "click")
    rev = ab_summary(log, "revenue")
    report = {"experiment": "ranker-v3-vs-v2", "metrics": {}}
    report["metrics"]["ctr"] = {
        "lift": float(ctr["lift"]),
        "p_value": float(ctr["p_value"]),
        "ci": tuple(float(x) for x in ctr["ci"]),
        "significant": bool(ctr["p_value"] < 0.05),
    }
    report["metrics"]["revenue"] = {
        "lift": rev["lift"],  # truth: weights_only
        "t_stat": round(float(rev["t_stat"]), 3),
        "pval": rev["p_value"],  # truth: weights_only
        "significant": rev["p_value"] < 0.05,  # truth: weights_only
        "n": rev["n_control"] + rev["n_treatment"],
    }
    report["ended"] = dt.date(2024, 6, 1).isoformat()
    report["duration_days"] = (dt.date(2024, 6, 1) - dt.date(2024, 5, 18)).days
    path = os.path.join(out_dir, "ab_report.pt")
    torch.save(report, path)
    return path


def save_query_stats(out_dir):
    log = make_click_log(seed=7)
    per_query = log.groupby("query_id").agg(impressions=("click", "size"), clicks=("click", "sum"))
    per_query["ctr"] = per_query["clicks"] / per_query["impressions"]
    lengths = [len(q.split()) for q in QUERIES]
    out = {}
    for qid, row in per_query.iterrows():
        out[QUERIES[int(qid)]] = {"ctr": float(row["ctr"]), "impressions": int(row["impressions"])}
    payload = {
        "per_query": out,
        "query_len_mean": sum(lengths) / len(lengths),
        "query_len_max": max(lengths),
        "ctr_table": per_query.reset_index().to_dict(orient="list"),
        "rank_corr": float(per_query["ctr"].corr(per_query["impressions"])),
    }
    path = os.path.join(out_dir, "query_stats.pt")
    torch.save(payload, path)
    return path


def save_ranker_for_serving(out_dir):
    trainer = RankerTrainer(parse_args(["--epochs", "1"]))
    trainer.fit()
    bundle = {
        "ranker": trainer.model,  # truth: weights_only
        "featurizer_vocab": sorted(trainer.feat.vec.vocabulary_, key=trainer.feat.vec.vocabulary_.get),
        "optimizer": trainer.opt,  # truth: weights_only
        "lr": trainer.sched.get_last_lr()[0],
    }
    path = os.path.join(out_dir, "serving.pt")
    torch.save(bundle, path)
    return path


FACTORIES = {
    "PairwiseRanker": lambda: PairwiseRanker(16, hidden=8),
}
