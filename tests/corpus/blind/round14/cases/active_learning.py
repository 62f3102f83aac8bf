"""Pool-based active learning and FixMatch-style pseudo-labelling loops (tiny MLP on synthetic data)."""
import copy
import os
import random
from collections import Counter, namedtuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import accuracy_score

RoundResult = namedtuple("RoundResult", ["round", "n_labelled", "accuracy"])


def make_pool(n=64, d=6, c=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5).astype(np.int64)
    return x, np.minimum(y, c - 1)


class MLP(nn.Module):
    def __init__(self, d_in=6, hidden=16, n_classes=3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))

    def forward(self, x):
        return self.net(x)


def fit(model, x, y, idx, epochs=3, lr=1e-2):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xt, yt = torch.from_numpy(x[idx]), torch.from_numpy(y[idx])
    for _ in range(epochs):
        opt.zero_grad()
        F.cross_entropy(model(xt), yt).backward()
        opt.step()
    return opt


@torch.no_grad()
def predict_proba(model, x):
    return model(torch.from_numpy(x)).softmax(-1).numpy()


def entropy_scores(probs):
    return -(probs * np.log(probs + 1e-12)).sum(axis=1)


def margin_scores(probs):
    part = np.sort(probs, axis=1)
    return part[:, -1] - part[:, -2]


class ActiveLearner:
    def __init__(self, budget=4, init_size=8, seed=0, strategy="entropy"):
        self.budget = budget
        self.strategy = strategy
        self.x, self.y = make_pool(seed=seed)
        self.rng = np.random.RandomState(seed)
        self.labelled = self.rng.choice(len(self.y), init_size, replace=False)
        self.model = MLP()
        self.optimizer = None
        self.history = []
        self.last_scores = None

    def unlabelled(self):
        mask = np.ones(len(self.y), dtype=bool)
        mask[self.labelled] = False
        return np.flatnonzero(mask)

    def query(self):
        pool = self.unlabelled()
        probs = predict_proba(self.model, self.x[pool])
        scores = entropy_scores(probs) if self.strategy == "entropy" else -margin_scores(probs)
        self.last_scores = scores
        picked = pool[np.argsort(scores)[-self.budget:]]
        self.labelled = np.concatenate([self.labelled, picked])
        return picked

    def run(self, rounds=3):
        for r in range(rounds):
            self.optimizer = fit(self.model, self.x, self.y, self.labelled)
            pred = predict_proba(self.model, self.x).argmax(1)
            self.history.append({
                "round": r,
                "n_labelled": int(len(self.labelled)),
                "acc": accuracy_score(self.y, pred),
                "pool_acc": (pred == self.y).mean(),
            })
            self.query()
        return self


def save_al_round_state(tmpdir):
    learner = ActiveLearner(budget=3).run(rounds=2)
    labelled_set = set(learner.labelled)
    path = os.path.join(tmpdir, "al_round.pt")
    torch.save({
        "round": len(learner.history),
        "model": learner.model.state_dict(),
        "optimizer": learner.optimizer.state_dict(),
        "labelled_idx": learner.labelled,  # truth: weights_only
        "labelled_list": sorted(int(i) for i in learner.labelled),
        "labelled_set": labelled_set,  # truth: weights_only
        "labelled_set_int": {int(i) for i in labelled_set},
        "last_scores": torch.from_numpy(learner.last_scores),
        "top_score": float(learner.last_scores.max()),
        "np_rng": learner.rng.get_state(),  # truth: weights_only
        "py_rng": random.getstate(),
        "torch_rng": torch.get_rng_state(),
    }, path)
    return path


def save_al_history(tmpdir):
    learner = ActiveLearner(strategy="margin").run(rounds=3)
    ckpt = {"model": learner.model.state_dict(), "strategy": learner.strategy}
    ckpt["history"] = [{k: (float(v) if k.endswith("acc") else v) for k, v in h.items()} for h in learner.history]
    ckpt["raw_history"] = learner.history  # truth: weights_only
    ckpt["results"] = [RoundResult(h["round"], h["n_labelled"], float(h["acc"])) for h in learner.history]  # truth: weights_only
    ckpt["results_as_dicts"] = [RoundResult(h["round"], h["n_labelled"], float(h["acc"]))._asdict() for h in learner.history]
    ckpt["label_counts"] = Counter(learner.y[learner.labelled].tolist())
    ckpt["label_counts_np"] = Counter(learner.y[learner.labelled])  # truth: weights_only
    ckpt["final_acc"] = learner.history[-1]["acc"]
    path = os.path.join(tmpdir, "al_history.pt")
    torch.save(ckpt, path)
    return path


class MeanTeacher:
    def __init__(self, ema_decay=0.99, threshold=0.95, seed=0):
        torch.manual_seed(seed)
        self.student = MLP()
        self.teacher = copy.deepcopy(self.student)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.ema_decay = ema_decay
        self.threshold = threshold
        self.x, self.y = make_pool(seed=seed)
        self.step = 0

    @torch.no_grad()
    def update_teacher(self):
        for pt, ps in zip(self.teacher.parameters(), self.student.parameters()):
            pt.mul_(self.ema_decay).add_(ps, alpha=1 - self.ema_decay)

    def pseudo_label(self):
        probs = predict_proba(self.teacher, self.x)
        conf = probs.max(1)
        thr = np.quantile(conf, 0.75)
        keep = conf >= min(thr, self.threshold)
        return probs.argmax(1)[keep], keep, thr


def save_mean_teacher(tmpdir):
    mt = MeanTeacher()
    fit(mt.student, mt.x, mt.y, np.arange(16))
    mt.update_teacher()
    labels, keep, thr = mt.pseudo_label()
    pseudo = {}
    pseudo["threshold"] = thr  # truth: weights_only
    pseudo["threshold_float"] = float(thr)
    pseudo["kept_fraction"] = round(keep.mean(), 3)  # truth: weights_only
    pseudo["n_kept"] = int(keep.sum())
    pseudo["labels"] = torch.as_tensor(labels)
    pseudo["class_hist"] = np.bincount(labels, minlength=3).tolist()
    path = os.path.join(tmpdir, "mean_teacher.pt")
    torch.save({
        "student": mt.student.state_dict(),
        "teacher": mt.teacher,  # truth: weights_only
        "ema_decay": mt.ema_decay,
        "step": mt.step,
        "pseudo": pseudo,
    }, path)
    return path


def save_fixmatch_resume(tmpdir):
    mt = MeanTeacher(threshold=0.9, seed=3)
    opt = fit(mt.student, mt.x, mt.y, np.arange(12))
    mt.update_teacher()
    labels, keep, thr = mt.pseudo_label()
    unlabelled_idx = np.flatnonzero(~keep)
    state = dict(
        student=mt.student.state_dict(),
        teacher=mt.teacher.state_dict(),
        optimizer=opt.state_dict(),
        threshold=float(thr),
        mask_rate=keep.mean().item(),
        unlabelled_idx=unlabelled_idx.tolist(),
        pseudo_labels=torch.from_numpy(labels),
        rng=np.random.default_rng(3).bit_generator.state,
    )
    path = os.path.join(tmpdir, "fixmatch_last.pt")
    torch.save(state, path)
    return path
