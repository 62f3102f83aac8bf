"""Hand-rolled hyperparameter search (Optuna-style trials without optuna): each trial trains a tiny
MLP, the study keeps its trials, and checkpoints record the best trial and the search state."""
import argparse
import dataclasses
import enum
import math
import os
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn


class TrialState(enum.Enum):
    RUNNING = "running"
    COMPLETE = "complete"
    PRUNED = "pruned"


@dataclass
class Trial:
    number: int
    params: dict
    value: float = math.inf
    state: TrialState = TrialState.RUNNING
    intermediate: dict = field(default_factory=dict)


def suggest_params(rng):
    return {
        "lr": float(10 ** rng.uniform(-4, -2)),
        "hidden": int(rng.choice([8, 16, 32])),
        "dropout": rng.choice([0.0, 0.1, 0.2]),
    }


def run_trial(number, params, seed=0):
    torch.manual_seed(seed + number)
    x = torch.randn(16, 4)
    y = torch.randn(16, 1)
    model = nn.Sequential(nn.Linear(4, params["hidden"]), nn.ReLU(), nn.Linear(params["hidden"], 1))
    opt = torch.optim.SGD(model.parameters(), lr=params["lr"])
    trial = Trial(number, params)
    losses = []
    for step in range(3):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        trial.intermediate[step] = losses[-1]
    trial.value = min(losses)
    trial.state = TrialState.COMPLETE
    return trial, model


def make_parser():
    p = argparse.ArgumentParser()
    p.add_argument("--n-trials", type=int, default=3)
    p.add_argument("--study-dir", default="studies")
    p.add_argument("--seed", type=int, default=0)
    return p


def run_study(n_trials=3, seed=0):
    rng = np.random.default_rng(seed)
    trials, models = [], []
    for i in range(n_trials):
        trial, model = run_trial(i, suggest_params(rng), seed)
        trials.append(trial)
        models.append(model)
    return trials, models


def save_best_trial(tmpdir):
    args = make_parser().parse_args([])
    trials, models = run_study(args.n_trials, args.seed)
    best_idx = min(range(len(trials)), key=lambda i: trials[i].value)
    best = trials[best_idx]
    ckpt = {
        "model": models[best_idx].state_dict(),
        "best_value": best.value,
        "best_params": {k: float(v) for k, v in best.params.items()},
        "best_dropout": best.params["dropout"],  # truth: weights_only
        "best_trial": best,  # truth: weights_only
        "args": vars(args),
        "output_dir": Path(args.study_dir) / f"trial_{best.number}",  # truth: weights_only
    }
    path = os.path.join(tmpdir, "best_trial.pt")
    torch.save(ckpt, path)
    return path


def save_study_state(tmpdir):
    trials, _ = run_study(3, seed=1)
    values = [t.value for t in trials]
    state = {}
    state["n_trials"] = len(trials)
    state["values"] = values
    state["mean_value"] = statistics.mean(values)
    state["stdev_value"] = statistics.pstdev(values)
    state["states"] = [t.state.value for t in trials]
    state["trials"] = [dataclasses.asdict(t) for t in trials]  # truth: weights_only
    state["python_rng"] = random.getstate()
    state["numpy_rng"] = np.random.get_state()  # truth: weights_only
    state["finished_at"] = time.time()
    state["cli"] = make_parser().parse_args(["--n-trials", "3"])  # truth: weights_only
    path = os.path.join(tmpdir, "study.pt")
    torch.save(state, path)
    return path


def trials_dataframe(trials):
    rows = []
    for t in trials:
        row = {"number": t.number, "value": t.value}
        row.update({f"params_{k}": v for k, v in t.params.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def save_sweep_summary(tmpdir):
    trials, models = run_study(4, seed=2)
    df = trials_dataframe(trials)
    best_row = df.loc[df["value"].idxmin()]
    summary = dict(
        table=df.to_dict("list"),
        best_number=int(best_row["number"]),
        best_lr=best_row["params_lr"],  # truth: weights_only
        lr_quantiles=df["params_lr"].quantile([0.25, 0.75]).tolist(),
        median_value=df["value"].median(),  # truth: weights_only
        n_complete=int((df["value"] < math.inf).sum()),
    )
    path = os.path.join(tmpdir, "sweep_summary.pt")
    torch.save(summary, path)
    return path


class MedianPruner:
    def __init__(self, warmup_steps=1):
        self.warmup_steps = warmup_steps
        self.history = {}

    def report(self, step, value):
        self.history.setdefault(step, []).append(value)

    def should_prune(self, step, value):
        if step < self.warmup_steps:
            return False
        return value > np.median(self.history[step])


def save_pruner_state(tmpdir):
    pruner = MedianPruner(warmup_steps=1)
    trials, _ = run_study(3, seed=3)
    for t in trials:
        for step, v in t.intermediate.items():
            pruner.report(step, v)
    medians = [np.median(vs) for _, vs in sorted(pruner.history.items())]
    ckpt = {
        "warmup_steps": pruner.warmup_steps,
        "history": {str(k): list(v) for k, v in pruner.history.items()},
        "step_medians": medians,  # truth: weights_only
        "pruned": [bool(pruner.should_prune(1, t.intermediate[1])) for t in trials],
    }
    path = os.path.join(tmpdir, "pruner.pt")
    torch.save(ckpt, path)
    return path


def save_trial_weights(tmpdir):
    trial, model = run_trial(0, {"lr": 1e-3, "hidden": 8, "dropout": 0.1})
    ckpt = {
        "model": model.state_dict(),
        "trial_number": trial.number,
        "params": dict(trial.params),
        "value": float(trial.value),
        "state": trial.state.name,
        "intermediate": {int(k): v for k, v in trial.intermediate.items()},
    }
    path = os.path.join(tmpdir, f"trial_{trial.number}.pt")
    torch.save(ckpt, path)
    return path


FACTORIES = {"Trial": lambda: Trial(0, {"lr": 1e-3, "hidden": 8})}
NOT_BUILT = {"TrialState": "an Enum; its members are built with the class"}
