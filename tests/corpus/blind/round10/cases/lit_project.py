"""A Lightning project: modules built by a train.py-style factory from data statistics and configs."""
import datetime
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

log = logging.getLogger("project.train")


@dataclass
class EncoderConfig:
    width: int = 32
    depth: int = 2
    norm: str = "layer"
    kernel_sizes: list = field(default_factory=lambda: [3, 3])


def _toy_labels():
    rng = np.random.default_rng(0)
    return rng.integers(0, 4, size=200)


class TextRegressor(L.LightningModule):
    def __init__(
        self,
        vocab_size: int,
        normalize: Callable = str.lower,  # truth: hparam
        embed_dim: int = 32,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.EmbeddingBag(vocab_size, embed_dim)
        self.out = nn.Linear(embed_dim, 1)

    def forward(self, tokens):
        return self.out(self.embed(tokens))


class ConvNet(L.LightningModule):
    def __init__(
        self,
        channels: Sequence[int] = (16, 32),
        norm_layer: type = nn.BatchNorm2d,  # truth: hparam
        act: str = "relu",
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        layers, c_in = [], 3
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), norm_layer(c), nn.ReLU()]
            c_in = c
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x).mean((2, 3))


class ConvNetNamed(L.LightningModule):
    def __init__(
        self,
        channels: Sequence[int] = (16, 32),
        norm_layer: str = "batch",
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        norm = {"batch": nn.BatchNorm2d, "instance": nn.InstanceNorm2d}[norm_layer]
        self.body = nn.Sequential(nn.Conv2d(3, channels[0], 3), norm(channels[0]))


class ImbalancedClassifier(L.LightningModule):
    def __init__(
        self,
        num_classes: int,
        pos_weight: float,  # truth: hparam
        class_prior,  # truth: hparam
        label_counts: list,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.head = nn.Linear(16, num_classes)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.head(x), y)


class ScheduledModel(L.LightningModule):
    def __init__(
        self,
        steps_per_epoch: int,
        total_steps: int,  # truth: hparam
        warmup_steps: int,
        max_epochs: int = 10,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(4, 4)


class EncoderModule(L.LightningModule):
    def __init__(
        self,
        config: EncoderConfig,  # truth: hparam
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(config.width, config.width)


class EncoderModuleFlat(L.LightningModule):
    def __init__(
        self,
        width: int = 32,
        depth: int = 2,
        norm: str = "layer",
        kernel_sizes: Optional[list] = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(width, width)


class DataAwareModule(L.LightningModule):
    def __init__(
        self,
        data_dir: Path,  # truth: hparam
        cache_dir: str,
        cutoff: datetime.date,  # truth: hparam
        cutoff_iso: str = "2024-01-01",
        logger_name: str = "project.train",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(4, 1)


class LoggedModule(L.LightningModule):
    def __init__(
        self,
        hidden: int = 8,
        console: logging.Logger = log,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(hidden, hidden)


class LoggedModuleIgnored(L.LightningModule):
    def __init__(
        self,
        hidden: int = 8,
        console: logging.Logger = log,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["console"])
        self.console = console
        self.net = nn.Linear(hidden, hidden)


class FinetuneModule(L.LightningModule):
    def __init__(
        self,
        backbone: nn.Module,
        head_dropout: float = 0.2,
        freeze_until: int = 2,
        loss_fn: nn.Module = nn.SmoothL1Loss(),  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(ignore=("backbone",))
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(8, 1))
        self.loss_fn = loss_fn


class FinetuneModuleSafe(L.LightningModule):
    def __init__(
        self,
        backbone: nn.Module,
        head_dropout: float = 0.2,
        loss_fn: nn.Module = nn.SmoothL1Loss(),
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone", "loss_fn"])
        self.backbone = backbone
        self.loss_fn = loss_fn


class PickedHparams(L.LightningModule):
    def __init__(
        self,
        embedding_init: torch.Tensor,
        stop_words: frozenset,
        lr: float = 1e-3,
        dim: int = 16,
    ):
        super().__init__()
        self.save_hyperparameters("lr", "dim")
        self.emb = nn.Embedding.from_pretrained(embedding_init)
        self.stop_words = stop_words


class VocabModule(L.LightningModule):
    def __init__(
        self,
        stop_words: frozenset,  # truth: hparam
        pretrained: torch.Tensor,
        special_ids: dict,
        max_len: int = 64,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding.from_pretrained(pretrained)


class ConfigDictModule(L.LightningModule):
    def __init__(self, cfg):
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg, resolve=True))
        self.net = nn.Linear(cfg.width, cfg.width)


class ConfigNodeModule(L.LightningModule):
    def __init__(
        self,
        cfg,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = nn.Linear(cfg.width, cfg.width)


class NormStatsModule(L.LightningModule):
    def __init__(
        self,
        mean,  # truth: hparam
        std,
        eps: float = 1e-6,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("mean_t", torch.as_tensor(mean, dtype=torch.float32))


class ConvertedStatsModule(L.LightningModule):
    def __init__(self, mean, std, eps: float = 1e-6):
        mean = [float(m) for m in mean]
        std = torch.as_tensor(std, dtype=torch.float32)
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("std_t", std)


def _factory_imbalanced():
    labels = _toy_labels()
    counts = np.bincount(labels, minlength=4)
    return ImbalancedClassifier(
        num_classes=len(counts),
        pos_weight=(labels == 0).sum() / (labels != 0).sum(),
        class_prior=counts / counts.sum(),
        label_counts=counts.tolist(),
    )


def _factory_scheduled():
    n_samples, batch_size, epochs = 1000, 32, 10
    steps = math.ceil(n_samples / batch_size)
    return ScheduledModel(
        steps_per_epoch=steps,
        total_steps=np.ceil(n_samples / batch_size) * epochs,
        warmup_steps=int(0.1 * steps * epochs),
        max_epochs=epochs,
    )


def _node_cfg():
    return OmegaConf.create({"width": 8, "depth": 2, "act": "gelu"})


def _stats():
    data = np.random.default_rng(1).normal(size=(50, 3))
    return data.mean(0), data.std(0).tolist()


FACTORIES = {
    "TextRegressor": lambda: TextRegressor(vocab_size=100),
    "ImbalancedClassifier": _factory_imbalanced,
    "ScheduledModel": _factory_scheduled,
    "EncoderModule": lambda: EncoderModule(EncoderConfig(width=16)),
    "EncoderModuleFlat": lambda: EncoderModuleFlat(**asdict(EncoderConfig(width=16))),
    "DataAwareModule": lambda: DataAwareModule(
        data_dir=Path("/tmp/data"),
        cache_dir=str(Path("/tmp/cache")),
        cutoff=datetime.date(2024, 1, 1),
    ),
    "FinetuneModule": lambda: FinetuneModule(nn.Sequential(nn.Linear(4, 8), nn.ReLU())),
    "FinetuneModuleSafe": lambda: FinetuneModuleSafe(nn.Linear(4, 8)),
    "PickedHparams": lambda: PickedHparams(torch.randn(10, 16), frozenset({"a", "the"})),
    "VocabModule": lambda: VocabModule(frozenset({"a", "the"}), torch.randn(10, 4), {"pad": 0, "unk": 1}),
    "ConfigDictModule": lambda: ConfigDictModule(_node_cfg()),
    "ConfigNodeModule": lambda: ConfigNodeModule(_node_cfg()),
    "NormStatsModule": lambda: NormStatsModule(*_stats()),
    "ConvertedStatsModule": lambda: ConvertedStatsModule(*_stats()),
}
