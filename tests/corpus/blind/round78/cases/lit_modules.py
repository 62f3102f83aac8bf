"""Lightning modules and data modules for the three projects, built from one YAML config.

`build_module(task, cfg)` looks the task up in MODEL_REGISTRY and turns the config (plus whatever
the preprocessing computed: scalers, class balance, atlas geometry) into constructor arguments.
Every module calls `self.save_hyperparameters(...)` so `load_from_checkpoint` can rebuild it.
"""
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from omegaconf import OmegaConf
from sklearn.preprocessing import StandardScaler

CONFIG = """
speech:
  n_fft: 256
  hop: 64
  hidden: 32
  lr: 0.0005
  sample_rate: 16000
  loss: l1
  snr_range: [-5, 15]
  noise_types: [babble, street, cafe]
  augment: {gain_db: 6.0, p: 0.5}
fraud:
  hidden: 32
  lr: 0.003
  dropout: 0.1
  edge_types: [transfer, shared_device]
  aggregator: mean
  fanout: [10, 5]
  window_days: 7
registration:
  data:
    shape: [16, 16, 16]
    spacing: [1.0, 1.0, 1.2]
    atlas: atlases/oasis_avg.npy
  model:
    enc_channels: [8, 16]
    int_steps: 5
    bidirectional: false
  loss: {similarity: ncc, smooth_weight: 0.01}
  optim: {lr: 0.0001}
"""


def load_cfg():
    return OmegaConf.create(yaml.safe_load(CONFIG))


MODEL_REGISTRY = {}
DATA_REGISTRY = {}


def register(table, name):
    def deco(cls):
        table[name] = cls
        return cls
    return deco


# ---------------------------------------------------------------- shared builders

class SISDRLoss(nn.Module):
    def forward(self, est, ref):
        ref = ref - ref.mean(-1, keepdim=True)
        est = est - est.mean(-1, keepdim=True)
        proj = (est * ref).sum(-1, keepdim=True) / ref.pow(2).sum(-1, keepdim=True).clamp_min(1e-8) * ref
        return -10 * torch.log10(proj.pow(2).sum(-1) / (est - proj).pow(2).sum(-1).clamp_min(1e-8)).mean()


LOSSES = {"l1": nn.L1Loss, "mse": nn.MSELoss, "sisdr": SISDRLoss}


def build_loss(name):
    return LOSSES[name]()


def build_augment(gain_db, p):
    def augment(wav):
        if torch.rand(()) < p:
            wav = wav * 10 ** (gain_db * (2 * torch.rand(()) - 1) / 20)
        return wav
    return augment


@dataclass
class STFTConfig:
    n_fft: int = 256
    hop: int = 64
    center: bool = True


def neighbor_sample(adj_list, seeds, fanout=(10, 5)):
    out = [seeds]
    for k in fanout:
        out.append([n for s in out[-1] for n in adj_list.get(s, [])[:k]])
    return out


def transactions_frame(n_accounts=50, n=200, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "src": rng.integers(0, n_accounts, n),
        "dst": rng.integers(0, n_accounts, n),
        "amount": rng.lognormal(3.0, 1.0, n),
        "is_fraud": (rng.random(n) < 0.1).astype(int),
    })
    feats = df.groupby("src").agg(amt_mean=("amount", "mean"), amt_max=("amount", "max"), n_out=("dst", "count"))
    return df, feats


# ---------------------------------------------------------------- speech enhancement

@register(MODEL_REGISTRY, "speech_enhancer")
class LitSpeechEnhancer(L.LightningModule):
    def __init__(
        self,
        n_fft: int = 256,
        hop: int = 64,
        hidden: int = 32,
        lr: float = 5e-4,
        sample_rate: int = 16000,
        window: str = "hann",
        snr_range=(-5.0, 15.0),
        betas=(0.9, 0.999),
        loss=None,  # truth: hparam
        augment=None,  # truth: hparam
        stft_cfg=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.loss_fn = loss if loss is not None else nn.L1Loss()
        bins = n_fft // 2 + 1
        self.net = nn.GRU(bins, hidden, batch_first=True)
        self.head = nn.Linear(hidden, bins)

    def forward(self, wav):
        hp = self.hparams
        spec = torch.stft(wav, hp.n_fft, hp.hop, window=torch.hann_window(hp.n_fft), return_complex=True)
        h, _ = self.net(spec.abs().transpose(1, 2))
        mask = torch.sigmoid(self.head(h)).transpose(1, 2)
        return torch.istft(spec * mask, hp.n_fft, hp.hop, window=torch.hann_window(hp.n_fft), length=wav.shape[-1])

    def training_step(self, batch, batch_idx):
        noisy, clean = batch
        if self.hparams.augment is not None:
            noisy = self.hparams.augment(noisy)
        loss = self.loss_fn(self(noisy), clean)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, betas=self.hparams.betas)


@register(MODEL_REGISTRY, "mel_masker")
class LitMelMasker(L.LightningModule):
    """Lighter model for the hearing-aid build: mask on a mel filterbank, loss module ignored."""

    def __init__(self, n_mels=40, hidden=32, lr=1e-3, mel_fmin=50.0, mel_fmax=7600.0,
                 snr_weights=None,
                 noise_types=None,  # truth: hparam
                 loss_fn=None):
        super().__init__()
        self.save_hyperparameters(ignore=["loss_fn"])
        self.loss_fn = loss_fn or nn.MSELoss()
        self.body = nn.Sequential(nn.Linear(n_mels, hidden), nn.ReLU(), nn.Linear(hidden, n_mels))

    def forward(self, mel):
        return torch.sigmoid(self.body(mel)) * mel


@register(DATA_REGISTRY, "speech")
class SpeechDataModule(L.LightningDataModule):
    def __init__(self, root: str = "data/vctk_demand", batch_size: int = 8, segment_seconds: float = 2.0,
                 num_workers: int = 2, sample_rate: int = 16000):
        super().__init__()
        self.save_hyperparameters()
        self.segment = int(segment_seconds * sample_rate)

    def train_dataloader(self):
        clean = torch.randn(16, self.segment)
        noisy = clean + 0.1 * torch.randn_like(clean)
        ds = torch.utils.data.TensorDataset(noisy, clean)
        return torch.utils.data.DataLoader(ds, batch_size=self.hparams.batch_size)


# ---------------------------------------------------------------- fraud rings

@register(MODEL_REGISTRY, "fraud_gnn")
class LitFraudGNN(L.LightningModule):
    def __init__(
        self,
        in_dim,
        hidden=32,
        lr=3e-3,
        dropout=0.1,
        n_nodes=0,
        threshold=0.5,
        edge_types=("transfer",),
        aggregator="mean",
        class_weights=None,
        pos_weight=1.0,  # truth: hparam
        feature_names=None,  # truth: hparam
        scaler=None,  # truth: hparam
        sampler=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.lin1 = nn.Linear(2 * in_dim, hidden)
        self.lin2 = nn.Linear(2 * hidden, 1)
        self.register_buffer("pw", torch.tensor(float(pos_weight)))

    def forward(self, x, adj):
        h = F.relu(self.lin1(torch.cat([x, adj @ x], -1)))
        h = F.dropout(h, self.hparams.dropout, self.training)
        return self.lin2(torch.cat([h, adj @ h], -1)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, adj, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x, adj), y, pos_weight=self.pw)
        self.log("train/loss", loss)
        return loss


@register(MODEL_REGISTRY, "ring_detector")
class LitRingDetector(L.LightningModule):
    """Second stage: scores connected components; the graph itself is passed in but not stored."""

    def __init__(self, graph=None, hidden=16, lr=1e-3, ring_min_size=3, max_hops=2,
                 time_window=None):  # truth: hparam[time_window]
        super().__init__()
        self.save_hyperparameters("hidden", "lr", "ring_min_size", "max_hops", "time_window")
        self.n_graph_nodes = len(graph) if graph is not None else 0
        self.scorer = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, comp_feats):
        return self.scorer(comp_feats).squeeze(-1)


@register(DATA_REGISTRY, "fraud")
class TransactionDataModule(L.LightningDataModule):
    def __init__(self, csv_path="data/transactions.csv", batch_size=1, val_frac=0.2, seed=13,
                 min_amount=0.0):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        self.df, self.feats = transactions_frame(seed=self.hparams.seed)


# ---------------------------------------------------------------- 3D registration

@register(MODEL_REGISTRY, "voxelmorph_cfg")
class LitRegistrationFromCfg(L.LightningModule):
    """The Hydra-style variant: the whole config node goes in."""

    def __init__(self, cfg,  # truth: hparam
                 atlas=None):
        super().__init__()
        self.save_hyperparameters(cfg)
        c1, c2 = cfg.model.enc_channels
        self.enc = nn.Conv3d(2, c1, 3, padding=1)
        self.flow = nn.Conv3d(c1, 3, 3, padding=1)

    def forward(self, moving, fixed):
        return self.flow(F.leaky_relu(self.enc(torch.cat([moving, fixed], 1)), 0.2))


@register(MODEL_REGISTRY, "voxelmorph")
class LitVoxelMorph(L.LightningModule):
    def __init__(
        self,
        image_shape=(16, 16, 16),
        int_steps=5,
        lr=1e-4,
        smooth_weight=0.01,
        similarity="ncc",
        bidirectional=False,
        use_amp=False,
        model_cfg=None,
        voxel_volume=1.0,
        enc_channels=(8, 16),  # truth: hparam
        spacing=(1.0, 1.0, 1.0),  # truth: hparam
        atlas_path=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        c1, c2 = list(enc_channels)
        self.enc1 = nn.Conv3d(2, c1, 3, padding=1)
        self.enc2 = nn.Conv3d(c1, c2, 3, stride=2, padding=1)
        self.flow = nn.Conv3d(c2, 3, 3, padding=1)

    def forward(self, moving, fixed):
        x = F.leaky_relu(self.enc1(torch.cat([moving, fixed], 1)), 0.2)
        v = self.flow(F.leaky_relu(self.enc2(x), 0.2))
        return F.interpolate(v, size=moving.shape[2:], mode="trilinear", align_corners=False)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


@register(DATA_REGISTRY, "oasis")
class OasisDataModule(L.LightningDataModule):
    def __init__(self, data_dir="data/oasis", batch_size=1, shape=(16, 16, 16), atlas_name="oasis_avg",
                 pairs_per_epoch=100):
        super().__init__()
        self.save_hyperparameters()


# ---------------------------------------------------------------- builders

def speech_kwargs(cfg):
    s = cfg.speech
    return dict(
        n_fft=s.n_fft,
        hop=s.hop,
        hidden=s.hidden,
        lr=float(s.lr),
        sample_rate=int(s.sample_rate),
        snr_range=tuple(float(v) for v in s.snr_range),
        loss=build_loss(s.loss),
        augment=build_augment(s.augment.gain_db, s.augment.p),
        stft_cfg=STFTConfig(n_fft=s.n_fft, hop=s.hop),
    )


def masker_kwargs(cfg):
    s = cfg.speech
    snr = np.linspace(s.snr_range[0], s.snr_range[1], 5)
    return dict(
        n_mels=40,
        mel_fmax=s.sample_rate / 2 - 400,
        snr_weights=torch.softmax(torch.from_numpy(-snr / 10), 0).float(),
        noise_types=frozenset(s.noise_types),
        loss_fn=build_loss("mse"),
    )


def fraud_kwargs(cfg):
    f = cfg.fraud
    df, feats = transactions_frame()
    scaler = StandardScaler().fit(feats.to_numpy())
    neg, pos = (df["is_fraud"] == 0).sum(), (df["is_fraud"] == 1).sum()
    return dict(
        in_dim=feats.shape[1],
        hidden=f.hidden,
        lr=f.lr,
        dropout=f.dropout,
        n_nodes=df["src"].nunique(),
        threshold=float(np.clip(pos / len(df), 0.05, 0.95)),
        edge_types=tuple(f.edge_types),
        aggregator=str(f.aggregator),
        class_weights=torch.tensor([1.0, float(neg) / max(int(pos), 1)]),
        pos_weight=neg / max(pos, 1),
        feature_names=feats.columns,
        scaler=scaler,
        sampler=functools.partial(neighbor_sample, fanout=tuple(f.fanout)),
    )


def ring_kwargs(cfg):
    df, _ = transactions_frame(seed=4)
    sizes = df.groupby("dst").size().to_numpy()
    return dict(
        graph={int(a): [] for a in df["src"].unique()},
        ring_min_size=int(np.percentile(sizes, 75)),
        max_hops=2,
        time_window=pd.Timedelta(days=cfg.fraud.window_days),
    )


def registration_kwargs(cfg):
    r = cfg.registration
    spacing = np.asarray(r.data.spacing)
    return dict(
        image_shape=tuple(int(s) for s in r.data.shape),
        int_steps=r.model.int_steps,
        lr=r.optim.lr,
        smooth_weight=r.loss.smooth_weight,
        similarity=r.loss.similarity,
        bidirectional=r.model.bidirectional,
        model_cfg=OmegaConf.to_container(r.model, resolve=True),
        voxel_volume=float(np.prod(spacing)),
        enc_channels=r.model.enc_channels,
        spacing=tuple(spacing),
        atlas_path=Path(r.data.atlas),
    )


BUILDERS = {
    "speech_enhancer": speech_kwargs,
    "mel_masker": masker_kwargs,
    "fraud_gnn": fraud_kwargs,
    "ring_detector": ring_kwargs,
    "voxelmorph": registration_kwargs,
}


def build_module(task, cfg=None):
    cfg = cfg if cfg is not None else load_cfg()
    if task == "voxelmorph_cfg":
        return MODEL_REGISTRY[task](cfg.registration)
    return MODEL_REGISTRY[task](**BUILDERS[task](cfg))


def build_datamodule(name, cfg=None):
    cfg = cfg if cfg is not None else load_cfg()
    if name == "speech":
        return DATA_REGISTRY[name](batch_size=4, sample_rate=int(cfg.speech.sample_rate))
    if name == "oasis":
        return DATA_REGISTRY[name](shape=tuple(cfg.registration.data.shape))
    return DATA_REGISTRY[name](val_frac=0.25)


FACTORIES = {
    "LitSpeechEnhancer": lambda: build_module("speech_enhancer"),
    "LitMelMasker": lambda: build_module("mel_masker"),
    "LitFraudGNN": lambda: build_module("fraud_gnn"),
    "LitRingDetector": lambda: build_module("ring_detector"),
    "LitRegistrationFromCfg": lambda: build_module("voxelmorph_cfg"),
    "LitVoxelMorph": lambda: build_module("voxelmorph"),
    "SpeechDataModule": lambda: build_datamodule("speech"),
    "TransactionDataModule": lambda: build_datamodule("fraud"),
    "OasisDataModule": lambda: build_datamodule("oasis"),
}
