"""LightningModules and DataModules for the three projects (streamflow, peptide ID, lanes).

Everything is built from one OmegaConf config through registries: `build_module(name)` looks up a
builder that turns the config section (plus statistics computed from the training data) into
constructor arguments, the way the projects' `train.py` does before `Trainer.fit`.
"""
import enum
import pathlib

import lightning as L
import numpy as np
import pandas as pd
import torch
import yaml
from omegaconf import OmegaConf
from sklearn.preprocessing import StandardScaler
from torch import nn

CONFIG = OmegaConf.create("""
streamflow:
  dynamic_inputs: [prcp, tmax, tmin, srad, vp]
  static_attributes: [area, elev_mean, slope_mean, frac_forest]
  hidden_size: 64
  seq_length: 365
  dropout: 0.4
  lr: 0.001
  d_model: 32
  n_heads: 4
  data_dir: /data/CAMELS_US
peptide:
  dim: 64
  n_layers: 2
  max_charge: 4
  ion_types: [b, y]
  fragment_tol_da: 0.02
  optimizer: adamw
  warmup: 100
  decoy_prefix: DECOY_
  fdr: 0.01
  max_peaks: 150
  batch_size: 32
lane:
  backbone: {name: tiny_cnn, width: 16}
  num_lanes: 4
  griding_num: 100
  img_size: [288, 800]
  activation: relu
  data:
    root: /data/CULane
    mean: [0.485, 0.456, 0.406]
    std: [0.229, 0.224, 0.225]
""")

PERIODS = yaml.safe_load("""
train: [1999-10-01, 2008-09-30]
validation: [1980-10-01, 1989-09-30]
""")

LANE_CATEGORIES = ("normal", "crowd", "night", "noline", "shadow", "arrow", "hlight", "curve", "cross")


class IonType(str, enum.Enum):
    B = "b"
    Y = "y"


class NSELoss(nn.Module):
    """NSE* loss of Kratzert et al.: squared error weighted by the basin's discharge std."""

    def __init__(self, eps=0.1):
        super().__init__()
        self.eps = eps

    def forward(self, pred, target, q_std):
        return (((pred - target) ** 2) / (q_std + self.eps) ** 2).mean()


BACKBONES, OPTIMIZERS, BUILDERS = {}, {"adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}, {}
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


def register(table, name):
    def deco(fn):
        table[name] = fn
        return fn
    return deco


@register(BACKBONES, "tiny_cnn")
def tiny_cnn(width=16):
    return nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.ReLU(), nn.Conv2d(width, 2 * width, 3, 2, 1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d((4, 8)), nn.Flatten())


def camels_frame(basins=("01013500", "01022500", "02231000"), n_days=120, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for b in basins:
        q = rng.gamma(2.0, 1.5, n_days)
        rows.append(pd.DataFrame({"basin": b, "qobs": q, "prcp": rng.gamma(0.5, 3, n_days),
                                  "area": rng.uniform(50, 3000), "elev_mean": rng.uniform(100, 2500),
                                  "slope_mean": rng.uniform(1, 80), "frac_forest": rng.uniform(0, 1)}))
    return pd.concat(rows, ignore_index=True)


class StreamflowLSTM(L.LightningModule):
    def __init__(
        self,
        dynamic_inputs,
        static_attributes,
        hidden_size=64,
        seq_length=365,
        dropout=0.4,
        lr=1e-3,
        target_stats=None,  # truth: hparam
        static_scaler=None,  # truth: hparam
        train_period=None,  # truth: hparam
        basins=(),
        loss="nse",
    ):
        super().__init__()
        self.save_hyperparameters()
        n_in = len(dynamic_inputs) + len(static_attributes)
        self.lstm = nn.LSTM(n_in, hidden_size, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, 1))

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class StreamflowTransformer(L.LightningModule):
    def __init__(
        self,
        basin_embedding,
        n_basins,
        d_model=32,
        n_heads=4,
        warmup_steps=500,
        loss_module=None,  # truth: hparam
        feature_norm=None,
        quantiles=(0.05, 0.5, 0.95),
    ):
        super().__init__()
        if loss_module is None:
            loss_module = NSELoss()
        self.save_hyperparameters(ignore=["basin_embedding"])
        self.basin_embedding = basin_embedding
        self.inp = nn.Linear(5, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 2 * d_model, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1)
        self.out = nn.Linear(d_model, len(quantiles))
        self.loss_module = loss_module

    def forward(self, x, basin_idx):
        h = self.inp(x) + self.basin_embedding(basin_idx)[:, None]
        return self.out(self.encoder(h)[:, -1])


@register(BUILDERS, "streamflow_lstm")
def build_streamflow_lstm(cfg, frame=None):
    frame = camels_frame() if frame is None else frame
    statics = frame.groupby("basin")[list(cfg.static_attributes)].first()
    return StreamflowLSTM(
        dynamic_inputs=list(cfg.dynamic_inputs),
        static_attributes=list(cfg.static_attributes),
        hidden_size=cfg.hidden_size,
        seq_length=cfg.seq_length,
        dropout=cfg.dropout,
        lr=cfg.lr,
        target_stats={"mean": float(frame.qobs.mean()), "std": frame.qobs.std()},
        static_scaler=StandardScaler().fit(statics.to_numpy()),
        train_period=tuple(PERIODS["train"]),
        basins=tuple(sorted(frame.basin.unique())),
    )


@register(BUILDERS, "streamflow_transformer")
def build_streamflow_transformer(cfg, frame=None):
    frame = camels_frame() if frame is None else frame
    n_basins = frame.basin.nunique()
    x = frame[["prcp", "qobs"]]
    return StreamflowTransformer(
        basin_embedding=nn.Embedding(n_basins, cfg.d_model),
        n_basins=n_basins,
        d_model=cfg.d_model,
        n_heads=cfg.n_heads,
        feature_norm={"mean": x.mean().tolist(), "std": x.std().tolist()},
    )


class PeptideScorer(L.LightningModule):
    def __init__(
        self,
        vocab,
        dim=64,
        n_layers=2,
        max_charge=4,
        ion_types=("b", "y"),  # truth: hparam
        precursor_tol_ppm=10.0,  # truth: hparam
        fragment_tol_da=0.02,
        mass_table=None,
        optimizer_cls=torch.optim.Adam,  # truth: hparam
        lr_schedule=None,  # truth: hparam
        decoy_prefix="DECOY_",
        fdr=0.01,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(len(vocab) + 1, dim, padding_idx=0)
        self.gru = nn.GRU(dim, dim, num_layers=n_layers, batch_first=True)
        self.spec = nn.Linear(400, dim)

    def forward(self, spectra, peptides):
        _, h = self.gru(self.emb(peptides))
        return nn.functional.cosine_similarity(self.spec(spectra), h[-1], dim=-1)

    def configure_optimizers(self):
        opt = self.hparams.optimizer_cls(self.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self.hparams.lr_schedule)
        return [opt], [{"scheduler": sched, "interval": "step"}]


class DeNovoTransformer(L.LightningModule):
    def __init__(
        self,
        cfg,  # truth: hparam
        vocab=None,
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.vocab = dict(vocab or {})
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(cfg.dim, 4, batch_first=True), cfg.n_layers)
        self.aa_head = nn.Linear(cfg.dim, len(self.vocab) + 2)


class PSMRescorer(L.LightningModule):
    def __init__(self, feature_encoder, feature_names, hidden=32, lr=5e-4, pos_weight=None):
        super().__init__()
        self.save_hyperparameters("feature_names", "hidden", "lr")
        self.feature_encoder = feature_encoder
        self.mlp = nn.Sequential(nn.Linear(len(feature_names), hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.pos_weight = pos_weight


class RetentionTimeModel(L.LightningModule):
    def __init__(self, cfg, irt_peptides=None):
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg, resolve=True))
        self.irt_peptides = list(irt_peptides or [])
        self.net = nn.Sequential(nn.Embedding(22, cfg.dim), nn.Flatten(), nn.LazyLinear(1))


def ppm_errors(seed=1, n=200):
    rng = np.random.default_rng(seed)
    theo = rng.uniform(400, 1600, n)
    obs = theo * (1 + rng.normal(2e-6, 3e-6, n))
    return (obs - theo) / theo * 1e6


@register(BUILDERS, "peptide_scorer")
def build_peptide_scorer(cfg):
    vocab = {aa: i + 1 for i, aa in enumerate("ACDEFGHIKLMNPQRSTVWY")}
    warmup = cfg.warmup
    return PeptideScorer(
        vocab=vocab,
        dim=cfg.dim,
        n_layers=cfg.n_layers,
        max_charge=cfg.max_charge,
        ion_types=tuple(IonType(t) for t in cfg.ion_types),
        precursor_tol_ppm=3 * np.abs(ppm_errors()).std(),
        fragment_tol_da=cfg.fragment_tol_da,
        mass_table={"C": 103.00919 + 57.021464, "M": 131.04049},
        optimizer_cls=OPTIMIZERS[cfg.optimizer],
        lr_schedule=lambda step: min(1.0, (step + 1) / warmup),
        decoy_prefix=cfg.decoy_prefix,
        fdr=cfg.fdr,
    )


@register(BUILDERS, "denovo")
def build_denovo(cfg):
    return DeNovoTransformer(cfg, vocab={aa: i for i, aa in enumerate("ACDEFGHIKLMNPQRSTVWY")})


@register(BUILDERS, "psm_rescorer")
def build_rescorer(cfg):
    names = ["score", "delta_score", "charge", "ppm_error", "length"]
    return PSMRescorer(nn.Linear(len(names), len(names)), names, hidden=cfg.dim // 2,
                       pos_weight=torch.tensor([3.0]))


@register(BUILDERS, "retention_time")
def build_rt(cfg):
    return RetentionTimeModel(cfg, irt_peptides=["LGGNEQVTR", "GAGSSEPVTGLDAK"])


class LaneDetector(L.LightningModule):
    def __init__(
        self,
        backbone,  # truth: hparam
        num_lanes=4,
        griding_num=100,
        row_anchors=None,  # truth: hparam
        img_size=(288, 800),
        aux_seg=False,
        data_root=None,  # truth: hparam
        mean=(0.485, 0.456, 0.406),  # truth: hparam
        std=(0.229, 0.224, 0.225),
        categories=LANE_CATEGORIES,
    ):
        super().__init__()
        if row_anchors is None:
            row_anchors = list(np.linspace(121, 287, 18).round())
        self.save_hyperparameters()
        self.backbone = backbone
        self.cls = nn.Linear(32 * 32, (griding_num + 1) * len(row_anchors) * num_lanes)

    def forward(self, x):
        return self.cls(self.backbone(x))


class CurveLaneDetector(LaneDetector):
    def __init__(self, poly_degree=3, curve_weight=0.5, **kwargs):
        super().__init__(**kwargs)
        self.poly_head = nn.Linear(32 * 32, self.hparams.num_lanes * (poly_degree + 1))


class LaneSegmenter(L.LightningModule):
    def __init__(
        self,
        backbone,
        num_classes=5,
        activation=nn.ReLU,  # truth: hparam
        seg_weight=1.0,
        class_weights=None,
        compute_dtype=torch.float32,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.head = nn.Sequential(nn.LazyLinear(64), activation(), nn.Linear(64, num_classes))


@register(BUILDERS, "lane_detector")
def build_lane_detector(cfg, cls=LaneDetector, **extra):
    bb = dict(cfg.backbone)
    backbone = BACKBONES[bb.pop("name")](**bb)
    return cls(
        backbone=backbone,
        num_lanes=cfg.num_lanes,
        griding_num=cfg.griding_num,
        img_size=tuple(cfg.img_size),
        data_root=pathlib.Path(cfg.data.root),
        mean=cfg.data.mean,
        std=list(cfg.data.std),
        **extra,
    )


@register(BUILDERS, "lane_segmenter")
def build_lane_segmenter(cfg):
    bb = OmegaConf.to_container(cfg.backbone)
    backbone = BACKBONES[bb.pop("name")](**bb)
    return LaneSegmenter(backbone, num_classes=cfg.num_lanes + 1, activation=ACTIVATIONS[cfg.activation],
                         class_weights=torch.tensor([0.4] + [1.0] * cfg.num_lanes))


def build_module(name, section, config=CONFIG, **extra):
    return BUILDERS[name](config[section], **extra)


class CamelsDataModule(L.LightningDataModule):
    def __init__(self, data_dir="/data/CAMELS_US", basins=("01013500",), seq_length=365, batch_size=256,
                 train_period=("1999-10-01", "2008-09-30"), num_workers=4):
        super().__init__()
        self.save_hyperparameters()
        self.frame = None

    def setup(self, stage=None):
        self.frame = camels_frame(self.hparams.basins)


class MGFDataModule(L.LightningDataModule):
    def __init__(self, mgf_files=(), max_peaks=150, min_mz=50.0, max_mz=2500.0, batch_size=32,
                 remove_precursor_tol=2.0):
        super().__init__()
        self.save_hyperparameters()


class CULaneDataModule(L.LightningDataModule):
    def __init__(self, root="/data/CULane", list_file="list/train_gt.txt", img_size=(288, 800), batch_size=32,
                 augment=None):
        super().__init__()
        self.save_hyperparameters()
        self.augment = dict(augment or {"hflip": 0.5, "rotate": 6})


FACTORIES = {
    "IonType": lambda: IonType("y"),
    "StreamflowLSTM": lambda: build_module("streamflow_lstm", "streamflow"),
    "StreamflowTransformer": lambda: build_module("streamflow_transformer", "streamflow"),
    "PeptideScorer": lambda: build_module("peptide_scorer", "peptide"),
    "DeNovoTransformer": lambda: build_module("denovo", "peptide"),
    "PSMRescorer": lambda: build_module("psm_rescorer", "peptide"),
    "RetentionTimeModel": lambda: build_module("retention_time", "peptide"),
    "LaneDetector": lambda: build_module("lane_detector", "lane"),
    "CurveLaneDetector": lambda: build_module("lane_detector", "lane", cls=CurveLaneDetector, poly_degree=2),
    "LaneSegmenter": lambda: build_module("lane_segmenter", "lane"),
    "CamelsDataModule": lambda: CamelsDataModule(basins=["01013500", "01022500"]),
    "MGFDataModule": lambda: MGFDataModule(mgf_files=["run01.mgf", "run02.mgf"]),
    "CULaneDataModule": lambda: CULaneDataModule(img_size=tuple(CONFIG.lane.img_size)),
}
