"""Tiny DDPM training loop with EMA, AMP scaler and a cosine schedule (in the style of
improved-diffusion / diffusers' train_unconditional.py)."""
import argparse
import copy
import math
import os
import statistics
import time
from collections import deque
from dataclasses import dataclass, asdict, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class DiffusionConfig:
    timesteps: int = 50
    beta_schedule: str = "cosine"
    lr: float = 2e-4
    ema_decay: float = 0.999
    image_size: int = 8
    channels: int = 3
    out_dir: str = "runs/ddpm"


class TinyUNet(nn.Module):
    def __init__(self, channels=3, hidden=8):
        super().__init__()
        self.inp = nn.Conv2d(channels, hidden, 3, padding=1)
        self.t_emb = nn.Linear(1, hidden)
        self.out = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x, t):
        h = self.inp(x) + self.t_emb(t.float().view(-1, 1))[:, :, None, None]
        return self.out(F.silu(h))


def cosine_beta_schedule(timesteps, s=0.008):
    steps = timesteps + 1
    x = np.linspace(0, timesteps, steps, dtype=np.float64)
    alphas_cumprod = np.cos(((x / timesteps) + s) / (1 + s) * math.pi * 0.5) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1 - (alphas_cumprod[1:] / alphas_cumprod[:-1])
    return np.clip(betas, 0, 0.999)


class EMA:
    def __init__(self, model=None, decay=0.999):
        self.decay = decay
        self.num_updates = 0
        self.shadow = copy.deepcopy(model) if model is not None else TinyUNet()
        self.shadow.requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for ps, pm in zip(self.shadow.parameters(), model.parameters()):
            ps.mul_(d).add_(pm.detach(), alpha=1 - d)

    def state_dict(self):
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": self.shadow.state_dict()}


class DDPMTrainer:
    def __init__(self, cfg=None):
        self.cfg = cfg or DiffusionConfig()
        torch.manual_seed(0)
        self.model = TinyUNet(self.cfg.channels)
        self.ema = EMA(self.model, self.cfg.ema_decay)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=100)
        self.scaler = torch.amp.GradScaler("cpu", enabled=False)
        self.betas = cosine_beta_schedule(self.cfg.timesteps)
        self.alphas_cumprod = np.cumprod(1.0 - self.betas)
        self.global_step = 0
        self.losses = deque(maxlen=20)
        self.best_loss = float("inf")
        self.start_time = time.time()

    def train_step(self, x0):
        t = torch.randint(0, self.cfg.timesteps, (x0.shape[0],))
        ac = torch.from_numpy(self.alphas_cumprod).float()[t].view(-1, 1, 1, 1)
        noise = torch.randn_like(x0)
        xt = ac.sqrt() * x0 + (1 - ac).sqrt() * noise
        loss = F.mse_loss(self.model(xt, t), noise)
        self.opt.zero_grad()
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        self.ema.update(self.model)
        self.global_step += 1
        self.losses.append(loss.item())
        return loss

    def fit(self, steps=3):
        for _ in range(steps):
            x0 = torch.randn(2, self.cfg.channels, self.cfg.image_size, self.cfg.image_size)
            self.train_step(x0)
        self.best_loss = min(self.best_loss, np.mean(self.losses))
        return self

    def state(self):
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.global_step,
        }

    def save_checkpoint(self, path, extra=None):
        ckpt = self.state()
        if extra:
            ckpt.update(extra)
        torch.save(ckpt, path)
        return path


def save_ddpm_state(tmpdir):
    trainer = DDPMTrainer().fit(3)
    path = os.path.join(tmpdir, "ddpm_last.pt")
    return trainer.save_checkpoint(path, extra={
        "best_loss": trainer.best_loss,  # truth: weights_only
        "recent_losses": list(trainer.losses),
        "config": asdict(trainer.cfg),
        "elapsed": time.time() - trainer.start_time,
    })


def save_ddpm_with_schedule(tmpdir):
    trainer = DDPMTrainer().fit(2)
    path = os.path.join(tmpdir, "ddpm_sched.pt")
    snr = trainer.alphas_cumprod / (1.0 - trainer.alphas_cumprod)
    extra = dict(
        betas=torch.from_numpy(trainer.betas),
        alphas_cumprod=trainer.alphas_cumprod,  # truth: weights_only
        max_snr=float(snr.max()),
        min_snr=snr.min(),  # truth: weights_only
        schedule=trainer.cfg.beta_schedule,
    )
    return trainer.save_checkpoint(path, extra=extra)


def save_ema_only(tmpdir):
    trainer = DDPMTrainer().fit(2)
    path = os.path.join(tmpdir, "ema.pt")
    torch.save(trainer.ema.shadow, path)  # truth: weights_only
    return path


def save_ema_weights(tmpdir):
    trainer = DDPMTrainer().fit(2)
    path = os.path.join(tmpdir, "ema_weights.pt")
    torch.save({"ema": trainer.ema.shadow.state_dict(),
                "decay": trainer.ema.decay,
                "num_updates": trainer.ema.num_updates,
                "median_loss": statistics.median(trainer.losses),
                "lr": trainer.sched.get_last_lr()[0]}, path)
    return path


def parse_args(argv=None):
    p = argparse.ArgumentParser("train_ddpm")
    p.add_argument("--timesteps", type=int, default=50)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--output_dir", type=Path, default=Path("runs/ddpm"))
    p.add_argument("--use_ema", action="store_true")
    return p.parse_args(argv)


def save_training_run(tmpdir):
    args = parse_args([])
    trainer = DDPMTrainer(DiffusionConfig(timesteps=args.timesteps, lr=args.lr))
    trainer.fit(2)
    ckpt = {"state": trainer.state()}
    ckpt["args"] = args  # truth: weights_only
    ckpt["output_dir"] = args.output_dir  # truth: weights_only
    ckpt["output_dir_str"] = str(args.output_dir)
    ckpt["hparams"] = vars(parse_args(["--lr", "1e-3"]))["lr"]
    ckpt["torch_version"] = torch.__version__  # truth: weights_only
    ckpt["rng"] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),  # truth: weights_only
    }
    path = os.path.join(tmpdir, f"step_{trainer.global_step:06d}.pt")
    torch.save(ckpt, path)
    return path


def save_sampler_snapshot(tmpdir):
    trainer = DDPMTrainer().fit(2)
    ckpt = {}
    with torch.no_grad():
        samples = trainer.ema.shadow(torch.randn(2, 3, 8, 8), torch.zeros(2, dtype=torch.long))
    stats = {}
    for name, fn in (("mean", np.mean), ("std", np.std)):
        stats[name] = float(fn(samples.numpy()))
    ckpt["sample_stats"] = stats
    ckpt["sample_shape"] = samples.shape
    ckpt["losses_by_step"] = {i: l for i, l in enumerate(trainer.losses)}
    ckpt["timesteps_seen"] = sorted({int(t) for t in np.arange(trainer.cfg.timesteps)[::10]})
    path = os.path.join(tmpdir, "samples.pt")
    torch.save(ckpt, path)
    return path
