"""LightningModules for diffusion, VAE, GAN and super-resolution, built from configs by a
factory the way the repo's train.py does (`build_module(cfg)`)."""
import argparse
import datetime
import enum
import math
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf


class Prediction(enum.Enum):
    EPS = "epsilon"
    V = "v_prediction"


NOT_BUILT = {"Prediction": "an Enum: its members are the instances"}


class TinyUNet(nn.Module):
    def __init__(self, ch=3, hidden=8):
        super().__init__()
        self.conv = nn.Conv2d(ch, hidden, 3, padding=1)
        self.out = nn.Conv2d(hidden, ch, 3, padding=1)

    def forward(self, x, t=None):
        return self.out(F.silu(self.conv(x)))


class LinearNoiseScheduler:
    """Project noise scheduler (like diffusers' DDPMScheduler, without the config mixin)."""

    def __init__(self, num_train_timesteps=100, beta_start=1e-4, beta_end=0.02):
        self.num_train_timesteps = num_train_timesteps
        self.betas = torch.linspace(beta_start, beta_end, num_train_timesteps)
        self.alphas_cumprod = torch.cumprod(1 - self.betas, 0)


def linear_betas(n, start=1e-4, end=0.02):
    return np.linspace(start, end, n, dtype=np.float64)


class LitDDPM(pl.LightningModule):
    def __init__(
        self,
        unet,  # truth: hparam
        timesteps=100,
        betas=None,  # truth: hparam
        lr=1e-4,
        prediction_type=Prediction.EPS,  # truth: hparam
        ema_decay=0.9999,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.unet = unet
        self.register_buffer("betas", torch.as_tensor(betas if betas is not None else linear_betas(timesteps)))

    def training_step(self, batch, batch_idx):
        x0 = batch[0]
        noise = torch.randn_like(x0)
        return F.mse_loss(self.unet(x0 + noise), noise)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class LitDDPMClean(pl.LightningModule):
    def __init__(
        self,
        unet,
        timesteps=100,
        betas=None,
        lr=1e-4,
        prediction_type="epsilon",
        image_size=8,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["unet"])
        self.unet = unet

    def configure_optimizers(self):
        return torch.optim.AdamW(self.unet.parameters(), lr=self.hparams.lr)


class LitLatentDiffusion(pl.LightningModule):
    def __init__(
        self,
        first_stage_ckpt="vae.ckpt",
        noise_scheduler=None,  # truth: hparam
        scale_factor=0.18215,
        log_every=50,
        sample_fn=None,  # truth: hparam
        cond_dropout=0.1,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=("first_stage",))
        self.scheduler = noise_scheduler or LinearNoiseScheduler()
        self.unet = TinyUNet()


class LitVAE(pl.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        m = cfg.model
        self.encoder = nn.Linear(m.in_dim, 2 * m.latent_dim)
        self.decoder = nn.Linear(m.latent_dim, m.in_dim)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.train.lr)


class LitVAEFromDict(pl.LightningModule):
    def __init__(
        self,
        model_cfg,
        train_cfg,  # truth: hparam
        kl_weight=1.0,
        sample_dir=None,  # truth: hparam
        run_date=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Linear(model_cfg["in_dim"], 2 * model_cfg["latent_dim"])


class LitGAN(pl.LightningModule):
    def __init__(
        self,
        generator,
        discriminator,  # truth: hparam
        latent_dim=4,
        lr_g=2e-4,
        lr_d=2e-4,
        b1=0.5,
        b2=0.999,
        adv_loss=nn.BCEWithLogitsLoss(),  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["generator"])
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator

    def configure_optimizers(self):
        hp = self.hparams
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=hp.lr_g, betas=(hp.b1, hp.b2))
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr_d, betas=(hp.b1, hp.b2))
        return [opt_g, opt_d], []


class LitWGANGP(pl.LightningModule):
    def __init__(
        self,
        generator,
        critic,
        n_critic=5,
        gp_lambda=10.0,
        lr=1e-4,
        betas=(0.0, 0.9),
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["generator", "critic"])
        self.automatic_optimization = False
        self.generator, self.critic = generator, critic


class LitSR(pl.LightningModule):
    def __init__(
        self,
        scale=2,
        nf=8,
        pixel_loss=nn.L1Loss(),  # truth: hparam
        perceptual_weight=0.01,
        gan_weight=5e-3,
        val_crop=4,
        output_dir="results",  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Conv2d(3, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        self.pixel_loss = pixel_loss


class LitSRClean(pl.LightningModule):
    def __init__(
        self,
        scale=4,
        lr=2e-4,
        milestones=(2, 4),
        rgb_mean=None,
        dtype=torch.float32,
        crop_size=None,
        loss=None,
    ):
        super().__init__()
        self.save_hyperparameters("scale", "lr", "milestones", "rgb_mean", "dtype", "crop_size")
        self.net = nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
        self.loss = loss or nn.L1Loss()


class LitEDM(pl.LightningModule):
    def __init__(
        self,
        args,  # truth: hparam
        sigma_min=0.002,
        sigma_max=80.0,
        rho=7.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.unet = TinyUNet()


class LitEDMArgs(pl.LightningModule):
    def __init__(self, args):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(args)
        self.unet = TinyUNet(hidden=args.hidden)


def vae_config():
    return OmegaConf.create({"model": {"in_dim": 16, "latent_dim": 4},
                             "train": {"lr": 1e-3, "epochs": 2, "sample_dir": "samples"}})


def edm_args(argv=()):
    p = argparse.ArgumentParser()
    p.add_argument("--hidden", type=int, default=8)
    p.add_argument("--sigma_data", type=float, default=0.5)
    p.add_argument("--ckpt_dir", type=Path, default=Path("ckpts"))
    return p.parse_args(list(argv))


def build_module(kind):
    cfg = vae_config()
    if kind == "ddpm":
        return LitDDPM(TinyUNet(), timesteps=100, betas=linear_betas(100), prediction_type=Prediction.V)
    if kind == "ddpm_clean":
        return LitDDPMClean(TinyUNet(), timesteps=100, betas=linear_betas(100).tolist(),
                            prediction_type=Prediction.V.value)
    if kind == "ldm":
        return LitLatentDiffusion(first_stage_ckpt=str(Path("ckpts") / "vae.ckpt"),
                                  noise_scheduler=LinearNoiseScheduler(50),
                                  scale_factor=float(np.float32(0.18215)),
                                  log_every=int(np.int64(50)),
                                  sample_fn=lambda x: x.clamp(-1, 1))
    if kind == "vae":
        return LitVAE(cfg)
    if kind == "vae_dict":
        return LitVAEFromDict(OmegaConf.to_container(cfg.model), cfg.train,
                              kl_weight=np.float64(1.0).item(),
                              sample_dir=Path(cfg.train.sample_dir),
                              run_date=datetime.date.today())
    if kind == "gan":
        return LitGAN(nn.Linear(4, 12), nn.Linear(12, 1), latent_dim=4, lr_g=2e-4, lr_d=4e-4)
    if kind == "wgan":
        return LitWGANGP(nn.Linear(4, 12), nn.Linear(12, 1), n_critic=int(math.ceil(4.2)), betas=(0.0, 0.9))
    if kind == "sr":
        return LitSR(scale=2, perceptual_weight=0.01, output_dir=Path("results") / "x2")
    if kind == "sr_clean":
        mean = np.array([0.4488, 0.4371, 0.4040])
        return LitSRClean(scale=2, lr=2e-4, rgb_mean=mean.tolist(),
                          crop_size=torch.Size([4, 4]), loss=nn.MSELoss())
    if kind == "edm":
        return LitEDM(edm_args(), sigma_min=0.002, sigma_max=float(np.float32(80.0)))
    if kind == "edm_args":
        return LitEDMArgs(edm_args(["--hidden", "8"]))
    raise ValueError(kind)


FACTORIES = {
    "LitDDPM": lambda: build_module("ddpm"),
    "LitDDPMClean": lambda: build_module("ddpm_clean"),
    "LitLatentDiffusion": lambda: build_module("ldm"),
    "LitVAE": lambda: build_module("vae"),
    "LitVAEFromDict": lambda: build_module("vae_dict"),
    "LitGAN": lambda: build_module("gan"),
    "LitWGANGP": lambda: build_module("wgan"),
    "LitSR": lambda: build_module("sr"),
    "LitSRClean": lambda: build_module("sr_clean"),
    "LitEDM": lambda: build_module("edm"),
    "LitEDMArgs": lambda: build_module("edm_args"),
}
