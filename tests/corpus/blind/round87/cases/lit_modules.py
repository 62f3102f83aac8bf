"""LightningModules and DataModules behind `train.py --model NAME`.

Three projects share this file: urban sound (US8K tagging and anomaly
detection), 30-day readmission (EHR tables and visit sequences) and Sentinel-1
ship detection. train.py never calls the classes directly: it goes through
MODEL_REGISTRY / the build_* factories below, which turn configs and data into
constructor arguments.
"""
import argparse
import collections
import dataclasses
import enum
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import DataLoader, TensorDataset

US8K_CLASSES = [
    "air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling",
    "engine_idling", "gun_shot", "jackhammer", "siren", "street_music",
]
READMIT_FEATURES = ["age", "los_days", "n_prior_adm", "charlson", "n_meds"]


class Polarization(enum.Enum):
    VV = "VV"
    VH = "VH"


@dataclasses.dataclass
class SoundConfig:
    n_mels: int = 64
    width: int = 16
    lr: float = 1e-3
    label_smoothing: float = 0.1
    data_root: str = "data/UrbanSound8K"
    pretrained: str = "weights/cnn10_audioset.pt"
    val_fold: int = 10
    batch_size: int = 32


SHIP_YAML = """
data: {sensor: sentinel1, in_channels: 2, tile_size: 64, bands: [VV, VH], root: tiles/s1}
model: {width: 16, anchor_sizes: [8, 16, 32]}
train: {lr: 2.0e-3, focal_alpha: 0.25, focal_gamma: 2.0, batch_size: 16}
eval: {score_threshold: 0.3}
"""


# ----------------------------------------------------------------- urban sound

class LitSoundClassifier(pl.LightningModule):
    def __init__(
        self,
        n_mels: int = 64,
        n_classes: int = 10,
        width: int = 16,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        class_weights=None,  # truth: hparam
        label_smoothing: float = 0.0,
        class_names=None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, width * 2, 3, padding=1), nn.BatchNorm2d(width * 2), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(width * 2, n_classes)
        weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)

    def forward(self, x):
        return self.classifier(self.encoder(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.criterion(self(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/acc", (self(x).argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class LitUrbanTagger(LitSoundClassifier):
    """Multi-label tagging (SONYC-UST style), fine-tuned from an AudioSet encoder."""

    def __init__(
        self,
        tag_threshold: float = 0.5,
        pretrained_ckpt=None,  # truth: hparam
        freeze_epochs: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.criterion = nn.BCEWithLogitsLoss()

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.criterion(self(x), F.one_hot(y, self.hparams.n_classes).float())
        self.log("train/bce", loss)
        return loss


class LitNoiseAutoencoder(pl.LightningModule):
    """Convolutional AE on log-mels; high reconstruction error flags unusual street noise."""

    def __init__(
        self,
        cfg: DictConfig,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        w = cfg.model.width
        self.encoder = nn.Sequential(nn.Conv2d(1, w, 3, stride=2, padding=1), nn.ReLU(),
                                     nn.Conv2d(w, cfg.model.latent, 3, stride=2, padding=1))
        self.decoder = nn.Sequential(nn.ConvTranspose2d(cfg.model.latent, w, 4, stride=2, padding=1), nn.ReLU(),
                                     nn.ConvTranspose2d(w, 1, 4, stride=2, padding=1))

    def forward(self, x):
        return self.decoder(self.encoder(x))

    def training_step(self, batch, batch_idx):
        x = batch[0]
        loss = F.mse_loss(self(x), x)
        self.log("train/mse", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.optim.lr)


class LitSoundEventDetector(pl.LightningModule):
    """CRNN for frame-level sound event detection (onsets/offsets)."""

    def __init__(
        self,
        args: argparse.Namespace,
    ):
        super().__init__()
        self.save_hyperparameters(args)
        self.conv = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d((4, 1)))
        self.rnn = nn.GRU(16 * (args.n_mels // 4), args.rnn_hidden, batch_first=True, bidirectional=True)
        self.frame_head = nn.Linear(2 * args.rnn_hidden, len(args.classes))

    def forward(self, x):
        f = self.conv(x)
        b, c, m, t = f.shape
        out, _ = self.rnn(f.permute(0, 3, 1, 2).reshape(b, t, c * m))
        return self.frame_head(out)


# ----------------------------------------------------------------- readmission

class LitReadmissionMLP(pl.LightningModule):
    def __init__(
        self,
        n_features: int,
        hidden=(64, 32),
        dropout: float = 0.2,
        lr: float = 1e-3,
        pos_weight=None,  # truth: hparam
        feature_names=None,
        train_means=None,  # truth: hparam
        loss_fn=None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["loss_fn"])
        layers, d = [], n_features
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout)]
            d = h
        self.net = nn.Sequential(*layers, nn.Linear(d, 1))
        self.loss_fn = loss_fn if loss_fn is not None else nn.BCEWithLogitsLoss()

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train/bce", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class LitCalibratedReadmission(LitReadmissionMLP):
    """Same MLP with a learned temperature, refit on the most recent cohort."""

    def __init__(
        self,
        temperature: float = 1.0,
        n_bins: int = 15,
        cohort_cutoff=None,  # truth: hparam
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.log_temperature = nn.Parameter(torch.tensor(float(np.log(temperature))))

    def forward(self, x):
        return super().forward(x) / self.log_temperature.exp()


class LitVisitSequenceModel(pl.LightningModule):
    """GRU over a patient's visit history (bag of ICD-10 codes per visit)."""

    def __init__(
        self,
        code_vocab: dict,
        embed_dim: int = 32,
        hidden: int = 64,
        max_visits: int = 20,
        code_counts=None,
        optimizer_cls=torch.optim.AdamW,  # truth: hparam
        scheduler_fn=None,  # truth: hparam
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.EmbeddingBag(len(code_vocab) + 1, embed_dim, mode="sum", padding_idx=0)
        self.gru = nn.GRU(embed_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, codes, offsets, n_visits):
        """codes/offsets: EmbeddingBag input for the flattened visits of a batch, n_visits per patient."""
        v = self.embed(codes, offsets).split(n_visits)
        h, _ = self.gru(nn.utils.rnn.pad_sequence(v, batch_first=True))
        last = torch.as_tensor(n_visits) - 1
        return self.head(h[torch.arange(len(n_visits)), last]).squeeze(-1)

    def configure_optimizers(self):
        opt = self.hparams.optimizer_cls(self.parameters(), lr=self.hparams.lr)
        if self.hparams.scheduler_fn is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": self.hparams.scheduler_fn(opt)}


# ----------------------------------------------------------------- ships

class FocalLoss(nn.Module):
    def __init__(self, alpha=0.25, gamma=2.0):
        super().__init__()
        self.alpha = alpha
        self.gamma = gamma

    def forward(self, logits, target):
        p = torch.sigmoid(logits)
        ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p_t = p * target + (1 - p) * (1 - target)
        a_t = self.alpha * target + (1 - self.alpha) * (1 - target)
        return (a_t * (1 - p_t) ** self.gamma * ce).mean()


def make_backbone(in_channels, width):
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width * 2, 3, stride=2, padding=1), nn.BatchNorm2d(width * 2), nn.ReLU(),
    )


class LitShipDetector(pl.LightningModule):
    def __init__(
        self,
        backbone: nn.Module,
        head_width: int = 32,
        lr: float = 2e-3,
        anchor_sizes=(8, 16, 32),  # truth: hparam
        polarization=Polarization.VV,  # truth: hparam
        score_threshold: float = 0.3,
        focal_loss=None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone", "focal_loss"])
        self.backbone = backbone
        self.heat = nn.Conv2d(head_width, 1, 1)
        self.size = nn.Conv2d(head_width, 2, 1)
        self.focal_loss = focal_loss if focal_loss is not None else FocalLoss()

    def forward(self, x):
        f = self.backbone(x)
        return self.heat(f), self.size(f)


class LitShipSegmenter(pl.LightningModule):
    """Per-pixel hull mask on detector tiles; the land mask is a fixed buffer, not a hyperparameter."""

    def __init__(
        self,
        lr: float = 1e-3,  # truth: hparam
        tile_size: int = 64,
        pos_weight: float = 5.0,
        land_mask=None,
        in_channels: int = 2,
        base_width: int = 16,
    ):
        super().__init__()
        self.save_hyperparameters("lr", "tile_size", "pos_weight", "in_channels", "base_width")
        mask = np.zeros((tile_size, tile_size), dtype=bool) if land_mask is None else land_mask
        self.register_buffer("land_mask", torch.as_tensor(mask, dtype=torch.bool))
        self.net = nn.Sequential(nn.Conv2d(in_channels, base_width, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(base_width, 1, 1))

    def forward(self, x):
        return self.net(x).masked_fill(self.land_mask, -20.0)

    def training_step(self, batch, batch_idx):
        x, m = batch
        pw = torch.tensor(self.hparams.pos_weight)
        return F.binary_cross_entropy_with_logits(self(x), m, pos_weight=pw)


class LitTileClassifier(pl.LightningModule):
    """Ship / no-ship tile filter that skips empty ocean before detection."""

    def __init__(
        self,
        args: argparse.Namespace,  # truth: hparam
        num_classes: int = 2,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = make_backbone(args.in_channels, args.width)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(args.width * 2, num_classes))

    def forward(self, x):
        return self.head(self.backbone(x))


# ----------------------------------------------------------------- data modules

class UrbanSoundDataModule(pl.LightningDataModule):
    def __init__(
        self,
        data_dir: str = "data/UrbanSound8K",
        val_fold: int = 10,
        batch_size: int = 32,
        num_workers: int = 0,
        n_mels: int = 64,
        n_frames: int = 128,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.train_set = None
        self.val_set = None

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(40, 1, self.hparams.n_mels, self.hparams.n_frames, generator=g)
        y = torch.arange(40) % len(US8K_CLASSES)
        fold = torch.arange(40) // 4 + 1
        val = fold == self.hparams.val_fold
        self.train_set = TensorDataset(x[~val], y[~val])
        self.val_set = TensorDataset(x[val], y[val])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True,
                          num_workers=self.hparams.num_workers)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.hparams.batch_size)


class ReadmissionDataModule(pl.LightningDataModule):
    def __init__(
        self,
        encounters: pd.DataFrame,
        feature_cols=None,
        label_col: str = "readmit_30d",
        test_start: str = "2022-01-01",
        batch_size: int = 256,
        scaler=None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["encounters", "scaler"])
        self.encounters = encounters
        self.feature_cols = list(feature_cols or READMIT_FEATURES)
        self.scaler = scaler if scaler is not None else StandardScaler()

    def setup(self, stage=None):
        df = self.encounters
        train = df[df.discharge_time < pd.Timestamp(self.hparams.test_start)]
        self.scaler.fit(train[self.feature_cols])

    def train_dataloader(self):
        df = self.encounters
        train = df[df.discharge_time < pd.Timestamp(self.hparams.test_start)]
        x = torch.tensor(self.scaler.transform(train[self.feature_cols]), dtype=torch.float32)
        y = torch.tensor(train[self.hparams.label_col].to_numpy(), dtype=torch.float32)
        return DataLoader(TensorDataset(x, y), batch_size=self.hparams.batch_size, shuffle=True)


class ShipTileDataModule(pl.LightningDataModule):
    def __init__(
        self,
        cfg: dict,
    ):
        super().__init__()
        self.save_hyperparameters(cfg)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        n, c, s = 32, self.hparams.in_channels, self.hparams.tile_size
        return DataLoader(TensorDataset(torch.randn(n, c, s, s, generator=g), torch.zeros(n, 1, s, s)),
                          batch_size=8)


# ----------------------------------------------------------------- factories

def make_readmission_frame(n=300, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "patient_id": rng.integers(0, n // 3, n),
        "discharge_time": pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 540, n), unit="D"),
        "age": rng.integers(18, 95, n),
        "los_days": rng.gamma(2.0, 2.5, n).round(1),
        "n_prior_adm": rng.poisson(1.0, n),
        "charlson": rng.integers(0, 10, n),
        "n_meds": rng.poisson(8, n),
    })
    df["readmit_30d"] = (rng.random(n) < 0.12 + 0.03 * df.n_prior_adm).astype(int)
    return df


def make_visits(n_patients=40, seed=0):
    rng = np.random.default_rng(seed)
    codes = ["E11.9", "I10", "I50.9", "N18.3", "J44.1", "Z79.4", "E78.5", "F32.9"]
    rows = []
    for pid in range(n_patients):
        for visit_no in range(1, rng.integers(2, 12)):
            for code in rng.choice(codes, size=rng.integers(1, 4), replace=False):
                rows.append({"patient_id": pid, "visit_no": visit_no, "icd10": str(code)})
    return pd.DataFrame(rows)


def sound_module_kwargs(cfg: SoundConfig, train_labels):
    weights = compute_class_weight("balanced", classes=np.arange(len(US8K_CLASSES)), y=train_labels)
    return dict(n_mels=cfg.n_mels, n_classes=len(US8K_CLASSES), width=cfg.width, lr=cfg.lr,
                class_weights=weights, label_smoothing=cfg.label_smoothing, class_names=list(US8K_CLASSES))


def build_sound_classifier(cfg: SoundConfig, train_labels):
    return LitSoundClassifier(**sound_module_kwargs(cfg, train_labels))


def build_urban_tagger(cfg: SoundConfig, train_labels):
    return LitUrbanTagger(tag_threshold=0.4, pretrained_ckpt=Path(cfg.pretrained), freeze_epochs=2,
                          **sound_module_kwargs(cfg, train_labels))


def build_noise_autoencoder(overrides=()):
    base = OmegaConf.create({"model": {"width": 16, "latent": 8},
                             "optim": {"lr": 1e-3, "weight_decay": 0.0},
                             "data": {"n_mels": 64, "sites": ["brooklyn_07", "queens_12"]}})
    return LitNoiseAutoencoder(OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides))))


def build_event_detector(argv=()):
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default="data/us8k_strong")
    p.add_argument("--n-mels", type=int, default=64)
    p.add_argument("--hop-ms", type=float, default=10.0)
    p.add_argument("--rnn-hidden", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--median-filter", type=int, default=7)
    p.add_argument("--classes", nargs="+", default=["car_horn", "dog_bark", "siren", "gun_shot"])
    return LitSoundEventDetector(p.parse_args(list(argv)))


def readmission_kwargs(frame):
    y = frame["readmit_30d"]
    X = frame[READMIT_FEATURES]
    pos_weight = (y == 0).sum() / (y == 1).sum()
    return dict(
        n_features=len(READMIT_FEATURES),
        hidden=(32, 16),
        pos_weight=pos_weight,
        feature_names=list(X.columns),
        train_means=X.mean(),
        loss_fn=nn.BCEWithLogitsLoss(pos_weight=torch.tensor(float(pos_weight))),
    )


def build_readmission_mlp(frame):
    return LitReadmissionMLP(lr=3e-3, **readmission_kwargs(frame))


def build_calibrated_readmission(frame, temperature=1.3):
    recent = frame[frame.discharge_time >= frame.discharge_time.quantile(0.5)]
    return LitCalibratedReadmission(temperature=temperature, n_bins=10,
                                    cohort_cutoff=recent.discharge_time.min(), **readmission_kwargs(recent))


def build_visit_model(visits):
    counts = collections.Counter(visits["icd10"].tolist())
    vocab = {code: i + 1 for i, (code, _) in enumerate(counts.most_common())}
    max_visits = int(visits.groupby("patient_id").visit_no.max().quantile(0.95))
    return LitVisitSequenceModel(
        code_vocab=vocab,
        code_counts=counts,
        max_visits=max_visits,
        scheduler_fn=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5),
    )


def build_ship_detector(cfg=None):
    cfg = cfg if cfg is not None else OmegaConf.create(SHIP_YAML)
    return LitShipDetector(
        backbone=make_backbone(cfg.data.in_channels, cfg.model.width),
        head_width=cfg.model.width * 2,
        lr=cfg.train.lr,
        anchor_sizes=cfg.model.anchor_sizes,
        score_threshold=cfg.eval.score_threshold,
        focal_loss=FocalLoss(alpha=cfg.train.focal_alpha, gamma=cfg.train.focal_gamma),
    )


def build_segmenter_from_sweep(trial, masks, land_mask):
    lr_grid = np.logspace(-4, -2, num=5)
    ship_frac = float(masks.mean())
    return LitShipSegmenter(lr=lr_grid[trial], tile_size=masks.shape[-1],
                            pos_weight=round((1.0 - ship_frac) / ship_frac, 2), land_mask=land_mask)


def build_tile_classifier(argv=()):
    p = argparse.ArgumentParser()
    p.add_argument("--tiles-dir", type=Path, default=Path("tiles/s1"))
    p.add_argument("--in-channels", type=int, default=2)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    return LitTileClassifier(p.parse_args(list(argv)))


def build_ship_datamodule(cfg=None):
    cfg = cfg if cfg is not None else OmegaConf.create(SHIP_YAML)
    return ShipTileDataModule(OmegaConf.to_container(cfg.data, resolve=True))


def _demo_masks(n=8, size=64, seed=0):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype=np.float32)
    for i in range(n):
        x, y = rng.integers(0, size - 8, 2)
        masks[i, y:y + 6, x:x + 8] = 1.0
    return masks


_LABELS = np.arange(200) % len(US8K_CLASSES)
_LABELS[:40] = 3  # dog_bark is over-represented in the street recordings

MODEL_REGISTRY = {
    "sound_cnn": lambda: build_sound_classifier(SoundConfig(), _LABELS),
    "urban_tagger": lambda: build_urban_tagger(SoundConfig(width=8), _LABELS),
    "noise_ae": lambda: build_noise_autoencoder(["optim.lr=3e-4"]),
    "sed_crnn": lambda: build_event_detector(["--n-mels", "32"]),
    "readmit_mlp": lambda: build_readmission_mlp(make_readmission_frame()),
    "readmit_calibrated": lambda: build_calibrated_readmission(make_readmission_frame(seed=1)),
    "visit_gru": lambda: build_visit_model(make_visits()),
    "ship_det": lambda: build_ship_detector(),
    "ship_seg": lambda: build_segmenter_from_sweep(2, _demo_masks(), np.zeros((64, 64), dtype=bool)),
    "tile_cls": lambda: build_tile_classifier(["--width", "8"]),
}

FACTORIES = {
    "LitSoundClassifier": MODEL_REGISTRY["sound_cnn"],
    "LitUrbanTagger": MODEL_REGISTRY["urban_tagger"],
    "LitNoiseAutoencoder": MODEL_REGISTRY["noise_ae"],
    "LitSoundEventDetector": MODEL_REGISTRY["sed_crnn"],
    "LitReadmissionMLP": MODEL_REGISTRY["readmit_mlp"],
    "LitCalibratedReadmission": MODEL_REGISTRY["readmit_calibrated"],
    "LitVisitSequenceModel": MODEL_REGISTRY["visit_gru"],
    "LitShipDetector": MODEL_REGISTRY["ship_det"],
    "LitShipSegmenter": MODEL_REGISTRY["ship_seg"],
    "LitTileClassifier": MODEL_REGISTRY["tile_cls"],
    "UrbanSoundDataModule": lambda: UrbanSoundDataModule(data_dir=str(Path("data") / "UrbanSound8K"), val_fold=10),
    "ReadmissionDataModule": lambda: ReadmissionDataModule(
        make_readmission_frame(), feature_cols=list(READMIT_FEATURES),
        test_start=str(pd.Timestamp("2022-01-01").date()), scaler=StandardScaler()),
    "ShipTileDataModule": build_ship_datamodule,
    "Polarization": lambda: Polarization.VH,
}
