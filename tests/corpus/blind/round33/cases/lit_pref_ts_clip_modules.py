"""LightningModules for the three projects (preference tuning, HAR/ECG windows, CLIP retrieval).

Every module is created through a builder below (argparse for the RLHF jobs, a dataclass for
HAR, a registry for ECG, OmegaConf for CLIP) so that the sweep launcher only passes configs.
"""
import argparse
import dataclasses
import enum
import functools
import re
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from scipy import signal
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight

VOCAB = 64
ACTIVITIES = ["walking", "upstairs", "downstairs", "sitting", "standing", "laying"]


# ----------------------------------------------------------------------------- small nets

class GRUEncoder(nn.Module):
    def __init__(self, vocab=VOCAB, hidden=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden, padding_idx=0)
        self.rnn = nn.GRU(hidden, hidden, batch_first=True)

    def forward(self, ids):
        _, h = self.rnn(self.embed(ids))
        return h[-1]


class ConvBackbone1D(nn.Module):
    def __init__(self, in_ch=3, width=16):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(in_ch, width, 7, padding=3), nn.ReLU(),
                                 nn.AdaptiveAvgPool1d(1), nn.Flatten())

    def forward(self, x):
        return self.net(x)


class PatchImageEncoder(nn.Module):
    def __init__(self, dim=32, patch=8):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).mean(-1)


class BagTextEncoder(nn.Module):
    def __init__(self, vocab=VOCAB, dim=32):
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab, dim, mode="mean", padding_idx=0)

    def forward(self, tokens):
        return self.bag(tokens)


class WordTokenizer:
    def __init__(self, words=("a", "photo", "of", "red", "blue", "circle", "square"), max_len=12):
        self.stoi = {"<pad>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate(words)}}
        self.max_len = max_len

    def __call__(self, texts):
        out = torch.zeros(len(texts), self.max_len, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = [self.stoi.get(w, 1) for w in re.findall(r"[a-z]+", t.lower())][: self.max_len]
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out


class PrefLoss(enum.Enum):
    SIGMOID = "sigmoid"
    HINGE = "hinge"
    IPO = "ipo"


# ----------------------------------------------------------------------------- preference tuning

def reward_args(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--margin", type=float, default=0.0)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--loss", default="sigmoid", choices=[m.value for m in PrefLoss])
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--out-dir", type=Path, default=Path("runs/rm"))
    return p.parse_args([] if argv is None else argv)


class LitRewardModel(pl.LightningModule):
    """Bradley-Terry reward model: loss = -log sigmoid(r_chosen - r_rejected - margin)."""

    def __init__(
        self,
        backbone,  # truth: hparam
        hidden=16,
        lr=1e-4,
        margin=0.0,
        head_init=None,  # truth: hparam
        out_dir="runs/rm",
        warmup_steps=100,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = backbone
        self.head = nn.Linear(hidden, 1)
        if head_init is not None:
            head_init(self.head.weight)

    def forward(self, ids):
        return self.head(self.backbone(ids)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        r_c, r_r = self(batch["chosen"]), self(batch["rejected"])
        loss = -F.logsigmoid(r_c - r_r - self.hparams.margin).mean()
        self.log_dict({"train/loss": loss, "train/acc": (r_c > r_r).float().mean()})
        return loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        warm = torch.optim.lr_scheduler.LinearLR(opt, 0.1, 1.0, total_iters=self.hparams.warmup_steps)
        return [opt], [{"scheduler": warm, "interval": "step"}]


def build_reward_module(args):
    return LitRewardModel(
        GRUEncoder(hidden=args.hidden),
        hidden=args.hidden,
        lr=args.lr,
        margin=args.margin,
        head_init=functools.partial(nn.init.normal_, std=0.02),
        out_dir=str(args.out_dir),
        warmup_steps=args.warmup,
    )


class LitRewardFromArgs(pl.LightningModule):
    """Older variant the sweep scripts still use: the whole Namespace goes in."""

    def __init__(self, args):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(args)
        self.backbone = GRUEncoder(hidden=args.hidden)
        self.head = nn.Linear(args.hidden, 1)

    def forward(self, ids):
        return self.head(self.backbone(ids)).squeeze(-1)


class LitDPOPolicy(pl.LightningModule):
    def __init__(
        self,
        policy,
        reference,
        beta=0.1,
        loss_type=PrefLoss.SIGMOID,  # truth: hparam
        label_smoothing=0.0,
        lr=5e-6,
        reference_free=False,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["policy", "reference"])
        self.policy = policy
        self.reference = reference.requires_grad_(False)

    def training_step(self, batch, batch_idx):
        pi = self.policy(batch["chosen"]) - self.policy(batch["rejected"])
        with torch.no_grad():
            ref = self.reference(batch["chosen"]) - self.reference(batch["rejected"])
        logits = pi - (0 if self.hparams.reference_free else ref)
        if self.hparams.loss_type is PrefLoss.IPO:
            return ((logits - 1 / (2 * self.hparams.beta)) ** 2).mean()
        return -F.logsigmoid(self.hparams.beta * logits).mean()


class LitOnlineDPO(pl.LightningModule):
    """Online DPO with a KL controller and reward whitening; only scalars go to hparams."""

    def __init__(self, policy, beta=0.1, lr=1e-5, loss_name="sigmoid", kl_controller=None, reward_stats=None):
        super().__init__()
        self.save_hyperparameters("beta", "lr", "loss_name")
        self.policy = policy
        self.kl_coef = 0.05 if kl_controller is None else float(kl_controller["init"])
        self.reward_mean, self.reward_std = (0.0, 1.0) if reward_stats is None else map(float, reward_stats)


def build_dpo_modules(args):
    policy = GRUEncoder(hidden=args.hidden)
    reference = GRUEncoder(hidden=args.hidden)
    reference.load_state_dict(policy.state_dict())
    rewards = np.random.default_rng(0).normal(0.3, 1.2, 256)
    offline = LitDPOPolicy(policy, reference, beta=args.beta, loss_type=PrefLoss(args.loss), lr=args.lr)
    online = LitOnlineDPO(policy, beta=args.beta, lr=args.lr, loss_name=PrefLoss(args.loss).value,
                          kl_controller={"init": np.float64(0.05), "target": 6.0},
                          reward_stats=(rewards.mean(), rewards.std()))
    return offline, online


class LitPreferenceRM(pl.LightningModule):
    """Hydra-launched reward model: the composed config goes straight into the checkpoint."""

    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.backbone = GRUEncoder(hidden=cfg.model.hidden)
        self.head = nn.Linear(cfg.model.hidden, 1)


class LitPreferenceRMPlain(pl.LightningModule):
    def __init__(self, cfg):
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg, resolve=True))
        self.backbone = GRUEncoder(hidden=cfg.model.hidden)
        self.head = nn.Linear(cfg.model.hidden, 1)


RM_CFG = OmegaConf.create({"model": {"hidden": 16, "dropout": 0.1},
                           "optim": {"lr": 3e-5, "betas": [0.9, 0.95]},
                           "data": {"max_len": 64, "pairs_per_prompt": 4}})


# ----------------------------------------------------------------------------- HAR / ECG

@dataclasses.dataclass
class HARConfig:
    n_channels: int = 3
    n_classes: int = 6
    width: int = 16
    lr: float = 3e-3
    label_smoothing: float = 0.05


class LitHARClassifier(pl.LightningModule):
    def __init__(
        self,
        config,  # truth: hparam
        class_weights=None,  # truth: hparam
        class_names=None,
        channel_mean=None,
        channel_std=None,
        optimizer_cls=torch.optim.AdamW,  # truth: hparam
        sample_rate=50.0,
        n_train_windows=0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = ConvBackbone1D(config.n_channels, config.width)
        self.classifier = nn.Linear(config.width, config.n_classes)
        self.register_buffer("w", torch.as_tensor(class_weights, dtype=torch.float32))

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.classifier(self.backbone(x))
        return F.cross_entropy(logits, y, weight=self.w, label_smoothing=self.hparams.config.label_smoothing)

    def configure_optimizers(self):
        return self.hparams.optimizer_cls(self.parameters(), lr=self.hparams.config.lr)


class LitHARFlat(pl.LightningModule):
    def __init__(self, n_channels=3, n_classes=6, width=16, lr=3e-3, label_smoothing=0.05):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = ConvBackbone1D(n_channels, width)
        self.classifier = nn.Linear(width, n_classes)


def har_frame(seed=0, n=3000):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "t": np.arange(n) / 50.0,
        "acc_x": rng.normal(size=n), "acc_y": rng.normal(size=n), "acc_z": rng.normal(1.0, 0.2, n),
        "activity": np.repeat(rng.choice(ACTIVITIES, n // 250), 250),
    })


def build_har_module(df, flat=False):
    cfg = HARConfig()
    if flat:
        return LitHARFlat(**dataclasses.asdict(cfg))
    le = LabelEncoder().fit(df["activity"])
    y = le.transform(df["activity"])
    xyz = df[["acc_x", "acc_y", "acc_z"]]
    return LitHARClassifier(
        config=dataclasses.replace(cfg, n_classes=len(le.classes_)),
        class_weights=compute_class_weight("balanced", classes=np.unique(y), y=y),
        class_names=le.classes_.tolist(),
        channel_mean=torch.tensor(xyz.mean().to_numpy(), dtype=torch.float32),
        channel_std=torch.from_numpy(xyz.std().to_numpy()),
        sample_rate=float(1.0 / np.median(np.diff(df["t"].to_numpy()))),
        n_train_windows=len(df) // 64,
    )


ECG_MODELS = {}


def register(name):
    def deco(cls):
        ECG_MODELS[name] = cls
        return cls
    return deco


@register("beatnet")
class LitBeatNet(pl.LightningModule):
    def __init__(
        self,
        n_leads=1,
        n_classes=4,
        fs=360,
        window=(90, 110),
        bandpass=None,  # truth: hparam
        rr_stats=None,  # truth: hparam
        peak_fn=None,  # truth: hparam
        label_map=None,
        beat_labels=("N", "S", "V", "F"),
    ):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = ConvBackbone1D(n_leads, 16)
        self.classifier = nn.Linear(16 + 2, n_classes)


@register("beat_mlp")
class LitBeatMLP(pl.LightningModule):
    def __init__(self, n_leads=1, n_classes=4, fs=360, window=(90, 110), bandpass_hz=(0.5, 40.0),
                 rr_mean=0.8, rr_std=0.1, label_map=None):
        super().__init__()
        self.save_hyperparameters()
        self.mlp = nn.Sequential(nn.Linear(sum(window) * n_leads + 2, 64), nn.ReLU(), nn.Linear(64, n_classes))


def build_ecg_model(name, fs=360, seed=0):
    rng = np.random.default_rng(seed)
    rr = np.diff(np.sort(rng.integers(0, 20 * fs, 40))) / fs
    labels = ["N", "S", "V", "F"]
    if name == "beatnet":
        kwargs = dict(
            bandpass=signal.butter(3, [0.5, 40.0], btype="band", fs=fs),
            rr_stats=(rr.mean(), rr.std()),
            peak_fn=signal.find_peaks,
        )
    else:
        kwargs = dict(bandpass_hz=(0.5, 40.0), rr_mean=float(rr.mean()), rr_std=rr.std().item())
    return ECG_MODELS[name](fs=fs, label_map={b: i for i, b in enumerate(labels)}, **kwargs)


# ----------------------------------------------------------------------------- CLIP

class LitCLIP(pl.LightningModule):
    def __init__(
        self,
        image_encoder,
        text_encoder,
        embed_dim=32,
        init_logit_scale=np.log(1 / 0.07),  # truth: hparam
        max_logit_scale=100.0,
        tokenizer=None,  # truth: hparam
        caption_filter=None,  # truth: hparam
        vocab_size=VOCAB,
        lr=5e-4,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["image_encoder", "text_encoder"])
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))

    def training_step(self, batch, batch_idx):
        img = F.normalize(self.image_encoder(batch["image"]), dim=-1)
        txt = F.normalize(self.text_encoder(batch["tokens"]), dim=-1)
        logits = self.logit_scale.exp().clamp(max=self.hparams.max_logit_scale) * img @ txt.t()
        labels = torch.arange(img.size(0), device=img.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def build_clip(embed_dim=32, min_caption_words=3):
    tok = WordTokenizer()
    return LitCLIP(
        PatchImageEncoder(embed_dim),
        BagTextEncoder(len(tok.stoi), embed_dim),
        embed_dim=embed_dim,
        tokenizer=tok,
        caption_filter=lambda c: len(c.split()) >= min_caption_words,
        vocab_size=len(tok.stoi),
    )


class LitCLIPFromConfig(pl.LightningModule):
    def __init__(
        self,
        embed_dim=32,
        image_size=32,
        image_mean=(0.481, 0.458, 0.408),  # truth: hparam
        image_std=(0.269, 0.261, 0.276),
        temperature=0.07,
        vocab_size=VOCAB,
        precision="fp32",
        recall_ks=(1, 5, 10),
    ):
        super().__init__()
        self.save_hyperparameters()
        self.image_encoder = PatchImageEncoder(embed_dim)
        self.text_encoder = BagTextEncoder(vocab_size, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(np.log(1 / temperature), dtype=torch.float32))
        self.register_buffer("mean", torch.tensor(list(image_mean)).view(1, 3, 1, 1))


CLIP_CFG = OmegaConf.create({
    "model": {"embed_dim": 32, "temperature": 0.07},
    "data": {"image_size": 32, "mean": [0.481, 0.458, 0.408], "std": [0.269, 0.261, 0.276]},
    "eval": {"recall_ks": [1, 5, 10]},
    "train": {"precision": "bf16-mixed"},
})


def build_clip_from_cfg(cfg):
    return LitCLIPFromConfig(
        embed_dim=cfg.model.embed_dim,
        image_size=cfg.data.image_size,
        image_mean=cfg.data.mean,
        image_std=list(cfg.data.std),
        temperature=cfg.model.temperature,
        vocab_size=len(WordTokenizer().stoi),
        precision=cfg.train.precision,
        recall_ks=tuple(cfg.eval.recall_ks),
    )


FACTORIES = {
    "PrefLoss": lambda: PrefLoss.IPO,
    "LitRewardModel": lambda: build_reward_module(reward_args()),
    "LitRewardFromArgs": lambda: LitRewardFromArgs(reward_args(["--hidden", "8"])),
    "LitDPOPolicy": lambda: build_dpo_modules(reward_args(["--loss", "ipo"]))[0],
    "LitOnlineDPO": lambda: build_dpo_modules(reward_args(["--loss", "ipo"]))[1],
    "LitPreferenceRM": lambda: LitPreferenceRM(RM_CFG),
    "LitPreferenceRMPlain": lambda: LitPreferenceRMPlain(RM_CFG),
    "LitHARClassifier": lambda: build_har_module(har_frame()),
    "LitHARFlat": lambda: build_har_module(har_frame(), flat=True),
    "LitBeatNet": lambda: build_ecg_model("beatnet"),
    "LitBeatMLP": lambda: build_ecg_model("beat_mlp"),
    "LitCLIP": lambda: build_clip(),
    "LitCLIPFromConfig": lambda: build_clip_from_cfg(CLIP_CFG),
}
