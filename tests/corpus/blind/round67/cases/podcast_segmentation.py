"""Topic segmentation of podcast transcripts.

Each episode is a list of ASR sentences; a boundary label marks the first sentence of a new
topic (chapter). A bag-of-words sentence encoder feeds a BiLSTM that tags boundaries; the
TextTiling baseline scores lexical cohesion between adjacent blocks. Metrics: Pk and WindowDiff.
"""
from __future__ import annotations

import os
import re
from collections import Counter, OrderedDict, defaultdict, deque, namedtuple
from dataclasses import asdict, dataclass, field
from datetime import date
from enum import Enum

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

PAD, UNK = "<pad>", "<unk>"
DEFAULT_STOPWORDS = frozenset("the a an and or but so um uh like you know i we it is was to of in on that this".split())
TOPIC_LEXICON = {
    "intro": "welcome show episode guest today host subscribe".split(),
    "tech": "model data training gpu python code release benchmark".split(),
    "sports": "game season coach team score playoff league trade".split(),
    "finance": "market stock rates inflation earnings fund budget".split(),
    "ads": "sponsor promo code discount website offer free trial".split(),
}

Batch = namedtuple("Batch", ["tokens", "lengths", "labels"])


class BoundaryScheme(Enum):
    BINARY = "binary"
    BIO = "bio"


@dataclass
class EncoderConfig:
    embed_dim: int = 32
    hidden: int = 32
    bidirectional: bool = True
    dropout: float = 0.1


@dataclass
class SegConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    max_tokens: int = 24
    lr: float = 3e-3
    epochs: int = 2
    pk_window: int | None = None
    min_vocab_count: int = 2
    scheme: BoundaryScheme = BoundaryScheme.BINARY
    stopwords: frozenset = DEFAULT_STOPWORDS
    seed: int = 13

    def to_dict(self):
        d = asdict(self)
        d["scheme"] = self.scheme.value
        d["stopwords"] = sorted(self.stopwords)
        return d


def synth_episodes(n, seed):
    rng = np.random.default_rng(seed)
    topics = list(TOPIC_LEXICON)
    filler = sorted(DEFAULT_STOPWORDS)
    episodes = []
    for ep in range(n):
        sents, labels = [], []
        order = ["intro"] + list(rng.choice(topics[1:], size=int(rng.integers(2, 5))))
        for topic in order:
            for j in range(int(rng.integers(4, 9))):
                words = list(rng.choice(TOPIC_LEXICON[topic], size=int(rng.integers(4, 10))))
                words += list(rng.choice(filler, size=int(rng.integers(2, 6))))
                rng.shuffle(words)
                sents.append(" ".join(words))
                labels.append(1 if j == 0 and sents[:-1] else 0)
        episodes.append({"id": f"ep{ep:04d}", "sentences": sents, "labels": labels})
    return episodes


def tokenize(text):
    return re.findall(r"[a-z']+", text.lower())


class Vocabulary:
    def __init__(self, stopwords=DEFAULT_STOPWORDS):
        self.stopwords = stopwords
        self.itos = [PAD, UNK]
        self.stoi = {PAD: 0, UNK: 1}
        self.freqs = Counter()
        self.doc_freq = defaultdict(int)
        self.n_docs = 0

    def fit(self, episodes, min_count=1):
        for ep in episodes:
            self.n_docs += 1
            seen = set()
            for s in ep["sentences"]:
                toks = [t for t in tokenize(s) if t not in self.stopwords]
                self.freqs.update(toks)
                seen.update(toks)
            for t in seen:
                self.doc_freq[t] += 1
        for tok, c in self.freqs.most_common():
            if c >= min_count:
                self.stoi[tok] = len(self.itos)
                self.itos.append(tok)
        return self

    def idf(self):
        df = np.array([self.doc_freq.get(t, 0) for t in self.itos], dtype=np.float64)
        return np.log((1 + self.n_docs) / (1 + df)) + 1.0

    def encode(self, sentence, max_tokens):
        ids = [self.stoi.get(t, 1) for t in tokenize(sentence) if t not in self.stopwords][:max_tokens]
        return ids or [1]

    def __len__(self):
        return len(self.itos)


def collate(episode, vocab, max_tokens):
    ids = [vocab.encode(s, max_tokens) for s in episode["sentences"]]
    lengths = torch.tensor([len(i) for i in ids])
    tokens = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
    for r, i in enumerate(ids):
        tokens[r, :len(i)] = torch.tensor(i)
    return Batch(tokens, lengths, torch.tensor(episode["labels"], dtype=torch.float32))


class BoundaryTagger(nn.Module):
    def __init__(self, vocab_size, cfg: EncoderConfig):
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab_size, cfg.embed_dim, mode="mean", padding_idx=0)
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.hidden, batch_first=True, bidirectional=cfg.bidirectional)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden * (2 if cfg.bidirectional else 1), 1)

    def forward(self, tokens):
        sent = self.embed(tokens)
        ctx, _ = self.lstm(self.drop(sent).unsqueeze(0))
        return self.out(ctx.squeeze(0)).squeeze(-1)


def boundaries_to_segments(labels):
    seg, out = 0, []
    for i, b in enumerate(labels):
        if b and i:
            seg += 1
        out.append(seg)
    return np.asarray(out)


def pk(ref, hyp, k=None):
    ref, hyp = boundaries_to_segments(ref), boundaries_to_segments(hyp)
    if k is None:
        k = max(2, int(round(len(ref) / (2 * (ref[-1] + 1)))))
    errs = [(ref[i] == ref[i + k]) != (hyp[i] == hyp[i + k]) for i in range(len(ref) - k)]
    return np.mean(errs)


def window_diff(ref, hyp, k=3):
    ref, hyp = np.asarray(ref), np.asarray(hyp)
    errs = [ref[i + 1:i + k + 1].sum() != hyp[i + 1:i + k + 1].sum() for i in range(len(ref) - k)]
    return np.mean(errs)


class SegmentationTrainer:
    def __init__(self, cfg: SegConfig, vocab: Vocabulary):
        torch.manual_seed(cfg.seed)
        self.cfg = cfg
        self.vocab = vocab
        self.model = BoundaryTagger(len(vocab), cfg.encoder)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=0.7)
        self.recent_losses = deque(maxlen=50)
        self.history = []
        self.step = 0
        self.best_pk = 1.0
        self.best_epoch = -1
        self.rng = np.random.default_rng(cfg.seed)

    def train_epoch(self, episodes):
        self.model.train()
        order = self.rng.permutation(len(episodes))
        for i in order:
            batch = collate(episodes[i], self.vocab, self.cfg.max_tokens)
            logits = self.model(batch.tokens)
            pos_w = torch.tensor((len(batch.labels) - batch.labels.sum()) / batch.labels.sum().clamp(min=1))
            loss = F.binary_cross_entropy_with_logits(logits, batch.labels, pos_weight=pos_w)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.recent_losses.append(loss.item())
            self.step += 1
        self.scheduler.step()
        return np.mean(self.recent_losses)

    def predict(self, episode, threshold=0.5):
        self.model.eval()
        with torch.no_grad():
            p = torch.sigmoid(self.model(collate(episode, self.vocab, self.cfg.max_tokens).tokens))
        return (p >= threshold).long().tolist()

    def evaluate(self, episodes):
        pks, wds = [], []
        for ep in episodes:
            hyp = self.predict(ep)
            pks.append(pk(ep["labels"], hyp, self.cfg.pk_window))
            wds.append(window_diff(ep["labels"], hyp))
        return np.mean(pks), np.mean(wds)

    def fit(self, train, val):
        for epoch in range(self.cfg.epochs):
            loss = self.train_epoch(train)
            val_pk, val_wd = self.evaluate(val)
            self.history.append({"epoch": epoch, "loss": float(loss), "pk": float(val_pk), "wd": float(val_wd)})
            if val_pk < self.best_pk:
                self.best_pk, self.best_epoch = val_pk, epoch
        return self

    def checkpoint_state(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "epoch": self.best_epoch,
        }


def texttiling_scores(episode, vocab, block=3):
    idf = vocab.idf()
    vecs = []
    for s in episode["sentences"]:
        v = np.zeros(len(vocab))
        for i in vocab.encode(s, 64):
            v[i] += idf[i]
        vecs.append(v)
    vecs = np.stack(vecs)
    gaps = []
    for g in range(1, len(vecs)):
        a, b = vecs[max(0, g - block):g].sum(0), vecs[g:g + block].sum(0)
        gaps.append(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))
    gaps = np.asarray(gaps)
    depth = np.array([max(gaps[:i + 1]) - gaps[i] + max(gaps[i:]) - gaps[i] for i in range(len(gaps))])
    return gaps, depth


def build_run(n_train=10, n_val=4, **overrides):
    cfg = SegConfig(**overrides)
    episodes = synth_episodes(n_train + n_val, cfg.seed)
    train, val = episodes[:n_train], episodes[n_train:]
    vocab = Vocabulary(cfg.stopwords).fit(train, cfg.min_vocab_count)
    return cfg, vocab, train, val


def save_segmenter(tmpdir):
    cfg, vocab, train, val = build_run(scheme=BoundaryScheme.BIO)
    trainer = SegmentationTrainer(cfg, vocab).fit(train, val)
    state = trainer.checkpoint_state()
    state.update(
        config=cfg,  # truth: weights_only
        config_dict=cfg.to_dict(),
        scheme=cfg.scheme,  # truth: weights_only
        best_pk=trainer.best_pk,  # truth: weights_only
        recent_losses=trainer.recent_losses,  # truth: weights_only
        vocab_size=len(vocab),
    )
    state["history"] = trainer.history
    state["lr"] = trainer.scheduler.get_last_lr()[0]
    path = os.path.join(tmpdir, f"segmenter_step{trainer.step}.pt")
    torch.save(state, path)
    return path


def save_vocabulary(tmpdir):
    cfg, vocab, train, _ = build_run()
    idf = vocab.idf()
    torch.save({
        "itos": vocab.itos,
        "stoi": vocab.stoi,
        "freqs": vocab.freqs,
        "top_terms": vocab.freqs.most_common(20),
        "doc_freq": vocab.doc_freq,  # truth: weights_only
        "n_docs": vocab.n_docs,
        "stopwords": vocab.stopwords,  # truth: weights_only
        "stopwords_sorted": sorted(vocab.stopwords),
        "idf": torch.tensor(idf, dtype=torch.float32),
        "idf_max": idf.max().item(),
        "specials": OrderedDict([(PAD, 0), (UNK, 1)]),
    }, os.path.join(tmpdir, "vocab.pt"))
    return os.path.join(tmpdir, "vocab.pt")


def save_texttiling_baseline(tmpdir):
    cfg, vocab, train, val = build_run(n_train=6, n_val=3)
    all_depth, pks = [], []
    for ep in val:
        gaps, depth = texttiling_scores(ep, vocab)
        all_depth.append(depth)
    depth = np.concatenate(all_depth)
    cutoff = depth.mean() - depth.std() / 2
    for ep in val:
        _, d = texttiling_scores(ep, vocab)
        hyp = [0] + [int(x > cutoff) for x in d]
        pks.append(pk(ep["labels"], hyp))
    params = {
        "block_size": 3,
        "smoothing_rounds": 0,
        "cutoff": cutoff,  # truth: weights_only
        "cutoff_policy": "mean-std/2",
        "depth_quantiles": [float(q) for q in np.quantile(depth, [0.25, 0.5, 0.75])],
    }
    ckpt = {"method": "texttiling", "params": params, "val_pk": sum(pks) / len(pks)}  # truth: weights_only
    path = os.path.join(tmpdir, "texttiling.pt")
    torch.save(ckpt, path)
    return path


def save_episode_split(tmpdir):
    cfg, vocab, train, val = build_run()
    lengths = np.array([len(ep["sentences"]) for ep in train])
    n_bounds = sum(sum(ep["labels"]) for ep in train)
    example = collate(train[0], vocab, cfg.max_tokens)
    split = {
        "train_ids": [ep["id"] for ep in train],
        "val_ids": [ep["id"] for ep in val],
        "length_hist": Counter(lengths),  # truth: weights_only
        "length_hist_py": Counter(lengths.tolist()),
        "sentences_total": int(lengths.sum()),
        "boundary_rate": n_bounds / int(lengths.sum()),
        "example_batch": example,  # truth: weights_only
        "example_tokens": example.tokens,
        "created": date.today().isoformat(),
        "seed": cfg.seed,
        "rng_state": np.random.default_rng(cfg.seed).bit_generator.state,
    }
    path = os.path.join(tmpdir, "split.pt")
    torch.save(split, path)
    return path


def save_inference_bundle(tmpdir):
    cfg, vocab, train, val = build_run(epochs=1)
    trainer = SegmentationTrainer(cfg, vocab).fit(train, val)
    val_pk, val_wd = trainer.evaluate(val)
    bundle = OrderedDict()
    bundle["state_dict"] = trainer.model.state_dict()
    bundle["config"] = cfg.to_dict()
    bundle["itos"] = list(vocab.itos)
    bundle["scheme"] = cfg.scheme.value
    bundle["threshold"] = 0.5
    bundle["val_pk"] = float(val_pk)
    bundle["val_windowdiff"] = val_wd.item()
    bundle["max_tokens"] = cfg.max_tokens
    bundle["encoder_out_dim"] = trainer.model.out.in_features
    bundle["history"] = [dict(h) for h in trainer.history]
    path = os.path.join(tmpdir, "segmenter_infer.pt")
    torch.save(bundle, path)
    return path


FACTORIES = {
    "BoundaryScheme": lambda: BoundaryScheme.BIO,
    "BoundaryTagger": lambda: BoundaryTagger(50, EncoderConfig()),
    "SegmentationTrainer": lambda: SegmentationTrainer(*build_run()[:2]),
}


if __name__ == "__main__":
    cfg, vocab, train, val = build_run(n_train=200, n_val=40, epochs=10)
    trainer = SegmentationTrainer(cfg, vocab).fit(train, val)
    print("best Pk", trainer.best_pk, "at epoch", trainer.best_epoch)
