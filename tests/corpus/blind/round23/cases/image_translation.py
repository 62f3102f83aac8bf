"""pix2pix / CycleGAN-style image-to-image training and a fast neural style transfer net."""
import argparse
import copy
import os
import random
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn


def conv_block(cin, cout, norm=True):
    layers = [nn.Conv2d(cin, cout, 3, padding=1)]
    if norm:
        layers.append(nn.InstanceNorm2d(cout))
    layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class UNetGenerator(nn.Module):
    def __init__(self, in_ch=3, out_ch=3, ngf=4):
        super().__init__()
        self.down = conv_block(in_ch, ngf, norm=False)
        self.up = nn.Conv2d(ngf, out_ch, 3, padding=1)

    def forward(self, x):
        return torch.tanh(self.up(self.down(x)))


class PatchDiscriminator(nn.Module):
    def __init__(self, in_ch=6, ndf=4):
        super().__init__()
        self.net = nn.Sequential(conv_block(in_ch, ndf, norm=False), nn.Conv2d(ndf, 1, 3, padding=1))

    def forward(self, x):
        return self.net(x)


class ImagePool:
    """History of generated images (Shrivastava et al.), as in the CycleGAN code."""

    def __init__(self, pool_size=4):
        self.pool_size = pool_size
        self.images = []

    def query(self, images):
        out = []
        for img in images:
            img = img.detach().unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(img)
                out.append(img)
            elif random.random() > 0.5:
                idx = random.randrange(self.pool_size)
                out.append(self.images[idx].clone())
                self.images[idx] = img
            else:
                out.append(img)
        return torch.cat(out, 0)


def linear_decay(n_epochs, n_epochs_decay):
    def rule(epoch):
        return 1.0 - max(0, epoch - n_epochs) / float(n_epochs_decay + 1)
    return rule


def get_options(argv=()):
    p = argparse.ArgumentParser("pix2pix")
    p.add_argument("--name", default="facades_pix2pix")
    p.add_argument("--lambda_L1", type=float, default=100.0)
    p.add_argument("--n_epochs", type=int, default=1)
    p.add_argument("--n_epochs_decay", type=int, default=1)
    p.add_argument("--checkpoints_dir", default="./checkpoints")
    p.add_argument("--gan_mode", choices=["vanilla", "lsgan"], default="lsgan")
    return p.parse_args(list(argv))


class Pix2PixModel:
    def __init__(self, opt=None):
        self.opt = opt or get_options()
        self.netG = UNetGenerator()
        self.netD = PatchDiscriminator()
        self.optimizer_G = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optimizer_D = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.scaler = torch.amp.GradScaler("cpu")
        self.criterionGAN = nn.MSELoss() if self.opt.gan_mode == "lsgan" else nn.BCEWithLogitsLoss()
        self.criterionL1 = nn.L1Loss()
        self.fake_pool = ImagePool(2)
        self.loss_names = ["G_GAN", "G_L1", "D_real", "D_fake"]
        self.losses = {}
        self.epoch = 0
        self.best_l1 = None
        self.best_netG = None

    def optimize(self, real_A, real_B):
        fake_B = self.netG(real_A)
        pred_fake = self.netD(torch.cat([real_A, self.fake_pool.query(fake_B)], 1).detach())
        pred_real = self.netD(torch.cat([real_A, real_B], 1))
        loss_D_fake = self.criterionGAN(pred_fake, torch.zeros_like(pred_fake))
        loss_D_real = self.criterionGAN(pred_real, torch.ones_like(pred_real))
        self.optimizer_D.zero_grad()
        ((loss_D_fake + loss_D_real) * 0.5).backward()
        self.optimizer_D.step()
        pred = self.netD(torch.cat([real_A, fake_B], 1))
        loss_G_GAN = self.criterionGAN(pred, torch.ones_like(pred))
        loss_G_L1 = self.criterionL1(fake_B, real_B) * self.opt.lambda_L1
        self.optimizer_G.zero_grad()
        (loss_G_GAN + loss_G_L1).backward()
        self.optimizer_G.step()
        self.losses = {"G_GAN": loss_G_GAN, "G_L1": loss_G_L1, "D_real": loss_D_real, "D_fake": loss_D_fake}

    def get_current_losses(self):
        return {k: float(v) for k, v in self.losses.items()}

    def run_epoch(self):
        torch.manual_seed(self.epoch)
        a, b = torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8)
        self.optimize(a, b)
        self.epoch += 1
        l1 = self.losses["G_L1"].detach()
        if self.best_l1 is None or l1 < self.best_l1:
            self.best_l1 = l1
            self.best_netG = copy.deepcopy(self.netG)
        return l1


def save_pix2pix_latest(tmpdir):
    model = Pix2PixModel(get_options(["--checkpoints_dir", tmpdir]))
    model.run_epoch()
    save_dir = Path(model.opt.checkpoints_dir) / model.opt.name
    save_dir.mkdir(parents=True, exist_ok=True)
    path = save_dir / "latest_net.pth"
    state = {}
    for name in ("G", "D"):
        state["net" + name] = getattr(model, "net" + name).state_dict()
    state["optimizer_G"] = model.optimizer_G.state_dict()
    state["optimizer_D"] = model.optimizer_D.state_dict()
    state["scaler"] = model.scaler  # truth: weights_only
    state["losses"] = model.get_current_losses()
    state["fake_pool"] = model.fake_pool.images
    state["opt"] = vars(model.opt)
    state["epoch"] = model.epoch
    torch.save(state, path)
    return str(path)


def save_pix2pix_best_generator(tmpdir):
    model = Pix2PixModel()
    for _ in range(2):
        model.run_epoch()
    path = os.path.join(tmpdir, "best_net_G.pth")
    torch.save(model.best_netG, path)  # truth: weights_only
    return path


def save_pix2pix_resume_state(tmpdir):
    opt = get_options(["--n_epochs", "1", "--n_epochs_decay", "2"])
    model = Pix2PixModel(opt)
    sched = torch.optim.lr_scheduler.LambdaLR(model.optimizer_G, linear_decay(opt.n_epochs, opt.n_epochs_decay))
    model.run_epoch()
    sched.step()
    resume = {"epoch": model.epoch, "best_l1": model.best_l1}
    resume["netG"] = model.netG.state_dict()
    resume["scaler"] = model.scaler.state_dict()
    resume["lr"] = sched.get_last_lr()
    sd = {k: v for k, v in sched.state_dict().items() if k != "lr_lambdas"}
    resume["sched"] = sd
    resume["opt"] = opt  # truth: weights_only
    resume["py_random"] = random.getstate()
    path = os.path.join(tmpdir, "resume.pth")
    torch.save(resume, path)
    return path


STYLE_CFG = """
style_image: starry_night.jpg
content_weight: 1.0
style_weights: {relu1_2: 1.0e5, relu2_2: 1.0e5}
tv_weight: 1.0e-6
image_size: 8
"""


class TransformerNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(conv_block(3, 4), nn.Conv2d(4, 3, 3, padding=1))

    def forward(self, x):
        return self.body(x)


def gram_matrix(feat):
    b, c, h, w = feat.shape
    f = feat.view(b, c, h * w)
    return f.bmm(f.transpose(1, 2)) / (c * h * w)


def save_style_transfer(tmpdir):
    cfg = OmegaConf.create(STYLE_CFG)
    net = TransformerNet()
    style = torch.rand(1, 3, cfg.image_size, cfg.image_size)
    with torch.no_grad():
        grams = {name: gram_matrix(net.body[0](style)) for name in cfg.style_weights}
    losses = []
    for _ in range(2):
        out = net(style)
        loss = cfg.content_weight * (out - style).pow(2).mean()
        losses.append(loss.item())
    ckpt = {
        "state_dict": net.state_dict(),
        "style_grams": grams,
        "cfg": cfg,  # truth: weights_only
        "style_weights": OmegaConf.to_container(cfg.style_weights),
        "loss_curve": np.array(losses, dtype=np.float32),  # truth: weights_only
        "final_loss": losses[-1],
        "trained_on": datetime.now(timezone.utc),  # truth: weights_only
        "elapsed": time.perf_counter(),
    }
    path = os.path.join(tmpdir, "style.pth")
    torch.save(ckpt, path)
    return path


def save_style_transfer_clean(tmpdir):
    cfg = OmegaConf.create(STYLE_CFG)
    net = TransformerNet()
    ckpt = dict(
        state_dict=net.state_dict(),
        cfg=OmegaConf.to_container(cfg, resolve=True),
        style_image=str(Path("styles") / cfg.style_image),
        loss_curve=torch.tensor(np.array([0.3, 0.2], dtype=np.float32)),
        tv_weight=float(cfg.tv_weight),
        created=datetime.now(timezone.utc).isoformat(),
    )
    path = os.path.join(tmpdir, "style_clean.pth")
    torch.save(ckpt, path)
    return path


def save_cyclegan_ema(tmpdir):
    g_ab, g_ba = UNetGenerator(), UNetGenerator()
    ema = torch.optim.swa_utils.AveragedModel(g_ab, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.999))
    ema.update_parameters(g_ab)
    lambdas = np.linspace(10.0, 5.0, num=3)
    ckpt = {"G_AB": g_ab.state_dict(), "G_BA": g_ba.state_dict()}
    ckpt["G_AB_ema"] = ema.module.state_dict()
    ckpt["n_averaged"] = ema.n_averaged
    ckpt["lambda_cycle"] = lambdas[-1]  # truth: weights_only
    ckpt["lambda_identity"] = 0.5 * float(lambdas[0])
    ckpt["lambda_schedule"] = [round(float(v), 3) for v in lambdas]
    path = os.path.join(tmpdir, "cyclegan.pth")
    torch.save(ckpt, path)
    return path
