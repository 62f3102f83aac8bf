#!/usr/bin/env python
"""Fine-tune a tiny decoder-only transformer for Python code completion.

    python codegen_finetune.py --ctx-len 64 --steps 30 --pass-k 1 5

Steps: train a character-level BPE on the corpus, pack tokenized files into fixed-length
blocks (EOS between files), train with warmup + cosine LR, then sample completions for a few
HumanEval-style prompts and report the unbiased pass@k estimate.
"""
import argparse
import contextlib
import math
import random
import re
import signal
import statistics
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "def sub(a, b):\n    return a - b\n",
    "def mul(a, b):\n    return a * b\n",
    "def square(x):\n    return x * x\n",
    "def is_even(n):\n    return n % 2 == 0\n",
    "def first(xs):\n    return xs[0]\n",
    "def last(xs):\n    return xs[-1]\n",
    "def length(xs):\n    return len(xs)\n",
    "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s\n",
    "def maximum(xs):\n    m = xs[0]\n    for x in xs:\n        if x > m:\n            m = x\n    return m\n",
    "def reverse(s):\n    return s[::-1]\n",
    "def count(xs, v):\n    return sum(1 for x in xs if x == v)\n",
    "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n",
    "def mean(xs):\n    return sum(xs) / len(xs)\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n        self.items.append(x)\n",
    "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
]

PROBLEMS = [
    {"task_id": "toy/0", "prompt": "def add(a, b):\n", "test": "assert add(2, 3) == 5", "entry_point": "add"},
    {"task_id": "toy/1", "prompt": "def square(x):\n", "test": "assert square(4) == 16", "entry_point": "square"},
    {"task_id": "toy/2", "prompt": "def is_even(n):\n", "test": "assert is_even(4) and not is_even(3)",
     "entry_point": "is_even"},
    {"task_id": "toy/3", "prompt": "def last(xs):\n", "test": "assert last([1, 2, 3]) == 3", "entry_point": "last"},
]

STOP_SEQUENCES = ("\ndef", "\nclass", "\nif __name__", "\nprint(")
SAFE_BUILTINS = {name: __builtins__[name] if isinstance(__builtins__, dict) else getattr(__builtins__, name)
                 for name in ("len", "range", "sum", "min", "max", "abs", "AssertionError", "enumerate", "zip")}


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ctx-len", type=int, default=64)
    p.add_argument("--d-model", type=int, default=32)
    p.add_argument("--n-layers", type=int, default=2)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--vocab-size", type=int, default=120)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--pass-k", type=int, nargs="+", default=[1, 5])
    p.add_argument("--n-samples", type=int, default=5)
    p.add_argument("--max-new-tokens", type=int, default=20)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/codelm")
    return p


class CharBPETokenizer:
    SPECIALS = ("<pad>", "<eos>", "<unk>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>")

    def __init__(self, vocab=None, merges=None):
        self.vocab = dict(vocab or {t: i for i, t in enumerate(self.SPECIALS)})
        self.merges = list(merges or [])
        self.special_tokens = frozenset(self.SPECIALS)
        self.pre_tokenize_re = re.compile(r"\n|[ \t]+|\w+|[^\w\s]")
        self.eos = "<eos>"
        self._ranks = {pair: i for i, pair in enumerate(self.merges)}

    @classmethod
    def train(cls, texts, vocab_size):
        tok = cls()
        words = Counter(tuple(piece) for t in texts for piece in tok.pre_tokenize_re.findall(t))
        for ch in sorted({c for w in words for c in w}):
            tok.vocab.setdefault(ch, len(tok.vocab))
        while len(tok.vocab) < vocab_size:
            pairs = Counter()
            for w, freq in words.items():
                for pair in zip(w, w[1:]):
                    pairs[pair] += freq
            if not pairs:
                break
            (a, b), _ = pairs.most_common(1)[0]
            tok.merges.append((a, b))
            tok.vocab[a + b] = len(tok.vocab)
            merged = Counter()
            for w, freq in words.items():
                merged[tuple(_merge_pair(w, a, b))] += freq
            words = merged
        tok._ranks = {pair: i for i, pair in enumerate(tok.merges)}
        return tok

    @property
    def vocab_size(self):
        return len(self.vocab)

    @property
    def eos_id(self):
        return self.vocab[self.eos]

    @property
    def pad_id(self):
        return self.vocab["<pad>"]

    def _bpe(self, piece):
        parts = list(piece)
        while len(parts) > 1:
            ranked = [(self._ranks.get(p, math.inf), i) for i, p in enumerate(zip(parts, parts[1:]))]
            rank, i = min(ranked)
            if rank == math.inf:
                break
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        return parts

    def encode(self, text, add_eos=False):
        unk = self.vocab["<unk>"]
        ids = [self.vocab.get(p, unk) for piece in self.pre_tokenize_re.findall(text) for p in self._bpe(piece)]
        return ids + [self.eos_id] if add_eos else ids

    def decode(self, ids):
        inv = {i: t for t, i in self.vocab.items()}
        return "".join(inv[i] for i in ids if inv.get(i) not in self.special_tokens)


def _merge_pair(word, a, b):
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def pack_sequences(docs, ctx_len, eos_id, pad_id):
    stream, boundaries, lengths = [], [], []
    for ids in docs:
        boundaries.append(len(stream))
        stream.extend(ids + [eos_id])
        lengths.append(len(ids) + 1)
    width = ctx_len + 1
    n_blocks = math.ceil(len(stream) / width)
    pad = n_blocks * width - len(stream)
    stream += [pad_id] * pad
    blocks = torch.tensor(stream, dtype=torch.long).view(n_blocks, width)
    return blocks, {"efficiency": np.sum(lengths) / blocks.numel(), "pad_tokens": pad,
                    "boundaries": boundaries, "lengths": lengths}


class TinyCodeLM(nn.Module):
    def __init__(self, vocab_size=120, d_model=32, n_heads=4, n_layers=2, ctx_len=64):
        super().__init__()
        self.ctx_len = ctx_len
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(ctx_len, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight
        mask = torch.triu(torch.full((ctx_len, ctx_len), float("-inf")), diagonal=1)
        self.register_buffer("causal_mask", mask, persistent=False)

    def forward(self, idx):
        T = idx.shape[1]
        h = self.tok_emb(idx) + self.pos_emb(torch.arange(T))
        h = self.blocks(h, mask=self.causal_mask[:T, :T], is_causal=True)
        return self.lm_head(self.ln_f(h))


def train(model, blocks, args, pad_id):
    torch.manual_seed(args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1, betas=(0.9, 0.95))
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=args.warmup)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, args.steps - args.warmup))
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[args.warmup])
    gen = torch.Generator().manual_seed(args.seed)
    history = []
    for step in range(args.steps):
        batch = blocks[torch.randint(0, blocks.shape[0], (args.batch_size,), generator=gen)]
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), ignore_index=pad_id)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        history.append({"step": step, "loss": loss.item(), "lr": sched.get_last_lr()[0]})
    return opt, sched, history


@torch.no_grad()
def sample(model, prompt_ids, max_new, temperature, gen, eos_id):
    model.eval()
    ids = list(prompt_ids)
    for _ in range(max_new):
        logits = model(torch.tensor([ids[-model.ctx_len:]]))[0, -1] / max(temperature, 1e-4)
        nxt = int(torch.multinomial(F.softmax(logits, -1), 1, generator=gen))
        if nxt == eos_id:
            break
        ids.append(nxt)
    return ids[len(prompt_ids):]


@contextlib.contextmanager
def time_limit(seconds):
    def _raise(signum, frame):
        raise TimeoutError("test timed out")
    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def passes_tests(problem, completion):
    for stop in STOP_SEQUENCES:
        completion = completion.split(stop)[0]
    program = problem["prompt"] + completion + "\n" + problem["test"] + "\n"
    try:
        with time_limit(0.5):
            exec(compile(program, problem["task_id"], "exec"), {"__builtins__": SAFE_BUILTINS})
        return True
    except BaseException:
        return False


def pass_at_k(n, c, k):
    """Unbiased estimator from the Codex paper: 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return 1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1))


def evaluate(model, tok, problems, args):
    gen = torch.Generator().manual_seed(args.seed + 1)
    per_problem, table = [], {k: [] for k in args.pass_k}
    for prob in problems:
        prompt_ids = tok.encode(prob["prompt"])
        correct = sum(passes_tests(prob, tok.decode(sample(model, prompt_ids, args.max_new_tokens, args.temperature,
                                                             gen, tok.eos_id)))
                      for _ in range(args.n_samples))
        per_problem.append({"task_id": prob["task_id"], "n": args.n_samples, "correct": correct})
        for k in args.pass_k:
            table[k].append(pass_at_k(args.n_samples, correct, k))
    return {f"pass@{k}": float(np.mean(v)) for k, v in table.items()}, per_problem, table


def setup(argv=()):
    args = build_parser().parse_args(list(argv))
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    tok = CharBPETokenizer.train(CORPUS, args.vocab_size)
    blocks, pstats = pack_sequences([tok.encode(doc) for doc in CORPUS], args.ctx_len, tok.eos_id, tok.pad_id)
    model = TinyCodeLM(tok.vocab_size, args.d_model, args.n_heads, args.n_layers, args.ctx_len)
    return args, tok, blocks, pstats, model


def save_finetune_checkpoint(tmpdir):
    args, tok, blocks, _, model = setup(["--steps", "20"])
    opt, sched, history = train(model, blocks, args, tok.pad_id)
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "lr_scheduler": sched.state_dict(),
        "args": args,  # truth: weights_only
        "hparams": vars(args),
        "step": args.steps,
        "history": history,
        "final_loss": history[-1]["loss"],
        "torch_version": torch.__version__,  # truth: weights_only
        "output_dir": Path(args.out),  # truth: weights_only
        "output_name": Path(args.out).name,
    }
    path = f"{tmpdir}/step{args.steps:06d}.pt"
    torch.save(ckpt, path)
    return path


def save_tokenizer(tmpdir):
    args, tok, _, _, _ = setup()
    encoded = [tok.encode(doc) for doc in CORPUS]
    lengths = [len(ids) for ids in encoded]
    token_dtype = np.uint16 if tok.vocab_size < 2 ** 16 else np.uint32
    payload = {
        "vocab": tok.vocab,
        "merges": tok.merges,
        "special_tokens": tok.special_tokens,  # truth: weights_only
        "pre_tokenizer": tok.pre_tokenize_re,  # truth: weights_only
        "pre_tokenizer_pattern": tok.pre_tokenize_re.pattern,
        "eos_bytes": tok.eos.encode("utf-8"),
        "token_freq": Counter(i for ids in encoded for i in ids),
        "length_percentiles": np.percentile(lengths, [50, 90, 99]),  # truth: weights_only
        "length_quantiles": dict(zip(("p50", "p90", "p99"), np.percentile(lengths, [50, 90, 99]).tolist())),
        "chars_per_token": sum(map(len, CORPUS)) / sum(lengths),
        "token_dtype": np.dtype(token_dtype).name,
        "vocab_size": tok.vocab_size,
    }
    payload["most_common"] = Counter(i for ids in encoded for i in ids).most_common(10)
    path = f"{tmpdir}/tokenizer.pt"
    torch.save(payload, path)
    return path


def save_packed_dataset(tmpdir):
    args, tok, blocks, pstats, _ = setup(["--ctx-len", "48"])
    meta = {
        "blocks": blocks,
        "ctx_len": args.ctx_len,
        "num_blocks": blocks.shape[0],
        "efficiency": pstats["efficiency"],  # truth: weights_only
        "pad_tokens": pstats["pad_tokens"],
        "doc_starts": pstats["boundaries"],
        "doc_lengths": pstats["lengths"],
        "mean_doc_len": statistics.fmean(pstats["lengths"]),
        "longest_doc": max(pstats["lengths"]),
        "eos_id": tok.eos_id,
    }
    meta["docs_over_ctx"] = sum(n > args.ctx_len for n in pstats["lengths"])
    path = f"{tmpdir}/packed_meta.pt"
    torch.save(meta, path)
    return path


def save_eval_results(tmpdir):
    args, tok, blocks, _, model = setup(["--steps", "15", "--n-samples", "4", "--pass-k", "1", "2"])
    train(model, blocks, args, tok.pad_id)
    results, per_problem, table = evaluate(model, tok, PROBLEMS, args)
    pass1 = table[1]
    report = {
        "pass_at_k": results,
        "per_problem": per_problem,
        "n_samples": args.n_samples,
        "temperature": args.temperature,
        "pass1_stderr": np.std(pass1) / math.sqrt(len(pass1)),  # truth: weights_only
        "pass1_first_task": float(pass1[0]),
        "solved_tasks": [p["task_id"] for p in per_problem if p["correct"] > 0],
        "evaluated_at": datetime.now(),  # truth: weights_only
        "run_id": str(uuid.uuid4()),
    }
    report["best_k"] = max(args.pass_k)
    path = f"{tmpdir}/eval_results.pt"
    torch.save(report, path)
    return path


def save_resume_state(tmpdir):
    args, tok, blocks, _, model = setup(["--steps", "8"])
    opt, sched, history = train(model, blocks, args, tok.pad_id)
    state = {"model": model.state_dict(), "optimizer": opt.state_dict()}
    state["scheduler"] = sched  # truth: weights_only
    state["rng"] = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),  # truth: weights_only
    }
    state["data_cursor"] = {"epoch": 0, "sample_idx": len(history) * args.batch_size}
    state["last_lr"] = sched.get_last_lr()
    path = f"{tmpdir}/resume.pt"
    torch.save(state, path)
    return path


FACTORIES = {
    "CharBPETokenizer": lambda: CharBPETokenizer.train(CORPUS[:4], 40),
}


if __name__ == "__main__":
    args, tok, blocks, pstats, model = setup(__import__("sys").argv[1:])
    train(model, blocks, args, tok.pad_id)
    print(evaluate(model, tok, PROBLEMS, args)[0])
