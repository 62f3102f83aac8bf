"""Lightning modules for LoRA fine-tuning, CTR and PDE surrogates, built by a factory from configs."""
import argparse
import enum
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

CONFIG = """
model:
  name: lora_lm
  vocab: 32
  dim: 8
lora:
  r: 4
  alpha: 8.0
optim:
  lr: 2.0e-4
  betas: [0.9, 0.95]
  warmup: 10
precision: bf16
data:
  root: data/pde
  nx: 32
  length: 1.0
"""


class Stage(enum.Enum):
    PRETRAIN = "pretrain"
    FINETUNE = "finetune"


@dataclass
class LoraSpec:
    r: int = 4
    alpha: float = 8.0
    targets: list = field(default_factory=lambda: ["q", "v"])


class LabelSmoothedCE(nn.Module):
    def __init__(self, smoothing=0.1):
        super().__init__()
        self.smoothing = smoothing

    def forward(self, logits, target):
        return F.cross_entropy(logits, target, label_smoothing=self.smoothing)


class RelativeL2(nn.Module):
    def forward(self, pred, target):
        return torch.linalg.vector_norm(pred - target) / torch.linalg.vector_norm(target)


class LitLoraLM(L.LightningModule):
    def __init__(
        self,
        model_cfg: DictConfig,  # truth: hparam
        lora: LoraSpec,  # truth: hparam
        loss_fn: nn.Module,  # truth: hparam
        lr: float = 2e-4,
        betas=(0.9, 0.95),  # truth: hparam
        warmup: int = 10,
        precision: str = "bf16",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(model_cfg.vocab, model_cfg.dim)
        self.head = nn.Linear(model_cfg.dim, model_cfg.vocab)
        self.loss_fn = loss_fn

    def training_step(self, batch, batch_idx):
        logits = self.head(self.emb(batch[:, :-1]))
        return self.loss_fn(logits.flatten(0, 1), batch[:, 1:].flatten())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, betas=tuple(self.hparams.betas))


class LitLoraLMPlain(L.LightningModule):
    """Clean: the config goes in as a plain container, the loss is ignored."""

    def __init__(
        self,
        model: dict,
        lora_r: int,
        lora_alpha: float,
        loss_fn: Optional[nn.Module] = None,
        lr: float = 2e-4,
        stage: str = "finetune",
        betas: list = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["loss_fn"])
        self.emb = nn.Embedding(model["vocab"], model["dim"])
        self.head = nn.Linear(model["dim"], model["vocab"])
        self.loss_fn = loss_fn or nn.CrossEntropyLoss()

    def training_step(self, batch, batch_idx):
        logits = self.head(self.emb(batch[:, :-1]))
        return self.loss_fn(logits.flatten(0, 1), batch[:, 1:].flatten())


class LitFromConfig(L.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = nn.Linear(cfg.model.dim, cfg.model.vocab)

    def training_step(self, batch, batch_idx):
        return self.net(batch).sum()


class LitPDESurrogate(L.LightningModule):
    def __init__(
        self,
        width: int,
        dx,  # truth: hparam
        norm_stats: dict,  # truth: hparam
        stage: Stage,  # truth: hparam
        data_root: Path,  # truth: hparam
        criterion: nn.Module = None,
        cfl: float = 0.4,
        n_modes: int = 4,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["criterion"])
        self.criterion = criterion or RelativeL2()
        self.lift = nn.Conv1d(1, width, 1)
        self.proj = nn.Conv1d(width, 1, 1)

    def training_step(self, batch, batch_idx):
        u0, u1 = batch
        return self.criterion(self.proj(torch.tanh(self.lift(u0))), u1)


class LitPDEPlain(L.LightningModule):
    """Clean: every hparam converted to builtins by the factory."""

    def __init__(
        self,
        width: int = 8,
        dx: float = 1 / 32,
        norm_stats: dict = None,
        stage: str = "pretrain",
        data_root: str = "data/pde",
        grid: torch.Tensor = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.lift = nn.Conv1d(1, width, 1)

    def training_step(self, batch, batch_idx):
        return self.lift(batch).sum()


class LitCTR(L.LightningModule):
    def __init__(
        self,
        args: argparse.Namespace,  # truth: hparam
        vocab_sizes: dict,
        pos_weight: torch.Tensor,
        hash_fn=None,  # truth: hparam
        base_ctr=None,  # truth: hparam
        dim: int = 4,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.ModuleDict({k: nn.Embedding(n, dim) for k, n in vocab_sizes.items()})
        self.out = nn.Linear(dim * len(vocab_sizes), 1)

    def training_step(self, batch, batch_idx):
        feats, y = batch
        h = torch.cat([self.emb[k](feats[k]) for k in self.emb], 1)
        return F.binary_cross_entropy_with_logits(self.out(h).squeeze(1), y, pos_weight=self.hparams.pos_weight)


class LitCalibratedCTR(L.LightningModule):
    """Clean: only the named hparams are stored."""

    def __init__(
        self,
        vocab_size: int,
        temperature,
        bins: int = 10,
        frame=None,
        lr: float = 1e-2,
    ):
        super().__init__()
        self.save_hyperparameters("vocab_size", "temperature", "bins", "lr")
        self.emb = nn.EmbeddingBag(vocab_size, 4)
        self.frame = frame

    def training_step(self, batch, batch_idx):
        return self.emb(batch).sum() / self.hparams.temperature


# ---------------------------------------------------------------- factory

def load_config():
    return OmegaConf.create(CONFIG)


def parse_ctr_args(argv=()):
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--buckets", type=int, default=64)
    return p.parse_args(list(argv))


def _frame(seed=0, n=64):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"user": rng.integers(0, 20, n), "item": rng.integers(0, 9, n), "click": rng.random(n) < 0.3})


def _norm(traj):
    return {"mean": traj.mean(), "std": traj.std()}


def build_module(name, cfg=None):
    cfg = cfg or load_config()
    if name == "lora_lm":
        return LitLoraLM(
            model_cfg=cfg.model,
            lora=LoraSpec(**cfg.lora),
            loss_fn=LabelSmoothedCE(0.1),
            lr=cfg.optim.lr,
            betas=cfg.optim.betas,
            warmup=cfg.optim.warmup,
            precision=cfg.precision,
        )
    if name == "lora_lm_plain":
        plain = OmegaConf.to_container(cfg, resolve=True)
        return LitLoraLMPlain(
            model=plain["model"],
            lora_r=plain["lora"]["r"],
            lora_alpha=plain["lora"]["alpha"],
            loss_fn=LabelSmoothedCE(),
            lr=plain["optim"]["lr"],
            stage=Stage.FINETUNE.value,
            betas=plain["optim"]["betas"],
        )
    if name == "from_config":
        return LitFromConfig(cfg)
    x = np.linspace(0.0, cfg.data.length, cfg.data.nx, endpoint=False)
    traj = np.sin(2 * math.pi * x)
    if name == "pde":
        return LitPDESurrogate(
            width=8,
            dx=x[1] - x[0],
            norm_stats=_norm(traj),
            stage=Stage.PRETRAIN,
            data_root=Path(cfg.data.root),
            criterion=RelativeL2(),
            cfl=0.4,
            n_modes=int(np.log2(cfg.data.nx)),
        )
    if name == "pde_plain":
        return LitPDEPlain(
            width=8,
            dx=float(x[1] - x[0]),
            norm_stats={k: v.item() for k, v in _norm(traj).items()},
            stage=Stage.PRETRAIN.name.lower(),
            data_root=str(Path(cfg.data.root)),
            grid=torch.from_numpy(x),
        )
    df = _frame()
    if name == "ctr":
        return LitCTR(
            args=parse_ctr_args(),
            vocab_sizes={c: df[c].nunique() for c in ("user", "item")},
            pos_weight=torch.tensor(1.0 / df["click"].mean() - 1.0),
            hash_fn=lambda v: hash(v) % 64,
            base_ctr=df["click"].mean(),
        )
    if name == "ctr_calibrated":
        return LitCalibratedCTR(vocab_size=int(df["user"].max()) + 1, temperature=round(float(np.log1p(df["click"].mean()) * 10), 3),
                                frame=df)
    raise KeyError(name)


FACTORIES = {
    "LitLoraLM": lambda: build_module("lora_lm"),
    "LitLoraLMPlain": lambda: build_module("lora_lm_plain"),
    "LitFromConfig": lambda: build_module("from_config"),
    "LitPDESurrogate": lambda: build_module("pde"),
    "LitPDEPlain": lambda: build_module("pde_plain"),
    "LitCTR": lambda: build_module("ctr"),
    "LitCalibratedCTR": lambda: build_module("ctr_calibrated"),
    "LoraSpec": LoraSpec,
}
NOT_BUILT = {"Stage": "an Enum, not built by calling it"}
