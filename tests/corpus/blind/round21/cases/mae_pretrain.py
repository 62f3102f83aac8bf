"""Masked-autoencoder pretraining (MAE-style): random patch masking, a tiny encoder/decoder, AMP
scaler, warmup-cosine LR, and the checkpoints a pretraining script writes every few epochs."""
import argparse
import datetime
import json
import math
import os
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn


def get_args_parser():
    parser = argparse.ArgumentParser("MAE pre-training", add_help=False)
    parser.add_argument("--batch_size", default=4, type=int)
    parser.add_argument("--epochs", default=2, type=int)
    parser.add_argument("--mask_ratio", default=0.75, type=float)
    parser.add_argument("--norm_pix_loss", action="store_true")
    parser.add_argument("--blr", type=float, default=1.5e-4)
    parser.add_argument("--warmup_epochs", type=int, default=1)
    parser.add_argument("--output_dir", default="./output_dir")
    parser.add_argument("--input_size", default=8, type=int)
    parser.add_argument("--patch_size", default=2, type=int)
    return parser


def patchify(imgs, p):
    n, c, h, w = imgs.shape
    x = imgs.reshape(n, c, h // p, p, w // p, p)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(n, (h // p) * (w // p), p * p * c)


def random_masking(x, mask_ratio, generator=None):
    n, l, d = x.shape
    len_keep = int(l * (1 - mask_ratio))
    noise = torch.rand(n, l, generator=generator)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    x_masked = torch.gather(x, 1, ids_keep.unsqueeze(-1).repeat(1, 1, d))
    mask = torch.ones(n, l)
    mask[:, :len_keep] = 0
    return x_masked, torch.gather(mask, 1, ids_restore), ids_restore


class TinyMAE(nn.Module):
    def __init__(self, patch_dim=12, num_patches=16, embed_dim=16, decoder_dim=8):
        super().__init__()
        self.patch_embed = nn.Linear(patch_dim, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, embed_dim))
        self.encoder = nn.TransformerEncoderLayer(embed_dim, 2, 32, batch_first=True)
        self.decoder_embed = nn.Linear(embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_pred = nn.Linear(decoder_dim, patch_dim)

    def forward(self, patches, mask_ratio, generator=None):
        x = self.patch_embed(patches) + self.pos_embed
        x, mask, ids_restore = random_masking(x, mask_ratio, generator)
        x = self.decoder_embed(self.encoder(x))
        n, l = mask.shape
        tokens = self.mask_token.repeat(n, l - x.shape[1], 1)
        x = torch.cat([x, tokens], dim=1)
        x = torch.gather(x, 1, ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        pred = self.decoder_pred(x)
        loss = ((pred - patches) ** 2).mean(dim=-1)
        return (loss * mask).sum() / mask.sum(), pred, mask


def adjust_learning_rate(optimizer, epoch, args):
    if epoch < args.warmup_epochs:
        lr = args.lr * epoch / args.warmup_epochs
    else:
        lr = args.lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - args.warmup_epochs) / (args.epochs - args.warmup_epochs)))
    for g in optimizer.param_groups:
        g["lr"] = lr
    return lr


def train_one_epoch(model, optimizer, scaler, epoch, args, generator):
    imgs = torch.randn(args.batch_size, 3, args.input_size, args.input_size, generator=generator)
    patches = patchify(imgs, args.patch_size)
    losses = []
    lr = adjust_learning_rate(optimizer, epoch, args)
    with torch.autocast("cpu", enabled=False):
        loss, _, _ = model(patches, args.mask_ratio, generator)
    optimizer.zero_grad()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    losses.append(loss.item())
    return {"loss": np.mean(losses), "lr": lr}


def pretrain(argv=()):
    args = get_args_parser().parse_args(list(argv))
    args.lr = args.blr * args.batch_size / 256
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    num_patches = (args.input_size // args.patch_size) ** 2
    model = TinyMAE(patch_dim=3 * args.patch_size ** 2, num_patches=num_patches)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.05)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    log = []
    for epoch in range(args.epochs):
        stats = train_one_epoch(model, optimizer, scaler, epoch, args, g)
        log.append({"epoch": epoch, **stats})
    return args, model, optimizer, scaler, log


def save_mae_official(tmpdir):
    args, model, optimizer, scaler, log = pretrain()
    path = os.path.join(tmpdir, f"checkpoint-{args.epochs - 1}.pth")
    to_save = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": args.epochs - 1,
        "scaler": scaler.state_dict(),
        "args": args,  # truth: weights_only
    }
    torch.save(to_save, path)
    return path


def save_mae_epoch_log(tmpdir):
    args, model, optimizer, scaler, log = pretrain(["--mask_ratio", "0.6"])
    train_stats = log[-1]
    ckpt = {
        "model": model.state_dict(),
        "epoch": train_stats["epoch"],
        "train_loss": train_stats["loss"],  # truth: weights_only
        "train_lr": train_stats["lr"],
        "log": [json.dumps({k: float(v) for k, v in s.items()}) for s in log],
        "output_dir": Path(args.output_dir).as_posix(),
        "total_time": str(datetime.timedelta(seconds=int(time.time() - time.time()))),
    }
    path = os.path.join(tmpdir, "log_ckpt.pth")
    torch.save(ckpt, path)
    return path


def save_mae_encoder_only(tmpdir):
    args, model, optimizer, scaler, log = pretrain()
    encoder_keys = ("patch_embed", "pos_embed", "encoder")
    encoder_state = {k: v for k, v in model.state_dict().items() if k.startswith(encoder_keys)}
    ckpt = {
        "model": encoder_state,
        "mask_ratio": args.mask_ratio,
        "patch_size": args.patch_size,
        "num_patches": int(model.pos_embed.shape[1]),
        "pixel_mean": torch.tensor([0.485, 0.456, 0.406]),
        "pixel_std": np.array([0.229, 0.224, 0.225]).tolist(),
        "final_loss": round(float(log[-1]["loss"]), 4),
    }
    path = os.path.join(tmpdir, "mae_encoder.pth")
    torch.save(ckpt, path)
    return path


def save_mae_resume_bundle(tmpdir):
    args, model, optimizer, scaler, log = pretrain()
    visible = random_masking(torch.zeros(1, 16, 4), args.mask_ratio)[1]
    ckpt = {"model": model.state_dict()}
    ckpt.update(
        optimizer=optimizer,  # truth: weights_only
        scaler=scaler,  # truth: weights_only
        saved_at=datetime.datetime.now(),  # truth: weights_only
        mask_ratio_seen=1 - visible.numpy().mean(),  # truth: weights_only
        mask_pattern=visible.bool(),
    )
    path = os.path.join(tmpdir, "resume.pth")
    torch.save(ckpt, path)
    return path


def save_mae_cfg(tmpdir):
    cfg = OmegaConf.create({"model": {"embed_dim": 16, "decoder_dim": 8}, "mask_ratio": 0.75, "epochs": 2})
    model = TinyMAE(embed_dim=cfg.model.embed_dim, decoder_dim=cfg.model.decoder_dim)
    ckpt = {
        "model": model.state_dict(),
        "cfg": OmegaConf.to_container(cfg, resolve=True),
        "model_cfg": cfg.model,  # truth: weights_only
        "mask_ratio": cfg.mask_ratio,
        "epochs": cfg["epochs"],
    }
    path = os.path.join(tmpdir, "mae_cfg.pth")
    torch.save(ckpt, path)
    return path


class LitMAE(L.LightningModule):
    def __init__(
        self,
        img_size: int = 8,
        patch_size: int = 2,
        mask_ratio: float = 0.75,
        norm_pix_loss: bool = False,
        pixel_mean=(0.485, 0.456, 0.406),
        lr: float = 1.5e-4,
        warmup_epochs: int = 1,
    ):
        super().__init__()
        self.save_hyperparameters()
        num_patches = (img_size // patch_size) ** 2
        self.mae = TinyMAE(patch_dim=3 * patch_size ** 2, num_patches=num_patches)

    def training_step(self, batch, batch_idx):
        patches = patchify(batch, self.hparams.patch_size)
        loss, _, _ = self.mae(patches, self.hparams.mask_ratio)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class LitMAEPretrain(L.LightningModule):
    def __init__(
        self,
        args,  # truth: hparam
        mask_ratio: float = 0.75,
        pixel_std=None,  # truth: hparam
        out_dir=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.mae = TinyMAE()

    def training_step(self, batch, batch_idx):
        loss, _, _ = self.mae(batch, self.hparams.mask_ratio)
        return loss


class LitMAEFinetune(L.LightningModule):
    def __init__(
        self,
        encoder_ckpt: str,
        num_classes: int = 10,
        layer_decay: float = 0.75,
        drop_path: float = 0.1,
        mixup: float = 0.8,
        head_init_std: float = 2e-5,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = TinyMAE()
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.head(self.encoder.patch_embed(x).mean(1))


def _pretrain_args():
    args = get_args_parser().parse_args([])
    args.lr = args.blr * args.batch_size / 256
    return args


FACTORIES = {
    "LitMAE": lambda: LitMAE(
        mask_ratio=float(np.clip(0.8, 0.0, 0.95)),
        pixel_mean=torch.tensor([0.485, 0.456, 0.406]),
    ),
    "LitMAEPretrain": lambda: LitMAEPretrain(
        _pretrain_args(),
        mask_ratio=_pretrain_args().mask_ratio,
        pixel_std=np.array([0.229, 0.224, 0.225], dtype=np.float32),
        out_dir=Path(_pretrain_args().output_dir),
    ),
    "LitMAEFinetune": lambda: LitMAEFinetune(
        str(Path("output_dir") / "checkpoint-1.pth"),
        layer_decay=0.65,
        drop_path=np.float64(0.1).item(),
    ),
}
