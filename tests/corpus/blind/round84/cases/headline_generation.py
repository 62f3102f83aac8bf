"""News headline generation: a GRU encoder-decoder with dot-product attention.

Dataclass configs, a regex tokenizer + frequency vocab, label-smoothed teacher forcing, greedy and
beam decoding, ROUGE-1/2/L (own implementation, whitespace tokens) and a TF-IDF lead-sentence
baseline. The corpus below is a synthetic stand-in for (article, headline) pairs.
"""
import enum
import functools
import math
import random
import re
import statistics
from collections import Counter, defaultdict, deque
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.feature_extraction.text import TfidfVectorizer

TOKEN_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")
PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"


class DecodeStrategy(enum.Enum):
    GREEDY = "greedy"
    BEAM = "beam"


@dataclass
class ModelConfig:
    emb_dim: int = 32
    hidden: int = 48
    dropout: float = 0.1
    tie_embeddings: bool = True


@dataclass
class TrainConfig:
    lr: float = 3e-3
    batch_size: int = 16
    epochs: int = 2
    warmup_steps: int = 4
    label_smoothing: float = 0.1
    max_src_len: int = 40
    max_tgt_len: int = 12
    min_freq: int = 1
    seed: int = 17
    out_dir: str = "runs/headlines"
    model: ModelConfig = field(default_factory=ModelConfig)


@dataclass(frozen=True)
class GenerationConfig:
    strategy: str = "beam"
    beam_size: int = 3
    max_len: int = 12
    length_penalty: float = 0.8
    no_repeat_unigram: bool = True


def tokenize(text):
    return TOKEN_RE.findall(text.lower())


class Vocab:
    SPECIALS = (PAD, BOS, EOS, UNK)

    def __init__(self, counter=None, min_freq=1, max_size=None):
        self.counter = Counter(counter or {})
        words = [w for w, c in self.counter.most_common(max_size) if c >= min_freq and w not in self.SPECIALS]
        self.itos = list(self.SPECIALS) + words
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self):
        return len(self.itos)

    def encode(self, tokens, max_len, add_bos=False):
        ids = [self.stoi.get(t, self.stoi[UNK]) for t in tokens][: max_len - 1 - add_bos]
        return ([self.stoi[BOS]] if add_bos else []) + ids + [self.stoi[EOS]]

    def decode(self, ids):
        out = []
        for i in ids:
            w = self.itos[i]
            if w == EOS:
                break
            if w not in (PAD, BOS):
                out.append(w)
        return out


# ----------------------------------------------------------------------------- data

COMPANIES = ["acme", "globex", "initech", "umbrella", "hooli", "vandelay", "stark"]
EVENTS = ["earnings beat", "ceo exit", "merger talks", "profit warning", "record sales", "data breach"]
SECTORS = ["tech", "retail", "energy", "banking", "pharma"]


def synth_corpus(n, rng):
    pairs = []
    for _ in range(n):
        co, ev, sec = rng.choice(COMPANIES), rng.choice(EVENTS), rng.choice(SECTORS)
        up = ev in ("earnings beat", "merger talks", "record sales")
        pct = rng.randint(2, 19)
        verb = "jump" if up else "slide"
        article = (f"shares of {co} {verb}ed {pct} percent on monday after {ev} , traders said . "
                   f"the {sec} group had been under pressure this quarter . analysts expect more news "
                   f"from {co} next week as the {sec} sector reacts .")
        headline = f"{co} shares {verb} {pct} % after {ev}"
        pairs.append((article, headline))
    return pairs


def build_vocab(pairs, min_freq=1):
    counter, doc_freq = Counter(), defaultdict(int)
    for art, head in pairs:
        toks = tokenize(art) + tokenize(head)
        counter.update(toks)
        for t in set(toks):
            doc_freq[t] += 1
    return Vocab(counter, min_freq=min_freq), doc_freq


def batches(pairs, vocab, cfg, rng):
    order = list(range(len(pairs)))
    rng.shuffle(order)
    for s in range(0, len(order), cfg.batch_size):
        chunk = [pairs[i] for i in order[s:s + cfg.batch_size]]
        src = [vocab.encode(tokenize(a), cfg.max_src_len) for a, _ in chunk]
        tgt = [vocab.encode(tokenize(h), cfg.max_tgt_len, add_bos=True) for _, h in chunk]
        yield (torch.nn.utils.rnn.pad_sequence([torch.tensor(x) for x in src], batch_first=True),
               torch.nn.utils.rnn.pad_sequence([torch.tensor(y) for y in tgt], batch_first=True))


# ----------------------------------------------------------------------------- model

class Seq2Seq(nn.Module):
    def __init__(self, vocab_size=64, emb_dim=32, hidden=48, dropout=0.1, tie_embeddings=True):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, emb_dim, padding_idx=0)
        self.encoder = nn.GRU(emb_dim, hidden, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * hidden, hidden)
        self.decoder = nn.GRU(emb_dim, hidden, batch_first=True)
        self.attn_proj = nn.Linear(2 * hidden, hidden, bias=False)
        self.out = nn.Linear(2 * hidden, emb_dim)
        self.drop = nn.Dropout(dropout)
        self.proj = nn.Linear(emb_dim, vocab_size, bias=False)
        if tie_embeddings:
            self.proj.weight = self.emb.weight

    def encode(self, src):
        enc, h = self.encoder(self.drop(self.emb(src)))
        h0 = torch.tanh(self.bridge(torch.cat([h[0], h[1]], -1))).unsqueeze(0)
        return self.attn_proj(enc), h0, src != 0

    def decode_step(self, tgt_in, keys, h, mask):
        dec, h = self.decoder(self.drop(self.emb(tgt_in)), h)
        scores = dec @ keys.transpose(1, 2)
        scores = scores.masked_fill(~mask.unsqueeze(1), -1e9)
        ctx = scores.softmax(-1) @ keys
        return self.proj(torch.tanh(self.out(torch.cat([dec, ctx], -1)))), h

    def forward(self, src, tgt_in):
        keys, h, mask = self.encode(src)
        logits, _ = self.decode_step(tgt_in, keys, h, mask)
        return logits


def warmup_linear(step, warmup, total):
    if step < warmup:
        return (step + 1) / warmup
    return max(0.05, (total - step) / max(1, total - warmup))


def length_penalty(length, alpha):
    return ((5 + length) / 6) ** alpha


@torch.no_grad()
def beam_decode(model, vocab, src, gen: GenerationConfig):
    keys, h, mask = model.encode(src.unsqueeze(0))
    beams, done = [([vocab.stoi[BOS]], 0.0, h)], []
    for _ in range(gen.max_len):
        cand = []
        for seq, lp, hb in beams:
            logits, h2 = model.decode_step(torch.tensor([[seq[-1]]]), keys, hb, mask)
            logp = logits[0, -1].log_softmax(-1)
            top = logp.topk(min(2 * gen.beam_size + 1, logp.numel()))
            for v, i in zip(top.values.tolist(), top.indices.tolist()):
                if gen.no_repeat_unigram and i in seq[1:]:
                    continue
                cand.append((seq + [i], lp + v, h2))
        if not cand:
            break
        cand.sort(key=lambda c: c[1] / length_penalty(len(c[0]), gen.length_penalty), reverse=True)
        beams = []
        for seq, lp, hb in cand[: gen.beam_size]:
            (done if seq[-1] == vocab.stoi[EOS] else beams).append((seq, lp, hb))
        if not beams:
            break
    best = max(done or beams, key=lambda c: c[1] / length_penalty(len(c[0]), gen.length_penalty))
    return best[0][1:], best[1]


# ----------------------------------------------------------------------------- metrics

def ngrams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def rouge_n(hyp, ref, n):
    h, r = ngrams(hyp, n), ngrams(ref, n)
    overlap = sum((h & r).values())
    if not overlap:
        return 0.0
    p, rc = overlap / sum(h.values()), overlap / sum(r.values())
    return 2 * p * rc / (p + rc)


def rouge_l(hyp, ref):
    dp = [[0] * (len(ref) + 1) for _ in range(len(hyp) + 1)]
    for i, a in enumerate(hyp):
        for j, b in enumerate(ref):
            dp[i + 1][j + 1] = dp[i][j] + 1 if a == b else max(dp[i][j + 1], dp[i + 1][j])
    lcs = dp[-1][-1]
    if not lcs:
        return 0.0
    p, r = lcs / len(hyp), lcs / len(ref)
    return 2 * p * r / (p + r)


def score_corpus(hyps, refs):
    per = [{"rouge1": rouge_n(h, r, 1), "rouge2": rouge_n(h, r, 2), "rougeL": rouge_l(h, r)} for h, r in zip(hyps, refs)]
    summary = {m: statistics.fmean(p[m] for p in per) for m in ("rouge1", "rouge2", "rougeL")}
    return summary, per


def bucket_by_length(per, refs):
    by_len = {}
    for p, r in zip(per, refs):
        bucket = "short" if len(r) <= 7 else "long"
        slot = by_len.setdefault(bucket, {"rouge1": [], "rougeL": [], "n": 0})
        slot["rouge1"].append(p["rouge1"])
        slot["rougeL"].append(p["rougeL"])
        slot["n"] += 1
    return {b: {"n": d["n"], "rouge1": float(np.mean(d["rouge1"])), "rougeL": float(np.mean(d["rougeL"]))}
            for b, d in by_len.items()}


def lead_baseline(pairs):
    """TF-IDF lead sentence: the sentence whose tf-idf mass is largest, cut to 10 tokens."""
    arts = [a for a, _ in pairs]
    vec = TfidfVectorizer(token_pattern=r"[a-z0-9]+", ngram_range=(1, 1), sublinear_tf=True).fit(arts)
    hyps = []
    for art in arts:
        sents = [s.strip() for s in art.split(" . ") if s.strip()]
        mass = np.asarray(vec.transform(sents).sum(axis=1)).ravel()
        hyps.append(tokenize(sents[int(mass.argmax())])[:10])
    return vec, hyps


# ----------------------------------------------------------------------------- trainer

class HeadlineTrainer:
    def __init__(self, cfg: TrainConfig, vocab: Vocab, gen: GenerationConfig = GenerationConfig(), total_steps=20):
        self.cfg, self.vocab, self.gen = cfg, vocab, gen
        torch.manual_seed(cfg.seed)
        self.model = Seq2Seq(len(vocab), **asdict(cfg.model))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, functools.partial(warmup_linear, warmup=cfg.warmup_steps, total=total_steps))
        self.strategy = DecodeStrategy(gen.strategy)
        self.shuffle_rng = np.random.default_rng(cfg.seed)
        self.recent = deque(maxlen=3)
        self.best = {"rougeL": 0.0, "step": 0}
        self.started = datetime(2024, 5, 2, 9, 30)
        self.step = 0
        self.losses = []

    def train_epoch(self, pairs):
        self.model.train()
        py_rng = random.Random(int(self.shuffle_rng.integers(1 << 30)))
        for src, tgt in batches(pairs, self.vocab, self.cfg, py_rng):
            logits = self.model(src, tgt[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt[:, 1:].reshape(-1), ignore_index=0,
                                   label_smoothing=self.cfg.label_smoothing)
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            self.scheduler.step()
            self.losses.append(loss.item())
            self.step += 1
        return statistics.fmean(self.losses[-8:])

    def generate(self, pairs):
        self.model.eval()
        hyps = []
        for art, _ in pairs:
            src = torch.tensor(self.vocab.encode(tokenize(art), self.cfg.max_src_len))
            gen = self.gen if self.strategy is DecodeStrategy.BEAM else replace(self.gen, beam_size=1)
            ids, _ = beam_decode(self.model, self.vocab, src, gen)
            hyps.append(self.vocab.decode(ids))
        return hyps

    def evaluate(self, pairs):
        hyps = self.generate(pairs)
        refs = [tokenize(h) for _, h in pairs]
        summary, per = score_corpus(hyps, refs)
        if summary["rougeL"] >= self.best["rougeL"]:
            self.best = {"rougeL": summary["rougeL"], "step": self.step}
        return summary, per, hyps, refs

    def state(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "best": dict(self.best),
            "config": asdict(self.cfg),
            "vocab_itos": list(self.vocab.itos),
        }


def make_run(n_train=48, n_val=8, epochs=1, gen=GenerationConfig()):
    cfg = TrainConfig(epochs=epochs)
    rng = random.Random(cfg.seed)
    pairs = synth_corpus(n_train + n_val, rng)
    vocab, doc_freq = build_vocab(pairs[:n_train], cfg.min_freq)
    total = epochs * math.ceil(n_train / cfg.batch_size)
    trainer = HeadlineTrainer(cfg, vocab, gen, total_steps=total)
    for _ in range(epochs):
        trainer.train_epoch(pairs[:n_train])
    return trainer, pairs[:n_train], pairs[n_train:], doc_freq


# ----------------------------------------------------------------------------- checkpoints

def save_seq2seq_config(tmpdir):
    cfg = TrainConfig(lr=1e-3, model=ModelConfig(hidden=32))
    gen = GenerationConfig(beam_size=4)
    vocab, _ = build_vocab(synth_corpus(20, random.Random(0)))
    model = Seq2Seq(len(vocab), **asdict(cfg.model))
    ckpt = {
        "model": model.state_dict(),
        "train_config": asdict(cfg),
        "model_config": cfg.model,  # truth: weights_only
        "generation": asdict(gen),
        "strategy": DecodeStrategy(gen.strategy),  # truth: weights_only
        "strategy_name": DecodeStrategy(gen.strategy).value,
        "vocab_itos": vocab.itos,
        "specials": Vocab.SPECIALS,
        "vocab_size": len(vocab),
    }
    path = str(Path(tmpdir) / cfg.out_dir.replace("/", "_")) + ".pt"
    torch.save(ckpt, path)
    return path


def save_vocab(tmpdir):
    pairs = synth_corpus(40, random.Random(3))
    vocab, doc_freq = build_vocab(pairs, min_freq=2)
    val_tokens = [t for a, _ in synth_corpus(10, random.Random(4)) for t in tokenize(a)]
    oov = sum(t not in vocab.stoi for t in val_tokens) / len(val_tokens)
    ckpt = {}
    ckpt["vocab"] = vocab  # truth: weights_only
    ckpt["itos"] = vocab.itos
    ckpt["counter"] = vocab.counter
    ckpt["top_tokens"] = vocab.counter.most_common(10)
    ckpt["tokenizer_re"] = TOKEN_RE  # truth: weights_only
    ckpt["tokenizer_pattern"] = TOKEN_RE.pattern
    ckpt["doc_freq"] = doc_freq  # truth: weights_only
    ckpt["doc_freq_plain"] = dict(doc_freq)
    ckpt["special_ids"] = {vocab.stoi[s] for s in Vocab.SPECIALS}
    ckpt["oov_rate"] = oov
    ckpt["min_freq"] = 2
    path = str(Path(tmpdir) / "vocab.pt")
    torch.save(ckpt, path)
    return path


def save_rouge_eval(tmpdir):
    trainer, train, val, _ = make_run(n_train=32, n_val=8, gen=GenerationConfig(strategy="greedy"))
    summary, per, hyps, refs = trainer.evaluate(val)
    rl = [p["rougeL"] for p in per]
    ratios = [len(h) / max(1, len(tokenize(a))) for h, (a, _) in zip(hyps, val)]
    counts, edges = np.histogram([len(h) for h in hyps], bins=4, range=(0, 12))
    with torch.no_grad():
        nll = []
        for src, tgt in batches(val, trainer.vocab, trainer.cfg, random.Random(0)):
            logits = trainer.model(src, tgt[:, :-1])
            nll.append(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt[:, 1:].reshape(-1), ignore_index=0).item())
    base_vec, base_hyps = lead_baseline(val)
    base_summary, _ = score_corpus(base_hyps, refs)
    report = dict(
        rouge=summary,
        by_length=bucket_by_length(per, refs),
        rougeL_median=statistics.median(rl),
        rougeL_p90=np.percentile(rl, 90),  # truth: weights_only
        compression=np.mean(ratios),  # truth: weights_only
        length_hist=np.histogram([len(h) for h in hyps], bins=4, range=(0, 12)),  # truth: weights_only
        length_hist_counts=counts.tolist(),
        length_hist_edges=edges.tolist(),
        perplexity=math.exp(np.mean(nll)),
        lead_baseline=base_summary,
        lead_idf=torch.from_numpy(base_vec.idf_),
        best_example=max(zip(rl, [" ".join(h) for h in hyps]), key=lambda t: t[0]),
    )
    path = str(Path(tmpdir) / "rouge_eval.pt")
    torch.save(report, path)
    return path


def save_trainer_resume(tmpdir):
    trainer, train, val, _ = make_run(n_train=32, n_val=4)
    for k in range(3):
        trainer.recent.append(f"step_{trainer.step}_{k}.pt")
    now = datetime(2024, 5, 2, 10, 15)
    ckpt = trainer.state()
    ckpt["recent_ckpts"] = trainer.recent  # truth: weights_only
    ckpt["recent_list"] = list(trainer.recent)
    ckpt["elapsed"] = now - trainer.started  # truth: weights_only
    ckpt["elapsed_s"] = (now - trainer.started).total_seconds()
    ckpt["started"] = trainer.started.isoformat()
    ckpt["shuffle_rng"] = trainer.shuffle_rng  # truth: weights_only
    ckpt["shuffle_rng_state"] = trainer.shuffle_rng.bit_generator.state
    ckpt["py_rng"] = random.getstate()
    ckpt["lr"] = trainer.scheduler.get_last_lr()
    ckpt["loss_tail"] = trainer.losses[-4:]
    path = str(Path(tmpdir) / "resume.pt")
    torch.save(ckpt, path)
    return path


def save_beam_samples(tmpdir):
    gen = GenerationConfig(beam_size=2, max_len=8)
    trainer, train, val, _ = make_run(n_train=32, n_val=3, gen=gen)
    samples, scores = [], []
    for art, ref in val:
        src = torch.tensor(trainer.vocab.encode(tokenize(art), trainer.cfg.max_src_len))
        ids, score = beam_decode(trainer.model, trainer.vocab, src, gen)
        hyp = trainer.vocab.decode(ids)
        scores.append(score)
        samples.append({"ref": ref, "hyp": " ".join(hyp), "score": score, "rouge1": rouge_n(hyp, tokenize(ref), 1)})
    stamp = datetime.now(timezone.utc)
    ckpt = {
        "samples": samples,
        "mean_logprob": statistics.fmean(scores),
        "generation": asdict(gen),
        "length_penalty": functools.partial(length_penalty, alpha=gen.length_penalty),  # truth: weights_only
        "generated_at": stamp,  # truth: weights_only
        "generated_at_iso": stamp.isoformat(),
        "distinct_hyps": len({s["hyp"] for s in samples}) / len(samples),
    }
    path = str(Path(tmpdir) / "beam_samples.pt")
    torch.save(ckpt, path)
    return path


def save_headline_final(tmpdir):
    trainer, train, val, doc_freq = make_run(n_train=32, n_val=4, gen=GenerationConfig(strategy="greedy"))
    summary, per, hyps, refs = trainer.evaluate(val)
    vec, _ = lead_baseline(train)
    params = {k: v for k, v in vec.get_params().items() if isinstance(v, (bool, int, float, str, tuple, type(None)))}
    final = trainer.state()
    final.update(
        rouge=summary,
        best=trainer.best,
        strategy=trainer.strategy.value,
        tfidf_params=params,
        tfidf_vocab={w: int(i) for w, i in vec.vocabulary_.items()},
        idf=torch.from_numpy(vec.idf_).float(),
        df_top={w: c for w, c in sorted(doc_freq.items(), key=lambda kv: -kv[1])[:5]},
        n_params=sum(p.numel() for p in trainer.model.parameters()),
    )
    path = str(Path(tmpdir) / "final.pt")
    torch.save(final, path)
    return path


FACTORIES = {
    "DecodeStrategy": lambda: DecodeStrategy.GREEDY,
    "HeadlineTrainer": lambda: HeadlineTrainer(TrainConfig(), Vocab(Counter(tokenize("acme shares jump")))),
}
