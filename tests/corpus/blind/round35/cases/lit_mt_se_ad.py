"""LightningModules for the MT, enhancement and anomaly-detection projects.

Models are looked up in a registry and built from whatever config the entry point has: argparse
for the MT and denoiser scripts, a dataclass experiment config for the enhancer, OmegaConf for
PatchCore and the student-teacher detector.
"""
import argparse
import dataclasses
import datetime
import enum
import functools
import math
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

MODELS = {}


def register(name):
    def deco(cls):
        MODELS[name] = cls
        return cls
    return deco


# =========================================================================== translation

VOCAB = ["<pad>", "<s>", "</s>", "<unk>"] + [f"tok{i}" for i in range(60)]


@dataclasses.dataclass
class BeamConfig:
    beam_size: int = 5
    lenpen: float = 1.0
    max_len_a: float = 1.2
    max_len_b: int = 10


def gnmt_lp(length, alpha=0.6):
    return ((5 + length) / 6) ** alpha


class TinyTransformerMT(nn.Module):
    def __init__(self, vocab_size=64, d_model=32, nhead=4, layers=1):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=0)
        self.core = nn.Transformer(d_model, nhead, layers, layers, dim_feedforward=2 * d_model, batch_first=True)
        self.proj = nn.Linear(d_model, vocab_size)

    def forward(self, src, prev):
        mask = self.core.generate_square_subsequent_mask(prev.size(1))
        return self.proj(self.core(self.embed(src), self.embed(prev), tgt_mask=mask))


@register("transformer_mt")
class LitTranslator(pl.LightningModule):
    def __init__(
        self,
        vocab_size: int,
        d_model: int = 32,
        nhead: int = 4,
        label_smoothing: float = 0.1,
        beam: BeamConfig = None,  # truth: hparam
        length_penalty=None,  # truth: hparam
        bos_id: int = 1,  # truth: hparam
        pad_id: int = 0,
        criterion: nn.Module = None,
        lr: float = 5e-4,
        warmup: int = 4000,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["criterion"])
        self.model = TinyTransformerMT(vocab_size, d_model, nhead)
        self.criterion = criterion or nn.CrossEntropyLoss(ignore_index=pad_id, label_smoothing=label_smoothing)
        self.beam = beam or BeamConfig()
        self.length_penalty = length_penalty or functools.partial(gnmt_lp, alpha=self.beam.lenpen)

    def training_step(self, batch, batch_idx):
        src, prev, tgt = batch
        logits = self.model(src, prev)
        loss = self.criterion(logits.flatten(0, 1), tgt.flatten())
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, betas=(0.9, 0.98))
        warm = self.hparams.warmup
        sched = torch.optim.lr_scheduler.LambdaLR(opt, functools.partial(_inv_sqrt, warmup=warm))
        return [opt], [{"scheduler": sched, "interval": "step"}]


def _inv_sqrt(step, warmup):
    step += 1
    return min(step / warmup, math.sqrt(warmup / step))


@register("rnn_mt")
class LitRNNTranslator(pl.LightningModule):
    def __init__(
        self,
        cfg: DictConfig,  # truth: hparam
        vocab_size: int = 64,
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.embed = nn.Embedding(vocab_size, cfg.model.dim)
        self.rnn = nn.GRU(cfg.model.dim, cfg.model.dim, num_layers=cfg.model.layers, batch_first=True)
        self.out = nn.Linear(cfg.model.dim, vocab_size)
        self.label_smoothing = float(cfg.optim.label_smoothing)

    def training_step(self, batch, batch_idx):
        src, tgt = batch
        h, _ = self.rnn(self.embed(src))
        return F.cross_entropy(self.out(h).flatten(0, 1), tgt.flatten(), label_smoothing=self.label_smoothing)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.optim.lr)


@register("rnn_mt_plain")
class LitRNNTranslatorPlain(pl.LightningModule):
    """Same model, but the config is flattened to plain containers before it is stored."""

    def __init__(
        self,
        cfg: DictConfig,
        vocab_size: int = 64,
    ):
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg, resolve=True))
        self.embed = nn.Embedding(vocab_size, cfg.model.dim)
        self.rnn = nn.GRU(cfg.model.dim, cfg.model.dim, batch_first=True)
        self.out = nn.Linear(cfg.model.dim, vocab_size)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams["optim"]["lr"])


def mt_parser():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="transformer_mt", choices=sorted(MODELS))
    p.add_argument("--d-model", type=int, default=32)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--beam", type=int, default=4)
    p.add_argument("--lenpen", type=float, default=0.6)
    p.add_argument("--lr", type=float, default=7e-4)
    p.add_argument("--warmup", type=int, default=4000)
    return p


def build_translator(args, vocab=VOCAB):
    tokens = np.array(vocab)
    return MODELS[args.arch](
        vocab_size=len(vocab),
        d_model=args.d_model,
        label_smoothing=args.label_smoothing,
        beam=BeamConfig(beam_size=args.beam, lenpen=args.lenpen),
        length_penalty=functools.partial(gnmt_lp, alpha=args.lenpen),
        bos_id=np.flatnonzero(tokens == "<s>")[0],
        pad_id=vocab.index("<pad>"),
        criterion=nn.CrossEntropyLoss(ignore_index=0, label_smoothing=args.label_smoothing),
        lr=args.lr,
        warmup=args.warmup,
    )


MT_CFG = OmegaConf.create({
    "model": {"dim": 32, "layers": 2},
    "optim": {"lr": 1e-3, "label_smoothing": 0.1},
    "search": {"beam": 4, "lenpen": 1.0},
})


def build_rnn_translator(cfg=MT_CFG, plain=False):
    cls = MODELS["rnn_mt_plain" if plain else "rnn_mt"]
    return cls(cfg, vocab_size=len(VOCAB))


# =========================================================================== enhancement

class NoiseType(enum.Enum):
    WHITE = "white"
    BABBLE = "babble"
    STREET = "street"


def _kaiming_conv(m):
    if isinstance(m, nn.Conv1d):
        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")


INITS = {
    "kaiming": _kaiming_conv,
    "xavier_gru": lambda m: [nn.init.xavier_uniform_(p) for n, p in m.named_parameters(recurse=False)
                             if isinstance(m, nn.GRU) and "weight" in n],
    "default": None,
}


@dataclasses.dataclass
class STFTParams:
    n_fft: int = 256
    hop_length: int = 64
    center: bool = True


@dataclasses.dataclass
class EnhancerExperiment:
    model: str = "gru_mask"
    n_fft: int = 256
    hop_length: int = 64
    sample_rate: int = 8000
    hidden: int = 48
    init: str = "xavier_gru"
    snr_low: int = -5
    snr_high: int = 15
    snr_step: int = 5
    data_root: str = "/data/dns_challenge"
    noise_types: tuple = ("white", "babble", "street")
    lr: float = 1e-3


@register("gru_mask")
class LitEnhancer(pl.LightningModule):
    def __init__(
        self,
        n_fft: int = 256,
        hop_length: int = 64,
        window=None,  # truth: hparam
        sample_rate: int = 16000,
        hidden: int = 48,
        noise_types=("white",),
        snr_range=None,  # truth: hparam
        weight_init=None,  # truth: hparam
        data_root=None,  # truth: hparam
        stft: dict = None,
        band_edges: torch.Tensor = None,
        loss: str = "si_sdr",
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        win = torch.hann_window(n_fft) if window is None else torch.as_tensor(window, dtype=torch.float32)
        self.register_buffer("window", win)
        self.rnn = nn.GRU(n_fft // 2 + 1, hidden, batch_first=True)
        self.mask = nn.Linear(hidden, n_fft // 2 + 1)
        if weight_init is not None:
            self.apply(weight_init)
        self.snrs = list(snr_range) if snr_range is not None else [0]

    def forward(self, wav):
        spec = torch.stft(wav, self.hparams.n_fft, self.hparams.hop_length, window=self.window, return_complex=True)
        h, _ = self.rnn(torch.log1p(spec.abs()).transpose(1, 2))
        m = torch.sigmoid(self.mask(h)).transpose(1, 2)
        return torch.istft(spec * m, self.hparams.n_fft, self.hparams.hop_length, window=self.window,
                           length=wav.shape[-1])

    def training_step(self, batch, batch_idx):
        noisy, clean = batch
        est = self(noisy)
        alpha = (est * clean).sum(-1, keepdim=True) / clean.pow(2).sum(-1, keepdim=True).clamp_min(1e-8)
        t = alpha * clean
        loss = -10 * torch.log10(t.pow(2).sum(-1) / (est - t).pow(2).sum(-1).clamp_min(1e-8)).mean()
        self.log("train/neg_sisdr", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def build_enhancer(exp: EnhancerExperiment):
    stft = STFTParams(exp.n_fft, exp.hop_length)
    return MODELS[exp.model](
        n_fft=exp.n_fft,
        hop_length=exp.hop_length,
        window=np.hanning(exp.n_fft + 1)[:-1],
        sample_rate=int(exp.sample_rate),
        hidden=exp.hidden,
        noise_types=tuple(NoiseType(n).value for n in exp.noise_types),
        snr_range=range(exp.snr_low, exp.snr_high + 1, exp.snr_step),
        weight_init=INITS[exp.init],
        data_root=Path(exp.data_root),
        stft=dataclasses.asdict(stft),
        band_edges=torch.linspace(0, exp.sample_rate / 2, 9),
        loss="si_sdr",
        lr=exp.lr,
    )


class LitDenoiserFromArgs(pl.LightningModule):
    """Conv-TasNet-lite: the whole argparse namespace is the hyperparameter set."""

    def __init__(self, args: argparse.Namespace, noise_weights=None):
        super().__init__()
        self.save_hyperparameters(args)
        self.encoder = nn.Conv1d(1, args.filters, args.kernel, stride=args.kernel // 2)
        self.separator = nn.Sequential(nn.Conv1d(args.filters, args.filters, 3, padding=1), nn.PReLU(),
                                       nn.Conv1d(args.filters, args.filters, 1), nn.Sigmoid())
        self.decoder = nn.ConvTranspose1d(args.filters, 1, args.kernel, stride=args.kernel // 2)
        self.register_buffer("noise_weights", torch.as_tensor(noise_weights if noise_weights is not None else [1.0]))

    def forward(self, wav):
        w = self.encoder(wav.unsqueeze(1))
        return self.decoder(w * self.separator(w)).squeeze(1)[..., : wav.shape[-1]]

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class LitDenoiserOpts(pl.LightningModule):
    """Same network as above; written by someone else, who passes the namespace as a named argument."""

    def __init__(
        self,
        opts: argparse.Namespace,  # truth: hparam
        lr: float = 1e-3,
        augment=None,
    ):
        super().__init__()
        self.save_hyperparameters("opts", "lr")
        self.encoder = nn.Conv1d(1, opts.filters, opts.kernel, stride=opts.kernel // 2)
        self.decoder = nn.ConvTranspose1d(opts.filters, 1, opts.kernel, stride=opts.kernel // 2)
        self.augment = None if augment is None else "custom"

    def forward(self, wav):
        return self.decoder(torch.relu(self.encoder(wav.unsqueeze(1)))).squeeze(1)[..., : wav.shape[-1]]

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def denoiser_parser():
    p = argparse.ArgumentParser()
    p.add_argument("--filters", type=int, default=32)
    p.add_argument("--kernel", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--sample-rate", type=int, default=8000)
    p.add_argument("--segment", type=float, default=2.0)
    p.add_argument("--noise-types", nargs="+", default=["white", "babble"])
    p.add_argument("--save-dir", default="runs/denoiser")
    return p


def build_denoiser(argv, style="args"):
    args = denoiser_parser().parse_args(argv)
    if style == "args":
        weights = torch.full((len(args.noise_types),), 1.0 / len(args.noise_types))
        return LitDenoiserFromArgs(args, noise_weights=weights)
    return LitDenoiserOpts(args, lr=args.lr, augment=lambda w: w + 0.01 * torch.randn_like(w))


# =========================================================================== anomaly detection

class ScoreAgg(enum.Enum):
    MAX = "max"
    MEAN_TOP1PCT = "mean_top1pct"


class SmallBackbone(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(width, width, 3, 2, 1), nn.ReLU())
        self.block3 = nn.Sequential(nn.Conv2d(width, width, 3, 2, 1), nn.ReLU())

    def forward(self, x):
        f1 = self.block1(x)
        f2 = self.block2(f1)
        return f2, self.block3(f2)


AD_CFG = OmegaConf.create({
    "data": {"categories": ["bottle", "cable", "screw"], "image_size": 64},
    "model": {"layers": ["block2", "block3"], "width": 16},
    "coreset": {"ratio": 0.01},
    "knn": 9,
    "seed": 42,
    "thresholds": {"bottle": 1.7, "cable": 2.3, "screw": 0.9},
    "score_agg": "max",
})


@register("patchcore")
class LitPatchCore(pl.LightningModule):
    def __init__(
        self,
        backbone: nn.Module,  # truth: hparam
        layers=("block2", "block3"),
        coreset_ratio: float = 0.1,
        k: int = 9,
        categories=None,  # truth: hparam
        thresholds: dict = None,
        image_size: int = 224,
        seed_rng=None,  # truth: hparam
        created: str = "",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = backbone.eval()
        self.categories = list(categories or [])
        self.rng = seed_rng if seed_rng is not None else np.random.default_rng(0)
        self.register_buffer("memory_bank", torch.empty(0, 2 * backbone.block2[0].out_channels))
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        with torch.no_grad():
            f2, f3 = self.backbone(batch[0])
            f3 = F.interpolate(f3, size=f2.shape[-2:], mode="bilinear", align_corners=False)
            patches = torch.cat([f2, f3], 1).permute(0, 2, 3, 1).flatten(0, 2)
        self.memory_bank = torch.cat([self.memory_bank, patches])

    def on_train_epoch_end(self):
        n = len(self.memory_bank)
        keep = self.rng.choice(n, max(1, int(n * self.hparams.coreset_ratio)), replace=False)
        self.memory_bank = self.memory_bank[torch.from_numpy(keep)]

    def configure_optimizers(self):
        return None


def build_patchcore(cfg=AD_CFG):
    return MODELS["patchcore"](
        backbone=SmallBackbone(cfg.model.width),
        layers=tuple(cfg.model.layers),
        coreset_ratio=cfg.coreset.ratio,
        k=cfg.knn,
        categories=cfg.data.categories,
        thresholds=OmegaConf.to_container(cfg.thresholds),
        image_size=cfg.data.image_size,
        seed_rng=np.random.default_rng(cfg.seed),
        created=datetime.datetime.now().isoformat(timespec="minutes"),
    )


class LitStudentTeacher(pl.LightningModule):
    """Uninformed-students style: a frozen teacher, a student regressing its features."""

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module = None,
        score_agg=ScoreAgg.MAX,  # truth: hparam
        pixel_threshold=0.5,  # truth: hparam
        image_threshold: float = 0.5,
        category: str = "bottle",
        norm_mean=(0.485, 0.456, 0.406),
        feature_dtype=torch.float32,
        lr: float = 1e-4,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["teacher", "student"])
        self.teacher = teacher.requires_grad_(False)
        self.student = student or SmallBackbone(teacher.block1[0].out_channels)

    def training_step(self, batch, batch_idx):
        with torch.no_grad():
            _, t = self.teacher(batch[0])
        _, s = self.student(batch[0])
        return F.mse_loss(s, t)

    def configure_optimizers(self):
        return torch.optim.Adam(self.student.parameters(), lr=self.hparams.lr)


def calibrate_thresholds(seed=0):
    rng = np.random.default_rng(seed)
    pixel = rng.gamma(2.0, 0.3, 10_000)
    image = rng.gamma(2.0, 0.6, 200)
    return np.quantile(pixel, 0.995), float(np.quantile(image, 0.99))


def build_student_teacher(cfg=AD_CFG, category="bottle"):
    pix_thr, img_thr = calibrate_thresholds(cfg.seed)
    return LitStudentTeacher(
        teacher=SmallBackbone(cfg.model.width),
        student=SmallBackbone(cfg.model.width),
        score_agg=ScoreAgg(cfg.score_agg),
        pixel_threshold=pix_thr,
        image_threshold=img_thr,
        category=category,
        norm_mean=(0.485, 0.456, 0.406),
        feature_dtype=torch.float16,
        lr=float(cfg.get("lr", 1e-4)),
    )


FACTORIES = {
    "LitTranslator": lambda: build_translator(mt_parser().parse_args(["--beam", "5"])),
    "LitRNNTranslator": lambda: build_rnn_translator(),
    "LitRNNTranslatorPlain": lambda: build_rnn_translator(plain=True),
    "LitEnhancer": lambda: build_enhancer(EnhancerExperiment()),
    "LitDenoiserFromArgs": lambda: build_denoiser(["--filters", "16"]),
    "LitDenoiserOpts": lambda: build_denoiser(["--filters", "16"], style="opts"),
    "LitPatchCore": lambda: build_patchcore(),
    "LitStudentTeacher": lambda: build_student_teacher(category="screw"),
    "NoiseType": lambda: NoiseType.BABBLE,
    "ScoreAgg": lambda: ScoreAgg.MEAN_TOP1PCT,
}
