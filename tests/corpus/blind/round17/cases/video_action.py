"""Action recognition training: clip sampler, per-class accuracy, top-k metrics."""
import argparse
import collections
import random
import time
from dataclasses import dataclass, asdict, field

import numpy as np
import torch
import torch.nn as nn


@dataclass
class JitterConfig:
    max_shift: int = 4
    p: float = 0.5
    modes: tuple = ("uniform", "dense")


class ClipSampler:
    def __init__(self, num_frames=8, stride=2, seed=0):
        self.num_frames = num_frames
        self.stride = stride
        self.rng = np.random.default_rng(seed)
        self.offsets = self.rng.integers(0, 16, size=4)

    def sample(self, video_len):
        start = self.rng.integers(0, max(1, video_len - self.num_frames * self.stride))
        return np.arange(start, start + self.num_frames * self.stride, self.stride)


def topk_accuracy(logits, target, ks=(1, 5)):
    maxk = max(ks)
    _, pred = logits.topk(maxk, dim=1)
    correct = pred.eq(target.view(-1, 1))
    return {f"top{k}": correct[:, :k].any(dim=1).float().mean().item() for k in ks}


def topk_accuracy_np(scores, target, k=5):
    top = np.argsort(-scores, axis=1)[:, :k]
    return (top == target[:, None]).any(axis=1).mean()


def per_class_accuracy(pred, target, num_classes):
    accs = {}
    for c in range(num_classes):
        mask = target == c
        accs[c] = (pred[mask] == c).mean() if mask.any() else 0.0
    return accs


class VideoTrainer:
    def __init__(self, num_classes=5, jitter=None):
        self.model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, num_classes))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)
        self.sampler = ClipSampler()
        self.jitter = jitter or JitterConfig()
        self.num_classes = num_classes
        self.epoch = 0
        self.best_top1 = 0.0
        self.history = collections.defaultdict(list)
        self.class_acc = {}

    def train_epoch(self):
        x = torch.randn(6, 3, 4, 4)
        y = torch.randint(0, self.num_classes, (6,))
        loss = nn.functional.cross_entropy(self.model(x), y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.epoch += 1
        self.history["loss"].append(loss.item())
        return loss

    def evaluate(self):
        scores = np.random.default_rng(1).normal(size=(10, self.num_classes))
        target = np.arange(10) % self.num_classes
        pred = scores.argmax(1)
        self.class_acc = per_class_accuracy(pred, target, self.num_classes)
        self.top5 = topk_accuracy_np(scores, target, k=3)
        self.mean_class_acc = float(np.mean(list(self.class_acc.values())))
        if self.mean_class_acc >= self.best_top1:
            self.best_top1 = self.mean_class_acc
        return self.top5

    def save_checkpoint(self, path, extra=None):
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "best_top1": self.best_top1,
            "history": dict(self.history),
        }
        if extra:
            state.update(extra)
        torch.save(state, path)
        return path


def save_trainer_basic(tmpdir):
    trainer = VideoTrainer()
    trainer.train_epoch()
    trainer.evaluate()
    return trainer.save_checkpoint(f"{tmpdir}/basic.pt")


def save_with_class_acc(tmpdir):
    trainer = VideoTrainer()
    trainer.train_epoch()
    trainer.evaluate()
    ckpt = {
        "model": trainer.model.state_dict(),
        "class_acc": np.array(list(trainer.class_acc.values())),  # truth: weights_only
        "class_acc_list": [float(v) for v in trainer.class_acc.values()],
        "mean_class_acc": trainer.mean_class_acc,
        "top5": trainer.top5,  # truth: weights_only
    }
    path = f"{tmpdir}/cls.pt"
    torch.save(ckpt, path)
    return path


def save_sampler_state(tmpdir):
    sampler = ClipSampler(seed=3)
    idx = sampler.sample(64)
    ckpt = {}
    ckpt["clip_indices"] = idx  # truth: weights_only
    ckpt["clip_indices_t"] = torch.from_numpy(idx)
    ckpt["rng_state"] = sampler.rng.bit_generator.state
    ckpt["rng"] = sampler.rng  # truth: weights_only
    ckpt["offsets"] = sampler.offsets.tolist()
    ckpt["py_rng"] = random.getstate()
    ckpt["torch_rng"] = torch.get_rng_state()
    path = f"{tmpdir}/sampler.pt"
    torch.save(ckpt, path)
    return path


def save_jitter_config(tmpdir):
    cfg = JitterConfig(max_shift=2)
    path = f"{tmpdir}/jitter.pt"
    torch.save(
        {
            "jitter": asdict(cfg),
            "jitter_obj": cfg,  # truth: weights_only
            "shift_frac": cfg.max_shift / 8,
        },
        path,
    )
    return path


def save_topk_metrics(tmpdir):
    trainer = VideoTrainer()
    logits = torch.randn(8, 5)
    target = torch.randint(0, 5, (8,))
    metrics = topk_accuracy(logits, target, ks=(1, 3))
    t0 = time.time()
    trainer.train_epoch()
    extra = dict(
        metrics=metrics,
        epoch_time=time.time() - t0,
        history=trainer.history,  # truth: weights_only
    )
    return trainer.save_checkpoint(f"{tmpdir}/topk.pt", extra=extra)


def save_from_args(tmpdir):
    parser = argparse.ArgumentParser()
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.01)
    args = parser.parse_args([])
    trainer = VideoTrainer()
    losses = []
    for _ in range(2):
        losses.append(trainer.train_epoch().item())
    ckpt = dict(
        model=trainer.model.state_dict(),
        args=vars(args),
        losses=losses,
        mean_loss=np.mean(losses),  # truth: weights_only
        median_loss=float(np.median(losses)),
    )
    path = f"{tmpdir}/args.pt"
    torch.save(ckpt, path)
    return path


def save_args_namespace(tmpdir):
    parser = argparse.ArgumentParser()
    parser.add_argument("--clip-len", type=int, default=16)
    args = parser.parse_args([])
    state = {"args": args}  # truth: weights_only
    state["clip_len"] = args.clip_len
    path = f"{tmpdir}/ns.pt"
    torch.save(state, path)
    return path
