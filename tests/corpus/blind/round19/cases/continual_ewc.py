"""Continual learning on split tasks: EWC (Fisher penalty) and experience replay with a reservoir memory."""
import collections
import os
import random
import statistics
from dataclasses import dataclass, asdict

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix
from torch import nn
from torch.nn import functional as F

N_TASKS, CLASSES_PER_TASK, IN_DIM = 3, 2, 6

TaskStats = collections.namedtuple("TaskStats", ["task_id", "acc", "forgetting"])


@dataclass
class TaskInfo:
    task_id: int
    classes: tuple
    n_train: int = 20


def split_tasks(seed=0):
    g = torch.Generator().manual_seed(seed)
    tasks = []
    for t in range(N_TASKS):
        x = torch.randn(20, IN_DIM, generator=g)
        y = torch.randint(0, CLASSES_PER_TASK, (20,), generator=g) + t * CLASSES_PER_TASK
        tasks.append((x, y))
    return tasks


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(IN_DIM, 16), nn.ReLU(), nn.Linear(16, N_TASKS * CLASSES_PER_TASK))

    def forward(self, x):
        return self.fc(x)


def estimate_fisher(model, x, y):
    fisher = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(len(x)):
        model.zero_grad()
        F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        for n, p in model.named_parameters():
            fisher[n] += p.grad.detach() ** 2 / len(x)
    return fisher


class EWC:
    def __init__(self, model, ewc_lambda=100.0, gamma=np.float32(0.9)):
        self.model = model
        self.ewc_lambda = ewc_lambda
        self.gamma = gamma
        self.fisher = {}
        self.optpar = {}

    def consolidate(self, x, y):
        new = estimate_fisher(self.model, x, y)
        for n, f in new.items():
            self.fisher[n] = self.gamma * self.fisher[n] + f if n in self.fisher else f
            self.optpar[n] = dict(self.model.named_parameters())[n].detach().clone()

    def penalty(self):
        loss = 0.0
        for n, p in self.model.named_parameters():
            if n in self.fisher:
                loss = loss + (self.fisher[n] * (p - self.optpar[n]) ** 2).sum()
        return self.ewc_lambda / 2 * loss


class ReservoirMemory:
    def __init__(self, capacity=16, seed=0):
        self.capacity = capacity
        self.xs, self.ys = [], []
        self.n_seen = 0
        self.rng = random.Random(seed)

    def add(self, x, y):
        for xi, yi in zip(x, y):
            self.n_seen += 1
            if len(self.xs) < self.capacity:
                self.xs.append(xi)
                self.ys.append(int(yi))
            else:
                j = self.rng.randint(0, self.n_seen - 1)
                if j < self.capacity:
                    self.xs[j], self.ys[j] = xi, int(yi)

    def state(self):
        return {"x": torch.stack(self.xs), "y": torch.tensor(self.ys), "n_seen": self.n_seen}


class ContinualTrainer:
    def __init__(self, use_ewc=True, memory_size=16):
        self.model = Net()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1)
        self.ewc = EWC(self.model) if use_ewc else None
        self.memory = ReservoirMemory(memory_size)
        self.tasks = split_tasks()
        self.acc_matrix = np.zeros((N_TASKS, N_TASKS))
        self.exemplars = collections.defaultdict(list)
        self.class_counts = collections.Counter()
        self.seen_classes = set()
        self.current_task = 0

    def learn_task(self, t, steps=2):
        x, y = self.tasks[t]
        for _ in range(steps):
            loss = F.cross_entropy(self.model(x), y)
            if self.ewc is not None:
                loss = loss + self.ewc.penalty()
            if self.memory.xs:
                mx, my = torch.stack(self.memory.xs), torch.tensor(self.memory.ys)
                loss = loss + F.cross_entropy(self.model(mx), my)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        if self.ewc is not None:
            self.ewc.consolidate(x, y)
        self.memory.add(x, y)
        for c in y.tolist():
            self.class_counts[c] += 1
            self.seen_classes.add(c)
            if len(self.exemplars[c]) < 2:
                self.exemplars[c].append(x[y == c][0])
        self.current_task = t + 1

    def evaluate(self, upto):
        with torch.no_grad():
            for j in range(upto + 1):
                x, y = self.tasks[j]
                pred = self.model(x).argmax(1)
                self.acc_matrix[upto, j] = accuracy_score(y.numpy(), pred.numpy())
        return self.acc_matrix[upto, : upto + 1]


def run(trainer, n=2):
    for t in range(n):
        trainer.learn_task(t)
        trainer.evaluate(t)
    return trainer


def forgetting(acc_matrix, upto):
    return [acc_matrix[:upto, j].max() - acc_matrix[upto, j] for j in range(upto)]


def save_ewc_state(tmpdir):
    trainer = run(ContinualTrainer())
    ewc = trainer.ewc
    ckpt = {
        "model": trainer.model.state_dict(),
        "fisher": ewc.fisher,
        "optpar": ewc.optpar,
        "ewc_lambda": ewc.ewc_lambda,
        "online_gamma": ewc.gamma,  # truth: weights_only
        "fisher_trace": sum(f.sum() for f in ewc.fisher.values()),
    }
    ckpt["fisher_mean"] = np.mean([f.mean().item() for f in ewc.fisher.values()])  # truth: weights_only
    ckpt["fisher_max"] = max(f.max().item() for f in ewc.fisher.values())
    path = os.path.join(tmpdir, "ewc.pt")
    torch.save(ckpt, path)
    return path


def save_replay_memory(tmpdir):
    trainer = run(ContinualTrainer(use_ewc=False))
    path = os.path.join(tmpdir, "er.pt")
    ckpt = {"model": trainer.model.state_dict(), "opt": trainer.opt.state_dict()}
    ckpt["memory"] = trainer.memory.state()
    ckpt["memory"]["rng"] = trainer.memory.rng.getstate()
    ckpt["class_counts"] = trainer.class_counts
    ckpt["seen_classes"] = trainer.seen_classes
    ckpt["frozen_classes"] = frozenset(trainer.seen_classes)  # truth: weights_only
    ckpt["exemplars"] = trainer.exemplars  # truth: weights_only
    ckpt["exemplars_plain"] = {c: torch.stack(v) for c, v in trainer.exemplars.items()}
    torch.save(ckpt, path)
    return path


def save_task_metrics(tmpdir):
    trainer = run(ContinualTrainer(), n=3)
    upto = trainer.current_task - 1
    fgt = forgetting(trainer.acc_matrix, upto)
    x, y = trainer.tasks[upto]
    with torch.no_grad():
        pred = trainer.model(x).argmax(1)
    metrics = dict(
        acc_matrix=trainer.acc_matrix,  # truth: weights_only
        acc_matrix_list=trainer.acc_matrix.tolist(),
        avg_acc=statistics.fmean(trainer.acc_matrix[upto]),
        forgetting=fgt,  # truth: weights_only
        forgetting_py=[float(f) for f in fgt],
        confusion=confusion_matrix(y.numpy(), pred.numpy()),  # truth: weights_only
        last_acc=accuracy_score(y.numpy(), pred.numpy()),
    )
    path = os.path.join(tmpdir, "metrics.pt")
    torch.save({"model": trainer.model.state_dict(), "metrics": metrics}, path)
    return path


def save_task_schedule(tmpdir):
    trainer = run(ContinualTrainer(), n=1)
    infos = [TaskInfo(t, tuple(range(t * CLASSES_PER_TASK, (t + 1) * CLASSES_PER_TASK))) for t in range(N_TASKS)]
    ckpt = {"model": trainer.model.state_dict()}
    ckpt["current"] = infos[trainer.current_task]  # truth: weights_only
    ckpt["tasks"] = [asdict(i) for i in infos]
    ckpt["class_order"] = range(N_TASKS * CLASSES_PER_TASK)  # truth: weights_only
    ckpt["head_slice"] = [0, trainer.current_task * CLASSES_PER_TASK]
    ckpt["last_stats"] = TaskStats(0, 0.5, 0.0)  # truth: weights_only
    ckpt["last_stats_dict"] = TaskStats(0, 0.5, 0.0)._asdict()
    path = os.path.join(tmpdir, "schedule.pt")
    torch.save(ckpt, path)
    return path


def save_continual_clean(tmpdir):
    trainer = run(ContinualTrainer(), n=2)
    upto = trainer.current_task - 1
    bwt = statistics.fmean(float(trainer.acc_matrix[upto, j] - trainer.acc_matrix[j, j]) for j in range(upto))
    path = os.path.join(tmpdir, "cl_clean.pt")
    torch.save({
        "model": trainer.model.state_dict(),
        "fisher": {k: v.clone() for k, v in trainer.ewc.fisher.items()},
        "acc": torch.from_numpy(trainer.acc_matrix),
        "bwt": bwt,
        "seen": sorted(trainer.seen_classes),
        "counts": dict(trainer.class_counts),
        "task": trainer.current_task,
    }, path)
    return path


FACTORIES = {
    "TaskInfo": lambda: TaskInfo(0, (0, 1)),
    "EWC": lambda: EWC(Net()),
}
