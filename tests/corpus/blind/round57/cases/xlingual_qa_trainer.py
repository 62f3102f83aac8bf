"""Zero-shot cross-lingual extractive QA (train on English SQuAD-style data, evaluate on
XQuAD / MLQA languages).  A small BiGRU span extractor over a shared subword-ish vocabulary
stands in for the multilingual encoder so the trainer runs on CPU.
"""
import collections
import dataclasses
import enum
import os
import re
import string
import types
import uuid
from collections import defaultdict, namedtuple
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

Span = namedtuple("Span", ["start", "end", "score"])


class Lang(str, enum.Enum):
    EN = "en"
    DE = "de"
    ES = "es"
    AR = "ar"
    HI = "hi"


@dataclass
class QAConfig:
    train_lang: str = "en"
    eval_langs: Tuple[str, ...] = ("de", "es", "ar", "hi")
    emb_dim: int = 32
    hidden: int = 32
    max_len: int = 48
    max_answer_len: int = 8
    doc_stride: int = 16
    lr: float = 3e-3
    warmup_steps: int = 4
    epochs: int = 1
    batch_size: int = 8
    lowercase: bool = True
    seed: int = 13
    tags: List[str] = field(default_factory=lambda: ["zero-shot", "xquad"])


# ----------------------------------------------------------------------------- text

def normalize_answer(s):
    """SQuAD normalisation: lower, drop punctuation, articles and extra whitespace."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def token_f1(pred, gold):
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    prec, rec = same / len(p), same / len(g)
    return 2 * prec * rec / (prec + rec)


class Vocab:
    PAD, UNK = "<pad>", "<unk>"

    def __init__(self):
        self.stoi = defaultdict(int)
        self.itos = [self.PAD, self.UNK]
        self.stoi[self.PAD] = 0
        self.stoi[self.UNK] = 1

    def add(self, tok):
        if tok not in self.stoi:
            self.stoi[tok] = len(self.itos)
            self.itos.append(tok)

    def encode(self, toks):
        return [self.stoi.get(t, 1) for t in toks]

    def __len__(self):
        return len(self.itos)


def synthetic_squad(lang, n, rng):
    """(context tokens, question tokens, answer start, answer end) with a per-language lexicon."""
    lex = [f"{lang}_{i}" for i in range(40)]
    out = []
    for _ in range(n):
        ctx = [lex[i] for i in rng.integers(0, len(lex), size=30)]
        s = int(rng.integers(0, 25))
        e = s + int(rng.integers(0, 4))
        q = ["what", "is"] + ctx[max(0, s - 2):s]
        out.append((ctx, q, s, e))
    return out


# ----------------------------------------------------------------------------- model

class SpanExtractor(nn.Module):
    def __init__(self, vocab_size=100, emb_dim=32, hidden=32):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, emb_dim, padding_idx=0)
        self.rnn = nn.GRU(emb_dim, hidden, batch_first=True, bidirectional=True)
        self.qa_outputs = nn.Linear(2 * hidden, 2)

    def forward(self, ids):
        h, _ = self.rnn(self.emb(ids))
        start, end = self.qa_outputs(h).unbind(-1)
        return start, end


def warmup_factor(step, warmup=4):
    return min(1.0, (step + 1) / warmup)


def best_span(start_logits, end_logits, max_answer_len):
    s = start_logits.log_softmax(-1)
    e = end_logits.log_softmax(-1)
    scores = s[:, None] + e[None, :]
    mask = torch.triu(torch.ones_like(scores)) - torch.triu(torch.ones_like(scores), diagonal=max_answer_len)
    scores = scores.masked_fill(mask == 0, -1e9)
    flat = int(scores.argmax())
    i, j = divmod(flat, scores.shape[1])
    return Span(i, j, scores[i, j].item())


class QATrainer:
    """Keeps model, optimizer, schedule and bookkeeping; the save_* functions below assemble
    checkpoints from what its methods return."""

    def __init__(self, cfg=None):
        self.cfg = cfg or QAConfig()
        self.rng = np.random.default_rng(self.cfg.seed)
        torch.manual_seed(self.cfg.seed)
        self.vocab = Vocab()
        self.data = {lang: synthetic_squad(lang, 24, self.rng) for lang in (self.cfg.train_lang,) + self.cfg.eval_langs}
        for examples in self.data.values():
            for ctx, q, _, _ in examples:
                for tok in ctx + q:
                    self.vocab.add(tok.lower() if self.cfg.lowercase else tok)
        self.model = SpanExtractor(len(self.vocab), self.cfg.emb_dim, self.cfg.hidden)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.LinearLR(self.optimizer, start_factor=0.25, total_iters=self.cfg.warmup_steps)
        self.global_step = 0
        self.best_f1 = 0.0
        self.best_prediction = None
        self.tokenizer_opts = types.SimpleNamespace(lowercase=self.cfg.lowercase, max_len=self.cfg.max_len,
                                                    doc_stride=self.cfg.doc_stride)

    def _encode(self, ctx, q):
        toks = (q + ["[SEP]"] + ctx)[: self.cfg.max_len]
        ids = self.vocab.encode([t.lower() if self.cfg.lowercase else t for t in toks])
        return ids + [0] * (self.cfg.max_len - len(ids)), len(q) + 1

    def _batch(self, examples):
        ids, starts, ends = [], [], []
        for ctx, q, s, e in examples:
            x, off = self._encode(ctx, q)
            ids.append(x)
            starts.append(min(s + off, self.cfg.max_len - 1))
            ends.append(min(e + off, self.cfg.max_len - 1))
        return torch.tensor(ids), torch.tensor(starts), torch.tensor(ends)

    def train_epoch(self):
        self.model.train()
        examples = self.data[self.cfg.train_lang]
        total, steps = 0.0, 0
        for i in range(0, len(examples), self.cfg.batch_size):
            ids, s, e = self._batch(examples[i:i + self.cfg.batch_size])
            start, end = self.model(ids)
            loss = (F.cross_entropy(start, s) + F.cross_entropy(end, e)) / 2
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            total += loss.item()
            steps += 1
            self.global_step += 1
        return total / steps, steps

    @torch.no_grad()
    def evaluate(self, lang):
        self.model.eval()
        em, f1 = [], []
        for ctx, q, s, e in self.data[lang]:
            ids, off = self._encode(ctx, q)
            start, end = self.model(torch.tensor([ids]))
            span = best_span(start[0], end[0], self.cfg.max_answer_len)
            pred = " ".join(ctx[max(0, span.start - off):max(0, span.end - off) + 1])
            gold = " ".join(ctx[s:e + 1])
            em.append(float(normalize_answer(pred) == normalize_answer(gold)))
            f1.append(token_f1(pred, gold))
            if f1[-1] >= self.best_f1:
                self.best_f1, self.best_prediction = f1[-1], span
        return {"exact_match": np.mean(em), "f1": float(np.mean(f1)), "n": len(em)}

    def evaluate_all(self):
        per_lang = {lang: self.evaluate(lang) for lang in self.cfg.eval_langs}
        f1s = [r["f1"] for r in per_lang.values()]
        return per_lang, np.mean(f1s), np.std(f1s)

    def checkpoint_payload(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "global_step": self.global_step,
        }

    def fit(self):
        history = []
        for epoch in range(self.cfg.epochs):
            loss, steps = self.train_epoch()
            per_lang, avg_f1, std_f1 = self.evaluate_all()
            history.append({"epoch": epoch, "loss": loss, "steps": steps, "avg_f1": float(avg_f1)})
        return history


# ----------------------------------------------------------------------------- checkpoints

def save_zero_shot_checkpoint(tmpdir):
    trainer = QATrainer(QAConfig(epochs=1))
    history = trainer.fit()
    per_lang, avg_f1, std_f1 = trainer.evaluate_all()
    payload = trainer.checkpoint_payload()
    payload.update(
        config=trainer.cfg,  # truth: weights_only
        config_dict=dataclasses.asdict(trainer.cfg),
        history=history,
        zero_shot_f1=avg_f1,  # truth: weights_only
        zero_shot_f1_std=float(std_f1),
        per_language_f1={lang: r["f1"] for lang, r in per_lang.items()},
    )
    path = os.path.join(tmpdir, "xqa_zero_shot.pt")
    torch.save(payload, path)
    return path


def save_vocab_checkpoint(tmpdir):
    trainer = QATrainer()
    trainer.train_epoch()
    vocab = trainer.vocab
    ckpt = trainer.checkpoint_payload()
    ckpt["vocab"] = {
        "itos": vocab.itos,
        "stoi": vocab.stoi,  # truth: weights_only
        "pad_id": vocab.stoi[vocab.PAD],
        "size": len(vocab),
    }
    ckpt["tokenizer"] = trainer.tokenizer_opts  # truth: weights_only
    ckpt["tokenizer_kwargs"] = vars(trainer.tokenizer_opts)
    ckpt["languages"] = frozenset(trainer.cfg.eval_langs)  # truth: weights_only
    ckpt["language_list"] = sorted(set(trainer.cfg.eval_langs))
    path = os.path.join(tmpdir, "xqa_vocab.pt")
    torch.save(ckpt, path)
    return path


def save_language_report(tmpdir):
    trainer = QATrainer(QAConfig(eval_langs=("de", "ar")))
    trainer.fit()
    report = {}
    for lang in trainer.cfg.eval_langs:
        r = trainer.evaluate(lang)
        report[f"{lang}_em"] = float(r["exact_match"])
        report[f"{lang}_f1"] = r["f1"]
    de = trainer.evaluate("de")
    ckpt = {
        "state_dict": trainer.model.state_dict(),
        "report": report,
        "de_exact_match": de["exact_match"],  # truth: weights_only
        "de_examples": de["n"],
        "pivot": Lang.EN,  # truth: weights_only
        "pivot_code": Lang.EN.value,
        "supported": [l.value for l in Lang],
    }
    path = os.path.join(tmpdir, "xqa_report.pt")
    torch.save(ckpt, path)
    return path


def save_resume_state(tmpdir):
    trainer = QATrainer(QAConfig(warmup_steps=2))
    loss, steps = trainer.train_epoch()
    run_id = uuid.uuid4()
    state = {
        "trainer": trainer.checkpoint_payload(),
        "scheduler_obj": trainer.scheduler,  # truth: weights_only
        "last_lr": trainer.scheduler.get_last_lr()[0],
        "loss": loss,
        "steps_in_epoch": steps,
        "run_id": run_id,  # truth: weights_only
        "run_name": str(run_id),
        "torch_version": str(torch.__version__),
        "numpy_version": np.__version__,
        "rng": trainer.rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
    }
    path = os.path.join(tmpdir, "xqa_resume.pt")
    torch.save(state, path)
    return path


def save_best_prediction(tmpdir):
    trainer = QATrainer(QAConfig(eval_langs=("es",)))
    trainer.evaluate("es")
    span = trainer.best_prediction
    ckpt = {"model": trainer.model.state_dict()}
    ckpt["best_span"] = span  # truth: weights_only
    ckpt["best_span_dict"] = span._asdict()
    ckpt["best_span_tuple"] = tuple(span)
    ckpt["best_f1"] = trainer.best_f1
    ckpt["answer_lengths"] = range(1, trainer.cfg.max_answer_len + 1)  # truth: weights_only
    ckpt["max_answer_len"] = trainer.cfg.max_answer_len
    path = os.path.join(tmpdir, "xqa_best_span.pt")
    torch.save(ckpt, path)
    return path


def save_distill_export(tmpdir):
    """Export for the student distillation stage: everything plain."""
    trainer = QATrainer(QAConfig(epochs=1, eval_langs=("hi",)))
    history = trainer.fit()
    per_lang, avg_f1, std_f1 = trainer.evaluate_all()
    export = collections.OrderedDict()
    export["model"] = trainer.model.state_dict()
    export["config"] = dataclasses.asdict(trainer.cfg)
    export["vocab_itos"] = list(trainer.vocab.itos)
    export["vocab_stoi"] = dict(trainer.vocab.stoi)
    export["avg_f1"] = avg_f1.item()
    export["history"] = history
    export["span"] = list(trainer.best_prediction) if trainer.best_prediction else None
    export["hi"] = {k: float(v) for k, v in per_lang["hi"].items()}
    export["dtype"] = torch.float32
    export["emb_shape"] = trainer.model.emb.weight.shape
    path = os.path.join(tmpdir, "xqa_student_export.pt")
    torch.save(export, path)
    return path


FACTORIES = {
    "Lang": lambda: Lang("de"),
}
