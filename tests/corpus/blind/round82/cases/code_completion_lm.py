"""A tiny decoder-only code completion model with fill-in-the-middle (FIM) training.

Layout follows the usual small-LM repos: dataclass configs, a byte-level BPE tokenizer trained
on the corpus, a `Trainer` class whose helper methods return dicts and tuples, and an eval
harness with exact match, edit similarity and the unbiased pass@k estimator.
"""
import copy
import dataclasses
import difflib
import enum
import functools
import hashlib
import math
import random
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "def is_even(n):\n    return n % 2 == 0\n",
    "for i in range(10):\n    print(i)\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n",
    "import os\npath = os.path.join(root, name)\n",
    "function add(a, b) {\n  return a + b;\n}\n",
    "const xs = items.map((x) => x * 2);\n",
    "if (err != nil) {\n    return err\n}\n",
]
PROBLEMS = {
    "python": [("def square(x):\n    return ", "x * x\n"), ("for i in range(", "10):\n")],
    "javascript": [("const ys = xs.map((x) => ", "x + 1);\n")],
}


class Language(enum.Enum):
    PYTHON = "python"
    JAVASCRIPT = "javascript"
    GO = "go"


@dataclass
class ModelConfig:
    vocab_size: int = 320
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    max_len: int = 96
    dropout: float = 0.0


@dataclass
class TrainConfig:
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 4
    total_steps: int = 12
    batch_size: int = 8
    fim_rate: float = 0.5
    language: str = "python"
    seed: int = 0
    out_dir: str = "runs/codelm"
    stop_sequences: list = field(default_factory=lambda: ["\ndef ", "\nclass ", "\n\n"])


class ByteBPETokenizer:
    SPECIALS = ("<pad>", "<bos>", "<eos>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>")

    def __init__(self, corpus=CORPUS, num_merges=40):
        self.pattern = re.compile(r"\s+|\w+|[^\w\s]")
        self.vocab = {tok: i for i, tok in enumerate(self.SPECIALS)}
        for b in range(256):
            self.vocab[bytes([b]).decode("latin-1")] = len(self.vocab)
        self.special_tokens = frozenset(self.SPECIALS)
        self.merges = []
        words = Counter(w for text in corpus for w in self.pattern.findall(text))
        splits = {w: list(w) for w in words}
        for _ in range(num_merges):
            pairs = Counter()
            for w, n in words.items():
                s = splits[w]
                for a, b in zip(s, s[1:]):
                    pairs[a, b] += n
            if not pairs:
                break
            (a, b), _ = pairs.most_common(1)[0]
            self.merges.append((a, b))
            if a + b not in self.vocab:
                self.vocab[a + b] = len(self.vocab)
            for w in splits:
                s, out, i = splits[w], [], 0
                while i < len(s):
                    if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                        out.append(a + b)
                        i += 2
                    else:
                        out.append(s[i])
                        i += 1
                splits[w] = out
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        self.counts = words

    def special(self, name):
        return self.vocab[name]

    def encode(self, text):
        ids = []
        for word in self.pattern.findall(text):
            parts = list(word)
            for a, b in self.merges:
                i = 0
                while i < len(parts) - 1:
                    if parts[i] == a and parts[i + 1] == b:
                        parts[i:i + 2] = [a + b]
                    else:
                        i += 1
            ids.extend(self.vocab.get(p, self.vocab[p.encode("utf-8")[:1].decode("latin-1")]) for p in parts)
        return ids

    def decode(self, ids):
        return "".join(self.id_to_token[i] for i in ids if self.id_to_token[i] not in self.special_tokens)


def fim_transform(ids, tok, rng, rate):
    """PSM fill-in-the-middle: <fim_prefix> P <fim_suffix> S <fim_middle> M."""
    if len(ids) < 3 or rng.random() > rate:
        return [tok.special("<bos>")] + ids + [tok.special("<eos>")]
    i, j = sorted(rng.sample(range(1, len(ids)), 2))
    return ([tok.special("<fim_prefix>")] + ids[:i] + [tok.special("<fim_suffix>")] + ids[j:]
            + [tok.special("<fim_middle>")] + ids[i:j] + [tok.special("<eos>")])


class TinyCodeLM(nn.Module):
    def __init__(self, cfg=None):
        super().__init__()
        cfg = cfg or ModelConfig()
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, 4 * cfg.d_model, cfg.dropout,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.tok.weight

    def forward(self, ids):
        t = ids.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(t)
        h = self.tok(ids) + self.pos(torch.arange(t))
        return self.lm_head(self.norm(self.blocks(h, mask=mask, is_causal=True)))


def warmup_cosine(step, warmup, total):
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def estimate_pass_at_k(num_samples, num_correct, k):
    """Unbiased pass@k (Chen et al. 2021), one value per problem."""
    def estimator(n, c):
        if n - c < k:
            return 1.0
        return 1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1))
    return np.array([estimator(int(n), int(c)) for n, c in zip(num_samples, num_correct)])


class CodeLMTrainer:
    def __init__(self, model_cfg=None, train_cfg=None, tokenizer=None):
        self.model_cfg = model_cfg or ModelConfig()
        self.cfg = train_cfg or TrainConfig()
        self.tokenizer = tokenizer or ByteBPETokenizer()
        self.model_cfg.vocab_size = len(self.tokenizer.vocab)
        torch.manual_seed(self.cfg.seed)
        self.rng = random.Random(self.cfg.seed)
        self.model = TinyCodeLM(self.model_cfg)
        decay = [p for n, p in self.model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in self.model.named_parameters() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.cfg.lr, betas=(0.9, 0.95))
        self.lr_fn = functools.partial(warmup_cosine, warmup=self.cfg.warmup_steps, total=self.cfg.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_fn)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.step = 0
        self.tokens_per_step = []

    def batch(self):
        texts = [self.rng.choice(CORPUS) for _ in range(self.cfg.batch_size)]
        seqs = [fim_transform(self.tokenizer.encode(t), self.tokenizer, self.rng, self.cfg.fim_rate) for t in texts]
        seqs = [s[:self.model_cfg.max_len] for s in seqs]
        width = max(map(len, seqs))
        pad = self.tokenizer.special("<pad>")
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s)
        return ids, np.array([len(s) for s in seqs])

    def train_steps(self, n):
        losses = []
        for _ in range(n):
            ids, lengths = self.batch()
            logits = self.model(ids[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                                   ignore_index=self.tokenizer.special("<pad>"))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            self.scheduler.step()
            with torch.no_grad():
                for e, p in zip(self.ema.parameters(), self.model.parameters()):
                    e.lerp_(p, 0.01)
            self.step += 1
            self.tokens_per_step.append(lengths.sum())
            losses.append(loss.item())
        return statistics.fmean(losses), np.cumsum(self.tokens_per_step)[-1]

    @torch.no_grad()
    def evaluate(self, texts=CORPUS):
        total, count = 0.0, 0
        for text in texts:
            ids = torch.tensor([self.tokenizer.encode(text)])
            logits = self.model(ids[:, :-1])
            total += F.cross_entropy(logits[0], ids[0, 1:], reduction="sum").item()
            count += ids.shape[1] - 1
        return {"loss": total / count, "ppl": math.exp(total / count), "tokens": count}

    @torch.no_grad()
    def complete(self, prompt, max_new=8, temperature=0.0):
        ids = self.tokenizer.encode(prompt)
        for _ in range(max_new):
            logits = self.model(torch.tensor([ids[-self.model_cfg.max_len:]]))[0, -1]
            if temperature > 0:
                nxt = int(torch.multinomial(F.softmax(logits / temperature, -1), 1))
            else:
                nxt = int(logits.argmax())
            if nxt == self.tokenizer.special("<eos>"):
                break
            ids.append(nxt)
        return self.tokenizer.decode(ids)[len(prompt):]

    def score_language(self, language, n_samples=4):
        em, sims, correct = [], [], []
        for prefix, target in PROBLEMS.get(language.value, []):
            greedy = self.complete(prefix)
            em.append(float(greedy.strip() == target.strip()))
            sims.append(difflib.SequenceMatcher(None, greedy, target).ratio())
            samples = [self.complete(prefix, temperature=0.8) for _ in range(n_samples)]
            correct.append(sum(s.startswith(target.strip()) for s in samples))
        return em, sims, [n_samples] * len(correct), correct

    def state_dict(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
        }

    def save(self, path, extra=None):
        state = self.state_dict()
        state.update(extra or {})
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)
        return str(path)


def save_pretrain_checkpoint(tmpdir):
    trainer = CodeLMTrainer()
    train_loss, tokens_seen = trainer.train_steps(4)
    val = trainer.evaluate()
    return trainer.save(Path(tmpdir) / "pretrain.pt", {
        "model_config": trainer.model_cfg,  # truth: weights_only
        "train_config": dataclasses.asdict(trainer.cfg),
        "tokens_seen": tokens_seen,  # truth: weights_only
        "train_loss": train_loss,
        "val_loss": val["loss"],
        "val_ppl": np.exp(val["loss"]),  # truth: weights_only
        "val_ppl_exact": val["ppl"],
        "language": Language(trainer.cfg.language),  # truth: weights_only
        "lr": trainer.scheduler.get_last_lr(),
    })


def save_tokenizer_bundle(tmpdir):
    tok = ByteBPETokenizer(num_merges=60)
    model = TinyCodeLM(ModelConfig(vocab_size=len(tok.vocab)))
    bundle = {
        "model": model.state_dict(),
        "vocab": tok.vocab,
        "merges": tok.merges,
        "id_to_token": tok.id_to_token,
        "special_tokens": tok.special_tokens,  # truth: weights_only
        "special_ids": {name: tok.special(name) for name in sorted(tok.special_tokens)},
        "word_counts": tok.counts,
        "top_words": tok.counts.most_common(10),
        "split_regex": tok.pattern,  # truth: weights_only
        "split_pattern": tok.pattern.pattern,
        "byte_alphabet": bytes(range(256)),
    }
    out = Path(tmpdir) / "tokenizer_bundle.pt"
    torch.save(bundle, out)
    return str(out)


def save_eval_report(tmpdir):
    trainer = CodeLMTrainer(train_cfg=TrainConfig(total_steps=6))
    trainer.train_steps(2)
    per_lang = {}
    for language in (Language.PYTHON, Language.JAVASCRIPT):
        em, sims, n, c = trainer.score_language(language)
        p1 = estimate_pass_at_k(n, c, 1)
        p3 = estimate_pass_at_k(n, c, 3)
        per_lang[language.value] = {
            "exact_match": sum(em) / len(em),
            "edit_sim": statistics.mean(sims),
            "pass_at_1": p1.mean(),  # truth: weights_only
            "pass_at_3": float(p3.mean()),
            "n_problems": len(em),
        }
    lengths = [len(trainer.tokenizer.encode(p)) for probs in PROBLEMS.values() for p, _ in probs]
    report = {
        "per_language": per_lang,
        "prompt_len_quantiles": np.percentile(lengths, [50, 90]).tolist(),
        "prompt_len_median": statistics.median(lengths),
        "step": trainer.step,
        "weights": trainer.ema.state_dict(),
    }
    out = Path(tmpdir) / "eval.pt"
    torch.save(report, out)
    return str(out)


def save_resume_state(tmpdir):
    trainer = CodeLMTrainer()
    trainer.train_steps(3)
    np.random.seed(trainer.cfg.seed)
    ckpt = trainer.state_dict()
    ckpt["rng"] = {
        "python": trainer.rng.getstate(),
        "numpy": np.random.get_state(),  # truth: weights_only
        "torch": torch.get_rng_state(),
    }
    shard_rng = np.random.default_rng(trainer.step)
    ckpt["loader"] = {"shard_order": shard_rng.permutation(16), "cursor": trainer.step * trainer.cfg.batch_size}  # truth: weights_only
    ckpt["tokens_per_step"] = [int(t) for t in trainer.tokens_per_step]
    ckpt["torch_version"] = torch.__version__  # truth: weights_only
    ckpt["ema"] = trainer.ema  # truth: weights_only
    out = Path(tmpdir) / "resume.pt"
    torch.save(ckpt, out)
    return str(out)


def save_student_export(tmpdir):
    """Distilled student for the IDE plugin: fp16 weights and plain metadata only."""
    trainer = CodeLMTrainer(ModelConfig(d_model=32, n_layers=1, n_heads=2))
    loss, tokens = trainer.train_steps(2)
    tok = trainer.tokenizer
    vocab_blob = "\n".join(sorted(tok.vocab)).encode("utf-8")
    export = {
        "state_dict": {k: v.to(torch.float16) for k, v in trainer.model.state_dict().items()},
        "config": vars(trainer.model_cfg),
        "dtype": torch.float16,
        "mask_fill": torch.finfo(torch.float16).min,
        "language": Language.PYTHON.value,
        "languages": [lang.value for lang in Language],
        "special_tokens": sorted(tok.special_tokens),
        "vocab_sha1": hashlib.sha1(vocab_blob).digest(),
        "max_positions": trainer.model.pos.num_embeddings,
        "num_params": sum(p.numel() for p in trainer.model.parameters()),
        "tokens_seen": int(tokens),
        "final_loss": loss,
        "stop_sequences": tuple(trainer.cfg.stop_sequences),
        "lr_schedule": [round(trainer.lr_fn(s), 6) for s in range(trainer.cfg.total_steps)],
    }
    out = Path(tmpdir) / "student.pt"
    torch.save(export, out)
    return str(out)


FACTORIES = {
    "Language": lambda: Language.GO,
    "CodeLMTrainer": lambda: CodeLMTrainer(ModelConfig(d_model=32, n_layers=1, n_heads=2)),
}
