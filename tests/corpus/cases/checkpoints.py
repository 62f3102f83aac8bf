"""Training scripts that write checkpoints the default torch.load (weights_only=True) refuses.

Each save_*(out_dir) writes one checkpoint with torch.save and returns its path; whoever resumes
calls plain torch.load(path). Written the way training loops write them: metrics from numpy,
argparse/OmegaConf configs, pathlib paths, whole modules, RNG states, enum modes.
"""

import argparse
import collections
import datetime
import enum
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

NOT_BUILT = {"Phase": "an Enum: its members are built with the class"}


class Phase(enum.Enum):
    WARMUP = "warmup"
    MAIN = "main"


@dataclass
class Schedule:
    warmup_steps: int = 100
    peak_lr: float = 3e-4


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 2)

    def forward(self, x):
        return self.body(x)


def _parser():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--epochs", type=int, default=3)
    return parser


def parse_cli():
    return _parser().parse_args([])


def run_dir(root) -> Path:
    return Path(root) / "runs" / "exp1"


def save_metrics(out_dir):
    model = TinyNet()
    losses = [0.9, 0.7, 0.4]
    ckpt = {
        "model": model.state_dict(),
        "mean_loss": np.mean(losses),  # truth: weights_only
        "best_loss": float(np.min(losses)),
        "epoch": len(losses),
    }
    path = os.path.join(out_dir, "metrics.pt")
    torch.save(ckpt, path)
    return path


def save_best_accuracy(out_dir):
    model = TinyNet()
    best_acc = 0.0
    for epoch in range(3):
        preds = np.array([1, 0, 1, 1])
        labels = np.array([1, 0, 0, 1])
        acc = (preds == labels).mean()
        if acc > best_acc:
            best_acc = acc
    state = dict(
        weights=model.state_dict(),
        best_acc=best_acc,  # truth: weights_only
        epoch=epoch,
    )
    path = os.path.join(out_dir, "best.pt")
    torch.save(state, path)
    return path


def save_with_args(out_dir):
    args = parse_cli()
    model = TinyNet()
    checkpoint = {"state_dict": model.state_dict()}
    checkpoint["args"] = args  # truth: weights_only
    checkpoint["hparams"] = vars(args)
    path = os.path.join(out_dir, "args.pt")
    torch.save(checkpoint, path)
    return path


def save_config(out_dir):
    cfg = OmegaConf.create({"model": {"width": 64}, "optim": {"lr": 0.001}})
    model = TinyNet()
    path = os.path.join(out_dir, "cfg.pt")
    torch.save(
        {
            "model": model.state_dict(),
            "config": cfg,  # truth: weights_only
            "config_plain": OmegaConf.to_container(cfg),
        },
        path,
    )
    return path


def save_paths(out_dir):
    root = run_dir(out_dir)
    meta = {"run_dir": root, "name": root.name}  # truth: weights_only
    ckpt = {"meta": meta, "step": 10}
    ckpt["meta"]["log_file"] = str(root / "train.log")
    path = os.path.join(out_dir, "paths.pt")
    torch.save(ckpt, path)
    return path


def save_whole_model(out_dir):
    model = TinyNet()
    model.eval()
    path = os.path.join(out_dir, "whole.pt")
    torch.save(model, path)  # truth: weights_only
    return path


def save_training_state(out_dir):
    model = TinyNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10)
    scaler = torch.amp.GradScaler("cpu")
    state = {"model": model.state_dict(), "step": 5}
    state.update(
        optimizer=optimizer.state_dict(),
        scheduler=scheduler,  # truth: weights_only
    )
    state["scaler"] = scaler.state_dict()
    path = os.path.join(out_dir, "train_state.pt")
    torch.save(state, path)
    return path


def save_rng(out_dir):
    rng = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # truth: weights_only
        "torch": torch.get_rng_state(),
    }
    path = os.path.join(out_dir, "rng.pt")
    torch.save({"rng": rng, "epoch": 2}, path)
    return path


def save_bookkeeping(out_dir):
    counts = collections.Counter(["cat", "dog", "cat"])
    by_label = collections.defaultdict(list)
    by_label["cat"].append(0)
    record = {
        "counts": counts,
        "ordered": collections.OrderedDict(a=1),
        "by_label": by_label,  # truth: weights_only
        "seen": {1, 2, 3},
        "saved_at": datetime.datetime.now(),  # truth: weights_only
        "saved_at_text": datetime.datetime.now().isoformat(),
    }
    path = os.path.join(out_dir, "book.pt")
    torch.save(record, path)
    return path


def save_phase(out_dir):
    phase = Phase.MAIN
    schedule = Schedule()
    path = os.path.join(out_dir, "phase.pt")
    torch.save(
        {
            "phase": phase,  # truth: weights_only
            "phase_name": phase.value,
            "schedule": schedule,  # truth: weights_only
            "torch_version": torch.__version__,  # truth: weights_only
        },
        path,
    )
    return path


def save_plain(out_dir):
    model = TinyNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = np.array([0.5, 0.25])
    path = os.path.join(out_dir, "plain.pt")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "loss": losses.mean().item(),
            "losses": losses.tolist(),
            "weights": torch.from_numpy(losses),
            "dtype": torch.float32,
            "device": torch.device("cpu"),
            "run": str(run_dir(out_dir)),
            "epochs": parse_cli().epochs,
            "lr": float(np.float64(0.1)),
        },
        path,
    )
    return path


def save_reloaded_config(out_dir):
    args = parse_cli()
    args_dict = vars(args)
    args_dict["lr"] = 0.02
    cfg_path = os.path.join(out_dir, "cfg.yaml")
    with open(cfg_path, "w") as fh:
        fh.write("lr: 0.1\n")
    cfg = OmegaConf.load(cfg_path)
    cfg = OmegaConf.to_container(cfg, resolve=True)
    path = os.path.join(out_dir, "reloaded.pt")
    torch.save({"args": args_dict, "cfg": cfg}, path)
    return path
