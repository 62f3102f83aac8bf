"""LightningModules for the retrieval, bandit and ticket-routing projects, built from OmegaConf
configs, argparse namespaces and dataclasses by small factory functions."""
import argparse
import dataclasses
import datetime as dt
import os

import lightning
import lightning as L
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.preprocessing import StandardScaler

BASE_CFG = OmegaConf.create({
    "model": {"in_dim": 16, "embed_dim": 8, "temperature": 0.07, "margin": 0.3},
    "optim": {"lr": 3e-4, "weight_decay": 1e-4},
    "eval": {"ks": [1, 5, 10], "metric": "cosine"},
})

ENGLISH_STOPWORDS = frozenset({"the", "a", "an", "is", "my", "on"})


def info_nce(q, k, temperature):
    logits = q @ k.T / temperature
    return F.cross_entropy(logits, torch.arange(q.shape[0]))


class LitContrastiveRetriever(L.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        m = cfg.model
        self.encoder = nn.Sequential(nn.Linear(m.in_dim, 32), nn.ReLU(), nn.Linear(32, m.embed_dim))

    def forward(self, x):
        return F.normalize(self.encoder(x), dim=-1)

    def training_step(self, batch, batch_idx):
        a, b = batch
        loss = info_nce(self(a), self(b), self.hparams.model.temperature)
        self.log("train/info_nce", loss)
        return loss


class LitContrastiveRetrieverFlat(L.LightningModule):
    """Same model, but the config is flattened into plain containers before it is stored."""

    def __init__(self, cfg):
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg, resolve=True))
        self.encoder = nn.Sequential(nn.Linear(cfg.model.in_dim, 32), nn.ReLU(), nn.Linear(32, cfg.model.embed_dim))

    def training_step(self, batch, batch_idx):
        a, b = batch
        za, zb = F.normalize(self.encoder(a), dim=-1), F.normalize(self.encoder(b), dim=-1)
        return info_nce(za, zb, self.hparams["model"]["temperature"])


class LitEmbeddingDistiller(L.LightningModule):
    def __init__(
        self,
        teacher: nn.Module,
        embed_dim: int = 8,
        temperature=torch.tensor(0.07),
        pos_margin: float = 0.3,
        ks=(1, 5),  # truth: hparam
        ks_list=None,
        metric: str = "cosine",
        feature_dtype=np.float32,  # truth: hparam
        device_hint=torch.device("cpu"),
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["teacher"])
        self.teacher = teacher.requires_grad_(False)
        self.student = nn.Linear(16, embed_dim)

    def training_step(self, batch, batch_idx):
        x = batch
        with torch.no_grad():
            t = F.normalize(self.teacher(x), dim=-1)
        s = F.normalize(self.student(x), dim=-1)
        return F.mse_loss(s @ s.T, t @ t.T)


def build_distiller(cfg=BASE_CFG):
    teacher = nn.Sequential(nn.Linear(cfg.model.in_dim, cfg.model.embed_dim))
    return LitEmbeddingDistiller(
        teacher,
        embed_dim=cfg.model.embed_dim,
        pos_margin=cfg.model.margin,
        ks=cfg.eval.ks,
        ks_list=list(cfg.eval.ks),
        metric=cfg.eval.metric,
    )


@dataclasses.dataclass
class ScheduleConfig:
    kind: str = "inverse_sqrt"
    base_epsilon: float = 0.2
    warmup_rounds: int = 10


class LitBanditPolicy(L.LightningModule):
    def __init__(
        self,
        n_arms: int,
        context_dim: int,
        lr: float = 1e-3,
        schedule_cfg: ScheduleConfig = None,  # truth: hparam
        reward_scaler=None,
        started_at=None,
    ):
        super().__init__()
        self.save_hyperparameters("n_arms", "context_dim", "lr", "schedule_cfg", "started_at")
        self.reward_scaler = reward_scaler
        self.q = nn.Linear(context_dim, n_arms)

    def training_step(self, batch, batch_idx):
        x, arm, reward = batch
        pred = self.q(x).gather(1, arm[:, None]).squeeze(1)
        return F.smooth_l1_loss(pred, reward)


def make_policy(arm_names=("news", "sports", "music"), context_dim=5):
    rng = np.random.default_rng(3)
    scaler = StandardScaler().fit(rng.normal(size=(20, 1)))
    return LitBanditPolicy(
        n_arms=len(arm_names),
        context_dim=context_dim,
        lr=float(np.float32(1e-3)),
        schedule_cfg=ScheduleConfig(base_epsilon=0.1),
        reward_scaler=scaler,
        started_at=dt.datetime(2024, 5, 1).isoformat(),
    )


class LitHashingTextHead(L.LightningModule):
    def __init__(
        self,
        n_features: int = 256,
        num_classes: int = 3,
        ngram_range=(1, 2),
        preprocess=lambda s: s.lower().strip(),  # truth: hparam
        stopwords=ENGLISH_STOPWORDS,  # truth: hparam
        label_smoothing: float = 0.0,
        lr: float = 0.05,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.fc = nn.Linear(n_features, num_classes)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.fc(x), y, label_smoothing=self.hparams.label_smoothing)


def text_head_from_args(argv=()):
    p = argparse.ArgumentParser()
    p.add_argument("--n-features", type=int, default=256)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--stopwords", nargs="*", default=["the", "a"])
    args = p.parse_args(list(argv))
    return LitHashingTextHead(n_features=args.n_features, label_smoothing=args.label_smoothing,
                              stopwords=ENGLISH_STOPWORDS | set(args.stopwords))


class LitArgsTextHead(L.LightningModule):
    """Stores the argparse Namespace as hyperparameters (Lightning keeps a plain dict)."""

    def __init__(self, args):
        super().__init__()
        self.save_hyperparameters(args)
        self.fc = nn.Linear(args.n_features, args.num_classes)


def args_head():
    args = argparse.Namespace(n_features=64, num_classes=3, lr=0.05, stopwords=sorted(ENGLISH_STOPWORDS))
    return LitArgsTextHead(args)


def save_retriever_ckpt(tmpdir):
    cfg = OmegaConf.merge(BASE_CFG, OmegaConf.from_dotlist(["model.embed_dim=4"]))
    module = LitContrastiveRetrieverFlat(cfg)
    ckpt = {
        "state_dict": module.state_dict(),
        "hyper_parameters": OmegaConf.to_container(cfg, resolve=True),
        "epoch": 0,
        "global_step": 0,
        "pytorch-lightning_version": lightning.__version__,
    }
    path = os.path.join(tmpdir, "retriever.ckpt")
    torch.save(ckpt, path)
    return path


def save_policy_ckpt(tmpdir):
    policy = make_policy()
    ckpt = {"state_dict": policy.state_dict(), "n_arms": policy.hparams.n_arms}
    ckpt["schedule"] = policy.hparams.schedule_cfg  # truth: weights_only
    ckpt["schedule_dict"] = dataclasses.asdict(policy.hparams.schedule_cfg)
    ckpt["scaler_mean"] = policy.reward_scaler.mean_.tolist()
    ckpt["scaler_scale"] = policy.reward_scaler.scale_  # truth: weights_only
    ckpt["started_at"] = policy.hparams.started_at
    path = os.path.join(tmpdir, "policy.ckpt")
    torch.save(ckpt, path)
    return path


FACTORIES = {
    "LitContrastiveRetriever": lambda: LitContrastiveRetriever(OmegaConf.merge(BASE_CFG, {})),
    "LitContrastiveRetrieverFlat": lambda: LitContrastiveRetrieverFlat(BASE_CFG),
    "LitEmbeddingDistiller": build_distiller,
    "LitBanditPolicy": make_policy,
    "LitHashingTextHead": text_head_from_args,
    "LitArgsTextHead": args_head,
}
