"""LightningModules / LightningDataModules for churn (FT-Transformer), VOS (space-time memory)
and interatomic potentials, built from OmegaConf configs through the project's own builders."""
import enum
import functools
import math
import random
from collections import defaultdict

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from scipy import optimize
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import DataLoader, TensorDataset

CONFIG = OmegaConf.create({
    "churn": {
        "data": {"cat_cols": ["contract", "payment_method"], "num_cols": ["tenure", "monthly", "calls"],
                 "target": "churned", "n_rows": 40, "seed": 0},
        "model": {"d_token": 8, "n_blocks": 1, "attention_dropout": 0.1, "lr": 1e-3, "weight_decay": 1e-5},
        "distill": {"alpha": 0.5, "student_d_token": 4, "lr": 3e-3},
    },
    "vos": {
        "model": {"key_dim": 8, "value_dim": 16, "mem_every": 5, "crop_size": [32, 32], "ignore_index": 255,
                  "lr": 2e-5, "bootstrap_ratio": 0.15, "freeze_bn": True},
        "finetune": {"num_frames": 3, "max_skip": 5, "lr": 1e-5},
        "data": {"clip_len": 3, "batch_size": 2},
    },
    "mlip": {
        "model": {"name": "schnet_lite", "r_max": 4.0, "num_radial": 6},
        "data": {"elements": [1, 6, 8], "n_structures": 6},
        "loss": {"energy_weight": 1.0, "forces_weight": 100.0},
        "units": {"energy": "eV"},
        "dtype": "float64",
        "committee": {"n_members": 2, "cutoff": "cosine", "optimizer": "adamw", "lr": 5e-3},
    },
})

DAVIS_PALETTE = np.array([[0, 0, 0], [128, 0, 0], [0, 128, 0]], dtype=np.uint8)


class EnergyUnit(enum.Enum):
    EV = "eV"
    KCAL_MOL = "kcal/mol"


def cosine_cutoff(d, r_max):
    return 0.5 * (torch.cos(math.pi * d / r_max) + 1.0) * (d < r_max)


def sample_frames(num_video_frames, num_frames, max_skip):
    idx = [random.randrange(0, max(1, num_video_frames - num_frames))]
    for _ in range(num_frames - 1):
        idx.append(min(num_video_frames - 1, idx[-1] + random.randint(1, max_skip)))
    return idx


CUTOFFS = {"cosine": cosine_cutoff}
OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}


# ------------------------------------------------------------------------------------- churn

def tabular_backbone(n_tokens_in, d_token, n_blocks, dropout):
    layer = nn.TransformerEncoderLayer(d_token, 2, 2 * d_token, dropout, batch_first=True)
    return nn.TransformerEncoder(layer, n_blocks, enable_nested_tensor=False)


class LitFTTransformer(pl.LightningModule):
    def __init__(
        self,
        cat_cardinalities,
        n_num_features,
        d_token=8,
        n_blocks=1,
        attention_dropout=0.1,
        lr=1e-3,
        weight_decay=1e-5,
        pos_weight=1.0,  # truth: hparam
        num_means=None,  # truth: hparam
        class_weights=None,
        class_names=(),
        label_smoothing=0.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.cat_emb = nn.Embedding(sum(cat_cardinalities), d_token)
        self.num_proj = nn.Linear(1, d_token)
        self.blocks = tabular_backbone(len(cat_cardinalities) + n_num_features, d_token, n_blocks, attention_dropout)
        self.head = nn.Linear(d_token, 1)
        self.register_buffer("num_center", torch.as_tensor(num_means, dtype=torch.float32))

    def forward(self, x_cat, x_num):
        tokens = torch.cat([self.cat_emb(x_cat), self.num_proj((x_num - self.num_center).unsqueeze(-1))], dim=1)
        return self.head(self.blocks(tokens).mean(1)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x_cat, x_num, y = batch
        target = y.float() * (1 - self.hparams.label_smoothing) + 0.5 * self.hparams.label_smoothing
        loss = F.binary_cross_entropy_with_logits(self(x_cat, x_num), target,
                                                  pos_weight=torch.tensor(float(self.hparams.pos_weight)))
        self.log("train/bce", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class LitChurnDistill(pl.LightningModule):
    def __init__(
        self,
        teacher,
        temperature=1.0,  # truth: hparam
        alpha=0.5,
        student_d_token=4,
        lr=3e-3,
        high_card_cols=(),
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["teacher"])
        self.teacher = teacher.eval().requires_grad_(False)
        self.student = nn.Sequential(nn.LazyLinear(student_d_token), nn.ReLU(), nn.Linear(student_d_token, 1))

    def training_step(self, batch, batch_idx):
        x_cat, x_num, y = batch
        with torch.no_grad():
            soft = torch.sigmoid(self.teacher(x_cat, x_num) / self.hparams.temperature)
        logits = self.student(torch.cat([x_cat.float(), x_num], dim=1)).squeeze(-1)
        loss = self.hparams.alpha * F.binary_cross_entropy_with_logits(logits, soft) + \
            (1 - self.hparams.alpha) * F.binary_cross_entropy_with_logits(logits, y.float())
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.student.parameters(), lr=self.hparams.lr)


class ChurnDataModule(pl.LightningDataModule):
    def __init__(self, data_dir="data/telco", batch_size=16, val_fraction=0.2, seed=0, num_workers=0):
        super().__init__()
        self.save_hyperparameters()
        self.train_set = None

    def setup(self, stage=None):
        x_cat, x_num, y = churn_tensors(load_customers(40, self.hparams.seed), CONFIG.churn.data)
        self.train_set = TensorDataset(x_cat, x_num, y)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True,
                          num_workers=self.hparams.num_workers)


def load_customers(n, seed):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "contract": rng.choice(["monthly", "one_year", "two_year"], n),
        "payment_method": rng.choice(["card", "e_check"], n),
        "tenure": rng.integers(1, 72, n),
        "monthly": rng.uniform(20, 110, n).round(2),
        "calls": rng.poisson(1.2, n),
    })
    df["churned"] = ((df["contract"] == "monthly") & (df["tenure"] < 24)).astype(int)
    return df


def churn_tensors(df, dcfg):
    codes = np.stack([pd.Categorical(df[c]).codes for c in dcfg.cat_cols], axis=1).astype(np.int64)
    offsets = np.cumsum([0] + [df[c].nunique() for c in dcfg.cat_cols][:-1])
    x_num = torch.tensor(df[list(dcfg.num_cols)].to_numpy(), dtype=torch.float32)
    return torch.from_numpy(codes + offsets), x_num, torch.tensor(df[dcfg.target].to_numpy())


def build_churn_module(cfg):
    df = load_customers(cfg.data.n_rows, cfg.data.seed)
    y = df[cfg.data.target]
    weights = compute_class_weight("balanced", classes=np.array([0, 1]), y=y)
    return LitFTTransformer(
        cat_cardinalities=[df[c].nunique() for c in cfg.data.cat_cols],
        n_num_features=len(cfg.data.num_cols),
        pos_weight=(y == 0).sum() / max((y == 1).sum(), 1),
        num_means=df[list(cfg.data.num_cols)].mean().to_numpy(),
        class_weights=torch.tensor(weights, dtype=torch.float32),
        class_names=sorted(df["contract"].unique()),
        label_smoothing=0.05,
        **OmegaConf.to_container(cfg.model),
    )


def calibrate_temperature(logits, labels):
    def nll(t):
        p = 1 / (1 + np.exp(-logits / t))
        return -np.mean(labels * np.log(p + 1e-9) + (1 - labels) * np.log(1 - p + 1e-9))
    return optimize.minimize_scalar(nll, bounds=(0.05, 10.0), method="bounded").x


def build_churn_distill(cfg):
    teacher = build_churn_module(cfg)
    df = load_customers(cfg.data.n_rows, seed=1)
    x_cat, x_num, y = churn_tensors(df, cfg.data)
    with torch.no_grad():
        logits = teacher(x_cat, x_num).numpy()
    return LitChurnDistill(
        teacher,
        temperature=calibrate_temperature(logits, y.numpy()),
        high_card_cols=sorted(c for c in cfg.data.cat_cols if df[c].nunique() > 2),
        **cfg.distill,
    )


# --------------------------------------------------------------------------------------- VOS

class LitSTM(pl.LightningModule):
    def __init__(
        self,
        key_dim=8,
        value_dim=16,
        mem_every=5,
        crop_size=(384, 384),  # truth: hparam
        ignore_index=255,
        lr=2e-5,
        bootstrap_ratio=0.15,
        freeze_bn=True,
        skip_schedule=(10, 15, 20, 25, 5),  # truth: hparam
        palette=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.key_enc = nn.Conv2d(3, key_dim, 3, 2, 1)
        self.value_enc = nn.Conv2d(4, value_dim, 3, 2, 1)
        self.decoder = nn.Conv2d(value_dim, 1, 1)

    def training_step(self, batch, batch_idx):
        frames, masks = batch
        k = self.key_enc(frames[:, 0])
        v = self.value_enc(torch.cat([frames[:, 0], masks[:, 0]], 1))
        attn = torch.einsum("bchw,bcxy->bhwxy", k, k).flatten(3).softmax(-1)
        out = torch.einsum("bhwn,bcn->bchw", attn, v.flatten(2))
        logits = F.interpolate(self.decoder(out), size=masks.shape[-2:])
        raw = F.binary_cross_entropy_with_logits(logits, masks[:, 1], reduction="none").flatten(1)
        k_top = max(1, int(raw.shape[1] * self.hparams.bootstrap_ratio))
        return raw.topk(k_top, dim=1).values.mean()

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class LitVOSFromConfig(pl.LightningModule):
    def __init__(self, cfg: DictConfig):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = nn.Conv2d(4, cfg.model.value_dim, 3, padding=1)
        self.head = nn.Conv2d(cfg.model.value_dim, 1, 1)

    def training_step(self, batch, batch_idx):
        frames, masks = batch
        return F.binary_cross_entropy_with_logits(self.head(self.net(torch.cat([frames[:, 1], masks[:, 0]], 1))),
                                                  masks[:, 1])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.model.lr)


class LitVOSFinetune(pl.LightningModule):
    def __init__(
        self,
        backbone,
        augment=None,  # truth: hparam
        frame_sampler=None,  # truth: hparam
        loss_weights=None,
        num_frames=3,
        lr=1e-5,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.frame_sampler = frame_sampler
        self.head = nn.Conv2d(8, 1, 1)

    def training_step(self, batch, batch_idx):
        frames, masks = batch
        idx = self.frame_sampler(frames.shape[1], self.hparams.num_frames)
        x = self.hparams.augment(frames[:, idx[-1]])
        logits = F.interpolate(self.head(self.backbone(x)), size=masks.shape[-2:])
        w = self.hparams.loss_weights or {"bce": 1.0}
        return w["bce"] * F.binary_cross_entropy_with_logits(logits, masks[:, idx[-1]])

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class VOSDataModule(pl.LightningDataModule):
    def __init__(self, clip_len=3, crop_size=(32, 32), max_skip=5, batch_size=2):
        super().__init__()
        self.save_hyperparameters()

    def train_dataloader(self):
        h, w = self.hparams.crop_size
        frames = torch.rand(4, self.hparams.clip_len, 3, h, w)
        masks = (torch.rand(4, self.hparams.clip_len, 1, h, w) > 0.5).float()
        return DataLoader(TensorDataset(frames, masks), batch_size=self.hparams.batch_size)


def build_vos_module(cfg):
    skips = cfg.finetune.max_skip
    return LitSTM(**cfg.model, skip_schedule=range(skips, 5 * skips, skips), palette=DAVIS_PALETTE)


def build_vos_finetune(cfg):
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    return LitVOSFinetune(
        backbone,
        augment=lambda x: torch.flip(x, dims=[-1]) if random.random() < 0.5 else x,
        frame_sampler=functools.partial(sample_frames, max_skip=cfg.finetune.max_skip),
        loss_weights={"bce": 1.0, "dice": 0.5},
        num_frames=cfg.finetune.num_frames,
        lr=cfg.finetune.lr,
    )


# -------------------------------------------------------------------------------------- MLIP

class LitPotential(pl.LightningModule):
    def __init__(
        self,
        model_name="schnet_lite",
        r_max=5.0,
        num_radial=8,
        z_table=(1, 6, 8),
        atomic_energies=None,
        avg_num_neighbors=1.0,  # truth: hparam
        energy_weight=1.0,
        forces_weight=100.0,
        units=EnergyUnit.EV,  # truth: hparam
        dtype=torch.float64,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(len(z_table), 8, dtype=dtype)
        self.out = nn.Linear(8 + num_radial, 1, dtype=dtype)
        e0 = [atomic_energies.get(z, 0.0) for z in z_table] if atomic_energies else [0.0] * len(z_table)
        self.register_buffer("e0", torch.tensor(e0, dtype=dtype))

    def forward(self, species, pos):
        d = torch.cdist(pos, pos)
        freqs = torch.arange(1, self.hparams.num_radial + 1, dtype=pos.dtype) * math.pi / self.hparams.r_max
        rbf = (torch.sin(freqs * d[..., None]) * cosine_cutoff(d, self.hparams.r_max)[..., None]).sum(1)
        h = torch.cat([self.embed(species), rbf / float(self.hparams.avg_num_neighbors)], dim=-1)
        return (self.out(h).squeeze(-1) + self.e0[species]).sum()

    def training_step(self, batch, batch_idx):
        species, pos, energy, forces = batch
        pos.requires_grad_(True)
        e = self(species, pos)
        f = -torch.autograd.grad(e, pos, create_graph=True)[0]
        return self.hparams.energy_weight * (e - energy) ** 2 + self.hparams.forces_weight * F.mse_loss(f, forces)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class LitPotentialWithModel(pl.LightningModule):
    def __init__(self, model, e0s, lr=1e-3, forces_weight=10.0):
        super().__init__()
        self.save_hyperparameters("lr", "forces_weight")
        self.model = model
        self.register_buffer("e0s", torch.from_numpy(np.asarray(e0s)))

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=self.hparams.lr)


class LitCommittee(pl.LightningModule):
    def __init__(
        self,
        n_members=2,
        r_max=4.0,
        cutoff_fn=cosine_cutoff,  # truth: hparam
        optimizer_cls=torch.optim.Adam,  # truth: hparam
        element_weights=None,  # truth: hparam
        scheduler_kwargs=None,
        lr=5e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.members = nn.ModuleList(nn.Linear(4, 1, dtype=torch.float64) for _ in range(n_members))
        self.cutoff_fn = cutoff_fn

    def configure_optimizers(self):
        opt = self.hparams.optimizer_cls(self.parameters(), lr=self.hparams.lr)
        kwargs = self.hparams.scheduler_kwargs or {"T_max": 10}
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, **kwargs)]


class MolecularDataModule(pl.LightningDataModule):
    def __init__(self, data_root="data/toy-organics", r_max=4.0, batch_size=1, elements=(1, 6, 8)):
        super().__init__()
        self.save_hyperparameters()


def toy_structures(elements, n, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.choice(elements, 4), rng.normal(scale=1.2, size=(4, 3)), float(rng.normal(-100, 5)))
            for _ in range(n)]


def build_potential_module(cfg):
    elements = sorted(cfg.data.elements)
    structures = toy_structures(elements, cfg.data.n_structures)
    counts = np.array([[np.sum(z == e) for e in elements] for z, _, _ in structures], dtype=float)
    e0s = np.linalg.lstsq(counts, np.array([e for _, _, e in structures]), rcond=None)[0]
    neighbors = [((np.linalg.norm(p[:, None] - p[None], axis=-1) < cfg.model.r_max).sum(1) - 1).mean()
                 for _, p, _ in structures]
    return LitPotential(
        model_name=cfg.model.name,
        r_max=cfg.model.r_max,
        num_radial=cfg.model.num_radial,
        z_table=tuple(elements),
        atomic_energies={int(z): float(e) for z, e in zip(elements, e0s)},
        avg_num_neighbors=np.mean(neighbors),
        units=EnergyUnit(cfg.units.energy),
        dtype=getattr(torch, cfg.dtype),
        **cfg.loss,
    )


def build_committee(cfg):
    c = cfg.committee
    weights = defaultdict(lambda: 1.0, {1: 0.5})
    return LitCommittee(
        n_members=c.n_members,
        r_max=cfg.model.r_max,
        cutoff_fn=CUTOFFS[c.cutoff],
        optimizer_cls=OPTIMIZERS[c.optimizer],
        element_weights=weights,
        scheduler_kwargs={"T_max": 50, "eta_min": 1e-6},
        lr=c.lr,
    )


FACTORIES = {
    "LitFTTransformer": lambda: build_churn_module(CONFIG.churn),
    "LitChurnDistill": lambda: build_churn_distill(CONFIG.churn),
    "ChurnDataModule": lambda: ChurnDataModule(batch_size=8),
    "LitSTM": lambda: build_vos_module(CONFIG.vos),
    "LitVOSFromConfig": lambda: LitVOSFromConfig(CONFIG.vos),
    "LitVOSFinetune": lambda: build_vos_finetune(CONFIG.vos),
    "VOSDataModule": lambda: VOSDataModule(**OmegaConf.to_container(CONFIG.vos.data)),
    "LitPotential": lambda: build_potential_module(CONFIG.mlip),
    "LitPotentialWithModel": lambda: LitPotentialWithModel(nn.Linear(3, 1), e0s=np.array([-13.6, -1029.8])),
    "LitCommittee": lambda: build_committee(CONFIG.mlip),
    "MolecularDataModule": lambda: MolecularDataModule(r_max=CONFIG.mlip.model.r_max),
    "EnergyUnit": lambda: EnergyUnit.EV,
}
