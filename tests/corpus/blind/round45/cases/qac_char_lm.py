"""Query autocompletion: prefix-trie candidates re-ranked by a character LSTM language model.

Trainer-style code: a dataclass config, a `QACTrainer` with helper methods returning floats, dicts
and tuples, a prefix trie built from a (synthetic) query log, a time-decayed popularity prior, and
MRR / success@k evaluation over held-out (prefix, query) pairs.
"""
import dataclasses
import math
import os
import random
import re
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

SEED_QUERIES = {
    "weather today": 120, "weather tomorrow": 80, "weather radar": 35, "wells fargo login": 60,
    "walmart hours": 55, "walmart pharmacy": 25, "world cup schedule": 40, "wordle": 150,
    "word counter": 20, "youtube": 300, "youtube music": 90, "yahoo mail": 70, "yelp": 30,
    "netflix": 200, "news": 110, "nba scores": 95, "nfl scores": 85, "nearest gas station": 45,
    "amazon": 280, "amazon prime": 75, "amazon jobs": 15, "apple store": 50, "airbnb": 65,
    "translate": 140, "target": 60, "twitter": 70, "tiktok": 100, "train tickets": 22,
    "python list comprehension": 12, "pytorch install": 9, "pandas merge": 11, "pizza near me": 66,
}
NORMALIZE_RE = re.compile(r"[^a-z0-9 ]+")
SPECIALS = ("<pad>", "<bos>", "<eos>")


def normalize_query(q):
    return NORMALIZE_RE.sub("", q.lower()).strip()


def synth_query_log(n=600, seed=0, start="2024-03-01"):
    """Sample a query log proportionally to popularity, with timestamps over two weeks."""
    rng = random.Random(seed)
    queries, weights = zip(*SEED_QUERIES.items())
    t0 = pd.Timestamp(start)
    rows = []
    for i in range(n):
        q = rng.choices(queries, weights=weights)[0]
        rows.append({"query": q, "ts": t0 + pd.Timedelta(minutes=rng.randint(0, 14 * 24 * 60)),
                     "session": f"s{rng.randint(0, 80)}"})
    return pd.DataFrame(rows).sort_values("ts").reset_index(drop=True)


def prefix_pairs(queries, min_len=1, max_len=4):
    """Held-out (prefix, target) pairs: every short prefix of each distinct target query."""
    pairs = []
    for q in sorted(set(queries)):
        for L in range(min_len, min(max_len, len(q)) + 1):
            pairs.append((q[:L], q))
    return pairs


@dataclass
class QACConfig:
    emb_dim: int = 16
    hidden: int = 32
    num_layers: int = 1
    dropout: float = 0.1
    lr: float = 3e-3
    batch_size: int = 32
    max_len: int = 28
    epochs: int = 2
    topk: tuple = (1, 3, 5)
    candidates: int = 10
    half_life_days: float = 7.0
    lm_weight: float = 0.5


class CharVocab:
    def __init__(self, queries=("abc",), specials=SPECIALS):
        self.itos = list(specials) + sorted({c for q in queries for c in q})
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    def __len__(self):
        return len(self.itos)

    def encode(self, q, max_len):
        ids = [self.stoi["<bos>"]] + [self.stoi[c] for c in q if c in self.stoi][: max_len - 2]
        ids.append(self.stoi["<eos>"])
        return ids + [self.stoi["<pad>"]] * (max_len - len(ids))


class PrefixTrie:
    def __init__(self):
        self.root = {"children": {}, "count": 0}
        self.counts = defaultdict(int)

    def insert(self, query, count=1):
        node = self.root
        for ch in query:
            node = node["children"].setdefault(ch, {"children": {}, "count": 0})
            node["count"] += count
        node["end"] = node.get("end", 0) + count
        self.counts[query] += count

    def _walk(self, node, prefix, out):
        if node.get("end"):
            out.append((prefix, node["end"]))
        for ch, child in node["children"].items():
            self._walk(child, prefix + ch, out)

    def complete(self, prefix, k=10):
        node = self.root
        for ch in prefix:
            node = node["children"].get(ch)
            if node is None:
                return []
        out = []
        self._walk(node, prefix, out)
        return sorted(out, key=lambda qc: (-qc[1], qc[0]))[:k]

    def num_nodes(self):
        stack, n = [self.root], 0
        while stack:
            node = stack.pop()
            n += 1
            stack.extend(node["children"].values())
        return n


class PopularityPrior:
    """Exponentially time-decayed query counts relative to the newest log entry."""

    def __init__(self, half_life_days=7.0):
        self.half_life_days = half_life_days
        self.scores = {}
        self.reference_time = 0.0

    def fit(self, log):
        now = log["ts"].max()
        self.reference_time = now.timestamp()
        age_days = (now - log["ts"]).dt.total_seconds() / 86400.0
        weights = np.exp(-np.log(2.0) * age_days.to_numpy() / self.half_life_days)
        scores = defaultdict(float)
        for q, w in zip(log["query"], weights):
            scores[q] += float(w)
        self.scores = dict(scores)
        return self

    def log_prior(self, q):
        total = sum(self.scores.values())
        return math.log((self.scores.get(q, 0.0) + 1e-3) / total)


class CharLSTM(nn.Module):
    def __init__(self, vocab_size=48, emb_dim=16, hidden=32, num_layers=1, dropout=0.1):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, emb_dim, padding_idx=0)
        self.lstm = nn.LSTM(emb_dim, hidden, num_layers, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, ids):
        h, _ = self.lstm(self.emb(ids))
        return self.head(self.drop(h))

    @torch.no_grad()
    def sequence_logprob(self, ids):
        logits = self(ids[:, :-1])
        lp = F.log_softmax(logits, -1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        mask = (ids[:, 1:] != 0).float()
        return (lp * mask).sum(-1) / mask.sum(-1).clamp(min=1)


class QACTrainer:
    def __init__(self, cfg=None, log=None):
        self.cfg = cfg or QACConfig()
        self.log = log if log is not None else synth_query_log()
        queries = self.log["query"].tolist()
        self.vocab = CharVocab(queries)
        self.trie = PrefixTrie()
        for q, c in Counter(queries).items():
            self.trie.insert(q, c)
        self.prior = PopularityPrior(self.cfg.half_life_days).fit(self.log)
        torch.manual_seed(0)
        self.model = CharLSTM(len(self.vocab), self.cfg.emb_dim, self.cfg.hidden, self.cfg.num_layers,
                              self.cfg.dropout)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=0.5)
        self.history = defaultdict(list)
        self.best_mrr = 0.0
        self.last_loss = None
        self.global_step = 0

    def _tensor(self, queries):
        return torch.tensor([self.vocab.encode(q, self.cfg.max_len) for q in queries])

    def train_epoch(self):
        self.model.train()
        queries = self.log["query"].tolist()
        losses = []
        for i in range(0, len(queries), self.cfg.batch_size):
            ids = self._tensor(queries[i:i + self.cfg.batch_size])
            logits = self.model(ids[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1), ignore_index=0)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.global_step += 1
            losses.append(loss.item())
        self.scheduler.step()
        return np.mean(losses)

    def rank(self, prefix):
        """Trie candidates re-scored by popularity prior + weighted LM log-prob."""
        cands = [q for q, _ in self.trie.complete(prefix, self.cfg.candidates)]
        if not cands:
            return []
        self.model.eval()
        lm = self.model.sequence_logprob(self._tensor(cands)).tolist()
        scored = [(self.prior.log_prior(q) + self.cfg.lm_weight * s, q) for s, q in zip(lm, cands)]
        return [q for _, q in sorted(scored, reverse=True)]

    def reciprocal_ranks(self, pairs):
        rr = []
        for prefix, target in pairs:
            ranked = self.rank(prefix)
            rr.append(1.0 / (ranked.index(target) + 1) if target in ranked else 0.0)
        return rr

    def evaluate(self, pairs):
        rr = self.reciprocal_ranks(pairs)
        out = {"mrr": np.mean(rr), "n": len(rr)}
        for k in self.cfg.topk:
            out[f"success@{k}"] = sum(r >= 1.0 / k for r in rr) / len(rr)
        return out

    def evaluate_quick(self, pairs):
        rr = np.asarray(self.reciprocal_ranks(pairs))
        return rr.mean(), (rr == 1.0).mean()

    def fit(self, pairs):
        for _ in range(self.cfg.epochs):
            self.last_loss = self.train_epoch()
            metrics = self.evaluate(pairs)
            self.history["loss"].append(float(self.last_loss))
            self.history["mrr"].append(float(metrics["mrr"]))
            self.best_mrr = max(self.best_mrr, metrics["mrr"])
        return self

    def state(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "global_step": self.global_step,
        }


def bootstrap_ci(values, n_boot=200, seed=0):
    rng = np.random.default_rng(seed)
    values = np.asarray(values)
    means = [rng.choice(values, size=len(values)).mean() for _ in range(n_boot)]
    return np.percentile(means, [2.5, 97.5])


def _trained(epochs=1):
    cfg = QACConfig(epochs=epochs)
    trainer = QACTrainer(cfg)
    pairs = prefix_pairs(trainer.log["query"].unique().tolist(), max_len=3)
    return trainer.fit(pairs), pairs


def save_lm_checkpoint(tmpdir):
    trainer, pairs = _trained(epochs=2)
    metrics = trainer.evaluate(pairs)
    ckpt = trainer.state()
    ckpt["config"] = dataclasses.asdict(trainer.cfg)
    ckpt["vocab"] = trainer.vocab.itos
    ckpt["epoch"] = trainer.cfg.epochs
    ckpt["train_loss"] = trainer.last_loss  # truth: weights_only
    ckpt["best_mrr"] = trainer.best_mrr  # truth: weights_only
    ckpt["lr"] = trainer.scheduler.get_last_lr()[0]
    ckpt["metrics"] = {
        "mrr": metrics["mrr"],  # truth: weights_only
        "success_at_k": {k: metrics[f"success@{k}"] for k in trainer.cfg.topk},
        "n_pairs": metrics["n"],
    }
    ckpt["history"] = trainer.history  # truth: weights_only
    ckpt["history_plain"] = dict(trainer.history)
    path = os.path.join(tmpdir, "char_lm.pt")
    torch.save(ckpt, path)
    return path


def save_trie_index(tmpdir):
    trainer = QACTrainer(QACConfig(epochs=0))
    log = trainer.log
    scores = np.array(list(trainer.prior.scores.values()))
    prefixes = sorted({q[:2] for q in log["query"].unique().tolist()})
    index = {
        "trie": trainer.trie.root,
        "num_nodes": trainer.trie.num_nodes(),
        "top_completions": {p: trainer.trie.complete(p, 5) for p in prefixes},
        "counts": trainer.trie.counts,  # truth: weights_only
        "popularity": Counter(log["query"]),
        "normalizer": NORMALIZE_RE,  # truth: weights_only
        "normalizer_pattern": NORMALIZE_RE.pattern,
        "decay": {"half_life_days": trainer.prior.half_life_days,
                  "reference_time": trainer.prior.reference_time},
        "score_quantiles": np.quantile(scores, [0.5, 0.9, 0.99]),  # truth: weights_only
        "max_score": max(trainer.prior.scores.values()),
        "log_span": (log["ts"].min(), log["ts"].max()),  # truth: weights_only
        "log_span_iso": [log["ts"].min().isoformat(), log["ts"].max().isoformat()],
        "n_sessions": log["session"].nunique(),
        "queries_per_session": log.groupby("session").size().mean(),  # truth: weights_only
        "built_at": time.time(),
    }
    path = os.path.join(tmpdir, "trie_index.pt")
    torch.save(index, path)
    return path


def save_eval_report(tmpdir):
    trainer, pairs = _trained(epochs=1)
    report = {"by_prefix_len": {}, "overall": {}}
    all_rr, ranks = [], []
    for L in (1, 2, 3):
        sub = [(p, q) for p, q in pairs if len(p) == L]
        rr = trainer.reciprocal_ranks(sub)
        all_rr += rr
        ranks += [round(1 / r) for r in rr if r > 0]
        report["by_prefix_len"][L] = {"mrr": sum(rr) / len(rr), "n": len(rr), "zero_rate": rr.count(0.0) / len(rr)}
    report["overall"]["mrr"] = float(np.mean(all_rr))
    report["overall"]["mrr_ci"] = bootstrap_ci(all_rr)  # truth: weights_only
    report["overall"]["median_rank"] = statistics.median(ranks)
    report["overall"]["success_at_1"] = np.mean([r == 1 for r in ranks])  # truth: weights_only
    report["overall"]["success_at_3"] = sum(r <= 3 for r in ranks) / len(all_rr)
    report["rank_hist"] = np.bincount(ranks).tolist()
    report["worst_prefixes"] = sorted(((p, 1.0 / (trainer.rank(p).index(q) + 1) if q in trainer.rank(p) else 0.0)
                                       for p, q in pairs[:20]), key=lambda t: t[1])[:5]
    report["quick"] = trainer.evaluate_quick(pairs[:30])  # truth: weights_only
    path = os.path.join(tmpdir, "eval_report.pt")
    torch.save(report, path)
    return path


def save_full_model(tmpdir):
    trainer, _ = _trained(epochs=1)
    path = os.path.join(tmpdir, "char_lm_full.pt")
    torch.save(trainer.model, path)  # truth: weights_only
    return path


def save_serving_bundle(tmpdir):
    """What the autocomplete service loads: weights, vocab, and the precomputed top-k per prefix."""
    trainer, pairs = _trained(epochs=1)
    mrr, s1 = trainer.evaluate_quick(pairs)
    serving = {
        "state_dict": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
        "itos": list(trainer.vocab.itos),
        "stoi": trainer.vocab.stoi,
        "config": {**dataclasses.asdict(trainer.cfg), "vocab_size": len(trainer.vocab)},
        "topk_cache": {q[:1]: trainer.rank(q[:1])[:5] for q in sorted(SEED_QUERIES)},
        "prior": {q: round(s, 6) for q, s in trainer.prior.scores.items()},
        "mrr": mrr.item(),
        "success_at_1": float(s1),
        "torch_version": str(torch.__version__),
        "special_tokens": list(SPECIALS),
    }
    path = os.path.join(tmpdir, "serving.pt")
    torch.save(serving, path)
    return path


FACTORIES = {
    "QACTrainer": lambda: QACTrainer(QACConfig(epochs=0)),
    "CharVocab": lambda: CharVocab(list(SEED_QUERIES)),
    "PopularityPrior": lambda: PopularityPrior(7.0).fit(synth_query_log(50)),
}
