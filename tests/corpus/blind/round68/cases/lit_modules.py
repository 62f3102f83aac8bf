"""LightningModules / DataModules for the three projects (contacts, playlists, grid SE).

Every module is created by `build_module(name, cfg)` from the shared YAML config; the
per-domain builders derive data-dependent arguments (vocabularies, popularity, network
matrices) with the same preprocessing code the training scripts use.
"""
import functools
import logging
from enum import Enum

import lightning.pytorch as L
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import LabelEncoder, StandardScaler

ALPHABET = "ACDEFGHIKLMNPQRSTVWY-"

DEFAULT_CONFIG = OmegaConf.create("""
contact:
  channels: 16
  dilations: [1, 2, 4]
  cutoff_angstrom: 8.0
  label_smoothing: 0.05
  optim: {name: adamw, lr: 3.0e-4, betas: [0.9, 0.98]}
  msa: {n_layers: 2, d_model: 32, depth: 16}
playlist:
  max_len: 20
  d_model: 32
  n_heads: 2
  temperature: 0.7
  eval_ks: [10, 100, 500]
  title_encoder: {vocab_size: 512, emb_dim: 32, pooling: mean, lr: 1.0e-3}
grid:
  hidden: [64, 64]
  activation: silu
  chi2_alpha: 0.01
  sigma: {vm: 0.004, pinj: 0.01, qinj: 0.01, pflow: 0.008}
  pmu: {buses: [0, 3], window: 8, rate_hz: 30.0}
""")

LIT_MODULES = {}
ACTIVATIONS = {"tanh": nn.Tanh, "silu": nn.SiLU, "relu": nn.ReLU}


def register_module(name):
    def deco(cls):
        LIT_MODULES[name] = cls
        return cls
    return deco


class BusType(Enum):
    PQ = "PQ"
    PV = "PV"
    SLACK = "SLACK"


class MSATokenizer:
    def __init__(self, alphabet=ALPHABET, pad="<pad>", mask="<mask>"):
        self.itos = [pad, mask] + list(alphabet)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def encode(self, seq):
        return [self.stoi[c] for c in seq]


def sample_negatives(batch_size, n_neg, pool):
    return torch.as_tensor(np.random.choice(pool, size=(batch_size, n_neg)))


def pmu_jacobian(va, vm):
    return np.concatenate([np.diag(vm), np.diag(np.ones_like(va))], axis=1)


# ------------------------------------------------------------------- protein contacts

@register_module("contact_resnet")
class LitContactResNet(L.LightningModule):
    def __init__(
        self,
        in_channels: int = 43,
        channels: int = 16,
        dilations: tuple = (1, 2, 4),
        distance_bins=None,  # truth: hparam
        min_sep: int = 6,
        lr: float = 3e-4,
        criterion=None,  # truth: hparam
        optim_cfg: dict | None = None,
    ):
        super().__init__()
        if distance_bins is None:
            distance_bins = np.linspace(4.0, 20.0, 9)
        criterion = criterion if criterion is not None else nn.CrossEntropyLoss()
        self.save_hyperparameters()
        self.criterion = criterion
        self.stem = nn.Conv2d(in_channels, channels, 1)
        self.blocks = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=d, dilation=d) for d in dilations)
        self.head = nn.Conv2d(channels, len(distance_bins) + 1, 1)

    def forward(self, x):
        h = self.stem(x)
        for conv in self.blocks:
            h = F.elu(h + conv(h))
        logits = self.head(h)
        return 0.5 * (logits + logits.transpose(-1, -2))

    def training_step(self, batch, batch_idx):
        loss = self.criterion(self(batch["feats"]), batch["bins"])
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        opt = self.hparams.optim_cfg or {}
        return torch.optim.AdamW(self.parameters(), lr=opt.get("lr", self.hparams.lr),
                                 betas=tuple(opt.get("betas", (0.9, 0.999))))


class ContactLitBase(L.LightningModule):
    def __init__(self, lr: float = 1e-3, warmup_steps: int = 200, weight_decay: float = 0.01):
        super().__init__()
        self.save_hyperparameters()

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        warm = torch.optim.lr_scheduler.LinearLR(opt, 0.01, 1.0, total_iters=self.hparams.warmup_steps)
        return [opt], [{"scheduler": warm, "interval": "step"}]


@register_module("msa_transformer")
class LitMSATransformer(ContactLitBase):
    def __init__(
        self,
        n_layers: int = 2,
        d_model: int = 32,
        tied_row_attention: bool = True,
        alphabet: str = ALPHABET,
        msa_depth: int = 16,
        aa_background: dict | None = None,
        contact_cutoff=8.0,  # truth: hparam
        tokenizer=None,  # truth: hparam
        lr: float = 1e-3,
    ):
        super().__init__(lr=lr)
        self.tokenizer = tokenizer or MSATokenizer(alphabet)
        self.embed = nn.Embedding(len(alphabet) + 2, d_model)
        layer = nn.TransformerEncoderLayer(d_model, 4, 2 * d_model, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers)
        self.contact_head = nn.Linear(d_model, 1)

    def forward(self, tokens):
        h = self.encoder(self.embed(tokens).mean(1))
        return torch.sigmoid(self.contact_head(h[:, :, None] * h[:, None]).squeeze(-1))


class ContactDataModule(L.LightningDataModule):
    def __init__(self, data_dir: str = "data/pdb25", crop: int = 64, batch_size: int = 4,
                 num_workers: int = 0, val_fraction: float = 0.1):
        super().__init__()
        self.save_hyperparameters()


def build_contact_resnet(cfg):
    c = cfg.contact
    weights = torch.ones(10)
    weights[0] = 0.5
    return LitContactResNet(
        channels=c.channels,
        dilations=tuple(c.dilations),
        criterion=nn.CrossEntropyLoss(weight=weights, label_smoothing=c.label_smoothing),
        optim_cfg=OmegaConf.to_container(c.optim, resolve=True),
    )


def build_msa_transformer(cfg):
    seqs = ["MKTAYIAKQRQISFVKSHFSRQ", "MKTAYLAKQRQISFVKSHFARQ", "MRTAYIAKQRQVSFVKSHFSRE"]
    background = pd.Series(list("".join(seqs))).value_counts(normalize=True).round(4).to_dict()
    c = cfg.contact
    return LitMSATransformer(
        n_layers=c.msa.n_layers, d_model=c.msa.d_model, msa_depth=c.msa.depth,
        aa_background=background,
        contact_cutoff=np.float32(c.cutoff_angstrom),
        tokenizer=MSATokenizer(ALPHABET),
        lr=c.optim.lr,
    )


# ------------------------------------------------------------------- playlist continuation

def playlist_frame(seed=0, n_playlists=30, n_tracks=60):
    rng = np.random.default_rng(seed)
    rows = [(pid, int(t) * 7 + 1000) for pid in range(n_playlists)
            for t in rng.choice(n_tracks, size=int(rng.integers(5, 15)), replace=False)]
    return pd.DataFrame(rows, columns=["pid", "track_id"])


@register_module("sasrec")
class LitSASRec(L.LightningModule):
    def __init__(
        self,
        n_items: int = 100,
        max_len: int = 20,
        d_model: int = 32,
        n_heads: int = 2,
        dropout: float = 0.1,
        pad_id: int = 0,
        temperature: float = 1.0,
        item_pop: torch.Tensor | None = None,
        pretrained_emb: torch.Tensor | None = None,
        neg_sampler=None,  # truth: hparam
        metric_ks=(10, 50),  # truth: hparam
        track_index: dict | None = None,  # truth: hparam
    ):
        super().__init__()
        temperature = float(temperature)
        self.save_hyperparameters(ignore=["pretrained_emb"])
        self.item_emb = nn.Embedding(n_items + 1, d_model, padding_idx=pad_id)
        if pretrained_emb is not None:
            self.item_emb.weight.data.copy_(pretrained_emb)
        self.pos_emb = nn.Embedding(max_len, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 2 * d_model, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.neg_sampler = neg_sampler

    def forward(self, seq):
        h = self.item_emb(seq) + self.pos_emb.weight[: seq.shape[1]]
        return self.encoder(h)[:, -1] @ self.item_emb.weight.T / self.hparams.temperature


@register_module("title_encoder")
class LitTitleEncoder(L.LightningModule):
    def __init__(
        self,
        cfg,  # truth: hparam
        vocab_size: int = 512,
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.emb = nn.EmbeddingBag(vocab_size, cfg.emb_dim, mode=cfg.pooling)
        self.proj = nn.Linear(cfg.emb_dim, cfg.emb_dim)

    def forward(self, tokens, offsets):
        return F.normalize(self.proj(self.emb(tokens, offsets)), dim=-1)


@register_module("two_stage_ranker")
class LitTwoStageRanker(L.LightningModule):
    def __init__(self, n_features: int = 8, hidden: int = 32, lr: float = 1e-3,
                 feature_scaler=None, candidate_index=None):
        super().__init__()
        self.save_hyperparameters("n_features", "hidden", "lr")
        self.feature_scaler = feature_scaler
        self.candidate_index = candidate_index
        self.mlp = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))


class PlaylistDataModule(L.LightningDataModule):
    def __init__(self, mpd_dir: str = "data/mpd", max_len: int = 20, holdout: int = 5,
                 batch_size: int = 256, min_track_count: int = 5):
        super().__init__()
        self.save_hyperparameters()


def build_sasrec(cfg):
    df = playlist_frame()
    enc = LabelEncoder().fit(df["track_id"])
    ids = enc.classes_
    counts = df["track_id"].value_counts().reindex(ids).to_numpy()
    p = cfg.playlist
    return LitSASRec(
        n_items=df["track_id"].nunique(),
        max_len=p.max_len, d_model=p.d_model, n_heads=p.n_heads,
        pad_id=0,
        temperature=np.float32(p.temperature),
        item_pop=torch.from_numpy(counts / counts.sum()).float(),
        pretrained_emb=torch.randn(len(ids) + 1, p.d_model),
        neg_sampler=functools.partial(sample_negatives, pool=np.arange(1, len(ids) + 1)),
        metric_ks=p.eval_ks,
        track_index={tid: i + 1 for i, tid in enumerate(ids)},
    )


def build_title_encoder(cfg):
    enc_cfg = OmegaConf.merge(OmegaConf.create({"dropout": 0.1}), cfg.playlist.title_encoder)
    return LitTitleEncoder(enc_cfg, vocab_size=enc_cfg.vocab_size)


def build_ranker(cfg):
    feats = np.random.default_rng(1).normal(size=(40, 8))
    return LitTwoStageRanker(n_features=feats.shape[1], hidden=32,
                             feature_scaler=StandardScaler().fit(feats),
                             candidate_index=NearestNeighbors(n_neighbors=5).fit(feats))


# ------------------------------------------------------------------- power-grid state estimation

GRID_BUSES = pd.DataFrame({"type": ["SLACK", "PV", "PV", "PQ", "PQ", "PQ"]})
GRID_LINES = [(0, 1, 0.1, 0.2), (0, 3, 0.05, 0.2), (0, 4, 0.08, 0.3), (1, 2, 0.05, 0.25), (1, 3, 0.05, 0.1),
              (1, 4, 0.1, 0.3), (1, 5, 0.07, 0.2), (2, 4, 0.12, 0.26), (2, 5, 0.02, 0.1), (3, 4, 0.2, 0.4),
              (4, 5, 0.1, 0.3)]


def grid_ybus(lines, n_bus):
    f, t, r, x = map(np.array, zip(*lines))
    y = 1.0 / (r + 1j * x)
    rows, cols = np.r_[f, t, f, t], np.r_[t, f, f, t]
    return sp.csr_matrix((np.r_[-y, -y, y, y], (rows, cols)), shape=(n_bus, n_bus))


@register_module("grid_se")
class LitGridSE(L.LightningModule):
    def __init__(
        self,
        n_bus: int = 6,
        n_meas: int = 29,
        hidden: list | None = None,
        slack_bus: int = 0,
        base_mva: float = 100.0,
        meas_sigma: dict | None = None,
        chi2_alpha: float = 0.01,
        ybus=None,
        bus_types=None,  # truth: hparam
        activation=nn.Tanh,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["ybus"])
        hidden = hidden or [64, 64]
        layers, d = [], n_meas
        for h in hidden:
            layers += [nn.Linear(d, h), activation()]
            d = h
        self.net = nn.Sequential(*layers, nn.Linear(d, 2 * n_bus - 1))
        if ybus is not None:
            self.register_buffer("g_bus", torch.from_numpy(ybus.real.toarray()).float())
            self.register_buffer("b_bus", torch.from_numpy(ybus.imag.toarray()).float())

    def forward(self, z):
        return self.net(z)


@register_module("pmu_tracker")
class LitPMUTracker(L.LightningModule):
    def __init__(
        self,
        pmu_buses: tuple = (0, 3),
        window: int = 8,
        sample_rate_hz: float = 30.0,
        featurizer=None,  # truth: hparam
        start_time=None,  # truth: hparam
        jacobian_fn=None,  # truth: hparam
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        probe = np.ones((window, len(pmu_buses)), dtype=np.complex64)
        n_feat = featurizer(probe).shape[-1] if featurizer is not None else 2 * len(pmu_buses)
        self.jacobian_fn = jacobian_fn
        self.log_ = logging.getLogger("grid.pmu")
        self.gru = nn.GRU(n_feat, 32, batch_first=True)
        self.head = nn.Linear(32, 2 * len(pmu_buses))


class GridDataModule(L.LightningDataModule):
    def __init__(self, case: str = "case6ww", n_samples: int = 2048, load_spread: float = 0.25,
                 noise_scale: float = 1.0, seed: int = 3, batch_size: int = 64):
        super().__init__()
        self.save_hyperparameters()


def build_grid_se(cfg):
    g = cfg.grid
    types = [BusType(t) for t in GRID_BUSES["type"]]
    n_bus = len(GRID_BUSES)
    n_meas = 3 * n_bus + len(GRID_LINES)
    return LitGridSE(
        n_bus=n_bus, n_meas=n_meas,
        hidden=list(g.hidden),
        slack_bus=int(np.flatnonzero(GRID_BUSES["type"].to_numpy() == "SLACK")[0]),
        meas_sigma={k: float(v) for k, v in g.sigma.items()},
        chi2_alpha=g.chi2_alpha,
        ybus=grid_ybus(GRID_LINES, n_bus),
        bus_types=types,
        activation=ACTIVATIONS[g.activation],
    )


def build_pmu_tracker(cfg):
    p = cfg.grid.pmu
    scale = 1.0 / p.rate_hz
    return LitPMUTracker(
        pmu_buses=tuple(p.buses), window=p.window, sample_rate_hz=p.rate_hz,
        featurizer=lambda z: np.concatenate([np.abs(z), np.angle(z) * scale], axis=-1),
        start_time=pd.Timestamp("2024-03-01T14:15:00Z"),
        jacobian_fn=pmu_jacobian,
    )


BUILDERS = {"contact_resnet": build_contact_resnet, "msa_transformer": build_msa_transformer,
            "sasrec": build_sasrec, "title_encoder": build_title_encoder, "two_stage_ranker": build_ranker,
            "grid_se": build_grid_se, "pmu_tracker": build_pmu_tracker}


def build_module(name, cfg=None):
    cfg = cfg if cfg is not None else DEFAULT_CONFIG
    return BUILDERS[name](cfg)


FACTORIES = {cls.__name__: functools.partial(build_module, name) for name, cls in LIT_MODULES.items()}
FACTORIES["ContactLitBase"] = lambda: ContactLitBase(lr=DEFAULT_CONFIG.contact.optim.lr)
FACTORIES["BusType"] = lambda: BusType.SLACK
