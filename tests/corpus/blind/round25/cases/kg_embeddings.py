"""Knowledge-graph embeddings (TransE, DistMult) with Bernoulli negative sampling on a toy FB15k-like graph
("/m/e007" entity ids), integer triples from `pd.factorize`, filtered tail ranking (MRR, Hits@k) and an
OmegaConf config, as in most KGE repositories that grew out of a YAML file."""
from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf


class ScoreFn(Enum):
    TRANSE = "transe"
    DISTMULT = "distmult"


def default_config():
    return OmegaConf.create({
        "data": {"root": "data/toy_kg", "n_entities": 24, "n_relations": 4, "n_triples": 120, "seed": 0},
        "model": {"name": "transe", "dim": 16, "margin": 1.0, "p_norm": 1},
        "train": {"epochs": 3, "batch_size": 32, "lr": 0.01, "neg_ratio": 2, "test_frac": 0.1},
    })


def synthetic_triples(n_entities: int, n_relations: int, n_triples: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    heads = rng.integers(0, n_entities, n_triples)
    rels = rng.integers(0, n_relations, n_triples)
    tails = (heads * (rels + 1) + rng.integers(0, 3, n_triples)) % n_entities
    df = pd.DataFrame({"head": [f"/m/e{h:03d}" for h in heads], "relation": [f"rel_{r}" for r in rels],
                       "tail": [f"/m/e{t:03d}" for t in tails]})
    return df.drop_duplicates().reset_index(drop=True)


@dataclass
class KGVocab:
    entities: list = field(default_factory=list)
    relations: list = field(default_factory=list)

    @property
    def ent2id(self) -> dict:
        return {e: i for i, e in enumerate(self.entities)}

    @property
    def rel2id(self) -> dict:
        return {r: i for i, r in enumerate(self.relations)}


def build_vocab(df: pd.DataFrame):
    ent_codes, ent_uniques = pd.factorize(pd.concat([df["head"], df["tail"]]), sort=True)
    rel_codes, rel_uniques = pd.factorize(df["relation"], sort=True)
    n = len(df)
    triples = np.stack([ent_codes[:n], rel_codes, ent_codes[n:]], axis=1)
    vocab = KGVocab(entities=ent_uniques.tolist(), relations=list(rel_uniques))
    return vocab, triples, rel_uniques


def split_triples(triples: np.ndarray, test_frac: float, seed: int = 0):
    perm = np.random.default_rng(seed).permutation(len(triples))
    n_test = max(1, int(len(triples) * test_frac))
    return triples[perm[n_test:]], triples[perm[:n_test]]


def known_tails(triples: np.ndarray):
    known = defaultdict(set)
    for h, r, t in triples.tolist():
        known[(h, r)].add(t)
    return known


class TransE(nn.Module):
    def __init__(self, n_ent: int = 24, n_rel: int = 4, dim: int = 16, p_norm: int = 1, margin: float = 1.0):
        super().__init__()
        self.ent = nn.Embedding(n_ent, dim)
        self.rel = nn.Embedding(n_rel, dim)
        bound = 6 / math.sqrt(dim)
        nn.init.uniform_(self.ent.weight, -bound, bound)
        nn.init.uniform_(self.rel.weight, -bound, bound)
        self.p_norm, self.margin = p_norm, margin

    def score(self, h, r, t):
        return -(self.ent(h) + self.rel(r) - self.ent(t)).norm(p=self.p_norm, dim=-1)

    def loss(self, pos, neg):
        target = torch.ones(len(pos))
        return F.margin_ranking_loss(self.score(*pos.T), self.score(*neg.T), target, margin=self.margin)


class DistMult(nn.Module):
    def __init__(self, n_ent: int = 24, n_rel: int = 4, dim: int = 16, reg: float = 1e-3):
        super().__init__()
        self.ent = nn.Embedding(n_ent, dim)
        self.rel = nn.Embedding(n_rel, dim)
        nn.init.xavier_uniform_(self.ent.weight)
        nn.init.xavier_uniform_(self.rel.weight)
        self.reg = reg

    def score(self, h, r, t):
        return (self.ent(h) * self.rel(r) * self.ent(t)).sum(-1)

    def loss(self, pos, neg):
        pos_s, neg_s = self.score(*pos.T), self.score(*neg.T)
        l2 = self.ent.weight.pow(2).mean() + self.rel.weight.pow(2).mean()
        return F.softplus(-pos_s).mean() + F.softplus(neg_s).mean() + self.reg * l2


class BernoulliNegativeSampler:
    # replace the head with probability tph / (tph + hpt) of the triple's relation (Wang et al., 2014)
    def __init__(self, triples: np.ndarray | None = None, n_ent: int = 24, n_rel: int = 4, neg_ratio: int = 2, seed: int = 0):
        if triples is None:
            triples = np.stack([np.arange(8) % n_ent, np.arange(8) % n_rel, (np.arange(8) * 3) % n_ent], axis=1)
        self.n_ent, self.neg_ratio = n_ent, neg_ratio
        df = pd.DataFrame(triples, columns=["h", "r", "t"])
        tph = df.groupby(["r", "h"]).size().groupby("r").mean()
        hpt = df.groupby(["r", "t"]).size().groupby("r").mean()
        self.head_prob = (tph / (tph + hpt)).reindex(range(n_rel), fill_value=0.5).to_numpy()
        self.gen = torch.Generator().manual_seed(seed)

    def corrupt(self, pos: torch.Tensor) -> torch.Tensor:
        neg = pos.repeat_interleave(self.neg_ratio, 0).clone()
        p = torch.from_numpy(self.head_prob).float()[neg[:, 1]]
        replace_head = torch.rand(len(neg), generator=self.gen) < p
        rand_ent = torch.randint(0, self.n_ent, (len(neg),), generator=self.gen)
        neg[replace_head, 0] = rand_ent[replace_head]
        neg[~replace_head, 2] = rand_ent[~replace_head]
        return neg


class KGETrainer:
    def __init__(self, model: nn.Module | None = None, sampler: BernoulliNegativeSampler | None = None,
                 triples: np.ndarray | None = None, lr: float = 0.01, batch_size: int = 32):
        self.model = model or TransE()
        self.sampler = sampler or BernoulliNegativeSampler()
        self.triples = triples if triples is not None else np.zeros((4, 3), dtype=np.int64)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.batch_size = batch_size
        self.loss_history, self.epoch, self.mean_rank = [], 0, None

    def fit(self, epochs: int) -> float:
        data = torch.from_numpy(self.triples).long()
        for _ in range(epochs):
            perm = torch.randperm(len(data), generator=self.sampler.gen)
            total = 0.0
            for i in range(0, len(data), self.batch_size):
                pos = data[perm[i:i + self.batch_size]]
                neg = self.sampler.corrupt(pos)
                loss = self.model.loss(pos.repeat_interleave(self.sampler.neg_ratio, 0), neg)
                self.opt.zero_grad(); loss.backward(); self.opt.step()
                total += loss.item() * len(pos)
            self.loss_history.append(total / len(data))
            self.epoch += 1
        return self.loss_history[-1]

    @torch.no_grad()
    def evaluate(self, test: np.ndarray, known) -> dict:
        all_ent = torch.arange(self.model.ent.num_embeddings)
        ranks = []
        for h, r, t in test.tolist():
            scores = self.model.score(torch.full_like(all_ent, h), torch.full_like(all_ent, r), all_ent)
            for other in known.get((h, r), ()):
                if other != t:
                    scores[other] = -math.inf
            ranks.append(int((scores > scores[t]).sum()) + 1)
        ranks = np.asarray(ranks)
        self.mean_rank = ranks.mean()
        return {"mrr": float(np.mean(1.0 / ranks)), "hits@1": (ranks <= 1).mean(), "hits@10": float((ranks <= 10).mean())}


def build_trainer(cfg, vocab, train):
    n_ent, n_rel = len(vocab.entities), len(vocab.relations)
    if ScoreFn(cfg.model.name) is ScoreFn.TRANSE:
        model = TransE(n_ent, n_rel, dim=cfg.model.dim, p_norm=cfg.model.p_norm, margin=cfg.model.margin)
    else:
        model = DistMult(n_ent, n_rel, dim=cfg.model.dim)
    sampler = BernoulliNegativeSampler(train, n_ent=n_ent, n_rel=n_rel, neg_ratio=cfg.train.neg_ratio, seed=cfg.data.seed)
    return KGETrainer(model, sampler, train, lr=cfg.train.lr, batch_size=cfg.train.batch_size)


def setup_experiment(cfg, seed: int = 0):
    torch.manual_seed(seed)
    d = cfg.data
    df = synthetic_triples(d.n_entities, d.n_relations, d.n_triples, seed=d.seed)
    vocab, triples, rel_index = build_vocab(df)
    train, test = split_triples(triples, cfg.train.test_frac, seed=d.seed)
    return df, vocab, triples, rel_index, test, build_trainer(cfg, vocab, train)


FACTORIES = {
    "ScoreFn": lambda: ScoreFn.TRANSE,
}


def save_transe_checkpoint(tmpdir):
    cfg = default_config()
    df, vocab, triples, rel_index, test, trainer = setup_experiment(cfg, seed=0)
    final_loss = trainer.fit(cfg.train.epochs)
    metrics = trainer.evaluate(test, known_tails(triples))
    ckpt = {
        "model_state": trainer.model.state_dict(), "optimizer": trainer.opt.state_dict(),
        "score_fn": ScoreFn(cfg.model.name),  # truth: weights_only
        "score_fn_name": cfg.model.name,
        "entity2id": vocab.ent2id, "relation2id": vocab.rel2id,
        "relations": rel_index,  # truth: weights_only
        "final_loss": final_loss, "mrr": metrics["mrr"],
        "hits_at_1": metrics["hits@1"],  # truth: weights_only
        "hits_at_10": metrics["hits@10"], "margin": cfg.model.margin, "num_triples": len(df),
    }
    path = os.path.join(tmpdir, "transe.pt")
    torch.save(ckpt, path)
    return path


def save_distmult_sampler(tmpdir):
    cfg = OmegaConf.merge(default_config(), OmegaConf.from_dotlist(["model.name=distmult", "train.epochs=2"]))
    df, vocab, triples, rel_index, test, trainer = setup_experiment(cfg, seed=1)
    trainer.fit(cfg.train.epochs)
    known = known_tails(triples)
    trainer.evaluate(test, known)
    sampler = trainer.sampler
    ckpt = {"model_state": trainer.model.state_dict(), "epoch": trainer.epoch}
    ckpt["bern_head_prob"] = sampler.head_prob  # truth: weights_only
    ckpt["bern_head_prob_t"] = torch.from_numpy(sampler.head_prob)
    ckpt["sampler_gen_state"] = sampler.gen.get_state()
    ckpt["neg_ratio"] = sampler.neg_ratio
    ckpt["mean_rank"] = trainer.mean_rank  # truth: weights_only
    ckpt["filter_index"] = known  # truth: weights_only
    ckpt["filter_pairs"] = dict(known)
    ckpt["entity_norm_max"] = trainer.model.ent.weight.norm(dim=1).max().item()
    ckpt["loss_history"] = trainer.loss_history
    path = os.path.join(tmpdir, "distmult.pt")
    torch.save(ckpt, path)
    return path


def save_kg_training_state(tmpdir):
    cfg = default_config()
    df, vocab, triples, rel_index, test, trainer = setup_experiment(cfg, seed=2)
    trainer.fit(1)
    degree = np.bincount(triples[:, 0], minlength=len(vocab.entities))
    state = {"cfg": OmegaConf.to_container(cfg, resolve=True), "epoch": trainer.epoch}
    state["model_cfg"] = cfg.model  # truth: weights_only
    state["data_root"] = Path(cfg.data.root)  # truth: weights_only
    state["data_root_str"] = os.fspath(Path(cfg.data.root))
    state["degree_hist"] = degree.tolist()
    state["max_degree"] = int(degree.max())
    state["isolated"] = int((degree == 0).sum())
    state["relation_freq"] = Counter(df["relation"])
    state["model_state"] = trainer.model.state_dict()
    path = os.path.join(tmpdir, "kge_state.pt")
    torch.save(state, path)
    return path


def save_embedding_export(tmpdir):
    cfg = default_config()
    df, vocab, triples, rel_index, test, trainer = setup_experiment(cfg, seed=3)
    trainer.fit(1)
    ent_names = np.unique(np.concatenate([df["head"].to_numpy(dtype=str), df["tail"].to_numpy(dtype=str)]))
    rel_arr = df["relation"].to_numpy(dtype=str)
    path = os.path.join(tmpdir, "embeddings.pt")
    torch.save(
        dict(
            entity_emb=trainer.model.ent.weight.detach().clone(), relation_emb=trainer.model.rel.weight.detach().clone(),
            id2entity=list(ent_names),  # truth: weights_only
            id2relation=list(rel_index),
            relation_types=Counter(rel_arr),  # truth: weights_only
            relation_counts=Counter(df["relation"].tolist()), score_fn=ScoreFn.TRANSE.value,
            dim=trainer.model.ent.embedding_dim, emb_shape=trainer.model.ent.weight.shape,
            exported_at=pd.Timestamp.now(),  # truth: weights_only
            exported_at_iso=pd.Timestamp.now().isoformat(),
        ),
        path,
    )
    return path


def save_filtered_eval_report(tmpdir):
    cfg = default_config()
    df, vocab, triples, rel_index, test, trainer = setup_experiment(cfg, seed=4)
    trainer.fit(1)
    metrics = trainer.evaluate(test, known_tails(triples))
    report = {
        "mrr": round(metrics["mrr"], 4),
        "hits": {k: float(v) for k, v in metrics.items() if k.startswith("hits")},
        "mean_rank": float(trainer.mean_rank), "n_test": int(test.shape[0]),
        "entities": vocab.entities, "relations": vocab.relations,
        "split_sizes": (len(trainer.triples), len(test)),
    }
    path = os.path.join(tmpdir, "eval_report.pt")
    torch.save(report, path)
    return path
