"""Abstractive summaries of meeting / podcast transcripts with a small GRU encoder-decoder.

Transcripts come as speaker-tagged turns ("[SPK2]: so the budget ..."); the summary is a short
abstract.  A Trainer object owns the model, optimiser and bookkeeping; checkpoints are written
from its state plus whatever the run script wants to keep next to it.
"""
import dataclasses
import enum
import hashlib
import os
import random
import re
import statistics
import uuid
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>", "<turn>")
SPEAKER_RE = re.compile(r"^\[(SPK\d+)\]:\s*")
PAD, BOS, EOS, UNK, TURN = range(len(SPECIALS))

TRANSCRIPTS = [
    ("[SPK1]: we need to ship the release on friday [SPK2]: qa is still blocked on the login bug "
     "[SPK1]: then move the release to monday", "release moved to monday because of login bug"),
    ("[SPK1]: welcome back to the show [SPK2]: today we talk about soil carbon and cover crops "
     "[SPK1]: farmers see better yields", "episode on cover crops and soil carbon"),
    ("[SPK3]: the budget review is next week [SPK1]: marketing asks for more spend "
     "[SPK3]: finance will decide", "finance decides marketing budget next week"),
    ("[SPK2]: the new hire starts monday [SPK1]: assign a mentor from the platform team",
     "platform team mentor for new hire"),
    ("[SPK1]: our guest built a rocket in her garage [SPK2]: it reached two kilometres",
     "guest garage rocket reached two kilometres"),
    ("[SPK1]: action items bob fixes the login bug [SPK2]: alice writes release notes",
     "bob fixes login bug alice writes notes"),
]


class Decoding(enum.Enum):
    GREEDY = "greedy"
    BEAM = "beam"
    NUCLEUS = "nucleus"


@dataclass
class GenerationConfig:
    max_new_tokens: int = 12
    num_beams: int = 1
    no_repeat_ngram: int = 2
    length_penalty: float = 1.0


@dataclass
class Seq2SeqConfig:
    emb_dim: int = 32
    hidden: int = 48
    max_src_len: int = 64
    max_tgt_len: int = 16
    min_freq: int = 1
    lr: float = 2e-3
    label_smoothing: float = 0.1
    grad_clip: float = 1.0
    epochs: int = 2
    batch_size: int = 3
    decoding: str = "greedy"
    seed: int = 13
    run_name: str = "ami-gru"
    generation: GenerationConfig = field(default_factory=GenerationConfig)


def tokenize(text):
    out = []
    for turn in re.split(r"\s(?=\[SPK\d+\]:)", text.strip()):
        m = SPEAKER_RE.match(turn)
        if m:
            out += ["<turn>", m.group(1).lower()]
            turn = turn[m.end():]
        out += turn.lower().split()
    return out


class Vocab:
    def __init__(self, counter=None, min_freq=1, specials=SPECIALS):
        counter = counter if counter is not None else Counter()
        self.specials = tuple(specials)
        self.freqs = Counter(counter)
        words = sorted(w for w, c in counter.items() if c >= min_freq and w not in self.specials)
        self.itos = list(self.specials) + words
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self):
        return len(self.itos)

    def encode(self, tokens, max_len, add_bos=False):
        ids = [self.stoi.get(t, UNK) for t in tokens][: max_len - 2]
        return ([BOS] if add_bos else []) + ids + [EOS]

    def decode(self, ids):
        return [self.itos[i] for i in ids if i not in (PAD, BOS, EOS)]


def build_vocab(pairs, min_freq):
    counter = Counter()
    for src, tgt in pairs:
        counter.update(tokenize(src))
        counter.update(tokenize(tgt))
    return Vocab(counter, min_freq=min_freq)


def pad_batch(seqs):
    n = max(len(s) for s in seqs)
    return torch.tensor([s + [PAD] * (n - len(s)) for s in seqs], dtype=torch.long)


class Seq2Seq(nn.Module):
    def __init__(self, vocab_size=64, emb_dim=32, hidden=48):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, emb_dim, padding_idx=PAD)
        self.encoder = nn.GRU(emb_dim, hidden, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * hidden, hidden)
        self.decoder = nn.GRU(emb_dim + 2 * hidden, hidden, batch_first=True)
        self.attn = nn.Linear(hidden, 2 * hidden, bias=False)
        self.out = nn.Linear(hidden + 2 * hidden, vocab_size)

    def encode(self, src):
        enc, h = self.encoder(self.emb(src))
        h0 = torch.tanh(self.bridge(torch.cat([h[0], h[1]], -1))).unsqueeze(0)
        return enc, h0, src != PAD

    def step(self, y_prev, h, enc, mask):
        q = self.attn(h[-1]).unsqueeze(1)
        scores = (q * enc).sum(-1).masked_fill(~mask, -1e9)
        ctx = (scores.softmax(-1).unsqueeze(-1) * enc).sum(1, keepdim=True)
        out, h = self.decoder(torch.cat([self.emb(y_prev), ctx], -1), h)
        return self.out(torch.cat([out, ctx], -1)).squeeze(1), h

    def forward(self, src, tgt_in):
        enc, h, mask = self.encode(src)
        logits = []
        for t in range(tgt_in.size(1)):
            lo, h = self.step(tgt_in[:, t:t + 1], h, enc, mask)
            logits.append(lo)
        return torch.stack(logits, 1)

    @torch.no_grad()
    def greedy(self, src, max_new_tokens):
        enc, h, mask = self.encode(src)
        y = torch.full((src.size(0), 1), BOS, dtype=torch.long)
        out = []
        for _ in range(max_new_tokens):
            lo, h = self.step(y, h, enc, mask)
            y = lo.argmax(-1, keepdim=True)
            out.append(y)
        return torch.cat(out, 1)


def lcs(a, b):
    dp = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            dp[i + 1][j + 1] = dp[i][j] + 1 if x == y else max(dp[i][j + 1], dp[i + 1][j])
    return dp[-1][-1]


def rouge_scores(hyp, ref):
    """ROUGE-1 and ROUGE-L F1 on token lists (no stemming)."""
    overlap = sum((Counter(hyp) & Counter(ref)).values())
    p1, r1 = overlap / max(len(hyp), 1), overlap / max(len(ref), 1)
    f1 = 0.0 if overlap == 0 else 2 * p1 * r1 / (p1 + r1)
    l = lcs(hyp, ref)
    pl, rl = l / max(len(hyp), 1), l / max(len(ref), 1)
    fl = 0.0 if l == 0 else 2 * pl * rl / (pl + rl)
    return f1, fl


class SummarizationTrainer:
    def __init__(self, cfg=None, pairs=TRANSCRIPTS):
        self.cfg = cfg or Seq2SeqConfig()
        random.seed(self.cfg.seed)
        torch.manual_seed(self.cfg.seed)
        self.pairs = list(pairs)
        self.vocab = build_vocab(self.pairs, self.cfg.min_freq)
        self.decoding = Decoding(self.cfg.decoding)
        self.model = Seq2Seq(len(self.vocab), self.cfg.emb_dim, self.cfg.hidden)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, step_size=1, gamma=0.8)
        self.global_step = 0
        self.loss_window = deque(maxlen=20)
        self.history = defaultdict(list)
        self.best_rouge_l = 0.0
        self.started = datetime.now()

    def batches(self):
        order = list(range(len(self.pairs)))
        random.shuffle(order)
        for i in range(0, len(order), self.cfg.batch_size):
            chunk = [self.pairs[j] for j in order[i:i + self.cfg.batch_size]]
            src = pad_batch([self.vocab.encode(tokenize(s), self.cfg.max_src_len) for s, _ in chunk])
            tgt = pad_batch([self.vocab.encode(tokenize(t), self.cfg.max_tgt_len, add_bos=True) for _, t in chunk])
            yield src, tgt

    def train_epoch(self):
        self.model.train()
        total, n_tok = 0.0, 0
        for src, tgt in self.batches():
            logits = self.model(src, tgt[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt[:, 1:].reshape(-1),
                                   ignore_index=PAD, label_smoothing=self.cfg.label_smoothing)
            self.opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.opt.step()
            self.global_step += 1
            self.loss_window.append(loss.item())
            ntok = int((tgt[:, 1:] != PAD).sum())
            total, n_tok = total + loss.item() * ntok, n_tok + ntok
        self.sched.step()
        return total / n_tok, n_tok

    def generate(self):
        self.model.eval()
        src = pad_batch([self.vocab.encode(tokenize(s), self.cfg.max_src_len) for s, _ in self.pairs])
        ids = self.model.greedy(src, self.cfg.generation.max_new_tokens)
        return [self.vocab.decode(row.tolist()) for row in ids]

    def evaluate(self):
        hyps = self.generate()
        r1, rl = zip(*(rouge_scores(h, tokenize(ref)) for h, (_, ref) in zip(hyps, self.pairs)))
        return {"rouge1": sum(r1) / len(r1), "rougeL": sum(rl) / len(rl), "n": len(hyps)}, hyps

    def fit(self):
        for epoch in range(self.cfg.epochs):
            loss, ntok = self.train_epoch()
            metrics, _ = self.evaluate()
            self.history["loss"].append(loss)
            self.history["rougeL"].append(metrics["rougeL"])
            self.best_rouge_l = max(self.best_rouge_l, metrics["rougeL"])
        return self

    def state_dict(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "global_step": self.global_step,
            "best_rougeL": self.best_rouge_l,
        }


# ----------------------------------------------------------------------------- checkpoints


def save_seq2seq_checkpoint(tmpdir):
    trainer = SummarizationTrainer(Seq2SeqConfig(epochs=2)).fit()
    ckpt = trainer.state_dict()
    ckpt.update({
        "config": trainer.cfg,  # truth: weights_only
        "hparams": dataclasses.asdict(trainer.cfg),
        "decoding": trainer.decoding.value,
        "vocab_size": len(trainer.vocab),
        "loss_window": trainer.loss_window,  # truth: weights_only
        "history": trainer.history,  # truth: weights_only
        "history_flat": {k: list(v) for k, v in trainer.history.items()},
        "started": trainer.started.isoformat(),
    })
    path = os.path.join(tmpdir, "gru_sum_last.pt")
    torch.save(ckpt, path)
    return path


def save_best_rouge(tmpdir):
    trainer = SummarizationTrainer(Seq2SeqConfig(epochs=1, hidden=32))
    best, best_state = -1.0, None
    for epoch in range(2):
        loss, ntok = trainer.train_epoch()
        metrics, hyps = trainer.evaluate()
        if metrics["rougeL"] > best:
            best, best_state = metrics["rougeL"], {k: v.clone() for k, v in trainer.model.state_dict().items()}
    gen_lens = np.array([len(h) for h in hyps])
    ref_lens = [len(tokenize(t)) for _, t in trainer.pairs]
    r1_each = [rouge_scores(h, tokenize(r))[0] for h, (_, r) in zip(hyps, trainer.pairs)]
    metrics["rouge1_median"] = statistics.median(r1_each)
    metrics["rouge1_std"] = np.std(r1_each)  # truth: weights_only
    metrics["gen_len_p95"] = np.percentile(gen_lens, 95)  # truth: weights_only
    metrics["len_ratio"] = float(gen_lens.mean()) / statistics.fmean(ref_lens)
    metrics["tokens_seen"] = ntok
    path = os.path.join(tmpdir, "gru_sum_best.pt")
    torch.save({"model": best_state, "epoch": epoch, "metrics": metrics,
                "samples": [" ".join(h) for h in hyps[:3]]}, path)
    return path


def save_vocab_artifacts(tmpdir):
    """Tokenizer files are versioned with the weights; the serving side rebuilds Vocab from them."""
    vocab = build_vocab(TRANSCRIPTS, min_freq=1)
    blob = "\n".join(vocab.itos).encode("utf-8")
    art = dict(
        itos=vocab.itos,
        stoi=vocab.stoi,
        freqs=vocab.freqs,
        top_words=vocab.freqs.most_common(10),
        specials=vocab.specials,
        reserved_ids=frozenset(range(len(SPECIALS))),  # truth: weights_only
        speaker_pattern=SPEAKER_RE,  # truth: weights_only
        speaker_regex=SPEAKER_RE.pattern,
        digest=hashlib.md5(blob).digest(),
        speakers=sorted({t for t in vocab.itos if t.startswith("spk")}),
        lowercase=True,
    )
    path = os.path.join(tmpdir, "vocab.pt")
    torch.save(art, path)
    return path


def save_training_args(tmpdir):
    """Mirrors the HF habit of keeping the run arguments in training_args.bin."""
    cfg = Seq2SeqConfig(run_name="podcast-gru", epochs=3, generation=GenerationConfig(num_beams=4))
    path = os.path.join(tmpdir, "training_args.bin")
    torch.save(cfg, path)  # truth: weights_only
    return path


def save_resume_state(tmpdir):
    trainer = SummarizationTrainer(Seq2SeqConfig(epochs=1, emb_dim=16, hidden=16)).fit()
    elapsed = datetime.now() - trainer.started
    run_id = uuid.uuid4()
    state = {
        "trainer": trainer.state_dict(),
        "scheduler_obj": trainer.sched,  # truth: weights_only
        "rng": {
            "python": random.getstate(),
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),  # truth: weights_only
        },
        "elapsed": elapsed,  # truth: weights_only
        "elapsed_s": elapsed.total_seconds(),
        "eta": str(timedelta(seconds=120)),
        "run_id": run_id.hex,
        "last_lr": trainer.sched.get_last_lr(),
    }
    path = os.path.join(tmpdir, "resume.pt")
    torch.save(state, path)
    return path


def save_for_serving(tmpdir):
    trainer = SummarizationTrainer(Seq2SeqConfig(epochs=1, emb_dim=16, hidden=16)).fit()
    metrics, hyps = trainer.evaluate()
    gen = dataclasses.asdict(trainer.cfg.generation)
    gen["decoding"] = trainer.decoding.name.lower()
    payload = {
        "weights": trainer.model.state_dict(),
        "itos": list(trainer.vocab.itos),
        "model_args": {"vocab_size": len(trainer.vocab), "emb_dim": trainer.cfg.emb_dim,
                       "hidden": trainer.cfg.hidden},
        "generation": gen,
        "rouge": {k: round(v, 4) for k, v in metrics.items()},
        "best_rougeL": trainer.best_rouge_l,
        "max_src_len": trainer.cfg.max_src_len,
        "special_ids": {name: i for i, name in enumerate(SPECIALS)},
        "mean_loss": statistics.fmean(trainer.loss_window),
        "created": datetime.now().strftime("%Y-%m-%dT%H:%M"),
    }
    path = os.path.join(tmpdir, "serving.pt")
    torch.save(payload, path)
    return path


FACTORIES = {
    "Decoding": lambda: Decoding.BEAM,
    "SummarizationTrainer": lambda: SummarizationTrainer(Seq2SeqConfig(epochs=1, emb_dim=8, hidden=8)),
    "Vocab": lambda: build_vocab(TRANSCRIPTS[:2], min_freq=1),
}
