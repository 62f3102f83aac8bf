"""Clinical named-entity recognition (n2c2-2010 style: PROBLEM / TEST / TREATMENT, plus DRUG / DOSE).

Word + character BiLSTM tagger over BIO tags, trained by a small trainer class.  Discharge-summary
sentences are generated from templates here so the script runs without the licensed corpus.
"""
import datetime
import random
import re
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from enum import Enum
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight

ENTITY_TYPES = ("PROBLEM", "TEST", "TREATMENT", "DRUG", "DOSE")
TOKEN_RE = re.compile(r"\d+(?:\.\d+)?|[A-Za-z]+(?:[-'/.][A-Za-z]+)*\.?|[^\sA-Za-z\d]")
ABBREVIATIONS = frozenset({"b.i.d.", "t.i.d.", "q.d.", "p.o.", "p.r.n.", "h/o", "s/p", "c/o"})
PAD, UNK = "<pad>", "<unk>"

TEMPLATES = [
    ("patient started on {DRUG} {DOSE} p.o. b.i.d. for {PROBLEM} .", None),
    ("{TEST} showed {PROBLEM} , treated with {TREATMENT} .", None),
    ("h/o {PROBLEM} s/p {TREATMENT} in 2019 .", None),
    ("repeat {TEST} was negative ; continue {DRUG} {DOSE} q.d. .", None),
]
FILLERS = {
    "PROBLEM": ["type 2 diabetes", "atrial fibrillation", "chest pain", "pneumonia", "acute kidney injury"],
    "TEST": ["chest x-ray", "troponin", "ct abdomen", "hemoglobin a1c", "echocardiogram"],
    "TREATMENT": ["cabg", "dialysis", "iv fluids", "cardioversion"],
    "DRUG": ["metformin", "warfarin", "lisinopril", "ceftriaxone", "aspirin"],
    "DOSE": ["500 mg", "5 mg", "1 g", "81 mg", "20 mg"],
}


class TaggingScheme(Enum):
    IO = "io"
    BIO = "bio"
    BIOES = "bioes"


@dataclass
class OptimConfig:
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 5
    grad_clip: float = 5.0


@dataclass
class NERConfig:
    data_dir: str = "/data/n2c2_2010"
    n_train: int = 48
    n_dev: int = 16
    word_dim: int = 48
    char_dim: int = 16
    hidden: int = 48
    dropout: float = 0.3
    epochs: int = 2
    batch_size: int = 8
    min_freq: int = 1
    scheme: TaggingScheme = TaggingScheme.BIO
    entity_types: tuple = ENTITY_TYPES
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 13


# --------------------------------------------------------------------------- data

def tokenize(text):
    out = []
    for tok in text.split():
        out.extend([tok] if tok in ABBREVIATIONS else TOKEN_RE.findall(tok))
    return out


def synth_notes(n, rng):
    sents = []
    for _ in range(n):
        template, _ = TEMPLATES[rng.randrange(len(TEMPLATES))]
        tokens, tags = [], []
        for piece in template.split():
            slot = piece[1:-1] if piece.startswith("{") else None
            if slot:
                words = tokenize(rng.choice(FILLERS[slot]))
                tokens += words
                tags += [f"B-{slot}"] + [f"I-{slot}"] * (len(words) - 1)
            else:
                words = tokenize(piece)
                tokens += words
                tags += ["O"] * len(words)
        sents.append((tokens, tags))
    return sents


class Vocab:
    def __init__(self, counter=None, min_freq=1, specials=(PAD, UNK)):
        counter = counter or Counter()
        self.itos = list(specials) + sorted(w for w, c in counter.items() if c >= min_freq)
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.freqs = counter

    def __len__(self):
        return len(self.itos)

    def encode(self, tokens):
        unk = self.stoi[UNK]
        return [self.stoi.get(t.lower(), unk) for t in tokens]


def spans(tags):
    """BIO tags -> set of (start, end, type)."""
    out, start, kind = set(), None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        if start is not None and not tag.startswith("I-"):
            out.add((start, i, kind))
            start = None
        if tag.startswith("B-"):
            start, kind = i, tag[2:]
    return out


# --------------------------------------------------------------------------- model

class CharCNN(nn.Module):
    def __init__(self, n_chars=128, dim=16, out=32):
        super().__init__()
        self.emb = nn.Embedding(n_chars, dim, padding_idx=0)
        self.conv = nn.Conv1d(dim, out, 3, padding=1)

    def forward(self, chars):  # (B, T, C)
        b, t, c = chars.shape
        h = self.conv(self.emb(chars.view(b * t, c)).transpose(1, 2))
        return h.max(dim=2).values.view(b, t, -1)


class BiLSTMTagger(nn.Module):
    def __init__(self, n_words=100, n_tags=11, word_dim=48, char_dim=16, hidden=48, dropout=0.3):
        super().__init__()
        self.words = nn.Embedding(n_words, word_dim, padding_idx=0)
        self.chars = CharCNN(dim=char_dim, out=char_dim * 2)
        self.lstm = nn.LSTM(word_dim + char_dim * 2, hidden, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden, n_tags)

    def forward(self, words, chars):
        h, _ = self.lstm(torch.cat([self.words(words), self.chars(chars)], dim=-1))
        return self.out(self.drop(h))


def warmup_then_constant(step, warmup):
    return min(1.0, (step + 1) / max(1, warmup))


# --------------------------------------------------------------------------- trainer

class NERTrainer:
    def __init__(self, cfg=None):
        self.cfg = cfg or NERConfig()
        rng = random.Random(self.cfg.seed)
        torch.manual_seed(self.cfg.seed)
        self.train_data = synth_notes(self.cfg.n_train, rng)
        self.dev_data = synth_notes(self.cfg.n_dev, rng)
        self.vocab = Vocab(Counter(t.lower() for s, _ in self.train_data for t in s), self.cfg.min_freq)
        all_tags = [t for _, tags in self.train_data for t in tags]
        self.tag_counts = Counter(all_tags)
        self.label_encoder = LabelEncoder().fit(all_tags + [f"{p}-{e}" for e in ENTITY_TYPES for p in "BI"])
        y = self.label_encoder.transform(all_tags)
        self.class_weights_np = compute_class_weight("balanced", classes=np.unique(y), y=y)
        self.model = BiLSTMTagger(len(self.vocab), len(self.label_encoder.classes_), self.cfg.word_dim,
                                  self.cfg.char_dim, self.cfg.hidden, self.cfg.dropout)
        weights = torch.ones(len(self.label_encoder.classes_))
        weights[np.unique(y)] = torch.tensor(self.class_weights_np, dtype=torch.float)
        self.criterion = nn.CrossEntropyLoss(weight=weights, ignore_index=-100)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.optim.lr,
                                           weight_decay=self.cfg.optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, partial(warmup_then_constant, warmup=self.cfg.optim.warmup_steps))
        self.epoch = 0
        self.best_f1 = 0.0
        self.history = defaultdict(list)

    def batches(self, data, shuffle=False):
        order = list(range(len(data)))
        if shuffle:
            random.shuffle(order)
        for i in range(0, len(order), self.cfg.batch_size):
            chunk = [data[j] for j in order[i:i + self.cfg.batch_size]]
            t = max(len(s) for s, _ in chunk)
            w = torch.zeros(len(chunk), t, dtype=torch.long)
            c = torch.zeros(len(chunk), t, 12, dtype=torch.long)
            y = torch.full((len(chunk), t), -100, dtype=torch.long)
            for b, (toks, tags) in enumerate(chunk):
                w[b, :len(toks)] = torch.tensor(self.vocab.encode(toks))
                y[b, :len(toks)] = torch.from_numpy(self.label_encoder.transform(tags))
                for k, tok in enumerate(toks):
                    ids = [min(ord(ch), 127) for ch in tok[:12]]
                    c[b, k, :len(ids)] = torch.tensor(ids)
            yield w, c, y, chunk

    def train_epoch(self):
        self.model.train()
        total, n = 0.0, 0
        for w, c, y, _ in self.batches(self.train_data, shuffle=True):
            logits = self.model(w, c)
            loss = self.criterion(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            total += loss.item()
            n += 1
        return total / max(n, 1)

    @torch.no_grad()
    def evaluate(self):
        self.model.eval()
        gold_tags, pred_tags, tp, n_pred, n_gold = [], [], 0, 0, 0
        for w, c, y, chunk in self.batches(self.dev_data):
            pred = self.model(w, c).argmax(-1)
            for b, (toks, tags) in enumerate(chunk):
                p = self.label_encoder.inverse_transform(pred[b, :len(toks)].numpy()).tolist()
                gold, guess = spans(tags), spans(p)
                tp, n_pred, n_gold = tp + len(gold & guess), n_pred + len(guess), n_gold + len(gold)
                gold_tags += tags
                pred_tags += p
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        span_f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        labels = [f"B-{e}" for e in ENTITY_TYPES]
        _, _, per_type, _ = precision_recall_fscore_support(gold_tags, pred_tags, labels=labels, zero_division=0)
        token_f1 = f1_score(gold_tags, pred_tags, average="micro")
        return span_f1, token_f1, per_type, confusion_matrix(gold_tags, pred_tags, labels=labels)

    def fit(self):
        for self.epoch in range(self.cfg.epochs):
            loss = self.train_epoch()
            span_f1, token_f1, per_type, _ = self.evaluate()
            self.history["loss"].append(loss)
            self.history["span_f1"].append(span_f1)
            self.best_f1 = max(self.best_f1, span_f1)
        return self

    def state_dict(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "best_f1": self.best_f1,
        }

    def save_checkpoint(self, path, extra=None):
        state = self.state_dict()
        state.update(extra or {})
        torch.save(state, path)
        return str(path)


FACTORIES = {
    "TaggingScheme": lambda: TaggingScheme.BIOES,
    "NERTrainer": lambda: NERTrainer(NERConfig(epochs=1, n_train=16, n_dev=8)),
}


# --------------------------------------------------------------------------- checkpoints

def save_ner_last(out_dir):
    cfg = NERConfig()
    trainer = NERTrainer(cfg).fit()
    config = {**asdict(cfg), "scheme": cfg.scheme.value}
    return trainer.save_checkpoint(Path(out_dir) / "last.ckpt", extra={
        "config": config,
        "tag_scheme": cfg.scheme,  # truth: weights_only
        "vocab": trainer.vocab.itos,
        "tags": trainer.label_encoder.classes_.tolist(),
        "entity_types": list(cfg.entity_types),
        "history": dict(trainer.history),
    })


def save_ner_best(out_dir):
    trainer = NERTrainer(NERConfig(epochs=3))
    best = None
    for epoch in range(trainer.cfg.epochs):
        trainer.epoch = epoch
        trainer.train_epoch()
        span_f1, token_f1, per_type, cm = trainer.evaluate()
        if best is None or span_f1 >= best[0]:
            best = (span_f1, token_f1, per_type, cm, trainer.state_dict())
    span_f1, token_f1, per_type, cm, ckpt = best
    ckpt["span_f1"] = span_f1
    ckpt["token_f1"] = token_f1
    ckpt["type_f1"] = per_type  # truth: weights_only
    ckpt["confusion"] = cm.tolist()
    ckpt["class_weights"] = trainer.class_weights_np  # truth: weights_only
    ckpt["loss_weights"] = trainer.criterion.weight.clone()
    ckpt["token_regex"] = TOKEN_RE.pattern
    ckpt["tokenizer"] = {"regex": TOKEN_RE, "lowercase": True}  # truth: weights_only
    path = Path(out_dir) / "best.ckpt"
    torch.save(ckpt, path)
    return str(path)


def save_full_model(out_dir):
    trainer = NERTrainer(NERConfig(epochs=1)).fit()
    path = Path(out_dir) / "tagger_full.pt"
    torch.save(trainer.model, path)  # truth: weights_only
    return str(path)


def save_preprocessing(out_dir):
    trainer = NERTrainer(NERConfig(epochs=1, n_train=24))
    le = trainer.label_encoder
    dev_tags = [t for _, tags in trainer.dev_data for t in tags]
    artefacts = {}
    artefacts["label_encoder"] = le  # truth: weights_only
    artefacts["tag_names"] = list(map(str, le.classes_))
    artefacts["outside_index"] = le.transform(["O"])[0]  # truth: weights_only
    artefacts["n_tags"] = len(le.classes_)
    artefacts["train_tag_counts"] = trainer.tag_counts
    artefacts["dev_tag_counts"] = Counter(le.inverse_transform(le.transform(dev_tags)))  # truth: weights_only
    artefacts["abbreviations"] = ABBREVIATIONS  # truth: weights_only
    artefacts["abbreviation_list"] = sorted(ABBREVIATIONS)
    artefacts["specials"] = (PAD, UNK)
    artefacts["word_freqs"] = dict(trainer.vocab.freqs.most_common(50))
    lengths = [len(s) for s, _ in trainer.train_data]
    artefacts["max_len"] = int(np.ceil(np.percentile(lengths, 95)))
    artefacts["mean_len"] = sum(lengths) / len(lengths)
    path = Path(out_dir) / "preprocessing.pt"
    torch.save(artefacts, path)
    return str(path)


def save_training_state(out_dir):
    trainer = NERTrainer(NERConfig(epochs=1)).fit()
    started = datetime.datetime.now()
    state = {
        "epoch": trainer.epoch + 1,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer,  # truth: weights_only
        "scheduler": trainer.scheduler.state_dict(),
        "lr": trainer.scheduler.get_last_lr()[0],
        "run_id": uuid.uuid4(),  # truth: weights_only
        "started": started.isoformat(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
        "history": {k: list(v) for k, v in trainer.history.items()},
        "best_f1": trainer.best_f1,
    }
    path = Path(out_dir) / "state.pt"
    torch.save(state, path)
    return str(path)


def save_inference_export(out_dir):
    cfg = NERConfig(epochs=1, scheme=TaggingScheme.BIOES)
    trainer = NERTrainer(cfg).fit()
    _, token_f1, per_type, _ = trainer.evaluate()
    export = {
        "state_dict": trainer.model.state_dict(),
        "itos": trainer.vocab.itos,
        "idx2tag": dict(enumerate(trainer.label_encoder.classes_.tolist())),
        "scheme": cfg.scheme.value,
        "dims": (cfg.word_dim, cfg.char_dim, cfg.hidden),
        "optim": asdict(cfg.optim),
        "type_f1": {e: round(float(f), 4) for e, f in zip(ENTITY_TYPES, per_type)},
        "token_f1": token_f1,
        "export_id": uuid.uuid4().hex,
        "data_dir": str(Path(cfg.data_dir)),
    }
    path = Path(out_dir) / "export.pt"
    torch.save(export, path)
    return str(path)
