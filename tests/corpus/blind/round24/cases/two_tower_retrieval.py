"""Two-tower retrieval: user/item towers trained with in-batch sampled softmax, recall@k eval.

Written like a research repo's train.py: argparse, a Trainer with save_checkpoint(), an
ItemIndex of precomputed item embeddings, and a handful of save_* entry points that the
tests call with a temporary directory.
"""
import argparse
import collections
import dataclasses
import enum
import math
import os
import pathlib
import time
from datetime import datetime

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Pooling(enum.Enum):
    MEAN = "mean"
    LAST = "last"


@dataclasses.dataclass
class TowerConfig:
    num_users: int = 50
    num_items: int = 80
    embed_dim: int = 16
    hidden: int = 32
    temperature: float = 0.05
    pooling: Pooling = Pooling.MEAN


def build_parser():
    p = argparse.ArgumentParser("two-tower")
    p.add_argument("--embed-dim", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--temperature", type=float, default=0.05)
    p.add_argument("--topk", type=int, nargs="+", default=[10, 50])
    p.add_argument("--output-dir", type=str, default="runs/two_tower")
    return p


class Tower(nn.Module):
    def __init__(self, vocab, dim, hidden):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, ids):
        return F.normalize(self.mlp(self.emb(ids)), dim=-1)


class TwoTower(nn.Module):
    def __init__(self, cfg: TowerConfig):
        super().__init__()
        self.user_tower = Tower(cfg.num_users, cfg.embed_dim, cfg.hidden)
        self.item_tower = Tower(cfg.num_items, cfg.embed_dim, cfg.hidden)
        self.log_temp = nn.Parameter(torch.tensor(math.log(cfg.temperature)))

    def forward(self, users, items):
        u = self.user_tower(users)
        v = self.item_tower(items)
        return u @ v.T / self.log_temp.exp()


def synthetic_interactions(cfg, n=256, seed=0):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, cfg.num_users, size=n)
    items = (users * 7 + rng.integers(0, 3, size=n)) % cfg.num_items
    return torch.from_numpy(users), torch.from_numpy(items)


def recall_at_k(scores, targets, k):
    topk = scores.topk(k, dim=-1).indices.numpy()
    hits = (topk == targets.numpy()[:, None]).any(axis=1)
    return hits.mean()


def evaluate(model, users, items, ks=(10, 50)):
    model.eval()
    with torch.no_grad():
        all_items = torch.arange(model.item_tower.emb.num_embeddings)
        scores = model(users, all_items)
    return {f"recall@{k}": recall_at_k(scores, items, k) for k in ks}


class Trainer:
    def __init__(self, cfg, args):
        self.cfg = cfg
        self.args = args
        self.model = TwoTower(cfg)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=args.lr)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=10)
        self.global_step = 0
        self.best_recall = 0.0
        self.history = collections.defaultdict(list)
        self.output_dir = pathlib.Path(args.output_dir)

    def train_epoch(self, users, items, batch_size=64):
        self.model.train()
        losses = []
        for start in range(0, len(users), batch_size):
            u, i = users[start:start + batch_size], items[start:start + batch_size]
            logits = self.model(u, i)
            loss = F.cross_entropy(logits, torch.arange(len(u)))
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.global_step += 1
            losses.append(loss.item())
        self.scheduler.step()
        self.history["loss"].append(np.mean(losses))
        return np.mean(losses)

    def save_checkpoint(self, path, extra=None):
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "global_step": self.global_step,
            "best_recall": float(self.best_recall),
            "args": vars(self.args),
        }
        if extra:
            state.update(extra)
        torch.save(state, path)
        return path


def _trainer(**overrides):
    args = build_parser().parse_args([])
    for k, v in overrides.items():
        setattr(args, k, v)
    cfg = TowerConfig(embed_dim=args.embed_dim, temperature=args.temperature)
    return Trainer(cfg, args)


def save_trainer_checkpoint(tmpdir):
    torch.manual_seed(0)
    trainer = _trainer()
    users, items = synthetic_interactions(trainer.cfg)
    trainer.train_epoch(users, items)
    metrics = {k: float(v) for k, v in evaluate(trainer.model, users, items).items()}
    extra = {
        "metrics": metrics,
        "config": trainer.cfg,  # truth: weights_only
        "history": trainer.history,  # truth: weights_only
        "lr": trainer.scheduler.get_last_lr()[0],
    }
    return trainer.save_checkpoint(os.path.join(tmpdir, "last.pt"), extra)


def save_best_checkpoint(tmpdir):
    torch.manual_seed(0)
    trainer = _trainer(output_dir=tmpdir)
    users, items = synthetic_interactions(trainer.cfg)
    loss = trainer.train_epoch(users, items)
    metrics = evaluate(trainer.model, users, items, ks=trainer.args.topk)
    recall = metrics["recall@10"]
    is_best = recall > trainer.best_recall
    if is_best:
        trainer.best_recall = recall
    ckpt = {
        "model": trainer.model.state_dict(),
        "epoch": 1,
        "train_loss": loss,  # truth: weights_only
        "recall@10": recall,  # truth: weights_only
        "recall@50": metrics["recall@50"].item(),
        "is_best": bool(is_best),
        "output_dir": str(trainer.output_dir),
        "topk": list(trainer.args.topk),
    }
    path = trainer.output_dir / "best.pt"
    torch.save(ckpt, path)
    return str(path)


def _export_item_index(model, num_items):
    with torch.no_grad():
        emb = model.item_tower(torch.arange(num_items))
    norms = emb.norm(dim=-1).numpy()
    return {
        "embeddings": emb.clone(),
        "ids": torch.arange(num_items),
        "norm_stats": {"mean": float(norms.mean()), "max": norms.max().item()},
    }


def save_item_index(tmpdir):
    torch.manual_seed(0)
    cfg = TowerConfig()
    model = TwoTower(cfg)
    index = _export_item_index(model, cfg.num_items)
    index["built_at"] = datetime.now()  # truth: weights_only
    index["built_unix"] = time.time()
    index["pooling"] = cfg.pooling  # truth: weights_only
    index["pooling_name"] = cfg.pooling.value
    index["dim"] = cfg.embed_dim
    path = os.path.join(tmpdir, "item_index.pt")
    torch.save(index, path)
    return path


def save_serving_bundle(tmpdir):
    torch.manual_seed(0)
    cfg = TowerConfig()
    model = TwoTower(cfg)
    bundle = dict(
        user_tower=model.user_tower.state_dict(),
        item_tower=model.item_tower.state_dict(),
        temperature=model.log_temp.exp().item(),
        config=dataclasses.asdict(cfg) | {"pooling": cfg.pooling.value},
        torch_version=str(torch.__version__),
        item_vocab=torch.arange(cfg.num_items).tolist(),
    )
    path = os.path.join(tmpdir, "serving.pt")
    torch.save(bundle, path)
    return path


def save_tower_for_distillation(tmpdir):
    cfg = TowerConfig(embed_dim=8, hidden=16)
    teacher = TwoTower(cfg)
    path = os.path.join(tmpdir, "teacher_item_tower.pt")
    torch.save(teacher.item_tower, path)  # truth: weights_only
    return path


FACTORIES = {
    "Pooling": lambda: Pooling.MEAN,
    "Tower": lambda: Tower(10, 4, 8),
    "TwoTower": lambda: TwoTower(TowerConfig()),
    "Trainer": lambda: _trainer(),
}


def main(argv=None):
    args = build_parser().parse_args(argv)
    trainer = Trainer(TowerConfig(embed_dim=args.embed_dim), args)
    users, items = synthetic_interactions(trainer.cfg)
    for epoch in range(3):
        trainer.train_epoch(users, items)
        metrics = evaluate(trainer.model, users, items, ks=args.topk)
        trainer.save_checkpoint(trainer.output_dir / f"epoch{epoch}.pt", {"metrics": metrics})


if __name__ == "__main__":
    main()
