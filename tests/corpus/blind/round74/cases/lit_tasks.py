"""Lightning wrappers for the three tasks (yield regression, music tagging, grasp prediction).

Everything is built from one experiment YAML through `build_*` functions and small registries, the
way `train.py --task crop` style launchers do it; the raw nn.Modules and data helpers come from the
task modules.
"""
import dataclasses
import functools
import math
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from crop_yield_forecast import BANDS, INDICES, TempCNN, add_indices, make_field_table, to_tensors
from grasp_prediction import (GGCNN, LOSSES, MODELS, CameraIntrinsics, calibrate_hand_eye, grasp_loss,
                              load_config as load_grasp_config, synthetic_batch)
from music_autotagging import (AudioConfig, MelFrontend, ShortChunkCNN, TagVocabulary,
                               synthetic_annotations)

EXPERIMENT_YAML = """
crop:
  seq_len: 24
  hidden: 32
  dropout: 0.2
  optimizer: adamw
  lr: 3.0e-3
  cache_dir: cache/s2
  seasons: [2019, 2020, 2021]
  anomaly: {window: 5, z_thresh: 2.5, hidden: 16}
music:
  channels: 16
  top_k: 12
  activation: gelu
  log_inv_temperature: 2.302585
  queue_size: 512
  augment: [gain, polarity, noise]
grasp:
  refine_steps: 4
  candidates: 16
  noise_std: 0.01
"""

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


def experiment_config(*overrides):
    cfg = OmegaConf.create(yaml.safe_load(EXPERIMENT_YAML))
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))


# ------------------------------------------------------------------------------------------ crop

class CropYieldModule(pl.LightningModule):
    def __init__(self,
                 in_channels: int = len(BANDS) + len(INDICES),
                 seq_len: int = 24,
                 hidden: int = 32,
                 dropout: float = 0.2,
                 target_mean: float = 0.0,  # truth: hparam
                 target_std: float = 1.0,
                 band_names: tuple = BANDS,
                 optimizer_cls=torch.optim.AdamW,  # truth: hparam
                 lr: float = 1e-3,
                 cache_dir=None,  # truth: hparam
                 seasons: tuple = ()):
        super().__init__()
        self.save_hyperparameters()
        self.net = TempCNN(in_channels, hidden, seq_len, dropout)

    def forward(self, x):
        return self.net(x) * self.hparams.target_std + self.hparams.target_mean

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.smooth_l1_loss(self(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return self.hparams.optimizer_cls(self.parameters(), lr=self.hparams.lr)


def build_crop_module(cfg):
    df = add_indices(make_field_table(seq_len=cfg.crop.seq_len, seed=0))
    field_yield = df.groupby("field_id")["yield_t_ha"].first()
    return CropYieldModule(
        seq_len=cfg.crop.seq_len,
        hidden=cfg.crop.hidden,
        dropout=cfg.crop.dropout,
        target_mean=field_yield.mean(),
        target_std=float(field_yield.std()),
        optimizer_cls=OPTIMIZERS[cfg.crop.optimizer],
        lr=cfg.crop.lr,
        cache_dir=Path(cfg.crop.cache_dir),
        seasons=tuple(cfg.crop.seasons),
    )


class CropSeasonModule(pl.LightningModule):
    """Multi-season model; the launcher hands it its whole `crop` config node."""

    def __init__(self, cfg: DictConfig):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.season_embed = nn.Embedding(len(cfg.seasons), 8)
        self.net = TempCNN(len(BANDS) + len(INDICES) + 8, cfg.hidden, cfg.seq_len, cfg.dropout)

    def forward(self, x, season_idx):
        e = self.season_embed(season_idx)[:, None, :].expand(-1, x.shape[1], -1)
        return self.net(torch.cat([x, e], -1))


class CropAnomalyModule(pl.LightningModule):
    """Flags fields whose NDVI trajectory departs from the regional profile."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.encoder = nn.GRU(len(INDICES), cfg["hidden"], batch_first=True)
        self.decoder = nn.Linear(cfg["hidden"], len(INDICES))

    def forward(self, x):
        h, _ = self.encoder(x)
        return self.decoder(h)


class CropDataModule(pl.LightningDataModule):
    def __init__(self,
                 root: str = "data/s2_fields",
                 seq_len: int = 24,
                 batch_size: int = 16,
                 bands: tuple = BANDS,
                 val_fraction: float = 0.25,
                 num_workers: int = 0,
                 seed: int = 0):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        df = add_indices(make_field_table(seq_len=self.hparams.seq_len, seed=self.hparams.seed))
        x, y, self.scaler = to_tensors(df, [*self.hparams.bands, *INDICES])
        n_val = int(len(y) * self.hparams.val_fraction)
        self.train_set = TensorDataset(x[n_val:], y[n_val:])
        self.val_set = TensorDataset(x[:n_val], y[:n_val])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True,
                          num_workers=self.hparams.num_workers)


# ----------------------------------------------------------------------------------------- music

class MusicTaggerModule(pl.LightningModule):
    def __init__(self,
                 tags: list,
                 genre_names: list = (),  # truth: hparam
                 audio_cfg: AudioConfig = None,  # truth: hparam
                 channels: int = 16,
                 pos_weight: torch.Tensor = None,
                 thresholds: list = None,
                 mixup_alpha: float = 0.2,
                 compute_dtype: torch.dtype = torch.float32,
                 lr: float = 1e-3,
                 frontend: nn.Module = None):
        super().__init__()
        self.save_hyperparameters(ignore=["frontend"])
        self.frontend = frontend or MelFrontend(audio_cfg or AudioConfig())
        self.model = ShortChunkCNN(len(tags), channels)
        self.criterion = nn.BCEWithLogitsLoss(pos_weight=pos_weight)

    def training_step(self, batch, batch_idx):
        wav, y = batch
        lam = float(np.random.beta(self.hparams.mixup_alpha, self.hparams.mixup_alpha))
        perm = torch.randperm(len(wav))
        logits = self.model(self.frontend(lam * wav + (1 - lam) * wav[perm]))
        return lam * self.criterion(logits, y) + (1 - lam) * self.criterion(logits, y[perm])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def build_music_tagger(cfg):
    ann = synthetic_annotations(seed=1)
    vocab = TagVocabulary(ann, top_k=cfg.music.top_k)
    pos = vocab.y.sum(0)
    return MusicTaggerModule(
        tags=list(vocab.mlb.classes_),
        genre_names=list(vocab.genre_encoder.classes_),
        audio_cfg=AudioConfig(n_mels=40),
        channels=cfg.music.channels,
        pos_weight=torch.tensor((len(vocab.y) - pos) / np.maximum(pos, 1), dtype=torch.float32),
        thresholds=np.full(len(vocab), 0.5).tolist(),
        mixup_alpha=0.4,
    )


def build_augment(names, sample_rate=16000):
    def augment(wav):
        for name in names:
            if name == "gain":
                wav = wav * (10 ** (torch.empty(len(wav), 1).uniform_(-6, 6) / 20))
            elif name == "polarity":
                wav = wav * torch.where(torch.rand(len(wav), 1) < 0.5, -1.0, 1.0)
            elif name == "noise":
                wav = wav + 1e-3 * torch.randn_like(wav)
        return wav
    return augment


class ContrastiveAudioModule(pl.LightningModule):
    """CLMR-style pretraining: two augmented views of a clip, NT-Xent loss."""

    def __init__(self,
                 encoder: nn.Module,
                 projection_dim: int = 64,
                 temperature: float = 0.1,  # truth: hparam
                 queue_size: int = 256,
                 augment=None,  # truth: hparam
                 activation: str = "relu",
                 sample_rate: int = 16000):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        act = ACTIVATIONS[activation]
        self.projector = nn.Sequential(nn.LazyLinear(128), act(), nn.Linear(128, projection_dim))

    def training_step(self, batch, batch_idx):
        wav = batch[0]
        z1 = F.normalize(self.projector(self.encoder(self.hparams.augment(wav))), dim=-1)
        z2 = F.normalize(self.projector(self.encoder(self.hparams.augment(wav))), dim=-1)
        logits = z1 @ z2.T / self.hparams.temperature
        return F.cross_entropy(logits, torch.arange(len(wav)))


def build_contrastive(cfg):
    audio = AudioConfig()
    encoder = nn.Sequential(MelFrontend(audio), ShortChunkCNN(n_tags=cfg.music.channels * 2))
    return ContrastiveAudioModule(
        encoder,
        projection_dim=64,
        temperature=1.0 / np.exp(cfg.music.log_inv_temperature),
        queue_size=cfg.music.queue_size,
        augment=build_augment(list(cfg.music.augment), audio.sample_rate),
        activation=cfg.music.activation,
        sample_rate=audio.sample_rate,
    )


class GenreHeadModule(pl.LightningModule):
    def __init__(self, n_classes: int, hidden: int = 64, lr: float = 1e-3, label_encoder=None):
        super().__init__()
        self.save_hyperparameters("n_classes", "hidden", "lr")
        self.label_encoder = label_encoder
        self.head = nn.Sequential(nn.LazyLinear(hidden), nn.ReLU(), nn.Linear(hidden, n_classes))


class MusicDataModule(pl.LightningDataModule):
    def __init__(self,
                 annotations_csv: str = "data/mtg_jamendo/autotagging_top50.tsv",
                 sample_rate: int = 16000,
                 clip_seconds: float = 1.0,
                 batch_size: int = 8,
                 tags: list = None,
                 audio: dict = None):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        ann = synthetic_annotations()
        self.vocab = TagVocabulary(ann)
        n = int(self.hparams.sample_rate * self.hparams.clip_seconds)
        self.train_set = TensorDataset(torch.randn(len(ann), n), torch.from_numpy(self.vocab.y).float())


# ----------------------------------------------------------------------------------------- grasp

class GraspModule(pl.LightningModule):
    def __init__(self,
                 model_cfg=None,  # truth: hparam
                 input_size: int = 48,
                 max_width_px: float = 60.0,
                 depth_range: tuple = (0.25, 1.2),
                 loss: str = "smooth_l1",
                 loss_weights: dict = None,
                 camera=None,  # truth: hparam
                 lr: float = 1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = MODELS[model_cfg.name](tuple(model_cfg.channels), model_cfg.dropout) if model_cfg else GGCNN()

    def training_step(self, batch, batch_idx):
        depth, target = batch
        total, parts = grasp_loss(self.net(depth), target, self.hparams.loss_weights, self.hparams.loss)
        self.log_dict({f"train/{k}": v for k, v in parts.items()})
        return total


def build_grasp_module(grasp_cfg, **extra):
    K, _, _, _ = calibrate_hand_eye()
    return GraspModule(
        model_cfg=grasp_cfg.model,
        input_size=grasp_cfg.data.input_size,
        max_width_px=grasp_cfg.data.max_width_px,
        depth_range=tuple(grasp_cfg.data.depth_range),
        loss=grasp_cfg.train.loss,
        loss_weights=dict(grasp_cfg.train.loss_weights),
        camera=CameraIntrinsics(*(K[i, j] for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))),
        lr=grasp_cfg.train.lr,
        **extra,
    )


def sample_candidates(quality, k=16, noise_std=0.01):
    flat = quality.flatten(1)
    idx = torch.topk(flat, k, dim=1).indices
    return idx, noise_std * torch.randn(idx.shape + (2,))


class GraspRefinerModule(GraspModule):
    def __init__(self,
                 refine_steps: int = 3,
                 step_size: float = 0.5,
                 sampler=None,  # truth: hparam
                 **base_kwargs):
        super().__init__(**base_kwargs)
        self.refine = nn.GRUCell(4, 32)


def build_grasp_refiner(cfg):
    gcfg = load_grasp_config()
    sampler = functools.partial(sample_candidates, k=cfg.grasp.candidates, noise_std=cfg.grasp.noise_std)
    K, _, _, _ = calibrate_hand_eye()
    return GraspRefinerModule(
        refine_steps=cfg.grasp.refine_steps,
        sampler=sampler,
        model_cfg=gcfg.model,
        camera=CameraIntrinsics(*K[[0, 1, 0, 1], [0, 1, 2, 2]]),
        loss_weights={"quality": 1.0, "angle": 1.0, "width": 0.5},
    )


class GraspSuccessClassifier(pl.LightningModule):
    """GQ-CNN-like: does this depth crop + gripper depth give a successful grasp?"""

    def __init__(self,
                 backbone: nn.Module = None,  # truth: hparam
                 feature_dim: int = 32,
                 pos_fraction: float = 0.5,
                 norm_stats: dict = None,  # truth: hparam
                 metrics: tuple = ("acc", "auroc"),
                 lr: float = 1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = backbone or nn.Sequential(nn.Conv2d(1, feature_dim, 5, 2), nn.ReLU(),
                                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.norm_stats = norm_stats if norm_stats is not None else {}
        self.norm_stats.setdefault("eps", np.finfo(np.float32).eps)
        self.head = nn.Linear(feature_dim + 1, 1)
        self.pos_weight = (1.0 - pos_fraction) / max(pos_fraction, 1e-3)


def build_success_classifier(grasp_cfg):
    depth, targets = synthetic_batch(grasp_cfg, n=16, seed=3)
    labels = (targets[:, 0].flatten(1).amax(1) > 0.5).float()
    backbone = nn.Sequential(nn.Conv2d(1, 32, 5, 2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return GraspSuccessClassifier(
        backbone=backbone,
        feature_dim=32,
        pos_fraction=labels.mean().item(),
        norm_stats={"depth_mean": float(depth.mean()), "depth_std": float(depth.std())},
        metrics=("acc", "auroc", "ap"),
    )


class GraspDataModule(pl.LightningDataModule):
    def __init__(self,
                 input_size: int = 48,
                 depth_range: tuple = (0.25, 1.2),
                 augment: list = None,
                 batch_size: int = 8,
                 n_samples: int = 64):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        cfg = load_grasp_config([f"data.input_size={self.hparams.input_size}"])
        self.train_set = TensorDataset(*synthetic_batch(cfg, n=self.hparams.n_samples))


def _cfg():
    return experiment_config()


FACTORIES = {
    "CropYieldModule": lambda: build_crop_module(_cfg()),
    "CropSeasonModule": lambda: CropSeasonModule(_cfg().crop),
    "CropAnomalyModule": lambda: CropAnomalyModule(OmegaConf.to_container(_cfg().crop.anomaly)),
    "CropDataModule": lambda: CropDataModule(bands=tuple(BANDS[:4]), seq_len=_cfg().crop.seq_len),
    "MusicTaggerModule": lambda: build_music_tagger(_cfg()),
    "ContrastiveAudioModule": lambda: build_contrastive(_cfg()),
    "GenreHeadModule": lambda: GenreHeadModule(5, label_encoder=TagVocabulary(synthetic_annotations()).genre_encoder),
    "MusicDataModule": lambda: MusicDataModule(tags=TagVocabulary(synthetic_annotations()).tags,
                                               audio=dataclasses.asdict(AudioConfig())),
    "GraspModule": lambda: build_grasp_module(load_grasp_config(["model.dropout=0.0"])),
    "GraspRefinerModule": lambda: build_grasp_refiner(_cfg()),
    "GraspSuccessClassifier": lambda: build_success_classifier(load_grasp_config()),
    "GraspDataModule": lambda: GraspDataModule(augment=list(load_grasp_config().data.augment)),
}
