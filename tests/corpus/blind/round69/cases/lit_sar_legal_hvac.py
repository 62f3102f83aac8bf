"""LightningModules and DataModules of the three projects (SAR ships, legal
judgment prediction, HVAC control), built the way each repo's `train_lit.py`
builds them: a registry, a builder that turns a config into constructor
arguments, and `self.save_hyperparameters()` in every `__init__`.
"""
import argparse
import datetime
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
import lightning.pytorch as pl
from omegaconf import OmegaConf
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight

from hvac_rl_control import load_config
from legal_judgment_prediction import Task, make_corpus, tokenize
from sar_ship_detection import fit_anchors, make_synthetic_chips, to_db

MODELS = {}
BACKBONES = {}
ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}


def register(table, name):
    def deco(obj):
        table[name] = obj
        return obj
    return deco


# ================================================================== SAR ships

@register(BACKBONES, "tiny")
class SarBackbone(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.out_channels = width * 2
        self.layers = nn.Sequential(nn.Conv2d(1, width, 3, 2, 1), nn.ReLU(),
                                    nn.Conv2d(width, width * 2, 3, 2, 1), nn.ReLU())

    def forward(self, x):
        return self.layers(x)


class CenterFocalLoss(nn.Module):
    def __init__(self, alpha=2.0, beta=4.0):
        super().__init__()
        self.alpha, self.beta = alpha, beta

    def forward(self, logits, target):
        p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
        pos = (target > 0.95).float()
        loss = -(pos * (1 - p) ** self.alpha * p.log()
                 + (1 - pos) * (1 - target) ** self.beta * p ** self.alpha * (1 - p).log())
        return loss.sum() / pos.sum().clamp(min=1.0)


@register(MODELS, "sar_centernet")
class SarLitDetector(pl.LightningModule):
    def __init__(self,
                 backbone: nn.Module,
                 num_classes: int = 1,
                 anchor_sizes: Sequence[float] = (8.0, 16.0, 32.0),
                 heatmap_loss: nn.Module = CenterFocalLoss(),  # truth: hparam
                 lr: float = 2e-3,
                 weight_decay: float = 1e-4,
                 input_db_range=(-25.0, 5.0),
                 score_thresh: float = 0.3,  # truth: hparam
                 data_root="data/ssdd",  # truth: hparam
                 polarizations=("VV", "VH"),
                 max_dets: int = 50):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.head = nn.Conv2d(backbone.out_channels, num_classes, 1)
        self.register_buffer("anchors", torch.as_tensor(np.asarray(anchor_sizes, dtype=np.float32)))
        self.loss_fn = heatmap_loss

    def forward(self, x):
        return self.head(self.backbone(x))

    def training_step(self, batch, batch_idx):
        x, hm = batch
        loss = self.loss_fn(self(x), hm)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


def build_sar_detector(cfg):
    chips, boxes = make_synthetic_chips(8, 64, seed=cfg["seed"])
    km, wh, best_iou = fit_anchors(boxes, k=3)
    anchors = sorted(km.cluster_centers_.prod(1) ** 0.5)
    db = to_db(chips)
    model_cls = MODELS[cfg["model"]]
    return model_cls(
        backbone=BACKBONES[cfg["backbone"]](cfg["width"]),
        anchor_sizes=[float(a) for a in anchors],
        lr=cfg["lr"],
        input_db_range=(float(db.min()), float(db.max())),
        score_thresh=np.quantile(best_iou, 0.1),
        data_root=Path(cfg["data_root"]).expanduser(),
        polarizations=tuple(cfg["pols"]),
        max_dets=int(cfg.get("max_dets", 50)),
    )


SAR_CFG = {"model": "sar_centernet", "backbone": "tiny", "width": 8, "lr": 1e-3, "seed": 2,
           "data_root": "~/datasets/hrsid", "pols": ["VV"]}


def sar_chip_args(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--chip-dir", type=Path, default=Path("data/chips"))
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--pos-weight", type=float, default=3.0)
    return ap.parse_args(argv)


class SarChipClassifier(pl.LightningModule):
    """Ship / no-ship chip classifier used to filter CFAR false alarms."""

    def __init__(self, args):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(args)
        w = self.hparams.width
        self.net = nn.Sequential(SarBackbone(w), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Dropout(self.hparams.dropout), nn.Linear(2 * w, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        pw = torch.tensor(self.hparams.pos_weight)
        loss = F.binary_cross_entropy_with_logits(self.net(x).squeeze(1), y, pos_weight=pw)
        return loss


class SarChipDataModule(pl.LightningDataModule):
    def __init__(self, data_dir: str = "data/ssdd", chip_size: int = 64, batch_size: int = 8,
                 num_workers: int = 0, speckle_filter: str = "lee", val_fraction: float = 0.2):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        chips, self.boxes = make_synthetic_chips(16, self.hparams.chip_size)
        self.chips = torch.from_numpy(to_db(chips)).unsqueeze(1)


# ================================================================== legal judgment prediction

@register(MODELS, "ljp_gru")
class LegalLitClassifier(pl.LightningModule):
    def __init__(self,
                 vocab_size: int,
                 num_charges: int,
                 num_articles: int,  # truth: hparam
                 embed_dim: int = 64,
                 hidden: int = 64,
                 dropout: float = 0.2,
                 class_weights: Optional[torch.Tensor] = None,
                 charge_names: Sequence[str] = (),
                 task: Task = Task.CHARGE,  # truth: hparam
                 tokenizer=None,  # truth: hparam
                 penalty_bins: Sequence[float] = (6.0, 12.0, 36.0),
                 optim: Optional[Dict] = None):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.EmbeddingBag(vocab_size, embed_dim)
        self.drop = nn.Dropout(dropout)
        self.charge = nn.Linear(embed_dim, num_charges)
        self.article = nn.Linear(embed_dim, num_articles)
        self.register_buffer("cw", class_weights if class_weights is not None else torch.ones(num_charges))

    def forward(self, ids, offsets):
        h = self.drop(self.emb(ids, offsets))
        return self.charge(h), self.article(h)

    def encode(self, text):
        return torch.tensor(self.hparams.tokenizer(text))

    def configure_optimizers(self):
        opt = self.hparams.optim or {"lr": 1e-3}
        return torch.optim.Adam(self.parameters(), **opt)


def build_ljp_module(df: pd.DataFrame, cfg: dict):
    counts = pd.Series([t for f in df.fact for t in tokenize(f)]).value_counts()
    stoi = {w: i + 2 for i, w in enumerate(counts[counts >= cfg["min_freq"]].index)}

    def encode_ids(text):
        return [stoi.get(t, 1) for t in tokenize(text)][: cfg["max_len"]]

    charge_enc = LabelEncoder().fit(df.charge)
    y = charge_enc.transform(df.charge)
    article_idx = df.article.rank(method="dense").astype(int).to_numpy() - 1
    cw = compute_class_weight("balanced", classes=np.unique(y), y=y)
    bins = np.quantile(df.term_months, [0.25, 0.5, 0.75])
    return MODELS[cfg["model"]](
        vocab_size=len(stoi) + 2,
        num_charges=len(charge_enc.classes_),
        num_articles=article_idx.max() + 1,
        embed_dim=cfg["embed_dim"],
        class_weights=torch.tensor(cw, dtype=torch.float32),
        charge_names=charge_enc.classes_.tolist(),
        task=Task(cfg["task"]),
        tokenizer=encode_ids,
        penalty_bins=tuple(float(b) for b in bins),
        optim={"lr": float(cfg["lr"]), "betas": (0.9, 0.98)},
    )


LJP_CFG = {"model": "ljp_gru", "min_freq": 1, "max_len": 48, "embed_dim": 32, "lr": "2e-3", "task": "article"}


@dataclass
class OptimConfig:
    name: str = "adamw"
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])


class LegalHierarchicalModel(pl.LightningModule):
    """Sentence-level GRU + document attention over the fact description."""

    def __init__(self,
                 vocab_size: int = 5000,
                 sent_hidden: int = 64,
                 doc_hidden: int = 64,
                 max_sents: int = 16,
                 optim_cfg: OptimConfig = OptimConfig(),  # truth: hparam
                 label_smoothing: float = 0.1,
                 court_levels=frozenset({"basic", "intermediate", "high"}),
                 date_cutoff: str = "2018-12-31",  # truth: hparam
                 scheduler: str = "cosine"):
        super().__init__()
        date_cutoff = datetime.date.fromisoformat(date_cutoff)
        self.save_hyperparameters(ignore=["court_levels"])
        self.court_levels = sorted(court_levels)
        self.word = nn.Embedding(vocab_size, sent_hidden)
        self.sent_rnn = nn.GRU(sent_hidden, doc_hidden, batch_first=True)
        self.attn = nn.Linear(doc_hidden, 1)
        self.cutoff_ordinal = date_cutoff.toordinal()

    def configure_optimizers(self):
        oc = self.hparams.optim_cfg
        return torch.optim.AdamW(self.parameters(), lr=oc.lr, weight_decay=oc.weight_decay, betas=tuple(oc.betas))


class LegalCaseDataModule(pl.LightningDataModule):
    def __init__(self, n_cases: int = 60, max_len: int = 48, batch_size: int = 16,
                 split_seed: int = 13, tasks=("charge", "article", "penalty")):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        self.df = make_corpus(self.hparams.n_cases, self.hparams.split_seed)


# ================================================================== HVAC control

def comfort_energy_reward(temps, power_kw, band=(20.0, 24.0), w_energy=0.5):
    lo, hi = band
    discomfort = (lo - temps).clamp(min=0) + (temps - hi).clamp(min=0)
    return -(w_energy * power_kw + (1 - w_energy) * discomfort.sum(-1))


class HvacCQLModule(pl.LightningModule):
    """Offline conservative Q-learning on logged BMS trajectories."""

    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        n_actions = len(cfg.env.setpoints) * len(cfg.env.fan_levels)
        obs_dim = 2 * cfg.env.n_zones + 2
        self.q = nn.Sequential(nn.Linear(obs_dim, cfg.agent.hidden[0]), nn.ReLU(),
                               nn.Linear(cfg.agent.hidden[0], n_actions))
        self.cql_alpha = 1.0

    def training_step(self, batch, batch_idx):
        obs, act, rew, nxt, done = batch
        q = self.q(obs)
        q_a = q.gather(1, act[:, None]).squeeze(1)
        with torch.no_grad():
            target = rew + self.hparams.agent.gamma * (1 - done) * self.q(nxt).max(1).values
        cql = torch.logsumexp(q, 1).mean() - q_a.mean()
        return F.mse_loss(q_a, target) + self.cql_alpha * cql


class HvacBCPolicy(pl.LightningModule):
    """Behaviour cloning of the rule-based controller, then fine-tuned with the reward."""

    def __init__(self,
                 obs_dim: int,
                 n_actions: int,
                 hidden: Sequence[int] = (64, 64),
                 activation=nn.ReLU,  # truth: hparam
                 gamma: float = 0.99,
                 setpoint_bounds=(16.0, 26.0),  # truth: hparam
                 reward_fn=None,  # truth: hparam
                 obs_norm: Optional[Dict[str, torch.Tensor]] = None,
                 control_step_s: int = 900,
                 action_map: Sequence = (),
                 dtype: torch.dtype = torch.float32,
                 seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        layers, d = [], obs_dim
        for h in hidden:
            layers += [nn.Linear(d, h), activation()]
            d = h
        self.policy = nn.Sequential(*layers, nn.Linear(d, n_actions))
        self.reward_fn = reward_fn

    def forward(self, obs):
        if self.hparams.obs_norm:
            obs = (obs - self.hparams.obs_norm["mean"]) / self.hparams.obs_norm["std"]
        return self.policy(obs)


class HvacWorldModel(pl.LightningModule):
    """One-step thermal dynamics model used for model-based rollouts."""

    def __init__(self, cfg):
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
        d = 2 * cfg.env.n_zones + 2
        self.net = nn.Sequential(nn.Linear(d + 2, 64), nn.SiLU(), nn.Linear(64, cfg.env.n_zones))


def build_hvac_policy(cfg, act="silu"):
    env = cfg.env
    obs_dim = 2 * env.n_zones + 2
    action_map = [(float(sp), float(f)) for sp in env.setpoints for f in env.fan_levels]
    stats = np.random.default_rng(cfg.seed).normal(20.0, 3.0, size=(256, obs_dim))
    return HvacBCPolicy(
        obs_dim=obs_dim,
        n_actions=len(action_map),
        hidden=list(cfg.agent.hidden),
        activation=ACTIVATIONS[act],
        gamma=cfg.agent.gamma,
        setpoint_bounds=env.comfort_band,
        reward_fn=functools.partial(comfort_energy_reward, band=tuple(env.comfort_band), w_energy=0.3),
        obs_norm={"mean": torch.from_numpy(stats.mean(0)).float(), "std": torch.from_numpy(stats.std(0)).float()},
        control_step_s=int(env.step_minutes * 60),
        action_map=action_map,
        seed=cfg.seed,
    )


class HvacTrajectoryDataModule(pl.LightningDataModule):
    def __init__(self, log_dir: str = "bms_logs/2023", horizon: int = 96, batch_size: int = 64,
                 zones: Sequence[str] = ("north", "south"), reward_scale: float = 1.0):
        super().__init__()
        self.save_hyperparameters()


FACTORIES = {
    "SarBackbone": lambda: SarBackbone(8),
    "SarLitDetector": lambda: build_sar_detector(SAR_CFG),
    "SarChipClassifier": lambda: SarChipClassifier(sar_chip_args(["--width", "4"])),
    "LegalLitClassifier": lambda: build_ljp_module(make_corpus(40), LJP_CFG),
    "LegalHierarchicalModel": lambda: LegalHierarchicalModel(vocab_size=800),
    "HvacCQLModule": lambda: HvacCQLModule(load_config()),
    "HvacBCPolicy": lambda: build_hvac_policy(load_config()),
    "HvacWorldModel": lambda: HvacWorldModel(load_config()),
}
