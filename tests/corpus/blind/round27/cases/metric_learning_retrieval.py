"""Triplet-loss embedding training with batch-hard mining and a numpy retrieval index.

Usage: python metric_learning_retrieval.py --epochs 3 --margin 0.2 --mining semi_hard
"""
import argparse
import dataclasses
import datetime as dt
import enum
import os
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class MiningStrategy(enum.Enum):
    RANDOM = "random"
    SEMI_HARD = "semi_hard"
    BATCH_HARD = "batch_hard"


@dataclasses.dataclass
class RetrievalConfig:
    in_dim: int = 16
    embed_dim: int = 8
    margin: float = 0.2
    lr: float = 1e-2
    epochs: int = 2
    num_classes: int = 4
    per_class: int = 6
    mining: MiningStrategy = MiningStrategy.BATCH_HARD
    ks: tuple = (1, 5)


def build_parser():
    p = argparse.ArgumentParser(description="triplet embedding trainer")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--margin", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--mining", default="batch_hard", choices=[m.value for m in MiningStrategy])
    p.add_argument("--out", default="runs/triplet")
    return p


def make_toy_data(cfg, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(cfg.num_classes, cfg.in_dim)) * 3.0
    labels = np.repeat(np.arange(cfg.num_classes), cfg.per_class)
    feats = centers[labels] + rng.normal(scale=0.5, size=(labels.size, cfg.in_dim))
    return feats.astype("float32"), labels


class EmbeddingNet(nn.Module):
    def __init__(self, in_dim=16, embed_dim=8):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_dim, 32), nn.ReLU(), nn.Linear(32, embed_dim))

    def forward(self, x):
        return F.normalize(self.body(x), dim=-1)


def batch_hard_triplets(emb, labels):
    """For each anchor: hardest positive and hardest negative inside the batch."""
    d = torch.cdist(emb, emb)
    same = labels[:, None] == labels[None, :]
    pos = (d * same.float()).argmax(dim=1)
    neg = (d + same.float() * 1e6).argmin(dim=1)
    return pos, neg


class EmbeddingIndex:
    """Brute-force cosine index kept in numpy."""

    def __init__(self, dim=8):
        self.dim = dim
        self.vectors = np.zeros((0, dim), dtype="float32")
        self.labels = np.zeros((0,), dtype="int64")

    def add(self, vectors, labels):
        self.vectors = np.concatenate([self.vectors, vectors.astype("float32")])
        self.labels = np.concatenate([self.labels, labels.astype("int64")])

    def search(self, queries, k):
        sims = queries @ self.vectors.T
        order = np.argsort(-sims, axis=1)
        return order[:, :k], np.take_along_axis(sims, order[:, :k], axis=1)


def recall_at_k(index, queries, q_labels, k):
    nbrs, _ = index.search(queries, k + 1)
    nbrs = nbrs[:, 1:]  # drop the query itself
    hits = index.labels[nbrs] == q_labels[:, None]
    return hits.any(axis=1).mean()


def average_precision_for_query(ranked_labels, label):
    rel = (ranked_labels == label).astype("float64")
    if rel.sum() == 0:
        return 0.0
    prec = np.cumsum(rel) / np.arange(1, rel.size + 1)
    return (prec * rel).sum() / rel.sum()


def mean_average_precision(index, queries, q_labels):
    nbrs, _ = index.search(queries, len(index.labels))
    aps = [average_precision_for_query(index.labels[row[1:]], lab) for row, lab in zip(nbrs, q_labels)]
    return np.mean(aps), np.asarray(aps)


class TripletTrainer:
    def __init__(self, cfg=None):
        self.cfg = cfg or RetrievalConfig()
        torch.manual_seed(0)
        self.model = EmbeddingNet(self.cfg.in_dim, self.cfg.embed_dim)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.loss_fn = nn.TripletMarginLoss(margin=self.cfg.margin)
        self.epoch = 0
        self.losses = []
        self.best_recall = 0.0
        self.index = None

    def fit(self, feats, labels):
        x, y = torch.from_numpy(feats), torch.from_numpy(labels)
        for _ in range(self.cfg.epochs):
            emb = self.model(x)
            pos, neg = batch_hard_triplets(emb, y)
            loss = self.loss_fn(emb, emb[pos], emb[neg])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.losses.append(loss.item())
            self.epoch += 1
            self.evaluate(feats, labels)
        return self

    @torch.no_grad()
    def embed(self, feats):
        return self.model(torch.from_numpy(feats)).numpy()

    def evaluate(self, feats, labels):
        emb = self.embed(feats)
        self.index = EmbeddingIndex(emb.shape[1])
        self.index.add(emb, labels)
        r1 = recall_at_k(self.index, emb, labels, 1)
        self.best_recall = max(self.best_recall, r1)
        return r1


def _trained(cfg=None):
    cfg = cfg or RetrievalConfig()
    feats, labels = make_toy_data(cfg)
    return TripletTrainer(cfg).fit(feats, labels), feats, labels


def save_triplet_checkpoint(tmpdir):
    args = build_parser().parse_args(["--epochs", "2", "--mining", "semi_hard"])
    cfg = RetrievalConfig(epochs=args.epochs, margin=args.margin, mining=MiningStrategy(args.mining))
    trainer, _, _ = _trained(cfg)
    ckpt = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.opt.state_dict(),
        "epoch": trainer.epoch,
        "args": vars(args),
        "loss_history": trainer.losses,
        "best_recall": trainer.best_recall,  # truth: weights_only
        "mining": cfg.mining,  # truth: weights_only
        "mining_name": cfg.mining.value,
        "created": dt.datetime.now().isoformat(timespec="seconds"),
    }
    path = os.path.join(tmpdir, "triplet_last.pt")
    torch.save(ckpt, path)
    return path


def save_embedding_index(tmpdir):
    trainer, feats, labels = _trained()
    index = trainer.index
    ckpt = {"vectors": torch.from_numpy(index.vectors), "dim": index.vectors.shape[1]}
    ckpt["labels"] = index.labels  # truth: weights_only
    ckpt["num_items"] = len(index.labels)
    ckpt["norm_mean"] = float(np.linalg.norm(index.vectors, axis=1).mean())
    ckpt["class_counts"] = np.bincount(index.labels).tolist()
    ckpt["built_at"] = dt.datetime.now(dt.timezone.utc)  # truth: weights_only
    ckpt["centroids"] = torch.stack([torch.from_numpy(index.vectors[index.labels == c].mean(0))
                                     for c in np.unique(index.labels)])
    path = Path(tmpdir) / "index.pt"
    torch.save(ckpt, path)
    return str(path)


def save_eval_report(tmpdir):
    cfg = RetrievalConfig()
    trainer, feats, labels = _trained(cfg)
    emb = trainer.embed(feats)
    recalls = {f"recall@{k}": float(recall_at_k(trainer.index, emb, labels, k)) for k in cfg.ks}
    map_score, per_query = mean_average_precision(trainer.index, emb, labels)
    nbrs, sims = trainer.index.search(emb, 5)
    config = dataclasses.asdict(cfg)
    config["mining"] = cfg.mining.value  # asdict keeps the Enum member itself
    report = dict(
        recalls=recalls,
        mean_ap=map_score,  # truth: weights_only
        per_query_ap=per_query.tolist(),
        neighbours=torch.from_numpy(nbrs),
        top_sim=sims[:, 1].max(),  # truth: weights_only
        config=config,
        ks=list(cfg.ks),
    )
    path = os.path.join(tmpdir, "eval_report.pt")
    torch.save(report, path)
    return path


def save_mining_snapshot(tmpdir):
    cfg = RetrievalConfig(epochs=1)
    trainer, feats, labels = _trained(cfg)
    emb = torch.from_numpy(trainer.embed(feats))
    pos, neg = batch_hard_triplets(emb, torch.from_numpy(labels))
    d_ap = (emb - emb[pos]).norm(dim=1)
    d_an = (emb - emb[neg]).norm(dim=1)
    active = (d_ap - d_an + cfg.margin) > 0
    snapshot = {
        "positives": pos,
        "negatives": neg,
        "active_fraction": active.float().mean().item(),
        "num_active": int(active.sum()),
        "hardest_gap": float((d_an - d_ap).min()),
        "labels_seen": sorted(set(labels.tolist())),
        "rng": torch.get_rng_state(),
        "np_rng": np.random.default_rng(0).bit_generator.state,
    }
    path = os.path.join(tmpdir, "mining.pt")
    torch.save(snapshot, path)
    return path


def save_whole_embedder(tmpdir):
    trainer, _, _ = _trained()
    path = os.path.join(tmpdir, "embedder_full.pt")
    torch.save(trainer.model.eval(), path)  # truth: weights_only
    return path


class LitTripletEmbedder(L.LightningModule):
    def __init__(
        self,
        in_dim: int = 16,
        embed_dim: int = 8,
        lr: float = 1e-2,
        mining: MiningStrategy = MiningStrategy.BATCH_HARD,
        criterion: nn.Module = nn.TripletMarginLoss(margin=0.2),  # truth: hparam
        index_dir: Path = Path("runs/index"),  # truth: hparam
        margin=np.float32(0.2),  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = EmbeddingNet(in_dim, embed_dim)
        self.criterion = criterion

    def training_step(self, batch, batch_idx):
        x, y = batch
        emb = self.net(x)
        pos, neg = batch_hard_triplets(emb, y)
        loss = self.criterion(emb, emb[pos], emb[neg])
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def build_lit_embedder(cfg: RetrievalConfig):
    # the factory passes the enum's value, so `mining` is stored as a plain str
    return LitTripletEmbedder(in_dim=cfg.in_dim, embed_dim=cfg.embed_dim, lr=cfg.lr, mining=cfg.mining.value)


FACTORIES = {
    "MiningStrategy": lambda: MiningStrategy.SEMI_HARD,
    "LitTripletEmbedder": lambda: build_lit_embedder(RetrievalConfig()),
}
