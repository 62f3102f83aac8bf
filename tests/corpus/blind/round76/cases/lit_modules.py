"""LightningModules and LightningDataModules for the three projects (nowcasting, news recommendation,
histopathology), built the way the training entry point builds them: a YAML config per task,
`build_module(task)` looks the class up in MODULE_REGISTRY and feeds it values computed from the data.
"""
import enum
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

TASK_CONFIGS = {
    "nowcast": """
        model: {hidden: [8, 16], in_frames: 4, out_frames: 3}
        loss: {name: bmse, thresholds: [0.5, 2.0, 5.0], weights: [1.0, 2.0, 5.0, 10.0]}
        optim: {lr: 0.002, weight_decay: 0.0001, warmup_steps: 100}
        data: {root: /data/radolan, batch_size: 4, crop: [64, 64, 320, 320]}
        ensemble: {members: 3, seed: 11}
    """,
    "news": """
        model: {word_dim: 32, heads: 4, attn_hidden: 16, dropout: 0.2}
        data: {title_len: 12, his_len: 20, npratio: 4, batch_size: 32}
        optim: {lr: 0.0001, betas: [0.9, 0.98]}
        eval: {ks: [5, 10], monitor: val/auc}
    """,
    "patch": """
        model: {backbone: tiny_resnet, width: 8}
        data: {classes: [normal, stroma, tumor], cache: /scratch/tiles, max_bag: 512}
        train: {label_smoothing: 0.1, mixup: 0.2, stain_norm: macenko}
        schedule: {name: cosine, t_max: 50, eta_min: 1.0e-6}
        mil: {feature_dim: 16, attn_dim: 8, gated: true, dropout: 0.25}
    """,
}


def task_config(task, overrides=()):
    return OmegaConf.merge(OmegaConf.create(TASK_CONFIGS[task]), OmegaConf.from_dotlist(list(overrides)))


MODULE_REGISTRY = {}


def register(name):
    def deco(cls):
        MODULE_REGISTRY[name] = cls
        return cls
    return deco


class StainNorm(enum.Enum):
    NONE = "none"
    MACENKO = "macenko"
    REINHARD = "reinhard"


def whitespace_tokenize(text):
    return text.lower().split()


def hed_jitter(x, sigma=0.05):
    return x * (1 + sigma * torch.randn(x.shape[0], 3, 1, 1))


# ----------------------------------------------------------------------------- shared base

class BaseLitModule(pl.LightningModule):
    def __init__(self, lr=1e-3, weight_decay=0.0, warmup_steps=0, optimizer="adamw"):
        super().__init__()
        self.save_hyperparameters()

    def configure_optimizers(self):
        opt_cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[self.hparams.optimizer]
        opt = opt_cls(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        warm = max(1, self.hparams.warmup_steps)
        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LinearLR(opt, 0.1, total_iters=warm),
                                 "interval": "step"}}


# ----------------------------------------------------------------------------- nowcasting

class _ConvForecaster(nn.Module):
    def __init__(self, in_frames=4, out_frames=3, hidden=(8, 16)):
        super().__init__()
        chans = [in_frames, *hidden]
        layers = []
        for a, b in zip(chans, chans[1:]):
            layers += [nn.Conv2d(a, b, 3, padding=1), nn.GroupNorm(1, b), nn.SiLU()]
        self.body = nn.Sequential(*layers, nn.Conv2d(chans[-1], out_frames, 1))

    def forward(self, x):
        return torch.sigmoid(self.body(x))


@register("nowcast")
class NowcastLitModule(BaseLitModule):
    def __init__(
        self,
        in_frames: int = 4,
        out_frames: int = 3,
        hidden=(8, 16),
        thresholds=(0.5, 2.0, 5.0),
        loss_weights=None,  # truth: hparam
        zr=None,
        norm_mean=0.0,  # truth: hparam
        norm_std=1.0,
        crop=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        thresholds = sorted(float(t) for t in thresholds)
        crop = np.asarray(crop) if crop is not None else None
        self.net = _ConvForecaster(in_frames, out_frames, tuple(hidden))
        self.register_buffer("thr", torch.tensor(thresholds))

    def forward(self, x):
        return self.net((x - self.hparams.norm_mean) / self.hparams.norm_std)


@register("nowcast_ensemble")
class EnsembleNowcastLitModule(NowcastLitModule):
    def __init__(
        self,
        n_members: int = 3,
        member_seeds=(0, 1, 2),  # truth: hparam
        member_dropout: float = 0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.heads = nn.ModuleList(nn.Conv2d(self.hparams.out_frames, self.hparams.out_frames, 1)
                                   for _ in range(n_members))


class RadarDataModule(pl.LightningDataModule):
    def __init__(self, data_root: str = "/data/radolan", batch_size: int = 4, num_workers: int = 2,
                 in_frames: int = 4, out_frames: int = 3, val_months=("2019-06", "2019-07"), seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.frames = None

    def setup(self, stage=None):
        rng = np.random.default_rng(self.hparams.seed)
        self.frames = rng.gamma(2.0, 5.0, (8, self.hparams.in_frames + self.hparams.out_frames, 32, 32))


def radar_statistics(n=6, size=32, seed=0):
    rng = np.random.default_rng(seed)
    frames = np.clip(rng.normal(18, 9, (n, 7, size, size)), 0, 70).astype(np.float32)
    return frames.mean(), float(frames.std())


def _nowcast_kwargs(cfg):
    mean, std = radar_statistics()
    return dict(
        in_frames=cfg.model.in_frames,
        out_frames=cfg.model.out_frames,
        hidden=tuple(cfg.model.hidden),
        thresholds=list(cfg.loss.thresholds),
        loss_weights=cfg.loss.weights,
        zr={"a": 200.0, "b": 1.6},
        norm_mean=mean,
        norm_std=std,
        crop=tuple(cfg.data.crop),
        lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay,
        warmup_steps=cfg.optim.warmup_steps,
    )


# ----------------------------------------------------------------------------- news recommendation

class _AdditivePool(nn.Module):
    def __init__(self, dim=32, hidden=16):
        super().__init__()
        self.att = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1, bias=False))

    def forward(self, x):
        return (self.att(x).softmax(-2) * x).sum(-2)


@register("nrms")
class NRMSLitModule(pl.LightningModule):
    def __init__(
        self,
        pretrained_embeddings: torch.Tensor,
        user_encoder: nn.Module,
        category_vocab: dict,  # truth: hparam
        num_heads: int = 4,
        attn_hidden: int = 16,
        title_len: int = 12,
        his_len: int = 20,
        npratio: int = 4,
        dropout: float = 0.2,
        optimizer_factory=None,  # truth: hparam
        loss_fn=nn.CrossEntropyLoss(),  # truth: hparam
        metric_ks=(5, 10),
        monitor: str = "val/auc",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["user_encoder"])
        dim = pretrained_embeddings.shape[1]
        self.embed = nn.Embedding.from_pretrained(pretrained_embeddings, freeze=False, padding_idx=0)
        self.cat_embed = nn.Embedding(len(category_vocab) + 1, dim)
        self.mha = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.pool = _AdditivePool(dim, attn_hidden)
        self.user_encoder = user_encoder
        self.loss_fn = loss_fn

    def configure_optimizers(self):
        factory = self.hparams.optimizer_factory or partial(torch.optim.Adam, lr=1e-4)
        return factory(self.parameters())


class _UserAttention(nn.Module):
    def __init__(self, dim=32, heads=4):
        super().__init__()
        self.mha = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.pool = _AdditivePool(dim, 16)

    def forward(self, h):
        return self.pool(self.mha(h, h, h)[0])


@register("ctr")
class ClickPredictorLitModule(pl.LightningModule):
    """A logistic-regression-style CTR baseline; its whole config dict is the hyperparameters."""

    def __init__(self, config: dict):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(config)
        self.user_bias = nn.Embedding(config["num_users"] + 1, 1)
        self.news_bias = nn.Embedding(config["num_news"] + 1, 1)
        self.prior = nn.Parameter(torch.tensor([float(np.log(config["ctr_prior"] / (1 - config["ctr_prior"])))]))

    def forward(self, users, news):
        return (self.user_bias(users) + self.news_bias(news)).squeeze(-1) + self.prior


@register("popularity")
class PopularityLitModule(pl.LightningModule):
    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters(config)
        self.scores = nn.Parameter(torch.zeros(config["num_news"] + 1))


class NewsDataModule(pl.LightningDataModule):
    def __init__(self, news_path: str = "MINDsmall_train/news.tsv",
                 behaviors_path: str = "MINDsmall_train/behaviors.tsv", batch_size: int = 32,
                 npratio: int = 4, his_len: int = 20, title_len: int = 12, tokenizer=whitespace_tokenize):
        super().__init__()
        self.save_hyperparameters(ignore=["tokenizer"])
        self.tokenizer = tokenizer


def mind_tables(seed=0, n_news=40, n_users=12, n_impr=60):
    rng = np.random.default_rng(seed)
    cats = ["news", "sports", "finance", "lifestyle", "autos"]
    news = pd.DataFrame({"news_id": [f"N{100 + i}" for i in range(n_news)],
                         "category": rng.choice(cats, n_news)})
    clicks = pd.DataFrame({"user_id": rng.integers(0, n_users, n_impr),
                           "news_id": rng.choice(news.news_id, n_impr),
                           "clicked": (rng.random(n_impr) < 0.2).astype(int)})
    return news, clicks


def _news_kwargs(cfg):
    news, clicks = mind_tables()
    cats = sorted(news.category.unique())
    emb = torch.randn(50, cfg.model.word_dim) * 0.1
    return dict(
        pretrained_embeddings=emb,
        user_encoder=_UserAttention(cfg.model.word_dim, cfg.model.heads),
        category_vocab=dict(zip(cats, np.arange(1, len(cats) + 1))),
        num_heads=cfg.model.heads,
        attn_hidden=cfg.model.attn_hidden,
        title_len=cfg.data.title_len,
        his_len=cfg.data.his_len,
        npratio=cfg.data.npratio,
        dropout=cfg.model.dropout,
        optimizer_factory=partial(torch.optim.AdamW, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas)),
        metric_ks=tuple(cfg.eval.ks),
        monitor=cfg.eval.monitor,
    )


def ctr_config():
    news, clicks = mind_tables()
    return {
        "num_users": int(clicks.user_id.max()) + 1,
        "num_news": len(news),
        "ctr_prior": clicks.clicked.mean(),
        "l2": 1e-4,
    }


def popularity_config():
    news, clicks = mind_tables()
    per_news = clicks.groupby("news_id").clicked.sum()
    return {
        "num_news": len(news),
        "top_news": per_news.nlargest(5).index.tolist(),
        "ctr_prior": float(clicks.clicked.mean()),
        "half_life_h": 24.0,
    }


# ----------------------------------------------------------------------------- histopathology

class _TinyBackbone(nn.Module):
    def __init__(self, num_classes=3, width=8):
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.f(x))


@register("patch")
class PatchClassifierLitModule(pl.LightningModule):
    def __init__(
        self,
        backbone: str = "tiny_resnet",
        num_classes: int = 3,
        class_weights=None,
        classes=("normal", "stroma", "tumor"),
        label_smoothing: float = 0.0,
        mixup_alpha: float = 0.0,
        stain_norm=StainNorm.NONE,  # truth: hparam
        stain_matrix=None,  # truth: hparam
        lr_schedule=None,  # truth: hparam
        tile_filter=None,  # truth: hparam
    ):
        super().__init__()
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
        self.save_hyperparameters()
        self.model = _TinyBackbone(num_classes)
        self.register_buffer("cw", class_weights if class_weights is not None else torch.ones(num_classes))


@register("tile_simclr")
class TileEmbedderLitModule(pl.LightningModule):
    def __init__(self, encoder: nn.Module = None, projection_dim: int = 16, temperature: float = 0.1,
                 augment_fn=partial(hed_jitter, sigma=0.05), lr: float = 3e-4):
        super().__init__()
        self.save_hyperparameters("projection_dim", "temperature", "lr")
        self.encoder = encoder or _TinyBackbone(num_classes=projection_dim)
        self.augment_fn = augment_fn


@register("slide_mil")
class SlideMILLitModule(pl.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.attn = nn.Sequential(nn.Linear(cfg.mil.feature_dim, cfg.mil.attn_dim), nn.Tanh(),
                                  nn.Linear(cfg.mil.attn_dim, 1))
        self.head = nn.Linear(cfg.mil.feature_dim, 2)


@register("slide_mil_plain")
class PlainConfigMILLitModule(pl.LightningModule):
    def __init__(self, cfg: dict):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.head = nn.Linear(cfg["mil"]["feature_dim"], 2)


@register("attention_mil")
class AttentionMILLitModule(pl.LightningModule):
    def __init__(
        self,
        feature_dim: int = 16,
        n_slides: int = 0,
        max_bag=512,  # truth: hparam
        attn_dim: int = 8,
        gated: bool = True,
        dropout: float = 0.25,
        cache_dir=None,  # truth: hparam
        positive_label: str = "tumor",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.V = nn.Linear(feature_dim, attn_dim)
        self.U = nn.Linear(feature_dim, attn_dim) if gated else None
        self.w = nn.Linear(attn_dim, 1)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, 1))


class PatchDataModule(pl.LightningDataModule):
    def __init__(self, tile_root: str = "/scratch/tiles", patch_size: int = 224, batch_size: int = 64,
                 train_slides=(), val_slides=(), magnification: int = 20):
        super().__init__()
        self.save_hyperparameters()


def tile_table(seed=0):
    rng = np.random.default_rng(seed)
    slides = [f"{lab}_{i:03d}" for i, lab in enumerate(["normal", "stroma", "tumor"] * 3)]
    df = pd.DataFrame({"slide_id": rng.choice(slides, 90), "label": rng.choice(["normal", "stroma", "tumor"], 90)})
    feats = rng.normal(size=(len(df), 16)).astype(np.float32)
    return df, feats


def _patch_kwargs(cfg):
    df, _ = tile_table()
    le = LabelEncoder().fit(list(cfg.data.classes))
    y = le.transform(df.label)
    he = np.array([[0.65, 0.07], [0.70, 0.99], [0.29, 0.11]])
    return dict(
        backbone=cfg.model.backbone,
        num_classes=len(le.classes_),
        class_weights=compute_class_weight("balanced", classes=np.arange(len(le.classes_)), y=y),
        classes=le.classes_.tolist(),
        label_smoothing=cfg.train.label_smoothing,
        mixup_alpha=cfg.train.mixup,
        stain_norm=StainNorm(cfg.train.stain_norm),
        stain_matrix=he,
        lr_schedule=cfg.schedule,
        tile_filter=lambda row: row["tissue"] > 0.5,
    )


def _mil_kwargs(cfg):
    df, feats = tile_table()
    return dict(
        feature_dim=feats.shape[1],
        n_slides=df.slide_id.nunique(),
        max_bag=df.groupby("slide_id").size().max(),
        attn_dim=cfg.mil.attn_dim,
        gated=cfg.mil.gated,
        dropout=cfg.mil.dropout,
        cache_dir=Path(cfg.data.cache) / "features",
        positive_label=cfg.data.classes[-1],
    )


# ----------------------------------------------------------------------------- builders

def build_module(name):
    if name in ("nowcast", "nowcast_ensemble"):
        cfg = task_config("nowcast")
        kwargs = _nowcast_kwargs(cfg)
        if name == "nowcast_ensemble":
            rng = np.random.default_rng(cfg.ensemble.seed)
            kwargs.update(n_members=cfg.ensemble.members,
                          member_seeds=list(rng.integers(0, 2**31 - 1, cfg.ensemble.members)))
    elif name == "nrms":
        kwargs = _news_kwargs(task_config("news"))
    elif name == "ctr":
        kwargs = {"config": ctr_config()}
    elif name == "popularity":
        kwargs = {"config": popularity_config()}
    elif name == "patch":
        kwargs = _patch_kwargs(task_config("patch"))
    elif name == "tile_simclr":
        kwargs = {"projection_dim": 16, "temperature": 0.2}
    elif name == "slide_mil":
        kwargs = {"cfg": task_config("patch", ["mil.attn_dim=4"])}
    elif name == "slide_mil_plain":
        kwargs = {"cfg": OmegaConf.to_container(task_config("patch"), resolve=True)}
    elif name == "attention_mil":
        kwargs = _mil_kwargs(task_config("patch"))
    else:
        raise KeyError(name)
    return MODULE_REGISTRY[name](**kwargs)


def build_datamodule(task):
    if task == "nowcast":
        cfg = task_config("nowcast")
        return RadarDataModule(data_root=str(Path(cfg.data.root)), batch_size=cfg.data.batch_size,
                               in_frames=cfg.model.in_frames, out_frames=cfg.model.out_frames)
    if task == "news":
        cfg = task_config("news")
        return NewsDataModule(batch_size=cfg.data.batch_size, npratio=cfg.data.npratio,
                              his_len=cfg.data.his_len, title_len=cfg.data.title_len)
    cfg = task_config("patch")
    df, _ = tile_table()
    slides = sorted(df.slide_id.unique())
    return PatchDataModule(tile_root=cfg.data.cache, train_slides=slides[:6], val_slides=slides[6:])


FACTORIES = {
    "NowcastLitModule": lambda: build_module("nowcast"),
    "EnsembleNowcastLitModule": lambda: build_module("nowcast_ensemble"),
    "NRMSLitModule": lambda: build_module("nrms"),
    "ClickPredictorLitModule": lambda: build_module("ctr"),
    "PopularityLitModule": lambda: build_module("popularity"),
    "PatchClassifierLitModule": lambda: build_module("patch"),
    "TileEmbedderLitModule": lambda: build_module("tile_simclr"),
    "SlideMILLitModule": lambda: build_module("slide_mil"),
    "PlainConfigMILLitModule": lambda: build_module("slide_mil_plain"),
    "AttentionMILLitModule": lambda: build_module("attention_mil"),
    "RadarDataModule": lambda: build_datamodule("nowcast"),
    "NewsDataModule": lambda: build_datamodule("news"),
    "PatchDataModule": lambda: build_datamodule("patch"),
    "StainNorm": lambda: StainNorm("macenko"),
}
