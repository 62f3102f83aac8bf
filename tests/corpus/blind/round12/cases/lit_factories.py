"""LightningModules for text classification and audio tagging, built by factories from configs."""
import argparse
import collections
import dataclasses
import enum
import math
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

LABELS = ["negative", "neutral", "positive"]
TAGS = ["speech", "music", "dog_bark", "siren", "rain"]


class Pooling(enum.Enum):
    MEAN = "mean"
    MAX = "max"
    CLS = "cls"


@dataclasses.dataclass
class SpecAugment:
    freq_mask: int = 8
    time_mask: int = 20
    mixup_alpha: float = 0.2


class WordVocab:
    def __init__(self, words):
        self.itos = ["<pad>", "<unk>"] + sorted(set(words))
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self):
        return len(self.itos)


TEXT_CFG = """
task: text
model:
  vocab_size: 64
  embed_dim: 16
  num_labels: 3
  dropout: 0.1
  pooling: mean
optim:
  lr: 3e-4
  weight_decay: 0.01
  warmup_ratio: 0.06
trainer:
  max_steps: 200
data:
  root: data/sst
  max_len: 32
"""

AUDIO_CFG = """
task: audio
sample_rate: 32000
n_mels: 64
hop_length: 320
num_tags: 5
lr: 1e-3
data_dir: data/audioset_tiny
"""


def label_frequencies():
    y = np.array([0, 1, 2, 2, 1, 2, 0, 2])
    counts = np.bincount(y, minlength=len(LABELS))
    return counts, counts.sum() / (len(LABELS) * counts)


class LitTextClassifier(L.LightningModule):
    """Whole config in, as the Hydra templates do."""

    def __init__(
        self,
        cfg: DictConfig,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        m = cfg.model
        self.embed = nn.EmbeddingBag(m.vocab_size, m.embed_dim, mode=m.pooling)
        self.head = nn.Linear(m.embed_dim, m.num_labels)

    def forward(self, ids):
        return self.head(self.embed(ids))

    def training_step(self, batch, batch_idx):
        ids, y = batch
        return F.cross_entropy(self(ids), y)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.optim.lr)


class LitTextClassifierResolved(L.LightningModule):
    """Same model, but the config is resolved into plain containers first."""

    def __init__(
        self,
        cfg: DictConfig,
    ):
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg, resolve=True))
        m = cfg.model
        self.embed = nn.EmbeddingBag(m.vocab_size, m.embed_dim, mode=m.pooling)
        self.head = nn.Linear(m.embed_dim, m.num_labels)

    def forward(self, ids):
        return self.head(self.embed(ids))


class LitSentiment(L.LightningModule):
    def __init__(
        self,
        vocab: WordVocab,
        vocab_size: int,
        label_names: list,
        class_weights: np.ndarray,  # truth: hparam
        pooling: Pooling = Pooling.MEAN,  # truth: hparam
        tokenizer_dir: Path = Path("artifacts/tokenizer"),  # truth: hparam
        label_counts: collections.Counter = None,
        lr: float = 3e-4,
        warmup_steps: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["vocab"])
        self.vocab = vocab
        self.embed = nn.EmbeddingBag(vocab_size, 16, mode=pooling.value)
        self.head = nn.Linear(16, len(label_names))
        self.register_buffer("weights", torch.as_tensor(class_weights, dtype=torch.float32))

    def forward(self, ids):
        return self.head(self.embed(ids))


class LitSentimentClean(L.LightningModule):
    def __init__(
        self,
        vocab_size: int,
        label_names: tuple,
        class_weights: list,
        pooling: str = "mean",
        tokenizer_dir: str = "artifacts/tokenizer",
        label_counts: dict = None,
        lr: float = 3e-4,
        warmup_steps: int = 0,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.EmbeddingBag(vocab_size, 16, mode=pooling)
        self.head = nn.Linear(16, len(label_names))
        self.register_buffer("weights", torch.tensor(class_weights, dtype=dtype))

    def forward(self, ids):
        return self.head(self.embed(ids))


class LitTextCNN(L.LightningModule):
    def __init__(
        self,
        model_cfg: DictConfig,  # truth: hparam
        optim: dict,
        max_len: int,
        collate_fn=None,  # truth: hparam
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(model_cfg.vocab_size, model_cfg.embed_dim)
        self.conv = nn.Conv1d(model_cfg.embed_dim, 8, 3, padding=1)
        self.head = nn.Linear(8, model_cfg.num_labels)

    def forward(self, ids):
        h = self.conv(self.emb(ids).transpose(1, 2)).amax(-1)
        return self.head(h)


class LitAudioTagger(L.LightningModule):
    def __init__(
        self,
        n_mels: int,
        num_tags: int,
        sample_rate: int,
        augment: SpecAugment = None,  # truth: hparam
        loss_fn: nn.Module = None,  # truth: hparam
        threshold: float = 0.5,  # truth: hparam
        norm_stats: dict = None,  # truth: hparam
        pos_weight: torch.Tensor = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.loss_fn = loss_fn or nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        self.cnn = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, num_tags)

    def forward(self, mels):
        return self.head(self.cnn(mels.unsqueeze(1)).mean((-1, -2)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self(x), y)


class LitAudioTaggerClean(L.LightningModule):
    def __init__(
        self,
        n_mels: int,
        num_tags: int,
        sample_rate: int,
        augment: dict = None,
        loss_fn: nn.Module = None,
        threshold: float = 0.5,
        norm_stats: dict = None,
        pos_weight: torch.Tensor = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["loss_fn"])
        self.loss_fn = loss_fn or nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        self.cnn = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, num_tags)

    def forward(self, mels):
        return self.head(self.cnn(mels.unsqueeze(1)).mean((-1, -2)))


class LitAudioTaggerFromArgs(L.LightningModule):
    """argparse scripts pass the Namespace straight through."""

    def __init__(
        self,
        args: argparse.Namespace,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(args)
        self.cnn = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, args.num_tags)


class LitAudioTaggerFromVars(L.LightningModule):
    def __init__(
        self,
        args: argparse.Namespace,
    ):
        super().__init__()
        self.save_hyperparameters(args)
        self.cnn = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, args.num_tags)


class LitMelFrontend(L.LightningModule):
    """Tagger whose front end is configured from the dataset manifest."""

    def __init__(
        self,
        sample_rate: int,  # truth: hparam
        tags,  # truth: hparam
        n_mels: int = 64,
        hop_length: int = 320,
        num_clips: int = 0,
        mean_duration: float = 10.0,
        manifest: str = "manifest.csv",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.head = nn.Linear(n_mels, len(tags))


# ---------------------------------------------------------------- factories


def build_from_manifest():
    df = pd.DataFrame({
        "path": [f"clip{i}.wav" for i in range(6)],
        "sr": [32000, 32000, 44100, 32000, 16000, 32000],
        "duration": [10.0, 9.5, 10.0, 4.2, 10.0, 8.8],
        "tag": ["speech", "music", "music", "siren", "rain", "speech"],
    })
    return LitMelFrontend(
        sample_rate=df["sr"].mode()[0],
        tags=df["tag"].unique(),
        num_clips=len(df),
        mean_duration=float(df["duration"].mean()),
        manifest=str(Path("data") / "manifest.csv"),
    )


def mel_stats(n_mels, seed=0):
    feats = np.log1p(np.random.default_rng(seed).gamma(2.0, size=(200, n_mels)))
    return feats.mean(), feats.std()


def build_text_model(cfg: DictConfig, kind: str = "bag"):
    if kind == "bag":
        return LitTextClassifier(cfg)
    if kind == "resolved":
        return LitTextClassifierResolved(cfg)
    return LitTextCNN(cfg.model, optim=OmegaConf.to_container(cfg.optim), max_len=cfg.data.max_len,
                      collate_fn=lambda batch: torch.nn.utils.rnn.pad_sequence(batch, batch_first=True))


def build_sentiment(cfg: DictConfig, clean=False):
    vocab = WordVocab("the movie was great not bad at all".split())
    counts, weights = label_frequencies()
    total_steps = cfg.trainer.max_steps
    warmup = math.ceil(total_steps * cfg.optim.warmup_ratio)
    if clean:
        return LitSentimentClean(
            vocab_size=len(vocab),
            label_names=tuple(LABELS),
            class_weights=weights.tolist(),
            pooling=Pooling(cfg.model.pooling).value,
            tokenizer_dir=str(Path(cfg.data.root) / "tokenizer"),
            label_counts=collections.Counter(dict(zip(LABELS, counts.tolist()))),
            lr=cfg.optim.lr,
            warmup_steps=warmup,
        )
    return LitSentiment(
        vocab,
        len(vocab),
        list(LABELS),
        weights,
        pooling=Pooling(cfg.model.pooling),
        tokenizer_dir=Path(cfg.data.root) / "tokenizer",
        label_counts=collections.Counter(dict(zip(LABELS, counts.tolist()))),
        lr=cfg.optim.lr,
        warmup_steps=warmup,
    )


def build_audio_tagger(cfg: DictConfig, clean=False):
    mean, std = mel_stats(cfg.n_mels)
    pos_weight = torch.ones(cfg.num_tags) * 2.0
    if clean:
        return LitAudioTaggerClean(
            n_mels=cfg.n_mels,
            num_tags=cfg.num_tags,
            sample_rate=int(cfg.sample_rate),
            augment=dataclasses.asdict(SpecAugment()),
            loss_fn=nn.BCEWithLogitsLoss(pos_weight=pos_weight),
            threshold=0.5,
            norm_stats={"mean": float(mean), "std": std.item()},
            pos_weight=pos_weight,
        )
    scores = np.linspace(0.3, 0.7, 9)
    return LitAudioTagger(
        n_mels=cfg.n_mels,
        num_tags=cfg.num_tags,
        sample_rate=cfg.sample_rate,
        augment=SpecAugment(),
        loss_fn=nn.BCEWithLogitsLoss(pos_weight=pos_weight),
        threshold=scores[np.argmax(np.sin(scores))],
        norm_stats={"mean": mean, "std": std},
        pos_weight=pos_weight,
    )


def parse_audio_args(argv=()):
    p = argparse.ArgumentParser()
    p.add_argument("--n_mels", type=int, default=64)
    p.add_argument("--num_tags", type=int, default=len(TAGS))
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--data_dir", type=Path, default=Path("data/audioset_tiny"))
    return p.parse_args(list(argv))


def build_from_args(argv=(), clean=False):
    args = parse_audio_args(argv)
    if clean:
        args.data_dir = str(args.data_dir)
        return LitAudioTaggerFromVars(args)
    return LitAudioTaggerFromArgs(args)


def text_cfg():
    return OmegaConf.create(TEXT_CFG)


def audio_cfg():
    return OmegaConf.create(AUDIO_CFG)


FACTORIES = {
    "WordVocab": lambda: WordVocab(["a", "b"]),
    "Pooling": lambda: Pooling.MEAN,
    "LitTextClassifier": lambda: build_text_model(text_cfg(), "bag"),
    "LitTextClassifierResolved": lambda: build_text_model(text_cfg(), "resolved"),
    "LitTextCNN": lambda: build_text_model(text_cfg(), "cnn"),
    "LitSentiment": lambda: build_sentiment(text_cfg()),
    "LitSentimentClean": lambda: build_sentiment(text_cfg(), clean=True),
    "LitAudioTagger": lambda: build_audio_tagger(audio_cfg()),
    "LitAudioTaggerClean": lambda: build_audio_tagger(audio_cfg(), clean=True),
    "LitAudioTaggerFromArgs": lambda: build_from_args(),
    "LitAudioTaggerFromVars": lambda: build_from_args(clean=True),
    "LitMelFrontend": build_from_manifest,
}
