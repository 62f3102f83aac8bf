"""A Hydra/OmegaConf-driven trainer: cfg comes from the composed config, checkpoints are plain dicts."""
import math
import os
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn


def compose_config():
    return OmegaConf.create(
        {
            "model": {"hidden": 16, "depth": 2, "dropout": 0.1},
            "optim": {"lr": 3e-4, "betas": [0.9, 0.95], "weight_decay": 0.01},
            "trainer": {"max_epochs": 3, "out_dir": "/tmp/outputs/run0", "grad_clip": 1.0},
            "data": {"mean": [0.485, 0.456], "std": [0.229, 0.224]},
            "tags": ["baseline", "hydra"],
        }
    )


class ResidualMLP(nn.Module):
    def __init__(self, hidden=16, depth=2, dropout=0.1):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout)) for _ in range(depth)
        )

    def forward(self, x):
        for block in self.blocks:
            x = x + block(x)
        return x


def _train(cfg, steps=4):
    model = ResidualMLP(**cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas))
    losses = []
    for _ in range(steps):
        x = torch.randn(8, cfg.model.hidden)
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.trainer.grad_clip)
        opt.step()
        losses.append(loss.item())
    return model, opt, losses


def save_run_with_config(tmpdir):
    cfg = compose_config()
    model, opt, losses = _train(cfg)
    ckpt = {
        "state_dict": model.state_dict(),
        "optimizer": opt.state_dict(),
        "cfg": cfg,  # truth: weights_only
        "cfg_resolved": OmegaConf.to_container(cfg, resolve=True),
        "cfg_yaml": OmegaConf.to_yaml(cfg),
        "epoch": cfg.trainer.max_epochs,
        "lr": cfg.optim.lr,
    }
    path = os.path.join(tmpdir, "last.ckpt")
    torch.save(ckpt, path)
    return path


def save_subtrees(tmpdir):
    cfg = compose_config()
    model, _, _ = _train(cfg)
    ckpt = {"model": model.state_dict()}
    ckpt["model_cfg"] = cfg.model  # truth: weights_only
    ckpt["model_cfg_plain"] = dict(cfg.model)
    ckpt["betas"] = cfg.optim.betas  # truth: weights_only
    ckpt["betas_list"] = list(cfg.optim.betas)
    ckpt["tags"] = OmegaConf.to_object(cfg.tags)
    ckpt["out_dir"] = Path(cfg.trainer.out_dir)  # truth: weights_only
    ckpt["out_dir_str"] = str(Path(cfg.trainer.out_dir))
    path = os.path.join(tmpdir, "subtrees.ckpt")
    torch.save(ckpt, path)
    return path


def save_best_epoch(tmpdir):
    cfg = compose_config()
    model, _, losses = _train(cfg, steps=6)
    history = np.asarray(losses)
    best = {
        "weights": model.state_dict(),
        "best_loss": history.min(),  # truth: weights_only
        "best_loss_value": float(history.min()),
        "best_step": int(history.argmin()),
        "last_loss": history[-1],  # truth: weights_only
        "history": history.tolist(),
        "perplexity": math.exp(losses[-1]),
        "smoothed": np.convolve(history, np.ones(2) / 2, mode="valid"),  # truth: weights_only
    }
    path = os.path.join(tmpdir, "best.ckpt")
    torch.save(best, path)
    return path


def save_normalization(tmpdir):
    cfg = compose_config()
    model, _, _ = _train(cfg)
    ckpt = {"model": model.state_dict(), "stats": {}}
    ckpt["stats"]["mean"] = np.asarray(cfg.data.mean, dtype=np.float32)  # truth: weights_only
    ckpt["stats"]["std"] = torch.tensor(list(cfg.data.std))
    ckpt["stats"]["count"] = len(cfg.data.mean)
    path = os.path.join(tmpdir, "norm.ckpt")
    torch.save(ckpt, path)
    return path


def save_clean_resume(tmpdir):
    cfg = compose_config()
    model, opt, losses = _train(cfg)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.trainer.max_epochs)
    sched.step()
    resume = dict(
        model=model.state_dict(),
        optimizer=opt.state_dict(),
        scheduler=sched.state_dict(),
        config=OmegaConf.to_container(cfg),
        loss=losses[-1],
        rng=torch.get_rng_state(),
    )
    path = os.path.join(tmpdir, "resume.ckpt")
    torch.save(resume, path)
    return path


def save_whole_module(tmpdir):
    cfg = compose_config()
    model, _, _ = _train(cfg)
    path = os.path.join(tmpdir, "model.pt")
    torch.save(model, path)  # truth: weights_only
    return path


def save_grad_stats(tmpdir):
    cfg = compose_config()
    model, _, _ = _train(cfg)
    norms = [p.grad.norm().item() for p in model.parameters() if p.grad is not None]
    ckpt = dict(
        model=model.state_dict(),
        grad_norm_max=max(norms),
        grad_norm_median=np.median(norms),  # truth: weights_only
        grad_norm_tensor=torch.tensor(norms).median(),
        clip=cfg.trainer.grad_clip,
    )
    path = os.path.join(tmpdir, "grads.ckpt")
    torch.save(ckpt, path)
    return path
