"""Handwritten mathematical expression recognition (CROHME-style) - image to LaTeX.

DenseNet-ish CNN encoder, GRU decoder with additive attention, token-level
cross entropy.  Configuration comes from dataclasses filled from a YAML file,
the trainer is a class with small helpers that return tuples / dicts, and the
evaluation computes ExpRate and the <=1 / <=2 error rates from edit distances.
"""
import enum
import math
import os
import re
import time
from collections import Counter, OrderedDict, namedtuple
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

CONFIG_YAML = """
data:
  name: crohme
  years: [2014, 2016, 2019]
  img_height: 32
  max_width: 96
  max_tokens: 24
meta:
  release: 2019-06-01
  annotator: tc11
  license: CC-BY-NC-SA
train:
  epochs: 2
  batch_size: 8
  lr: 1.0e-3
  clip: 5.0
"""

TOKEN_RE = re.compile(r"\\[A-Za-z]+|[{}^_]|[0-9]|[A-Za-z]|[+\-=()<>,.!|/*]")

Sample = namedtuple("Sample", ["image_id", "latex", "prediction", "distance"])


class DecodeMode(enum.Enum):
    GREEDY = "greedy"
    BEAM = "beam"


@dataclass
class ModelConfig:
    growth: int = 8
    enc_channels: int = 32
    emb_dim: int = 32
    hidden: int = 64
    attn_dim: int = 32
    dropout: float = 0.1


@dataclass
class RunConfig:
    data_root: Path = Path("data/crohme")
    epochs: int = 2
    batch_size: int = 8
    lr: float = 1e-3
    clip: float = 5.0
    decode_mode: DecodeMode = DecodeMode.GREEDY
    model: ModelConfig = field(default_factory=ModelConfig)

    @classmethod
    def from_yaml(cls, text):
        raw = yaml.safe_load(text)
        cfg = cls(**{k: v for k, v in raw["train"].items() if k in cls.__dataclass_fields__})
        return cfg, raw


class Vocab:
    SPECIALS = ("<pad>", "<sos>", "<eos>", "<unk>")

    def __init__(self, tokens=()):
        self.itos = list(self.SPECIALS) + sorted(set(tokens) - set(self.SPECIALS))
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @property
    def pad(self):
        return self.stoi["<pad>"]

    def __len__(self):
        return len(self.itos)

    def encode(self, latex):
        return [self.stoi["<sos>"]] + [self.stoi.get(t, 3) for t in TOKEN_RE.findall(latex)] + [self.stoi["<eos>"]]

    def decode(self, ids):
        out = []
        for i in ids:
            tok = self.itos[i]
            if tok == "<eos>":
                break
            if tok not in self.SPECIALS:
                out.append(tok)
        return out

    def state_dict(self):
        return {"itos": list(self.itos)}


FORMULAS = [r"x^{2}+y^{2}=z^{2}", r"\frac{a}{b}", r"\sqrt{x+1}", r"\sum_{i=1}^{n}i", r"e^{i\pi}+1=0",
            r"\alpha+\beta", r"\int_{0}^{1}xdx", r"\lim_{x\to0}\frac{\sin x}{x}", r"a_{n+1}=2a_{n}", r"f(x)=mx+b"]


def render_fake(latex, height, width, rng):
    """Stand-in for the InkML rasteriser: strokes become noisy horizontal bars."""
    img = np.zeros((height, width), dtype=np.float32)
    for j, tok in enumerate(TOKEN_RE.findall(latex)[: width // 4]):
        row = (sum(map(ord, tok)) % (height - 4)) + 2
        img[row - 1: row + 2, 4 * j: 4 * j + 3] = 1.0
    return np.clip(img + rng.normal(0, 0.05, img.shape), 0, 1).astype(np.float32)


def build_dataset(raw, n=40, seed=0):
    rng = np.random.default_rng(seed)
    d = raw["data"]
    images, labels = [], []
    for i in range(n):
        latex = FORMULAS[i % len(FORMULAS)]
        images.append(render_fake(latex, d["img_height"], d["max_width"], rng))
        labels.append(latex)
    return np.stack(images), labels


def edit_distance(a, b):
    dp = np.zeros((len(a) + 1, len(b) + 1), dtype=np.int64)
    dp[:, 0] = np.arange(len(a) + 1)
    dp[0, :] = np.arange(len(b) + 1)
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            dp[i, j] = min(dp[i - 1, j] + 1, dp[i, j - 1] + 1, dp[i - 1, j - 1] + cost)
    return dp[-1, -1]


class Encoder(nn.Module):
    def __init__(self, cfg=None):
        super().__init__()
        cfg = cfg or ModelConfig()
        self.stem = nn.Conv2d(1, cfg.enc_channels, 3, padding=1)
        self.block = nn.Sequential(nn.BatchNorm2d(cfg.enc_channels), nn.ReLU(),
                                   nn.Conv2d(cfg.enc_channels, cfg.enc_channels, 3, padding=1))
        self.pool = nn.AvgPool2d(2)

    def forward(self, x):
        h = self.pool(F.relu(self.stem(x)))
        h = self.pool(h + self.block(h))
        return h.flatten(2).transpose(1, 2)  # B, HW, C


class AttnDecoder(nn.Module):
    def __init__(self, vocab_size=32, cfg=None):
        super().__init__()
        cfg = cfg or ModelConfig()
        self.emb = nn.Embedding(vocab_size, cfg.emb_dim)
        self.gru = nn.GRUCell(cfg.emb_dim + cfg.enc_channels, cfg.hidden)
        self.q = nn.Linear(cfg.hidden, cfg.attn_dim)
        self.k = nn.Linear(cfg.enc_channels, cfg.attn_dim)
        self.v = nn.Linear(cfg.attn_dim, 1)
        self.out = nn.Linear(cfg.hidden + cfg.enc_channels, vocab_size)
        self.hidden = cfg.hidden

    def step(self, tok, h, feats, keys):
        scores = self.v(torch.tanh(keys + self.q(h)[:, None])).squeeze(-1)
        alpha = scores.softmax(-1)
        ctx = (alpha[..., None] * feats).sum(1)
        h = self.gru(torch.cat([self.emb(tok), ctx], -1), h)
        return self.out(torch.cat([h, ctx], -1)), h

    def forward(self, feats, targets):
        keys = self.k(feats)
        h = feats.new_zeros(feats.size(0), self.hidden)
        logits = []
        for t in range(targets.size(1) - 1):
            lo, h = self.step(targets[:, t], h, feats, keys)
            logits.append(lo)
        return torch.stack(logits, 1)

    @torch.no_grad()
    def greedy(self, feats, sos, max_len):
        keys = self.k(feats)
        h = feats.new_zeros(feats.size(0), self.hidden)
        tok = torch.full((feats.size(0),), sos, dtype=torch.long)
        out = []
        for _ in range(max_len):
            lo, h = self.step(tok, h, feats, keys)
            tok = lo.argmax(-1)
            out.append(tok)
        return torch.stack(out, 1)


class HMETrainer:
    def __init__(self, cfg=None, raw=None):
        self.cfg, self.raw = (cfg, raw) if cfg is not None else RunConfig.from_yaml(CONFIG_YAML)
        images, labels = build_dataset(self.raw)
        self.vocab = Vocab(t for s in labels for t in TOKEN_RE.findall(s))
        self.images = torch.from_numpy(images)[:, None]
        self.labels = labels
        self.max_tokens = self.raw["data"]["max_tokens"]
        self.encoder = Encoder(self.cfg.model)
        self.decoder = AttnDecoder(len(self.vocab), self.cfg.model)
        params = list(self.encoder.parameters()) + list(self.decoder.parameters())
        self.optimizer = torch.optim.Adam(params, lr=self.cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=0.5)
        self.metrics = OrderedDict()
        self.best_exprate = 0.0
        self.step = 0

    def _pad_targets(self, idx):
        seqs = [self.vocab.encode(self.labels[i])[: self.max_tokens] for i in idx]
        width = max(len(s) for s in seqs)
        return torch.tensor([s + [self.vocab.pad] * (width - len(s)) for s in seqs])

    def train_epoch(self):
        order = torch.randperm(len(self.labels)).tolist()
        total, count = 0.0, 0
        for s in range(0, len(order), self.cfg.batch_size):
            idx = order[s:s + self.cfg.batch_size]
            tgt = self._pad_targets(idx)
            logits = self.decoder(self.encoder(self.images[idx]), tgt)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt[:, 1:].reshape(-1),
                                   ignore_index=self.vocab.pad)
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.decoder.parameters(), self.cfg.clip)
            self.optimizer.step()
            total += loss.item() * len(idx)
            count += len(idx)
            self.step += 1
        self.scheduler.step()
        return total / count, count

    def evaluate(self):
        preds = self.decoder.greedy(self.encoder(self.images), 1, self.max_tokens)
        dists, worst = [], None
        for i, row in enumerate(preds.tolist()):
            hyp = self.vocab.decode(row)
            ref = TOKEN_RE.findall(self.labels[i])
            d = edit_distance(hyp, ref)
            dists.append(d)
            if worst is None or d > worst.distance:
                worst = Sample(i, self.labels[i], " ".join(hyp), int(d))
        dists = np.asarray(dists)
        return dists, worst

    def fit(self):
        for epoch in range(self.cfg.epochs):
            loss, n = self.train_epoch()
            dists, worst = self.evaluate()
            exprate = np.mean(dists == 0)
            self.metrics[f"epoch{epoch}"] = {"loss": loss, "exprate": exprate.item(), "n": n}
            if exprate >= self.best_exprate:
                self.best_exprate = exprate
        return dists, worst


# --------------------------------------------------------------------- checkpoints

def save_training_state(tmpdir):
    trainer = HMETrainer()
    dists, worst = trainer.fit()
    ckpt = {
        "encoder": trainer.encoder.state_dict(),
        "decoder": trainer.decoder.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "step": trainer.step,
        "vocab": trainer.vocab,  # truth: weights_only
        "config": trainer.cfg,  # truth: weights_only
        "history": trainer.metrics,
    }
    ckpt["best_exprate"] = trainer.best_exprate  # truth: weights_only
    ckpt["last_lr"] = trainer.scheduler.get_last_lr()[0]
    path = os.path.join(tmpdir, "hme_state.pt")
    torch.save(ckpt, path)
    return path


def _error_rates(dists):
    n = len(dists)
    return {
        "exprate": float((dists == 0).sum() / n),
        "le1": sum(int(d <= 1) for d in dists) / n,
        "le2": (dists <= 2).mean(),
        "mean_ed": sum(dists) / n,
    }


def save_release(tmpdir):
    cfg, raw = RunConfig.from_yaml(CONFIG_YAML)
    cfg.decode_mode = DecodeMode.BEAM
    trainer = HMETrainer(cfg, raw)
    dists, worst = trainer.fit()
    rates = _error_rates(dists)
    release = {
        "weights": {"encoder": trainer.encoder.state_dict(), "decoder": trainer.decoder.state_dict()},
        "vocab": trainer.vocab.state_dict(),
        "config": asdict(trainer.cfg.model),
        "data_cfg": raw["data"],
        "dataset_release": raw["meta"]["release"],  # truth: weights_only
        "decode_mode": cfg.decode_mode,  # truth: weights_only
        "decode_mode_name": cfg.decode_mode.value,
        "tokenizer": TOKEN_RE,  # truth: weights_only
        "tokenizer_pattern": TOKEN_RE.pattern,
        "exprate": rates["exprate"],
        "le1": rates["le1"],
        "le2": rates["le2"],  # truth: weights_only
        "mean_ed": rates["mean_ed"],  # truth: weights_only
        "data_root": cfg.data_root,  # truth: weights_only
        "data_root_str": os.fspath(cfg.data_root),
        "torch": torch.__version__,  # truth: weights_only
    }
    path = os.path.join(tmpdir, "hme_release.pt")
    torch.save(release, path)
    return path


def save_error_analysis(tmpdir):
    trainer = HMETrainer()
    dists, worst = trainer.fit()
    token_freq = Counter(t for s in trainer.labels for t in TOKEN_RE.findall(s))
    lengths = [len(TOKEN_RE.findall(s)) for s in trainer.labels]
    analysis = OrderedDict(
        worst=worst,  # truth: weights_only
        worst_fields=worst._asdict(),
        token_freq=token_freq,
        rare_tokens=[t for t, c in token_freq.items() if c <= 4],
        length_bins=range(0, max(lengths) + 4, 4),  # truth: weights_only
        length_edges=list(range(0, max(lengths) + 4, 4)),
        mean_len=sum(lengths) / len(lengths),
        median_len=float(np.median(lengths)),
        perplexity=math.exp(trainer.metrics[next(reversed(trainer.metrics))]["loss"]),
        max_dist=int(dists.max()),
        ed_mean=round(dists.mean(), 3),  # truth: weights_only
        hist=np.bincount(dists).tolist(),
        timestamp=time.time(),
    )
    path = os.path.join(tmpdir, "hme_errors.pt")
    torch.save(analysis, path)
    return path


def save_encoder_only(tmpdir):
    trainer = HMETrainer()
    trainer.fit()
    path = os.path.join(tmpdir, "encoder_full.pt")
    torch.save(trainer.encoder, path)  # truth: weights_only
    return path


FACTORIES = {
    "DecodeMode": lambda: DecodeMode.GREEDY,
}
