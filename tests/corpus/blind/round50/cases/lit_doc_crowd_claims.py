"""LightningModules and DataModules for the three model families of the platform:
document VQA (extractive and generative), crowd counting (CSRNet, DM-Count) and claim severity
(entity embeddings, Tweedie GLM, quantile heads).

Everything is built from one OmegaConf config through the registries and `build_*` helpers below,
the way `train.py` does it: `module = BUILDERS[cfg.task](cfg, data_stats)`.
"""
import functools
import math

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, TensorDataset

CONFIG = OmegaConf.create("""
docvqa:
  hidden_dim: 32
  num_layers: 1
  num_heads: 2
  max_seq_len: 64
  lr: 3.0e-4
  weight_decay: 0.01
  total_steps: 200
  warmup_pct: 0.1
  max_answer_len: 8
  stop_words: [the, a, an, of, is, what, which]
  gen: {decoder_layers: 1, beam_size: 3, label_smoothing: 0.1, max_target_len: 16, lr: 1.0e-4}
crowd:
  crop_size: [30, 30]
  downsample: 4
  loss: mse_sum
  lr: 1.0e-5
  count_scale: 100.0
  ot: {cost: l2, reg: 10.0, num_iter: 50, wtv_weight: 0.01}
  kernel_size: 7
  kernel_sigma: 1.5
claims:
  hidden_sizes: [64, 32]
  dropout: [0.1, 0.05]
  activation: silu
  loss: fair
  fair_c: 0.7
  lr: 3.0e-3
  tweedie_power: 1.5
  quantiles: [0.5, 0.9, 0.99]
""")

# ----------------------------------------------------------------------------- registries

LOSSES = {}
ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}


def register_loss(name):
    def deco(fn):
        LOSSES[name] = fn
        return fn
    return deco


@register_loss("mse_sum")
def _mse_sum(**_):
    return nn.MSELoss(reduction="sum")


@register_loss("bayesian")
def _bayesian(sigma=8.0, **_):
    return nn.SmoothL1Loss(beta=sigma)


def build_loss(name, **kwargs):
    return LOSSES[name](**kwargs)


def make_cost(kind="l2", scale=1.0):
    """Transport cost between predicted pixel centres and annotated heads."""
    p = 2 if kind == "l2" else 1

    def cost(a, b):
        return torch.cdist(a / scale, b / scale, p=p) ** p
    return cost


def gaussian_kernel(size, sigma):
    ax = np.arange(size) - (size - 1) / 2
    g = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma ** 2))
    return (g / g.sum()).astype(np.float32)


class VocabTokenizer:
    def __init__(self, vocab=None, unk="[UNK]"):
        self.vocab = dict(vocab or {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3})
        self.unk = unk

    def __len__(self):
        return len(self.vocab)


# ----------------------------------------------------------------------------- document VQA

class LayoutQAModule(pl.LightningModule):
    def __init__(
        self,
        vocab_size: int,
        hidden_dim: int = 32,
        num_layers: int = 1,
        num_heads: int = 2,
        max_seq_len: int = 64,
        bbox_buckets: int = 1001,
        page_size=(1000, 1000),  # truth: hparam
        stop_words=frozenset(),  # truth: hparam
        tokenizer=None,
        lr: float = 3e-4,
        weight_decay: float = 0.01,
        max_answer_len: int = 8,
        lr_schedule=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["tokenizer"])
        self.tokenizer = tokenizer
        self.tok = nn.Embedding(vocab_size, hidden_dim)
        self.bbox = nn.Embedding(bbox_buckets, hidden_dim)
        layer = nn.TransformerEncoderLayer(hidden_dim, num_heads, 2 * hidden_dim, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.head = nn.Linear(hidden_dim, 2)

    def forward(self, ids, boxes):
        h = self.encoder(self.tok(ids) + self.bbox(boxes).sum(dim=2))
        return self.head(h).unbind(-1)

    def training_step(self, batch, batch_idx):
        ids, boxes, start, end = batch
        s, e = self(ids, boxes)
        loss = (F.cross_entropy(s, start) + F.cross_entropy(e, end)) / 2
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if self.hparams.lr_schedule is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.hparams.lr_schedule(opt), "interval": "step"}}


class GenerativeVQAModule(pl.LightningModule):
    """Donut-style: encode page tokens, decode the answer string token by token."""

    def __init__(self, cfg, tokenizer=None):  # truth: hparam[cfg]
        super().__init__()
        self.save_hyperparameters(cfg)
        self.tokenizer = tokenizer or VocabTokenizer()
        vocab = len(self.tokenizer)
        self.embed = nn.Embedding(vocab, 32)
        self.decoder = nn.GRU(32, 32, num_layers=cfg.decoder_layers, batch_first=True)
        self.lm_head = nn.Linear(32, vocab)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def build_layout_qa(cfg, page_sizes, tokenizer):
    c = cfg.docvqa
    schedule = functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=c.lr,
                                 total_steps=c.total_steps, pct_start=c.warmup_pct)
    return LayoutQAModule(
        vocab_size=len(tokenizer),
        hidden_dim=c.hidden_dim,
        num_layers=c.num_layers,
        num_heads=c.num_heads,
        max_seq_len=c.max_seq_len,
        page_size=tuple(np.max(page_sizes, axis=0)),
        stop_words=frozenset(c.stop_words),
        tokenizer=tokenizer,
        lr=c.lr,
        weight_decay=c.weight_decay,
        max_answer_len=c.max_answer_len,
        lr_schedule=schedule,
    )


def build_generative_vqa(cfg):
    gen_cfg = OmegaConf.merge(cfg.docvqa.gen, {"hidden_dim": cfg.docvqa.hidden_dim})
    return GenerativeVQAModule(gen_cfg, tokenizer=VocabTokenizer())


# ----------------------------------------------------------------------------- crowd counting

class CountingBase(pl.LightningModule):
    """Shared count metrics; subclasses define forward() and the loss."""

    def count_metrics(self, pred_density, points):
        pred = pred_density.flatten(1).sum(1) / self.hparams.get("count_scale", 1.0)
        gt = torch.tensor([len(p) for p in points], dtype=pred.dtype)
        return {"mae": (pred - gt).abs().mean(), "mse": ((pred - gt) ** 2).mean().sqrt()}

    def validation_step(self, batch, batch_idx):
        images, _, points = batch
        for name, value in self.count_metrics(self(images), points).items():
            self.log(f"val/{name}", value, prog_bar=name == "mae")


class CSRNetModule(CountingBase):
    def __init__(
        self,
        frontend: nn.Module,
        crop_size=(32, 32),
        downsample: int = 4,
        loss_fn=None,  # truth: hparam
        density_sigma: float = 4.0,  # truth: hparam
        count_scale: float = 100.0,
        lr: float = 1e-5,
        mean_std=((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        count_weights=None,
    ):
        super().__init__()
        crop_size = tuple(int(v) for v in crop_size)
        self.save_hyperparameters(ignore=["frontend"])
        self.frontend = frontend
        self.backend = nn.Sequential(nn.Conv2d(8, 8, 3, padding=2, dilation=2), nn.ReLU(), nn.Conv2d(8, 1, 1))
        self.loss_fn = loss_fn or nn.MSELoss(reduction="sum")

    def forward(self, x):
        return F.relu(self.backend(self.frontend(x)))

    def training_step(self, batch, batch_idx):
        images, density, _ = batch
        loss = self.loss_fn(self(images), density * self.hparams.count_scale)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.95)


class DMCountModule(CountingBase):
    """DM-Count: optimal-transport loss between predicted density and the annotated heads."""

    def __init__(
        self,
        crop_size=(32, 32),  # truth: hparam
        downsample: int = 4,
        cost_fn=None,  # truth: hparam
        ot_reg: float = 10.0,
        ot_iters: int = 50,
        wtv_weight: float = 0.01,
        kernel=None,  # truth: hparam
        scales=(1.0,),
        norm_coords: bool = True,
        lr: float = 1e-5,
    ):
        super().__init__()
        crop_size = tuple(np.asarray(crop_size) // downsample * downsample)
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(downsample),
                                 nn.Conv2d(8, 1, 1))
        k = np.ones((3, 3), np.float32) / 9 if kernel is None else kernel
        self.register_buffer("smooth", torch.from_numpy(k)[None, None])

    def forward(self, x):
        d = F.relu(self.net(x))
        return F.conv2d(d, self.smooth, padding=self.smooth.shape[-1] // 2)

    def ot_loss(self, density, points):
        h, w = density.shape[-2:]
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        centres = torch.stack([xs, ys], -1).flatten(0, 1).float() * self.hparams.downsample
        cost = self.hparams.cost_fn(centres, points)
        return (density.flatten()[:, None] * cost).sum() / (cost.numel() * self.hparams.ot_reg)

    def training_step(self, batch, batch_idx):
        images, _, points = batch
        density = self(images)
        loss = sum(self.ot_loss(d, p) for d, p in zip(density, points))
        return loss + self.hparams.wtv_weight * density.abs().sum()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def build_csrnet(cfg, sigmas):
    c = cfg.crowd
    frontend = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(c.downsample))
    return CSRNetModule(
        frontend=frontend,
        crop_size=c.crop_size,
        downsample=c.downsample,
        loss_fn=build_loss(c.loss),
        density_sigma=np.median(sigmas),
        count_scale=c.count_scale,
        lr=c.lr,
        count_weights=torch.tensor([1.0, 2.0, 4.0]),
    )


def build_dmcount(cfg):
    c = cfg.crowd
    return DMCountModule(
        crop_size=list(c.crop_size),
        downsample=c.downsample,
        cost_fn=make_cost(c.ot.cost, scale=float(max(c.crop_size))),
        ot_reg=c.ot.reg,
        ot_iters=c.ot.num_iter,
        wtv_weight=c.ot.wtv_weight,
        kernel=gaussian_kernel(c.kernel_size, c.kernel_sigma),
        scales=[0.75, 1.0, 1.25],
        lr=c.lr,
    )


# ----------------------------------------------------------------------------- claim severity

def claims_frame(n=120, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"cat{i}": rng.choice(list("ABCDEF"[: i + 2]), n) for i in range(1, 4)})
    for j in range(1, 4):
        df[f"cont{j}"] = rng.beta(2, 5, n)
    df["exposure"] = rng.uniform(0.2, 1.0, n)
    df["loss"] = np.exp(7.5 + df["cont1"] + rng.normal(0, 0.5, n)).round(2)
    return df


class EntityEmbeddingSeverityModule(pl.LightningModule):
    def __init__(
        self,
        cat_cardinalities: dict,
        embedding_dims: list,
        n_cont: int,
        hidden_sizes=(64, 32),
        dropout=(0.1, 0.05),
        activation=nn.ReLU,  # truth: hparam
        target_shift: float = 200.0,
        target_mean: float = 0.0,  # truth: hparam
        scaler=None,  # truth: hparam
        loss_name: str = "fair",
        fair_c: float = 0.7,
        lr: float = 3e-3,
        cont_mean=None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.embeddings = nn.ModuleList(
            nn.Embedding(n, d) for n, d in zip(cat_cardinalities.values(), embedding_dims))
        layers, width = [], sum(embedding_dims) + n_cont
        for size, p in zip(hidden_sizes, dropout):
            layers += [nn.Linear(width, size), activation(), nn.Dropout(p)]
            width = size
        self.mlp = nn.Sequential(*layers, nn.Linear(width, 1))
        self.scaler = scaler
        with torch.no_grad():
            self.mlp[-1].bias.fill_(float(target_mean))

    def training_step(self, batch, batch_idx):
        x_cat, x_cont, y = batch
        parts = [emb(x_cat[:, i]) for i, emb in enumerate(self.embeddings)]
        x = (self.mlp(torch.cat(parts + [x_cont], 1)).squeeze(1) - y).abs()
        c = self.hparams.fair_c
        loss = (c ** 2 * (x / c - torch.log1p(x / c))).mean()
        self.log("train/fair", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class TweedieGLMModule(pl.LightningModule):
    def __init__(self, hparams: dict, feature_names=None):  # truth: hparam[hparams]
        super().__init__()
        self.save_hyperparameters(hparams)
        self.feature_names = list(feature_names or [])
        self.linear = nn.Linear(hparams["n_features"], 1)
        nn.init.constant_(self.linear.bias, math.log(float(hparams["base_rate"])))

    def training_step(self, batch, batch_idx):
        x, exposure, y = batch
        mu = torch.exp(self.linear(x).squeeze(1)) * exposure
        p = self.hparams.power
        return (-y * mu.pow(1 - p) / (1 - p) + mu.pow(2 - p) / (2 - p)).mean()

    def configure_optimizers(self):
        return torch.optim.LBFGS(self.parameters(), lr=self.hparams.lr)


class QuantileSeverityModule(pl.LightningModule):
    def __init__(self, n_features: int = 6, quantiles=(0.5, 0.9), hidden: int = 32, lr: float = 1e-3, scaler=None):
        super().__init__()
        self.save_hyperparameters("n_features", "quantiles", "hidden", "lr")
        self.scaler = scaler
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, len(quantiles)))
        self.register_buffer("q", torch.tensor(list(quantiles)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        err = y[:, None] - self.net(x)
        return torch.maximum(self.q * err, (self.q - 1) * err).mean()


def build_entity_severity(cfg, df):
    c = cfg.claims
    cat_cols = [col for col in df.columns if col.startswith("cat")]
    cont_cols = [col for col in df.columns if col.startswith("cont")]
    cards = {col: df[col].nunique() for col in cat_cols}
    scaler = StandardScaler().fit(df[cont_cols].to_numpy())
    y_log = np.log(df["loss"] + 200.0)
    return EntityEmbeddingSeverityModule(
        cat_cardinalities=cards,
        embedding_dims=[min(50, (n + 1) // 2) for n in cards.values()],
        n_cont=len(cont_cols),
        hidden_sizes=list(c.hidden_sizes),
        dropout=list(c.dropout),
        activation=ACTIVATIONS[c.activation],
        target_shift=200.0,
        target_mean=y_log.mean(),
        scaler=scaler,
        loss_name=c.loss,
        fair_c=c.fair_c,
        lr=c.lr,
        cont_mean=torch.tensor(scaler.mean_, dtype=torch.float32),
    )


def build_glm_hparams(cfg, df):
    features = [col for col in df.columns if col.startswith("cont")]
    return {
        "n_features": len(features),
        "power": cfg.claims.tweedie_power,
        "lr": 0.1,
        "exposure_col": "exposure",
        "base_rate": df["loss"].sum() / df["exposure"].sum(),
    }, features


def build_tweedie(cfg, df):
    hparams, features = build_glm_hparams(cfg, df)
    return TweedieGLMModule(hparams, feature_names=features)


def build_quantile(cfg, df):
    cols = [col for col in df.columns if col.startswith("cont")]
    return QuantileSeverityModule(n_features=len(cols), quantiles=tuple(cfg.claims.quantiles),
                                  scaler=StandardScaler().fit(df[cols].to_numpy()))


# ----------------------------------------------------------------------------- data modules

class DocVQADataModule(pl.LightningDataModule):
    def __init__(self, data_dir: str = "data/docvqa", batch_size: int = 8, max_seq_len: int = 64,
                 num_workers: int = 0):
        super().__init__()
        self.save_hyperparameters()

    def train_dataloader(self):
        n, L = 16, self.hparams.max_seq_len
        data = TensorDataset(torch.randint(0, 50, (n, L)), torch.randint(0, 1001, (n, L, 4)),
                             torch.randint(0, L, (n,)), torch.randint(0, L, (n,)))
        return DataLoader(data, batch_size=self.hparams.batch_size, num_workers=self.hparams.num_workers)


class CrowdDataModule(pl.LightningDataModule):
    def __init__(self, root: str = "data/shanghaitech/part_B", crop_size=(32, 32), batch_size: int = 4,
                 val_fraction: float = 0.1, augment=None):
        super().__init__()
        self.save_hyperparameters()
        self.augment = dict(augment or {"hflip": 0.5, "gamma": [0.8, 1.2]})


class ClaimsDataModule(pl.LightningDataModule):
    def __init__(self, csv_path: str = "data/claims/train.csv", folds: int = 5, fold: int = 0,
                 batch_size: int = 256, cat_cols=None, cont_cols=None):
        super().__init__()
        self.save_hyperparameters()


def build_claims_datamodule(cfg, df):
    return ClaimsDataModule(
        csv_path="data/claims/train.csv",
        folds=5,
        fold=0,
        batch_size=128,
        cat_cols=[c for c in df.columns if c.startswith("cat")],
        cont_cols=df.filter(like="cont").columns.tolist(),
    )


def _doc_stats():
    page_sizes = np.array([[612, 792], [595, 842], [816, 1056]])
    tok = VocabTokenizer()
    for w in "what is the total amount invoice date vendor".split():
        tok.vocab.setdefault(w, len(tok.vocab))
    return page_sizes, tok


FACTORIES = {
    "LayoutQAModule": lambda: build_layout_qa(CONFIG, *_doc_stats()),
    "GenerativeVQAModule": lambda: build_generative_vqa(CONFIG),
    "CSRNetModule": lambda: build_csrnet(CONFIG, sigmas=[2.1, 3.4, 4.0, 5.2]),
    "DMCountModule": lambda: build_dmcount(CONFIG),
    "EntityEmbeddingSeverityModule": lambda: build_entity_severity(CONFIG, claims_frame()),
    "TweedieGLMModule": lambda: build_tweedie(CONFIG, claims_frame()),
    "QuantileSeverityModule": lambda: build_quantile(CONFIG, claims_frame()),
    "CrowdDataModule": lambda: CrowdDataModule(crop_size=list(CONFIG.crowd.crop_size), batch_size=2,
                                               augment=OmegaConf.to_container(CONFIG.crowd.ot)),
    "ClaimsDataModule": lambda: build_claims_datamodule(CONFIG, claims_frame()),
}
