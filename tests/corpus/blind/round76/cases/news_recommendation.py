"""NRMS news recommendation on MIND-style logs (news.tsv / behaviors.tsv).

Trainer object with helper methods; preprocessing in pandas. Evaluation mirrors the MIND
leaderboard script: per-impression AUC, MRR, nDCG@5 and nDCG@10, averaged over impressions.
"""
import dataclasses
import enum
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

PAD, UNK = 0, 1


class SelectMetric(enum.Enum):
    AUC = "auc"
    MRR = "mrr"
    NDCG10 = "ndcg@10"


@dataclass
class NRMSConfig:
    title_len: int = 10
    his_len: int = 8
    npratio: int = 3
    word_dim: int = 32
    heads: int = 4
    attn_hidden: int = 16
    dropout: float = 0.2
    lr: float = 1e-3
    batch_size: int = 8
    epochs: int = 2
    min_freq: int = 1
    patience: int = 3
    seed: int = 7
    select_metric: SelectMetric = SelectMetric.AUC
    topk: tuple = (5, 10)
    extra_tags: list = field(default_factory=lambda: ["mind-small", "nrms"])


# ----------------------------------------------------------------------------- data

WORDS = ("storm market election team coach vaccine stocks rally senate recipe season injury "
         "film star budget court ruling wildfire travel tech phone launch playoff trade").split()
CATEGORIES = {"news": ["politics", "world"], "sports": ["football", "basketball"],
              "finance": ["markets"], "lifestyle": ["food", "travel"]}


def make_mind_like(n_news=60, n_users=16, n_impr=40, seed=7):
    rng = random.Random(seed)
    rows = []
    for i in range(n_news):
        cat = rng.choice(sorted(CATEGORIES))
        rows.append({"news_id": f"N{1000 + i}", "category": cat, "subcategory": rng.choice(CATEGORIES[cat]),
                     "title": " ".join(rng.choices(WORDS, k=rng.randint(4, 12)))})
    news = pd.DataFrame(rows)
    ids = news.news_id.tolist()
    base = pd.Timestamp("2019-11-09 06:00:00")
    beh = []
    for j in range(n_impr):
        hist = rng.sample(ids, rng.randint(2, 12))
        cands = rng.sample(ids, 6)
        labels = [1] + [0] * 5
        rng.shuffle(labels)
        beh.append({"impression_id": j + 1, "user_id": f"U{rng.randrange(n_users)}",
                    "time": base + pd.Timedelta(minutes=37 * j), "history": " ".join(hist),
                    "impressions": " ".join(f"{n}-{l}" for n, l in zip(cands, labels))})
    return news, pd.DataFrame(beh)


def tokenize(title):
    return title.lower().split()


def build_vocab(titles, min_freq=1):
    counts = Counter(tok for t in titles for tok in tokenize(t))
    words = [w for w, c in counts.most_common() if c >= min_freq]
    return {w: i for i, w in enumerate(words, start=2)}, counts


def encode_titles(news, word2idx, title_len):
    mat = np.zeros((len(news) + 1, title_len), dtype=np.int64)  # row 0 = padding news
    for row, title in enumerate(news.title, start=1):
        toks = [word2idx.get(w, UNK) for w in tokenize(title)][:title_len]
        mat[row, :len(toks)] = toks
    return mat


def fake_glove(words, dim, seed=0):
    rng = np.random.default_rng(seed)
    known = [w for w in words if hash(w) % 5]  # a stable-enough stand-in for the GloVe lookup
    return {w: rng.normal(0, 0.1, dim).astype(np.float32) for w in known}


def explode_clicks(behaviors, news):
    pairs = behaviors[["impression_id", "user_id", "impressions"]].copy()
    pairs["impressions"] = pairs.impressions.str.split()
    pairs = pairs.explode("impressions")
    pairs[["news_id", "clicked"]] = pairs.impressions.str.split("-", expand=True)
    pairs["clicked"] = pairs.clicked.astype(int)
    return pairs.drop(columns="impressions").merge(news[["news_id", "category"]], on="news_id")


# ----------------------------------------------------------------------------- model

class AdditiveAttention(nn.Module):
    def __init__(self, dim=32, hidden=16):
        super().__init__()
        self.proj = nn.Linear(dim, hidden)
        self.query = nn.Linear(hidden, 1, bias=False)

    def forward(self, x, mask=None):
        a = self.query(torch.tanh(self.proj(x))).squeeze(-1)
        if mask is not None:
            a = a.masked_fill(~mask, -1e4)
        return (torch.softmax(a, -1).unsqueeze(-1) * x).sum(-2)


class NewsEncoder(nn.Module):
    def __init__(self, n_words=64, word_dim=32, heads=4, hidden=16, dropout=0.2):
        super().__init__()
        self.embed = nn.Embedding(n_words, word_dim, padding_idx=PAD)
        self.mha = nn.MultiheadAttention(word_dim, heads, dropout=dropout, batch_first=True)
        self.pool = AdditiveAttention(word_dim, hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, tokens):
        shape = tokens.shape
        tokens = tokens.reshape(-1, shape[-1])
        mask = tokens != PAD
        mask[:, 0] = True
        x = self.drop(self.embed(tokens))
        x, _ = self.mha(x, x, x, key_padding_mask=~mask)
        return self.pool(self.drop(x), mask).reshape(*shape[:-1], -1)


class UserEncoder(nn.Module):
    def __init__(self, dim=32, heads=4, hidden=16):
        super().__init__()
        self.mha = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.pool = AdditiveAttention(dim, hidden)

    def forward(self, clicked):
        x, _ = self.mha(clicked, clicked, clicked)
        return self.pool(x)


class NRMS(nn.Module):
    def __init__(self, n_words=64, word_dim=32, heads=4, hidden=16, dropout=0.2):
        super().__init__()
        self.news_encoder = NewsEncoder(n_words, word_dim, heads, hidden, dropout)
        self.user_encoder = UserEncoder(word_dim, heads, hidden)

    def forward(self, his_tokens, cand_tokens):
        user = self.user_encoder(self.news_encoder(his_tokens))
        return torch.einsum("bd,bcd->bc", user, self.news_encoder(cand_tokens))


# ----------------------------------------------------------------------------- metrics

def dcg_score(y_true, y_score, k=10):
    order = np.argsort(y_score)[::-1]
    y_true = np.take(y_true, order[:k])
    gains = 2 ** y_true - 1
    return np.sum(gains / np.log2(np.arange(len(y_true)) + 2))


def ndcg_score(y_true, y_score, k=10):
    return dcg_score(y_true, y_score, k) / dcg_score(y_true, y_true, k)


def mrr_score(y_true, y_score):
    order = np.argsort(y_score)[::-1]
    y_true = np.take(y_true, order)
    return np.sum(y_true / (np.arange(len(y_true)) + 1)) / np.sum(y_true)


# ----------------------------------------------------------------------------- trainer

class NRMSTrainer:
    def __init__(self, cfg, news, behaviors):
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.rng = random.Random(cfg.seed)
        self.word2idx, self.word_counts = build_vocab(news.title, cfg.min_freq)
        self.news2idx = pd.Series(np.arange(1, len(news) + 1), index=news.news_id).to_dict()
        self.tokens = torch.from_numpy(encode_titles(news, self.word2idx, cfg.title_len))
        self.behaviors = behaviors
        self.model = NRMS(len(self.word2idx) + 2, cfg.word_dim, cfg.heads, cfg.attn_hidden, cfg.dropout)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.history = defaultdict(list)
        self.best = {"auc": 0.0, "epoch": -1}
        self.epoch = 0
        self.patience_left = cfg.patience

    def _history_tokens(self, hist):
        idx = [self.news2idx[n] for n in hist.split()][-self.cfg.his_len:]
        idx = [0] * (self.cfg.his_len - len(idx)) + idx
        return self.tokens[idx]

    def _samples(self):
        for row in self.behaviors.itertuples():
            pairs = [p.split("-") for p in row.impressions.split()]
            pos = [n for n, l in pairs if l == "1"]
            neg = [n for n, l in pairs if l == "0"]
            for p in pos:
                cands = [p] + self.rng.sample(neg, min(self.cfg.npratio, len(neg)))
                yield self._history_tokens(row.history), self.tokens[[self.news2idx[c] for c in cands]]

    def train_epoch(self):
        self.model.train()
        losses, seen = [], 0
        samples = list(self._samples())
        for i in range(0, len(samples), self.cfg.batch_size):
            his, cand = map(torch.stack, zip(*samples[i:i + self.cfg.batch_size]))
            logits = self.model(his, cand)
            loss = F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long))
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
            seen += len(logits)
        return float(np.mean(losses)), seen

    @torch.no_grad()
    def evaluate(self):
        self.model.eval()
        aucs, mrrs, ndcg5, ndcg10 = [], [], [], []
        for row in self.behaviors.itertuples():
            pairs = [p.split("-") for p in row.impressions.split()]
            cands = self.tokens[[self.news2idx[n] for n, _ in pairs]]
            labels = np.array([int(l) for _, l in pairs])
            scores = self.model(self._history_tokens(row.history)[None], cands[None])[0].numpy()
            aucs.append(roc_auc_score(labels, scores))
            mrrs.append(mrr_score(labels, scores))
            ndcg5.append(ndcg_score(labels, scores, 5))
            ndcg10.append(ndcg_score(labels, scores, 10))
        return {"auc": np.mean(aucs), "mrr": np.mean(mrrs), "ndcg@5": np.mean(ndcg5), "ndcg@10": np.mean(ndcg10)}

    def fit(self):
        metrics = {}
        for epoch in range(self.cfg.epochs):
            self.epoch = epoch + 1
            loss, seen = self.train_epoch()
            metrics = self.evaluate()
            self.history["loss"].append(loss)
            for name, value in metrics.items():
                self.history[name].append(value)
            key = self.cfg.select_metric.value
            if metrics[key] > self.best.get(key, 0.0):
                self.best.update({key: float(metrics[key]), "epoch": self.epoch})
                self.patience_left = self.cfg.patience
            else:
                self.patience_left -= 1
            if self.patience_left == 0:
                break
        return metrics

    def checkpoint_payload(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "vocab_size": len(self.word2idx) + 2,
        }


FACTORIES = {
    "NRMSTrainer": lambda: NRMSTrainer(NRMSConfig(epochs=1), *make_mind_like(20, 4, 6)),
    "SelectMetric": lambda: SelectMetric("mrr"),
}


def _trained(epochs=2):
    cfg = NRMSConfig(epochs=epochs)
    news, behaviors = make_mind_like(seed=cfg.seed)
    trainer = NRMSTrainer(cfg, news, behaviors)
    last = trainer.fit()
    return cfg, news, behaviors, trainer, last


# ----------------------------------------------------------------------------- checkpoints

def save_trainer_checkpoint(tmpdir):
    cfg, news, behaviors, trainer, last = _trained()
    ckpt = trainer.checkpoint_payload()
    ckpt.update({
        "config": dataclasses.asdict(cfg) | {"select_metric": cfg.select_metric.value},
        "best": dict(trainer.best),
        "auc": float(last["auc"]),
        "mrr": last["mrr"],  # truth: weights_only
        "ndcg@10": last["ndcg@10"].item(),
        "history": trainer.history,  # truth: weights_only
    })
    ckpt["monitor"] = cfg.select_metric  # truth: weights_only
    ckpt["patience_left"] = trainer.patience_left
    path = Path(tmpdir) / f"nrms_epoch{trainer.epoch}.pt"
    torch.save(ckpt, path)
    return str(path)


def save_best_from_history(tmpdir):
    cfg, news, behaviors, trainer, last = _trained()
    curve = trainer.history[cfg.select_metric.value]
    best_epoch = np.argmax(curve)
    state = {
        "model": trainer.model.state_dict(),
        "best_epoch": best_epoch,  # truth: weights_only
        "best_epoch_1based": int(best_epoch) + 1,
        "best_score": max(curve),  # truth: weights_only
        "curve": [round(float(v), 4) for v in curve],
        "losses": trainer.history["loss"],
        "n_epochs_run": len(curve),
        "stopped_early": trainer.patience_left == 0,
        "improved": bool(curve[-1] >= curve[0]),
    }
    path = Path(tmpdir) / "nrms_best.pt"
    torch.save(state, path)
    return str(path)


def save_preprocessing(tmpdir):
    cfg = NRMSConfig()
    news, behaviors = make_mind_like(seed=cfg.seed)
    word2idx, counts = build_vocab(news.title, cfg.min_freq)
    glove = fake_glove(list(word2idx), cfg.word_dim)
    emb = np.random.default_rng(0).normal(0, 0.1, (len(word2idx) + 2, cfg.word_dim)).astype(np.float32)
    for w, i in word2idx.items():
        if w in glove:
            emb[i] = glove[w]
    vocab_words = np.array(list(word2idx))
    coverage = np.isin(vocab_words, list(glove)).mean()
    subcats = sorted(news.subcategory.unique())
    title_lens = news.title.str.split().str.len()
    category2idx = {c: i for i, c in enumerate(news.category.unique(), start=1)}
    tokens = encode_titles(news, word2idx, cfg.title_len)
    artifacts = {
        "word2idx": word2idx,
        "word_counts": counts,
        "top_words": [w for w, _ in counts.most_common(10)],
        "category2idx": category2idx,
        "subcategory2idx": dict(zip(subcats, range(1, len(subcats) + 1))),
        "title_len_hist": Counter((tokens[1:] != PAD).sum(1)),  # truth: weights_only
        "news2idx": pd.Series(np.arange(1, len(news) + 1), index=news.news_id).to_dict(),
        "embeddings": torch.from_numpy(emb),
        "glove_coverage": coverage,  # truth: weights_only
        "oov": sorted(set(word2idx) - set(glove)),
        "title_len_p95": int(np.percentile(title_lens, 95)),
        "title_len_max": int(title_lens.max()),
        "title_len": cfg.title_len,
        "min_freq": cfg.min_freq,
    }
    path = Path(tmpdir) / "mind_preprocessing.pt"
    torch.save(artifacts, path)
    return str(path)


def save_split_encoders(tmpdir):
    cfg, news, behaviors, trainer, last = _trained(epochs=1)
    with torch.no_grad():
        news_vecs = trainer.model.news_encoder(trainer.tokens)
    bundle = {
        "news_encoder": trainer.model.news_encoder.state_dict(),
        "user_encoder": trainer.model.user_encoder,  # truth: weights_only
        "news_vectors": news_vecs,
        "dim": news_vecs.shape[-1],
        "index": list(trainer.news2idx),
    }
    path = Path(tmpdir) / "encoders.pt"
    torch.save(bundle, path)
    return str(path)


def save_popularity_baseline(tmpdir):
    news, behaviors = make_mind_like(seed=3)
    clicks = explode_clicks(behaviors, news)
    pop = clicks.groupby("news_id").clicked.sum().sort_values(ascending=False)
    pop_t = torch.tensor(pop.values, dtype=torch.float32)
    baseline = {
        "top_news": pop.head(10).index.tolist(),
        "top_clicks": pop.head(10).tolist(),
        "top_scores": torch.topk(pop_t, k=5),  # truth: weights_only
        "top_idx": torch.topk(pop_t, k=5).indices,
        "ctr": clicks.clicked.mean(),  # truth: weights_only
        "ctr_by_category": clicks.groupby("category").clicked.mean().round(4).to_dict(),
        "impressions_per_user": behaviors.groupby("user_id").size().to_dict(),
        "n_impressions": len(behaviors),
        "n_users": behaviors.user_id.nunique(),
        "first_impression": behaviors.time.min().isoformat(),
        "last_impression": behaviors.time.max(),  # truth: weights_only
        "span_hours": (behaviors.time.max() - behaviors.time.min()).total_seconds() / 3600,
    }
    path = Path(tmpdir) / "popularity.pt"
    torch.save(baseline, path)
    return str(path)


def save_serving_bundle(tmpdir):
    cfg, news, behaviors, trainer, last = _trained(epochs=1)
    config = dataclasses.asdict(cfg)
    config["select_metric"] = cfg.select_metric.name
    bundle = {
        "state_dict": trainer.model.state_dict(),
        "config": config,
        "topk": list(cfg.topk),
        "metrics": {name: round(float(v), 4) for name, v in last.items()},
        "word2idx": trainer.word2idx,
        "categories": sorted(CATEGORIES),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "torch_version": str(torch.__version__),
        "n_params": sum(p.numel() for p in trainer.model.parameters()),
    }
    path = Path(tmpdir) / "serving.pt"
    torch.save(bundle, path)
    return str(path)
