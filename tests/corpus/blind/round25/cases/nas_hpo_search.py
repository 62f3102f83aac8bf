"""NAS / HPO without a tuning library: random search with `Trial` records, an ENAS-style REINFORCE
controller with an EMA baseline, and one successive-halving (Hyperband) bracket on a toy proxy task."""
from __future__ import annotations

import datetime
import math
import os
import random
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from enum import Enum

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F


class Op(Enum):
    LINEAR = "linear"
    RESIDUAL = "residual"
    SKIP = "skip"


class TrialStatus(str, Enum):
    PENDING = "pending"
    COMPLETED = "completed"


@dataclass
class SearchSpace:
    widths: tuple = (8, 16, 32)
    depths: tuple = (1, 2)
    lrs: tuple = (3e-3, 1e-2, 3e-2)
    ops: tuple = tuple(Op)


@dataclass
class Trial:
    trial_id: int = 0
    config: dict = field(default_factory=dict)
    status: TrialStatus = TrialStatus.PENDING
    score: float | None = None
    started: datetime.datetime = field(default_factory=datetime.datetime.now)
    duration_s: float = 0.0


def proxy_task(seed: int = 0, n: int = 96, dim: int = 6):
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1.0).long()
    return x[:64], y[:64], x[64:], y[64:]


class ChildNet(nn.Module):
    def __init__(self, ops=(Op.LINEAR,), width: int = 8, in_dim: int = 6, n_classes: int = 3):
        super().__init__()
        self.ops = list(ops)
        self.stem = nn.Linear(in_dim, width)
        self.cells = nn.ModuleList([nn.Linear(width, width) for _ in self.ops])
        self.head = nn.Linear(width, n_classes)

    def forward(self, x):
        h = F.relu(self.stem(x))
        for op, cell in zip(self.ops, self.cells):
            if op is not Op.SKIP:
                h = h + F.relu(cell(h)) if op is Op.RESIDUAL else F.relu(cell(h))
        return self.head(h)


def train_child(ops, width, lr=1e-2, budget=3, seed=0):
    """Train a child network for `budget` full-batch steps; return (val accuracy, parameter count)."""
    torch.manual_seed(seed)
    xtr, ytr, xva, yva = proxy_task(seed)
    net = ChildNet(ops, width)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(budget):
        opt.zero_grad(); F.cross_entropy(net(xtr), ytr).backward(); opt.step()
    with torch.no_grad():
        acc = (net(xva).argmax(1) == yva).float().mean().item()
    return acc, sum(p.numel() for p in net.parameters())


def train_and_score(config: dict, budget: int, seed: int = 0) -> float:
    ops = [Op(config["op"])] * config["depth"]
    acc, _ = train_child(ops, config["width"], lr=config["lr"], budget=budget, seed=seed)
    return acc


class RandomSearch:
    def __init__(self, space: SearchSpace | None = None, seed: int = 0):
        self.space = space or SearchSpace()
        self.rng = random.Random(seed)
        self.trials, self.best_trial = [], None

    def suggest(self) -> Trial:
        cfg = {"width": self.rng.choice(self.space.widths), "depth": self.rng.choice(self.space.depths),
               "lr": self.rng.choice(self.space.lrs), "op": self.rng.choice(self.space.ops).value}
        trial = Trial(trial_id=len(self.trials), config=cfg)
        self.trials.append(trial)
        return trial

    def report(self, trial: Trial, score: float):
        trial.score = score
        trial.status = TrialStatus.COMPLETED
        if self.best_trial is None or score > self.best_trial.score:
            self.best_trial = trial

    def run(self, n_trials: int, budget: int = 3) -> Trial:
        for _ in range(n_trials):
            trial = self.suggest()
            t0 = time.perf_counter()
            score = train_and_score(trial.config, budget, seed=trial.trial_id)
            trial.duration_s = time.perf_counter() - t0
            self.report(trial, score)
        return self.best_trial

    def leaderboard(self) -> pd.DataFrame:
        rows = [{"trial": t.trial_id, **t.config, "score": t.score, "status": t.status.value} for t in self.trials]
        return pd.DataFrame(rows).sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def trial_record(t: Trial) -> dict:
    return {**asdict(t), "status": t.status.value, "started": t.started.isoformat()}


class ArchController(nn.Module):
    def __init__(self, n_layers: int = 2, ops=tuple(Op), widths=(8, 16), baseline_decay: float = 0.9):
        super().__init__()
        self.ops, self.widths = list(ops), list(widths)
        self.op_logits = nn.Parameter(torch.zeros(n_layers, len(self.ops)))
        self.width_logits = nn.Parameter(torch.zeros(len(self.widths)))
        self.baseline, self.baseline_decay, self.last_entropy = None, baseline_decay, 0.0

    def sample(self):
        op_dist = torch.distributions.Categorical(logits=self.op_logits)
        w_dist = torch.distributions.Categorical(logits=self.width_logits)
        op_idx, w_idx = op_dist.sample(), w_dist.sample()
        log_prob = op_dist.log_prob(op_idx).sum() + w_dist.log_prob(w_idx)
        self.last_entropy = (op_dist.entropy().sum() + w_dist.entropy()).item()
        return [self.ops[i] for i in op_idx.tolist()], self.widths[w_idx.item()], log_prob

    def reinforce_loss(self, log_prob, reward):
        d = self.baseline_decay
        self.baseline = reward if self.baseline is None else d * self.baseline + (1 - d) * reward
        return -log_prob * (reward - self.baseline)


class ControllerTrainer:
    def __init__(self, controller: ArchController | None = None, lr: float = 0.05, penalty: float = 0.02, seed: int = 0):
        self.controller = controller or ArchController()
        self.opt = torch.optim.Adam(self.controller.parameters(), lr=lr)
        self.penalty, self.seed = penalty, seed
        self.rewards, self.sampled = [], Counter()
        self.best_arch, self.best_width, self.best_reward = None, None, -math.inf

    def step(self, n_samples: int = 2):
        for k in range(n_samples):
            arch, width, log_prob = self.controller.sample()
            acc, n_params = train_child(arch, width, budget=2, seed=self.seed + k)
            reward = acc - self.penalty * np.log(n_params)
            loss = self.controller.reinforce_loss(log_prob, reward)
            self.opt.zero_grad(); loss.backward(); self.opt.step()
            self.rewards.append(float(reward))
            self.sampled[tuple(op.value for op in arch)] += 1
            if reward > self.best_reward:
                self.best_arch, self.best_width, self.best_reward = arch, width, reward


class SuccessiveHalving:
    def __init__(self, space: SearchSpace | None = None, n_configs: int = 4, min_budget: int = 1, eta: int = 2, seed: int = 0):
        self.space = space or SearchSpace()
        self.rng = np.random.default_rng(seed)
        self.eta, self.min_budget = eta, min_budget
        self.configs = [self._sample() for _ in range(n_configs)]
        self.rungs, self.promoted = defaultdict(list), set()
        self.elapsed, self.winner = datetime.timedelta(0), None

    def _sample(self):
        return {"width": int(self.rng.choice(self.space.widths)), "depth": int(self.rng.choice(self.space.depths)),
                "lr": float(self.rng.choice(self.space.lrs)), "op": Op.RESIDUAL.value}

    def budgets(self):
        n, b, out = len(self.configs), self.min_budget, []
        while n >= 1:
            out.append(b)
            n //= self.eta
            b *= self.eta
        return out

    def run(self):
        t0 = datetime.datetime.now()
        alive = list(range(len(self.configs)))
        for rung, budget in enumerate(self.budgets()):
            scores = [train_and_score(self.configs[i], budget, seed=i) for i in alive]
            self.rungs[rung] = list(zip(alive, scores))
            keep = np.argsort(scores, kind="stable")[::-1][: max(1, len(alive) // self.eta)]
            alive = [alive[j] for j in keep]
            self.promoted.update(alive)
        self.elapsed = datetime.datetime.now() - t0
        self.winner = alive[0]
        return self.configs[self.winner]


FACTORIES = {"Op": lambda: Op.LINEAR, "TrialStatus": lambda: TrialStatus.PENDING}


def save_random_search(tmpdir):
    search = RandomSearch(seed=3)
    best = search.run(4, budget=2)
    board = search.leaderboard()
    ckpt = {
        "trials": [asdict(t) for t in search.trials],  # truth: weights_only
        "records": [trial_record(t) for t in search.trials],
        "best_config": best.config,
        "best_score": best.score,
        "best_status": best.status,  # truth: weights_only
        "best_status_name": best.status.value,
        "rng_state": search.rng.getstate(), "n_trials": len(search.trials),
        "leaderboard": board.to_dict("records"),
        "score_quantiles": np.quantile(board["score"], [0.25, 0.5, 0.75]),  # truth: weights_only
    }
    path = os.path.join(tmpdir, "random_search.pt")
    torch.save(ckpt, path)
    return path


def save_enas_controller(tmpdir):
    torch.manual_seed(0)
    trainer = ControllerTrainer(seed=0)
    for _ in range(2):
        trainer.step()
    ctrl = trainer.controller
    ckpt = {
        "controller": ctrl.state_dict(), "controller_opt": trainer.opt.state_dict(),
        "baseline": ctrl.baseline,  # truth: weights_only
        "entropy": ctrl.last_entropy, "reward_history": trainer.rewards,
        "best": {
            "arch": [op.value for op in trainer.best_arch],
            "width": trainer.best_width,
            "reward": trainer.best_reward,  # truth: weights_only
        },
        "space": {"widths": ctrl.widths, "ops": ctrl.ops},  # truth: weights_only
        "arch_counts": trainer.sampled,
        "most_sampled": trainer.sampled.most_common(1),
        "width_probs": F.softmax(ctrl.width_logits, -1).detach(), "penalty": trainer.penalty,
        "final_policy": torch.distributions.Categorical(logits=ctrl.op_logits.detach()),  # truth: weights_only
    }
    path = os.path.join(tmpdir, "enas_controller.pt")
    torch.save(ckpt, path)
    return path


def save_successive_halving(tmpdir):
    sh = SuccessiveHalving(n_configs=4, seed=5)
    best_cfg = sh.run()
    path = os.path.join(tmpdir, "bracket.pt")
    torch.save(
        dict(
            rungs=sh.rungs,  # truth: weights_only
            rung_table={r: entries for r, entries in sh.rungs.items()}, budgets=sh.budgets(),
            promoted=sh.promoted, winner=sh.winner, best_config=best_cfg,
            elapsed=sh.elapsed,  # truth: weights_only
            elapsed_s=sh.elapsed.total_seconds(), rng=sh.rng.bit_generator.state,
        ),
        path,
    )
    return path


def save_search_summary(tmpdir):
    search = RandomSearch(seed=11)
    search.run(5, budget=2)
    board = search.leaderboard()
    summary = {"best_row": board.iloc[0].to_dict()}
    summary["mean_by_width"] = board.groupby("width")["score"].mean().to_dict()
    summary["score_std"] = float(board["score"].std())
    summary["completed_frac"] = (board["status"] == TrialStatus.COMPLETED.value).mean()  # truth: weights_only
    summary["n_completed"] = int((board["status"] == TrialStatus.COMPLETED).sum())
    summary["top3"] = board.head(3)  # truth: weights_only
    summary["top3_records"] = board.head(3).to_dict("records")
    summary["best_lr"] = board["lr"].iloc[0].item()
    summary["best_width"] = int(board["width"].iloc[0])
    summary["best_pos"] = int(board["score"].argmax())
    summary["best_trial_id"] = board.set_index("trial")["score"].idxmax()  # truth: weights_only
    path = os.path.join(tmpdir, "search_summary.pt")
    torch.save(summary, path)
    return path


def save_controller_weights(tmpdir):
    trainer = ControllerTrainer(seed=1)
    trainer.step(n_samples=1)
    path = os.path.join(tmpdir, "controller_weights.pt")
    torch.save({"controller": trainer.controller.state_dict(), "baseline": float(trainer.controller.baseline),
                "best_arch": [op.name for op in trainer.best_arch], "reward": trainer.rewards[-1]}, path)
    return path
