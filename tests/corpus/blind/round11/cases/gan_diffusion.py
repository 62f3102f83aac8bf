"""GAN / diffusion training loop with an EMA copy, LR schedulers and a noise schedule."""
import copy
import math
import os
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn as nn


class Generator(nn.Module):
    def __init__(self, z_dim=8, out_dim=16):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(z_dim, 32), nn.LeakyReLU(0.2), nn.Linear(32, out_dim), nn.Tanh())

    def forward(self, z):
        return self.body(z)


class Discriminator(nn.Module):
    def __init__(self, in_dim=16):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_dim, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))

    def forward(self, x):
        return self.body(x)


@torch.no_grad()
def ema_update(ema, model, decay=0.999):
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.mul_(decay).add_(pm, alpha=1 - decay)


def cosine_beta_schedule(timesteps, s=0.008):
    steps = timesteps + 1
    x = np.linspace(0, timesteps, steps)
    alphas_cumprod = np.cos(((x / timesteps) + s) / (1 + s) * math.pi * 0.5) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1 - (alphas_cumprod[1:] / alphas_cumprod[:-1])
    return np.clip(betas, 0, 0.999)


def _setup():
    g, d = Generator(), Discriminator()
    g_ema = copy.deepcopy(g).eval()
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    sched_g = torch.optim.lr_scheduler.CosineAnnealingLR(opt_g, T_max=100)
    sched_d = torch.optim.lr_scheduler.StepLR(opt_d, step_size=10, gamma=0.5)
    for _ in range(3):
        opt_g.step()
        opt_d.step()
        sched_g.step()
        sched_d.step()
        ema_update(g_ema, g)
    return g, d, g_ema, opt_g, opt_d, sched_g, sched_d


def save_gan(tmpdir):
    g, d, g_ema, opt_g, opt_d, sched_g, sched_d = _setup()
    d_losses = [0.69, 0.66, 0.61]
    checkpoint = {
        "generator": g.state_dict(),
        "discriminator": d.state_dict(),
        "g_ema": g_ema,  # truth: weights_only
        "opt_g": opt_g.state_dict(),
        "opt_d": opt_d.state_dict(),
        "sched_g": sched_g,  # truth: weights_only
        "sched_d": sched_d.state_dict(),
        "lr_g": sched_g.get_last_lr()[0],
        "d_loss_avg": np.mean(d_losses),  # truth: weights_only
        "epoch": 3,
    }
    path = os.path.join(tmpdir, "gan.pt")
    torch.save(checkpoint, path)
    return path


def save_gan_resume(tmpdir):
    g, d, g_ema, opt_g, opt_d, sched_g, sched_d = _setup()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    d_losses = torch.tensor([0.69, 0.66, 0.61])
    checkpoint = dict(
        generator=g.state_dict(),
        discriminator=d.state_dict(),
        g_ema=g_ema.state_dict(),
        opt_g=opt_g.state_dict(),
        opt_d=opt_d.state_dict(),
        sched_g=sched_g.state_dict(),
        sched_d=sched_d.state_dict(),
        scaler=scaler.state_dict(),
        d_loss_avg=d_losses.mean().item(),
        epoch=3,
    )
    path = os.path.join(tmpdir, "gan_resume.pt")
    torch.save(checkpoint, path)
    return path


def save_gan_with_scaler(tmpdir):
    g, d, _, opt_g, _, _, _ = _setup()
    scaler = torch.amp.GradScaler("cpu")
    ckpt = {"generator": g.state_dict(), "opt_g": opt_g.state_dict()}
    ckpt["scaler"] = scaler  # truth: weights_only
    ckpt["ema_decay"] = 0.999
    path = os.path.join(tmpdir, "gan_scaler.pt")
    torch.save(ckpt, path)
    return path


def save_diffusion(tmpdir):
    net = Generator(z_dim=16, out_dim=16)
    ema = copy.deepcopy(net)
    timesteps = 50
    betas = cosine_beta_schedule(timesteps)
    alphas_cumprod = np.cumprod(1.0 - betas)
    cfg = SimpleNamespace(timesteps=timesteps, schedule="cosine", lr=1e-4, image_size=4)
    fid_history = [41.2, 35.9, 33.1]
    state = {
        "model": net.state_dict(),
        "ema": ema.state_dict(),
        "betas": betas,  # truth: weights_only
        "betas_t": torch.from_numpy(betas).float(),
        "alphas_cumprod": torch.tensor(alphas_cumprod, dtype=torch.float32),
        "config": cfg,  # truth: weights_only
        "config_dict": vars(cfg),
        "best_fid": min(fid_history),
        "fid_ma": np.convolve(fid_history, np.ones(2) / 2, mode="valid")[-1],  # truth: weights_only
        "timesteps": timesteps,
    }
    path = os.path.join(tmpdir, "diffusion.pt")
    torch.save(state, path)
    return path


def save_sampler_state(tmpdir):
    timesteps = 20
    betas = torch.linspace(1e-4, 0.02, timesteps)
    sample_steps = np.linspace(0, timesteps - 1, 5).astype(int)
    state = {}
    state["betas"] = betas
    state["sample_steps"] = sample_steps.tolist()
    state["guidance_scale"] = 7.5
    state["snr"] = {
        "min": float((1 - betas).cumprod(0).min()),
        "last": np.float32(betas[-1].item()),  # truth: weights_only
    }
    path = os.path.join(tmpdir, "sampler.pt")
    torch.save(state, path)
    return path


def save_generator_only(tmpdir):
    g, _, g_ema, _, _, _, _ = _setup()
    path = os.path.join(tmpdir, "g_ema.pt")
    torch.save(g_ema.state_dict(), path)
    return path
