"""Toy de->en NMT: BPE learned by hand, GRU seq2seq with label-smoothed CE, beam search with a
GNMT length penalty, corpus BLEU / chrF computed by hand. Checkpoints are written fairseq-style."""
import argparse
import collections
import dataclasses
import datetime
import enum
import functools
import math
import os
import re
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SRC = ["ein kleines haus", "das haus ist gross", "ich sehe ein haus", "der hund ist klein", "ein grosser hund"]
TGT = ["a small house", "the house is big", "i see a house", "the dog is small", "a big dog"]
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
PAD, BOS, EOS, UNK = range(4)


def get_parser():
    p = argparse.ArgumentParser("train-nmt")
    p.add_argument("--arch", default="gru_tiny")
    p.add_argument("--embed-dim", type=int, default=32)
    p.add_argument("--bpe-merges", type=int, default=30)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup-updates", type=int, default=4)
    p.add_argument("--beam", type=int, default=3)
    p.add_argument("--lenpen", type=float, default=0.6)
    p.add_argument("--max-epoch", type=int, default=2)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--best-checkpoint-metric", default="chrf")
    p.add_argument("--save-dir", type=Path, default=Path("checkpoints/de-en"))
    p.add_argument("--seed", type=int, default=1)
    return p


# ------------------------------------------------------------------ BPE

def get_stats(vocab):
    pairs = collections.Counter()
    for word, freq in vocab.items():
        syms = word.split()
        for a, b in zip(syms, syms[1:]):
            pairs[a, b] += freq
    return pairs


def merge_vocab(pair, vocab):
    pat = re.compile(r"(?<!\S)" + re.escape(" ".join(pair)) + r"(?!\S)")
    return {pat.sub("".join(pair), w): f for w, f in vocab.items()}


def learn_bpe(sentences, num_merges):
    vocab = collections.Counter()
    for s in sentences:
        for w in s.split():
            vocab[" ".join(w) + " </w>"] += 1
    merges = []
    for _ in range(num_merges):
        pairs = get_stats(vocab)
        if not pairs:
            break
        best = max(pairs, key=pairs.get)
        vocab = collections.Counter(merge_vocab(best, vocab))
        merges.append(best)
    return merges, vocab


def apply_bpe(word, merges):
    syms = list(word) + ["</w>"]
    for a, b in merges:
        out, i = [], 0
        while i < len(syms):
            if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                out.append(a + b)
                i += 2
            else:
                out.append(syms[i])
                i += 1
        syms = out
    return syms


def subword_stats(vocab):
    toks = collections.Counter()
    for w, f in vocab.items():
        for t in w.split():
            toks[t] += f
    lens = np.array([len(t.replace("</w>", "")) for t in toks])
    freqs = np.array(list(toks.values()))
    return toks, lens, freqs


# ------------------------------------------------------------------ model / loss

class GRUSeq2Seq(nn.Module):
    def __init__(self, vocab_size=128, dim=32):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.enc = nn.GRU(dim, dim, batch_first=True)
        self.dec = nn.GRU(dim, dim, batch_first=True)
        self.out = nn.Linear(dim, vocab_size)

    def encode(self, src):
        return self.enc(self.emb(src))[1]

    def forward(self, src, prev):
        y, _ = self.dec(self.emb(prev), self.encode(src))
        return self.out(y)


class LabelSmoothedCE(nn.Module):
    def __init__(self, eps=0.1, ignore_index=PAD):
        super().__init__()
        self.eps, self.ignore_index = eps, ignore_index

    def forward(self, logits, target):
        lprobs = F.log_softmax(logits, -1)
        nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        smooth = -lprobs.mean(-1)
        mask = target.ne(self.ignore_index)
        loss = (1 - self.eps) * nll + self.eps * smooth
        return loss[mask].mean(), nll[mask].mean()


def inverse_sqrt(step, warmup=4):
    step = step + 1
    return min(step / warmup, (warmup / step) ** 0.5)


# ------------------------------------------------------------------ search

class LenPen(enum.Enum):
    NONE = "none"
    AVERAGE = "average"
    GNMT = "gnmt"


@dataclasses.dataclass
class BeamSettings:
    beam_size: int = 4
    max_len_a: float = 1.2
    max_len_b: int = 6
    lenpen: float = 0.6
    lenpen_kind: str = "gnmt"
    min_len: int = 1


def gnmt_penalty(length, alpha=0.6):
    return ((5 + length) / 6) ** alpha


def average_penalty(length, alpha=1.0):
    return float(length) ** alpha


@torch.no_grad()
def beam_search(model, src_ids, settings, lp_fn):
    h = model.encode(torch.tensor([src_ids]))
    beams, finished = [([BOS], 0.0, h)], []
    max_len = int(settings.max_len_a * len(src_ids) + settings.max_len_b)
    for _ in range(max_len):
        cand = []
        for toks, score, hid in beams:
            y, h2 = model.dec(model.emb(torch.tensor([[toks[-1]]])), hid)
            lp = F.log_softmax(model.out(y[0, -1]), -1)
            top = lp.topk(settings.beam_size)
            for v, i in zip(top.values.tolist(), top.indices.tolist()):
                cand.append((toks + [i], score + v, h2))
        cand.sort(key=lambda c: c[1], reverse=True)
        beams = []
        for toks, score, hid in cand:
            if toks[-1] == EOS and len(toks) > settings.min_len + 1:
                finished.append((toks, score / lp_fn(len(toks))))
            elif toks[-1] != EOS:
                beams.append((toks, score, hid))
            if len(beams) == settings.beam_size:
                break
        if len(finished) >= settings.beam_size or not beams:
            break
    finished += [(t, s / lp_fn(len(t))) for t, s, _ in beams]
    best = max(finished, key=lambda f: f[1])[0]
    return [t for t in best[1:] if t != EOS]


# ------------------------------------------------------------------ metrics

def ngrams(toks, n):
    return collections.Counter(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))


def corpus_bleu(hyps, refs, max_n=4, smooth=1.0):
    match, total = np.zeros(max_n), np.zeros(max_n)
    hyp_len = ref_len = 0
    for h, r in zip(hyps, refs):
        h, r = h.split(), r.split()
        hyp_len += len(h)
        ref_len += len(r)
        for n in range(1, max_n + 1):
            match[n - 1] += sum((ngrams(h, n) & ngrams(r, n)).values())
            total[n - 1] += max(len(h) - n + 1, 0)
    prec = (match + smooth) / (total + smooth)
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / max(hyp_len, 1))
    bleu = 100 * bp * math.exp(sum(math.log(p) for p in prec) / max_n)
    return bleu, prec, bp, hyp_len / max(ref_len, 1)


def sentence_chrf(hyp, ref, order=6, beta=2.0):
    precs, recs = [], []
    for k in range(1, order + 1):
        hc = collections.Counter(hyp[i:i + k] for i in range(len(hyp) - k + 1))
        rc = collections.Counter(ref[i:i + k] for i in range(len(ref) - k + 1))
        overlap = sum((hc & rc).values())
        precs.append(overlap / max(sum(hc.values()), 1))
        recs.append(overlap / max(sum(rc.values()), 1))
    p, r = np.mean(precs), np.mean(recs)
    if p + r == 0:
        return 0.0
    return (1 + beta ** 2) * p * r / (beta ** 2 * p + r)


def corpus_chrf(hyps, refs):
    return 100 * np.mean([sentence_chrf(h.replace(" ", ""), r.replace(" ", "")) for h, r in zip(hyps, refs)])


# ------------------------------------------------------------------ training

class Trainer:
    def __init__(self, args=None):
        self.args = args or get_parser().parse_args([])
        torch.manual_seed(self.args.seed)
        self.merges, self.word_vocab = learn_bpe(SRC + TGT, self.args.bpe_merges)
        toks, _, _ = subword_stats(self.word_vocab)
        self.itos = SPECIALS + sorted(toks)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.model = GRUSeq2Seq(len(self.itos), self.args.embed_dim)
        self.criterion = LabelSmoothedCE(self.args.label_smoothing)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.args.lr, betas=(0.9, 0.98))
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, functools.partial(inverse_sqrt, warmup=self.args.warmup_updates))
        self.epoch = 0
        self.num_updates = 0
        self.best_score = float("-inf")
        self.bleu_history = []
        self.chrf_history = []
        self.t0 = time.time()

    def encode(self, sent):
        ids = [self.stoi.get(t, UNK) for w in sent.split() for t in apply_bpe(w, self.merges)]
        return ids + [EOS]

    def decode(self, ids):
        return "".join(self.itos[i] for i in ids if i >= len(SPECIALS)).replace("</w>", " ").strip()

    def batch(self):
        src = [self.encode(s) for s in SRC]
        tgt = [self.encode(t) for t in TGT]
        pad = lambda seqs: torch.tensor([s + [PAD] * (max(map(len, seqs)) - len(s)) for s in seqs])
        tgt_t = pad(tgt)
        prev = torch.cat([torch.full((len(tgt), 1), BOS), tgt_t[:, :-1]], 1)
        return pad(src), prev, tgt_t

    def train_epoch(self, steps=3):
        self.model.train()
        src, prev, tgt = self.batch()
        for _ in range(steps):
            loss, nll = self.criterion(self.model(src, prev), tgt)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.lr_scheduler.step()
            self.num_updates += 1
        self.epoch += 1
        return {"loss": loss.item(), "ppl": math.exp(nll.item())}

    def translate(self, sents, settings=None, lp_fn=None):
        settings = settings or BeamSettings(beam_size=self.args.beam, lenpen=self.args.lenpen)
        lp_fn = lp_fn or functools.partial(gnmt_penalty, alpha=settings.lenpen)
        self.model.eval()
        return [self.decode(beam_search(self.model, self.encode(s), settings, lp_fn)) for s in sents]

    def validate(self):
        hyps = self.translate(SRC)
        bleu, _, _, _ = corpus_bleu(hyps, TGT)
        chrf = corpus_chrf(hyps, TGT)
        self.bleu_history.append(round(bleu, 2))
        self.chrf_history.append(chrf)
        score = chrf if self.args.best_checkpoint_metric == "chrf" else bleu
        self.best_score = max(self.best_score, score)
        return {"bleu": bleu, "chrf": chrf, "hyps": hyps}


class EarlyStopper:
    def __init__(self, patience=3, mode="max", min_delta=0.0):
        self.patience, self.mode, self.min_delta = patience, mode, min_delta
        self.best = -math.inf if mode == "max" else math.inf
        self.bad_epochs = 0
        self.recent = collections.deque(maxlen=patience)

    def step(self, value):
        self.recent.append(value)
        if self.mode == "max":
            improved = value > self.best + self.min_delta
        else:
            improved = value < self.best - self.min_delta
        if improved:
            self.best = float(value)
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        return improved, self.bad_epochs >= self.patience


# ------------------------------------------------------------------ checkpoints

def save_checkpoint_last(tmpdir):
    args = get_parser().parse_args(["--max-epoch", "2"])
    trainer = Trainer(args)
    for _ in range(args.max_epoch):
        trainer.train_epoch()
        trainer.validate()
    ckpt = {
        "args": args,  # truth: weights_only
        "model": trainer.model.state_dict(),
        "last_optimizer_state": trainer.optimizer.state_dict(),
        "lr_scheduler": trainer.lr_scheduler.state_dict(),
        "extra_state": {
            "epoch": trainer.epoch,
            "num_updates": trainer.num_updates,
            "best_chrf": trainer.best_score,  # truth: weights_only
            "bleu_history": trainer.bleu_history,
            "train_wall": time.time() - trainer.t0,
            "lr": trainer.lr_scheduler.get_last_lr()[0],
        },
    }
    path = os.path.join(tmpdir, "checkpoint_last.pt")
    torch.save(ckpt, path)
    return path


def save_bpe_vocab(tmpdir):
    args = get_parser().parse_args([])
    merges, vocab = learn_bpe(SRC + TGT, args.bpe_merges)
    toks, lens, freqs = subword_stats(vocab)
    singletons = {t for t, f in toks.items() if f == 1}
    covered = sum(f for t, f in toks.items() if len(t) > 1)
    state = {
        "merges": merges,
        "word_vocab": vocab,
        "itos": SPECIALS + sorted(toks),
        "token_counts": dict(toks.most_common()),
        "freq_hist": np.bincount(freqs),  # truth: weights_only
        "mean_subword_len": lens.mean(),  # truth: weights_only
        "max_subword_len": int(lens.max()),
        "singletons": sorted(singletons),
        "multi_char_coverage": covered / sum(toks.values()),
        "num_merges": len(merges),
        "specials": {s: i for i, s in enumerate(SPECIALS)},
    }
    path = os.path.join(tmpdir, "dict.bpe.pt")
    torch.save(state, path)
    return path


def save_eval_report(tmpdir):
    args = get_parser().parse_args(["--beam", "2"])
    trainer = Trainer(args)
    trainer.train_epoch()
    settings = BeamSettings(beam_size=args.beam, lenpen=args.lenpen)
    kind = LenPen(settings.lenpen_kind)
    lp = functools.partial(gnmt_penalty, alpha=settings.lenpen)
    hyps = trainer.translate(SRC, settings, lp)
    bleu, prec, bp, ratio = corpus_bleu(hyps, TGT)
    report = dict(
        bleu=bleu,
        precisions=prec.tolist(),
        brevity_penalty=bp,
        sys_ref_ratio=ratio,
        chrf=corpus_chrf(hyps, TGT),  # truth: weights_only
        beam=settings,  # truth: weights_only
        beam_kwargs=dataclasses.asdict(settings),
        lenpen_kind=kind,  # truth: weights_only
        lenpen_name=kind.value,
        lenpen_fn=lp,  # truth: weights_only
        samples=list(zip(SRC, hyps, TGT))[:3],
        signature=f"BLEU+case.mixed+smooth.add-1+tok.13a+beam.{settings.beam_size}",
    )
    path = os.path.join(tmpdir, "generate-valid.pt")
    torch.save(report, path)
    return path


def save_with_early_stopping(tmpdir):
    args = get_parser().parse_args(["--patience", "2"])
    trainer = Trainer(args)
    stopper = EarlyStopper(args.patience)
    t0 = datetime.datetime.now()
    for epoch in range(1, 4):
        trainer.train_epoch()
        metrics = trainer.validate()
        is_best, stop = stopper.step(metrics["chrf"])
        if stop:
            break
    ckpt = {"model": trainer.model.state_dict(), "epoch": epoch}
    ckpt["early_stopping"] = {
        "best": stopper.best,
        "bad_epochs": stopper.bad_epochs,
        "recent": stopper.recent,  # truth: weights_only
        "patience": stopper.patience,
    }
    ckpt["is_best"] = is_best  # truth: weights_only
    ckpt["should_stop"] = stop
    ckpt["elapsed"] = datetime.datetime.now() - t0  # truth: weights_only
    ckpt["started"] = t0.isoformat()
    ckpt["val_bleu"] = metrics["bleu"]
    ckpt["chrf_curve"] = [float(c) for c in trainer.chrf_history]
    path = os.path.join(tmpdir, "checkpoint_best.pt")
    torch.save(ckpt, path)
    return path


def save_averaged_checkpoint(tmpdir):
    args = get_parser().parse_args([])
    trainer = Trainer(args)
    snapshots = []
    for _ in range(3):
        trainer.train_epoch()
        snapshots.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})
    avg = collections.OrderedDict()
    for k in snapshots[0]:
        avg[k] = sum(s[k].float() for s in snapshots) / len(snapshots)
    paths = [args.save_dir / f"checkpoint{e}.pt" for e in range(1, len(snapshots) + 1)]
    out = {
        "model": avg,
        "averaged_from": [str(p) for p in paths],
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "num_updates": trainer.num_updates,
        "label_smoothing": args.label_smoothing,
        "torch_version": str(torch.__version__),
        "vocab_size": len(trainer.itos),
        "lenpen": LenPen.GNMT.value,
        "beam": dataclasses.asdict(BeamSettings()),
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    path = os.path.join(tmpdir, "averaged.pt")
    torch.save(out, path)
    return path


FACTORIES = {
    "LenPen": lambda: LenPen.GNMT,
}
