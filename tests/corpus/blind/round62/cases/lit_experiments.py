"""Lightning modules for the three projects (SCADA fault detection, review aspect sentiment,
surgical phase recognition), built by name from the experiment YAML:

    module = build_module(EXPERIMENTS.phase_tcn)
    dm = build_datamodule(EXPERIMENTS.phase_tcn)
    pl.Trainer(max_epochs=cfg.trainer.max_epochs).fit(module, dm)
"""
import argparse
import datetime
import enum
import functools
import pathlib
from dataclasses import dataclass, field
from typing import List, Optional

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import DataLoader, TensorDataset

EXPERIMENTS = OmegaConf.create("""
defaults: {lr: 1.0e-3, batch_size: 32, seed: 0}
scada_ae:
  task: scada_ae
  data: {turbines: [1, 2, 3], window: 24, stride: 6}
  model: {hidden: 32, latent: 8, quantile: 0.995}
scada_fault:
  task: scada_fault
  data: {turbines: [1, 2], window: 12, stride: 4}
  model: {optimizer: adamw, label_smoothing: 0.05}
absa_lstm:
  task: absa_lstm
  model: {embed_dim: 16, hidden: 24, dropout: 0.1}
  data: {aspects: [battery, screen, price, delivery, support], max_len: 32}
absa_cfg:
  task: absa_cfg
  model: {embed_dim: 16, hidden: 24, dropout: 0.1}
  data: {aspects: [battery, screen, price], max_len: 32}
absa_cnn:
  task: absa_cnn
  model: {embed_dim: 16, kernel_sizes: [2, 3, 4], channels: 16}
absa_args:
  task: absa_args
  argv: [--hidden, '48', --epochs, '3']
phase_tcn:
  task: phase_tcn
  data: {fps: 1, feat_dim: 32, phases: [Preparation, CalotTriangleDissection, ClippingCutting,
         GallbladderDissection, GallbladderPackaging, CleaningCoagulation, GallbladderRetraction],
         train_videos: [video01, video02], val_videos: [video41]}
  model: {num_stages: 2, num_layers: 3, num_f_maps: 16, smooth_weight: 0.15, jitter: 3}
phase_transformer:
  task: phase_transformer
  model: {d_model: 32, nhead: 2, num_layers: 1}
phase_refiner:
  task: phase_refiner
  model: {hidden: 32, num_heads: 2, window: 64}
trainer: {max_epochs: 2, accelerator: cpu}
""")

SENSORS = ("wind_speed", "rotor_rpm", "gen_power", "pitch_angle", "gearbox_temp", "bearing_temp")
FAULTS = {0: "normal", 1: "pitch_fault", 2: "gearbox_overheat"}
OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}
MODULES = {}


def register(task):
    def deco(cls):
        MODULES[task] = cls
        return cls
    return deco


class Phase(enum.Enum):
    Preparation = 0
    CalotTriangleDissection = 1
    ClippingCutting = 2
    GallbladderDissection = 3
    GallbladderPackaging = 4
    CleaningCoagulation = 5
    GallbladderRetraction = 6



@dataclass
class PhaseTrainSchema:
    monitor: str = "val/jaccard"
    ignore_phase: Optional[Phase] = None
    clip_len: int = 256
    phases_to_upsample: List[str] = field(default_factory=lambda: ["ClippingCutting"])


# ------------------------------------------------------------------ shared helpers

def scada_frame(turbines, steps=288, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for tid in turbines:
        ws = np.clip(rng.weibull(2.0, steps) * 8.0, 0, 25)
        status = np.zeros(steps, dtype=int)
        status[rng.integers(0, steps - 10):][:8] = 1 + tid % 2
        rows.append(pd.DataFrame({"turbine_id": tid, "wind_speed": ws, "rotor_rpm": ws * 1.6,
                                  "gen_power": 2050 / (1 + np.exp(-(ws - 9))),
                                  "pitch_angle": np.maximum(ws - 12, 0),
                                  "gearbox_temp": 60 + 12 * (status == 2) + rng.normal(0, 1, steps),
                                  "bearing_temp": 42 + rng.normal(0, 1, steps), "status": status}))
    return pd.concat(rows, ignore_index=True)


class WhitespaceTokenizer:
    def __init__(self, lowercase=True, strip_punct=True):
        self.lowercase = lowercase
        self.strip_punct = strip_punct

    def __call__(self, text):
        text = text.lower() if self.lowercase else text
        if self.strip_punct:
            text = "".join(c if c.isalnum() or c.isspace() else " " for c in text)
        return text.split()


def temporal_jitter(feats, max_shift=2):
    shift = int(torch.randint(-max_shift, max_shift + 1, ()))
    return torch.roll(feats, shift, dims=-1)


def absa_args(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", type=pathlib.Path, default=pathlib.Path("data/reviews"))
    p.add_argument("--vocab-size", type=int, default=500)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--epochs", type=int, default=5)
    return p.parse_args(argv)


# ------------------------------------------------------------------ SCADA

class ScadaDataModule(pl.LightningDataModule):
    def __init__(self, turbines=(1, 2, 3), window=24, stride=6, batch_size=32, sensors=SENSORS,
                 val_fraction=0.2, num_workers=0):
        super().__init__()
        self.save_hyperparameters()
        self.train_set = self.val_set = None

    def setup(self, stage=None):
        df = scada_frame(self.hparams.turbines)
        x = torch.tensor(df[list(self.hparams.sensors)].to_numpy(), dtype=torch.float32)
        n_val = int(len(x) * self.hparams.val_fraction)
        self.train_set, self.val_set = TensorDataset(x[n_val:]), TensorDataset(x[:n_val])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)


@register("scada_ae")
class ScadaAutoencoderLit(pl.LightningModule):
    def __init__(self,
                 n_features,
                 window=24,
                 hidden=32,
                 latent=8,
                 lr=1e-3,
                 feature_mean=None,  # truth: hparam
                 feature_scale=None,
                 loss_fn=None,  # truth: hparam
                 anomaly_threshold=None,
                 anomaly_quantile=0.995,
                 sample_period=datetime.timedelta(minutes=10)):  # truth: hparam
        super().__init__()
        if anomaly_threshold is not None:
            anomaly_threshold = float(anomaly_threshold)
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Conv1d(n_features, hidden, 5, padding=2), nn.ReLU(),
                                     nn.Conv1d(hidden, latent, 3, padding=1))
        self.decoder = nn.Sequential(nn.Conv1d(latent, hidden, 3, padding=1), nn.ReLU(),
                                     nn.Conv1d(hidden, n_features, 5, padding=2))
        self.loss_fn = loss_fn or nn.MSELoss()

    def forward(self, x):
        return self.decoder(self.encoder(x))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = self.loss_fn(self(x), x)
        self.log("train/recon", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


@register("scada_fault")
class ScadaFaultLit(pl.LightningModule):
    def __init__(self,
                 n_features,
                 n_classes,
                 class_weights=None,  # truth: hparam
                 fault_names=tuple(FAULTS.values()),
                 lr=3e-3,
                 label_smoothing=0.0,
                 optimizer_cls=torch.optim.Adam,  # truth: hparam
                 rated_power_kw=2050.0,
                 encoder=None):
        super().__init__()
        if class_weights is not None:
            class_weights = np.asarray(class_weights, dtype=np.float32) / np.mean(class_weights)
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder or nn.Sequential(nn.Conv1d(n_features, 32, 5, padding=2), nn.ReLU(),
                                                nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.head = nn.Linear(32, n_classes)
        self.register_buffer("ce_weight", None if class_weights is None else torch.from_numpy(class_weights))

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.head(self.encoder(x))
        return F.cross_entropy(logits, y, weight=self.ce_weight, label_smoothing=self.hparams.label_smoothing)

    def configure_optimizers(self):
        return self.hparams.optimizer_cls(self.parameters(), lr=self.hparams.lr)


def _build_scada_ae(cfg):
    cols = list(SENSORS)
    df = scada_frame(cfg.data.turbines, seed=cfg.get("seed", 0))
    healthy = df[df.status == 0]
    scaler = StandardScaler().fit(healthy[cols].to_numpy())
    z = scaler.transform(df[cols].to_numpy())
    err = ((z - z.mean(0)) ** 2).mean(1)
    return ScadaAutoencoderLit(
        n_features=len(cols),
        window=cfg.data.window,
        hidden=cfg.model.hidden,
        latent=cfg.model.latent,
        lr=cfg.lr,
        feature_mean=scaler.mean_,
        feature_scale=torch.as_tensor(scaler.scale_, dtype=torch.float32),
        loss_fn=nn.SmoothL1Loss(beta=0.5),
        anomaly_threshold=np.quantile(err, cfg.model.quantile),
        anomaly_quantile=cfg.model.quantile,
    )


def _build_scada_fault(cfg):
    df = scada_frame(cfg.data.turbines, seed=cfg.get("seed", 0))
    y = df.status.to_numpy()
    classes = np.unique(y)
    weights = compute_class_weight("balanced", classes=classes, y=y)
    return ScadaFaultLit(
        n_features=len(SENSORS),
        n_classes=len(classes),
        class_weights=weights.tolist(),
        fault_names=tuple(FAULTS[int(c)] for c in classes),
        lr=cfg.lr,
        label_smoothing=cfg.model.label_smoothing,
        optimizer_cls=OPTIMIZERS[cfg.model.optimizer],
        rated_power_kw=float(df.gen_power.max()),
        encoder=nn.Sequential(nn.Conv1d(len(SENSORS), 32, 3, padding=1), nn.ReLU(),
                              nn.AdaptiveAvgPool1d(1), nn.Flatten()),
    )


# ------------------------------------------------------------------ review aspect sentiment

class ReviewDataModule(pl.LightningDataModule):
    def __init__(self, data_dir="data/reviews", aspects=("battery", "screen", "price"), max_len=32,
                 batch_size=32, tokenizer=None):
        super().__init__()
        self.save_hyperparameters(ignore=["tokenizer"])
        self.tokenizer = tokenizer or WhitespaceTokenizer()

    def setup(self, stage=None):
        n = 64
        ids = torch.randint(1, 100, (n, self.hparams.max_len))
        aspect = torch.randint(0, len(self.hparams.aspects), (n,))
        self.train_set = TensorDataset(ids, aspect, torch.randint(0, 3, (n,)))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size)


@register("absa_lstm")
class AspectSentimentLit(pl.LightningModule):
    def __init__(self,
                 vocab_size,
                 embed_dim=32,
                 hidden=32,
                 num_aspects=5,
                 num_polarities=3,
                 pad_idx=0,
                 lr=2e-3,
                 dropout=0.1,
                 pretrained_embeddings=None,  # truth: hparam
                 tokenizer=None,  # truth: hparam
                 aspect_names=(),
                 polarity_names=("negative", "neutral", "positive"),
                 class_prior=None,
                 freeze_embeddings=False):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_idx)
        if pretrained_embeddings is not None:
            self.embed.weight.data.copy_(torch.as_tensor(pretrained_embeddings))
            self.embed.weight.requires_grad_(not freeze_embeddings)
        self.aspect_embed = nn.Embedding(num_aspects, 2 * hidden)
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * hidden, num_polarities))

    def forward(self, ids, aspect):
        h, _ = self.lstm(self.embed(ids))
        q = self.aspect_embed(aspect)
        att = torch.softmax((h @ q.unsqueeze(-1)).squeeze(-1), -1)
        return self.out(torch.cat([(att.unsqueeze(-1) * h).sum(1), q], -1))

    def training_step(self, batch, batch_idx):
        ids, aspect, y = batch
        return F.cross_entropy(self(ids, aspect), y)

    def configure_optimizers(self):
        return torch.optim.Adam(filter(lambda p: p.requires_grad, self.parameters()), lr=self.hparams.lr)


@register("absa_cfg")
class AspectConfigLit(pl.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        m = self.hparams.model
        self.embed = nn.EmbeddingBag(self.hparams.vocab_size, m.embed_dim)
        self.aspect = nn.Embedding(len(self.hparams.data.aspects), m.embed_dim)
        self.head = nn.Sequential(nn.Linear(2 * m.embed_dim, m.hidden), nn.GELU(), nn.Dropout(m.dropout),
                                  nn.Linear(m.hidden, 3))

    def forward(self, ids, aspect):
        return self.head(torch.cat([self.embed(ids), self.aspect(aspect)], -1))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


@register("absa_cnn")
class AspectCNNLit(pl.LightningModule):
    def __init__(self, cfg, embeddings=None):
        super().__init__()
        # without the ignore, Lightning compares every init arg with `cfg` (`v == hp`) and the
        # ndarray comparison raises "truth value of an array ... is ambiguous"
        self.save_hyperparameters(cfg, ignore=["embeddings"])
        vocab, dim = (embeddings.shape if embeddings is not None else (cfg["vocab_size"], cfg["embed_dim"]))
        self.embed = nn.Embedding(vocab, dim)
        if embeddings is not None:
            self.embed.weight.data.copy_(torch.from_numpy(embeddings))
        self.convs = nn.ModuleList(nn.Conv1d(dim, cfg["channels"], k) for k in cfg["kernel_sizes"])
        self.head = nn.Linear(cfg["channels"] * len(cfg["kernel_sizes"]), 3)

    def forward(self, ids):
        x = self.embed(ids).transpose(1, 2)
        return self.head(torch.cat([c(x).amax(-1) for c in self.convs], -1))


@register("absa_args")
class AspectArgsLit(pl.LightningModule):
    def __init__(self, args):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(args)
        self.embed = nn.EmbeddingBag(args.vocab_size, args.hidden)
        self.head = nn.Linear(args.hidden, 3)

    def forward(self, ids):
        return self.head(self.embed(ids))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def _review_vocab(n=400, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.1, (n, dim)).astype(np.float32)


def _build_absa_lstm(cfg):
    emb = _review_vocab(dim=cfg.model.embed_dim)
    prior = torch.tensor([0.3, 0.2, 0.5])
    return AspectSentimentLit(
        vocab_size=emb.shape[0],
        embed_dim=cfg.model.embed_dim,
        hidden=cfg.model.hidden,
        num_aspects=len(cfg.data.aspects),
        lr=cfg.lr,
        dropout=cfg.model.dropout,
        pretrained_embeddings=emb,
        tokenizer=WhitespaceTokenizer(lowercase=True),
        aspect_names=tuple(cfg.data.aspects),
        class_prior=prior,
        freeze_embeddings=True,
    )


def _build_absa_cfg(cfg):
    node = OmegaConf.merge(cfg, {"vocab_size": 400, "lr": cfg.lr})
    return AspectConfigLit(node)


def _build_absa_cnn(cfg):
    emb = _review_vocab(dim=cfg.model.embed_dim)
    flat = OmegaConf.to_container(cfg.model, resolve=True)
    flat.update(vocab_size=int(emb.shape[0]), lr=float(cfg.lr))
    return AspectCNNLit(flat, embeddings=emb)


def _build_absa_args(cfg):
    return AspectArgsLit(absa_args(list(cfg.argv)))


# ------------------------------------------------------------------ surgical phase recognition

class Cholec80DataModule(pl.LightningDataModule):
    def __init__(self, train_videos=(), val_videos=(), feat_dim=32, fps=1, clip_len=256, batch_size=1,
                 phase_names=tuple(p.name for p in Phase)):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        t = self.hparams.clip_len
        self.train_set = TensorDataset(torch.randn(len(self.hparams.train_videos), self.hparams.feat_dim, t),
                                       torch.randint(0, len(self.hparams.phase_names), (len(self.hparams.train_videos), t)))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size)


@register("phase_tcn")
class PhaseTCNLit(pl.LightningModule):
    def __init__(self,
                 feat_dim,
                 num_classes,
                 phase_names,  # truth: hparam
                 num_stages=2,
                 num_layers=4,
                 num_f_maps=24,
                 dropout=0.2,
                 lr=5e-4,
                 weight_decay=1e-5,
                 smooth_weight=0.15,
                 class_weights=None,
                 ignore_phase=None,  # truth: hparam
                 augment=None,  # truth: hparam
                 sample_rate=1):
        super().__init__()
        self.save_hyperparameters()
        self.stages = nn.ModuleList()
        in_dim = feat_dim
        for _ in range(num_stages):
            layers = [nn.Conv1d(in_dim, num_f_maps, 1)]
            layers += [nn.Conv1d(num_f_maps, num_f_maps, 3, padding=2 ** i, dilation=2 ** i) for i in range(num_layers)]
            layers += [nn.Dropout(dropout), nn.Conv1d(num_f_maps, num_classes, 1)]
            self.stages.append(nn.Sequential(*layers))
            in_dim = num_classes
        self.augment = augment
        self.ignore_index = ignore_phase.value if ignore_phase is not None else -100

    def forward(self, x):
        outs = []
        for stage in self.stages:
            x = stage(x if not outs else F.softmax(x, 1))
            outs.append(x)
        return torch.stack(outs)

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.augment is not None:
            x = self.augment(x)
        loss = 0.0
        for out in self(x):
            loss = loss + F.cross_entropy(out, y, weight=self.hparams.class_weights, ignore_index=self.ignore_index)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


@register("phase_transformer")
class PhaseTransformerLit(pl.LightningModule):
    def __init__(self, feat_dim, num_classes, d_model=32, nhead=2, num_layers=1, lr=1e-4, backbone=None,
                 class_weights=None, phase_names=()):
        super().__init__()
        self.save_hyperparameters("feat_dim", "num_classes", "d_model", "nhead", "num_layers", "lr", "phase_names")
        self.backbone = backbone or nn.Identity()
        self.proj = nn.Linear(feat_dim, d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, 2 * d_model, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers)
        self.head = nn.Linear(d_model, num_classes)
        self.register_buffer("class_weights", torch.as_tensor(class_weights, dtype=torch.float32)
                             if class_weights is not None else torch.ones(num_classes))

    def forward(self, feats):
        return self.head(self.encoder(self.proj(self.backbone(feats))))


class PhaseBaseLit(pl.LightningModule):
    def __init__(self,
                 num_classes=len(Phase),
                 lr=1e-3,
                 train_cfg=None,  # truth: hparam
                 smoother=None,  # truth: hparam
                 video_fps=1.0):
        super().__init__()
        self.save_hyperparameters()
        self.monitor = (train_cfg or {}).get("monitor", "val/loss")

    def smooth(self, probs):
        fn = self.hparams.smoother
        return fn(probs) if fn is not None else probs

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


@register("phase_refiner")
class PhaseRefinerLit(PhaseBaseLit):
    def __init__(self, hidden=32, num_heads=2, window=64, **kwargs):
        super().__init__(**kwargs)
        self.attn = nn.MultiheadAttention(hidden, num_heads, batch_first=True)
        self.inp = nn.Linear(self.hparams.num_classes, hidden)
        self.out = nn.Linear(hidden, self.hparams.num_classes)

    def forward(self, probs):
        h = self.inp(self.smooth(probs))
        return self.out(self.attn(h, h, h, need_weights=False)[0])


def _phase_weights(num_classes, seed=0):
    counts = np.random.default_rng(seed).integers(20, 200, num_classes)
    freq = counts / counts.sum()
    return torch.tensor(np.median(freq) / freq, dtype=torch.float32)


def _build_phase_tcn(cfg):
    d, m = cfg.data, cfg.model
    return PhaseTCNLit(
        feat_dim=d.feat_dim,
        num_classes=len(d.phases),
        phase_names=d.phases,
        num_stages=m.num_stages,
        num_layers=m.num_layers,
        num_f_maps=m.num_f_maps,
        lr=cfg.lr,
        smooth_weight=m.smooth_weight,
        class_weights=_phase_weights(len(d.phases)),
        ignore_phase=Phase.Preparation,
        augment=functools.partial(temporal_jitter, max_shift=m.jitter),
        sample_rate=d.fps,
    )


def _build_phase_transformer(cfg):
    names = tuple(EXPERIMENTS.phase_tcn.data.phases)
    return PhaseTransformerLit(feat_dim=32, num_classes=len(names), d_model=cfg.model.d_model,
                               nhead=cfg.model.nhead, num_layers=cfg.model.num_layers, lr=cfg.lr,
                               backbone=nn.Sequential(nn.Linear(32, 32), nn.GELU()),
                               class_weights=_phase_weights(len(names)).numpy(), phase_names=names)


def _build_phase_refiner(cfg):
    schema = OmegaConf.structured(PhaseTrainSchema(ignore_phase=Phase.GallbladderRetraction))
    kernel = cfg.model.window // 16
    return PhaseRefinerLit(
        hidden=cfg.model.hidden,
        num_heads=cfg.model.num_heads,
        window=cfg.model.window,
        num_classes=len(Phase),
        lr=cfg.lr,
        train_cfg=OmegaConf.to_container(schema),
        smoother=lambda p: F.avg_pool1d(p.transpose(1, 2), kernel, 1, kernel // 2,
                                        count_include_pad=False).transpose(1, 2)[:, : p.shape[1]],
        video_fps=1.0,
    )


BUILDERS = {
    "scada_ae": _build_scada_ae, "scada_fault": _build_scada_fault,
    "absa_lstm": _build_absa_lstm, "absa_cfg": _build_absa_cfg, "absa_cnn": _build_absa_cnn,
    "absa_args": _build_absa_args,
    "phase_tcn": _build_phase_tcn, "phase_transformer": _build_phase_transformer,
    "phase_refiner": _build_phase_refiner,
}


def resolve(name):
    return OmegaConf.merge(EXPERIMENTS.defaults, EXPERIMENTS[name])


def build_module(name):
    cfg = resolve(name)
    module = BUILDERS[cfg.task](cfg)
    assert isinstance(module, MODULES[cfg.task])
    return module


def build_datamodule(name):
    cfg = resolve(name)
    if cfg.task.startswith("scada"):
        return ScadaDataModule(turbines=tuple(cfg.data.turbines), window=cfg.data.window,
                               stride=cfg.data.stride, batch_size=cfg.batch_size)
    if cfg.task.startswith("absa"):
        aspects = tuple(cfg.data.aspects) if "data" in cfg else ("battery", "screen", "price")
        return ReviewDataModule(aspects=aspects, batch_size=cfg.batch_size, tokenizer=WhitespaceTokenizer())
    d = EXPERIMENTS.phase_tcn.data
    return Cholec80DataModule(train_videos=list(d.train_videos), val_videos=list(d.val_videos),
                              feat_dim=d.feat_dim, fps=d.fps, phase_names=tuple(d.phases))


FACTORIES = {cls.__name__: functools.partial(build_module, task) for task, cls in MODULES.items()}
FACTORIES.update({
    "ScadaDataModule": functools.partial(build_datamodule, "scada_ae"),
    "ReviewDataModule": functools.partial(build_datamodule, "absa_lstm"),
    "Cholec80DataModule": functools.partial(build_datamodule, "phase_tcn"),
    "Phase": lambda: Phase.ClippingCutting,
})
NOT_BUILT = {"PhaseBaseLit": "abstract base of the phase refiners; only built through a subclass"}
