"""Lightning side of three projects that share one training harness: a voice assistant
(speech-to-intent and a wake-word gate), coral reef segmentation and hospital readmission.

`build(name)` looks up a builder in MODULES, prepares whatever the module needs (label
encoders, normalisation statistics, class weights) from the shared OmegaConf CONFIG, and
constructs the LightningModule.  Datamodules are built the same way from DATAMODULES.
"""
import functools
import pathlib
import re
from enum import Enum

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.preprocessing import LabelEncoder

CONFIG = OmegaConf.create("""
slu: {manifest: data/fsc/train.csv, n_mels: 40, hidden: 64, lr: 1e-3, label_smoothing: 0.1,
      device_profile: far_field, batch_size: 32, sample_rate: 16000}
wake: {keywords: [hey_nova, ok_nova], window_ms: 800, target_far_per_hour: 0.5,
       stopwords: [the, a, please, um]}
reef: {root: /data/reef/tiles, tile_size: 256, sites: [heron_n, heron_s, lizard_e, moorea_lagoon],
       val_site: moorea_lagoon, backbone: resnet18, lr: 3e-4, max_epochs: 60,
       classes: [background, hard_coral, soft_coral, bleached_coral, macroalgae, sand, rubble]}
readmit: {db_uri: "sqlite:///warehouse.db", hidden: [64, 32], dropout: 0.2, lr: 1e-3, weight_decay: 1e-4,
          optimizer: adamw, scheduler: onecycle, index_end: "2019-06-30", batch_size: 256}
""")


MODULES, DATAMODULES = {}, {}
OPTIMIZERS = {"adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def register(table, name):
    def deco(fn):
        table[name] = fn
        return fn
    return deco


def build(name, cfg=CONFIG):
    return MODULES[name](cfg)


def build_datamodule(name, cfg=CONFIG):
    return DATAMODULES[name](cfg)


# ------------------------------------------------------------------ voice assistant

class LogMelFrontend(nn.Module):
    def __init__(self, n_mels=40, sample_rate=16000):
        super().__init__()
        self.n_mels, self.sample_rate = n_mels, sample_rate
        self.proj = nn.Conv1d(1, n_mels, kernel_size=400, stride=160)

    def forward(self, wav):
        return torch.log1p(self.proj(wav.unsqueeze(1)).abs()).transpose(1, 2)


def _utterances(n=64, seed=0):
    rng = np.random.default_rng(seed)
    actions, objects = ["activate", "decrease", "bring"], ["lights", "music", "heat"]
    return pd.DataFrame({"intent": [f"{actions[i % 3]}|{objects[rng.integers(3)]}" for i in range(n)],
                         "transcript": ["Um, please turn the lights on" for _ in range(n)]})


class SpeechIntentModule(L.LightningModule):
    def __init__(
        self,
        n_mels: int,
        hidden: int,
        intent_names: list,
        num_intents: int,
        frontend: nn.Module,  # truth: hparam
        cmvn_mean: torch.Tensor,
        lr: float = 1e-3,
        label_smoothing: float = 0.0,
        device_profile: str = "near_field",
        text_normalizer=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.frontend = frontend
        self.register_buffer("cmvn_mean", cmvn_mean)
        self.encoder = nn.GRU(n_mels, hidden, batch_first=True)
        self.head = nn.Linear(hidden, num_intents)

    def forward(self, wav):
        feats = self.frontend(wav) - self.cmvn_mean
        out, _ = self.encoder(feats)
        return self.head(out.mean(1))

    def training_step(self, batch, _):
        wav, y = batch
        loss = F.cross_entropy(self(wav), y, label_smoothing=self.hparams.label_smoothing)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


@register(MODULES, "slu_intent")
def build_slu_intent(cfg):
    df = _utterances()
    enc = LabelEncoder().fit(df["intent"])
    frontend = LogMelFrontend(cfg.slu.n_mels, cfg.slu.sample_rate)
    mean = np.random.default_rng(1).normal(size=cfg.slu.n_mels).astype(np.float32)
    return SpeechIntentModule(
        cfg.slu.n_mels, cfg.slu.hidden, enc.classes_.tolist(), len(enc.classes_), frontend,
        torch.from_numpy(mean), lr=cfg.slu.lr, label_smoothing=cfg.slu.label_smoothing,
        device_profile=cfg.slu.device_profile,
        text_normalizer=lambda s: re.sub(r"[^a-z ]", "", s.lower()),
    )


class WakeWordGateModule(L.LightningModule):
    """Keyword spotter run before the intent model; the threshold is set for a target false-accept rate."""

    def __init__(
        self,
        backbone: nn.Module,
        keywords: tuple,
        window_ms: int,
        threshold: float,  # truth: hparam
        stopwords=frozenset(),  # truth: hparam
        sample_rate: int = 16000,
        lr: float = 5e-4,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.classifier = nn.Linear(backbone.n_mels, len(keywords) + 1)

    def forward(self, wav):
        return self.classifier(self.backbone(wav).mean(1))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


@register(MODULES, "wake_gate")
def build_wake_gate(cfg):
    negatives = np.random.default_rng(2).beta(2, 8, size=2000)  # scores on hours of TV audio
    far_quantile = 100 - cfg.wake.target_far_per_hour
    return WakeWordGateModule(
        LogMelFrontend(cfg.slu.n_mels), tuple(sorted(cfg.wake.keywords)), cfg.wake.window_ms,
        threshold=np.percentile(negatives, far_quantile), stopwords=frozenset(cfg.wake.stopwords),
        sample_rate=cfg.slu.sample_rate,
    )


class IntentAdapterModule(L.LightningModule):
    """Per-device adapter fine-tuned on top of a frozen intent model; hparams come from the CLI."""

    def __init__(
        self,
        hparams: dict,  # truth: hparam
        base_ckpt: str = "",
    ):
        super().__init__()
        self.save_hyperparameters(hparams)
        self.adapter = nn.Sequential(nn.Linear(hparams["dim"], hparams["bottleneck"]), nn.ReLU(),
                                     nn.Linear(hparams["bottleneck"], hparams["dim"]))
        self.base_ckpt = base_ckpt

    def forward(self, h):
        return h + self.adapter(h)


@register(MODULES, "intent_adapter")
def build_intent_adapter(cfg):
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--dim", type=int, default=cfg.slu.hidden)
    p.add_argument("--bottleneck", type=int, default=16)
    p.add_argument("--device-id", default="kitchen-speaker-01")
    p.add_argument("--data-root", type=pathlib.Path, default=pathlib.Path("data/devices"))
    args = p.parse_args([])
    return IntentAdapterModule(hparams=vars(args), base_ckpt="runs/slu/best.ckpt")


# ------------------------------------------------------------------ coral reef

class Backbone(str, Enum):
    RESNET18 = "resnet18"
    MOBILENET = "mobilenet_v3"


class ReefSegModule(L.LightningModule):
    def __init__(
        self,
        cfg,  # truth: hparam
        palette=None,
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        n = len(cfg.classes)
        self.net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, n, 1))
        self.palette = torch.as_tensor(palette if palette is not None else np.zeros((n, 3), np.uint8))

    def forward(self, x):
        return self.net(x)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


@register(MODULES, "reef_seg")
def build_reef_seg(cfg):
    # a list, not the uint8 array: save_hyperparameters(cfg) compares every init arg with `cfg`
    # via `==`, and an ndarray there raises a broadcast ValueError
    palette = np.random.default_rng(3).integers(0, 256, (len(cfg.reef.classes), 3)).astype(np.uint8)
    return ReefSegModule(cfg.reef, palette=palette.tolist())


class CoralCoverModule(L.LightningModule):
    def __init__(
        self,
        encoder_name: str,  # truth: hparam
        num_classes: int,
        class_weights=None,  # truth: hparam
        norm_mean=(0.485, 0.456, 0.406),  # truth: hparam
        norm_std=(0.229, 0.224, 0.225),
        ignore_index: int = 255,
        tile_size: int = 256,
        lr: float = 3e-4,
        max_epochs: int = 50,
    ):
        super().__init__()
        num_classes = int(num_classes)
        if class_weights is not None:
            class_weights = np.asarray(class_weights, dtype=np.float32)
        self.save_hyperparameters()
        self.register_buffer("weight", None if class_weights is None else torch.from_numpy(class_weights))
        self.net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, num_classes, 1))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, _):
        x, y = batch
        return F.cross_entropy(self(x), y, weight=self.weight, ignore_index=self.hparams.ignore_index)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.max_epochs)]


@register(MODULES, "coral_cover")
def build_coral_cover(cfg):
    rng = np.random.default_rng(4)
    tiles = rng.random((16, 3, 32, 32), dtype=np.float32)
    masks = rng.integers(0, len(cfg.reef.classes), (16, 32, 32))
    counts = np.bincount(masks.ravel(), minlength=len(cfg.reef.classes))
    freq = counts / counts.sum()
    return CoralCoverModule(
        Backbone(cfg.reef.backbone), masks.max() + 1,
        class_weights=(1.0 / np.log(1.02 + freq)).tolist(),
        norm_mean=tuple(tiles.mean(axis=(0, 2, 3))), norm_std=tuple(tiles.std(axis=(0, 2, 3)).tolist()),
        ignore_index=np.iinfo(np.uint8).max, tile_size=cfg.reef.tile_size,
        lr=cfg.reef.lr, max_epochs=cfg.reef.max_epochs,
    )


# ------------------------------------------------------------------ readmission

def _encounter_features(n=400, seed=5):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"age": rng.integers(18, 95, n), "los_days": rng.gamma(2, 2.5, n),
                      "n_prior_admits": rng.poisson(1.2, n), "n_meds": rng.poisson(9, n),
                      "sex_F": rng.integers(0, 2, n), "admit_emergency": rng.integers(0, 2, n)})
    y = pd.Series((rng.random(n) < 0.18).astype(int), name="readmit_30d")
    return X, y


class ReadmissionModule(L.LightningModule):
    def __init__(
        self,
        feature_names,  # truth: hparam
        n_features: int,
        pos_weight: float,  # truth: hparam
        hidden=(64, 32),  # truth: hparam
        dropout: float = 0.2,
        optimizer_cls=torch.optim.AdamW,  # truth: hparam
        scheduler: str = "onecycle",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        calibrate: bool = True,
        threshold: float = 0.5,
    ):
        super().__init__()
        self.save_hyperparameters()
        layers, d = [], n_features
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout)]
            d = h
        self.mlp = nn.Sequential(*layers, nn.Linear(d, 1))
        self.register_buffer("pos_weight", torch.tensor([float(pos_weight)]))

    def forward(self, x):
        return self.mlp(x).squeeze(-1)

    def training_step(self, batch, _):
        x, y = batch
        return F.binary_cross_entropy_with_logits(self(x), y.float(), pos_weight=self.pos_weight)

    def configure_optimizers(self):
        return self.hparams.optimizer_cls(self.parameters(), lr=self.hparams.lr,
                                          weight_decay=self.hparams.weight_decay)


@register(MODULES, "readmit")
def build_readmit(cfg):
    X, y = _encounter_features()
    return ReadmissionModule(
        X.columns, X.shape[1], (y == 0).sum() / (y == 1).sum(),
        hidden=cfg.readmit.hidden, dropout=cfg.readmit.dropout,
        optimizer_cls=OPTIMIZERS[cfg.readmit.optimizer], scheduler=cfg.readmit.scheduler,
        lr=cfg.readmit.lr, weight_decay=cfg.readmit.weight_decay, threshold=float(y.mean()),
    )


class ReadmissionTransferModule(ReadmissionModule):
    """Fine-tunes the system-wide model on one hospital's encounters."""

    def __init__(
        self,
        pretrained_path,  # truth: hparam
        site_code: str = "",
        freeze_layers: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.pretrained_path = str(pretrained_path)
        self.site_code = site_code


@register(MODULES, "readmit_transfer")
def build_readmit_transfer(cfg):
    X, y = _encounter_features(seed=6)
    return ReadmissionTransferModule(
        pretrained_path=pathlib.Path("runs/readmit") / "system_wide.ckpt", site_code="MGH-04",
        feature_names=X.columns, n_features=X.shape[1], pos_weight=(y == 0).sum() / (y == 1).sum(),
        hidden=cfg.readmit.hidden, lr=cfg.readmit.lr / 10,
    )


class RiskDistillModule(L.LightningModule):
    """Small student distilled from the transfer model plus the warehouse's logistic score."""

    def __init__(self, teacher: nn.Module, n_features: int, hidden: int = 16, temperature: float = 2.0,
                 class_prior=None, lr: float = 1e-3):
        super().__init__()
        self.save_hyperparameters("n_features", "hidden", "temperature", "lr")
        self.teacher = teacher.eval()
        self.student = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.register_buffer("prior_logit", torch.tensor(float(np.log(class_prior / (1 - class_prior)))))

    def forward(self, x):
        return self.student(x).squeeze(-1) + self.prior_logit


@register(MODULES, "risk_distill")
def build_risk_distill(cfg):
    X, y = _encounter_features(seed=7)
    teacher = nn.Sequential(nn.Linear(X.shape[1], 8), nn.ReLU(), nn.Linear(8, 1))
    return RiskDistillModule(teacher=teacher, n_features=X.shape[1], class_prior=y.mean(),
                             temperature=float(np.float32(cfg.readmit.dropout * 10)))


# ------------------------------------------------------------------ datamodules

class SLUDataModule(L.LightningDataModule):
    def __init__(self, manifest: str, batch_size: int = 32, sample_rate: int = 16000, num_workers: int = 4):
        super().__init__()
        self.save_hyperparameters()


class ReefDataModule(L.LightningDataModule):
    def __init__(self, root: str, sites: list, val_site: str, tile_size: int = 256, batch_size: int = 8):
        super().__init__()
        self.save_hyperparameters()


class ReadmissionDataModule(L.LightningDataModule):
    def __init__(self, db_uri: str, cohort: dict, batch_size: int = 256):
        super().__init__()
        self.save_hyperparameters()


@register(DATAMODULES, "slu")
def build_slu_data(cfg):
    return SLUDataModule(cfg.slu.manifest, cfg.slu.batch_size, cfg.slu.sample_rate)


@register(DATAMODULES, "reef")
def build_reef_data(cfg):
    return ReefDataModule(str(pathlib.Path(cfg.reef.root)), list(cfg.reef.sites), cfg.reef.val_site,
                          tile_size=cfg.reef.tile_size)


@register(DATAMODULES, "readmit")
def build_readmit_data(cfg):
    cohort = {"index_end": cfg.readmit.index_end, "lookback_days": 365}
    return ReadmissionDataModule(cfg.readmit.db_uri, cohort, batch_size=cfg.readmit.batch_size)


FACTORIES = {
    "LogMelFrontend": LogMelFrontend,
    "SpeechIntentModule": functools.partial(build, "slu_intent"),
    "WakeWordGateModule": functools.partial(build, "wake_gate"),
    "IntentAdapterModule": functools.partial(build, "intent_adapter"),
    "Backbone": lambda: Backbone.RESNET18,
    "ReefSegModule": functools.partial(build, "reef_seg"),
    "CoralCoverModule": functools.partial(build, "coral_cover"),
    "ReadmissionModule": functools.partial(build, "readmit"),
    "ReadmissionTransferModule": functools.partial(build, "readmit_transfer"),
    "RiskDistillModule": functools.partial(build, "risk_distill"),
    "SLUDataModule": functools.partial(build_datamodule, "slu"),
    "ReefDataModule": functools.partial(build_datamodule, "reef"),
    "ReadmissionDataModule": functools.partial(build_datamodule, "readmit"),
}
