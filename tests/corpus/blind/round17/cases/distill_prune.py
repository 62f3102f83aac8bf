"""Knowledge distillation with cached teacher outputs, temperature schedule and magnitude pruning."""
import copy
import math
from collections import OrderedDict, namedtuple
from dataclasses import dataclass, field, asdict
from typing import Dict, List

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

PruneStat = namedtuple("PruneStat", ["layer", "sparsity"])


@dataclass
class PruningPlan:
    target_sparsity: float = 0.5
    steps: int = 3
    layers: List[str] = field(default_factory=lambda: ["0.weight", "2.weight"])
    per_layer: Dict[str, float] = field(default_factory=dict)


class TemperatureSchedule:
    def __init__(self, t0=4.0, t1=1.0, total=10):
        self.t0, self.t1, self.total = t0, t1, total
        self.values = np.linspace(t0, t1, total)

    def __call__(self, step):
        return self.values[min(step, self.total - 1)]

    def as_float(self, step):
        return float(self.values[min(step, self.total - 1)])


def make_student():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def kd_loss(s_logits, t_logits, temperature):
    return F.kl_div(F.log_softmax(s_logits / temperature, -1), F.softmax(t_logits / temperature, -1),
                    reduction="batchmean") * temperature ** 2


def magnitude_masks(model, sparsity):
    masks = {}
    for name, p in model.named_parameters():
        if p.dim() < 2:
            continue
        w = p.detach().abs().numpy()
        thr = np.quantile(w, sparsity)
        masks[name] = w > thr
    return masks


class Distiller:
    def __init__(self):
        torch.manual_seed(0)
        self.teacher = make_student()
        self.student = make_student()
        self.opt = torch.optim.Adam(self.student.parameters(), lr=1e-3)
        self.schedule = TemperatureSchedule()
        self.cache = {}
        self.step = 0
        self.kd_losses = []

    def cache_teacher(self, n=4):
        x = torch.randn(n, 4)
        with torch.no_grad():
            out = self.teacher(x)
        self.cache["inputs"] = x
        self.cache["logits"] = out
        self.cache["probs_np"] = F.softmax(out, -1).numpy()
        return out

    def distill_step(self):
        if not self.cache:
            self.cache_teacher()
        temp = self.schedule(self.step)
        loss = kd_loss(self.student(self.cache["inputs"]), self.cache["logits"], float(temp))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.step += 1
        self.kd_losses.append(loss.item())
        self.temperature = temp
        return loss


def save_distill_clean(tmpdir):
    d = Distiller()
    for _ in range(2):
        d.distill_step()
    ckpt = OrderedDict()
    ckpt["student"] = d.student.state_dict()
    ckpt["optimizer"] = d.opt.state_dict()
    ckpt["teacher_logits"] = d.cache["logits"]
    ckpt["teacher_probs"] = torch.from_numpy(d.cache["probs_np"])
    ckpt["temperature"] = d.schedule.as_float(d.step)
    ckpt["kd_losses"] = d.kd_losses
    ckpt["best_kd"] = min(d.kd_losses)
    ckpt["schedule"] = {"t0": d.schedule.t0, "t1": d.schedule.t1, "total": d.schedule.total}
    path = f"{tmpdir}/distill_clean.pt"
    torch.save(ckpt, path)
    return path


def save_distill_cache(tmpdir):
    d = Distiller()
    d.distill_step()
    ckpt = {
        "student": d.student.state_dict(),
        "cache": {
            "logits": d.cache["logits"],
            "probs_np": d.cache["probs_np"],  # truth: weights_only
        },
        "temperature": d.temperature,  # truth: weights_only
        "temperatures": d.schedule.values.tolist(),
        "schedule": d.schedule,  # truth: weights_only
    }
    path = f"{tmpdir}/distill_cache.pt"
    torch.save(ckpt, path)
    return path


def save_teacher_whole(tmpdir):
    d = Distiller()
    teacher = copy.deepcopy(d.teacher).eval()
    path = f"{tmpdir}/teacher.pt"
    torch.save(teacher, path)  # truth: weights_only
    return path


def save_pruning_masks(tmpdir):
    model = make_student()
    plan = PruningPlan()
    masks = {}
    stats = []
    for step in range(plan.steps):
        sparsity = plan.target_sparsity * (step + 1) / plan.steps
        masks = magnitude_masks(model, sparsity)
        stats = [PruneStat(n, float(1 - m.mean())) for n, m in masks.items()]
    ckpt = {"model": model.state_dict()}
    ckpt["mask_first"] = masks["0.weight"]  # truth: weights_only
    ckpt["mask_first_t"] = torch.from_numpy(masks["0.weight"])
    ckpt["mask_last_t"] = torch.as_tensor(masks["2.weight"], dtype=torch.bool)
    ckpt["stats"] = stats  # truth: weights_only
    ckpt["stats_plain"] = [tuple(s) for s in stats]
    ckpt["sparsity_np"] = 1 - masks["2.weight"].mean()  # truth: weights_only
    path = f"{tmpdir}/masks.pt"
    torch.save(ckpt, path)
    return path


def save_pruning_plan(tmpdir):
    plan = PruningPlan(target_sparsity=0.7)
    model = make_student()
    masks = magnitude_masks(model, plan.target_sparsity)
    plan.per_layer = {n: round(float(1 - m.mean()), 4) for n, m in masks.items()}
    achieved = sum(plan.per_layer.values()) / len(plan.per_layer)
    ckpt = {
        "model": model.state_dict(),
        "plan": asdict(plan),
        "achieved": achieved,
        "ceil_steps": math.ceil(plan.steps * achieved),
        "nnz": {n: int(m.sum()) for n, m in masks.items()},
        "masks": {n: torch.from_numpy(m) for n, m in masks.items()},
    }
    path = f"{tmpdir}/plan.pt"
    torch.save(ckpt, path)
    return path


def save_pruning_plan_obj(tmpdir):
    plan = PruningPlan(steps=2)
    model = make_student()
    masks = magnitude_masks(model, 0.3)
    if plan.steps > 1:
        extra = {"plan": plan}  # truth: weights_only
    else:
        extra = {"plan_cfg": asdict(plan)}
    ckpt = dict(model=model.state_dict(), **extra)
    ckpt["total_nnz"] = sum(m.sum() for m in masks.values())  # truth: weights_only
    ckpt["density"] = float(np.mean([m.mean() for m in masks.values()]))
    path = f"{tmpdir}/plan_obj.pt"
    torch.save(ckpt, path)
    return path
