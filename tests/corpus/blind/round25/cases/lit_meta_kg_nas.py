"""Lightning few-shot, KG-embedding and NAS models, built by `build_*` factories from one OmegaConf config."""
from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Callable, Sequence

import lightning as L
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch.func import functional_call


class Distance(Enum):
    EUCLIDEAN = "euclidean"
    COSINE = "cosine"


@dataclass
class NASSpace:
    ops: list = field(default_factory=lambda: ["linear", "residual", "skip"])
    widths: list = field(default_factory=lambda: [8, 16])


def default_cfg() -> DictConfig:
    return OmegaConf.create({
        "fewshot": {"n_way": 5, "feat_dim": 8, "embed_dim": 16, "distance": "cosine", "lr": 1e-3, "shots": [1, 5]},
        "maml": {"inner_lr": 0.4, "inner_steps": 2, "first_order": True, "meta_batch": 4},
        "kge": {"dim": 16, "margin": 2.0, "neg_k": 4, "lr": 1e-2},
        "nas": {"genotype": ["linear", "residual"], "width": 16, "lr": 3e-3, "dropout": 0.1},
        "trial": {"lr": 1e-3, "width": 16, "depth": 2, "seed": 0},
    })


def uniform_corrupt(triples: torch.Tensor, n_ent: int, k: int = 1, generator=None) -> torch.Tensor:
    neg = triples.repeat_interleave(k, 0).clone()
    neg[:, 2] = torch.randint(0, n_ent, (len(neg),), generator=generator)
    return neg


def toy_triples(n_ent: int = 12, n_rel: int = 3, n: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, n_ent, n), rng.integers(0, n_rel, n), rng.integers(0, n_ent, n)], axis=1)


class LitProtoNet(L.LightningModule):
    def __init__(
        self,
        feat_dim: int = 8,
        embed_dim: int = 16,
        n_way: int = 5,
        distance: Distance = Distance.EUCLIDEAN,  # truth: hparam
        lr: float = 1e-3,
        temperature: float = 1.0,
        shots: Sequence[int] = (1,),  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Linear(feat_dim, 32), nn.ReLU(), nn.Linear(32, embed_dim))

    def training_step(self, batch, batch_idx):
        xs, ys, xq, yq = batch
        zs, zq = self.encoder(xs), self.encoder(xq)
        protos = torch.stack([zs[ys == c].mean(0) for c in range(self.hparams.n_way)])
        cos = F.normalize(zq, dim=-1) @ F.normalize(protos, dim=-1).T * self.hparams.temperature
        return F.cross_entropy(cos if self.hparams.distance is Distance.COSINE else -torch.cdist(zq, protos) ** 2, yq)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class LitMAML(L.LightningModule):
    def __init__(
        self,
        backbone: nn.Module,  # truth: hparam
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        first_order: bool = False,
        task_weights: np.ndarray | None = None,  # truth: hparam
        support_sizes: Sequence[int] = range(1, 6),  # truth: hparam
        meta_batch: int = 4,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = backbone

    def adapt(self, xs, ys):
        params = dict(self.backbone.named_parameters())
        for _ in range(self.hparams.inner_steps):
            loss = F.cross_entropy(functional_call(self.backbone, params, (xs,)), ys)
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=not self.hparams.first_order)
            params = {n: p - self.hparams.inner_lr * g for (n, p), g in zip(params.items(), grads)}
        return params


class LitMetaSGD(L.LightningModule):
    def __init__(
        self,
        backbone: nn.Module | None = None,
        lr_init: float = 0.01,  # truth: hparam
        meta_lr: float = 1e-3,
        log_dir: str = "runs/meta_sgd",
        lr_lambda: Callable[[int], float] | None = None,  # truth: hparam
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone or nn.Linear(8, 5)
        self.inner_lrs = nn.ParameterList([nn.Parameter(torch.full_like(p, float(lr_init)))
                                           for p in self.backbone.parameters()])

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.meta_lr)
        return [opt], [torch.optim.lr_scheduler.LambdaLR(opt, self.hparams.lr_lambda or (lambda e: 1.0))]


class LitKGE(L.LightningModule):
    def __init__(
        self,
        num_entities: int,  # truth: hparam
        num_relations: int,
        dim: int = 32,
        score_fn: str = "transe",
        loss_fn: nn.Module = nn.MarginRankingLoss(margin=1.0),  # truth: hparam
        neg_sampler: Callable = functools.partial(uniform_corrupt, k=2),  # truth: hparam
        entity_names: list | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.ent = nn.Embedding(int(num_entities), dim)
        self.rel = nn.Embedding(num_relations, dim)
        self.loss_fn = loss_fn

    def training_step(self, batch, batch_idx):
        neg = self.hparams.neg_sampler(batch, self.ent.num_embeddings)
        pos = batch.repeat_interleave(len(neg) // len(batch), 0)
        score = lambda h, r, t: -(self.ent(h) + self.rel(r) - self.ent(t)).norm(p=1, dim=-1)
        return self.loss_fn(score(*pos.T), score(*neg.T), torch.ones(len(pos)))


class LitKGEBase(L.LightningModule):
    def __init__(self, num_entities: int = 12, num_relations: int = 3, dim: int = 16, lr: float = 1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.ent, self.rel = nn.Embedding(num_entities, dim), nn.Embedding(num_relations, dim)


class LitTransH(LitKGEBase):
    def __init__(
        self,
        p_norm: int = 1,
        relation_init: Callable = nn.init.xavier_uniform_,  # truth: hparam
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.norm_vec = nn.Embedding(self.hparams.num_relations, self.hparams.dim)
        relation_init(self.rel.weight)
        relation_init(self.norm_vec.weight)

    def score(self, h, r, t):
        w = F.normalize(self.norm_vec(r), dim=-1)
        eh, et = self.ent(h), self.ent(t)
        eh, et = eh - (eh * w).sum(-1, keepdim=True) * w, et - (et * w).sum(-1, keepdim=True) * w
        return -(eh + self.rel(r) - et).norm(p=self.hparams.p_norm, dim=-1)


class LitDistMult(L.LightningModule):
    def __init__(self, num_entities: int = 12, num_relations: int = 3, dim: int = 16, lr: float = 1e-2,
                 regularizer: str = "n3", relation_freq: np.ndarray | None = None, vocab_path: Path | None = None):
        super().__init__()
        self.save_hyperparameters("num_entities", "num_relations", "dim", "lr", "regularizer")
        prior = relation_freq if relation_freq is not None else np.full(num_relations, 1.0 / num_relations)
        self.register_buffer("relation_prior", torch.as_tensor(prior, dtype=torch.float32))
        self.vocab_path = str(vocab_path) if vocab_path is not None else None
        self.ent, self.rel = nn.Embedding(num_entities, dim), nn.Embedding(num_relations, dim)


class LitChildNet(L.LightningModule):
    def __init__(
        self,
        genotype: tuple = ("linear", "residual"),
        width: int = 16,
        lr: float = 3e-3,
        search_space: NASSpace | None = None,  # truth: hparam
        allowed_ops: frozenset = frozenset({"linear", "residual", "skip"}),  # truth: hparam
        optimizer_cls: type = torch.optim.AdamW,  # truth: hparam
        trial_started: datetime.datetime | None = None,  # truth: hparam
        dropout: float = 0.0,
        excluded_ops: set | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        if any(op not in allowed_ops for op in genotype):
            raise ValueError(f"genotype {genotype} leaves the search space")
        self.stem = nn.Linear(6, width)
        self.cells = nn.ModuleList([nn.Linear(width, width) for _ in genotype])
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, 3))

    def forward(self, x):
        h = F.relu(self.stem(x))
        for op, cell in zip(self.hparams.genotype, self.cells):
            h = F.relu(cell(h)) if op == "linear" else h + F.relu(cell(h))
        return self.head(h)

    def configure_optimizers(self):
        return self.hparams.optimizer_cls(self.parameters(), lr=self.hparams.lr)


class LitHPOTrial(L.LightningModule):
    def __init__(self, cfg: DictConfig):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        hidden = [m for _ in range(cfg.depth - 1) for m in (nn.Linear(cfg.width, cfg.width), nn.ReLU())]
        self.net = nn.Sequential(nn.Linear(6, cfg.width), nn.ReLU(), *hidden, nn.Linear(cfg.width, 3))


class LitHPOTrialPlain(L.LightningModule):
    def __init__(self, cfg: DictConfig):
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg, resolve=True))
        self.net = nn.Sequential(nn.Linear(6, cfg.width), nn.ReLU(), nn.Linear(cfg.width, 3))


def build_protonet(cfg: DictConfig) -> LitProtoNet:
    fs = cfg.fewshot
    return LitProtoNet(fs.feat_dim, fs.embed_dim, fs.n_way, distance=Distance(fs.distance), lr=fs.lr,
                       temperature=float(np.sqrt(fs.embed_dim)), shots=fs.shots)


def build_maml(cfg: DictConfig) -> LitMAML:
    m, fs = cfg.maml, cfg.fewshot
    backbone = nn.Sequential(nn.Linear(fs.feat_dim, 32), nn.ReLU(), nn.Linear(32, fs.n_way))
    weights = np.linspace(1.0, 2.0, m.meta_batch)
    weights /= weights.sum()
    return LitMAML(backbone, inner_lr=m.inner_lr, inner_steps=m.inner_steps, first_order=m.first_order,
                   task_weights=weights, meta_batch=m.meta_batch)


def build_meta_sgd(cfg: DictConfig) -> LitMetaSGD:
    decay = 0.95
    return LitMetaSGD(backbone=nn.Linear(cfg.fewshot.feat_dim, cfg.fewshot.n_way), lr_init=np.float32(cfg.maml.inner_lr),
                      lr_lambda=lambda epoch: decay ** epoch, seed=int(np.int64(7)))


def build_kge(cfg: DictConfig) -> LitKGE:
    triples = toy_triples()
    n_ent = triples[:, [0, 2]].max() + 1
    return LitKGE(num_entities=n_ent, num_relations=len(np.unique(triples[:, 1])), dim=cfg.kge.dim,
                  loss_fn=nn.MarginRankingLoss(margin=cfg.kge.margin),
                  entity_names=[f"/m/e{i:03d}" for i in range(int(n_ent))])


def build_distmult(cfg: DictConfig) -> LitDistMult:
    triples = toy_triples(seed=1)
    return LitDistMult(int(triples[:, [0, 2]].max()) + 1, np.unique(triples[:, 1]).size, dim=cfg.kge.dim, lr=cfg.kge.lr,
                       relation_freq=np.bincount(triples[:, 1], minlength=3) / len(triples),
                       vocab_path=Path("data/toy_kg") / "entities.tsv")


def build_child(cfg: DictConfig, space: NASSpace | None = None) -> LitChildNet:
    nas = cfg.nas
    return LitChildNet(genotype=tuple(nas.genotype), width=nas.width, lr=nas.lr, search_space=space or NASSpace(),
                       trial_started=datetime.datetime.now(), dropout=float(np.float32(nas.dropout)),
                       excluded_ops=set(NASSpace().ops) - set(nas.genotype))


FACTORIES = {
    "Distance": lambda: Distance.COSINE,
    "LitProtoNet": lambda: build_protonet(default_cfg()),
    "LitMAML": lambda: build_maml(default_cfg()),
    "LitMetaSGD": lambda: build_meta_sgd(default_cfg()),
    "LitKGE": lambda: build_kge(default_cfg()),
    "LitDistMult": lambda: build_distmult(default_cfg()),
    "LitTransH": lambda: LitTransH(p_norm=2, num_entities=20, num_relations=4, dim=default_cfg().kge.dim),
    "LitChildNet": lambda: build_child(default_cfg()),
    "LitHPOTrial": lambda: LitHPOTrial(OmegaConf.merge(default_cfg().trial, OmegaConf.from_dotlist(["depth=3"]))),
    "LitHPOTrialPlain": lambda: LitHPOTrialPlain(default_cfg().trial),
}


def save_distmult_export(tmpdir):
    model = build_distmult(default_cfg())
    path = str(Path(tmpdir) / "distmult_export.pt")
    torch.save({
        "state_dict": model.state_dict(),
        "hparams": model.hparams,  # truth: weights_only
        "hparams_plain": dict(model.hparams),
        "relation_prior": model.relation_prior.clone(),
        "vocab_path": model.vocab_path,
        "excluded_ops": build_child(default_cfg()).hparams.excluded_ops,
        "lightning_version": str(L.__version__),
    }, path)
    return path

