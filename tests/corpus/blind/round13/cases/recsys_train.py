"""Two-tower / matrix-factorisation recommender training loop (implicit feedback, sampled negatives)."""
import argparse
import math
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn


def load_interactions(seed=0):
    rng = np.random.default_rng(seed)
    n = 64
    return pd.DataFrame({
        "user_id": rng.integers(100, 120, size=n),
        "item_id": rng.integers(5000, 5030, size=n),
        "rating": rng.integers(1, 6, size=n).astype("float32"),
        "ts": pd.date_range("2024-03-01", periods=n, freq="37min"),
    })


def build_id_maps(df):
    user_ids = df["user_id"].unique()
    item_ids = np.sort(df["item_id"].unique())
    user2idx = {int(uid): i for i, uid in enumerate(user_ids)}
    item2idx = dict(zip(df["item_id"].drop_duplicates().sort_values(), range(len(item_ids))))
    return user2idx, item2idx


def factorize_users(df):
    codes, uniques = pd.factorize(df["user_id"])
    return codes, uniques


class MFModel(nn.Module):
    def __init__(self, num_users=20, num_items=30, dim=8):
        super().__init__()
        self.user_emb = nn.Embedding(num_users, dim)
        self.item_emb = nn.Embedding(num_items, dim)
        nn.init.normal_(self.user_emb.weight, std=0.01)
        nn.init.normal_(self.item_emb.weight, std=0.01)

    def forward(self, users, items):
        return (self.user_emb(users) * self.item_emb(items)).sum(-1)


def hit_rate_and_ndcg(scores, positives, k=5):
    topk = np.argsort(-scores, axis=1)[:, :k]
    hits = (topk == positives[:, None])
    rank = np.argmax(hits, axis=1)
    found = hits.any(axis=1)
    ndcg = np.where(found, 1.0 / np.log2(rank + 2), 0.0)
    return hits.any(axis=1).mean(), ndcg.mean()


class NegativeSampler:
    def __init__(self, num_items=30, num_neg=4, seed=13):
        self.num_items = num_items
        self.num_neg = num_neg
        self.rng = np.random.default_rng(seed)

    def sample(self, batch_size):
        return self.rng.integers(0, self.num_items, size=(batch_size, self.num_neg))


@dataclass
class RecConfig:
    dim: int = 8
    lr: float = 0.01
    top_k: int = 5
    num_neg: int = 4
    tags: list = field(default_factory=lambda: ["mf", "bpr"])


def save_mf_checkpoint(tmpdir):
    df = load_interactions()
    user2idx, item2idx = build_id_maps(df)
    model = MFModel(len(user2idx), len(item2idx))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    scores = np.random.default_rng(0).normal(size=(6, len(item2idx)))
    positives = np.arange(6)
    hr, ndcg = hit_rate_and_ndcg(scores, positives)
    codes, uniques = factorize_users(df)
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "user2idx": user2idx,
        "item2idx": item2idx,
        "user_vocab": uniques,  # truth: weights_only
        "user_codes": torch.as_tensor(codes),
        "num_users": df["user_id"].nunique(),
        "num_items": len(item2idx),
        "hr@5": hr,  # truth: weights_only
        "ndcg@5": float(ndcg),
    }
    path = os.path.join(tmpdir, "mf_last.pt")
    torch.save(ckpt, path)
    return path


def save_best_by_ndcg(tmpdir):
    df = load_interactions(1)
    _, item2idx = build_id_maps(df)
    model = MFModel(20, len(item2idx))
    history = []
    best_ndcg, best_epoch = -1.0, -1
    for epoch in range(3):
        scores = np.random.default_rng(epoch).normal(size=(4, len(item2idx)))
        hr, ndcg = hit_rate_and_ndcg(scores, np.arange(4))
        history.append({"epoch": epoch, "hr": hr.item(), "ndcg": round(float(ndcg), 4)})
        if ndcg > best_ndcg:
            best_ndcg, best_epoch = ndcg, epoch
    state = dict(
        model=model.state_dict(),
        history=history,
        best_ndcg=best_ndcg,  # truth: weights_only
        best_epoch=best_epoch,
        item_popularity=df["item_id"].value_counts().to_dict(),
        max_user_id=df["user_id"].max(),  # truth: weights_only
    )
    path = os.path.join(tmpdir, "best.pt")
    torch.save(state, path)
    return path


def save_sampler_state(tmpdir):
    sampler = NegativeSampler()
    negs = sampler.sample(8)
    ckpt = {
        "neg_rng": sampler.rng,  # truth: weights_only
        "neg_rng_state": sampler.rng.bit_generator.state,
        "last_negatives": torch.from_numpy(negs),
        "num_neg": sampler.num_neg,
        "torch_rng": torch.get_rng_state(),
        "np_global_rng": np.random.get_state(),  # truth: weights_only
        "sample_coin": sampler.rng.random(),
        "epoch_seed": sampler.rng.integers(1 << 31),  # truth: weights_only
    }
    path = os.path.join(tmpdir, "sampler.pt")
    torch.save(ckpt, path)
    return path


class RecTrainer:
    def __init__(self, cfg=None, args=None):
        self.cfg = cfg or RecConfig()
        self.args = args or argparse.Namespace(data="ml-100k", epochs=2, batch_size=256)
        df = load_interactions(2)
        self.user2idx, self.item2idx = build_id_maps(df)
        self.model = MFModel(len(self.user2idx), len(self.item2idx), self.cfg.dim)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.cfg.lr, momentum=0.9)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=2, gamma=0.5)
        self.epoch = 0
        self.global_step = 0
        self.item_embeddings = None
        self.train_loss = []

    def train_epoch(self):
        users = torch.randint(0, len(self.user2idx), (16,))
        items = torch.randint(0, len(self.item2idx), (16,))
        loss = -torch.nn.functional.logsigmoid(self.model(users, items)).mean()
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.scheduler.step()
        self.train_loss.append(loss.item())
        self.epoch += 1
        self.global_step += 16
        self.item_embeddings = self.model.item_emb.weight.detach().cpu().numpy()

    def checkpoint_state(self):
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "args": vars(self.args),
            "mean_loss": sum(self.train_loss) / len(self.train_loss),
        }

    def save_checkpoint(self, path):
        state = self.checkpoint_state()
        state["item_embeddings"] = self.model.item_emb.weight.detach().clone()
        state["config"] = {"dim": self.cfg.dim, "lr": self.cfg.lr, "top_k": self.cfg.top_k}
        torch.save(state, path)


def save_trainer_checkpoint(tmpdir):
    trainer = RecTrainer()
    trainer.train_epoch()
    state = trainer.checkpoint_state()
    state["config"] = trainer.cfg  # truth: weights_only
    state.update(
        item_embeddings=trainer.item_embeddings,  # truth: weights_only
        best_item=np.argmax(trainer.item_embeddings.sum(axis=1)),  # truth: weights_only
        num_params=sum(p.numel() for p in trainer.model.parameters()),
    )
    path = os.path.join(tmpdir, "trainer.pt")
    torch.save(state, path)
    return path


def save_trainer_via_method(tmpdir):
    trainer = RecTrainer(cfg=RecConfig(dim=4, tags=["two-tower"]))
    trainer.train_epoch()
    trainer.train_epoch()
    path = os.path.join(tmpdir, "trainer_method.pt")
    trainer.save_checkpoint(path)
    return path


def save_trainer_checkpoint_clean(tmpdir):
    trainer = RecTrainer(cfg=RecConfig(dim=4))
    trainer.train_epoch()
    path = os.path.join(tmpdir, "trainer_clean.pt")
    state = {
        "epoch": trainer.epoch,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "args": vars(trainer.args),
        "item_ids": sorted(int(i) for i in trainer.item2idx),
        "lr": trainer.scheduler.get_last_lr()[0],
        "log2_items": math.log2(len(trainer.item2idx)),
    }
    torch.save(state, path)
    return path
