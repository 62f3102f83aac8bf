"""Multi-task training with a task registry, uncertainty weighting and a metrics logger."""
import collections
import datetime
import enum
import statistics
from dataclasses import dataclass, field, asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn


class Task(enum.Enum):
    SEG = "seg"
    DEPTH = "depth"
    NORMALS = "normals"


TASK_REGISTRY = {}

NOT_BUILT = {"Task": "an Enum; its members are built at import"}


def register_task(name, weight):
    TASK_REGISTRY[name] = weight
    return weight


register_task("seg", 1.0)
register_task("depth", 0.5)


class UncertaintyWeighting(nn.Module):
    def __init__(self, n_tasks=2):
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(n_tasks))

    def forward(self, losses):
        total = 0.0
        for i, loss in enumerate(losses):
            total = total + torch.exp(-self.log_vars[i]) * loss + self.log_vars[i]
        return total


class MetricsLogger:
    def __init__(self):
        self.history = []
        self.best = {}
        self.counts = collections.Counter()

    def log(self, step, **metrics):
        self.history.append(dict(step=step, **metrics))
        for k, v in metrics.items():
            self.counts[k] += 1
            if k not in self.best or v < self.best[k]:
                self.best[k] = v

    def frame(self):
        return pd.DataFrame(self.history)

    def summary(self):
        df = self.frame()
        return {c: df[c].mean() for c in df.columns if c != "step"}

    def summary_floats(self):
        df = self.frame()
        return {c: float(df[c].mean()) for c in df.columns if c != "step"}


@dataclass
class MTLConfig:
    tasks: list = field(default_factory=lambda: ["seg", "depth"])
    lr: float = 1e-3
    out_dir: str = "runs/mtl"


class MultiTaskTrainer:
    def __init__(self, cfg=None):
        self.cfg = cfg or MTLConfig()
        self.backbone = nn.Linear(4, 8)
        self.heads = nn.ModuleDict({t: nn.Linear(8, 1) for t in self.cfg.tasks})
        self.weighting = UncertaintyWeighting(len(self.cfg.tasks))
        params = list(self.backbone.parameters()) + list(self.heads.parameters()) + list(self.weighting.parameters())
        self.optimizer = torch.optim.Adam(params, lr=self.cfg.lr)
        self.logger = MetricsLogger()
        self.loss_weights = np.array([TASK_REGISTRY[t] for t in self.cfg.tasks])
        self.step = 0

    def train_step(self):
        x = torch.randn(4, 4)
        feats = self.backbone(x)
        losses = [self.heads[t](feats).pow(2).mean() for t in self.cfg.tasks]
        total = self.weighting(losses)
        self.optimizer.zero_grad()
        total.backward()
        self.optimizer.step()
        self.step += 1
        self.logger.log(self.step, **{t: l.item() for t, l in zip(self.cfg.tasks, losses)})
        return losses

    def state(self):
        return {
            "backbone": self.backbone.state_dict(),
            "heads": self.heads.state_dict(),
            "weighting": self.weighting.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
        }


def save_mtl_clean(tmpdir):
    trainer = MultiTaskTrainer()
    for _ in range(3):
        trainer.train_step()
    ckpt = trainer.state()
    ckpt.update(
        loss_weights=trainer.loss_weights.tolist(),
        log_vars=trainer.weighting.log_vars.detach().clone(),
        summary=trainer.logger.summary_floats(),
        history=trainer.logger.history,
        config=asdict(trainer.cfg),
        saved_at=datetime.datetime.now().isoformat(),
        task_names=[t.value for t in Task],
    )
    path = Path(tmpdir) / "mtl_clean.pt"
    torch.save(ckpt, path)
    return str(path)


def save_mtl_weights(tmpdir):
    trainer = MultiTaskTrainer()
    trainer.train_step()
    ckpt = trainer.state()
    ckpt.update(
        loss_weights=trainer.loss_weights,  # truth: weights_only
        task_weight_sum=trainer.loss_weights.sum(),  # truth: weights_only
        weighting=trainer.weighting.state_dict(),
        precision=torch.exp(-trainer.weighting.log_vars).detach(),
    )
    path = Path(tmpdir) / "mtl_weights.pt"
    torch.save(ckpt, path)
    return str(path)


def save_mtl_logger(tmpdir):
    trainer = MultiTaskTrainer()
    for _ in range(2):
        trainer.train_step()
    summary = trainer.logger.summary()
    ckpt = {**trainer.state()}
    ckpt["logger"] = trainer.logger  # truth: weights_only
    ckpt["summary_seg"] = summary["seg"]  # truth: weights_only
    ckpt["best"] = dict(trainer.logger.best)
    ckpt["counts"] = trainer.logger.counts
    ckpt["counts_plain"] = dict(trainer.logger.counts)
    path = Path(tmpdir) / "mtl_logger.pt"
    torch.save(ckpt, path)
    return str(path)


def save_mtl_tasks(tmpdir):
    cfg = MTLConfig(tasks=["seg", "depth"])
    trainer = MultiTaskTrainer(cfg)
    trainer.train_step()
    meta = {"active": Task.SEG}  # truth: weights_only
    paths = dict(out_dir=Path(cfg.out_dir))  # truth: weights_only
    ckpt = dict(**trainer.state(), **meta, **paths)
    ckpt["config"] = cfg  # truth: weights_only
    ckpt["active_name"] = Task.SEG.name
    ckpt["out_dir_str"] = str(Path(cfg.out_dir))
    path = Path(tmpdir) / "mtl_tasks.pt"
    torch.save(ckpt, path)
    return str(path)


def _loss_stats(trainer, steps):
    per_task = {t: [] for t in trainer.cfg.tasks}
    for _ in range(steps):
        for t, l in zip(trainer.cfg.tasks, trainer.train_step()):
            per_task[t].append(l.item())
    return {t: statistics.mean(v) for t, v in per_task.items()}, per_task


def save_mtl_stats(tmpdir):
    trainer = MultiTaskTrainer()
    means, per_task = _loss_stats(trainer, 3)
    df = trainer.logger.frame()
    ckpt = {
        "state": trainer.state(),
        "means": means,
        "per_task": per_task,
        "seg_std": statistics.stdev(per_task["seg"]),
        "df_records": df.to_dict("records"),
        "depth_max": df["depth"].max(),  # truth: weights_only
        "n_rows": len(df),
        "frame": df,  # truth: weights_only
    }
    path = Path(tmpdir) / "mtl_stats.pt"
    torch.save(ckpt, path)
    return str(path)
