"""Config-driven LightningModules: argparse, OmegaConf/Hydra, dataclass configs and data helpers.

FACTORIES builds each module as the project's `main()` does from its parsed arguments or config.
"""
import argparse
import enum
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Union

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn


class Pooling(enum.Enum):
    MEAN = "mean"
    MAX = "max"


@dataclass
class ModelConfig:
    hidden: int = 64
    depth: int = 2
    dropout: float = 0.1


class WordTokenizer:
    """Thread-safe cache of token ids, shared by the dataloader workers of one process."""

    def __init__(self, vocab=("<pad>", "<unk>", "a", "b")):
        self.vocab = {w: i for i, w in enumerate(vocab)}
        self.pad_id = 0
        self._cache_lock = threading.Lock()  # truth: pickle
        self._cache = {}

    def __len__(self):
        return len(self.vocab)

    def encode(self, text):
        with self._cache_lock:
            if text not in self._cache:
                self._cache[text] = [self.vocab.get(w, 1) for w in text.split()]
            return self._cache[text]


class RegexTokenizer:
    """Whitespace tokenizer with a pluggable normalizer (lower-casing by default)."""

    def __init__(self, vocab=("<pad>", "<unk>", "a", "b"), lowercase=True):
        self.vocab = {w: i for i, w in enumerate(vocab)}
        self.pad_id = 0
        self.normalize = (lambda s: s.lower()) if lowercase else str  # truth: pickle

    def __len__(self):
        return len(self.vocab)

    def encode(self, text):
        return [self.vocab.get(w, 1) for w in self.normalize(text).split()]


def double_intensity(x):
    return x * 2


NOT_BUILT = {"Pooling": "an Enum: its members are the values"}


def build_parser():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--data-dir", default="data/")
    return parser


def default_cfg() -> DictConfig:
    return OmegaConf.create({"model": {"hidden": 64, "depth": 2}, "optim": {"lr": 1e-3}, "data": {"batch_size": 32}})


class LitFromArgs(L.LightningModule):
    def __init__(
        self,
        args: argparse.Namespace,  # truth: hparam
        num_classes: int = 10,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(16, num_classes)
        self.lr = args.lr


class LitFromArgsUnpacked(L.LightningModule):
    def __init__(self, args: argparse.Namespace):
        super().__init__()
        self.save_hyperparameters(args)
        self.net = nn.Linear(16, args.hidden)


class LitFromArgsDict(L.LightningModule):
    def __init__(
        self,
        hparams: dict,
        num_classes: int = 10,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(16, num_classes)


class LitPaths(L.LightningModule):
    def __init__(
        self,
        data_dir: Union[str, Path] = "data/",  # truth: hparam
        cache_dir: str = "cache/",
        export_dir: Path = Path("exports"),  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        self.layer = nn.Linear(4, 4)


class LitHydra(L.LightningModule):
    def __init__(self, cfg: DictConfig):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = nn.Linear(16, cfg.model.hidden)


class LitHydraNested(L.LightningModule):
    def __init__(
        self,
        model_cfg: DictConfig,  # truth: hparam
        milestones: List[int],  # truth: hparam
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(16, model_cfg.hidden)


class LitHydraPlain(L.LightningModule):
    def __init__(
        self,
        model_cfg: Dict[str, Any],
        milestones: List[int],
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(16, model_cfg["hidden"])


class LitDataclassConfig(L.LightningModule):
    def __init__(
        self,
        config: ModelConfig = ModelConfig(),  # truth: hparam
        pooling: Pooling = Pooling.MEAN,  # truth: hparam
        pooling_name: str = Pooling.MAX.value,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(16, config.hidden)


class LitDataclassAsDict(L.LightningModule):
    def __init__(
        self,
        config: dict,
        pooling: str = "mean",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(16, config["hidden"])


class LitTextClassifier(L.LightningModule):
    def __init__(
        self,
        tokenizer: RegexTokenizer,  # truth: hparam
        embed_dim: int = 32,
        num_classes: int = 2,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.pad_id = tokenizer.pad_id
        self.embed = nn.Embedding(len(tokenizer), embed_dim, padding_idx=tokenizer.pad_id)
        self.head = nn.Linear(embed_dim, num_classes)


class LitTextClassifierIgnored(L.LightningModule):
    def __init__(
        self,
        tokenizer: WordTokenizer,
        vocab_size: int,
        embed_dim: int = 32,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["tokenizer"])
        self.embed = nn.Embedding(vocab_size, embed_dim)


class LitNormalized(L.LightningModule):
    def __init__(
        self,
        mean,  # truth: hparam
        std,  # truth: hparam
        in_dim: int = 8,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))


class LitNormalizedLists(L.LightningModule):
    def __init__(
        self,
        mean: List[float],
        std: List[float],
        in_dim: int = 8,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("mean", torch.tensor(mean))


class LitDevice(L.LightningModule):
    def __init__(
        self,
        dtype: torch.dtype = torch.bfloat16,
        input_shape: torch.Size = torch.Size([3, 32, 32]),
        init_scale: torch.Tensor = torch.ones(3),
        loss_reduction: str = "mean",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(4, 4)


class PetsDataModule(L.LightningDataModule):
    def __init__(
        self,
        data_dir: str = "data/pets",
        batch_size: int = 32,
        num_workers: int = 4,
        image_size: tuple = (224, 224),
    ):
        super().__init__()
        self.save_hyperparameters()


class AugmentedDataModule(L.LightningDataModule):
    def __init__(
        self,
        transform=None,
        batch_size: int = 32,
        val_fraction: float = 0.1,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["transform"])
        self.transform = transform


def _train_cfg():
    cfg = default_cfg()
    cfg.optim.milestones = [10, 20]
    return cfg


FACTORIES = {
    "LitFromArgs": lambda: LitFromArgs(build_parser().parse_args([])),
    "LitFromArgsUnpacked": lambda: LitFromArgsUnpacked(build_parser().parse_args(["--hidden", "32"])),
    "LitFromArgsDict": lambda: LitFromArgsDict(vars(build_parser().parse_args([]))),
    "LitPaths": lambda: LitPaths(data_dir=Path("data") / "train", cache_dir=str(Path("cache"))),
    "LitHydra": lambda: LitHydra(default_cfg()),
    "LitHydraNested": lambda: LitHydraNested(_train_cfg().model, _train_cfg().optim.milestones,
                                             lr=_train_cfg().optim.lr),
    "LitHydraPlain": lambda: LitHydraPlain(
        OmegaConf.to_container(_train_cfg().model, resolve=True),
        list(_train_cfg().optim.milestones),
        lr=float(_train_cfg().optim.lr),
    ),
    "LitDataclassAsDict": lambda: LitDataclassAsDict(asdict(ModelConfig(hidden=32)), Pooling.MAX.value),
    "LitTextClassifier": lambda: LitTextClassifier(RegexTokenizer()),
    "LitTextClassifierIgnored": lambda: LitTextClassifierIgnored(WordTokenizer(), len(WordTokenizer())),
    "LitNormalized": lambda: LitNormalized(
        mean=np.random.default_rng(0).normal(size=(64, 8)).mean(axis=0),
        std=np.random.default_rng(0).normal(size=(64, 8)).std(),
    ),
    "LitNormalizedLists": lambda: LitNormalizedLists(
        mean=np.zeros(8).tolist(),
        std=[float(s) for s in np.ones(8)],
    ),
    "AugmentedDataModule": lambda: AugmentedDataModule(transform=double_intensity, batch_size=64),
}
