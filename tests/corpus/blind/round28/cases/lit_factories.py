"""LightningModules for tagging, captioning and uplift, each built by a factory from a config:
an OmegaConf YAML, an argparse Namespace, or a dataclass. Every module calls save_hyperparameters.
"""
import argparse
import dataclasses
import datetime
import enum
import functools
import os
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

BASE_CFG = OmegaConf.create("""
data:
  labels: [O, B-PER, I-PER, B-LOC, I-LOC, B-ORG, I-ORG]
  label_counts: [50, 5, 4, 6, 3, 4, 2]
  vocab: ["<pad>", "<unk>", the, a, of, in, paris, john]
  scheme: bio
model:
  emb_dim: 16
  hidden_sizes: [32, 16]
  dropout: 0.1
optim:
  lr: 0.001
  weight_decay: 0.01
caption:
  embed: 16
  hidden: 32
  beam_size: 3
  max_len: 20
""")

CAPTIONS = ["a red square on black", "a blue circle", "two red squares on white", "a green line"]


class TagScheme(enum.Enum):
    BIO = "bio"
    BIOES = "bioes"


class SpecialToken(enum.IntEnum):
    PAD = 0
    START = 1
    END = 2


@dataclasses.dataclass
class DecodeConfig:
    scheme: TagScheme = TagScheme.BIO
    constrained: bool = True
    beam: int = 1


@dataclasses.dataclass
class OptimConfig:
    lr: float = 2e-3
    weight_decay: float = 0.0
    betas: tuple = (0.9, 0.999)


@dataclasses.dataclass
class TokenClsConfig:
    vocab_size: int = 100
    num_labels: int = 7
    hidden: int = 32
    max_len_quantile: float = 0.95
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)


# ---------------------------------------------------------------- tagging (OmegaConf)

class LitBiLSTMTagger(L.LightningModule):
    def __init__(
        self,
        vocab_size: int,
        label_names,  # truth: hparam
        hidden_sizes=(32,),  # truth: hparam
        emb_dim: int = 16,
        dropout: float = 0.1,
        scheme: TagScheme = TagScheme.BIO,  # truth: hparam
        outside_id=0,  # truth: hparam
        ignore_tags=frozenset(),  # truth: hparam
        entity_types=None,
        decode_cfg=None,  # truth: hparam
        class_weights=None,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(vocab_size, emb_dim)
        self.drop = nn.Dropout(dropout)
        self.lstm = nn.LSTM(emb_dim, hidden_sizes[0] // 2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(hidden_sizes[0], len(label_names))
        self.loss = nn.CrossEntropyLoss(weight=class_weights)

    def forward(self, x):
        h, _ = self.lstm(self.drop(self.emb(x)))
        return self.head(h)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = self.loss(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def tagger_from_config(cfg: DictConfig) -> LitBiLSTMTagger:
    labels = np.array(list(cfg.data.labels))
    counts = np.asarray(cfg.data.label_counts, dtype=np.float32)
    weights = torch.from_numpy(counts.sum() / (len(counts) * counts))
    decode = OmegaConf.merge(OmegaConf.structured(DecodeConfig), cfg.get("decode", {}))
    return LitBiLSTMTagger(
        vocab_size=len(cfg.data.vocab),
        label_names=labels,
        hidden_sizes=cfg.model.hidden_sizes,
        emb_dim=cfg.model.emb_dim,
        dropout=cfg.model.dropout,
        scheme=TagScheme(cfg.data.scheme),
        outside_id=np.flatnonzero(labels == "O")[0],
        ignore_tags=frozenset({"O"}),
        entity_types={label[2:] for label in labels if label != "O"},
        decode_cfg=OmegaConf.to_container(decode),
        class_weights=weights,
        lr=cfg.optim.lr,
    )


# ---------------------------------------------------------------- captioning (OmegaConf node / lists)

class LitCaptioner(L.LightningModule):
    def __init__(
        self,
        cfg: DictConfig,  # truth: hparam
        vocab_size: int,
        encoder: nn.Module = None,
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.encoder = encoder or nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, cfg.embed))
        self.init_h = nn.Linear(cfg.embed, cfg.hidden)
        self.embed = nn.Embedding(vocab_size, cfg.embed)
        self.gru = nn.GRU(cfg.embed, cfg.hidden, batch_first=True)
        self.fc = nn.Linear(cfg.hidden, vocab_size)

    def forward(self, images, captions):
        h0 = torch.tanh(self.init_h(self.encoder(images))).unsqueeze(0)
        out, _ = self.gru(self.embed(captions), h0)
        return self.fc(out)


def captioner_from_config(cfg: DictConfig) -> LitCaptioner:
    return LitCaptioner(cfg.caption, vocab_size=len(cfg.data.vocab))


class LitCaptionDecoder(L.LightningModule):
    """Decoder-only fine-tuning on precomputed encoder features."""

    def __init__(
        self,
        vocab_size: int,
        feature_dim: int = 16,
        hidden: int = 32,
        beam_size: int = 3,
        max_len=20,
        pad_id=0,  # truth: hparam
        pixel_mean=None,
        vocab=None,
        lr: float = 1e-3,
    ):
        super().__init__()
        max_len = int(max_len)  # the factory may hand in a numpy integer
        self.save_hyperparameters("vocab_size", "feature_dim", "hidden", "beam_size", "max_len", "pad_id", "lr")
        mean = pixel_mean if pixel_mean is not None else np.zeros(3, np.float32)
        self.register_buffer("pixel_mean", torch.as_tensor(mean))
        self.itos = list(vocab) if vocab is not None else []
        self.init_h = nn.Linear(feature_dim, hidden)
        self.embed = nn.Embedding(vocab_size, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, vocab_size)


def caption_decoder_from_captions(captions, beam_size=3):
    vocab = ["<pad>", "<start>", "<end>", "<unk>"] + sorted({w for c in captions for w in c.split()})
    lengths = np.array([len(c.split()) + 2 for c in captions])
    return LitCaptionDecoder(
        len(vocab),
        beam_size=beam_size,
        max_len=lengths.max(),
        pad_id=SpecialToken.PAD,
        pixel_mean=np.array([0.48, 0.46, 0.41], dtype=np.float32),
        vocab=vocab,
    )


# ---------------------------------------------------------------- uplift (argparse)

def uplift_parser():
    p = argparse.ArgumentParser(description="dragonnet-style uplift model")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--out-dir", type=Path, default=Path("runs/uplift"))
    return p


def s_learner_parser():
    p = argparse.ArgumentParser(description="S-learner")
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--n-features", type=int, default=5)
    p.add_argument("--data", default="data/campaign.parquet")
    p.add_argument("--clip", type=float, nargs=2, default=[0.02, 0.98])
    return p


class LitUpliftNet(L.LightningModule):
    """Shared trunk, a propensity head and one outcome head per arm."""

    def __init__(
        self,
        n_features: int,
        args: argparse.Namespace,  # truth: hparam
        loss_fn: nn.Module = nn.BCEWithLogitsLoss(),  # truth: hparam
        propensity_clip=(0.01, 0.99),
        feature_means=None,
        out_dir=None,  # truth: hparam
        treatment_col: str = "treated",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.trunk = nn.Sequential(nn.Linear(n_features, args.hidden), nn.ELU())
        self.propensity = nn.Linear(args.hidden, 1)
        self.y0 = nn.Linear(args.hidden, 1)
        self.y1 = nn.Linear(args.hidden, 1)
        self.loss_fn = loss_fn

    def forward(self, x):
        z = self.trunk(x)
        return self.propensity(z), self.y0(z), self.y1(z)


def uplift_from_args(argv=()):
    args = uplift_parser().parse_args(list(argv))
    X = np.random.default_rng(0).normal(size=(64, 5))
    return LitUpliftNet(X.shape[1], args, feature_means=X.mean(axis=0).round(4).tolist(), out_dir=args.out_dir)


class LitSLearner(L.LightningModule):
    def __init__(self, args):
        super().__init__()
        self.save_hyperparameters(args)
        self.net = nn.Sequential(nn.Linear(args.n_features + 1, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 1))

    def forward(self, x, t):
        return self.net(torch.cat([x, t[:, None]], dim=1)).squeeze(1)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def s_learner_from_args(argv=()):
    return LitSLearner(s_learner_parser().parse_args(list(argv)))


class LitXLearner(L.LightningModule):
    """X-learner second stage: regresses imputed effects; shares the dragonnet CLI."""

    def __init__(self, args):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(args)
        self.tau0 = nn.Sequential(nn.Linear(5, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 1))
        self.tau1 = nn.Sequential(nn.Linear(5, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 1))

    def forward(self, x, e):
        return e[:, None] * self.tau0(x) + (1 - e[:, None]) * self.tau1(x)


def x_learner_from_args(argv=()):
    return LitXLearner(uplift_parser().parse_args(list(argv)))


# ---------------------------------------------------------------- token classification (dataclass)

class LitTokenClassifier(L.LightningModule):
    def __init__(
        self,
        vocab_size: int,
        num_labels: int,
        optim: OptimConfig,  # truth: hparam
        optim_kwargs: dict = None,
        activation=nn.GELU,  # truth: hparam
        scheduler=None,  # truth: hparam
        normalize=None,  # truth: hparam
        max_len: int = 128,  # truth: hparam
        started=None,
        encoder: nn.Module = None,
        hidden: int = 32,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder or nn.Embedding(vocab_size, hidden)
        self.act = activation()
        self.head = nn.Linear(hidden, num_labels)

    def forward(self, x):
        return self.head(self.act(self.encoder(x)))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), **self.hparams.optim_kwargs)
        return {"optimizer": opt, "lr_scheduler": self.hparams.scheduler(opt)}


def token_classifier_from_dataclass(cfg: TokenClsConfig, sentences=CAPTIONS):
    lengths = np.array([len(s.split()) for s in sentences])
    return LitTokenClassifier(
        cfg.vocab_size,
        cfg.num_labels,
        optim=cfg.optim,
        optim_kwargs=dataclasses.asdict(cfg.optim),
        activation=nn.GELU,
        scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=10, gamma=0.5),
        normalize=lambda s: s.lower().strip(),
        max_len=np.quantile(lengths, cfg.max_len_quantile),
        started=datetime.date.today().isoformat(),
        encoder=nn.Embedding(cfg.vocab_size, cfg.hidden),
        hidden=cfg.hidden,
    )


FACTORIES = {
    "TagScheme": lambda: TagScheme.BIO,
    "SpecialToken": lambda: SpecialToken.PAD,
    "LitBiLSTMTagger": lambda: tagger_from_config(BASE_CFG),
    "LitCaptioner": lambda: captioner_from_config(BASE_CFG),
    "LitCaptionDecoder": lambda: caption_decoder_from_captions(CAPTIONS),
    "LitUpliftNet": lambda: uplift_from_args(["--hidden", "16"]),
    "LitSLearner": lambda: s_learner_from_args(["--hidden", "8"]),
    "LitXLearner": lambda: x_learner_from_args(["--alpha", "0.5"]),
    "LitTokenClassifier": lambda: token_classifier_from_dataclass(TokenClsConfig()),
}


def save_tagger_bundle(tmpdir):
    model = tagger_from_config(BASE_CFG)
    path = os.path.join(tmpdir, "tagger_bundle.pt")
    torch.save({
        "state_dict": model.state_dict(),
        "label_names": model.hparams.label_names.tolist(),
        "scheme": model.hparams.scheme.value,
        "config": BASE_CFG,  # truth: weights_only
        "config_dict": OmegaConf.to_container(BASE_CFG, resolve=True),
        "torch_version": torch.__version__,  # truth: weights_only
        "lightning_version": L.__version__,
    }, path)
    return path


def save_s_learner_export(tmpdir):
    model = s_learner_from_args(["--hidden", "8", "--clip", "0.05", "0.95"])
    path = os.path.join(tmpdir, "s_learner_export.pt")
    torch.save({
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "n_params": sum(p.numel() for p in model.parameters()),
        "dtype": next(model.parameters()).dtype,
    }, path)
    return path
