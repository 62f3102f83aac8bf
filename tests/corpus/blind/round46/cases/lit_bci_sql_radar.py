"""Lightning entry points for the three projects: motor-imagery EEG decoding, text-to-SQL and radar
nowcasting. Modules are built from OmegaConf configs through the registries and builder functions
below, the way `train.py --config ...` builds them."""
import argparse
import functools
import math
import pathlib
import sqlite3
import enum

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
import lightning as L
from omegaconf import OmegaConf
from sklearn.utils.class_weight import compute_class_weight

EEG_CFG = """
data:
  root: /data/bnci2014_001
  channels: [FC3, C3, Cz, C4, FC4, Pz]
  sfreq: 128
  window: [0.5, 2.5]
  subjects: [1, 2, 3, 4]
  batch_size: 16
model:
  backbone: shallow_convnet
  n_filters: 8
  dropout: 0.3
optim:
  lr: 1.0e-3
  weight_decay: 0.0
"""

RADAR_CFG = """
data:
  root: /data/radar/composites
  n_in: 4
  n_out: 3
  patch: 32
  dbz_range: [-10.0, 60.0]
  zr: {a: 200.0, b: 1.6}
model:
  hidden: 8
loss:
  name: balanced_mse
  kwargs: {weights: [1.0, 2.0, 5.0, 10.0], edges: [2.0, 5.0, 10.0]}
eval:
  thresholds: [0.5, 2.0, 5.0]
optim:
  lr: 2.0e-3
"""


# ----------------------------------------------------------------------------- EEG

class ShallowConvNet(nn.Module):
    def __init__(self, n_channels=6, n_classes=4, n_times=256, n_filters=8, dropout=0.3):
        super().__init__()
        self.temporal = nn.Conv2d(1, n_filters, (1, 13))
        self.spatial = nn.Conv2d(n_filters, n_filters, (n_channels, 1), bias=False)
        self.bn = nn.BatchNorm2d(n_filters)
        self.pool = nn.AvgPool2d((1, 35), stride=(1, 7))
        self.drop = nn.Dropout(dropout)
        n_out = (n_times - 12 - 35) // 7 + 1
        self.fc = nn.Linear(n_filters * n_out, n_classes)

    def forward(self, x):
        x = self.bn(self.spatial(self.temporal(x.unsqueeze(1))))
        x = torch.log(torch.clamp(self.pool(x * x), 1e-6))
        return self.fc(self.drop(x.flatten(1)))


class EEGNetLite(ShallowConvNet):
    pass


BACKBONES = {"shallow_convnet": ShallowConvNet, "eegnet_lite": EEGNetLite}


class MIDecoder(L.LightningModule):
    def __init__(
        self,
        backbone: str,
        n_channels: int,
        n_classes: int,
        n_times: int,
        channel_names,  # truth: hparam
        class_weights=None,  # truth: hparam
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        if class_weights is not None:
            class_weights = np.asarray(class_weights, dtype=np.float32)
        self.save_hyperparameters()
        self.net = BACKBONES[backbone](n_channels, n_classes, n_times)
        w = None if class_weights is None else torch.from_numpy(class_weights)
        self.register_buffer("class_w", w)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, weight=self.class_w, label_smoothing=self.hparams.label_smoothing)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class BaseEEGModule(L.LightningModule):
    def __init__(self, n_classes: int = 4, lr: float = 1e-3):
        super().__init__()
        self.save_hyperparameters()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class CrossSubjectDecoder(BaseEEGModule):
    """Domain-adversarial decoder: one domain per training subject."""

    def __init__(
        self,
        subject_ids,  # truth: hparam
        n_domains: int,
        adversarial_weight: float = 0.1,
        grl_lambda: float = 1.0,
        n_classes: int = 4,
        lr: float = 1e-3,
    ):
        super().__init__(n_classes=n_classes, lr=lr)
        self.encoder = ShallowConvNet(n_classes=16)
        self.label_head = nn.Linear(16, n_classes)
        self.domain_head = nn.Linear(16, n_domains)


class FilterBankNet(L.LightningModule):
    def __init__(
        self,
        sfreq,  # truth: hparam
        bands=((4.0, 8.0), (8.0, 13.0), (13.0, 30.0)),
        n_channels: int = 6,
        n_spatial: int = 4,
        temporal_kernel_s: float = 0.25,
        n_classes: int = 4,
    ):
        super().__init__()
        self.save_hyperparameters()
        k = max(3, int(round(temporal_kernel_s * float(sfreq))))
        self.branches = nn.ModuleList(nn.Conv1d(n_channels, n_spatial, k, padding=k // 2) for _ in bands)
        self.head = nn.Linear(n_spatial * len(bands), n_classes)

    def forward(self, x):
        feats = [torch.log(b(x).var(-1) + 1e-6) for b in self.branches]
        return self.head(torch.cat(feats, 1))


class MIDataModule(L.LightningDataModule):
    def __init__(self, root="/data/bnci2014_001", subjects=(1, 2, 3), window=(0.5, 2.5), batch_size=16,
                 num_workers=0):
        super().__init__()
        root = str(root)
        self.save_hyperparameters()
        self.subjects = list(subjects)


def trial_table(cfg, n_per_subject=12, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(s, rng.choice(["left_hand", "right_hand", "feet", "tongue"])) for s in cfg.data.subjects
            for _ in range(n_per_subject)]
    return pd.DataFrame(rows, columns=["subject", "label"])


def estimate_sfreq(times):
    return 1.0 / np.median(np.diff(times))


def build_eeg_modules(cfg=None):
    cfg = cfg or OmegaConf.create(EEG_CFG)
    trials = trial_table(cfg)
    classes = np.array(sorted(trials["label"].unique()))
    weights = compute_class_weight("balanced", classes=classes, y=trials["label"].to_numpy())
    n_times = int(np.diff(cfg.data.window)[0] * cfg.data.sfreq)
    decoder = MIDecoder(
        backbone=cfg.model.backbone,
        n_channels=len(cfg.data.channels),
        n_classes=len(classes),
        n_times=n_times,
        channel_names=cfg.data.channels,
        class_weights=weights.tolist(),
        lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay,
    )
    subjects = trials["subject"].unique()
    xsub = CrossSubjectDecoder(subject_ids=subjects, n_domains=len(subjects), n_classes=len(classes))
    times = np.arange(0, 2.0, 1.0 / cfg.data.sfreq)
    fbank = FilterBankNet(sfreq=estimate_sfreq(times), n_channels=len(cfg.data.channels))
    dm = MIDataModule(root=pathlib.Path(cfg.data.root), subjects=list(cfg.data.subjects),
                      window=tuple(cfg.data.window), batch_size=cfg.data.batch_size)
    return decoder, xsub, fbank, dm


# ----------------------------------------------------------------------------- text-to-SQL

class DecodeMode(enum.Enum):
    GREEDY = "greedy"
    BEAM = "beam"


class CharSQLTokenizer:
    def __init__(self, alphabet="abcdefghijklmnopqrstuvwxyz0123456789_*(),.='<> "):
        self.itos = ["<pad>", "<s>", "</s>", "<unk>"] + list(alphabet)
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    def __len__(self):
        return len(self.itos)

    def encode(self, text):
        return [1] + [self.stoi.get(c, 3) for c in text.lower()] + [2]


def make_executor(db_path, timeout=2.0):
    def run(sql):
        with sqlite3.connect(db_path, timeout=timeout) as conn:
            return conn.execute(sql).fetchall()
    return run


OPTIMIZERS = {
    "adamw": functools.partial(torch.optim.AdamW, betas=(0.9, 0.98), eps=1e-8),
    "adafactor_like": functools.partial(torch.optim.Adam, betas=(0.9, 0.999)),
}


class Seq2SeqCore(nn.Module):
    def __init__(self, vocab_size=64, d_model=32, n_layers=1, dropout=0.1):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=0)
        self.rnn = nn.GRU(d_model, d_model, n_layers, batch_first=True)
        self.out = nn.Linear(d_model, vocab_size)
        self.drop = nn.Dropout(dropout)

    def forward(self, ids):
        h, _ = self.rnn(self.drop(self.embed(ids)))
        return self.out(h)


class Text2SQLModule(L.LightningModule):
    def __init__(
        self,
        tokenizer,  # truth: hparam
        vocab_size: int,
        d_model: int = 32,
        n_layers: int = 1,
        dropout: float = 0.1,
        max_tgt_len: int = 128,
        pad_id: int = 0,
        decode_mode=DecodeMode.GREEDY,  # truth: hparam
        lr: float = 5e-4,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = tokenizer
        self.core = Seq2SeqCore(vocab_size, d_model, n_layers, dropout)

    def training_step(self, batch, batch_idx):
        logits = self.core(batch["input_ids"][:, :-1])
        return F.cross_entropy(logits.transpose(1, 2), batch["input_ids"][:, 1:], ignore_index=self.hparams.pad_id)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class ExecGuidedModule(L.LightningModule):
    """Adds an execution-match reward on validation; the executor runs SQL against the dev database."""

    def __init__(
        self,
        tokenizer,
        sql_executor,  # truth: hparam
        db_id: str = "concert_singer",
        exec_reward_weight: float = 0.5,
        optimizer_factory=None,  # truth: hparam
        keywords=None,
        scheduler: str = "linear",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["tokenizer"])
        self.tokenizer = tokenizer
        self.core = Seq2SeqCore(len(tokenizer))

    def validation_step(self, batch, batch_idx):
        ok = [self.hparams.sql_executor(sql) == self.hparams.sql_executor(gold)
              for sql, gold in zip(batch["pred_sql"], batch["gold_sql"])]
        self.log("val/exec_acc", sum(ok) / max(len(ok), 1))

    def configure_optimizers(self):
        factory = self.hparams.optimizer_factory or torch.optim.AdamW
        return factory(self.parameters(), lr=1e-4)


class ArgparseSQLModule(L.LightningModule):
    def __init__(self, args):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(args)
        self.core = Seq2SeqCore(args.vocab_size, args.d_model)


class CandidateReranker(L.LightningModule):
    """Scores beam candidates; its settings arrive as one plain dict from the YAML config."""

    def __init__(self, hparams: dict):
        super().__init__()
        self.save_hyperparameters(hparams)
        self.score = nn.Linear(self.hparams.hidden, 1)


class SchemaLinker(L.LightningModule):
    def __init__(self, encoder: nn.Module, n_column_types: int = 4, hidden: int = 32,
                 column_types=("text", "number", "time", "others"), value_regex: str = r"'[^']*'|\d+",
                 compute_dtype=torch.bfloat16):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        self.type_head = nn.Linear(hidden, n_column_types)


class SpiderDataModule(L.LightningDataModule):
    def __init__(self, db_dir="spider/database", split="dev", max_src_len=512, batch_size=8,
                 schema_serialization="peteshaw"):
        super().__init__()
        self.save_hyperparameters()


def sql_arg_parser():
    p = argparse.ArgumentParser()
    p.add_argument("--vocab-size", type=int, default=64)
    p.add_argument("--d-model", type=int, default=32)
    p.add_argument("--db-dir", type=pathlib.Path, default=pathlib.Path("spider/database"))
    p.add_argument("--lr", type=float, default=5e-4)
    return p


def build_sql_modules(mode="greedy", optimizer="adamw"):
    tok = CharSQLTokenizer()
    t2s = Text2SQLModule(tokenizer=tok, vocab_size=len(tok), decode_mode=DecodeMode(mode))
    guided = ExecGuidedModule(tokenizer=tok, sql_executor=make_executor(":memory:"),
                              optimizer_factory=OPTIMIZERS[optimizer], keywords={"select", "from", "where"})
    argmod = ArgparseSQLModule(sql_arg_parser().parse_args([]))
    linker = SchemaLinker(encoder=nn.GRU(32, 32, batch_first=True))
    rerank_cfg = OmegaConf.create({"hidden": 32, "n_candidates": 4, "features": ["logprob", "exec_ok"],
                                   "margin": 0.2, "db_id": "${oc.env:SPIDER_DB,concert_singer}"})
    reranker = CandidateReranker(OmegaConf.to_container(rerank_cfg, resolve=True))
    return t2s, guided, argmod, linker, reranker


# ----------------------------------------------------------------------------- radar nowcasting

class BalancedMSE(nn.Module):
    """Shi et al. (2017) B-MSE: weights grow with the observed rain rate."""

    def __init__(self, weights=(1.0, 2.0, 5.0, 10.0), edges=(2.0, 5.0, 10.0)):
        super().__init__()
        self.register_buffer("w", torch.tensor(weights))
        self.register_buffer("edges", torch.tensor(edges))

    def forward(self, pred, target):
        w = self.w[torch.bucketize(target, self.edges)]
        return (w * (pred - target) ** 2).mean()


LOSSES = {"mae": nn.L1Loss, "mse": nn.MSELoss, "balanced_mse": BalancedMSE}


class ConvForecaster(nn.Module):
    def __init__(self, n_in=4, n_out=3, hidden=8):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(n_in, hidden, 3, padding=1), nn.SiLU(), nn.Conv2d(hidden, n_out, 1))

    def forward(self, x):
        return self.net(x)


class NowcastModule(L.LightningModule):
    def __init__(self, cfg, loss_fn=None):  # truth: hparam[cfg]
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = ConvForecaster(cfg.data.n_in, cfg.data.n_out, cfg.model.hidden)
        self.loss_fn = loss_fn or nn.L1Loss()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.optim.lr)


class RadarUNetModule(L.LightningModule):
    def __init__(
        self,
        in_frames: int,
        lead_times,  # truth: hparam
        thresholds,
        loss_fn,  # truth: hparam
        zr=(200.0, 1.6),
        hidden: int = 8,
        scan_minutes: int = 5,
        lr: float = 2e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = ConvForecaster(in_frames, len(lead_times), hidden)
        self.loss_fn = loss_fn

    def validation_step(self, batch, batch_idx):
        pred = self.net(batch["x"])
        for thr in self.hparams.thresholds:
            hits = ((pred >= thr) & (batch["y"] >= thr)).sum()
            self.log(f"val/hits@{thr}", hits.float())


class StatsNormModule(L.LightningModule):
    def __init__(self, norm_stats, hidden: int = 8, in_frames: int = 4, log_transform: bool = True):  # truth: hparam[norm_stats]
        super().__init__()
        self.save_hyperparameters()
        self.net = ConvForecaster(in_frames, 1, hidden)


class PersistenceBaseline(L.LightningModule):
    def __init__(self, climatology, n_out: int = 3, pool: int = 4, blend: float = 0.1):
        super().__init__()
        self.save_hyperparameters("n_out", "pool", "blend")
        self.register_buffer("clim", torch.as_tensor(climatology, dtype=torch.float32))


class RadarDataModule(L.LightningDataModule):
    def __init__(self, root="/data/radar/composites", n_in=4, n_out=3, patch=32, batch_size=4,
                 start="2023-07-14 12:00", end="2023-07-15 12:00"):
        super().__init__()
        self.save_hyperparameters()


def compute_norm_stats(frames):
    log_rr = np.log1p(frames)
    return {"mean": log_rr.mean(), "std": log_rr.std(), "n_frames": int(frames.shape[0])}


def build_radar_modules(cfg=None):
    cfg = cfg or OmegaConf.create(RADAR_CFG)
    frames = np.random.default_rng(0).gamma(0.5, 2.0, size=(6, 8, 8)).astype(np.float32)
    loss = LOSSES[cfg.loss.name](**cfg.loss.kwargs)
    nowcast = NowcastModule(cfg, loss_fn=loss)
    unet = RadarUNetModule(
        in_frames=cfg.data.n_in,
        lead_times=range(1, cfg.data.n_out + 1),
        thresholds=list(cfg.eval.thresholds),
        loss_fn=loss,
        zr=(cfg.data.zr.a, cfg.data.zr.b),
        hidden=cfg.model.hidden,
        lr=cfg.optim.lr,
    )
    stats = StatsNormModule(compute_norm_stats(frames), hidden=cfg.model.hidden, in_frames=cfg.data.n_in)
    persistence = PersistenceBaseline(frames.mean(axis=0), n_out=cfg.data.n_out)
    dm = RadarDataModule(root=cfg.data.root, n_in=cfg.data.n_in, n_out=cfg.data.n_out, patch=cfg.data.patch)
    return nowcast, unet, stats, persistence, dm


FACTORIES = {
    "MIDecoder": lambda: build_eeg_modules()[0],
    "CrossSubjectDecoder": lambda: build_eeg_modules()[1],
    "FilterBankNet": lambda: build_eeg_modules()[2],
    "MIDataModule": lambda: build_eeg_modules()[3],
    "BaseEEGModule": lambda: BaseEEGModule(n_classes=4, lr=float(OmegaConf.create(EEG_CFG).optim.lr)),
    "DecodeMode": lambda: DecodeMode.BEAM,
    "Text2SQLModule": lambda: build_sql_modules("beam")[0],
    "ExecGuidedModule": lambda: build_sql_modules()[1],
    "ArgparseSQLModule": lambda: build_sql_modules()[2],
    "SchemaLinker": lambda: build_sql_modules()[3],
    "CandidateReranker": lambda: build_sql_modules()[4],
    "NowcastModule": lambda: build_radar_modules()[0],
    "RadarUNetModule": lambda: build_radar_modules()[1],
    "StatsNormModule": lambda: build_radar_modules()[2],
    "PersistenceBaseline": lambda: build_radar_modules()[3],
    "RadarDataModule": lambda: build_radar_modules()[4],
}
