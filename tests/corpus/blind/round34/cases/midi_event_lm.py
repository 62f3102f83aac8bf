"""REMI-style event-token language model for symbolic music.

Tokens: <pad> <bos> <eos> <bar>, NOTE_ON_p, NOTE_OFF_p, TIME_SHIFT_t, VELOCITY_v.
A tiny GRU LM is trained on random event streams (the real thing reads a Lakh MIDI cache),
and the save_* functions below are the ways the lab's scripts write checkpoints.
"""
import argparse
import collections
import dataclasses
import datetime
import enum
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

N_PITCHES = 128
N_SHIFTS = 32
N_VELOCITY = 16
SPECIALS = ["<pad>", "<bos>", "<eos>", "<bar>"]


class EventType(enum.Enum):
    NOTE_ON = "note_on"
    NOTE_OFF = "note_off"
    TIME_SHIFT = "time_shift"
    VELOCITY = "velocity"
    BAR = "bar"


@dataclasses.dataclass
class SamplingConfig:
    temperature: float = 1.0
    top_k: int = 32
    top_p: float = 0.95
    max_len: int = 64
    min_temperature: float = 0.7


def build_vocab():
    itos = list(SPECIALS)
    itos += [f"note_on_{p}" for p in range(N_PITCHES)]
    itos += [f"note_off_{p}" for p in range(N_PITCHES)]
    itos += [f"time_shift_{t}" for t in range(N_SHIFTS)]
    itos += [f"velocity_{v}" for v in range(N_VELOCITY)]
    stoi = {tok: i for i, tok in enumerate(itos)}
    return stoi, itos


STOI, ITOS = build_vocab()
NOTE_ON0 = STOI["note_on_0"]
VEL0 = STOI["velocity_0"]


def random_event_streams(n_seq, seq_len, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(len(SPECIALS), len(ITOS), (n_seq, seq_len), generator=g)


def pitch_histogram(tokens):
    """Counts of NOTE_ON pitches (0..127) as a numpy array."""
    t = tokens.flatten().numpy()
    on = t[(t >= NOTE_ON0) & (t < NOTE_ON0 + N_PITCHES)] - NOTE_ON0
    return np.bincount(on, minlength=N_PITCHES)


def velocity_stats(tokens):
    t = tokens.flatten().numpy()
    vel = t[(t >= VEL0) & (t < VEL0 + N_VELOCITY)] - VEL0
    # bin -> MIDI velocity (8..127)
    midi = vel * 8 + 4
    return midi.mean(), midi.std()


def pitch_class_entropy(hist):
    pc = np.zeros(12)
    for p, c in enumerate(hist):
        pc[p % 12] += c
    pc = pc / max(pc.sum(), 1)
    nz = pc[pc > 0]
    return float(-(nz * np.log2(nz)).sum())


def temperature_schedule(start, end, steps):
    return np.linspace(start, end, steps)


class EventLM(nn.Module):
    def __init__(self, vocab_size=len(ITOS), d_model=32, n_layers=1, dropout=0.1):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, d_model)
        self.rnn = nn.GRU(d_model, d_model, num_layers=n_layers, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, x):
        h, _ = self.rnn(self.emb(x))
        return self.head(self.drop(h))


def lm_loss(model, batch):
    logits = model(batch[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))


def parse_args(argv=()):
    p = argparse.ArgumentParser()
    p.add_argument("--d_model", type=int, default=32)
    p.add_argument("--n_layers", type=int, default=1)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seq_len", type=int, default=24)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--run_name", default="remi-gru")
    p.add_argument("--dataset", default="lmd_clean")
    return p.parse_args(list(argv))


# --------------------------------------------------------------------------- terse script style

def save_pretrain_ckpt(tmpdir):
    args = parse_args()
    torch.manual_seed(0)
    model = EventLM(d_model=args.d_model, n_layers=args.n_layers)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    data = random_event_streams(64, args.seq_len)
    for step in range(args.steps):
        idx = torch.randint(0, len(data), (args.batch_size,))
        loss = lm_loss(model, data[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    hist = pitch_histogram(data)
    bpm = np.median([96.0, 120.0, 120.0, 140.0])
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "args": args,  # truth: weights_only
        "hparams": vars(args),
        "vocab": STOI,
        "itos": ITOS,
        "step": step,
        "train_loss": loss.item(),
        "pitch_hist": torch.as_tensor(hist),
        "n_notes": int(hist.sum()),
        "event_types": [e.value for e in EventType],
        "tempo_bpm": float(bpm),
    }
    path = os.path.join(tmpdir, f"{args.run_name}_step{step}.pt")
    torch.save(ckpt, path)
    return path


# --------------------------------------------------------------------------- sampler state, built line by line

def save_sampler_state(tmpdir):
    cfg = SamplingConfig(temperature=1.1, top_k=16)
    model = EventLM()
    sched = temperature_schedule(cfg.temperature, cfg.min_temperature, cfg.max_len)
    random.seed(1)
    np.random.seed(1)
    ckpt = {}
    ckpt["model"] = model.state_dict()
    ckpt["sampling"] = cfg  # truth: weights_only
    ckpt["sampling_dict"] = dataclasses.asdict(cfg)
    ckpt["temperature_schedule"] = sched  # truth: weights_only
    ckpt["temperature_schedule_list"] = sched.tolist()
    ckpt["temperature_final"] = sched[-1].item()
    ckpt["stop_event"] = EventType.BAR  # truth: weights_only
    ckpt["stop_event_name"] = EventType.BAR.value
    ckpt["bar_token"] = STOI["<bar>"]
    ckpt["py_rng"] = random.getstate()
    ckpt["np_rng"] = np.random.get_state()  # truth: weights_only
    ckpt["np_rng_seed"] = 1
    ckpt["torch_rng"] = torch.get_rng_state()
    path = os.path.join(tmpdir, "sampler.pt")
    torch.save(ckpt, path)
    return path


# --------------------------------------------------------------------------- structured trainer

class MusicTrainer:
    """Keeps the best validation NLL and a history on self; writes its own checkpoint."""

    def __init__(self, model=None, lr=3e-3, patience=3, window=8):
        self.model = model if model is not None else EventLM()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=0.01)
        self.history = collections.defaultdict(list)
        self.loss_window = collections.deque(maxlen=window)
        self.best_val_nll = np.inf
        self.best_epoch = -1
        self.patience = patience
        self.bad_epochs = 0
        self.epoch = 0

    def train_epoch(self, data, bs=8):
        self.model.train()
        losses = []
        for i in range(0, len(data), bs):
            loss = lm_loss(self.model, data[i:i + bs])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            losses.append(loss.item())
            self.loss_window.append(loss.item())
        return float(np.mean(losses))

    @torch.no_grad()
    def validate(self, data):
        self.model.eval()
        nll = [lm_loss(self.model, data[i:i + 8]).item() for i in range(0, len(data), 8)]
        return np.mean(nll)

    def fit(self, train, val, epochs=2):
        for _ in range(epochs):
            tr = self.train_epoch(train)
            va = self.validate(val)
            self.history["train_loss"].append(tr)
            self.history["val_nll"].append(va)
            if va < self.best_val_nll:
                self.best_val_nll = va
                self.best_epoch = self.epoch
                self.bad_epochs = 0
            else:
                self.bad_epochs += 1
            self.epoch += 1
            if self.bad_epochs >= self.patience:
                break

    def save_checkpoint(self, path, extra=None):
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "epoch": self.epoch,
        }
        state.update(extra or {})
        torch.save(state, path)
        return path


def save_trainer_ckpt(tmpdir):
    torch.manual_seed(0)
    data = random_event_streams(32, 16, seed=2)
    trainer = MusicTrainer()
    trainer.fit(data[:24], data[24:], epochs=2)
    return trainer.save_checkpoint(
        os.path.join(tmpdir, "music_trainer.pt"),
        extra={
            "best_val_nll": trainer.best_val_nll,  # truth: weights_only
            "best_perplexity": math.exp(trainer.best_val_nll),
            "best_epoch": trainer.best_epoch,
            "history": trainer.history,  # truth: weights_only
            "train_curve": list(trainer.history["train_loss"]),
            "loss_window": list(trainer.loss_window),
            "bad_epochs": trainer.bad_epochs,
        },
    )


# --------------------------------------------------------------------------- evaluation of generated samples

@torch.no_grad()
def sample(model, n, length, temperature=1.0, top_k=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, 1), STOI["<bos>"], dtype=torch.long)
    for _ in range(length):
        logits = model(x)[:, -1] / temperature
        v, _ = torch.topk(logits, top_k)
        logits[logits < v[:, [-1]]] = -float("inf")
        nxt = torch.multinomial(F.softmax(logits, -1), 1, generator=g)
        x = torch.cat([x, nxt], 1)
    return x


def evaluate_samples(samples, reference):
    """Metric dict of plain floats (what the eval script logs to wandb)."""
    h_s, h_r = pitch_histogram(samples), pitch_histogram(reference)
    p = (h_s + 1) / (h_s + 1).sum()
    q = (h_r + 1) / (h_r + 1).sum()
    return {
        "pce_samples": pitch_class_entropy(h_s),
        "pce_reference": pitch_class_entropy(h_r),
        "pitch_kl": float(np.sum(p * np.log(p / q))),
        "note_density": (samples >= NOTE_ON0).float().mean().item(),
    }


def save_generation_eval(tmpdir):
    torch.manual_seed(0)
    model = EventLM()
    ref = random_event_streams(16, 32, seed=3)
    gen = sample(model, 4, 24)
    metrics = evaluate_samples(gen, ref)
    vel_mean, vel_std = velocity_stats(gen)
    h = pitch_histogram(gen)
    lowest = int(np.nonzero(h)[0].min()) if h.any() else 0
    highest = np.nonzero(h)[0].max() if h.any() else 127
    torch.save(
        dict(
            model=model.state_dict(),
            metrics=metrics,
            velocity={
                "mean": vel_mean,  # truth: weights_only
                "std": float(vel_std),
            },
            pitch_range=(lowest, highest),  # truth: weights_only
            samples=gen,
            sample_len=gen.shape[1],
            generated_at=time.time(),
        ),
        os.path.join(tmpdir, "gen_eval.pt"),
    )
    return os.path.join(tmpdir, "gen_eval.pt")


# --------------------------------------------------------------------------- export for the demo notebook

def save_demo_export(tmpdir):
    model = EventLM(d_model=16)
    model.eval()
    out = os.path.join(tmpdir, "demo_model.pt")
    torch.save(
        model,  # truth: weights_only
        out,
    )
    return out


# --------------------------------------------------------------------------- fine-tune resume (all loadable)

def save_finetune_resume(tmpdir):
    torch.manual_seed(0)
    cfg = SamplingConfig()
    model = EventLM()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    data = random_event_streams(16, 16, seed=4)
    loss = lm_loss(model, data)
    loss.backward()
    opt.step()
    sched.step()
    hist = pitch_histogram(data)
    token_counts = collections.Counter(data.flatten().tolist())
    run_dir = os.path.join(tmpdir, "ft")
    os.makedirs(run_dir, exist_ok=True)
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "scaler": scaler.state_dict(),
        "lr": sched.get_last_lr()[0],
        "loss": float(loss),
        "sampling": dataclasses.asdict(cfg),
        "pitch_hist": hist.tolist(),
        "pitch_hist_t": torch.from_numpy(hist),
        "token_counts": token_counts,
        "top_tokens": [ITOS[t] for t, _ in token_counts.most_common(5)],
        "pitch_class_entropy": pitch_class_entropy(hist),
        "stop_event": EventType.BAR.name,
        "np_bitgen": np.random.default_rng(0).bit_generator.state,
        "run_dir": str(run_dir),
        "saved_at": datetime.datetime.now().isoformat(),
        "torch_version": str(torch.__version__),
        "vocab_size": len(STOI),
    }
    path = os.path.join(run_dir, "last.pt")
    torch.save(ckpt, path)
    return path


FACTORIES = {
    "EventType": lambda: EventType.NOTE_ON,
}
