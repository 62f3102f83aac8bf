"""Chest X-ray report generation: a small image encoder + transformer decoder.

The trainer follows the layout of the usual R2Gen-style repositories: a YAML experiment
config, a word-level vocabulary built from the training reports, a `Trainer` class whose
methods return metric dicts, and a `_save_checkpoint` helper that writes `state` plus extras.
Clinical efficacy is measured with CheXpert-style labels extracted from the generated text.
"""
import json
import math
import os
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import yaml
from sklearn.metrics import f1_score, precision_recall_fscore_support

CONFIG_YAML = """
model:
  d_model: 32
  n_heads: 4
  n_layers: 1
  max_len: 24
optim:
  lr: 5e-4
  weight_decay: 0.01
  epochs: 2
data:
  min_freq: 1
  split_date: 2023-06-30
  views: [PA, AP, LATERAL]
decode:
  beam_size: 3
  length_penalty: 0.7
"""

CHEXPERT_LABELS = ["cardiomegaly", "edema", "consolidation", "atelectasis", "effusion", "pneumothorax"]
PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"

SENTENCES = {
    "cardiomegaly": "the heart is enlarged",
    "edema": "there is mild pulmonary edema",
    "consolidation": "focal consolidation in the right lower lobe",
    "atelectasis": "bibasilar atelectasis",
    "effusion": "small left pleural effusion",
    "pneumothorax": "there is a small apical pneumothorax",
}
NORMAL = "no acute cardiopulmonary process"


@dataclass
class BeamConfig:
    beam_size: int = 3
    length_penalty: float = 0.7
    block_ngram: int = 3
    max_len: int = 24


@dataclass
class RunInfo:
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    started: float = field(default_factory=time.time)


def load_config(text=CONFIG_YAML):
    cfg = yaml.safe_load(text)
    cfg["optim"]["lr"] = float(cfg["optim"]["lr"])  # PyYAML reads "5e-4" as a string
    return cfg


def synth_studies(n=48, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, len(CHEXPERT_LABELS))) < 0.3).astype(np.int64)
    reports = []
    for row in labels:
        parts = [SENTENCES[name] for name, on in zip(CHEXPERT_LABELS, row) if on] or [NORMAL]
        reports.append(" . ".join(parts))
    return pd.DataFrame({
        "study_id": [f"s{50000 + i}" for i in range(n)],
        "study_date": pd.date_range("2023-01-02", periods=n, freq="5D"),
        "view": rng.choice(["PA", "AP", "LATERAL"], size=n).tolist(),
        "report": reports,
        "n_tokens": [len(r.split()) for r in reports],
    }), labels


class Vocabulary:
    def __init__(self, min_freq=1):
        self.min_freq = min_freq
        self.freq = defaultdict(int)
        self.itos = [PAD, BOS, EOS, UNK]
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def build(self, texts):
        for t in texts:
            for w in t.split():
                self.freq[w] += 1
        for w, c in sorted(self.freq.items()):
            if c >= self.min_freq and w not in self.stoi:
                self.stoi[w] = len(self.itos)
                self.itos.append(w)
        return self

    def encode(self, text, max_len):
        ids = [self.stoi[BOS]] + [self.stoi.get(w, self.stoi[UNK]) for w in text.split()][: max_len - 2]
        ids.append(self.stoi[EOS])
        return ids + [self.stoi[PAD]] * (max_len - len(ids))

    def decode(self, ids):
        words = []
        for i in ids:
            w = self.itos[i]
            if w == EOS:
                break
            if w not in (PAD, BOS):
                words.append(w)
        return " ".join(words)

    def __len__(self):
        return len(self.itos)


class ReportGenerator(nn.Module):
    def __init__(self, vocab_size=64, d_model=32, n_heads=4, n_layers=1, max_len=24):
        super().__init__()
        self.visual = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                                    nn.Flatten(), nn.Linear(32, d_model))
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Parameter(torch.zeros(1, max_len, d_model))
        layer = nn.TransformerDecoderLayer(d_model, n_heads, dim_feedforward=2 * d_model, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, n_layers)
        self.out = nn.Linear(d_model, vocab_size)

    def forward(self, images, tokens):
        memory = self.visual(images).unsqueeze(1)
        x = self.embed(tokens) + self.pos[:, : tokens.size(1)]
        mask = nn.Transformer.generate_square_subsequent_mask(tokens.size(1))
        return self.out(self.decoder(x, memory, tgt_mask=mask))


def bleu(refs, hyps, n_max=4):
    """Corpus BLEU with brevity penalty, in plain Python."""
    logs = []
    for n in range(1, n_max + 1):
        match = total = 0
        for r, h in zip(refs, hyps):
            rc = Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1))
            hc = Counter(tuple(h[i:i + n]) for i in range(len(h) - n + 1))
            match += sum(min(c, rc[g]) for g, c in hc.items())
            total += max(len(h) - n + 1, 0)
        logs.append(math.log(max(match, 1e-9) / max(total, 1)))
    ref_len, hyp_len = sum(map(len, refs)), max(sum(map(len, hyps)), 1)
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return bp * math.exp(sum(logs) / n_max)


def rouge_l(ref, hyp):
    table = np.zeros((len(ref) + 1, len(hyp) + 1))
    for i, a in enumerate(ref):
        for j, b in enumerate(hyp):
            table[i + 1, j + 1] = table[i, j] + 1 if a == b else max(table[i, j + 1], table[i + 1, j])
    lcs = table[-1, -1]
    if lcs == 0:
        return 0.0
    p, r = lcs / len(hyp), lcs / len(ref)
    return 2 * p * r / (p + r)


def label_reports(texts):
    """A rule-based labeller standing in for CheXpert."""
    return np.array([[int(SENTENCES[name] in t) for name in CHEXPERT_LABELS] for t in texts])


class Trainer:
    def __init__(self, cfg, seed=0):
        torch.manual_seed(seed)
        self.cfg = cfg
        self.df, self.labels = synth_studies(seed=seed)
        self.vocab = Vocabulary(cfg["data"]["min_freq"]).build(self.df.report)
        m = cfg["model"]
        self.model = ReportGenerator(len(self.vocab), m["d_model"], m["n_heads"], m["n_layers"], m["max_len"])
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg["optim"]["lr"],
                                           weight_decay=cfg["optim"]["weight_decay"])
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=[1, 2], gamma=0.3)
        self.images = torch.randn(len(self.df), 1, 16, 16)
        self.tokens = torch.tensor([self.vocab.encode(r, m["max_len"]) for r in self.df.report])
        self.epoch = 0
        self.best = {"bleu4": -1.0, "epoch": -1}
        self.train_log = []

    def _train_epoch(self):
        self.model.train()
        losses, n_tok, t0 = [], 0, time.perf_counter()
        for i in range(0, len(self.tokens), 16):
            tok = self.tokens[i:i + 16]
            logits = self.model(self.images[i:i + 16], tok[:, :-1])
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), tok[:, 1:].reshape(-1),
                                               ignore_index=self.vocab.stoi[PAD])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
            n_tok += int((tok != self.vocab.stoi[PAD]).sum())
        self.scheduler.step()
        self.epoch += 1
        return np.mean(losses), n_tok / (time.perf_counter() - t0)

    @torch.no_grad()
    def _greedy(self, images, max_len):
        tok = torch.full((images.size(0), 1), self.vocab.stoi[BOS])
        for _ in range(max_len - 1):
            nxt = self.model(images, tok)[:, -1].argmax(-1, keepdim=True)
            tok = torch.cat([tok, nxt], 1)
        return [self.vocab.decode(row.tolist()) for row in tok]

    def _evaluate(self):
        self.model.eval()
        hyps = self._greedy(self.images[:16], self.cfg["model"]["max_len"])
        refs = self.df.report.tolist()[:16]
        pred, true = label_reports(hyps), label_reports(refs)
        p, r, f, _ = precision_recall_fscore_support(true, pred, average="micro", zero_division=0)
        return {
            "bleu1": bleu([x.split() for x in refs], [x.split() for x in hyps], 1),
            "bleu4": bleu([x.split() for x in refs], [x.split() for x in hyps], 4),
            "rougeL": np.mean([rouge_l(a.split(), b.split()) for a, b in zip(refs, hyps)]),
            "ce_precision": p,
            "ce_recall": r,
            "ce_f1_micro": f,
            "ce_f1_per_label": f1_score(true, pred, average=None, zero_division=0),
            "n_empty": sum(1 for h in hyps if not h),
        }

    def fit(self):
        for _ in range(self.cfg["optim"]["epochs"]):
            loss, tok_s = self._train_epoch()
            ev = self._evaluate()
            self.train_log.append({"epoch": self.epoch, "loss": float(loss), "tok_s": tok_s,
                                   "bleu4": ev["bleu4"]})
            if ev["bleu4"] > self.best["bleu4"]:
                self.best = {"bleu4": ev["bleu4"], "epoch": self.epoch}
        return loss, ev

    def state_dict(self):
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "best": dict(self.best),
        }

    def _save_checkpoint(self, path, extra):
        state = self.state_dict()
        state.update(extra)
        torch.save(state, path)
        return path


def save_r2gen_checkpoint(tmpdir):
    cfg = load_config()
    trainer = Trainer(cfg)
    loss, ev = trainer.fit()
    return trainer._save_checkpoint(os.path.join(tmpdir, "model_best.pth"), {
        "config": json.loads(json.dumps(cfg, default=str)),
        "data_cutoff": cfg["data"]["split_date"],  # truth: weights_only
        "views": cfg["data"]["views"],
        "train_loss": loss,  # truth: weights_only
        "bleu4": ev["bleu4"],
        "rougeL": ev["rougeL"],  # truth: weights_only
        "ce_f1_micro": ev["ce_f1_micro"],
        "ce_f1_per_label": ev["ce_f1_per_label"],  # truth: weights_only
        "ce_f1_per_label_list": ev["ce_f1_per_label"].tolist(),
        "train_log": trainer.train_log,
        "label_names": CHEXPERT_LABELS,
    })


def save_vocab_bundle(tmpdir):
    cfg = load_config()
    trainer = Trainer(cfg, seed=1)
    vocab = trainer.vocab
    bundle = {"model": trainer.model.state_dict()}
    bundle["vocab"] = {
        "itos": vocab.itos,
        "stoi": vocab.stoi,
        "freq": vocab.freq,  # truth: weights_only
        "top_words": Counter(vocab.freq).most_common(10),
    }
    bundle["special"] = {"pad": vocab.stoi[PAD], "bos": vocab.stoi[BOS], "eos": vocab.stoi[EOS]}
    bundle["tokenizer"] = vocab  # truth: weights_only
    bundle["max_report_len"] = trainer.df.n_tokens.max()  # truth: weights_only
    bundle["median_report_len"] = int(trainer.df.n_tokens.median())
    bundle["view_counts"] = Counter(trainer.df.view)
    bundle["vocab_size"] = len(vocab)
    path = os.path.join(tmpdir, "vocab_bundle.pt")
    torch.save(bundle, path)
    return path


def save_decoding_snapshot(tmpdir):
    cfg = load_config()
    trainer = Trainer(cfg, seed=2)
    trainer._train_epoch()
    beam = BeamConfig(**cfg["decode"], max_len=cfg["model"]["max_len"])
    run = RunInfo()
    df = trainer.df
    prevalence = trainer.labels.mean(axis=0)
    snapshot = trainer.state_dict()
    snapshot.update(
        beam=beam,  # truth: weights_only
        beam_kwargs=asdict(beam),
        run=asdict(run),
        label_prevalence=prevalence,  # truth: weights_only
        pos_weight=torch.tensor((1 - prevalence) / np.clip(prevalence, 1e-3, None), dtype=torch.float32),
        first_study=df.study_date.min(),  # truth: weights_only
        last_study=df.study_date.max().strftime("%Y-%m-%d"),
        samples=trainer._greedy(trainer.images[:2], 8),
        lr_now=trainer.scheduler.get_last_lr(),
        milestones=trainer.scheduler.milestones,
    )
    path = os.path.join(tmpdir, "decode_snapshot.pt")
    torch.save(snapshot, path)
    return path


def save_clinical_eval(tmpdir):
    """Numbers for the paper table: everything is cast on the way in."""
    cfg = load_config()
    trainer = Trainer(cfg, seed=3)
    loss, ev = trainer.fit()
    by_view = trainer.df.groupby("view").n_tokens.mean().to_dict()
    ckpt = {
        "model": trainer.model.state_dict(),
        "bleu1": ev["bleu1"],
        "bleu4": ev["bleu4"],
        "rougeL": float(ev["rougeL"]),
        "ce": {"p": ev["ce_precision"], "r": ev["ce_recall"], "f1": ev["ce_f1_micro"]},
        "n_empty": ev["n_empty"],
        "mean_len_by_view": by_view,
        "best": trainer.best,
        "loss": loss.item(),
        "n_studies": len(trainer.df),
        "positives": int(trainer.labels.sum()),
        "cutoff": str(cfg["data"]["split_date"]),
        "lr": cfg["optim"]["lr"],
    }
    path = os.path.join(tmpdir, "clinical_eval.pt")
    torch.save(ckpt, path)
    return path


FACTORIES = {
    "Trainer": lambda: Trainer(load_config()),
    "Vocabulary": lambda: Vocabulary().build([NORMAL, SENTENCES["edema"]]),
}
