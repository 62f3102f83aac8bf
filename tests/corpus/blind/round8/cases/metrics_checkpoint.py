"""Epoch-end checkpoints of a small classifier: metrics are computed with numpy, then saved.

Each save_*(tmpdir) writes one checkpoint and returns its path; the resume script reads it back
with a plain torch.load(path).
"""
import os
import statistics

import numpy as np
import torch
from torch import nn


def build_model(in_dim=16, n_classes=4):
    return nn.Sequential(nn.Linear(in_dim, 32), nn.ReLU(), nn.Linear(32, n_classes))


def run_validation(model, n_batches=5):
    """Returns per-batch losses and accuracies as numpy arrays, like most eval loops."""
    g = torch.Generator().manual_seed(0)
    losses, accs = [], []
    with torch.no_grad():
        for _ in range(n_batches):
            x = torch.randn(8, 16, generator=g)
            y = torch.randint(0, 4, (8,), generator=g)
            logits = model(x)
            losses.append(nn.functional.cross_entropy(logits, y).item())
            accs.append((logits.argmax(1) == y).float().mean().item())
    return np.asarray(losses), np.asarray(accs)


def current_lr(optimizer) -> np.float64:
    return np.float64(optimizer.param_groups[0]["lr"])


def cosine_lr(base_lr: float, step: int, total: int) -> float:
    return float(0.5 * base_lr * (1 + np.cos(np.pi * step / total)))


def smoothed(values, beta=0.9):
    avg = 0.0
    for v in values:
        avg = beta * avg + (1 - beta) * v
    return avg


def save_epoch_metrics(tmpdir):
    model = build_model()
    losses, accs = run_validation(model)
    ckpt = {
        "model": model.state_dict(),
        "val_loss": np.mean(losses),  # truth: weights_only
        "val_acc": accs.mean().item(),
        "best_acc": accs.max(),  # truth: weights_only
        "epoch": 3,
    }
    path = os.path.join(tmpdir, "epoch_3.pt")
    torch.save(ckpt, path)
    return path


def save_best_checkpoint(tmpdir):
    model = build_model()
    losses, accs = run_validation(model)
    best_idx = np.argmax(accs)
    best_acc = float(accs[best_idx])
    state = dict(
        model=model.state_dict(),
        best_batch=best_idx,  # truth: weights_only
        best_acc=best_acc,
        worst_loss=losses[np.argmin(accs)],  # truth: weights_only
    )
    path = os.path.join(tmpdir, "best.pt")
    torch.save(state, path)
    return path


def save_with_casts(tmpdir):
    model = build_model()
    losses, accs = run_validation(model)
    ckpt = {"model": model.state_dict()}
    ckpt["val_loss"] = float(np.mean(losses))
    ckpt["best_batch"] = int(np.argmax(accs))
    ckpt["acc_curve"] = accs.tolist()
    ckpt["loss_curve"] = torch.from_numpy(losses)
    ckpt["median_loss"] = np.median(losses).item()
    path = os.path.join(tmpdir, "casts.pt")
    torch.save(ckpt, path)
    return path


def save_optimizer_step(tmpdir):
    model = build_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    lr = current_lr(optimizer)
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "lr": lr,  # truth: weights_only
        "next_lr": cosine_lr(3e-4, 10, 100),
        "global_step": np.int64(10),  # truth: weights_only
        "loss_scale": np.float32(2.0**16),  # truth: weights_only
        "warmup_steps": int(np.int64(500)),
    }
    path = os.path.join(tmpdir, "step_10.pt")
    torch.save(checkpoint, path)
    return path


def save_running_averages(tmpdir):
    model = build_model()
    losses, accs = run_validation(model)
    ema_loss = smoothed(losses)
    mean_acc = statistics.mean(accs)
    rounded = round(losses.min(), 4)
    ckpt = {}
    ckpt["model"] = model.state_dict()
    ckpt["ema_loss"] = ema_loss  # truth: weights_only
    ckpt["mean_acc"] = mean_acc  # truth: weights_only
    ckpt["min_loss"] = rounded  # truth: weights_only
    ckpt["n_batches"] = len(losses)
    ckpt["eps"] = torch.finfo(torch.float32).eps
    path = os.path.join(tmpdir, "running.pt")
    torch.save(ckpt, path)
    return path


def save_early_stopping(tmpdir):
    model = build_model()
    losses, _ = run_validation(model)
    best_so_far = 0.5
    improved = losses.min() < best_so_far
    patience_left = 3
    ckpt = {
        "model": model.state_dict(),
        "stopper": {
            "best": max(best_so_far, losses[0]),  # truth: weights_only
            "improved": improved,  # truth: weights_only
            "patience_left": patience_left,
            "threshold": np.finfo(np.float32).eps,  # truth: weights_only
        },
    }
    path = os.path.join(tmpdir, "early_stop.pt")
    torch.save(ckpt, path)
    return path


def save_eval_arrays(tmpdir):
    model = build_model()
    losses, accs = run_validation(model)
    probs = torch.softmax(model(torch.randn(4, 16)), dim=1).detach()
    ckpt = {
        "model": model.state_dict(),
        "losses": losses,  # truth: weights_only
        "probs": probs.numpy(),  # truth: weights_only
        "probs_tensor": probs,
        "acc_hist": np.histogram(accs, bins=4)[0].tolist(),
        "confusion": torch.as_tensor(np.eye(4)),
    }
    path = os.path.join(tmpdir, "eval.pt")
    torch.save(ckpt, path)
    return path


def save_plain_state_dict(tmpdir):
    model = build_model()
    path = os.path.join(tmpdir, "weights.pt")
    torch.save(model.state_dict(), path)
    return path


def save_class_weights(tmpdir):
    counts = np.bincount(np.array([0, 0, 1, 2, 2, 2, 3]), minlength=4)
    weights = counts.sum() / (len(counts) * counts)
    ckpt = {
        "class_weights": torch.tensor(weights, dtype=torch.float32),
        "class_counts": counts,  # truth: weights_only
        "total": counts.sum(),  # truth: weights_only
        "total_int": int(counts.sum()),
        "mean_weight": weights.mean(dtype=np.float64).item(),
    }
    path = os.path.join(tmpdir, "class_weights.pt")
    torch.save(ckpt, path)
    return path
