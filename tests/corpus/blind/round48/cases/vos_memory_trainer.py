"""Semi-supervised video object segmentation: a tiny space-time-memory network (STM/XMem style).

Training follows the usual recipe: sample 3 frames from a clip with a skip that grows over a
curriculum, propagate the first-frame mask through a memory bank, report J&F on validation.
"""
import datetime
import enum
import math
import os
import random
import time
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import ndimage

DAVIS_PALETTE = np.array([[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]], dtype=np.uint8)


class Stage(enum.Enum):
    PRETRAIN_STATIC = "static"
    MAIN_VIDEO = "video"


@dataclass
class VOSConfig:
    crop_size: tuple = (32, 32)
    num_frames: int = 3
    max_objects: int = 2
    key_dim: int = 8
    value_dim: int = 16
    mem_every: int = 2
    mem_capacity: int = 4
    lr: float = 1e-4
    weight_decay: float = 1e-7
    skip_curriculum: list = field(default_factory=lambda: [2, 5, 10, 5])
    curriculum_epochs: list = field(default_factory=lambda: [0, 1, 2, 3])
    stage: Stage = Stage.MAIN_VIDEO
    run_name: str = "stm_s03"


class SkipCurriculum:
    """Max temporal skip between sampled frames, interpolated between milestone epochs."""

    def __init__(self, skips, epochs):
        self.skips = list(skips)
        self.epochs = list(epochs)

    def current(self, epoch):
        return np.clip(np.interp(epoch, self.epochs, self.skips).round(), 1, max(self.skips)).astype(int)

    def as_dict(self):
        return {"skips": self.skips, "epochs": self.epochs}


class MemoryBank:
    def __init__(self, capacity=4):
        self.capacity = capacity
        self.keys = deque(maxlen=capacity)
        self.values = deque(maxlen=capacity)
        self.frame_ids = []

    def add(self, frame_id, key, value):
        self.keys.append(key.detach())
        self.values.append(value.detach())
        self.frame_ids.append(frame_id)

    def read(self, query):
        mk = torch.cat(list(self.keys), dim=2)          # B, Ck, T*H*W
        mv = torch.cat(list(self.values), dim=2)        # B, Cv, T*H*W
        b, ck, h, w = query.shape
        q = query.flatten(2)                            # B, Ck, HW
        affinity = torch.einsum("bcm,bcq->bmq", mk, q) / math.sqrt(ck)
        return torch.einsum("bcm,bmq->bcq", mv, affinity.softmax(dim=1)).view(b, -1, h, w)


class TinySTM(nn.Module):
    def __init__(self, key_dim=8, value_dim=16):
        super().__init__()
        self.key_encoder = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, key_dim, 3, 1, 1))
        self.value_encoder = nn.Sequential(nn.Conv2d(4, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, value_dim, 3, 1, 1))
        self.decoder = nn.Sequential(nn.Conv2d(value_dim, 16, 3, 1, 1), nn.ReLU(), nn.Conv2d(16, 1, 1))

    def encode_key(self, frame):
        return self.key_encoder(frame)

    def encode_value(self, frame, mask):
        return self.value_encoder(torch.cat([frame, mask], dim=1))

    def segment(self, readout, size):
        return F.interpolate(self.decoder(readout), size=size, mode="bilinear", align_corners=False)


def jaccard(gt, pred):
    inter = np.logical_and(gt, pred).sum()
    union = np.logical_or(gt, pred).sum()
    return 1.0 if union == 0 else inter / union


def boundary_f(gt, pred):
    gb = gt ^ ndimage.binary_erosion(gt)
    pb = pred ^ ndimage.binary_erosion(pred)
    if pb.sum() == 0 or gb.sum() == 0:
        return float(pb.sum() == gb.sum())
    precision = (pb & ndimage.binary_dilation(gb)).sum() / pb.sum()
    recall = (gb & ndimage.binary_dilation(pb)).sum() / gb.sum()
    return 2 * precision * recall / max(precision + recall, 1e-8)


def toy_clip(seed, t=3, size=(32, 32)):
    g = torch.Generator().manual_seed(seed)
    frames = torch.rand(t, 3, *size, generator=g)
    masks = torch.zeros(t, 1, *size)
    for i in range(t):
        masks[i, 0, 4 + i:16 + i, 6:18] = 1.0
    return frames, masks


class VOSTrainer:
    def __init__(self, cfg: VOSConfig, seed=0):
        self.cfg = cfg
        self.model = TinySTM(cfg.key_dim, cfg.value_dim)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=10, gamma=0.5)
        self.scaler = torch.amp.GradScaler("cpu", enabled=False)
        self.sampler_gen = torch.Generator().manual_seed(seed)
        self.curriculum = SkipCurriculum(cfg.skip_curriculum, cfg.curriculum_epochs)
        self.epoch = 0
        self.iteration = 0
        self.best_jf = -1.0
        self.best_epoch = -1
        self.started = time.monotonic()

    def train_step(self, frames, masks):
        self.model.train()
        bank = MemoryBank(self.cfg.mem_capacity)
        f0, m0 = frames[:1], masks[:1]
        bank.add(0, self.model.encode_key(f0).flatten(2), self.model.encode_value(f0, m0).flatten(2))
        loss = 0.0
        for t in range(1, frames.shape[0]):
            logits = self.model.segment(bank.read(self.model.encode_key(frames[t:t + 1])), frames.shape[-2:])
            loss = loss + F.binary_cross_entropy_with_logits(logits, masks[t:t + 1])
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.iteration += 1
        return loss.item()

    @torch.no_grad()
    def propagate(self, frames, first_mask):
        self.model.eval()
        bank = MemoryBank(self.cfg.mem_capacity)
        preds = [first_mask[0, 0].bool().numpy()]
        bank.add(0, self.model.encode_key(frames[:1]).flatten(2), self.model.encode_value(frames[:1], first_mask).flatten(2))
        for t in range(1, frames.shape[0]):
            prob = torch.sigmoid(self.model.segment(bank.read(self.model.encode_key(frames[t:t + 1])), frames.shape[-2:]))
            preds.append((prob[0, 0] > 0.5).numpy())
            if t % self.cfg.mem_every == 0:
                bank.add(t, self.model.encode_key(frames[t:t + 1]).flatten(2),
                         self.model.encode_value(frames[t:t + 1], prob).flatten(2))
        return preds, bank

    def validate(self, clips):
        per_seq = OrderedDict()
        for name, (frames, masks) in clips.items():
            preds, _ = self.propagate(frames, masks[:1])
            gts = [masks[t, 0].bool().numpy() for t in range(frames.shape[0])]
            j = np.mean([jaccard(g, p) for g, p in zip(gts[1:], preds[1:])])
            f = np.mean([boundary_f(g, p) for g, p in zip(gts[1:], preds[1:])])
            per_seq[name] = (j, f)
        j_mean = np.mean([v[0] for v in per_seq.values()])
        f_mean = np.mean([v[1] for v in per_seq.values()])
        return (j_mean + f_mean) / 2, j_mean, f_mean, per_seq

    def end_epoch(self, jf):
        self.epoch += 1
        self.scheduler.step()
        is_best = jf > self.best_jf
        if is_best:
            self.best_jf, self.best_epoch = jf, self.epoch
        return is_best

    def state_dict(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "iteration": self.iteration,
        }


def run_epochs(n_epochs=1, seed=0):
    cfg = VOSConfig()
    trainer = VOSTrainer(cfg, seed)
    clips = {f"seq{i}": toy_clip(i, cfg.num_frames, cfg.crop_size) for i in range(2)}
    last = None
    for _ in range(n_epochs):
        for frames, masks in clips.values():
            trainer.train_step(frames, masks)
        last = trainer.validate(clips)
        trainer.end_epoch(last[0])
    return cfg, trainer, clips, last


def save_training_state(tmpdir):
    cfg, trainer, clips, (jf, j_mean, f_mean, per_seq) = run_epochs(n_epochs=2)
    ckpt = trainer.state_dict()
    ckpt["config"] = {k: v for k, v in asdict(cfg).items() if k != "stage"}
    ckpt["stage"] = cfg.stage.value
    ckpt["best_jf"] = trainer.best_jf  # truth: weights_only
    ckpt["best_epoch"] = trainer.best_epoch
    ckpt["max_skip"] = trainer.curriculum.current(trainer.epoch)  # truth: weights_only
    ckpt["curriculum"] = trainer.curriculum.as_dict()
    ckpt["sampler_rng"] = trainer.sampler_gen.get_state()
    ckpt["python_rng"] = random.getstate()
    ckpt["numpy_rng"] = np.random.get_state()  # truth: weights_only
    path = os.path.join(tmpdir, f"{cfg.run_name}_e{trainer.epoch:03d}.pth")
    torch.save(ckpt, path)
    return path


def save_eval_snapshot(tmpdir):
    cfg, trainer, clips, (jf, j_mean, f_mean, per_seq) = run_epochs()
    frames, masks = clips["seq0"]
    preds, bank = trainer.propagate(frames, masks[:1])
    label_map = np.stack(preds).astype(np.uint8)
    results = {"J&F-Mean": jf, "J-Mean": float(j_mean), "F-Mean": float(f_mean)}  # truth: weights_only
    results["per_sequence"] = {name: {"J": float(j), "F": float(f)} for name, (j, f) in per_seq.items()}
    results["J-Decay"] = float(per_seq["seq0"][0] - per_seq["seq1"][0])
    results["object_ids"] = np.unique(label_map)  # truth: weights_only
    results["object_ids_list"] = [int(o) for o in np.unique(label_map) if o != 0]
    results["memory_frames"] = bank.frame_ids
    results["memory_keys"] = bank.keys  # truth: weights_only
    results["num_memory"] = len(bank.keys)
    results["mask_area"] = torch.from_numpy(label_map).sum(dim=(1, 2))
    results["eval_size"] = torch.Size(cfg.crop_size)
    path = os.path.join(tmpdir, "davis_val_results.pth")
    torch.save(results, path)
    return path


def save_for_inference(tmpdir):
    cfg, trainer, _, _ = run_epochs()
    payload = {
        "weights": trainer.model.state_dict(),
        "key_dim": cfg.key_dim,
        "value_dim": cfg.value_dim,
        "mem_every": cfg.mem_every,
        "crop_size": tuple(cfg.crop_size),
        "palette": DAVIS_PALETTE.tobytes(),
        "palette_shape": DAVIS_PALETTE.shape,
        "stage": cfg.stage.name,
        "dtype": torch.float32,
        "trained_for": datetime.timedelta(seconds=time.monotonic() - trainer.started).total_seconds(),
        "saved_at": datetime.datetime.now().isoformat(timespec="seconds"),
        "torch": str(torch.__version__),
        "frame_stride": list(range(0, 10, cfg.mem_every)),
    }
    path = os.path.join(tmpdir, "stm_inference.pth")
    torch.save(payload, path)
    return path


def save_resume_bundle(tmpdir):
    cfg, trainer, clips, (jf, *_rest) = run_epochs()
    wall = datetime.timedelta(seconds=time.monotonic() - trainer.started)
    resume = dict(
        model=trainer.model.state_dict(),
        optimizer=trainer.optimizer,  # truth: weights_only
        scheduler=trainer.scheduler.state_dict(),
        sampler=trainer.sampler_gen,  # truth: weights_only
        epoch=trainer.epoch,
        stage=cfg.stage,  # truth: weights_only
        wall_time=wall,  # truth: weights_only
        lr=trainer.scheduler.get_last_lr()[0],
        frame_window=slice(0, cfg.num_frames),  # truth: weights_only
        is_best=bool(jf >= trainer.best_jf),
    )
    path = os.path.join(tmpdir, "resume.pth")
    torch.save(resume, path)
    return path


def save_palette_and_memory(tmpdir):
    cfg, trainer, clips, _ = run_epochs()
    frames, masks = clips["seq1"]
    _, bank = trainer.propagate(frames, masks[:1])
    state = OrderedDict()
    state["palette"] = DAVIS_PALETTE  # truth: weights_only
    state["palette_rgb"] = torch.from_numpy(DAVIS_PALETTE)
    state["memory"] = {
        "keys": list(bank.keys),
        "values": torch.stack(list(bank.values)),
        "frame_ids": bank.frame_ids,
        "schedule": range(0, frames.shape[0], cfg.mem_every),  # truth: weights_only
        "capacity": bank.keys.maxlen,
    }
    state["object_area"] = {int(t): float(masks[t].mean()) for t in range(frames.shape[0])}
    path = os.path.join(tmpdir, "memory_snapshot.pth")
    torch.save(state, path)
    return path


def save_whole_model(tmpdir):
    _, trainer, _, _ = run_epochs()
    path = os.path.join(tmpdir, "stm_full.pth")
    torch.save(trainer.model, path)  # truth: weights_only
    return path


FACTORIES = {
    "VOSTrainer": lambda: VOSTrainer(VOSConfig()),
    "SkipCurriculum": lambda: SkipCurriculum([2, 5, 10], [0, 1, 2]),
    "Stage": lambda: Stage.MAIN_VIDEO,
}
