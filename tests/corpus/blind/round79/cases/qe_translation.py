"""Sentence-level quality estimation for machine translation (HTER / DA regression).

A small bag-of-embeddings predictor over (source, MT) pairs, trained from an argparse
script.  Mirrors the layout of WMT QE shared-task baselines: a tokenizer + vocab step,
a trainer class with evaluate()/state() helpers, and several checkpoint writers
(best model, vocab bundle, z-score normaliser, whole-model export, ensemble, resume).
"""
import argparse
import collections
import datetime
import hashlib
import math
import os
import random
import re
import time

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_squared_error

LANG_PAIRS = ("en-de", "en-zh", "ro-en", "et-en")
TOKEN_RE = re.compile(r"\w+|[^\w\s]")
PAD, UNK = "<pad>", "<unk>"
_WORDS = ["the", "house", "is", "small", "red", "a", "cat", "sat", "on", "mat", "green",
          "tree", "river", "bank", "money", "fast", "slow", "car", "road", ",", ".", "!"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="train a sentence-level QE regressor")
    p.add_argument("--target", choices=["hter", "da"], default="hter")
    p.add_argument("--emb-dim", type=int, default=32)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--max-len", type=int, default=24)
    p.add_argument("--min-freq", type=int, default=1)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--out-dir", default="runs/qe")
    return p.parse_args(argv)


def make_synthetic_wmt(n=96, seed=0):
    """A stand-in for the WMT QE tsv files: lp, src, mt, hter, da."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        lp = LANG_PAIRS[i % len(LANG_PAIRS)]
        src = " ".join(rng.choice(_WORDS, size=int(rng.integers(4, 12))))
        mt_tokens = src.split()
        n_edits = int(rng.integers(0, len(mt_tokens)))
        for j in rng.choice(len(mt_tokens), size=n_edits, replace=False):
            mt_tokens[j] = str(rng.choice(_WORDS))
        hter = n_edits / len(mt_tokens)
        rows.append({"lp": lp, "src": src, "mt": " ".join(mt_tokens), "hter": hter,
                     "da": 100.0 * (1.0 - hter) + float(rng.normal(0.0, 5.0))})
    return pd.DataFrame(rows)


def tokenize(text):
    return TOKEN_RE.findall(text.lower())


def build_vocab(texts, min_freq=1):
    freq = collections.Counter()
    for t in texts:
        freq.update(tokenize(t))
    itos = [PAD, UNK] + sorted(w for w, c in freq.items() if c >= min_freq)
    stoi = {w: i for i, w in enumerate(itos)}
    return stoi, itos, freq


def encode(texts, stoi, max_len):
    out = torch.zeros(len(texts), max_len, dtype=torch.long)
    for i, t in enumerate(texts):
        ids = [stoi.get(w, 1) for w in tokenize(t)][:max_len]
        out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


class QERegressor(nn.Module):
    def __init__(self, vocab_size=64, emb_dim=32, hidden=64, dropout=0.1):
        super().__init__()
        self.emb = nn.EmbeddingBag(vocab_size, emb_dim, mode="mean", padding_idx=0)
        self.head = nn.Sequential(
            nn.Linear(3 * emb_dim, hidden), nn.Tanh(), nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, src_ids, mt_ids):
        s, m = self.emb(src_ids), self.emb(mt_ids)
        return self.head(torch.cat([s, m, (s - m).abs()], dim=-1)).squeeze(-1)


class QETrainer:
    def __init__(self, args, train_df, dev_df):
        self.args = args
        torch.manual_seed(args.seed)
        self.stoi, self.itos, self.freq = build_vocab(list(train_df.src) + list(train_df.mt), args.min_freq)
        self.train_df, self.dev_df = train_df, dev_df
        self.model = QERegressor(len(self.itos), args.emb_dim, args.hidden, args.dropout)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=args.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=0.5)
        self.loss_fn = nn.MSELoss()
        self.history = []
        self.best = {"pearson": -1.0, "epoch": -1}
        self.recent_scores = collections.deque(maxlen=args.patience)
        self.bad_epochs = 0
        self.started_at = datetime.datetime.now()
        self.t0 = time.time()

    def _tensors(self, df):
        src = encode(list(df.src), self.stoi, self.args.max_len)
        mt = encode(list(df.mt), self.stoi, self.args.max_len)
        y = torch.tensor(df[self.args.target].to_numpy(), dtype=torch.float32)
        return src, mt, y

    def train_epoch(self):
        self.model.train()
        src, mt, y = self._tensors(self.train_df)
        total, n = 0.0, 0
        for i in range(0, len(y), self.args.batch_size):
            sl = slice(i, i + self.args.batch_size)
            loss = self.loss_fn(self.model(src[sl], mt[sl]), y[sl])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            total += loss.item() * len(y[sl])
            n += len(y[sl])
        self.scheduler.step()
        return total / n

    @torch.no_grad()
    def predict(self, df):
        self.model.eval()
        src, mt, _ = self._tensors(df)
        return self.model(src, mt).numpy()

    def evaluate(self, df):
        pred, gold = self.predict(df), df[self.args.target].to_numpy()
        return {
            "pearson": stats.pearsonr(pred, gold)[0],
            "spearman": float(stats.spearmanr(pred, gold).statistic),
            "mae": mean_absolute_error(gold, pred),
            "rmse": math.sqrt(mean_squared_error(gold, pred)),
        }

    def fit(self, epochs):
        for epoch in range(epochs):
            loss = self.train_epoch()
            m = self.evaluate(self.dev_df)
            self.history.append({"epoch": epoch, "loss": loss, **{k: float(v) for k, v in m.items()}})
            self.recent_scores.append(float(m["pearson"]))
            if m["pearson"] > self.best["pearson"]:
                self.best = {"pearson": float(m["pearson"]), "epoch": epoch}
                self.bad_epochs = 0
            else:
                self.bad_epochs += 1
        return self.history[-1]

    def state(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }


def _split(df, frac=0.75, seed=0):
    train = df.sample(frac=frac, random_state=seed)
    return train, df.drop(train.index)


def _trainer(argv=(), n=96):
    args = parse_args(list(argv))
    train_df, dev_df = _split(make_synthetic_wmt(n, args.seed))
    return args, QETrainer(args, train_df, dev_df)


FACTORIES = {
    "QETrainer": lambda: _trainer()[1],
}


def save_qe_best(tmpdir):
    args, trainer = _trainer()
    last = trainer.fit(args.epochs)
    metrics = trainer.evaluate(trainer.dev_df)
    ckpt = trainer.state()
    ckpt.update({
        "epoch": last["epoch"],
        "args": args,  # truth: weights_only
        "hparams": vars(args),
        "pearson": metrics["pearson"],  # truth: weights_only
        "spearman": metrics["spearman"],
        "mae": metrics["mae"],
        "rmse": metrics["rmse"],
        "history": trainer.history,
        "best": dict(trainer.best),
    })
    path = os.path.join(tmpdir, "qe_best.pt")
    torch.save(ckpt, path)
    return path


def save_qe_vocab_bundle(tmpdir):
    args, trainer = _trainer()
    df = pd.concat([trainer.train_df, trainer.dev_df])
    dev_tokens = [w for t in trainer.dev_df.mt for w in tokenize(t)]
    oov = sum(1 for w in dev_tokens if w not in trainer.stoi)
    ratio = df.mt.str.len() / df.src.str.len()
    bundle = {
        "stoi": trainer.stoi,
        "itos": trainer.itos,
        "freq": trainer.freq,
        "specials": [PAD, UNK],
        "token_pattern": TOKEN_RE,  # truth: weights_only
        "token_pattern_str": TOKEN_RE.pattern,
        "lang_pairs": frozenset(df.lp),  # truth: weights_only
        "lang_pair_list": sorted(set(df["lp"])),
        "lp_counts": df["lp"].value_counts().to_dict(),
        "max_len": args.max_len,
        "oov_rate": oov / max(len(dev_tokens), 1),
        "length_ratio": ratio.median(),  # truth: weights_only
        "length_ratio_p90": ratio.quantile(0.9).item(),
    }
    path = os.path.join(tmpdir, "vocab.pt")
    torch.save(bundle, path)
    return path


def save_qe_normalizer(tmpdir):
    args, trainer = _trainer(["--target", "da"])
    trainer.fit(1)
    df = trainer.train_df
    per_lp = {}
    for lp, group in df.groupby("lp"):
        per_lp[lp] = {"mean": float(group.da.mean()), "std": float(group.da.std()), "n": len(group)}
    pred = trainer.predict(trainer.dev_df)
    coeffs = np.polyfit(pred, trainer.dev_df.da.to_numpy(), deg=1)
    norm = dict(
        per_lp=per_lp,
        global_mean=df["da"].mean(),  # truth: weights_only
        global_std=float(df["da"].std()),
        hter_range=(df.hter.min(), df.hter.max()),  # truth: weights_only
        calibration=np.polyfit(pred, trainer.dev_df.da.to_numpy(), deg=1),  # truth: weights_only
        calibration_list=coeffs.tolist(),
        n_by_lp=df.groupby("lp").size().to_dict(),
        clip=(0.0, 100.0),
        target=args.target,
    )
    path = os.path.join(tmpdir, "normalizer.pt")
    torch.save(norm, path)
    return path


def save_qe_export(tmpdir):
    _, trainer = _trainer()
    trainer.fit(1)
    path = os.path.join(tmpdir, "qe_model_full.pt")
    torch.save(trainer.model, path)  # truth: weights_only
    return path


def save_qe_ensemble(tmpdir):
    members, scores = [], []
    for seed in (1, 2, 3):
        args, trainer = _trainer(["--seed", str(seed)], n=64)
        trainer.fit(1)
        members.append(trainer.model.state_dict())
        scores.append(trainer.evaluate(trainer.dev_df)["pearson"])
    weights = torch.softmax(torch.tensor([float(s) for s in scores]), dim=0)
    data_hash = hashlib.sha1("".join(trainer.train_df.src).encode()).hexdigest()
    ckpt = {
        "members": members,
        "weights": weights,
        "seed_scores": [round(float(s), 4) for s in scores],
        "best_member": int(np.argmax(scores)),
        "vocab_size": len(trainer.itos),
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "data_sha1": data_hash,
        "torch_rng": torch.get_rng_state(),
        "py_rng": random.getstate(),
        "torch_version": str(torch.__version__),
    }
    path = os.path.join(tmpdir, "ensemble.pt")
    torch.save(ckpt, path)
    return path


def save_qe_resume(tmpdir):
    args, trainer = _trainer(["--patience", "2"])
    trainer.fit(args.epochs)
    ckpt = {"state": trainer.state(), "epoch": len(trainer.history)}
    ckpt["best_epoch"] = trainer.best["epoch"]
    ckpt["best_score"] = trainer.best["pearson"]
    ckpt["np_rng"] = np.random.get_state()  # truth: weights_only
    ckpt["started_at"] = trainer.started_at  # truth: weights_only
    ckpt["elapsed_s"] = time.time() - trainer.t0
    ckpt["early_stop"] = {
        "patience": args.patience,
        "bad_epochs": trainer.bad_epochs,
        "recent": trainer.recent_scores,  # truth: weights_only
        "recent_list": list(trainer.recent_scores),
    }
    ckpt["lr"] = trainer.scheduler.get_last_lr()[0]
    path = os.path.join(tmpdir, "resume.pt")
    torch.save(ckpt, path)
    return path
