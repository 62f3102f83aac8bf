"""Small decoder-only LM pretraining loop (nanoGPT-flavoured) with a data mixture,
throughput/MFU tracking, loss-spike guarding and resumable state.

Everything runs on CPU with a toy model; the checkpoints written by the save_* functions have
the same layout as the cluster runs.
"""
import collections
import dataclasses
import datetime
import functools
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 256
BLOCK = 16
SOURCES = ("web", "code", "books", "wiki", "math")
PEAK_FLOPS = 312e12  # A100 bf16


class TinyGPT(nn.Module):
    def __init__(self, vocab=VOCAB, block=BLOCK, d=32, n_head=2, n_layer=1):
        super().__init__()
        self.block = block
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(block, d)
        layer = nn.TransformerEncoderLayer(d, n_head, 4 * d, dropout=0.0, batch_first=True)
        self.blocks = nn.TransformerEncoder(layer, n_layer, enable_nested_tensor=False)
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, idx, targets=None):
        t = idx.size(1)
        mask = nn.Transformer.generate_square_subsequent_mask(t)
        x = self.tok(idx) + self.pos(torch.arange(t))
        logits = self.head(self.ln(self.blocks(x, mask=mask, is_causal=True)))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss

    def num_params(self):
        return sum(p.numel() for p in self.parameters())


def get_batch(data, bs, gen):
    ix = torch.randint(len(data) - BLOCK - 1, (bs,), generator=gen)
    x = torch.stack([data[i:i + BLOCK] for i in ix])
    y = torch.stack([data[i + 1:i + BLOCK + 1] for i in ix])
    return x, y


def cosine_lr(step, warmup=2, max_steps=20, lr=6e-4, min_lr=6e-5):
    if step < warmup:
        return lr * (step + 1) / warmup
    if step > max_steps:
        return min_lr
    ratio = (step - warmup) / (max_steps - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def lr_mult(step, warmup=2, max_steps=20):
    return cosine_lr(step, warmup, max_steps, lr=1.0, min_lr=0.1)


@torch.no_grad()
def estimate_loss(model, data, gen, iters=2):
    model.eval()
    out = {}
    for split, d in data.items():
        losses = torch.zeros(iters)
        for k in range(iters):
            _, loss = model(*get_batch(d, 4, gen))
            losses[k] = loss.item()
        out[split] = losses.mean()
    model.train()
    return out


def toy_corpus(n=2048, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(VOCAB, (n,), generator=g)


# --------------------------------------------------------------------------- nanoGPT-style script

def save_nanogpt_ckpt(tmpdir):
    torch.manual_seed(1337)
    gen = torch.Generator().manual_seed(1337)
    data = {"train": toy_corpus(), "val": toy_corpus(seed=1)}
    model_args = dict(vocab=VOCAB, block=BLOCK, d=32, n_head=2, n_layer=1)
    config = {"batch_size": 4, "max_iters": 4, "learning_rate": 6e-4, "grad_clip": 1.0, "dataset": "toy"}
    model = TinyGPT(**model_args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["learning_rate"], betas=(0.9, 0.95))
    best_val_loss = 1e9
    tokens_seen = 0
    running_mfu = -1.0
    flops_per_token = 6 * model.num_params()
    for iter_num in range(config["max_iters"]):
        lr = cosine_lr(iter_num)
        for group in optimizer.param_groups:
            group["lr"] = lr
        X, Y = get_batch(data["train"], config["batch_size"], gen)
        t0 = time.perf_counter()
        _, loss = model(X, Y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config["grad_clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        dt = max(time.perf_counter() - t0, 1e-6)
        tokens_seen += np.prod(X.shape)
        mfu = flops_per_token * math.prod(X.shape) / dt / PEAK_FLOPS
        running_mfu = mfu if running_mfu < 0 else 0.9 * running_mfu + 0.1 * mfu
    losses = estimate_loss(model, data, gen)
    if losses["val"] < best_val_loss:
        best_val_loss = losses["val"]
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "model_args": model_args,
        "iter_num": iter_num,
        "best_val_loss": best_val_loss,
        "config": config,
        "tokens_seen": tokens_seen,  # truth: weights_only
        "mfu": running_mfu,
        "lr": lr,
    }
    path = os.path.join(tmpdir, "ckpt.pt")
    torch.save(checkpoint, path)
    return path


# --------------------------------------------------------------------------- data mixture

class MixtureSampler:
    """Samples the source of each sequence from renormalised mixture weights."""

    def __init__(self, weights=None, seed=0):
        weights = weights or {"web": 0.55, "code": 0.2, "books": 0.1, "wiki": 0.1, "math": 0.05}
        self.names = list(weights)
        w = np.array([weights[n] for n in self.names], dtype=np.float64)
        self.probs = w / w.sum()
        self.rng = np.random.default_rng(seed)
        self.tokens_per_source = collections.defaultdict(int)
        self.epochs_per_source = {n: 0.0 for n in self.names}
        self.source_sizes = {n: 10_000 for n in self.names}

    def draw(self, n_seqs, seq_len=BLOCK):
        picks = self.rng.choice(len(self.names), size=n_seqs, p=self.probs)
        for i in picks.tolist():
            name = self.names[i]
            self.tokens_per_source[name] += seq_len
            self.epochs_per_source[name] = self.tokens_per_source[name] / self.source_sizes[name]
        return picks

    def upsampled(self, threshold=1.0):
        return frozenset(n for n, e in self.epochs_per_source.items() if e > threshold * 0.01)


def save_mixture_state(tmpdir):
    sampler = MixtureSampler(seed=3)
    for _ in range(20):
        sampler.draw(32)
    total = sum(sampler.tokens_per_source.values())
    ckpt = {"sources": list(sampler.names)}
    ckpt["mixture_weights"] = dict(zip(sampler.names, sampler.probs.tolist()))
    ckpt["mixture_probs"] = torch.from_numpy(sampler.probs)
    ckpt["tokens_per_source"] = sampler.tokens_per_source  # truth: weights_only
    ckpt["tokens_per_source_plain"] = dict(sampler.tokens_per_source)
    ckpt["token_share"] = {k: v / total for k, v in sampler.tokens_per_source.items()}
    ckpt["epochs_per_source"] = sampler.epochs_per_source
    ckpt["upsampled_sources"] = sampler.upsampled()  # truth: weights_only
    ckpt["upsampled_sorted"] = sorted(sampler.upsampled())
    ckpt["sampler_rng"] = sampler.rng.bit_generator.state
    ckpt["total_tokens"] = total
    path = os.path.join(tmpdir, "mixture.pt")
    torch.save(ckpt, path)
    return path


# --------------------------------------------------------------------------- loss spike guard

class LossSpikeDetector:
    def __init__(self, beta=0.9, z_threshold=3.0, warmup=3):
        self.beta = beta
        self.z_threshold = z_threshold
        self.warmup = warmup
        self.mean = 0.0
        self.var = 0.0
        self.n = 0
        self.zscores = []
        self.spikes = []
        self.skipped = set()

    def update(self, step, loss):
        self.n += 1
        if self.n == 1:
            self.mean = loss
            self.zscores.append(0.0)
            return False
        z = (loss - self.mean) / math.sqrt(self.var + 1e-8)
        self.zscores.append(z)
        self.mean = self.beta * self.mean + (1 - self.beta) * loss
        self.var = self.beta * self.var + (1 - self.beta) * (loss - self.mean) ** 2
        if self.n > self.warmup and z > self.z_threshold:
            self.spikes.append((step, loss))
            self.skipped.add(step)
            return True
        return False


def save_spike_guard_ckpt(tmpdir):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    data = toy_corpus()
    model = TinyGPT()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    detector = LossSpikeDetector()
    grad_norms = []
    lrs = []
    for step in range(6):
        lr = cosine_lr(step, max_steps=6)
        for g in opt.param_groups:
            g["lr"] = lr
        _, loss = model(*get_batch(data, 4, gen))
        loss_val = loss.item() * (5.0 if step == 5 else 1.0)  # injected spike
        opt.zero_grad()
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        grad_norms.append(gn.item())
        lrs.append(lr)
        if not detector.update(step, loss_val):
            opt.step()
    ckpt = dict(
        model=model.state_dict(),
        optimizer=opt.state_dict(),
        grad_norm_history=grad_norms,
        grad_norm_hist=np.histogram(grad_norms, bins=4),  # truth: weights_only
        grad_norm_p95=float(np.percentile(grad_norms, 95)),
        lr_history=lrs,
        lr_schedule=[cosine_lr(s, max_steps=6) for s in range(8)],
        spikes=detector.spikes,
        skipped_steps=detector.skipped,
        loss_ema=detector.mean,
        max_zscore=np.max(detector.zscores),  # truth: weights_only
        max_zscore_f=max(detector.zscores),
        z_threshold=detector.z_threshold,
    )
    path = os.path.join(tmpdir, "spike_guard.pt")
    torch.save(ckpt, path)
    return path


# --------------------------------------------------------------------------- resumable state

@dataclasses.dataclass
class TrainState:
    step: int = 0
    tokens_seen: int = 0
    consumed_samples: int = 0
    best_val: float = float("inf")


class ThroughputMeter:
    def __init__(self, window=10):
        self.window = collections.deque(maxlen=window)
        self.tokens = 0
        self.t_start = time.perf_counter()

    def update(self, n_tokens, dt):
        self.tokens += n_tokens
        self.window.append(n_tokens / max(dt, 1e-9))

    def summary(self, n_params):
        tps = sum(self.window) / max(len(self.window), 1)
        return {
            "tokens_per_sec": tps,
            "mfu": 6 * n_params * tps / PEAK_FLOPS,
            "tokens": self.tokens,
            "elapsed_s": time.perf_counter() - self.t_start,
        }


def save_resume_state(tmpdir):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    data = toy_corpus()
    model = TinyGPT()
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, functools.partial(lr_mult, warmup=1, max_steps=8))
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    state = TrainState()
    meter = ThroughputMeter()
    started = datetime.datetime.now()
    for _ in range(3):
        t0 = time.perf_counter()
        x, y = get_batch(data, 4, gen)
        _, loss = model(x, y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        sched.step()
        state.step += 1
        state.consumed_samples += x.size(0)
        state.tokens_seen += x.numel()
        meter.update(x.numel(), time.perf_counter() - t0)
    resume = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "scheduler_obj": sched,  # truth: weights_only
        "scaler": scaler.state_dict(),
        "train_state": state,  # truth: weights_only
        "train_state_dict": dataclasses.asdict(state),
        "throughput": meter.summary(model.num_params()),
        "tps_window": meter.window,  # truth: weights_only
        "tps_window_list": list(meter.window),
        "started_at": started.isoformat(),
        "wallclock": datetime.datetime.now() - started,  # truth: weights_only
        "wallclock_s": (datetime.datetime.now() - started).total_seconds(),
        "rng": {"torch": torch.get_rng_state(), "gen": gen.get_state()},
    }
    path = os.path.join(tmpdir, f"resume_{state.step:07d}.pt")
    torch.save(resume, path)
    return path


# --------------------------------------------------------------------------- eval snapshot (clean)

def save_eval_snapshot(tmpdir):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(5)
    data = {"val": toy_corpus(seed=2)}
    model = TinyGPT()
    losses = estimate_loss(model, data, gen)
    val = losses["val"].item()
    sampler = MixtureSampler(seed=1)
    sampler.draw(16)
    n_params = model.num_params()
    tokens_per_step = math.prod((4, BLOCK))
    snapshot = {"model": model.state_dict()}
    snapshot.update(
        val_loss=val,
        val_ppl=math.exp(val),
        val_bpb=val / math.log(2),
        n_params=n_params,
        tokens_per_step=tokens_per_step,
        chinchilla_tokens=20 * n_params,
        mixture={n: round(p, 4) for n, p in zip(sampler.names, sampler.probs.tolist())},
        per_source_tokens=dict(sampler.tokens_per_source),
        lr_at_end=cosine_lr(20),
        train_state=dataclasses.asdict(TrainState(step=20, tokens_seen=20 * tokens_per_step)),
        dtype=torch.bfloat16,
        git_sha="3f9c2e1",
    )
    path = os.path.join(tmpdir, "eval_snapshot.pt")
    torch.save(snapshot, path)
    return path
