"""Character-level language model trained with a linear-warmup + cosine schedule helper, a
yolov5-style ModelEMA, and torch.optim.swa_utils SWA for the last epochs. The trainer keeps its
running state on objects; the save_* functions write the checkpoints the way nanoGPT-like repos do."""
import copy
import dataclasses
import math
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel

TEXT = ("to be or not to be that is the question whether tis nobler in the mind to suffer "
        "the slings and arrows of outrageous fortune or to take arms against a sea of troubles ")


@dataclass
class TrainConfig:
    block_size: int = 16
    batch_size: int = 8
    n_embd: int = 16
    lr: float = 3e-3
    min_lr: float = 1e-4
    warmup_steps: int = 4
    max_steps: int = 16
    ema_decay: float = 0.999
    swa_start: int = 10
    swa_lr: float = 1e-3
    grad_clip: float = 1.0
    eval_interval: int = 8
    tags: list = field(default_factory=lambda: ["char", "tiny"])


@dataclass
class TrainState:
    step: int = 0
    epoch: int = 0
    tokens_seen: int = 0
    best_val_loss: float = float("inf")


class CharTokenizer:
    def __init__(self, text=TEXT):
        self.counts = Counter(text)
        self.itos = sorted(self.counts)
        self.stoi = {ch: i for i, ch in enumerate(self.itos)}

    @property
    def vocab_size(self):
        return len(self.itos)

    def encode(self, s):
        return [self.stoi[c] for c in s]

    def decode(self, ids):
        return "".join(self.itos[i] for i in ids)


class TinyLM(nn.Module):
    def __init__(self, vocab_size=27, n_embd=16):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, n_embd)
        self.rnn = nn.GRU(n_embd, n_embd, batch_first=True)
        self.head = nn.Linear(n_embd, vocab_size)

    def forward(self, idx):
        h, _ = self.rnn(self.tok(idx))
        return self.head(h)


class WarmupCosine:
    """Linear warmup then cosine decay, written to the optimizer's param groups by hand."""

    def __init__(self, base_lr=3e-3, min_lr=1e-4, warmup_steps=4, max_steps=16):
        self.base_lr = base_lr
        self.min_lr = min_lr
        self.warmup_steps = warmup_steps
        self.max_steps = max_steps
        self.step_num = 0
        self.last_lr = None
        self.lrs = []

    def lr_at(self, step):
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        if step > self.max_steps:
            return self.min_lr
        ratio = (step - self.warmup_steps) / (self.max_steps - self.warmup_steps)
        coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))
        return self.min_lr + coeff * (self.base_lr - self.min_lr)

    def step(self, optimizer):
        lr = self.lr_at(self.step_num)
        for group in optimizer.param_groups:
            group["lr"] = lr
        self.last_lr = lr
        self.lrs.append(lr)
        self.step_num += 1
        return lr

    def state_dict(self):
        return {k: v for k, v in self.__dict__.items() if k != "lrs"}


class ModelEMA:
    """Exponential moving average of model weights with a ramped decay (yolov5 / timm style)."""

    def __init__(self, model=None, decay=0.999, tau=20):
        self.ema = copy.deepcopy(model).eval() if model is not None else None
        self.updates = 0
        self.base_decay = decay
        self.tau = tau
        self.last_decay = None
        if self.ema is not None:
            for p in self.ema.parameters():
                p.requires_grad_(False)

    def decay(self):
        return self.base_decay * (1 - np.exp(-self.updates / self.tau))

    @torch.no_grad()
    def update(self, model):
        self.updates += 1
        d = self.decay()
        self.last_decay = d
        msd = model.state_dict()
        for k, v in self.ema.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(float(d)).add_(msd[k].detach(), alpha=float(1 - d))

    def state_dict(self):
        return {"ema": self.ema.state_dict(), "updates": self.updates, "decay": self.base_decay}


def swa_average(averaged_param, model_param, num_averaged):
    return averaged_param + (model_param - averaged_param) / (num_averaged + 1)


class LMTrainer:
    def __init__(self, cfg=None, seed=0):
        self.cfg = cfg or TrainConfig()
        self.tokenizer = CharTokenizer()
        torch.manual_seed(seed)
        np.random.seed(seed)
        self.data = torch.tensor(self.tokenizer.encode(TEXT), dtype=torch.long)
        self.model = TinyLM(self.tokenizer.vocab_size, self.cfg.n_embd)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr, weight_decay=0.01)
        self.schedule = WarmupCosine(self.cfg.lr, self.cfg.min_lr, self.cfg.warmup_steps, self.cfg.max_steps)
        self.ema = ModelEMA(self.model, decay=self.cfg.ema_decay)
        self.swa_model = AveragedModel(self.model, avg_fn=swa_average)
        self.swa_scheduler = SWALR(self.optimizer, swa_lr=self.cfg.swa_lr, anneal_epochs=2)
        self.state = TrainState()
        self.val_losses = []
        self.grad_norms = []
        self.last_eval = None
        self.elapsed = 0.0

    def get_batch(self):
        ix = torch.randint(len(self.data) - self.cfg.block_size - 1, (self.cfg.batch_size,))
        x = torch.stack([self.data[i:i + self.cfg.block_size] for i in ix])
        y = torch.stack([self.data[i + 1:i + 1 + self.cfg.block_size] for i in ix])
        return x, y

    @torch.no_grad()
    def estimate_loss(self, model, iters=3):
        model.eval()
        losses = []
        for _ in range(iters):
            x, y = self.get_batch()
            logits = model(x)
            losses.append(F.cross_entropy(logits.flatten(0, 1), y.flatten()).item())
        model.train()
        val_loss = np.mean(losses)
        return val_loss, np.exp(val_loss)

    def train(self):
        t0 = time.time()
        for step in range(self.cfg.max_steps):
            if step < self.cfg.swa_start:
                self.schedule.step(self.optimizer)
            x, y = self.get_batch()
            loss = F.cross_entropy(self.model(x).flatten(0, 1), y.flatten())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.grad_norms.append(nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip))
            self.optimizer.step()
            self.ema.update(self.model)
            if step >= self.cfg.swa_start:
                self.swa_model.update_parameters(self.model)
                self.swa_scheduler.step()
            self.state.step = step + 1
            self.state.tokens_seen += np.prod(x.shape)
            if (step + 1) % self.cfg.eval_interval == 0:
                val_loss, ppl = self.estimate_loss(self.ema.ema)
                self.val_losses.append(val_loss)
                self.last_eval = {"val_loss": val_loss, "ppl": ppl, "step": step + 1}
                if val_loss < self.state.best_val_loss:
                    self.state.best_val_loss = val_loss
        self.elapsed = time.time() - t0
        return self


def _train(max_steps=16):
    return LMTrainer(TrainConfig(max_steps=max_steps)).train()


def save_nanogpt_style(tmpdir):
    trainer = _train()
    checkpoint = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "model_args": dict(vocab_size=trainer.tokenizer.vocab_size, n_embd=trainer.cfg.n_embd),
        "iter_num": trainer.state.step,
        "best_val_loss": trainer.state.best_val_loss,  # truth: weights_only
        "config": dataclasses.asdict(trainer.cfg),
    }
    path = os.path.join(tmpdir, "ckpt.pt")
    torch.save(checkpoint, path)
    return path


def save_ema_checkpoint(tmpdir):
    trainer = _train()
    ema = trainer.ema
    ckpt = {
        "epoch": trainer.state.epoch,
        "model": trainer.model.state_dict(),
        "ema": ema.ema,  # truth: weights_only
        "updates": ema.updates,
        "ema_decay": ema.last_decay,  # truth: weights_only
        "ema_base_decay": ema.base_decay,
        "optimizer": trainer.optimizer.state_dict(),
    }
    path = os.path.join(tmpdir, "last_ema.pt")
    torch.save(ckpt, path)
    return path


def save_ema_state_dict(tmpdir):
    trainer = _train(max_steps=8)
    ckpt = trainer.ema.state_dict()
    ckpt["ema_decay"] = float(trainer.ema.last_decay)
    ckpt["schedule"] = trainer.schedule.state_dict()
    ckpt["lr_history"] = trainer.schedule.lrs
    ckpt["grad_norms"] = trainer.grad_norms
    ckpt["grad_norm_max"] = max(g.item() for g in trainer.grad_norms)
    ckpt["vocab"] = trainer.tokenizer.stoi
    ckpt["char_counts"] = trainer.tokenizer.counts
    path = os.path.join(tmpdir, "ema_only.pt")
    torch.save(ckpt, path)
    return path


def save_swa_checkpoint(tmpdir):
    trainer = _train()
    ckpt = {
        "swa_state_dict": trainer.swa_model.state_dict(),
        "swa_n": trainer.swa_model.n_averaged,
        "swa_scheduler": trainer.swa_scheduler.state_dict(),
        "swa_start": trainer.cfg.swa_start,
        "base_model": trainer.swa_model.module,  # truth: weights_only
        "swa_lr": trainer.swa_scheduler.get_last_lr(),
    }
    path = os.path.join(tmpdir, "swa.pt")
    torch.save(ckpt, path)
    return path


def save_train_state(tmpdir):
    trainer = _train()
    val_loss, ppl = trainer.last_eval["val_loss"], trainer.last_eval["ppl"]
    ckpt = {"model": trainer.model.state_dict()}
    ckpt["train_state"] = trainer.state  # truth: weights_only
    ckpt["tokens_seen"] = trainer.state.tokens_seen  # truth: weights_only
    ckpt["val_loss"] = val_loss  # truth: weights_only
    ckpt["perplexity"] = ppl  # truth: weights_only
    ckpt["perplexity_exact"] = math.exp(trainer.val_losses[-1])
    ckpt["val_losses"] = [float(v) for v in trainer.val_losses]
    ckpt["elapsed_s"] = trainer.elapsed
    path = os.path.join(tmpdir, "state.pt")
    torch.save(ckpt, path)
    return path


def save_resume_bundle(tmpdir):
    trainer = _train(max_steps=8)
    bundle = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "train_state": {k: v.item() if isinstance(v, np.generic) else v
                        for k, v in dataclasses.asdict(trainer.state).items()},
        "tokenizer": trainer.tokenizer,  # truth: weights_only
        "itos": trainer.tokenizer.itos,
        "rng": {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "numpy": np.random.get_state(),  # truth: weights_only
        },
        "tags": trainer.cfg.tags,
    }
    path = os.path.join(tmpdir, "resume.pt")
    torch.save(bundle, path)
    return path
