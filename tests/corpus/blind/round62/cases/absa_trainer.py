"""Aspect-category sentiment for product reviews.

Each example is (review text, aspect category, polarity).  Models are registered by name and
built from a dataclass config; `ABSATrainer` owns the loop and writes checkpoints that the
serving side reads back with `torch.load`.
"""
import datetime
import enum
import math
import os
import random
import re
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.preprocessing import LabelEncoder


class Polarity(enum.Enum):
    NEGATIVE = 0
    NEUTRAL = 1
    POSITIVE = 2


ASPECTS = ("battery", "screen", "price", "delivery", "support")
TOKEN_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
PHRASES = {
    ("battery", Polarity.POSITIVE): "battery lasts two full days",
    ("battery", Polarity.NEGATIVE): "battery drains before lunch",
    ("battery", Polarity.NEUTRAL): "battery is about what you'd expect",
    ("screen", Polarity.POSITIVE): "screen is bright and sharp",
    ("screen", Polarity.NEGATIVE): "screen scratched in a week",
    ("screen", Polarity.NEUTRAL): "screen is a standard panel",
    ("price", Polarity.POSITIVE): "great value for the money",
    ("price", Polarity.NEGATIVE): "way overpriced for what it is",
    ("price", Polarity.NEUTRAL): "price is in line with others",
    ("delivery", Polarity.POSITIVE): "arrived a day early",
    ("delivery", Polarity.NEGATIVE): "courier lost the parcel twice",
    ("delivery", Polarity.NEUTRAL): "shipping took the usual time",
    ("support", Polarity.POSITIVE): "support replied within an hour",
    ("support", Polarity.NEGATIVE): "support never answered my emails",
    ("support", Polarity.NEUTRAL): "support sent a form reply",
}


def make_reviews(n=90, seed=3):
    rng = random.Random(seed)
    keys = sorted(PHRASES, key=lambda k: (k[0], k[1].value))
    out = []
    for _ in range(n):
        (aspect, pol), (other, _) = rng.choice(keys), rng.choice(keys)
        text = f"Honestly the {PHRASES[(aspect, pol)]}, and the {PHRASES[(other, Polarity.NEUTRAL)]}."
        out.append((text, aspect, pol.name))
    return out


@dataclass
class DataConfig:
    max_len: int = 24
    min_freq: int = 1
    lowercase: bool = True
    aspects: tuple = ASPECTS


@dataclass
class ModelConfig:
    name: str = "aspect_bilstm"
    embed_dim: int = 32
    hidden: int = 24
    dropout: float = 0.1


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    lr: float = 3e-3
    epochs: int = 3
    batch_size: int = 16
    seed: int = 13
    label_smoothing: float = 0.05


class Vocab:
    PAD, UNK = "<pad>", "<unk>"

    def __init__(self, counter, min_freq=1):
        words = sorted(w for w, c in counter.items() if c >= min_freq)
        self.itos = [self.PAD, self.UNK] + words
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self):
        return len(self.itos)

    def encode(self, tokens, max_len):
        ids = [self.stoi.get(t, 1) for t in tokens[:max_len]]
        return ids + [0] * (max_len - len(ids))


MODEL_REGISTRY = {}


def register_model(name):
    def deco(cls):
        MODEL_REGISTRY[name] = cls
        return cls
    return deco


@register_model("aspect_bilstm")
class AspectBiLSTM(nn.Module):
    def __init__(self, vocab_size, n_aspects, n_classes, embed_dim=32, hidden=24, dropout=0.1):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.aspect_embed = nn.Embedding(n_aspects, 2 * hidden)
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(4 * hidden, n_classes)

    def forward(self, ids, aspect):
        h, _ = self.lstm(self.embed(ids))
        q = self.aspect_embed(aspect)
        scores = (h @ q.unsqueeze(-1)).squeeze(-1).masked_fill(ids == 0, -1e4)
        ctx = (F.softmax(scores, -1).unsqueeze(-1) * h).sum(1)
        return self.out(self.drop(torch.cat([ctx, q], -1)))


@register_model("aspect_cnn")
class AspectCNN(nn.Module):
    def __init__(self, vocab_size, n_aspects, n_classes, embed_dim=32, hidden=24, dropout=0.1):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.aspect_embed = nn.Embedding(n_aspects, embed_dim)
        self.conv = nn.Conv1d(2 * embed_dim, hidden, 3, padding=1)
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def forward(self, ids, aspect):
        x = self.embed(ids)
        a = self.aspect_embed(aspect).unsqueeze(1).expand_as(x)
        h = torch.relu(self.conv(torch.cat([x, a], -1).transpose(1, 2)))
        return self.out(h.max(-1).values)


def build_model(cfg: ModelConfig, vocab_size, n_aspects, n_classes):
    cls = MODEL_REGISTRY[cfg.name]
    return cls(vocab_size, n_aspects, n_classes, cfg.embed_dim, cfg.hidden, cfg.dropout)


def tokenize(text, lowercase=True):
    return TOKEN_RE.findall(text.lower() if lowercase else text)


class ABSATrainer:
    def __init__(self, cfg: TrainConfig, reviews=None):
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.reviews = reviews or make_reviews(seed=cfg.seed)
        tokens = [tokenize(t, cfg.data.lowercase) for t, _, _ in self.reviews]
        self.vocab = Vocab(Counter(w for toks in tokens for w in toks), cfg.data.min_freq)
        self.le = LabelEncoder().fit([p.name for p in Polarity])
        self.aspect_index = {a: i for i, a in enumerate(cfg.data.aspects)}
        self.ids = torch.tensor([self.vocab.encode(t, cfg.data.max_len) for t in tokens])
        self.aspects = torch.tensor([self.aspect_index[a] for _, a, _ in self.reviews])
        self.labels = torch.from_numpy(self.le.transform([p for _, _, p in self.reviews])).long()
        self.model = build_model(cfg.model, len(self.vocab), len(cfg.data.aspects), len(self.le.classes_))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.LinearLR(self.optimizer, 1.0, 0.1, total_iters=cfg.epochs)
        self.history = {"loss": [], "macro_f1": [], "acc": []}
        self.best_acc = 0.0
        self.best_epoch = -1
        self.global_step = 0

    def train_epoch(self):
        self.model.train()
        perm = torch.randperm(len(self.ids))
        losses = []
        for i in range(0, len(perm), self.cfg.batch_size):
            idx = perm[i:i + self.cfg.batch_size]
            logits = self.model(self.ids[idx], self.aspects[idx])
            loss = F.cross_entropy(logits, self.labels[idx], label_smoothing=self.cfg.label_smoothing)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.global_step += 1
            losses.append(loss.item())
        self.scheduler.step()
        return np.mean(losses)

    @torch.no_grad()
    def evaluate(self):
        self.model.eval()
        pred = self.model(self.ids, self.aspects).argmax(-1).numpy()
        gold = self.labels.numpy()
        per_aspect = {}
        for name, i in self.aspect_index.items():
            m = self.aspects.numpy() == i
            per_aspect[name] = f1_score(gold[m], pred[m], average="macro") if m.any() else 0.0
        return {"macro_f1": f1_score(gold, pred, average="macro"), "acc": (pred == gold).mean(),
                "per_aspect": per_aspect, "pred": pred}

    def fit(self):
        last = None
        for epoch in range(self.cfg.epochs):
            last = self.train_epoch()
            metrics = self.evaluate()
            self.history["loss"].append(float(last))
            self.history["macro_f1"].append(metrics["macro_f1"])
            self.history["acc"].append(metrics["acc"].item())
            if metrics["acc"] > self.best_acc:
                self.best_acc, self.best_epoch = metrics["acc"], epoch
        return last, metrics

    def state_dict(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "global_step": self.global_step,
            "history": {k: list(v) for k, v in self.history.items()},
        }

    def save_checkpoint(self, path, extra=None):
        state = self.state_dict()
        state.update(extra or {})
        torch.save(state, path)
        return path


def save_bilstm_checkpoint(tmpdir):
    cfg = TrainConfig()
    trainer = ABSATrainer(cfg)
    last_loss, metrics = trainer.fit()
    now = datetime.datetime.now(datetime.timezone.utc)
    return trainer.save_checkpoint(os.path.join(tmpdir, "absa_bilstm.pt"), {
        "config": cfg,  # truth: weights_only
        "config_dict": asdict(cfg),
        "train_loss": last_loss,  # truth: weights_only
        "label_names": trainer.le.classes_,  # truth: weights_only
        "label_list": list(map(str, trainer.le.classes_)),
        "vocab_itos": trainer.vocab.itos,
        "macro_f1": metrics["macro_f1"],
        "per_aspect_f1": metrics["per_aspect"],
        "best_acc": trainer.best_acc,  # truth: weights_only
        "best_epoch": trainer.best_epoch,
        "created": now,  # truth: weights_only
        "created_iso": now.isoformat(),
    })


def save_cnn_variant(tmpdir):
    cfg = TrainConfig(model=ModelConfig(name="aspect_cnn", hidden=16), epochs=2)
    trainer = ABSATrainer(cfg)
    trainer.fit()
    ckpt = trainer.state_dict()
    ckpt["arch"] = cfg.model.name
    ckpt["model_kwargs"] = {k: v for k, v in asdict(cfg.model).items() if k != "name"}
    ckpt["aspects"] = list(cfg.data.aspects)
    ckpt["acc_curve"] = trainer.history["acc"]
    ckpt["best_acc"] = float(trainer.best_acc)
    ckpt["pad_idx"] = trainer.vocab.stoi[Vocab.PAD]
    ckpt["run_id"] = str(uuid.uuid5(uuid.NAMESPACE_DNS, "absa-cnn"))
    ckpt["polarity_map"] = {p.name: p.value for p in Polarity}
    ckpt["steps_per_sec"] = trainer.global_step / max(time.process_time(), 1e-6)
    path = os.path.join(tmpdir, "absa_cnn.pt")
    torch.save(ckpt, path)
    return path


def fit_tfidf_baseline(reviews, seed=0):
    texts = [f"{aspect} {text}" for text, aspect, _ in reviews]
    labels = [p for _, _, p in reviews]
    vec = TfidfVectorizer(tokenizer=tokenize, token_pattern=None, stop_words=sorted(ENGLISH_STOP_WORDS),
                          ngram_range=(1, 2), min_df=1, sublinear_tf=True)
    X = vec.fit_transform(texts)
    clf = LogisticRegression(C=4.0, max_iter=200, random_state=seed).fit(X, labels)
    return vec, clf, X, labels


def save_tfidf_baseline(tmpdir):
    vec, clf, X, labels = fit_tfidf_baseline(make_reviews(60, seed=5))
    pred = clf.predict(X)
    ckpt = {
        "kind": "tfidf_logreg",
        "vectorizer": vec,  # truth: weights_only
        "vocabulary": vec.vocabulary_,
        "idf": vec.idf_,  # truth: weights_only
        "coef": torch.from_numpy(clf.coef_).float(),
        "intercept": clf.intercept_.tolist(),
        "classes": clf.classes_.tolist(),
        "C": clf.C,
        "stop_words": ENGLISH_STOP_WORDS,  # truth: weights_only
        "ngram_range": vec.ngram_range,
        "train_f1": f1_score(labels, pred, average="macro"),
        "train_acc": sum(p == y for p, y in zip(pred, labels)) / len(labels),
        "n_features": X.shape[1],
    }
    path = os.path.join(tmpdir, "tfidf_baseline.pt")
    torch.save(ckpt, path)
    return path


def pretrained_vectors(vocab, dim, seed=0):
    """Stand-in for a GloVe lookup: random vectors for known words, zeros for the rest."""
    rng = np.random.default_rng(seed)
    table = {w: rng.normal(0, 0.3, dim).astype(np.float32) for w in vocab.itos[2:] if len(w) > 3}
    emb = np.zeros((len(vocab), dim), dtype=np.float32)
    for w, i in vocab.stoi.items():
        if w in table:
            emb[i] = table[w]
    return emb, table


def save_vocab_and_embeddings(tmpdir):
    reviews = make_reviews(120, seed=9)
    counter = Counter(w for t, _, _ in reviews for w in tokenize(t))
    vocab = Vocab(counter, min_freq=2)
    emb, table = pretrained_vectors(vocab, 16)
    hits = np.isin(vocab.itos, list(table)).sum()
    lengths = [len(tokenize(t)) for t, _, _ in reviews]
    payload = {"vocab": vocab}  # truth: weights_only
    payload.update({
        "itos": vocab.itos,
        "stoi": vocab.stoi,
        "freqs": counter,
        "embeddings": emb,  # truth: weights_only
        "embeddings_t": torch.from_numpy(emb),
        "coverage": hits / len(vocab),  # truth: weights_only
        "coverage_pct": round(100.0 * int(hits) / len(vocab), 2),
        "max_len": int(np.percentile(lengths, 95)),
        "mean_len": sum(lengths) / len(lengths),
        "token_pattern": TOKEN_RE,  # truth: weights_only
        "token_regex": TOKEN_RE.pattern,
        "default_polarity_name": Polarity.NEUTRAL.name,
        "embed_norm": math.sqrt(float((emb ** 2).sum())),
    })
    path = os.path.join(tmpdir, "vocab_emb.pt")
    torch.save(payload, path)
    return path


def save_serving_bundle(tmpdir):
    cfg = TrainConfig(epochs=1)
    trainer = ABSATrainer(cfg)
    trainer.fit()
    cnn = build_model(ModelConfig(name="aspect_cnn"), len(trainer.vocab), len(ASPECTS), 3)
    bundle = {
        "models": {name: m.state_dict() for name, m in [("aspect_bilstm", trainer.model), ("aspect_cnn", cnn)]},
        "registry": sorted(MODEL_REGISTRY),
        "itos": list(trainer.vocab.itos),
        "labels": [str(c) for c in trainer.le.classes_],
        "aspects": ASPECTS,
        "thresholds": {"abstain": 0.45, "conflict_margin": 0.1},
        "model_cfg": asdict(cfg.model),
        "max_len": cfg.data.max_len,
        "dtype": torch.get_default_dtype(),
        "rng": torch.random.get_rng_state(),
    }
    path = os.path.join(tmpdir, "serving.pt")
    torch.save(bundle, path)
    return path


def save_error_analysis(tmpdir):
    trainer = ABSATrainer(TrainConfig(epochs=1, seed=21))
    trainer.fit()
    metrics = trainer.evaluate()
    gold = trainer.labels.numpy()
    names = trainer.le.inverse_transform(metrics["pred"])
    errors = [(text, aspect, pol, names[i]) for i, (text, aspect, pol) in enumerate(trainer.reviews)
              if metrics["pred"][i] != gold[i]]
    confusions = Counter((pol, str(names[i])) for i, (_, _, pol) in enumerate(trainer.reviews))
    hardest = min(metrics["per_aspect"], key=metrics["per_aspect"].get)
    out = {
        "errors": errors[:20],  # truth: weights_only
        "n_errors": len(errors),
        "confusions": confusions,
        "hardest_aspect": hardest,
        "hardest_f1": metrics["per_aspect"][hardest],
        "support_list": np.bincount(gold, minlength=3).tolist(),
        "error_rate": float(len(errors)) / len(gold),
    }
    path = os.path.join(tmpdir, "errors.pt")
    torch.save(out, path)
    return path


FACTORIES = {
    "AspectBiLSTM": lambda: build_model(ModelConfig(), 50, len(ASPECTS), 3),
    "AspectCNN": lambda: build_model(ModelConfig(name="aspect_cnn"), 50, len(ASPECTS), 3),
    "Vocab": lambda: Vocab(Counter(tokenize("the battery died and the screen cracked"))),
    "ABSATrainer": lambda: ABSATrainer(TrainConfig(epochs=1)),
    "Polarity": lambda: Polarity.POSITIVE,
}
