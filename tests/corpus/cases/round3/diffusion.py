"""Diffusion model pieces: noise schedules, a small UNet, an EMA wrapper and a sampler."""
import copy
import enum
import math
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm, trange

from round3 import common as C


class Prediction(enum.Enum):
    EPSILON = "epsilon"
    V = "v_prediction"


@dataclass(frozen=True)
class ScheduleConfig:
    steps: int = 50
    beta_start: float = 1e-4
    beta_end: float = 2e-2


def linear_betas(cfg):
    return torch.linspace(cfg.beta_start, cfg.beta_end, cfg.steps)


def cosine_betas(cfg, s=0.008):
    t = torch.linspace(0, cfg.steps, cfg.steps + 1) / cfg.steps
    a = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - a[1:] / a[:-1]).clamp(max=0.999)


SCHEDULES = {"linear": linear_betas, "cosine": cosine_betas}


class NoiseScheduler(nn.Module):
    """Clean: config dataclass, enum, schedule function from a module-level table, a seeded generator."""

    def __init__(self, schedule="cosine", cfg=ScheduleConfig()):
        super().__init__()
        self.config = cfg
        self.prediction_type = Prediction.EPSILON
        self.beta_fn = SCHEDULES[schedule]
        betas = self.beta_fn(cfg)
        self.register_buffer("alphas_cumprod", torch.cumprod(1 - betas, 0))
        self.generator = torch.Generator().manual_seed(0)
        self.timesteps = range(cfg.steps - 1, -1, -1)

    def add_noise(self, x, noise, t):
        a = self.alphas_cumprod[t].sqrt()
        return a * x + (1 - a).sqrt() * noise


class SinusoidalTimeEmbedding(nn.Module):
    def __init__(self, dim=32):
        super().__init__()
        self.dim = dim
        half = dim // 2
        self.freqs = torch.exp(-math.log(10000) * torch.arange(half) / half)
        self.embed = lambda t: torch.cat([torch.sin(t[:, None] * self.freqs), torch.cos(t[:, None] * self.freqs)], -1)  # truth: pickle

    def forward(self, t):
        return self.embed(t.float())


class ResBlock(C.Backbone):
    def __init__(self, ch=8):
        super().__init__()
        self.norm = nn.GroupNorm(2, ch)
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)
        self.act = nn.SiLU()
        self.skip_scale = 1 / math.sqrt(2)

    def forward(self, x):
        return (x + self.conv(self.act(self.norm(x)))) * self.skip_scale


class TinyUNet(C.Backbone):
    def __init__(self, ch=8):
        super().__init__()
        self.down = nn.Conv2d(3, ch, 3, stride=2, padding=1)
        self.mid = ResBlock(ch)
        self.up = nn.ConvTranspose2d(ch, 3, 4, stride=2, padding=1)
        self.skips = []
        self.progress = tqdm(total=1000, desc="denoise", leave=False)  # truth: pickle
        self.quiet_bar = tqdm(total=10, disable=True)

    def forward(self, x, t=None):
        return self.up(self.mid(self.down(x)))


class EMAModel(nn.Module):
    """Clean: a deep copy of the network, a decay curve bound with partial."""

    def __init__(self, model=None, power=0.75):
        super().__init__()
        self.shadow = copy.deepcopy(model or ResBlock())
        self.decay_fn = partial(pow, 0.999)
        self.warmup = partial(C.cosine_warmup, warmup=10)
        self.num_updates = 0
        self.power = power

    @torch.no_grad()
    def update(self, model):
        self.num_updates += 1


class DDIMSampler(nn.Module):
    def __init__(self, steps=10):
        super().__init__()
        self.scheduler = NoiseScheduler()
        self.loop = trange(steps, desc="ddim")  # truth: pickle
        self.seeds = np.random.SeedSequence(1234)
        self.order = iter(reversed(range(steps)))
        self.guidance = torch.no_grad()(self._guided)  # truth: pickle

    def _guided(self, x, t):
        return x

    def forward(self, x):
        for t in range(10):
            x = self.guidance(x, t)
        return x


class LatentDecoder(nn.Module):
    def __init__(self, latent=4):
        super().__init__()
        self.conv = nn.Conv2d(latent, 3, 1)
        self.scaling_factor = 0.18215
        self.tile_sizes = np.array([64, 96, 128])
        self.tile_meta = np.array([{"h": 64}, {"h": 96}, None])  # truth: portable

    def forward(self, z):
        return self.conv(z / self.scaling_factor)


FACTORIES = {"Prediction": lambda: Prediction.V}
