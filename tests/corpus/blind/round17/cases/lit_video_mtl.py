"""Lightning modules for video and multi-task learning, built by factories from configs."""
import argparse
import enum
from dataclasses import dataclass, field, asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import lightning.pytorch as pl
from omegaconf import OmegaConf


NOT_BUILT = {"Backbone": "an Enum; its members are built at import"}


class Backbone(enum.Enum):
    R3D = "r3d"
    X3D = "x3d"


@dataclass
class VideoConfig:
    num_classes: int = 5
    num_frames: int = 8
    lr: float = 1e-3
    jitter: int = 2


class FocalLoss(nn.Module):
    def __init__(self, gamma=2.0):
        super().__init__()
        self.gamma = gamma

    def forward(self, logits, target):
        ce = nn.functional.cross_entropy(logits, target, reduction="none")
        return ((1 - torch.exp(-ce)) ** self.gamma * ce).mean()


def _head(num_classes):
    return nn.Linear(16, num_classes)


class VideoClassifier(pl.LightningModule):
    def __init__(
        self,
        num_classes: int = 5,
        num_frames: int = 8,
        lr: float = 1e-3,
        class_weights=None,  # truth: hparam
        backbone: str = "r3d",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4, 16), nn.ReLU(), _head(num_classes))


class VideoClassifierClean(pl.LightningModule):
    def __init__(
        self,
        num_classes: int = 5,
        num_frames: int = 8,
        lr: float = 1e-3,
        class_weights=None,
        backbone: str = "r3d",
        topk=(1, 5),
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(12, num_classes)


class VideoWithLoss(pl.LightningModule):
    def __init__(
        self,
        loss_fn: nn.Module,  # truth: hparam
        backbone: Backbone = Backbone.R3D,  # truth: hparam
        clip_sampler_seed: int = 0,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.loss_fn = loss_fn


class VideoIgnoringLoss(pl.LightningModule):
    def __init__(
        self,
        loss_fn: nn.Module,
        backbone: str = "r3d",
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["loss_fn"])
        self.loss_fn = loss_fn


class VideoFromDataclass(pl.LightningModule):
    def __init__(
        self,
        cfg: VideoConfig,  # truth: hparam
        log_dir: Path,  # truth: hparam
        frame_mean=None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(12, cfg.num_classes)


class VideoFromArgs(pl.LightningModule):
    def __init__(
        self,
        args,  # truth: hparam
        temporal_jitter: int = 2,
    ):
        super().__init__()
        self.save_hyperparameters()


class VideoFromArgsDict(pl.LightningModule):
    def __init__(
        self,
        args: dict,
        temporal_jitter: int = 2,
        out_dir: str = "runs",
    ):
        super().__init__()
        self.save_hyperparameters()


class MultiTaskModule(pl.LightningModule):
    def __init__(
        self,
        tasks=("seg", "depth"),
        loss_weights=None,  # truth: hparam
        uncertainty: bool = True,
        weight_sum=1.0,  # truth: hparam
        task_heads=None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["task_heads"])
        self.heads = task_heads or nn.ModuleDict({t: nn.Linear(4, 1) for t in tasks})


class MultiTaskClean(pl.LightningModule):
    def __init__(
        self,
        tasks=("seg", "depth"),
        loss_weights=None,
        uncertainty: bool = True,
        head_dims=None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.heads = nn.ModuleDict({t: nn.Linear(4, 1) for t in tasks})


class MultiTaskOmega(pl.LightningModule):
    def __init__(
        self,
        cfg,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.backbone = nn.Linear(4, cfg.model.hidden)


class MultiTaskOmegaResolved(pl.LightningModule):
    def __init__(
        self,
        cfg: dict,
        scheduler: str = "cosine",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = nn.Linear(4, cfg["model"]["hidden"])


class TaskWeightedModule(pl.LightningModule):
    def __init__(
        self,
        task_metric_fns=None,  # truth: hparam
        task_weights=None,
        grad_norm_alpha: float = 1.5,
    ):
        super().__init__()
        self.save_hyperparameters()


class ClipSamplerModule(pl.LightningModule):
    def __init__(
        self,
        rng=None,  # truth: hparam
        rng_state=None,
        num_clips: int = 2,
    ):
        super().__init__()
        self.save_hyperparameters()


class DistillModule(pl.LightningModule):
    def __init__(
        self,
        teacher: nn.Module,
        temperature=4.0,  # truth: hparam
        alpha: float = 0.5,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["teacher"])
        self.teacher = teacher


class PrunedModule(pl.LightningModule):
    def __init__(
        self,
        sparsity: float = 0.5,
        masks=None,  # truth: hparam
        mask_shapes=None,
    ):
        super().__init__()
        self.save_hyperparameters("sparsity", "masks", "mask_shapes")


def _video_cfg():
    return OmegaConf.create({"model": {"hidden": 8, "num_classes": 5}, "loss_weights": {"seg": 1.0, "depth": 0.5}})


def _args():
    p = argparse.ArgumentParser()
    p.add_argument("--num-frames", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    return p.parse_args([])


def _make_multitask():
    cfg = _video_cfg()
    weights = np.array([cfg.loss_weights[t] for t in ("seg", "depth")])
    return MultiTaskModule(loss_weights=weights, weight_sum=weights.sum(),
                           task_heads=nn.ModuleDict({"seg": nn.Linear(4, 1), "depth": nn.Linear(4, 1)}))


def _make_multitask_clean():
    cfg = _video_cfg()
    weights = [float(cfg.loss_weights[t]) for t in ("seg", "depth")]
    return MultiTaskClean(loss_weights=weights, head_dims={"seg": 1, "depth": 1})


def _make_pruned():
    masks = {"fc": np.ones((2, 2), dtype=bool)}
    return PrunedModule(sparsity=0.25, masks=masks, mask_shapes={k: list(v.shape) for k, v in masks.items()})


def _make_clip_sampler():
    rng = np.random.default_rng(0)
    return ClipSamplerModule(rng=rng, rng_state=rng.bit_generator.state)


FACTORIES = {
    "VideoClassifier": lambda: VideoClassifier(class_weights=np.ones(5, dtype=np.float32) / 5),
    "VideoClassifierClean": lambda: VideoClassifierClean(class_weights=torch.ones(5) / 5, backbone=Backbone.X3D.value),
    "VideoWithLoss": lambda: VideoWithLoss(loss_fn=FocalLoss(2.0)),
    "VideoIgnoringLoss": lambda: VideoIgnoringLoss(loss_fn=FocalLoss(1.0)),
    "VideoFromDataclass": lambda: VideoFromDataclass(cfg=VideoConfig(), log_dir=Path("logs/video"),
                                                      frame_mean=[0.45, 0.45, 0.45]),
    "VideoFromArgs": lambda: VideoFromArgs(args=_args()),
    "VideoFromArgsDict": lambda: VideoFromArgsDict(args=vars(_args()), out_dir=str(Path("runs") / "v1")),
    "MultiTaskModule": _make_multitask,
    "MultiTaskClean": _make_multitask_clean,
    "MultiTaskOmega": lambda: MultiTaskOmega(_video_cfg()),
    "MultiTaskOmegaResolved": lambda: MultiTaskOmegaResolved(OmegaConf.to_container(_video_cfg(), resolve=True)),
    "TaskWeightedModule": lambda: TaskWeightedModule(task_metric_fns={"seg": lambda p, t: (p == t).float().mean()},
                                                     task_weights={"seg": 1.0}),
    "ClipSamplerModule": _make_clip_sampler,
    "DistillModule": lambda: DistillModule(teacher=nn.Linear(4, 3), temperature=np.linspace(4.0, 1.0, 5)[0]),
    "PrunedModule": _make_pruned,
}
