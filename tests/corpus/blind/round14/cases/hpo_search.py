"""Random search over a small training recipe: trial sampling, search history, best-config checkpoints."""
import os
import random
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import lightning as L
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SEARCH_SPACE = {
    "lr": (1e-4, 1e-1),
    "hidden": [8, 16, 32],
    "dropout": (0.0, 0.5),
    "optimizer": ["adam", "sgd"],
}


@dataclass
class BestConfig:
    trial: int = -1
    lr: float = 1e-3
    hidden: int = 16
    dropout: float = 0.1
    optimizer: str = "adam"
    score: float = float("-inf")


def sample_params(rng):
    lo, hi = SEARCH_SPACE["lr"]
    return {
        "lr": float(np.exp(rng.uniform(np.log(lo), np.log(hi)))),
        "hidden": rng.choice(SEARCH_SPACE["hidden"]),
        "dropout": rng.uniform(*SEARCH_SPACE["dropout"]),
        "optimizer": random.choice(SEARCH_SPACE["optimizer"]),
    }


class Regressor(nn.Module):
    def __init__(self, d_in=4, hidden=16, dropout=0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


def objective(params, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 4, generator=g)
    y = x.sum(1)
    model = Regressor(hidden=int(params["hidden"]), dropout=params["dropout"])
    opt_cls = torch.optim.Adam if params["optimizer"] == "adam" else torch.optim.SGD
    opt = opt_cls(model.parameters(), lr=params["lr"])
    for _ in range(3):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    with torch.no_grad():
        val = F.mse_loss(model(x), y).numpy()
    return -val, model


class RandomSearch:
    def __init__(self, n_trials=4, seed=0):
        self.n_trials = n_trials
        self.rng = np.random.default_rng(seed)
        random.seed(seed)
        self.history = []
        self.best = BestConfig()
        self.best_model = None
        self.started = datetime.now()
        self.t0 = time.perf_counter()

    def run(self):
        for t in range(self.n_trials):
            params = sample_params(self.rng)
            t_start = time.time()
            score, model = objective(params, seed=t)
            self.history.append({"trial": t, "params": params, "score": score,
                                 "duration": time.time() - t_start})
            if score > self.best.score:
                self.best = BestConfig(trial=t, score=score, **params)
                self.best_model = model
        return self


def save_search_state(tmpdir):
    search = RandomSearch(n_trials=3).run()
    path = os.path.join(tmpdir, "search_state.pt")
    elapsed = datetime.now() - search.started
    torch.save({
        "n_trials": search.n_trials,
        "history": search.history,  # truth: weights_only
        "scores": [float(h["score"]) for h in search.history],
        "best": search.best,  # truth: weights_only
        "best_model": search.best_model.state_dict(),
        "sampler_state": search.rng.bit_generator.state,
        "sampler": search.rng,  # truth: weights_only
        "elapsed": elapsed,  # truth: weights_only
        "elapsed_s": elapsed.total_seconds(),
        "wall_clock": time.perf_counter() - search.t0,
        "started": search.started.isoformat(),
    }, path)
    return path


def save_best_config(tmpdir):
    search = RandomSearch(n_trials=4, seed=1).run()
    best = search.best
    best_params = {k: v for k, v in asdict(best).items() if k in SEARCH_SPACE}
    ckpt = {"model": search.best_model.state_dict()}
    ckpt["best_trial"] = best.trial
    ckpt["best_score"] = best.score  # truth: weights_only
    ckpt["best_hidden"] = best.hidden  # truth: weights_only
    ckpt["best_lr"] = best.lr
    ckpt["best_optimizer"] = best.optimizer
    ckpt["best_dropout"] = best.dropout
    ckpt["n_params_tried"] = len(search.history)
    ckpt["mean_score"] = float(np.mean([h["score"] for h in search.history]))
    ckpt["hidden_choices"] = [int(h["params"]["hidden"]) for h in search.history]
    ckpt["search_space"] = SEARCH_SPACE
    if best.optimizer == "sgd":
        ckpt["note"] = "sgd won"
    path = os.path.join(tmpdir, f"best_trial{best.trial}.pt")
    torch.save(ckpt, path)
    del best_params
    return path


def save_trial_budget(tmpdir):
    search = RandomSearch(n_trials=2, seed=2).run()
    deadline = datetime.now() + timedelta(hours=1)
    summary = {
        "best_params": {
            "lr": search.best.lr,
            "hidden": int(search.best.hidden),
            "dropout": search.best.dropout,
        },
        "best_score": search.best.score.item(),
        "deadline": deadline.isoformat(),
        "remaining_s": (deadline - datetime.now()).total_seconds(),
        "finished_trials": [h["trial"] for h in search.history],
        "durations": torch.tensor([h["duration"] for h in search.history]),
        "localtime": list(time.localtime())[:6],
    }
    path = os.path.join(tmpdir, "budget.pt")
    torch.save(summary, path)
    return path


class LitRegressor(L.LightningModule):
    def __init__(
        self,
        lr=1e-3,
        hidden=16,  # truth: hparam
        dropout=0.1,
        optimizer="adam",
        val_score=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = Regressor(hidden=int(hidden), dropout=dropout)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.model(x), y)

    def configure_optimizers(self):
        cls = torch.optim.Adam if self.hparams.optimizer == "adam" else torch.optim.SGD
        return cls(self.parameters(), lr=self.hparams.lr)


class LitRegressorFromBest(L.LightningModule):
    def __init__(
        self,
        lr=1e-3,
        hidden=16,
        dropout=0.1,
        best_trial=-1,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = Regressor(hidden=hidden, dropout=dropout)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.model(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def _build_from_search(seed=0):
    search = RandomSearch(n_trials=2, seed=seed).run()
    b = search.best
    return LitRegressor(lr=b.lr, hidden=b.hidden, dropout=b.dropout, optimizer=b.optimizer, val_score=b.score)


def _build_from_best(seed=0):
    b = RandomSearch(n_trials=2, seed=seed).run().best
    return LitRegressorFromBest(lr=float(b.lr), hidden=int(b.hidden), dropout=float(b.dropout), best_trial=b.trial)


FACTORIES = {
    "LitRegressor": _build_from_search,
    "LitRegressorFromBest": _build_from_best,
}
