"""Text-to-SQL fine-tuning on a Spider-style toy split: schema-serialized input, GRU seq2seq, execution match.

Config is YAML, models come from a registry, the trainer writes the checkpoints.
"""
import collections
import dataclasses
import enum
import hashlib
import math
import os
import random
import re
import sqlite3
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import yaml

CONFIG_YAML = """
experiment:
  name: spider-gru-small
  created: 2024-05-14
  tags: [text2sql, spider, gru]
model:
  arch: gru_seq2seq
  d_model: 32
  n_layers: 1
  dropout: 0.1
optim:
  lr: 3e-3
  weight_decay: 0.01
  warmup_steps: 4
train:
  epochs: 2
  batch_size: 4
  max_src_len: 64
  max_tgt_len: 24
  seed: 13
  log_every: 5
decode:
  mode: greedy
  beam_size: 1
"""

SQL_KEYWORDS = {"select", "from", "where", "group", "by", "order", "having", "limit", "join", "on", "as",
                "not", "in", "and", "or", "count", "avg", "max", "min", "sum", "desc", "asc", "distinct"}
VALUE_RE = re.compile(r"'[^']*'|\b\d+(?:\.\d+)?\b")

SCHEMA = {
    "singer": [("singer_id", "INTEGER"), ("name", "TEXT"), ("country", "TEXT"), ("age", "INTEGER")],
    "concert": [("concert_id", "INTEGER"), ("venue", "TEXT"), ("year", "INTEGER"), ("singer_id", "INTEGER")],
}
ROWS = {
    "singer": [(1, "Joe Sharp", "Netherlands", 52), (2, "Timbaland", "United States", 32),
               (3, "Justin Brown", "France", 29), (4, "Rose White", "France", 41)],
    "concert": [(1, "Hampden Park", 2014, 2), (2, "Balmoor", 2015, 3), (3, "Glebe Park", 2015, 2)],
}
EXAMPLES = [
    ("How many singers are there?", "SELECT count(*) FROM singer", "easy"),
    ("What are the names of singers from France?", "SELECT name FROM singer WHERE country = 'France'", "easy"),
    ("Show the average age of singers.", "SELECT avg(age) FROM singer", "easy"),
    ("List venues of concerts held after 2014.", "SELECT venue FROM concert WHERE year > 2014", "medium"),
    ("Which countries have more than one singer?",
     "SELECT country FROM singer GROUP BY country HAVING count(*) > 1", "medium"),
    ("Name of the oldest singer.", "SELECT name FROM singer ORDER BY age DESC LIMIT 1", "medium"),
    ("How many concerts did each singer give?",
     "SELECT T2.name, count(*) FROM concert AS T1 JOIN singer AS T2 ON T1.singer_id = T2.singer_id "
     "GROUP BY T1.singer_id", "hard"),
    ("Names of singers who never gave a concert.",
     "SELECT name FROM singer WHERE singer_id NOT IN (SELECT singer_id FROM concert)", "extra"),
]


class DecodeMode(str, enum.Enum):
    GREEDY = "greedy"
    BEAM = "beam"


@dataclass
class ModelConfig:
    arch: str = "gru_seq2seq"
    d_model: int = 32
    n_layers: int = 1
    dropout: float = 0.1


@dataclass
class OptimConfig:
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 4


@dataclass
class TrainConfig:
    epochs: int = 2
    batch_size: int = 4
    max_src_len: int = 64
    max_tgt_len: int = 24
    seed: int = 13
    log_every: int = 5


@dataclass
class DecodeConfig:
    mode: DecodeMode = DecodeMode.GREEDY
    beam_size: int = 1


@dataclass
class ExperimentConfig:
    name: str = "spider-gru-small"
    tags: list = field(default_factory=list)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    @classmethod
    def from_dict(cls, raw):
        exp = raw.get("experiment", {})
        dec = dict(raw.get("decode", {}))
        dec["mode"] = DecodeMode(dec.get("mode", "greedy"))
        return cls(name=exp.get("name", cls.name), tags=list(exp.get("tags", [])),
                   model=ModelConfig(**raw["model"]), optim=OptimConfig(**raw["optim"]),
                   train=TrainConfig(**raw["train"]), decode=DecodeConfig(**dec))


def enum_values(pairs):
    return {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in pairs}


MODEL_REGISTRY = {}


def register_model(name):
    def deco(cls):
        MODEL_REGISTRY[name] = cls
        return cls
    return deco


@register_model("gru_seq2seq")
class GRUSeq2Seq(nn.Module):
    def __init__(self, vocab_size=64, d_model=32, n_layers=1, dropout=0.1, pad_id=0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.encoder = nn.GRU(d_model, d_model, n_layers, batch_first=True)
        self.decoder = nn.GRU(d_model, d_model, n_layers, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, vocab_size)

    def forward(self, src, tgt_in):
        _, h = self.encoder(self.drop(self.embed(src)))
        dec, _ = self.decoder(self.drop(self.embed(tgt_in)), h)
        return self.out(dec)

    @torch.no_grad()
    def greedy(self, src, bos, max_len):
        _, h = self.encoder(self.embed(src))
        tok = torch.full((src.size(0), 1), bos, dtype=torch.long)
        outs = []
        for _ in range(max_len):
            dec, h = self.decoder(self.embed(tok), h)
            tok = self.out(dec).argmax(-1)
            outs.append(tok)
        return torch.cat(outs, 1)


class SQLTokenizer:
    SPECIALS = ("<pad>", "<s>", "</s>", "<unk>", "<sep>")

    def __init__(self, lowercase=True):
        self.lowercase = lowercase
        self.token_re = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*|\d+|'[^']*'|[^\sA-Za-z0-9_]")
        self.itos = list(self.SPECIALS)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.freq = collections.Counter()

    def __len__(self):
        return len(self.itos)

    def tokenize(self, text):
        toks = self.token_re.findall(text)
        return [t.lower() if self.lowercase and not t.startswith("'") else t for t in toks]

    def fit(self, texts):
        for text in texts:
            self.freq.update(self.tokenize(text))
        for tok, _ in self.freq.most_common():
            if tok not in self.stoi:
                self.stoi[tok] = len(self.itos)
                self.itos.append(tok)
        return self

    def encode(self, text, max_len, bos=False):
        ids = [self.stoi.get(t, 3) for t in self.tokenize(text)][: max_len - 2]
        ids = ([1] if bos else []) + ids + [2]
        return ids + [0] * (max_len - len(ids))

    def decode(self, ids):
        out = []
        for i in ids:
            if i == 2:
                break
            if i > 4:
                out.append(self.itos[i])
        return " ".join(out)

    def state_dict(self):
        return {"itos": list(self.itos), "lowercase": self.lowercase, "pattern": self.token_re.pattern}


def serialize(question, schema):
    tables = " | ".join(f"{t}: " + ", ".join(c for c, _ in cols) for t, cols in schema.items())
    return f"{question} <sep> {tables}"


def build_db(schema=SCHEMA, rows=ROWS):
    conn = sqlite3.connect(":memory:")
    for table, cols in schema.items():
        conn.execute(f"CREATE TABLE {table} (" + ", ".join(f"{c} {t}" for c, t in cols) + ")")
        conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(cols))})", rows[table])
    return conn


def execution_match(conn, pred_sql, gold_sql):
    try:
        pred = conn.execute(pred_sql).fetchall()
    except sqlite3.Error:
        return False
    gold = conn.execute(gold_sql).fetchall()
    return sorted(map(repr, pred)) == sorted(map(repr, gold))


def schema_digest(schema):
    return hashlib.sha256(repr(sorted(schema.items())).encode()).digest()


class WarmupSchedule:
    """Linear warmup then inverse-sqrt decay; an object (not a lambda) so the trainer pickles."""

    def __init__(self, warmup_steps=4):
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = max(step, 1)
        return min(step / self.warmup_steps, math.sqrt(self.warmup_steps / step))


class Seq2SQLTrainer:
    def __init__(self, cfg, tokenizer):
        self.cfg = cfg
        self.tok = tokenizer
        self.rng = random.Random(cfg.train.seed)
        torch.manual_seed(cfg.train.seed)
        self.model = MODEL_REGISTRY[cfg.model.arch](len(tokenizer), cfg.model.d_model, cfg.model.n_layers,
                                                    cfg.model.dropout)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=float(cfg.optim.lr),
                                           weight_decay=cfg.optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, WarmupSchedule(cfg.optim.warmup_steps))
        self.criterion = nn.CrossEntropyLoss(ignore_index=0)
        self.recent_losses = collections.deque(maxlen=cfg.train.log_every)
        self.global_step = 0
        self.epoch = 0

    def _tensors(self, batch):
        t = self.cfg.train
        src = torch.tensor([self.tok.encode(serialize(q, SCHEMA), t.max_src_len) for q, _, _ in batch])
        tgt = torch.tensor([self.tok.encode(s, t.max_tgt_len + 1, bos=True) for _, s, _ in batch])
        return src, tgt[:, :-1], tgt[:, 1:]

    def train_epoch(self, examples):
        self.model.train()
        order = list(examples)
        self.rng.shuffle(order)
        total, n = 0.0, 0
        for s in range(0, len(order), self.cfg.train.batch_size):
            src, tgt_in, tgt_out = self._tensors(order[s:s + self.cfg.train.batch_size])
            logits = self.model(src, tgt_in)
            loss = self.criterion(logits.reshape(-1, logits.size(-1)), tgt_out.reshape(-1))
            self.optimizer.zero_grad()
            loss.backward()
            grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            self.scheduler.step()
            self.recent_losses.append(loss.item())
            total, n = total + loss.item(), n + 1
            self.global_step += 1
        self.epoch += 1
        return total / max(n, 1), grad_norm

    def evaluate(self, examples, conn):
        self.model.eval()
        src, _, _ = self._tensors(examples)
        pred_ids = self.model.greedy(src, bos=1, max_len=self.cfg.train.max_tgt_len)
        rows = []
        for (q, gold, hardness), ids in zip(examples, pred_ids.tolist()):
            pred = self.tok.decode(ids)
            rows.append({"question": q, "pred": pred, "hardness": hardness,
                         "em": pred.lower() == gold.lower(), "exec": execution_match(conn, pred, gold)})
        return pd.DataFrame(rows)

    def checkpoint_state(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "global_step": self.global_step,
            "epoch": self.epoch,
        }

    def save_checkpoint(self, path, extra=None):
        state = self.checkpoint_state()
        state.update(extra or {})
        torch.save(state, path)
        return path


def setup(raw=None):
    raw = raw if raw is not None else yaml.safe_load(CONFIG_YAML)
    cfg = ExperimentConfig.from_dict(raw)
    tok = SQLTokenizer().fit([serialize(q, SCHEMA) for q, _, _ in EXAMPLES] + [s for _, s, _ in EXAMPLES])
    return raw, cfg, tok


def save_finetune_checkpoint(tmpdir):
    raw, cfg, tok = setup()
    trainer = Seq2SQLTrainer(cfg, tok)
    conn = build_db()
    for _ in range(cfg.train.epochs):
        train_loss, grad_norm = trainer.train_epoch(EXAMPLES)
    frame = trainer.evaluate(EXAMPLES, conn)
    conn.close()
    path = os.path.join(tmpdir, f"{cfg.name}-step{trainer.global_step}.pt")
    return trainer.save_checkpoint(path, extra={
        "train_loss": train_loss,
        "grad_norm": grad_norm,
        "exec_acc": frame["exec"].mean(),  # truth: weights_only
        "exact_match": len(frame[frame["em"]]) / len(frame),
        "exec_by_hardness": frame.groupby("hardness")["exec"].mean(),  # truth: weights_only
        "em_by_hardness": frame.groupby("hardness")["em"].mean().round(4).to_dict(),
        "recent_losses": trainer.recent_losses,  # truth: weights_only
        "created": raw["experiment"]["created"],  # truth: weights_only
        "saved_at": time.time(),
        "decode": cfg.decode,  # truth: weights_only
        "config": dataclasses.asdict(cfg, dict_factory=enum_values),
        "yaml_lr": raw["optim"]["lr"],
        "tags": cfg.tags,
    })


def save_tokenizer_bundle(tmpdir):
    _, cfg, tok = setup()
    bundle = {
        "tokenizer": tok,  # truth: weights_only
        "tokenizer_state": tok.state_dict(),
        "vocab_size": len(tok),
        "top_tokens": tok.freq.most_common(10),
        "token_freq": collections.Counter(tok.freq),
        "value_pattern": VALUE_RE,  # truth: weights_only
        "value_pattern_src": VALUE_RE.pattern,
        "keywords": frozenset(SQL_KEYWORDS),  # truth: weights_only
        "keywords_sorted": sorted(SQL_KEYWORDS),
        "keyword_ids": {k: tok.stoi[k] for k in SQL_KEYWORDS if k in tok.stoi},
        "schema": {t: [c for c, _ in cols] for t, cols in SCHEMA.items()},
        "schema_sha256": schema_digest(SCHEMA),
        "sqlite_version": sqlite3.sqlite_version,
        "specials": SQLTokenizer.SPECIALS,
    }
    path = os.path.join(tmpdir, "tokenizer.pt")
    torch.save(bundle, path)
    return path


def dataset_stats(tok, examples, max_src_len):
    df = pd.DataFrame(examples, columns=["question", "sql", "hardness"])
    df["src_len"] = [len(tok.tokenize(serialize(q, SCHEMA))) for q in df["question"]]
    df["tgt_len"] = df["sql"].map(lambda s: len(tok.tokenize(s)))
    df["n_values"] = df["sql"].map(lambda s: len(VALUE_RE.findall(s)))
    truncated = int((df["src_len"] > max_src_len).sum())
    return df, truncated


def save_dataset_stats(tmpdir):
    _, cfg, tok = setup()
    df, truncated = dataset_stats(tok, EXAMPLES, cfg.train.max_src_len)
    p95 = df["tgt_len"].quantile(0.95)
    stats = {}
    stats["n_examples"] = len(df)
    stats["hardness_counts"] = df["hardness"].value_counts().to_dict()
    stats["tgt_len_p95"] = p95  # truth: weights_only
    stats["suggested_max_tgt_len"] = math.ceil(p95) + 2
    stats["src_len"] = df["src_len"].describe().to_dict()
    stats["tgt_len_by_hardness"] = dict(zip(df["hardness"], df["tgt_len"]))
    stats["max_values_in_sql"] = df["n_values"].max()  # truth: weights_only
    stats["truncated"] = truncated
    stats["frac_with_join"] = sum("JOIN" in s for s in df["sql"]) / len(df)
    stats["n_tables"] = len(SCHEMA)
    path = os.path.join(tmpdir, "dataset_stats.pt")
    torch.save(stats, path)
    return path


def save_resume_state(tmpdir):
    raw, cfg, tok = setup()
    trainer = Seq2SQLTrainer(cfg, tok)
    trainer.train_epoch(EXAMPLES[:4])
    ckpt = trainer.checkpoint_state()
    ckpt.update(
        config=cfg,  # truth: weights_only
        rng=trainer.rng,  # truth: weights_only
        torch_rng=torch.get_rng_state(),
        tokenizer_state=tok.state_dict(),
        warmup=vars(WarmupSchedule(cfg.optim.warmup_steps)),
    )
    ckpt["last_lr"] = trainer.scheduler.get_last_lr()
    path = os.path.join(tmpdir, "resume.pt")
    torch.save(ckpt, path)
    return path


def save_inference_export(tmpdir):
    """What the demo server loads: weights, vocabulary and the decode settings, all plain."""
    raw, cfg, tok = setup()
    trainer = Seq2SQLTrainer(cfg, tok)
    export = {
        "arch": cfg.model.arch,
        "model_kwargs": dataclasses.asdict(cfg.model),
        "state_dict": {k: v.half() for k, v in trainer.model.state_dict().items()},
        "itos": tok.itos,
        "decode": {"mode": cfg.decode.mode.value, "beam_size": cfg.decode.beam_size},
        "max_src_len": cfg.train.max_src_len,
        "schema_tables": list(SCHEMA),
        "rng_state": trainer.rng.getstate(),
        "torch_version": str(torch.__version__),
        "numpy_version": np.__version__,
    }
    path = os.path.join(tmpdir, "export.pt")
    torch.save(export, path)
    return path


FACTORIES = {
    "DecodeMode": lambda: DecodeMode.GREEDY,
    "Seq2SQLTrainer": lambda: Seq2SQLTrainer(*setup()[1:]),
    "SQLTokenizer": lambda: SQLTokenizer().fit(["SELECT name FROM singer"]),
}
