"""Lightning modules for the three product lines (claims fraud, sign recognition, battery SoH).

Modules are never built by hand: `build_*` functions turn an experiment config (OmegaConf or a
dataclass) plus the prepared data into constructor arguments, resolving losses, encoders,
activations and augmentations through the registries below.
"""
import dataclasses
import functools
from dataclasses import dataclass, field
from enum import Enum

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

# ---------------------------------------------------------------- registries

LOSSES = {}
ENCODERS = {}
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


def register(table, name):
    def wrap(obj):
        table[name] = obj
        return obj
    return wrap


@register(LOSSES, "focal")
class FocalLoss(nn.Module):
    def __init__(self, gamma=2.0, alpha=0.25):
        super().__init__()
        self.gamma, self.alpha = gamma, alpha

    def forward(self, logits, target):
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p_t = torch.exp(-bce)
        a_t = self.alpha * target + (1 - self.alpha) * (1 - target)
        return (a_t * (1 - p_t) ** self.gamma * bce).mean()


LOSSES["bce"] = nn.BCEWithLogitsLoss


@register(ENCODERS, "gru")
class KeypointGRU(nn.Module):
    def __init__(self, in_dim=150, hidden=128, layers=1):
        super().__init__()
        self.gru = nn.GRU(in_dim, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.out_dim = 2 * hidden

    def forward(self, x):
        h, _ = self.gru(x)
        return h.mean(1)


def random_jitter(x, sigma=0.01, drop_prob=0.0):
    x = x + sigma * torch.randn_like(x)
    if drop_prob:
        x = x * (torch.rand(x.shape[:-1] + (1,)) > drop_prob)
    return x


AUGMENTS = {"jitter": random_jitter}
KEYPOINT_GROUPS = {"pose": slice(0, 33), "left_hand": slice(33, 54), "right_hand": slice(54, 75)}


class Chemistry(Enum):
    NMC = "nmc"
    LFP = "lfp"


@dataclass
class SoHTrainCfg:
    lr: float = 1e-3
    weight_decay: float = 1e-5
    max_epochs: int = 50
    warmup_epochs: int = 2
    cells: list = field(default_factory=lambda: ["B0005", "B0006", "B0007"])


# ---------------------------------------------------------------- claims fraud

class ClaimFraudModule(pl.LightningModule):
    def __init__(
        self,
        num_numeric: int,
        embedding_sizes: list,
        hidden_dims: tuple = (128, 64),
        dropout: float = 0.2,
        lr: float = 1e-3,
        optimizer: str = "adamw",
        pos_weight: float = 1.0,  # truth: hparam
        amount_quantiles=None,  # truth: hparam
        criterion=None,  # truth: hparam
        threshold: float = 0.5,
        feature_names=None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.embeddings = nn.ModuleList([nn.Embedding(card, dim) for card, dim in embedding_sizes])
        width = num_numeric + sum(dim for _, dim in embedding_sizes)
        layers = []
        for h in hidden_dims:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.mlp = nn.Sequential(*layers, nn.Linear(width, 1))
        self.criterion = criterion or nn.BCEWithLogitsLoss(pos_weight=torch.tensor(float(pos_weight)))
        q = [0.0] if amount_quantiles is None else amount_quantiles
        self.register_buffer("amount_q", torch.as_tensor(q, dtype=torch.float32))

    def forward(self, x_num, x_cat):
        emb = [e(x_cat[:, i]) for i, e in enumerate(self.embeddings)]
        return self.mlp(torch.cat([x_num] + emb, 1)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        loss = self.criterion(self(batch[0], batch[1]), batch[2])
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        opt_cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[self.hparams.optimizer]
        return opt_cls(self.parameters(), lr=self.hparams.lr)


class ClaimsDataModule(pl.LightningDataModule):
    def __init__(self, frame=None, batch_size: int = 256, val_fraction: float = 0.2, seed: int = 0,
                 num_workers: int = 0):
        super().__init__()
        self.save_hyperparameters(ignore=["frame"])
        self.frame = make_claims_frame() if frame is None else frame

    def setup(self, stage=None):
        val = self.frame.sample(frac=self.hparams.val_fraction, random_state=self.hparams.seed)
        self.val_frame, self.train_frame = val, self.frame.drop(val.index)

    def train_dataloader(self):
        return DataLoader(frame_to_tensors(self.train_frame), batch_size=self.hparams.batch_size, shuffle=True)


CLAIM_NUMERIC = ["claim_amount", "policy_tenure_months", "days_to_report"]
CLAIM_CATEGORICAL = ["incident_type", "region"]


def make_claims_frame(n=600, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "claim_amount": rng.lognormal(8, 1, n),
        "policy_tenure_months": rng.integers(1, 120, n),
        "days_to_report": rng.exponential(3, n),
        "incident_type": rng.choice(["collision", "theft", "fire"], n),
        "region": rng.choice(["north", "south", "east", "west"], n),
        "is_fraud": (rng.random(n) < 0.08).astype(int),
    })


def frame_to_tensors(frame):
    num = torch.tensor(frame[CLAIM_NUMERIC].to_numpy(float), dtype=torch.float32)
    cat = torch.stack([torch.as_tensor(frame[c].astype("category").cat.codes.to_numpy(), dtype=torch.long)
                       for c in CLAIM_CATEGORICAL], 1)
    return TensorDataset(num, cat, torch.tensor(frame["is_fraud"].to_numpy(), dtype=torch.float32))


FRAUD_CFG = OmegaConf.create({
    "model": {"hidden_dims": [128, 64], "dropout": 0.25, "lr": 5e-4, "optimizer": "adamw"},
    "loss": {"name": "focal", "args": {"gamma": 2.0, "alpha": 0.3}},
    "threshold": 0.35,
})


def build_fraud_module(cfg=FRAUD_CFG, frame=None):
    frame = make_claims_frame() if frame is None else frame
    y = frame["is_fraud"].to_numpy()
    cards = [frame[c].nunique() for c in CLAIM_CATEGORICAL]
    loss_cfg = cfg.loss
    return ClaimFraudModule(
        num_numeric=len(CLAIM_NUMERIC),
        embedding_sizes=[(n, min(16, (n + 1) // 2)) for n in cards],
        hidden_dims=tuple(cfg.model.hidden_dims),
        dropout=cfg.model.dropout,
        lr=cfg.model.lr,
        optimizer=cfg.model.optimizer,
        pos_weight=(y == 0).sum() / max((y == 1).sum(), 1),
        amount_quantiles=frame["claim_amount"].quantile([0.5, 0.9, 0.99]).to_numpy(),
        criterion=LOSSES[loss_cfg.name](**loss_cfg.args),
        threshold=float(cfg.threshold),
        feature_names=CLAIM_NUMERIC + CLAIM_CATEGORICAL,
    )


# ---------------------------------------------------------------- sign recognition

class SignGRUModule(pl.LightningModule):
    def __init__(
        self,
        num_classes: int,
        class_names,  # truth: hparam
        encoder=None,
        num_joints: int = 75,
        num_frames: int = 16,
        label_smoothing: float = 0.1,
        keypoint_groups=None,  # truth: hparam
        augment=None,  # truth: hparam
        adjacency=None,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder if encoder is not None else KeypointGRU(num_joints * 2)
        self.head = nn.Linear(self.encoder.out_dim, num_classes)

    def forward(self, x):
        return self.head(self.encoder(x.flatten(2)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.hparams.augment is not None:
            x = self.hparams.augment(x)
        loss = F.cross_entropy(self(x), y, label_smoothing=self.hparams.label_smoothing)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class SignFromConfigModule(pl.LightningModule):
    """The hydra-style variant: one DictConfig in, everything read from it."""

    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        enc = ENCODERS[cfg.encoder.name](cfg.data.num_joints * 2, cfg.encoder.hidden)
        self.encoder = enc
        self.head = nn.Linear(enc.out_dim, cfg.data.num_classes)

    def forward(self, x):
        return self.head(self.encoder(x.flatten(2)))


class SignDistillModule(pl.LightningModule):
    """Student distilled from a frozen teacher; only the plain config is stored."""

    def __init__(self, cfg, teacher=None, temperature: float = 2.0):
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg, resolve=True))
        self.teacher = teacher
        self.temperature = temperature
        self.student = ENCODERS[cfg.encoder.name](cfg.data.num_joints * 2, cfg.encoder.hidden // 2)
        self.head = nn.Linear(self.student.out_dim, cfg.data.num_classes)


class SignKeypointDataModule(pl.LightningDataModule):
    def __init__(self, data_root: str = "data/wlasl_kp", num_frames: int = 16, batch_size: int = 32,
                 val_signers: tuple = (7, 8)):
        super().__init__()
        self.save_hyperparameters()
        self.glosses = np.array(["hello", "thanks", "please", "book", "hello", "book"])

    def vocabulary(self):
        return np.unique(self.glosses)


SIGN_CFG = OmegaConf.create({
    "data": {"num_joints": 75, "num_frames": 16, "num_classes": 4},
    "encoder": {"name": "gru", "hidden": 64},
    "augment": {"name": "jitter", "sigma": 0.02, "drop_prob": 0.05},
    "optim": {"lr": 2e-3, "label_smoothing": 0.1},
})


def build_sign_module(cfg=SIGN_CFG, datamodule=None):
    dm = datamodule or SignKeypointDataModule(num_frames=cfg.data.num_frames)
    vocab = dm.vocabulary()
    aug = cfg.augment
    encoder = ENCODERS[cfg.encoder.name](cfg.data.num_joints * 2, cfg.encoder.hidden)
    return SignGRUModule(
        num_classes=len(vocab),
        class_names=tuple(vocab),
        encoder=encoder,
        num_joints=cfg.data.num_joints,
        num_frames=cfg.data.num_frames,
        label_smoothing=cfg.optim.label_smoothing,
        keypoint_groups=KEYPOINT_GROUPS,
        augment=functools.partial(AUGMENTS[aug.name], sigma=aug.sigma, drop_prob=aug.drop_prob),
        adjacency=torch.eye(21) + torch.diag(torch.ones(20), 1),
        lr=cfg.optim.lr,
    )


# ---------------------------------------------------------------- battery SoH

class BatterySoHModule(pl.LightningModule):
    def __init__(
        self,
        feature_names: list,
        window: int = 8,
        hidden: int = 64,
        activation=nn.SiLU,  # truth: hparam
        chemistry: Chemistry = Chemistry.NMC,  # truth: hparam
        nominal_capacity_ah: float = 2.0,  # truth: hparam
        eol_fraction: float = 0.8,
        feature_mean=None,
        reference_curve=None,  # truth: hparam
        train_cfg: SoHTrainCfg = None,  # truth: hparam
        export_dir: str = "exports/soh",
    ):
        super().__init__()
        feature_mean = torch.as_tensor(np.zeros(len(feature_names)) if feature_mean is None else feature_mean,
                                       dtype=torch.float32)
        reference_curve = np.asarray([] if reference_curve is None else reference_curve, dtype=np.float32)
        train_cfg = train_cfg or SoHTrainCfg()
        self.save_hyperparameters()
        n_in = window * len(feature_names)
        self.net = nn.Sequential(nn.Linear(n_in, hidden), activation(), nn.Linear(hidden, hidden), activation(),
                                 nn.Linear(hidden, 1))
        self.register_buffer("feature_mean", feature_mean)

    def forward(self, x):
        return self.net((x - self.feature_mean).flatten(1)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, soh = batch
        loss = F.mse_loss(self(x), soh)
        self.log("train_rmse", loss.sqrt())
        return loss

    def configure_optimizers(self):
        tc = self.hparams.train_cfg
        return torch.optim.AdamW(self.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)


class BatteryRULModule(pl.LightningModule):
    """Remaining-useful-life head on the SoH trajectory; the fitted scaler stays out of hparams."""

    def __init__(self, hidden: int = 32, horizon: int = 50, lr: float = 1e-3, scaler=None,
                 target_transform=None):  # truth: hparam[target_transform]
        super().__init__()
        self.save_hyperparameters("hidden", "horizon", "lr", "target_transform")
        self.scaler = scaler
        self.rnn = nn.LSTM(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, soh_seq):
        h, _ = self.rnn(soh_seq.unsqueeze(-1))
        return self.head(h[:, -1]).squeeze(-1)


class BatteryCycleDataModule(pl.LightningDataModule):
    def __init__(self, cells: tuple = ("B0005", "B0006"), window: int = 8, batch_size: int = 64,
                 cache_dir: str = "cache/soh"):
        super().__init__()
        self.save_hyperparameters()

    def cycle_frame(self, n_cycles=80, seed=0):
        rng = np.random.default_rng(seed)
        cyc = np.arange(n_cycles)
        return pd.concat([pd.DataFrame({"cell_id": cell, "cycle": cyc, "ir_mohm": 45 + rng.normal(0, 1, n_cycles),
                                        "capacity_ah": 2.0 * (1 - 0.002 * cyc ** 0.9) + rng.normal(0, 0.003, n_cycles)})
                          for cell in self.hparams.cells], ignore_index=True)


SOH_FEATURES = ["capacity_ah", "ir_mohm"]


def build_soh_module(chemistry="nmc", activation="silu", train_cfg=None, datamodule=None):
    dm = datamodule or BatteryCycleDataModule()
    frame = dm.cycle_frame()
    first = frame[frame["cycle"] < 5]
    return BatterySoHModule(
        feature_names=list(SOH_FEATURES),
        window=dm.hparams.window,
        activation=ACTIVATIONS[activation],
        chemistry=Chemistry(chemistry),
        nominal_capacity_ah=first["capacity_ah"].mean(),
        feature_mean=frame[SOH_FEATURES].mean().to_numpy(),
        reference_curve=frame.groupby("cycle")["capacity_ah"].mean().to_numpy(),
        train_cfg=train_cfg or SoHTrainCfg(lr=3e-4),
        export_dir=f"exports/soh_{chemistry}",
    )


def build_rul_module(eol=0.8):
    frame = BatteryCycleDataModule().cycle_frame()
    scaler = StandardScaler().fit(frame[["capacity_ah"]])
    return BatteryRULModule(hidden=48, horizon=60, scaler=scaler,
                            target_transform=lambda soh: (soh - eol) / (1.0 - eol))


FACTORIES = {
    "ClaimFraudModule": build_fraud_module,
    "SignGRUModule": build_sign_module,
    "SignFromConfigModule": lambda: SignFromConfigModule(SIGN_CFG),
    "SignDistillModule": lambda: SignDistillModule(SIGN_CFG, teacher=build_sign_module().encoder),
    "BatterySoHModule": build_soh_module,
    "BatteryRULModule": build_rul_module,
}
NOT_BUILT = {"Chemistry": "an Enum: members are looked up by value"}
