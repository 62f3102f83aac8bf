"""Lightning modules and datamodules for the three projects (QE, vibration PdM, traffic MARL).

Modules are built the way the training entry points build them: from an OmegaConf config
through registries and small builder functions, with preprocessing fitted first
(scalers, label encoders, spectra) and its results handed to the module's __init__.
"""
import enum
import functools
import re
from dataclasses import dataclass

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from scipy import signal
from sklearn.preprocessing import LabelEncoder, StandardScaler

BASE_CFG = OmegaConf.create({
    "qe": {"encoder": "bag", "vocab_size": 500, "emb_dim": 32, "hidden": 64, "loss": "mse", "lr": 3e-4,
           "lang_pairs": ["en-de", "en-zh", "ro-en"], "pooling": "mean", "max_len": 128},
    "pdm": {"fs": 2048, "nperseg": 128, "channels": [8, 16], "rul_cap": 125, "lr": 1e-3,
            "faults": ["healthy", "inner_race", "outer_race", "ball"], "band_edges": [10, 200, 500, 900]},
    "marl": {"rows": 2, "cols": 2, "n_phases": 4, "hidden": 64, "gamma": 0.95, "lr": 1e-3,
             "reward": "queue", "reward_weights": {"queue": 1.0, "wait": 0.1}, "mode": "cyclic"},
})


class Pooling(str, enum.Enum):
    MEAN = "mean"
    MAX = "max"


class PhaseMode(enum.IntEnum):
    FIXED = 0
    CYCLIC = 1


# ------------------------------------------------------------------ registries / builders

ENCODERS = {
    "bag": lambda vocab_size, emb_dim: nn.EmbeddingBag(vocab_size, emb_dim, mode="mean"),
    "gru": lambda vocab_size, emb_dim: nn.GRU(emb_dim, emb_dim, batch_first=True),
}
LOSSES = {"mse": nn.MSELoss, "huber": nn.HuberLoss, "l1": nn.L1Loss}


def build_encoder(cfg):
    return ENCODERS[cfg.encoder](cfg.vocab_size, cfg.emb_dim)


def synthetic_scores(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"lp": rng.choice(["en-de", "en-zh", "ro-en"], size=n),
                         "hter": rng.beta(2, 5, size=n), "da": rng.normal(70, 12, size=n)})


def synthetic_windows(n=32, fs=2048, seed=0):
    rng = np.random.default_rng(seed)
    faults = ["healthy", "inner_race", "outer_race", "ball"]
    return pd.DataFrame({"fault": [faults[i % 4] for i in range(n)], "rul": rng.integers(1, 140, size=n),
                         "signal": [rng.standard_normal(512).astype(np.float32) for _ in range(n)]})


def queue_reward(weights):
    def reward(queues, waits):
        return -(weights["queue"] * queues.sum() + weights["wait"] * waits.sum())
    return reward


REWARDS = {"queue": queue_reward}


@dataclass
class ObsSpec:
    lanes: int = 4
    include_phase: bool = True

    @property
    def dim(self):
        return self.lanes + (1 if self.include_phase else 0)


# ------------------------------------------------------------------ QE

class QEModule(pl.LightningModule):
    def __init__(
        self,
        encoder_name: str = "bag",
        emb_dim: int = 32,
        hidden: int = 64,
        encoder=None,  # truth: hparam
        loss_fn=None,  # truth: hparam
        lang_pairs=("en-de",),  # truth: hparam
        target_stats=None,
        pooling: str = "mean",
        lr: float = 3e-4,
        max_len: int = 128,
        token_pattern: str = r"\w+",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = encoder or nn.EmbeddingBag(500, emb_dim, mode="mean")
        self.loss_fn = loss_fn or nn.MSELoss()
        self.head = nn.Sequential(nn.Linear(2 * emb_dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, src, mt):
        return self.head(torch.cat([self.encoder(src), self.encoder(mt)], -1)).squeeze(-1)

    def training_step(self, batch, _):
        src, mt, y = batch
        return self.loss_fn(self(src, mt), (y - self.hparams.target_stats["mean"]) / self.hparams.target_stats["std"])

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class QEDistillModule(pl.LightningModule):
    """Student QE model distilled from a larger teacher; scores calibrated with a fitted scaler."""

    def __init__(
        self,
        teacher: nn.Module = None,
        student_dim: int = 32,
        vocab_size: int = 500,
        score_scaler=None,  # truth: hparam
        temperature: float = 2.0,
        alpha=0.5,
        lang_pair_weights=None,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["teacher"])
        self.teacher = teacher
        self.student = nn.EmbeddingBag(vocab_size, student_dim, mode="mean")
        self.out = nn.Linear(student_dim, 1)

    def forward(self, ids):
        return self.out(self.student(ids)).squeeze(-1)


class QEDataModule(pl.LightningDataModule):
    def __init__(self, data_dir: str = "data/wmt23_qe", lang_pairs=("en-de",), batch_size: int = 32,
                 max_len: int = 128, target: str = "hter", num_workers: int = 0):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        self.df = synthetic_scores()


def build_qe_module(cfg=BASE_CFG):
    q = cfg.qe
    df = synthetic_scores()
    stats = {"mean": float(df[q_target(q)].mean()), "std": float(df[q_target(q)].std())}
    return QEModule(
        encoder_name=q.encoder, emb_dim=q.emb_dim, hidden=q.hidden,
        encoder=build_encoder(q),
        loss_fn=LOSSES[q.loss](),
        lang_pairs=frozenset(q.lang_pairs),
        target_stats=stats,
        pooling=Pooling(q.pooling).value,
        lr=q.lr, max_len=q.max_len,
        token_pattern=re.compile(r"\w+|[^\w\s]").pattern,
    )


def q_target(q):
    return "hter" if q.loss != "l1" else "da"


def build_qe_distill(cfg=BASE_CFG):
    q = cfg.qe
    df = synthetic_scores()
    scaler = StandardScaler().fit(df[["hter"]])
    teacher = nn.Sequential(build_encoder(q), nn.Linear(q.emb_dim, 1))
    weights = (1.0 / df["lp"].value_counts(normalize=True)).round(3).to_dict()
    return QEDistillModule(teacher=teacher, student_dim=q.emb_dim // 2, vocab_size=q.vocab_size,
                           score_scaler=scaler, temperature=float(np.float32(2.0)),
                           alpha=df["hter"].between(0, 1).mean().item(), lang_pair_weights=weights, lr=q.lr)


# ------------------------------------------------------------------ predictive maintenance

class SpectrumCNNModule(pl.LightningModule):
    def __init__(
        self,
        n_bins: int = 65,
        freqs=None,  # truth: hparam
        class_names=("healthy",),
        class_weights=None,
        channels=(8, 16),
        band_edges=(10, 900),  # truth: hparam
        window_fn=None,  # truth: hparam
        rul_cap=125,  # truth: hparam
        fs: int = 2048,
        optim: dict = None,
    ):
        super().__init__()
        channels = tuple(channels)
        band_edges = np.asarray(band_edges, dtype=np.float32)
        self.save_hyperparameters()
        self.conv = nn.Sequential(nn.Conv1d(1, channels[0], 5, padding=2), nn.ReLU(),
                                  nn.Conv1d(channels[0], channels[-1], 3, padding=1), nn.AdaptiveAvgPool1d(4))
        self.cls = nn.Linear(4 * channels[-1], len(class_names))
        self.rul = nn.Linear(4 * channels[-1], 1)
        self.register_buffer("cw", class_weights if class_weights is not None else torch.ones(len(class_names)))

    def forward(self, x):
        h = self.conv(x.unsqueeze(1)).flatten(1)
        return self.cls(h), self.rul(h).squeeze(-1)

    def training_step(self, batch, _):
        x, y, r = batch
        logits, rul = self(x)
        return F.cross_entropy(logits, y, weight=self.cw) + F.mse_loss(rul, r.clamp(max=self.hparams.rul_cap))


class AnomalyAEModule(pl.LightningModule):
    def __init__(
        self,
        n_bins: int = 65,
        latent_dim: int = 8,
        scaler=None,
        threshold=0.1,  # truth: hparam
        quantile: float = 0.995,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters("n_bins", "latent_dim", "threshold", "quantile", "lr")
        self.enc = nn.Sequential(nn.Linear(n_bins, 32), nn.ReLU(), nn.Linear(32, latent_dim))
        self.dec = nn.Sequential(nn.Linear(latent_dim, 32), nn.ReLU(), nn.Linear(32, n_bins))


class VibrationDataModule(pl.LightningDataModule):
    def __init__(self, root: str = "data/pronostia", fs: int = 2048, nperseg: int = 128,
                 batch_size: int = 64, val_bearings=("B3",), window: int = 512):
        super().__init__()
        self.save_hyperparameters()


def build_pdm_modules(cfg=BASE_CFG):
    p = cfg.pdm
    df = synthetic_windows(fs=p.fs)
    freqs, psd = signal.welch(np.stack(df["signal"].to_list()), fs=p.fs, nperseg=p.nperseg)
    le = LabelEncoder().fit(list(p.faults))
    counts = df["fault"].value_counts().reindex(le.classes_).to_numpy()
    cnn = SpectrumCNNModule(
        n_bins=len(freqs),
        freqs=freqs,
        class_names=le.classes_.tolist(),
        class_weights=torch.tensor(counts.sum() / counts, dtype=torch.float32),
        channels=list(p.channels),
        band_edges=list(p.band_edges),
        window_fn=functools.partial(np.hanning),
        rul_cap=df["rul"].max(),
        fs=p.fs,
        optim=OmegaConf.to_container(OmegaConf.create({"name": "adam", "lr": p.lr})),
    )
    errors = np.abs(np.random.default_rng(0).normal(size=200))
    ae = AnomalyAEModule(n_bins=len(freqs), scaler=StandardScaler().fit(np.log1p(psd)),
                         threshold=np.quantile(errors, 0.995), lr=p.lr)
    return cnn, ae


# ------------------------------------------------------------------ traffic MARL

class TrafficDQNModule(pl.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        m = cfg.marl
        self.q = nn.Sequential(nn.Linear(5, m.hidden), nn.ReLU(), nn.Linear(m.hidden, m.n_phases))


class IndependentQModule(pl.LightningModule):
    def __init__(
        self,
        agent_ids=("tl_0_0",),
        obs_spec=None,  # truth: hparam
        n_phases: int = 4,
        hidden: int = 64,
        gamma: float = 0.95,
        reward_fn=None,  # truth: hparam
        phase_mode=PhaseMode.FIXED,  # truth: hparam
        adjacency=None,
        device_hint=None,
        n_agents: int = 1,
        lr: float = 1e-3,
        eps_schedule=None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.agent_list = list(agent_ids)
        dim = obs_spec.dim if obs_spec is not None else 5
        self.q = nn.ModuleDict({a: nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, n_phases))
                                for a in self.agent_list})

    def training_step(self, batch, _):
        queues, waits = batch
        return -torch.as_tensor(self.hparams.reward_fn(queues, waits)).float().mean()


class SharedPolicyModule(pl.LightningModule):
    def __init__(self, args):
        super().__init__()
        self.save_hyperparameters(args)
        self.q = nn.Linear(5, 4)


class TrafficDataModule(pl.LightningDataModule):
    def __init__(self, scenario: str = "grid2x2", episodes_per_epoch: int = 8, horizon: int = 40,
                 seed: int = 0, demand_scale: float = 1.0):
        super().__init__()
        self.save_hyperparameters()


def build_marl_modules(cfg=BASE_CFG):
    m = cfg.marl
    ids = {f"tl_{r}_{c}": (r, c) for r in range(m.rows) for c in range(m.cols)}
    n = len(ids)
    idx = torch.tensor([[i, i + 1] for i in range(n - 1)]).T
    adj = torch.sparse_coo_tensor(idx, torch.ones(idx.shape[1]), (n, n))
    spec = ObsSpec(lanes=4, include_phase=True)
    ind = IndependentQModule(
        agent_ids=tuple(ids),
        obs_spec=spec,
        n_phases=m.n_phases,
        hidden=m.hidden,
        gamma=m.gamma,
        reward_fn=REWARDS[m.reward](OmegaConf.to_container(m.reward_weights)),
        phase_mode=PhaseMode[m.mode.upper()],
        adjacency=adj,
        device_hint=torch.device("cpu"),
        n_agents=n,
        lr=m.lr,
        eps_schedule={"start": 1.0, "end": 0.05, "steps": int(np.int64(400))},
    )
    import argparse
    args = argparse.Namespace(hidden=m.hidden, gamma=m.gamma, lr=m.lr, n_phases=m.n_phases)
    return TrafficDQNModule(cfg), ind, SharedPolicyModule(args)


FACTORIES = {
    "QEModule": build_qe_module,
    "QEDistillModule": build_qe_distill,
    "SpectrumCNNModule": lambda: build_pdm_modules()[0],
    "AnomalyAEModule": lambda: build_pdm_modules()[1],
    "TrafficDQNModule": lambda: build_marl_modules()[0],
    "IndependentQModule": lambda: build_marl_modules()[1],
    "SharedPolicyModule": lambda: build_marl_modules()[2],
    "Pooling": lambda: Pooling.MEAN,
    "PhaseMode": lambda: PhaseMode.CYCLIC,
    "ObsSpec": ObsSpec,
}
