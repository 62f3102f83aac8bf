"""BiLSTM-CRF named-entity tagger: BIO labels, a numpy viterbi, span-level F1 computed by hand.

Trained on a toy CoNLL-style sample; every save_* writes one of the files a tagging run leaves
behind (best checkpoint, CRF parameters, decoding cache, label vocabulary, eval report, run args).
"""
import argparse
import collections
import dataclasses
import enum
import hashlib
import os
import re
import statistics
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from sklearn.metrics import precision_recall_fscore_support

PAD, UNK = "<pad>", "<unk>"
TOKEN_RE = re.compile(r"\w+|[^\w\s]")

SENTENCES = [
    ("John Smith lives in Paris".split(), ["B-PER", "I-PER", "O", "O", "B-LOC"]),
    ("Acme Corp hired Mary".split(), ["B-ORG", "I-ORG", "O", "B-PER"]),
    ("She flew to New York".split(), ["O", "O", "O", "B-LOC", "I-LOC"]),
    ("Google bought DeepMind in London".split(), ["B-ORG", "O", "B-ORG", "O", "B-LOC"]),
    ("Mary met John in New York".split(), ["B-PER", "O", "B-PER", "O", "B-LOC", "I-LOC"]),
]


class TagScheme(enum.Enum):
    BIO = "bio"
    BIOES = "bioes"


@dataclasses.dataclass
class TaggerConfig:
    emb_dim: int = 16
    hidden: int = 16
    lr: float = 0.1
    epochs: int = 6
    clip: float = 5.0
    scheme: TagScheme = TagScheme.BIO


class LabelVocab:
    def __init__(self, labels=None, scheme=TagScheme.BIO):
        self.scheme = scheme
        self.itos = []
        self.stoi = {}
        for label in labels or []:
            self.add(label)

    def add(self, label):
        if label not in self.stoi:
            self.stoi[label] = len(self.itos)
            self.itos.append(label)
        return self.stoi[label]

    def __len__(self):
        return len(self.itos)

    def encode(self, labels):
        return [self.stoi[label] for label in labels]

    def decode(self, ids):
        return [self.itos[i] for i in ids]

    def entity_types(self):
        return sorted({label[2:] for label in self.itos if label != "O"})


class TokenVocab:
    def __init__(self, min_freq=1):
        self.min_freq = min_freq
        self.counts = collections.Counter()
        self.itos = [PAD, UNK]
        self.stoi = {PAD: 0, UNK: 1}

    def build(self, sentences):
        for tokens, _ in sentences:
            self.counts.update(t.lower() for t in tokens)
        for tok, n in self.counts.most_common():
            if n >= self.min_freq and tok not in self.stoi:
                self.stoi[tok] = len(self.itos)
                self.itos.append(tok)
        return self

    def encode(self, tokens):
        return [self.stoi.get(t.lower(), 1) for t in tokens]


class BiLSTMCRF(nn.Module):
    def __init__(self, vocab_size, num_tags, emb_dim=16, hidden=16):
        super().__init__()
        self.num_tags = num_tags
        self.emb = nn.Embedding(vocab_size, emb_dim, padding_idx=0)
        self.lstm = nn.LSTM(emb_dim, hidden // 2, bidirectional=True, batch_first=True)
        self.proj = nn.Linear(hidden, num_tags)
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))

    def emissions(self, x):
        h, _ = self.lstm(self.emb(x))
        return self.proj(h)

    def nll(self, x, y):
        """Negative log-likelihood of one sentence (forward algorithm in log space)."""
        em = self.emissions(x.unsqueeze(0))[0]
        gold = self.start[y[0]] + em[0, y[0]]
        for t in range(1, len(y)):
            gold = gold + self.transitions[y[t - 1], y[t]] + em[t, y[t]]
        gold = gold + self.end[y[-1]]
        alpha = self.start + em[0]
        for t in range(1, em.shape[0]):
            alpha = torch.logsumexp(alpha.unsqueeze(1) + self.transitions + em[t].unsqueeze(0), dim=0)
        return torch.logsumexp(alpha + self.end, dim=0) - gold


def viterbi_decode(emissions, transitions, start, end):
    """emissions (T, K) -> (best tag ids, score of the best path)."""
    T, K = emissions.shape
    score = start + emissions[0]
    back = np.zeros((T, K), dtype=np.int64)
    for t in range(1, T):
        cand = score[:, None] + transitions + emissions[t][None, :]
        back[t] = cand.argmax(axis=0)
        score = cand.max(axis=0)
    score = score + end
    best = int(score.argmax())
    path = [best]
    for t in range(T - 1, 0, -1):
        best = int(back[t, best])
        path.append(best)
    return path[::-1], score.max()


def bio_spans(tags):
    spans, start, kind = set(), None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        inside = tag.startswith("I-") and tag[2:] == kind
        if not inside:
            if start is not None:
                spans.add((start, i, kind))
            start, kind = (i, tag[2:]) if tag != "O" else (None, None)
    return spans


def span_prf(gold_seqs, pred_seqs, types):
    tp, fp, fn = (np.zeros(len(types)) for _ in range(3))
    for gold, pred in zip(gold_seqs, pred_seqs):
        gs, ps = bio_spans(gold), bio_spans(pred)
        for j, kind in enumerate(types):
            g = {s for s in gs if s[2] == kind}
            p = {s for s in ps if s[2] == kind}
            tp[j] += len(g & p)
            fp[j] += len(p - g)
            fn[j] += len(g - p)
    precision = tp.sum() / max(tp.sum() + fp.sum(), 1)
    recall = tp.sum() / max(tp.sum() + fn.sum(), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    per_type = {kind: float(2 * tp[j] / max(2 * tp[j] + fp[j] + fn[j], 1)) for j, kind in enumerate(types)}
    return {"precision": precision, "recall": recall, "f1": f1, "per_type": per_type, "support": tp + fn}


def transition_mask(labels):
    """BIO constraint: I-X may only follow B-X or I-X."""
    K = len(labels)
    allowed = np.ones((K, K), dtype=bool)
    for j, to in enumerate(labels.itos):
        if to.startswith("I-"):
            for i, frm in enumerate(labels.itos):
                allowed[i, j] = frm[2:] == to[2:] and frm != "O"
    return allowed


class NERTrainer:
    def __init__(self, cfg=None, sentences=SENTENCES):
        self.cfg = cfg or TaggerConfig()
        self.sentences = sentences
        self.tokens = TokenVocab().build(sentences)
        tags = sorted({tag for _, labels in sentences for tag in labels} - {"O"})
        self.labels = LabelVocab(["O"] + tags, self.cfg.scheme)
        torch.manual_seed(0)
        self.model = BiLSTMCRF(len(self.tokens.itos), len(self.labels), self.cfg.emb_dim, self.cfg.hidden)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.cfg.lr)
        self.best_f1 = None
        self.best_epoch = None
        self.history = []
        self.epoch = 0

    def step(self, tokens, labels):
        x = torch.tensor(self.tokens.encode(tokens))
        y = torch.tensor(self.labels.encode(labels))
        self.model.train()
        self.optimizer.zero_grad()
        loss = self.model.nll(x, y)
        loss.backward()
        self.grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
        self.optimizer.step()
        return loss.item()

    def decode(self, tokens):
        self.model.eval()
        with torch.no_grad():
            em = self.model.emissions(torch.tensor([self.tokens.encode(tokens)]))[0].numpy()
        crf = [p.detach().numpy() for p in (self.model.transitions, self.model.start, self.model.end)]
        path, score = viterbi_decode(em, *crf)
        return self.labels.decode(path), score

    def evaluate(self):
        gold, pred, scores = [], [], []
        for tokens, labels in self.sentences:
            tags, score = self.decode(tokens)
            gold.append(labels)
            pred.append(tags)
            scores.append(score)
        metrics = span_prf(gold, pred, self.labels.entity_types())
        metrics["mean_path_score"] = np.mean(scores)
        self.last_scores = np.array(scores)
        return metrics

    def fit(self):
        for epoch in range(self.cfg.epochs):
            losses = [self.step(tokens, labels) for tokens, labels in self.sentences]
            metrics = self.evaluate()
            self.history.append({"epoch": epoch, "loss": sum(losses) / len(losses), "f1": metrics["f1"]})
            if self.best_f1 is None or metrics["f1"] >= self.best_f1:
                self.best_f1 = metrics["f1"]
                self.best_epoch = epoch
                self.best_metrics = metrics
            self.epoch = epoch + 1
        return self


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="train a BiLSTM-CRF tagger")
    p.add_argument("--train", type=Path, default=Path("data/conll03/train.txt"))
    p.add_argument("--emb-dim", type=int, default=16)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--scheme", choices=[s.value for s in TagScheme], default="bio")
    p.add_argument("--types", nargs="+", default=["PER", "LOC", "ORG"])
    return p.parse_args(argv)


FACTORIES = {
    "TagScheme": lambda: TagScheme.BIOES,
    "BiLSTMCRF": lambda: BiLSTMCRF(20, 7),
    "LabelVocab": lambda: LabelVocab(["O", "B-PER", "I-PER"]),
    "TokenVocab": lambda: TokenVocab().build(SENTENCES),
}


def save_tagger_checkpoint(tmpdir):
    trainer = NERTrainer().fit()
    last = trainer.history[-1]
    path = os.path.join(tmpdir, "tagger_best.pt")
    torch.save({
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "epoch": trainer.epoch,
        "best_epoch": trainer.best_epoch,
        "best_f1": trainer.best_f1,  # truth: weights_only
        "best_f1_rounded": round(trainer.best_f1, 4),  # truth: weights_only
        "train_loss": last["loss"],
        "grad_norm": trainer.grad_norm,
        "history": trainer.history,  # truth: weights_only
        "config": {**dataclasses.asdict(trainer.cfg), "scheme": trainer.cfg.scheme.value},
    }, path)
    return path


def save_crf_params(tmpdir):
    trainer = NERTrainer().fit()
    crf = trainer.model
    trans = crf.transitions.detach().numpy()
    allowed = transition_mask(trainer.labels)
    ckpt = {"labels": trainer.labels.itos}
    ckpt["transitions"] = trans  # truth: weights_only
    ckpt["start"] = crf.start.detach().clone()
    ckpt["transitions_param"] = crf.transitions
    ckpt["end"] = crf.end.detach().tolist()
    ckpt["allowed"] = torch.from_numpy(allowed)
    ckpt["n_forbidden"] = int((~allowed).sum())
    ckpt["strongest_target"] = trainer.labels.itos[trans.argmax() % len(trainer.labels)]
    ckpt["max_transition"] = float(trans.max())
    path = os.path.join(tmpdir, "crf.pt")
    torch.save(ckpt, path)
    return path


def save_decoding_cache(tmpdir):
    trainer = NERTrainer().fit()
    lengths = np.array([len(tokens) for tokens, _ in trainer.sentences])
    decoded = [trainer.decode(tokens) for tokens, _ in trainer.sentences]
    gold_flat = [tag for _, labels in trainer.sentences for tag in labels]
    pred_flat = [tag for tags, _ in decoded for tag in tags]
    token_prf = precision_recall_fscore_support(gold_flat, pred_flat, average="micro", zero_division=0)
    path = os.path.join(tmpdir, "decoded.pt")
    torch.save(dict(
        tags=[tags for tags, _ in decoded],
        scores=[score.item() for _, score in decoded],
        mean_score=statistics.mean(score for _, score in decoded),  # truth: weights_only
        token_micro_prf=token_prf[:3],
        score_shape=trainer.last_scores.shape,
        max_len=int(lengths.max()),
        mean_len=float(lengths.mean()),
        n_sentences=len(decoded),
        emission_dim=trainer.model.proj.out_features,
    ), path)
    return path


def save_label_vocab(tmpdir):
    trainer = NERTrainer()
    vocab = trainer.labels
    tag_counts = collections.Counter(tag for _, labels in trainer.sentences for tag in labels)
    docs_per_type = collections.defaultdict(int)
    for _, labels in trainer.sentences:
        for kind in {span[2] for span in bio_spans(labels)}:
            docs_per_type[kind] += 1
    path = os.path.join(tmpdir, "labels.pt")
    torch.save({
        "itos": vocab.itos,
        "stoi": vocab.stoi,
        "scheme": vocab.scheme,  # truth: weights_only
        "entity_types": vocab.entity_types(),
        "tag_counts": tag_counts,
        "docs_per_type": docs_per_type,  # truth: weights_only
        "top_tokens": dict(trainer.tokens.counts.most_common(5)),
        "fingerprint": hashlib.sha1("\n".join(vocab.itos).encode()).digest(),
    }, path)
    return path


def save_eval_report(tmpdir):
    trainer = NERTrainer().fit()
    metrics = trainer.best_metrics
    report = {k: float(metrics[k]) for k in ("precision", "recall", "f1")}
    report["per_type"] = metrics["per_type"]
    report["support"] = metrics["support"].astype(int).tolist()
    report["mean_path_score"] = metrics["mean_path_score"].item()
    report["best_epoch"] = trainer.best_epoch
    report["evaluated_at"] = datetime.now().isoformat(timespec="seconds")
    report["wall_time"] = time.time()
    path = os.path.join(tmpdir, "eval_report.pt")
    torch.save(report, path)
    return path


def save_run_args(tmpdir):
    args = parse_args(["--lr", "0.05", "--types", "PER", "LOC"])
    cfg = TaggerConfig(emb_dim=args.emb_dim, hidden=args.hidden, lr=args.lr, scheme=TagScheme(args.scheme))
    path = os.path.join(tmpdir, "run_args.pt")
    torch.save({
        "args": args,  # truth: weights_only
        "train_file": args.train,  # truth: weights_only
        "train_name": args.train.name,
        "types": list(args.types),
        "token_regex": TOKEN_RE.pattern,
        "scheme": cfg.scheme.value,
        "lr": cfg.lr,
    }, path)
    return path
