"""Latent-diffusion fine-tuning script (train_text_to_image.py style) with an AveragedModel EMA,
a GradScaler, a seeded torch.Generator and per-resolution bucket bookkeeping."""
import argparse
import datetime
import os
from collections import Counter, OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class LatentUNet(nn.Module):
    def __init__(self, latent_ch=4, hidden=8):
        super().__init__()
        self.a = nn.Conv2d(latent_ch, hidden, 3, padding=1)
        self.b = nn.Conv2d(hidden, latent_ch, 3, padding=1)

    def forward(self, z):
        return self.b(F.gelu(self.a(z)))


def get_args(argv=None):
    parser = argparse.ArgumentParser(description="fine-tune a latent diffusion model")
    parser.add_argument("--resolution", type=int, default=8)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--max_train_steps", type=int, default=3)
    parser.add_argument("--ema_decay", type=float, default=0.999)
    parser.add_argument("--mixed_precision", choices=["no", "bf16"], default="no")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def setup(args):
    gen = torch.Generator().manual_seed(args.seed)
    unet = LatentUNet()
    ema = AveragedModel(unet, multi_avg_fn=get_ema_multi_avg_fn(args.ema_decay))
    opt = torch.optim.AdamW(unet.parameters(), lr=args.learning_rate)
    scaler = torch.amp.GradScaler("cpu", enabled=args.mixed_precision != "no")
    return unet, ema, opt, scaler, gen


def train(args):
    unet, ema, opt, scaler, gen = setup(args)
    buckets = Counter()
    losses = []
    started = datetime.datetime.now()
    for step in range(args.max_train_steps):
        res = int(np.random.choice([4, 8]))
        buckets[(res, res)] += 1
        z = torch.randn(2, 4, res, res, generator=gen)
        loss = F.mse_loss(unet(z), z)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update_parameters(unet)
        losses.append(loss.detach())
    return dict(unet=unet, ema=ema, opt=opt, scaler=scaler, gen=gen, buckets=buckets,
                losses=losses, elapsed=datetime.datetime.now() - started)


def save_ldm_accelerate_style(tmpdir):
    args = get_args([])
    run = train(args)
    path = os.path.join(tmpdir, "checkpoint-3.pt")
    torch.save({
        "unet": run["unet"].state_dict(),
        "ema_unet": run["ema"].state_dict(),
        "optimizer": run["opt"].state_dict(),
        "scaler": run["scaler"],  # truth: weights_only
        "generator": run["gen"],  # truth: weights_only
        "generator_state": run["gen"].get_state(),
        "buckets": run["buckets"],
        "elapsed": run["elapsed"],  # truth: weights_only
        "elapsed_s": run["elapsed"].total_seconds(),
    }, path)
    return path


def save_ldm_loss_curve(tmpdir):
    args = get_args([])
    run = train(args)
    curve = torch.stack(run["losses"])
    smoothed = np.convolve(curve.numpy(), np.ones(2) / 2, mode="valid")
    path = os.path.join(tmpdir, "curve.pt")
    state = OrderedDict(step=args.max_train_steps)
    state["curve"] = curve
    state["curve_bf16"] = curve.to(torch.bfloat16)
    state["smoothed"] = smoothed  # truth: weights_only
    state["smoothed_last"] = smoothed[-1].item()
    state["dtype"] = smoothed.dtype  # truth: weights_only
    state["bucket_keys"] = tuple(sorted(run["buckets"]))
    state["resolutions"] = frozenset(k[0] for k in run["buckets"])  # truth: weights_only
    state["resolutions_set"] = {k[0] for k in run["buckets"]}
    state["warmup_steps"] = range(0, 2)  # truth: weights_only
    state["param_groups"] = [{k: v for k, v in g.items() if k != "params"} for g in run["opt"].param_groups]
    torch.save(state, path)
    return path


def save_ema_pipeline(tmpdir):
    args = get_args([])
    run = train(args)
    path = os.path.join(tmpdir, "ema_pipeline.pt")
    torch.save(run["ema"].module, path)  # truth: weights_only
    return path


def save_unet_release(tmpdir):
    args = get_args(["--max_train_steps", "2"])
    run = train(args)
    weights = {k.removeprefix("module."): v for k, v in run["ema"].module.state_dict().items()}
    path = os.path.join(tmpdir, "unet_ema.pt")
    meta = {"args": vars(args), "n_averaged": int(run["ema"].n_averaged),
            "trained_on": dict(run["buckets"]), "device": torch.device("cpu")}
    torch.save({"state_dict": weights, "meta": meta}, path)
    return path
