"""Few-shot classification: MAML / first-order MAML and prototypical networks, laid out like the usual
`train_meta.py` (argparse, an episode sampler, one learner per algorithm, `save_*` checkpoint helpers).
Episodes come from synthetic Gaussian classes, so everything runs on the CPU in well under a second."""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call


class Algo(Enum):
    MAML = "maml"
    FOMAML = "fomaml"
    PROTONET = "protonet"


@dataclass
class EpisodeConfig:
    n_way: int = 3
    k_shot: int = 2
    q_query: int = 3
    feat_dim: int = 8


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="few-shot meta-training")
    p.add_argument("--algo", type=Algo, default=Algo.MAML, choices=list(Algo))
    p.add_argument("--n-way", type=int, default=3)
    p.add_argument("--k-shot", type=int, default=2)
    p.add_argument("--q-query", type=int, default=3)
    p.add_argument("--inner-lr", type=float, default=0.4)
    p.add_argument("--inner-steps", type=int, default=1)
    p.add_argument("--meta-lr", type=float, default=1e-3)
    p.add_argument("--meta-batch", type=int, default=2)
    p.add_argument("--first-order", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=str, default="runs/fewshot")
    return p


def make_backbone(in_dim: int, n_way: int, hidden: int = 32) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_way))


class EpisodeSampler:
    def __init__(self, n_classes: int = 8, per_class: int = 12, cfg: EpisodeConfig | None = None, seed: int = 0):
        self.cfg = cfg or EpisodeConfig()
        self.rng = np.random.RandomState(seed)
        centers = self.rng.normal(0.0, 2.0, size=(n_classes, self.cfg.feat_dim))
        noise = self.rng.normal(0.0, 0.5, size=(n_classes, per_class, self.cfg.feat_dim))
        self.pool = (centers[:, None, :] + noise).astype("float32")
        self.class_names = np.array([f"class_{i:02d}" for i in range(n_classes)])
        self.class_counts = np.zeros(n_classes, dtype=np.int64)
        self.episodes_drawn = 0

    def sample(self):
        c = self.cfg
        classes = self.rng.choice(len(self.pool), size=c.n_way, replace=False)
        self.class_counts[classes] += 1
        self.episodes_drawn += 1
        xs, ys, xq, yq = [], [], [], []
        for label, cls in enumerate(classes):
            idx = self.rng.permutation(self.pool.shape[1])[: c.k_shot + c.q_query]
            feats = torch.from_numpy(self.pool[cls, idx])
            xs.append(feats[: c.k_shot]), xq.append(feats[c.k_shot:])
            ys, yq = ys + [label] * c.k_shot, yq + [label] * c.q_query
        return torch.cat(xs), torch.tensor(ys), torch.cat(xq), torch.tensor(yq), classes


class MAMLLearner:
    def __init__(self, args: argparse.Namespace | None = None, sampler: EpisodeSampler | None = None):
        self.args = args or build_parser().parse_args([])
        self.sampler = sampler or EpisodeSampler()
        self.model = make_backbone(self.sampler.cfg.feat_dim, self.args.n_way)
        self.meta_opt = torch.optim.Adam(self.model.parameters(), lr=self.args.meta_lr)
        self.inner_lr = self.args.inner_lr
        self.step, self.query_accs = 0, []
        self.best_query_acc, self.best_step = 0.0, -1

    def adapt(self, xs, ys):
        params = dict(self.model.named_parameters())
        for _ in range(self.args.inner_steps):
            loss = F.cross_entropy(functional_call(self.model, params, (xs,)), ys)
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=not self.args.first_order)
            params = {n: p - self.inner_lr * g for (n, p), g in zip(params.items(), grads)}
        return params

    def outer_step(self):
        self.meta_opt.zero_grad()
        accs, losses = [], []
        for _ in range(self.args.meta_batch):
            xs, ys, xq, yq, _ = self.sampler.sample()
            fast = self.adapt(xs, ys)
            logits = functional_call(self.model, fast, (xq,))
            loss = F.cross_entropy(logits, yq)
            (loss / self.args.meta_batch).backward()
            losses.append(loss.item())
            accs.append((logits.argmax(1) == yq).float().mean().item())
        self.meta_opt.step()
        self.step += 1
        acc = np.mean(accs)
        self.query_accs.append(acc)
        if acc >= self.best_query_acc:
            self.best_query_acc = acc
            self.best_step = self.step
        return {"loss": sum(losses) / len(losses), "acc": float(acc)}

    def resume_state(self):
        return {
            "model": self.model.state_dict(),
            "meta_opt": self.meta_opt.state_dict(),
            "step": self.step,
            "best_step": self.best_step,
        }


def squared_euclidean_logits(query: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
    return -torch.cdist(query, protos).pow(2)


class ProtoTrainer:
    def __init__(self, sampler: EpisodeSampler | None = None, embed_dim: int = 16, lr: float = 1e-2):
        self.sampler = sampler or EpisodeSampler()
        self.encoder = nn.Sequential(nn.Linear(self.sampler.cfg.feat_dim, 32), nn.ReLU(), nn.Linear(32, embed_dim))
        self.opt = torch.optim.SGD(self.encoder.parameters(), lr=lr, momentum=0.9)
        self.prototypes = None
        self.episode_losses = []

    def prototypes_for(self, xs, ys, n_way):
        z = self.encoder(xs)
        return torch.stack([z[ys == c].mean(0) for c in range(n_way)])

    def train_episodes(self, n: int):
        for _ in range(n):
            xs, ys, xq, yq, _ = self.sampler.sample()
            protos = self.prototypes_for(xs, ys, self.sampler.cfg.n_way)
            loss = F.cross_entropy(squared_euclidean_logits(self.encoder(xq), protos), yq)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.episode_losses.append(loss.item())
        self.prototypes = protos.detach()

    @torch.no_grad()
    def evaluate(self, n_episodes: int = 10):
        accs = []
        for _ in range(n_episodes):
            xs, ys, xq, yq, _ = self.sampler.sample()
            protos = self.prototypes_for(xs, ys, self.sampler.cfg.n_way)
            pred = squared_euclidean_logits(self.encoder(xq), protos).argmax(1)
            accs.append((pred == yq).float().mean().item())
        accs = np.asarray(accs)
        mean = float(accs.mean())
        ci95 = 1.96 * accs.std() / math.sqrt(n_episodes)
        return mean, ci95


def usage_summary(sampler: EpisodeSampler):
    counts = sampler.class_counts
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log(p)).sum())
    most_used = sampler.class_names[np.argmax(counts)]
    return most_used, entropy


def run_meta_test(learner: MAMLLearner, n_tasks: int = 4):
    accs = []
    for _ in range(n_tasks):
        xs, ys, xq, yq, _ = learner.sampler.sample()
        fast = learner.adapt(xs, ys)
        with torch.no_grad():
            pred = functional_call(learner.model, fast, (xq,)).argmax(1)
        accs.append((pred == yq).float().mean().item())
    return accs


FACTORIES = {
    "Algo": lambda: Algo.MAML,
}


def save_maml_checkpoint(tmpdir):
    args = build_parser().parse_args(["--inner-steps", "1", "--meta-batch", "2"])
    torch.manual_seed(args.seed)
    ep = EpisodeConfig(n_way=args.n_way, k_shot=args.k_shot, q_query=args.q_query)
    sampler = EpisodeSampler(cfg=ep, seed=args.seed)
    learner = MAMLLearner(args, sampler)
    for _ in range(3):
        stats = learner.outer_step()
    ckpt = {
        "model": learner.model.state_dict(),
        "meta_opt": learner.meta_opt.state_dict(),
        "hparams": dict(vars(args), algo=args.algo.value),
        "algorithm": args.algo.name,
        "step": learner.step,
        "last_loss": stats["loss"],
        "last_acc": stats["acc"],
        "query_acc_history": [float(a) for a in learner.query_accs],
        "best_query_acc": learner.best_query_acc,  # truth: weights_only
        "best_step": learner.best_step,
        "improved": learner.query_accs[-1] > learner.query_accs[0],  # truth: weights_only
        "inner_lr": learner.inner_lr,
        "episodes_seen": sampler.episodes_drawn,
    }
    path = os.path.join(tmpdir, "maml_last.pt")
    torch.save(ckpt, path)
    return path


def save_protonet_checkpoint(tmpdir):
    torch.manual_seed(1)
    ep = EpisodeConfig(n_way=4, k_shot=1, q_query=4)
    sampler = EpisodeSampler(n_classes=10, cfg=ep, seed=1)
    trainer = ProtoTrainer(sampler, embed_dim=8)
    trainer.train_episodes(5)
    val_acc, val_ci = trainer.evaluate(n_episodes=6)
    most_used, usage_entropy = usage_summary(sampler)
    ckpt = {"encoder": trainer.encoder.state_dict(), "optimizer": trainer.opt.state_dict()}
    ckpt["prototypes"] = trainer.prototypes
    ckpt["val_acc"] = val_acc
    ckpt["val_ci95"] = val_ci  # truth: weights_only
    ckpt["class_names"] = sampler.class_names  # truth: weights_only
    ckpt["class_index"] = {name: i for i, name in enumerate(sampler.class_names.tolist())}
    ckpt["episode"] = ep  # truth: weights_only
    ckpt["episode_dict"] = dataclasses.asdict(ep)
    ckpt["loss_tail"] = trainer.episode_losses[-3:]
    ckpt["usage"] = sampler.class_counts.tolist()
    ckpt["usage_entropy"] = usage_entropy
    ckpt["most_used_class"] = most_used  # truth: weights_only
    path = os.path.join(tmpdir, "protonet_best.pt")
    torch.save(ckpt, path)
    return path


def save_fomaml_resume(tmpdir):
    args = build_parser().parse_args(["--algo", "fomaml", "--first-order", "--inner-steps", "2"])
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    sampler = EpisodeSampler(cfg=EpisodeConfig(), seed=args.seed)
    learner = MAMLLearner(args, sampler)
    sched = torch.optim.lr_scheduler.LambdaLR(learner.meta_opt, lambda s: 0.5 ** (s // 10))
    learner.outer_step()
    sched.step()
    state = learner.resume_state()
    state["meta_sched"] = sched.state_dict()
    state.update(
        numpy_rng=np.random.get_state(),  # truth: weights_only
        torch_rng=torch.get_rng_state(),
        sampler_rng=sampler.rng,  # truth: weights_only
    )
    state["task_usage"] = dict(zip(sampler.class_names.tolist(), sampler.class_counts.tolist()))
    state["busiest_task"] = int(np.argmax(sampler.class_counts))
    state["first_order"] = args.first_order
    state["out_dir"] = Path(args.out)  # truth: weights_only
    state["resume_file"] = str(Path(args.out) / "resume.pt")
    path = os.path.join(tmpdir, "fomaml_resume.pt")
    torch.save(state, path)
    return path


def save_meta_test_report(tmpdir):
    args = build_parser().parse_args(["--n-way", "3"])
    torch.manual_seed(3)
    learner = MAMLLearner(args, EpisodeSampler(seed=3))
    learner.outer_step()
    accs = run_meta_test(learner, n_tasks=4)
    report = {
        "algo": Algo.PROTONET.value if args.algo is Algo.PROTONET else args.algo.value,
        "accs": [round(a, 4) for a in accs],
        "mean_acc": statistics.fmean(accs),
        "ci95": float(1.96 * np.std(accs) / math.sqrt(len(accs))),
        "best_task": int(np.argmax(accs)),
        "created": time.time(),
        "out": os.fspath(Path(args.out) / "meta_test.pt"),
        "usage": learner.sampler.class_counts.tolist(),
    }
    path = os.path.join(tmpdir, "meta_test.pt")
    torch.save(report, path)
    return path


def save_protonet_encoder(tmpdir):
    torch.manual_seed(2)
    trainer = ProtoTrainer(EpisodeSampler(seed=2), embed_dim=8)
    trainer.train_episodes(2)
    path = os.path.join(tmpdir, "encoder_full.pt")
    torch.save(trainer.encoder, path)  # truth: weights_only
    return path
