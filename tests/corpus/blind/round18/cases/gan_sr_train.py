"""DCGAN-style trainer with two optimizers, and an SRGAN/ESRGAN-style super-resolution trainer
with PSNR tracking (BasicSR / pytorch-CycleGAN style)."""
import argparse
import os
import random
import time
import uuid
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Generator(nn.Module):
    def __init__(self, nz=4, ngf=8, out_dim=12):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(nz, ngf), nn.LeakyReLU(0.2), nn.Linear(ngf, out_dim), nn.Tanh())

    def forward(self, z):
        return self.net(z)


class Discriminator(nn.Module):
    def __init__(self, in_dim=12, ndf=8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, ndf), nn.LeakyReLU(0.2), nn.Linear(ndf, 1))

    def forward(self, x):
        return self.net(x)


class GANTrainer:
    def __init__(self, nz=4, lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999)):
        torch.manual_seed(0)
        self.nz = nz
        self.netG = Generator(nz)
        self.netD = Discriminator()
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=lr_g, betas=betas)
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=lr_d, betas=betas)
        self.criterion = nn.BCEWithLogitsLoss()
        self.fixed_noise = torch.randn(4, nz)
        self.iteration = 0
        self.g_losses, self.d_losses = [], []
        self.d_real_acc = []

    def step(self, real):
        b = real.size(0)
        fake = self.netG(torch.randn(b, self.nz))
        d_real, d_fake = self.netD(real), self.netD(fake.detach())
        loss_d = self.criterion(d_real, torch.ones_like(d_real)) + self.criterion(d_fake, torch.zeros_like(d_fake))
        self.optD.zero_grad()
        loss_d.backward()
        self.optD.step()
        out = self.netD(fake)
        loss_g = self.criterion(out, torch.ones_like(out))
        self.optG.zero_grad()
        loss_g.backward()
        self.optG.step()
        self.iteration += 1
        self.g_losses.append(loss_g.item())
        self.d_losses.append(loss_d.item())
        self.d_real_acc.append((torch.sigmoid(d_real) > 0.5).float().mean().numpy())

    def train(self, iters=3):
        for _ in range(iters):
            self.step(torch.randn(4, 12))
        return self

    def models(self):
        return {"netG": self.netG, "netD": self.netD}

    def optimizers(self):
        return {"optG": self.optG, "optD": self.optD}


def save_gan_checkpoint(tmpdir):
    tr = GANTrainer().train(3)
    state = {name: net.state_dict() for name, net in tr.models().items()}
    state.update({name: opt.state_dict() for name, opt in tr.optimizers().items()})
    state["iteration"] = tr.iteration
    state["fixed_noise"] = tr.fixed_noise
    state["g_losses"] = tr.g_losses
    state["d_real_acc"] = [a.item() for a in tr.d_real_acc]
    path = os.path.join(tmpdir, f"gan_{tr.iteration}.pth")
    torch.save(state, path)
    return path


def save_gan_resume(tmpdir):
    tr = GANTrainer().train(3)
    path = os.path.join(tmpdir, "gan_resume.pth")
    torch.save({
        "netG": tr.netG.state_dict(),
        "netD": tr.netD,  # truth: weights_only
        "optG": tr.optG.state_dict(),
        "optD": tr.optD,  # truth: weights_only
        "criterion": tr.criterion,  # truth: weights_only
        "d_acc": tr.d_real_acc[-1],  # truth: weights_only
        "d_loss_mean": np.mean(tr.d_losses).item(),
        "g_loss_best": min(tr.g_losses),
    }, path)
    return path


def gan_rng_state():
    return {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "numpy_rng": np.random.default_rng(0).bit_generator.state,
    }


def loss_summary(losses):
    arr = np.asarray(losses)
    return arr.mean(), arr.std()


def save_gan_with_rng(tmpdir):
    tr = GANTrainer().train(2)
    g_mean, g_std = loss_summary(tr.g_losses)
    ckpt = dict(
        netG=tr.netG.state_dict(),
        netD=tr.netD.state_dict(),
        rng=gan_rng_state(),
        g_mean=g_mean,  # truth: weights_only
        g_std=float(g_std),
        run_id=uuid.uuid4(),  # truth: weights_only
        run_name=str(uuid.uuid4()),
    )
    path = os.path.join(tmpdir, "gan_rng.pth")
    torch.save(ckpt, path)
    return path


# ---------------------------------------------------------------- super-resolution

class SRResNet(nn.Module):
    def __init__(self, scale=2, nf=8):
        super().__init__()
        self.head = nn.Conv2d(3, nf, 3, padding=1)
        self.up = nn.Sequential(nn.Conv2d(nf, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x):
        return self.up(F.relu(self.head(x)))


def psnr(sr, hr):
    mse = np.mean((sr - hr) ** 2)
    return 10 * np.log10(1.0 / max(mse, 1e-10))


def build_sr_args(argv=None):
    parser = argparse.ArgumentParser(description="train SR")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--patch", type=int, default=4)
    return parser.parse_args(argv)


class SRTrainer:
    def __init__(self, opt=None):
        self.opt = opt or SimpleNamespace(scale=2, lr=1e-4, patch=4)
        torch.manual_seed(0)
        self.net = SRResNet(self.opt.scale)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.opt.lr)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=[2, 4], gamma=0.5)
        self.best_psnr = -1.0
        self.best_iter = 0
        self.psnr_history = []

    def iterate(self, n=3):
        for it in range(1, n + 1):
            lr = torch.rand(1, 3, self.opt.patch, self.opt.patch)
            hr = F.interpolate(lr, scale_factor=self.opt.scale)
            sr = self.net(lr)
            loss = F.l1_loss(sr, hr)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            val = psnr(sr.detach().numpy(), hr.numpy())
            self.psnr_history.append(val)
            if val > self.best_psnr:
                self.best_psnr, self.best_iter = val, it
        return self


def save_sr_best(tmpdir):
    trainer = SRTrainer().iterate(3)
    path = os.path.join(tmpdir, "net_g_best.pth")
    ckpt = {"params": trainer.net.state_dict()}
    ckpt["best_psnr"] = trainer.best_psnr if trainer.best_psnr > 0 else 0.0  # truth: weights_only
    if trainer.best_iter:
        ckpt["best_iter_psnr"] = float(trainer.psnr_history[trainer.best_iter - 1])
    ckpt["best_iter"] = trainer.best_iter
    ckpt["opt"] = trainer.opt  # truth: weights_only
    ckpt["scheduler"] = trainer.scheduler.state_dict()
    ckpt["lr_now"] = trainer.scheduler.get_last_lr()
    torch.save(ckpt, path)
    return path


def save_sr_resume(tmpdir):
    args = build_sr_args(["--scale", "2"])
    trainer = SRTrainer(args).iterate(2)
    path = os.path.join(tmpdir, "sr_resume.state")
    state = {"iter": len(trainer.psnr_history), "schedulers": [], "optimizers": []}
    state["optimizers"].append(trainer.optimizer.state_dict())
    state["schedulers"].append(trainer.scheduler.state_dict())
    state["args"] = vars(args)
    state["psnr_history"] = [round(float(p), 4) for p in trainer.psnr_history]
    state["scheduler_obj"] = trainer.scheduler  # truth: weights_only
    state["wall"] = time.perf_counter()
    torch.save(state, path)
    return path


def save_sr_generator(tmpdir):
    trainer = SRTrainer().iterate(2)
    path = os.path.join(tmpdir, "srresnet_x2.pth")
    torch.save({"params_ema": trainer.net.state_dict(),
                "scale": trainer.opt.scale,
                "psnr": np.float32(trainer.best_psnr).item(),
                "dtype": torch.float32,
                "upscale_shape": torch.Size([1, 3, 8, 8])}, path)
    return path
