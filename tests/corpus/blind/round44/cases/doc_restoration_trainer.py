"""Document image restoration: denoise / deblur scanned pages.

A small residual U-Net is trained on text-aware patches (patches with too little ink are
resampled), with L1 + perceptual (frozen conv feature net) + Sobel edge losses, an EMA copy
of the weights for evaluation, and PSNR / SSIM per degradation type.
"""
import copy
import datetime
import enum
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage


class Degradation(enum.Enum):
    GAUSSIAN_NOISE = "gaussian_noise"
    MOTION_BLUR = "motion_blur"
    SALT_PEPPER = "salt_pepper"
    BLEED_THROUGH = "bleed_through"


DEGRADE_FNS = {}


def degradation(kind):
    def register(fn):
        DEGRADE_FNS[kind] = fn
        return fn
    return register


@degradation(Degradation.GAUSSIAN_NOISE)
def add_noise(page, rng, sigma=0.08):
    return np.clip(page + rng.normal(0.0, sigma, page.shape), 0.0, 1.0)


@degradation(Degradation.MOTION_BLUR)
def motion_blur(page, rng, length=5):
    kernel = np.zeros((length, length))
    kernel[length // 2] = 1.0 / length
    return ndimage.convolve(page, kernel, mode="reflect")


@degradation(Degradation.SALT_PEPPER)
def salt_pepper(page, rng, amount=0.03):
    out = page.copy()
    hit = rng.random(page.shape)
    out[hit < amount / 2] = 0.0
    out[hit > 1 - amount / 2] = 1.0
    return out


@degradation(Degradation.BLEED_THROUGH)
def bleed_through(page, rng, alpha=0.35):
    return np.minimum(page, 1.0 - alpha * (1.0 - np.fliplr(page)))


def synth_page(rng, h=96, w=80):
    """White page with dark text-like strokes."""
    page = np.ones((h, w))
    for top in range(6, h - 8, 10):
        x = 4
        while x < w - 6:
            word = int(rng.integers(4, 14))
            page[top:top + 5, x:x + word] = rng.uniform(0.0, 0.3)
            x += word + int(rng.integers(2, 5))
    return page


@dataclass
class RestorationConfig:
    patch_size: int = 32
    patches_per_page: int = 6
    min_ink: float = 0.03
    pages: int = 6
    val_pages: int = 2
    lr: float = 3e-4
    weight_decay: float = 1e-4
    epochs: int = 1
    l1_weight: float = 1.0
    perceptual_weight: float = 0.1
    edge_weight: float = 0.05
    feature_layers: tuple = (1, 3)
    ema_decay: float = 0.99
    degradations: tuple = (Degradation.GAUSSIAN_NOISE, Degradation.MOTION_BLUR)
    resample: Image.Resampling = Image.Resampling.BICUBIC
    run_dir: Path = Path("runs/docres")
    seed: int = 0


class PatchSampler:
    """Random crops that keep only patches with enough ink (blank margins teach nothing)."""

    def __init__(self, patch_size=32, per_page=6, min_ink=0.03, seed=0, max_tries=60):
        self.patch_size = patch_size
        self.per_page = per_page
        self.min_ink = min_ink
        self.max_tries = max_tries
        self.rng = np.random.default_rng(seed)
        self.last_coords = []
        self.ink_history = []
        self.rejected = 0

    def sample(self, page):
        p = self.patch_size
        h, w = page.shape
        patches, coords = [], []
        for _ in range(self.max_tries):
            y, x = self.rng.integers(0, h - p + 1), self.rng.integers(0, w - p + 1)
            patch = page[y:y + p, x:x + p]
            ink = (patch < 0.5).mean()
            if ink < self.min_ink and self.max_tries - len(patches) > self.per_page:
                self.rejected += 1
                continue
            patches.append(patch)
            coords.append((y, x))
            self.ink_history.append(ink)
            if len(patches) == self.per_page:
                break
        self.last_coords = coords
        return np.stack(patches), coords


class ConvBlock(nn.Module):
    def __init__(self, cin=1, cout=16):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GELU(),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.GELU())

    def forward(self, x):
        return self.net(x)


class TinyUNet(nn.Module):
    def __init__(self, channels=1, width=16):
        super().__init__()
        self.enc1 = ConvBlock(channels, width)
        self.enc2 = ConvBlock(width, width * 2)
        self.up = nn.ConvTranspose2d(width * 2, width, 2, stride=2)
        self.dec1 = ConvBlock(width * 2, width)
        self.out = nn.Conv2d(width, channels, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        d1 = self.dec1(torch.cat([self.up(e2), e1], dim=1))
        return x + self.out(d1)


class FeatureNet(nn.Module):
    """Stand-in for the frozen VGG16 relu1_2 / relu2_2 feature taps."""

    def __init__(self, width=8):
        super().__init__()
        self.layers = nn.ModuleList([nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(width, width * 2, 3, padding=1, stride=2), nn.ReLU()])
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x, taps):
        feats = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in taps:
                feats.append(x)
        return feats


class PerceptualLoss(nn.Module):
    def __init__(self, layers=(1, 3), weights=None):
        super().__init__()
        self.features = FeatureNet()
        self.taps = tuple(layers)
        self.register_buffer("layer_weights", torch.tensor(weights or [1.0] * len(self.taps)))

    def forward(self, pred, target):
        fp, ft = self.features(pred, self.taps), self.features(target, self.taps)
        return sum(w * F.l1_loss(a, b) for w, a, b in zip(self.layer_weights, fp, ft))


class SobelEdgeLoss(nn.Module):
    def __init__(self):
        super().__init__()
        kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        self.register_buffer("kernel", torch.stack([kx, kx.t()])[:, None])

    def forward(self, pred, target):
        return F.l1_loss(F.conv2d(pred, self.kernel, padding=1), F.conv2d(target, self.kernel, padding=1))


def psnr(pred, target, data_range=1.0):
    mse = np.mean((pred - target) ** 2)
    return 10 * np.log10(data_range ** 2 / max(mse, 1e-10))


def ssim(pred, target, c1=0.01 ** 2, c2=0.03 ** 2):
    mu_p, mu_t = ndimage.uniform_filter(pred, 7), ndimage.uniform_filter(target, 7)
    var_p = ndimage.uniform_filter(pred * pred, 7) - mu_p ** 2
    var_t = ndimage.uniform_filter(target * target, 7) - mu_t ** 2
    cov = ndimage.uniform_filter(pred * target, 7) - mu_p * mu_t
    num = (2 * mu_p * mu_t + c1) * (2 * cov + c2)
    return (num / ((mu_p ** 2 + mu_t ** 2 + c1) * (var_p + var_t + c2))).mean()


class DocRestorationTrainer:
    def __init__(self, cfg=None):
        self.cfg = cfg or RestorationConfig()
        torch.manual_seed(self.cfg.seed)
        self.model = TinyUNet()
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.perceptual = PerceptualLoss(self.cfg.feature_layers)
        self.edge = SobelEdgeLoss()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr,
                                           weight_decay=self.cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(self.cfg.epochs, 1))
        self.sampler = PatchSampler(self.cfg.patch_size, self.cfg.patches_per_page, self.cfg.min_ink, self.cfg.seed)
        self.degrade_rng = np.random.default_rng(self.cfg.seed + 1)
        page_rng = np.random.default_rng(self.cfg.seed + 2)
        self.train_pages = [synth_page(page_rng) for _ in range(self.cfg.pages)]
        self.val_pages = [synth_page(page_rng) for _ in range(self.cfg.val_pages)]
        self.epoch = 0
        self.global_step = 0
        self.best_psnr = -math.inf
        self.best_epoch = -1
        self.is_best = False
        self.history = []

    def _degrade(self, clean):
        kind = self.cfg.degradations[int(self.degrade_rng.integers(len(self.cfg.degradations)))]
        return np.stack([DEGRADE_FNS[kind](p, self.degrade_rng) for p in clean]), kind

    def _to_tensor(self, arr):
        return torch.as_tensor(arr, dtype=torch.float32)[:, None]

    def _update_ema(self):
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.model.parameters()):
                e.lerp_(p, 1.0 - self.cfg.ema_decay)

    def train_epoch(self):
        self.model.train()
        totals, l1s = [], []
        for page in self.train_pages:
            clean, _ = self.sampler.sample(page)
            noisy, _ = self._degrade(clean)
            x, y = self._to_tensor(noisy), self._to_tensor(clean)
            pred = self.model(x)
            l1 = F.l1_loss(pred, y)
            loss = (self.cfg.l1_weight * l1 + self.cfg.perceptual_weight * self.perceptual(pred, y)
                    + self.cfg.edge_weight * self.edge(pred, y))
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self._update_ema()
            self.global_step += 1
            totals.append(loss.item())
            l1s.append(l1.item())
        self.scheduler.step()
        return {"loss": sum(totals) / len(totals), "l1": statistics.fmean(l1s),
                "lr": self.scheduler.get_last_lr()[0], "steps": len(totals)}

    @torch.no_grad()
    def validate(self, model=None):
        model = (model or self.ema).eval()
        rng = np.random.default_rng(123)
        psnrs, inputs, ssims, per_kind = [], [], [], {}
        for page in self.val_pages:
            for kind in self.cfg.degradations:
                noisy = DEGRADE_FNS[kind](page, rng)
                pred = model(self._to_tensor(noisy[None]))[0, 0].clamp(0, 1).numpy().astype(np.float64)
                psnrs.append(psnr(pred, page))
                inputs.append(psnr(noisy, page))
                ssims.append(ssim(pred, page))
                per_kind.setdefault(kind.value, []).append(float(psnrs[-1]))
        return {"psnr": np.mean(psnrs), "psnr_in": float(np.mean(inputs)), "ssim": float(np.mean(ssims)),
                "per_degradation": {k: statistics.fmean(v) for k, v in per_kind.items()}}

    def fit(self, epochs=None):
        for _ in range(epochs or self.cfg.epochs):
            train = self.train_epoch()
            val = self.validate()
            self.is_best = val["psnr"] > self.best_psnr
            if self.is_best:
                self.best_psnr, self.best_epoch = val["psnr"], self.epoch
            self.history.append({"epoch": self.epoch, "loss": train["loss"], "psnr": float(val["psnr"])})
            self.epoch += 1
        return train, val

    def state_dict(self):
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "history": list(self.history),
        }

    def save_checkpoint(self, path, extra=None):
        state = self.state_dict()
        if extra:
            state.update(extra)
        torch.save(state, path)
        return path


FACTORIES = {
    "Degradation": lambda: Degradation.MOTION_BLUR,
    "DocRestorationTrainer": lambda: DocRestorationTrainer(RestorationConfig(pages=2, val_pages=1)),
}


def save_resume_checkpoint(tmpdir):
    trainer = DocRestorationTrainer(RestorationConfig(epochs=1))
    train_stats, val_stats = trainer.fit()
    ckpt = trainer.state_dict()
    ckpt["config"] = trainer.cfg  # truth: weights_only
    ckpt["run_dir"] = str(trainer.cfg.run_dir)
    ckpt["train_loss"] = train_stats["loss"]
    ckpt["train_l1"] = train_stats["l1"]
    ckpt["lr"] = train_stats["lr"]
    ckpt["val_psnr"] = val_stats["psnr"]  # truth: weights_only
    ckpt["val_ssim"] = val_stats["ssim"]
    ckpt["per_degradation"] = val_stats["per_degradation"]
    path = os.path.join(tmpdir, "resume.pt")
    torch.save(ckpt, path)
    return path


def save_best_weights(tmpdir):
    trainer = DocRestorationTrainer(RestorationConfig(epochs=2, pages=4))
    _, val = trainer.fit()
    gain = val["psnr"] - val["psnr_in"]
    return trainer.save_checkpoint(os.path.join(tmpdir, "best.pt"), extra={
        "best_psnr": trainer.best_psnr,  # truth: weights_only
        "best_epoch": trainer.best_epoch,
        "psnr_gain_db": gain,  # truth: weights_only
        "improved": bool(trainer.is_best),
        "ssim": round(val["ssim"], 4),
        "input_psnr": val["psnr_in"],
    })


def save_patch_sampler_state(tmpdir):
    cfg = RestorationConfig()
    rng = np.random.default_rng(cfg.seed)
    pages = [synth_page(rng) for _ in range(3)]
    sampler = PatchSampler(cfg.patch_size, per_page=4, min_ink=cfg.min_ink, seed=7)
    for page in pages:
        sampler.sample(page)
    state = {
        "sampler": {
            "rng": sampler.rng,  # truth: weights_only
            "rng_state": sampler.rng.bit_generator.state,
            "last_coords": sampler.last_coords,  # truth: weights_only
            "rejected": sampler.rejected,
            "mean_ink": float(np.mean(sampler.ink_history)),
            "patch_size": sampler.patch_size,
        },
        "resample": cfg.resample,  # truth: weights_only
        "resample_name": cfg.resample.name,
        "page_shape": pages[0].shape,
        "pages": len(pages),
    }
    path = os.path.join(tmpdir, "sampler.pt")
    torch.save(state, path)
    return path


def save_perceptual_setup(tmpdir):
    cfg = RestorationConfig(perceptual_weight=0.2)
    loss = PerceptualLoss(layers=cfg.feature_layers, weights=[1.0, 0.5])
    weights = {"l1": cfg.l1_weight, "perceptual": cfg.perceptual_weight, "edge": cfg.edge_weight}
    ckpt = dict(
        feature_net=loss.features,  # truth: weights_only
        feature_state=loss.features.state_dict(),
        feature_taps=list(loss.taps),
        layer_weights=loss.layer_weights.tolist(),
        criterion=F.l1_loss,  # truth: weights_only
        criterion_name="l1",
        loss_weights=weights,
        degradations=[d.value for d in cfg.degradations],
        primary_degradation=cfg.degradations[0],  # truth: weights_only
    )
    path = os.path.join(tmpdir, "perceptual.pt")
    torch.save(ckpt, path)
    return path


def save_ema_export(tmpdir):
    trainer = DocRestorationTrainer(RestorationConfig(pages=2))
    trainer.fit(1)
    path = os.path.join(tmpdir, "ema_full.pt")
    torch.save(trainer.ema, path)  # truth: weights_only
    return path


def save_eval_report(tmpdir):
    t0 = time.perf_counter()
    cfg = RestorationConfig(degradations=tuple(Degradation))
    trainer = DocRestorationTrainer(cfg)
    val = trainer.validate(trainer.model)
    rows = []
    for kind in Degradation:
        scores = [val["per_degradation"][kind.value]]
        rows.append({"degradation": kind.value, "psnr": float(np.mean(scores)), "n": len(scores)})
    x = torch.rand(2, 1, cfg.patch_size, cfg.patch_size)
    report = {
        "rows": rows,
        "mean_psnr": statistics.fmean(r["psnr"] for r in rows),
        "worst": min(rows, key=lambda r: r["psnr"])["degradation"],
        "model_state": trainer.model.state_dict(),
        "ema_state": trainer.ema.state_dict(),
        "dtype": torch.float32,
        "patch_shape": x.shape,
        "psnr_t": 10 * torch.log10(1.0 / F.mse_loss(trainer.model(x), x).clamp_min(1e-10)).detach(),
        "resample": int(cfg.resample),
        "run_dir": os.fspath(cfg.run_dir),
        "config": {k: v for k, v in asdict(cfg).items()
                   if isinstance(v, (int, float, str)) and not isinstance(v, enum.Enum)},
        "created": datetime.datetime.now().isoformat(),
        "elapsed_s": datetime.timedelta(seconds=time.perf_counter() - t0).total_seconds(),
        "ssim": val["ssim"],
        "input_psnr": val["psnr_in"],
    }
    path = os.path.join(tmpdir, "eval_report.pt")
    torch.save(report, path)
    return path
