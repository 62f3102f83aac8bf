"""Neural learning-to-rank for e-commerce product search.

Features per (query, product): TF-IDF similarity of query and title, scaled numeric catalogue
features, category one-hot.  A listwise MLP scorer is trained on graded relevance (0 = skipped,
1 = clicked, 2 = added to cart, 3 = purchased) and checked with NDCG@k and MRR per query.
"""
import dataclasses
import datetime
import enum
import hashlib
import math
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import ndcg_score
from sklearn.preprocessing import StandardScaler

CATEGORIES = ("running shoes", "dresses", "handbags", "watches")
ADJECTIVES = ("red", "blue", "leather", "cheap", "waterproof", "slim", "vintage", "kids")
EXPERIMENT_NS = uuid.UUID("6f1c2a52-8d3e-4a4f-9a7e-2b0c1d9e7f10")
FACTORIES = {"RankLoss": lambda: RankLoss("listnet")}


class RankLoss(enum.Enum):
    LISTNET = "listnet"
    RANKNET = "ranknet"


@dataclass
class FeatureConfig:
    title_max_features: int = 48
    query_ngrams: tuple = (1, 2)
    numeric: tuple = ("price", "rating", "n_reviews", "ctr_7d")
    stop_words: str = "english"


@dataclass
class RankerConfig:
    hidden: int = 32
    dropout: float = 0.1
    lr: float = 3e-3
    epochs: int = 2
    loss: RankLoss = RankLoss.LISTNET
    ndcg_ks: tuple = (5, 10)
    temperature: float = 2.0
    seed: int = 0
    features: FeatureConfig = field(default_factory=FeatureConfig)


def make_search_log(n_queries=40, per_query=8, seed=0):
    """Synthetic impression log: one row per product shown for a query."""
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(n_queries):
        cat = CATEGORIES[q % len(CATEGORIES)]
        query = f"{ADJECTIVES[q % len(ADJECTIVES)]} {cat}"
        for pos in range(per_query):
            adj = ADJECTIVES[rng.integers(len(ADJECTIVES))]
            match = adj in query
            grade = int(min(3, rng.poisson(1.2 if match else 0.3)))
            rows.append({
                "query_id": q, "query": query, "product_id": int(rng.integers(10_000)),
                "title": f"{adj} {cat} model {rng.integers(100)}", "category": cat,
                "price": float(rng.lognormal(3.5, 0.6)), "rating": float(rng.uniform(2.5, 5.0)),
                "n_reviews": int(rng.integers(0, 500)), "ctr_7d": float(rng.beta(2, 30)),
                "position": pos + 1, "clicked": int(grade > 0 or rng.random() < 0.1 / (pos + 1)),
                "grade": grade,
            })
    return pd.DataFrame(rows)


def split_by_query(df, valid_frac=0.25):
    qids = df["query_id"].unique()
    cut = int(len(qids) * (1 - valid_frac))
    return df[df["query_id"].isin(qids[:cut])], df[df["query_id"].isin(qids[cut:])]


class FeaturePipeline:
    def __init__(self, cfg=None):
        self.cfg = cfg or FeatureConfig()

    def fit(self, df):
        c = self.cfg
        self.title_vec = TfidfVectorizer(max_features=c.title_max_features, stop_words=c.stop_words).fit(df["title"])
        self.query_vec = TfidfVectorizer(ngram_range=c.query_ngrams).fit(pd.concat([df["query"], df["title"]]))
        self.scaler = StandardScaler().fit(df[list(c.numeric)])
        self.categories = sorted(df["category"].unique())
        return self

    def feature_names(self):
        return ["tfidf_cosine", *self.cfg.numeric, *[f"cat={c}" for c in self.categories]]

    def transform(self, df):
        q = self.query_vec.transform(df["query"])
        t = self.query_vec.transform(df["title"])
        cosine = np.asarray(q.multiply(t).sum(axis=1)).ravel()
        numeric = self.scaler.transform(df[list(self.cfg.numeric)])
        onehot = (df["category"].to_numpy()[:, None] == np.array(self.categories)[None, :]).astype("float32")
        return torch.tensor(np.column_stack([cosine, numeric, onehot]), dtype=torch.float32)


class ListwiseRanker(nn.Module):
    def __init__(self, n_features=9, hidden=32, dropout=0.1):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(n_features, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, x):
        return self.mlp(x).squeeze(-1)


class RankTrainer:
    def __init__(self, cfg=None, n_features=9):
        self.cfg = cfg or RankerConfig()
        torch.manual_seed(self.cfg.seed)
        self.model = ListwiseRanker(n_features, self.cfg.hidden, self.cfg.dropout)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, step_size=1, gamma=0.7)
        self.epoch = 0
        self.history = []
        self.best = {"ndcg@10": 0.0, "epoch": -1}

    @staticmethod
    def _groups(df):
        offsets = np.r_[0, np.cumsum(df.groupby("query_id", sort=False).size().to_numpy())]
        return list(zip(offsets[:-1], offsets[1:]))

    def _loss(self, scores, grades):
        if self.cfg.loss is RankLoss.LISTNET:
            return -(F.softmax(grades, 0) * F.log_softmax(scores, 0)).sum()
        diff = scores[:, None] - scores[None, :]
        better = (grades[:, None] > grades[None, :]).float()
        return (F.softplus(-diff) * better).sum() / better.sum().clamp(min=1)

    def train_epoch(self, feats, df):
        self.model.train()
        grades = torch.tensor(df["grade"].to_numpy(), dtype=torch.float32)
        total = 0.0
        for lo, hi in self._groups(df):
            loss = self._loss(self.model(feats[lo:hi]), grades[lo:hi])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            total += loss.item()
        self.sched.step()
        self.epoch += 1
        return total / len(self._groups(df))

    @torch.no_grad()
    def _scores(self, feats):
        self.model.eval()
        return self.model(feats).numpy()

    def evaluate(self, feats, df):
        scores, grades = self._scores(feats), df["grade"].to_numpy()
        out = {}
        for k in self.cfg.ndcg_ks:
            vals = [ndcg_score([grades[lo:hi]], [scores[lo:hi]], k=k) for lo, hi in self._groups(df)]
            out[f"ndcg@{k}"] = sum(vals) / len(vals)
        out["queries"] = len(self._groups(df))
        return out

    def mrr(self, feats, df):
        scores, grades = self._scores(feats), df["grade"].to_numpy()
        rr = []
        for lo, hi in self._groups(df):
            order = np.argsort(-scores[lo:hi])
            hits = np.flatnonzero(grades[lo:hi][order] > 0)
            rr.append(1.0 / (hits[0] + 1) if len(hits) else 0.0)
        return np.mean(rr)

    def fit(self, feats, df, valid_feats, valid_df):
        for _ in range(self.cfg.epochs):
            metrics = self.evaluate(valid_feats, valid_df)
            metrics["train_loss"] = self.train_epoch(feats, df)
            self.history.append(metrics)
            if metrics["ndcg@10"] > self.best["ndcg@10"]:
                self.best = {"ndcg@10": metrics["ndcg@10"], "epoch": self.epoch}
        return self

    def state(self):
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "epoch": self.epoch}


def build(cfg, seed=0):
    train_df, valid_df = split_by_query(make_search_log(seed=seed))
    pipe = FeaturePipeline(cfg.features).fit(train_df)
    tr, va = pipe.transform(train_df), pipe.transform(valid_df)
    trainer = RankTrainer(cfg, tr.shape[1]).fit(tr, train_df, va, valid_df)
    return pipe, trainer, (va, valid_df)


def save_ranker_checkpoint(tmpdir):
    cfg = RankerConfig(epochs=2)
    pipe, trainer, (va, valid_df) = build(cfg)
    config = asdict(cfg)
    config["loss"] = cfg.loss.value
    ckpt = trainer.state()
    ckpt.update(
        config=config,
        loss_kind=cfg.loss,  # truth: weights_only
        metrics=trainer.history[-1],
        best=trainer.best,
        mrr=trainer.mrr(va, valid_df),  # truth: weights_only
        feature_names=pipe.feature_names(),
        lr=trainer.sched.get_last_lr(),
    )
    path = Path(tmpdir) / f"ranker_e{trainer.epoch:02d}.pt"
    torch.save(ckpt, path)
    return str(path)


def save_feature_pipeline(tmpdir):
    df = make_search_log(seed=1)
    cfg = FeatureConfig()
    pipe = FeaturePipeline(cfg).fit(df)
    _, price_edges = pd.qcut(df["price"], 5, retbins=True)
    artifacts = {
        "title_vocab": sorted(pipe.title_vec.vocabulary_.items(), key=lambda kv: kv[1]),  # truth: weights_only
        "query_vocab": pipe.query_vec.vocabulary_,
        "title_idf": torch.tensor(pipe.title_vec.idf_, dtype=torch.float32),
        "stop_words": pipe.title_vec.get_stop_words(),  # truth: weights_only
        "scaler": {
            "mean": pipe.scaler.mean_.tolist(),
            "scale": pipe.scaler.scale_.tolist(),
            "n_features": pipe.scaler.n_features_in_,
            "n_seen": pipe.scaler.n_samples_seen_,  # truth: weights_only
        },
        "categories": pipe.categories,
        "price_bins": price_edges.tolist(),
        "numeric": list(cfg.numeric),
        "feature_config": dataclasses.asdict(cfg),
    }
    path = Path(tmpdir) / "features.pt"
    torch.save(artifacts, path)
    return str(path)


def estimate_position_bias(log):
    """Result randomisation estimate: CTR per position relative to position 1, and a power law fit."""
    ctr = log.groupby("position")["clicked"].mean()
    propensity = ctr / ctr.iloc[0]
    slope = np.polyfit(np.log(propensity.index.to_numpy()), np.log(propensity.clip(lower=1e-3).to_numpy()), 1)[0]
    return propensity, -slope


def save_click_model(tmpdir):
    log = make_search_log(n_queries=60, seed=2)
    propensity, eta = estimate_position_bias(log)
    sizes = log.groupby("query_id").size()
    attractiveness = {}
    for row in log.itertuples(index=False):
        attractiveness[(row.query_id, row.product_id)] = float(row.clicked / propensity[row.position])
    click_model = {
        "propensity": propensity.to_numpy(dtype="float32"),  # truth: weights_only
        "propensity_by_position": propensity.to_dict(),
        "eta": float(eta),
        "max_list_size": int(sizes.max()),
        "median_list_size": float(sizes.median()),
        "n_queries": log["query_id"].nunique(),
        "n_impressions": len(log),
        "attractiveness": attractiveness,
        "positions": sorted(log["position"].unique().tolist()),
        "grade_counts": log["grade"].value_counts().sort_index().to_dict(),
    }
    path = Path(tmpdir) / "click_model.pt"
    torch.save(click_model, path)
    return str(path)


def simulate_arms(seed=3, n=4000):
    rng = np.random.default_rng(seed)
    arm = np.where(rng.random(n) < 0.5, "control", "treatment")
    p = np.where(arm == "treatment", 0.062, 0.055)
    return pd.DataFrame({"arm": arm, "clicked": (rng.random(n) < p).astype(int)})


def two_proportion_p(c1, n1, c2, n2):
    p = (c1 + c2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    z = (c2 / n2 - c1 / n1) / se
    return math.erfc(abs(z) / math.sqrt(2))


def save_ab_snapshot(tmpdir):
    arms = simulate_arms().groupby("arm").agg(ctr=("clicked", "mean"), clicks=("clicked", "sum"),
                                              n=("clicked", "size"))
    stats = arms.to_dict("index")
    snap = {}
    snap["experiment_id"] = uuid.uuid5(EXPERIMENT_NS, "ranker-v3-listnet")  # truth: weights_only
    snap["experiment_key"] = str(uuid.uuid5(EXPERIMENT_NS, "ranker-v3-listnet"))
    snap["salt"] = hashlib.sha256(b"ranker-v3").digest()
    snap["arms"] = stats
    snap["ctr"] = arms["ctr"].to_dict()
    snap["lift"] = arms.loc["treatment", "ctr"] / arms.loc["control", "ctr"] - 1.0  # truth: weights_only
    snap["p_value"] = two_proportion_p(int(arms.loc["control", "clicks"]), int(arms.loc["control", "n"]),
                                       int(arms.loc["treatment", "clicks"]), int(arms.loc["treatment", "n"]))
    snap["decided_at"] = pd.Timestamp("2024-03-18 09:30", tz="UTC")  # truth: weights_only
    snap["decided_on"] = datetime.date(2024, 3, 18).isoformat()
    path = Path(tmpdir) / "ab_snapshot.pt"
    torch.save(snap, path)
    return str(path)


def save_distilled_student(tmpdir):
    cfg = RankerConfig(epochs=1, loss=RankLoss.RANKNET)
    pipe, teacher, (va, valid_df) = build(cfg)
    student = ListwiseRanker(va.shape[1], hidden=8, dropout=0.0)
    with torch.no_grad():
        soft = torch.sigmoid(teacher.model(va) / cfg.temperature)
    out = Path(tmpdir) / "student.pt"
    torch.save({
        "student": student.state_dict(),
        "teacher": teacher.model,  # truth: weights_only
        "temperature": cfg.temperature,
        "loss_name": cfg.loss.value,
        "soft_targets": soft,
        "teacher_ndcg": teacher.evaluate(va, valid_df),
    }, out)
    return str(out)


def save_serving_export(tmpdir):
    cfg = RankerConfig(epochs=1)
    pipe, trainer, _ = build(cfg)
    weights = {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}
    export = {
        "weights": weights,
        "feature_names": pipe.feature_names(),
        "scaler_mean": torch.tensor(pipe.scaler.mean_, dtype=torch.float32),
        "scaler_scale": torch.tensor(pipe.scaler.scale_, dtype=torch.float32),
        "title_vocab": {t: int(i) for t, i in pipe.title_vec.vocabulary_.items()},
        "version": "ranker-3.1.0",
        "k": max(cfg.ndcg_ks),
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "features": dataclasses.asdict(cfg.features),
    }
    path = Path(tmpdir) / "serving.pt"
    torch.save(export, path)
    return str(path)
