"""Lightning wrappers for the three projects: grid state estimation, dental X-ray segmentation and
headline generation. Every module is created from a config through `REGISTRY` / the `build_*`
helpers below, the way `train.py --config ...` does it."""
import argparse
import enum
import functools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, TensorDataset

REGISTRY = {}


def register(name):
    def deco(cls):
        REGISTRY[name] = cls
        return cls
    return deco


class BusType(enum.Enum):
    PQ = "pq"
    PV = "pv"
    SLACK = "slack"


@dataclass
class GenerationConfig:
    beam_size: int = 3
    max_len: int = 12
    length_penalty: float = 0.8
    temperature: float = 1.0


class HeadlineTokenizer:
    """Whitespace tokenizer over a fixed vocabulary."""

    def __init__(self, itos=("<pad>", "<bos>", "<eos>", "<unk>")):
        self.itos = list(itos)
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self):
        return len(self.itos)

    def encode(self, text):
        return [1] + [self.stoi.get(w, 3) for w in text.lower().split()] + [2]


def rouge_l_reward(hyp, ref):
    """Token-level LCS F1, used as the sequence-level reward."""
    dp = [[0] * (len(ref) + 1) for _ in range(len(hyp) + 1)]
    for i, a in enumerate(hyp):
        for j, b in enumerate(ref):
            dp[i + 1][j + 1] = dp[i][j] + 1 if a == b else max(dp[i][j + 1], dp[i + 1][j])
    lcs = dp[-1][-1]
    return 0.0 if not lcs else 2 * lcs / (len(hyp) + len(ref))


# ============================================================================ grid state estimation

@register("grid_mlp")
class GridSELit(pl.LightningModule):
    def __init__(self,
                 n_meas: int,
                 n_state: int,
                 hidden: int = 64,
                 lr: float = 1e-3,
                 meas_weights=None,  # truth: hparam
                 meas_names: Optional[list] = None,
                 scaler: Optional[StandardScaler] = None):
        super().__init__()
        self.save_hyperparameters("n_meas", "n_state", "hidden", "lr", "meas_weights", "meas_names")
        self.scaler = scaler
        w = torch.ones(n_meas) if meas_weights is None else torch.as_tensor(meas_weights, dtype=torch.float32)
        self.register_buffer("w", w / w.mean())
        self.net = nn.Sequential(nn.Linear(n_meas, hidden), nn.Tanh(), nn.Linear(hidden, n_state))

    def forward(self, z):
        return self.net(z)

    def training_step(self, batch, batch_idx):
        z, theta = batch
        loss = F.mse_loss(self(z * self.w), theta)
        self.log("train/mse", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


@register("grid_gnn")
class GridTopologyLit(pl.LightningModule):
    def __init__(self,
                 adjacency: torch.Tensor,
                 n_bus: int,
                 hidden: int = 32,
                 n_layers: int = 2,
                 base_mva: float = 100.0,
                 max_kv: float = 345.0,  # truth: hparam
                 slack_type: BusType = BusType.SLACK,  # truth: hparam
                 bus_types: tuple = (),
                 lr: float = 2e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["adjacency"])
        deg = adjacency.sum(1, keepdim=True).clamp_min(1.0)
        self.register_buffer("a_norm", adjacency / deg)
        self.inp = nn.Linear(2, hidden)
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(n_layers))
        self.out = nn.Linear(hidden, 1)

    def forward(self, x):
        h = torch.relu(self.inp(x))
        for lin in self.layers:
            h = torch.relu(lin(self.a_norm @ h)) + h
        return self.out(h).squeeze(-1)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


@register("pmu_forecast")
class PMUForecastLit(pl.LightningModule):
    def __init__(self, args: argparse.Namespace):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(args)
        self.rnn = nn.GRU(2 * args.n_pmu, args.hidden, batch_first=True)
        self.head = nn.Linear(args.hidden, 2 * args.n_pmu)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(y[:, -1])

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


def grid_adjacency(n_bus, branches):
    a = torch.zeros(n_bus, n_bus)
    for i, j in branches:
        a[i, j] = a[j, i] = 1.0
    return a + torch.eye(n_bus)


def build_grid_module(cfg: dict, rng=None):
    rng = rng or np.random.default_rng(cfg.get("seed", 0))
    kind = cfg["model"]
    if kind == "grid_mlp":
        meas = pd.DataFrame({"name": [f"P_{k}" for k in range(cfg["n_meas"])],
                             "sigma": rng.uniform(0.005, 0.02, cfg["n_meas"])})
        z = rng.normal(size=(64, cfg["n_meas"]))
        return REGISTRY[kind](n_meas=int(len(meas)), n_state=cfg["n_state"], hidden=cfg.get("hidden", 64),
                              lr=float(cfg["lr"]), meas_weights=1.0 / meas["sigma"].to_numpy() ** 2,
                              meas_names=meas["name"].tolist(), scaler=StandardScaler().fit(z))
    if kind == "grid_gnn":
        buses = pd.DataFrame({"bus": range(cfg["n_bus"]),
                              "type": ["slack"] + ["pv" if b % 3 == 1 else "pq" for b in range(1, cfg["n_bus"])],
                              "base_kv": rng.choice([138.0, 230.0, 345.0], cfg["n_bus"])})
        return REGISTRY[kind](adjacency=grid_adjacency(cfg["n_bus"], cfg["branches"]), n_bus=len(buses),
                              hidden=cfg.get("hidden", 32), max_kv=buses["base_kv"].max(),
                              bus_types=tuple(buses["type"]), lr=cfg["lr"])
    raise KeyError(kind)


def pmu_parser():
    p = argparse.ArgumentParser()
    p.add_argument("--n-pmu", type=int, default=4)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--window", type=int, default=30)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--data-root", type=Path, default=Path("data/pmu"))
    p.add_argument("--resample", default="100ms")
    return p


# ============================================================================ dental X-ray segmentation

DENTAL_YAML = """
model:
  name: dental_unet
  base_channels: 4
  n_classes: 5
optim:
  lr: 0.002
  weight_decay: 1.0e-4
data:
  image_size: [32, 64]
  pixel_spacing_mm: 0.1
loss:
  ce_weight: 0.5
  dice_weight: 0.5
"""


class TinySegNet(nn.Module):
    def __init__(self, n_classes=5, base=4):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, base, 3, padding=1), nn.ReLU(), nn.Conv2d(base, base, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(base, n_classes, 1))

    def forward(self, x):
        return self.body(x)


@register("dental_unet")
class DentalSegLit(pl.LightningModule):
    def __init__(self, cfg: DictConfig):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = TinySegNet(cfg.model.n_classes, cfg.model.base_channels)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train/ce", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.optim.lr,
                                 weight_decay=self.hparams.optim.weight_decay)


@register("dental_unet_v2")
class DentalSegLitV2(pl.LightningModule):
    """Same network; hyperparameters stored as a plain dict, loss passed in."""

    def __init__(self, cfg: DictConfig, loss_fn: Optional[nn.Module] = None, class_weights=None):
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg, resolve=True))
        self.net = TinySegNet(cfg.model.n_classes, cfg.model.base_channels)
        self.loss_fn = loss_fn or nn.CrossEntropyLoss(weight=class_weights)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self(x), y)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams["optim"]["lr"])


@register("tooth_detector")
class ToothDetectorLit(pl.LightningModule):
    """Per-tooth box regression + FDI classification on top of a (pretrained) backbone."""

    def __init__(self,
                 backbone: nn.Module,
                 num_teeth: int = 32,
                 anchor_sizes: tuple = (8, 16, 32),
                 lr: float = 1e-3,
                 box_loss: nn.Module = nn.SmoothL1Loss(beta=0.5),  # truth: hparam
                 pretrained_path: Optional[str] = None,  # truth: hparam
                 freeze_backbone: bool = True):
        super().__init__()
        if pretrained_path is not None:
            pretrained_path = Path(pretrained_path).expanduser()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.box_loss = box_loss
        feat = backbone[-1].out_channels
        self.cls_head = nn.Conv2d(feat, num_teeth + 1, 1)
        self.box_head = nn.Conv2d(feat, 4 * len(anchor_sizes), 1)

    def setup(self, stage=None):
        path = self.hparams.pretrained_path
        if path is not None and path.exists():
            self.backbone.load_state_dict(torch.load(path))
        if self.hparams.freeze_backbone:
            self.backbone.requires_grad_(False)

    def forward(self, x):
        f = self.backbone(x)
        return self.cls_head(f), self.box_head(f)

    def configure_optimizers(self):
        return torch.optim.SGD((p for p in self.parameters() if p.requires_grad), lr=self.hparams.lr, momentum=0.9)


def dental_backbone(base=8):
    return nn.Sequential(nn.Conv2d(1, base, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(base, base * 2, 3, padding=1))


def build_dental_module(overrides=(), name=None):
    cfg = OmegaConf.merge(OmegaConf.create(DENTAL_YAML), OmegaConf.from_dotlist(list(overrides)))
    name = name or cfg.model.name
    if name == "tooth_detector":
        return REGISTRY[name](backbone=dental_backbone(), num_teeth=16, lr=cfg.optim.lr,
                              pretrained_path="checkpoints/dental_backbone.pt")
    if name == "dental_unet_v2":
        counts = np.array([70.0, 12.0, 10.0, 5.0, 3.0])
        w = counts.sum() / (len(counts) * counts)
        return REGISTRY[name](cfg, class_weights=torch.tensor(w, dtype=torch.float32))
    return REGISTRY[name](cfg)


# ============================================================================ headline generation

class BaseHeadlineLit(pl.LightningModule):
    def __init__(self,
                 vocab_size: int,
                 tokenizer=None,  # truth: hparam
                 emb_dim: int = 32,
                 lr: float = 1e-3,
                 label_smoothing: float = 0.1,
                 pad_id: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = tokenizer
        self.emb = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.proj = nn.Linear(emb_dim, vocab_size)

    def decode(self, src, tgt_in):
        raise NotImplementedError

    def training_step(self, batch, batch_idx):
        src, tgt = batch
        logits = self.decode(src, tgt[:, :-1])
        return F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=self.hparams.pad_id,
                               label_smoothing=self.hparams.label_smoothing)


@register("gru_headline")
class GRUHeadlineLit(BaseHeadlineLit):
    def __init__(self, hidden: int = 64, num_layers: int = 1, optimizer: str = "adamw", **kwargs):
        super().__init__(**kwargs)
        self.encoder = nn.GRU(self.hparams.emb_dim, hidden, num_layers, batch_first=True)
        self.decoder = nn.GRU(self.hparams.emb_dim, hidden, num_layers, batch_first=True)
        self.to_emb = nn.Linear(hidden, self.hparams.emb_dim)

    def decode(self, src, tgt_in):
        _, h = self.encoder(self.emb(src))
        y, _ = self.decoder(self.emb(tgt_in), h)
        return self.proj(self.to_emb(y))

    def configure_optimizers(self):
        opt = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[self.hparams.optimizer]
        return opt(self.parameters(), lr=self.hparams.lr)


@register("transformer_headline")
class TransformerHeadlineLit(BaseHeadlineLit):
    def __init__(self,
                 n_heads: int = 2,
                 n_layers: int = 1,
                 ff_mult: int = 2,
                 optimizer_cls=torch.optim.AdamW,  # truth: hparam
                 **kwargs):
        super().__init__(**kwargs)
        d = self.hparams.emb_dim
        self.transformer = nn.Transformer(d, n_heads, n_layers, n_layers, ff_mult * d, batch_first=True)

    def decode(self, src, tgt_in):
        mask = self.transformer.generate_square_subsequent_mask(tgt_in.shape[1])
        return self.proj(self.transformer(self.emb(src), self.emb(tgt_in), tgt_mask=mask))

    def configure_optimizers(self):
        return self.hparams.optimizer_cls(self.parameters(), lr=self.hparams.lr)


@register("rouge_rl")
class RougeRLHeadlineLit(pl.LightningModule):
    """Self-critical fine-tuning: reward(sampled) - reward(greedy baseline)."""

    def __init__(self,
                 vocab_size: int,
                 generation: GenerationConfig = GenerationConfig(),  # truth: hparam
                 reward_fn=rouge_l_reward,  # truth: hparam
                 baseline: str = "greedy",
                 length_filter=None,  # truth: hparam
                 entropy_coef: float = 0.01,
                 emb_dim: int = 32):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(vocab_size, emb_dim)
        self.rnn = nn.GRU(emb_dim, emb_dim, batch_first=True)
        self.proj = nn.Linear(emb_dim, vocab_size)

    def reward(self, hyp, ref):
        keep = self.hparams.length_filter
        if keep is not None and not keep(hyp):
            return 0.0
        return self.hparams.reward_fn(hyp, ref)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-5)


HEADLINE_CFG = {
    "model": "gru_headline",
    "vocab": ["<pad>", "<bos>", "<eos>", "<unk>", "shares", "jump", "slide", "after", "earnings", "merger"],
    "emb_dim": 16,
    "lr": 5e-4,
    "hidden": 32,
    "generation": {"beam_size": 4, "max_len": 14},
}


def build_headline_module(cfg=HEADLINE_CFG, **overrides):
    cfg = {**cfg, **overrides}
    tok = HeadlineTokenizer(cfg["vocab"])
    common = dict(vocab_size=len(tok), tokenizer=tok, emb_dim=cfg["emb_dim"], lr=cfg["lr"])
    if cfg["model"] == "gru_headline":
        return GRUHeadlineLit(hidden=cfg["hidden"], **common)
    if cfg["model"] == "transformer_headline":
        return TransformerHeadlineLit(n_heads=2, **common)
    if cfg["model"] == "rouge_rl":
        return RougeRLHeadlineLit(vocab_size=len(tok), generation=GenerationConfig(**cfg["generation"]),
                                  length_filter=lambda toks: 3 <= len(toks) <= cfg["generation"]["max_len"],
                                  emb_dim=cfg["emb_dim"])
    raise KeyError(cfg["model"])


# ============================================================================ data modules

class GridSnapshotDataModule(pl.LightningDataModule):
    def __init__(self, n_meas: int = 30, n_state: int = 7, n_snapshots: int = 256, noise_std: float = 0.01,
                 batch_size: int = 32, val_fraction: float = 0.2, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        hp = self.hparams
        g = torch.Generator().manual_seed(hp.seed)
        H = torch.randn(hp.n_meas, hp.n_state, generator=g)
        theta = 0.08 * torch.randn(hp.n_snapshots, hp.n_state, generator=g)
        z = theta @ H.T + hp.noise_std * torch.randn(hp.n_snapshots, hp.n_meas, generator=g)
        n_val = int(hp.val_fraction * hp.n_snapshots)
        self.train_set = TensorDataset(z[n_val:], theta[n_val:])
        self.val_set = TensorDataset(z[:n_val], theta[:n_val])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.hparams.batch_size)


class GammaJitter:
    def __init__(self, lo=0.8, hi=1.2):
        self.lo, self.hi = lo, hi

    def __call__(self, x):
        return x.clamp_min(1e-6) ** float(torch.empty(1).uniform_(self.lo, self.hi))


class DentalXrayDataModule(pl.LightningDataModule):
    def __init__(self, data_dir: str = "data/panoramic", image_size: tuple = (32, 64), batch_size: int = 4,
                 transform=None, num_workers: int = 0):
        super().__init__()
        self.save_hyperparameters(ignore=["transform"])
        self.transform = transform

    def setup(self, stage=None):
        h, w = self.hparams.image_size
        x = torch.rand(8, 1, h, w)
        y = torch.randint(0, 5, (8, h, w))
        self.train_set = TensorDataset(x, y)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, num_workers=self.hparams.num_workers)


class HeadlineDataModule(pl.LightningDataModule):
    def __init__(self, cfg: dict, tokenizer: Optional[HeadlineTokenizer] = None):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.tokenizer = tokenizer


def build_datamodule(kind, cfg=None):
    if kind == "grid":
        return GridSnapshotDataModule(**(cfg or {}))
    if kind == "dental":
        root = Path("data") / "panoramic" / "v2"
        return DentalXrayDataModule(data_dir=str(root), image_size=(32, 64), transform=GammaJitter())
    if kind == "headline":
        conf = OmegaConf.create({"max_src_len": 40, "max_tgt_len": 12, "batch_size": 16, "vocab_file": "vocab.txt"})
        return HeadlineDataModule(OmegaConf.to_container(conf), tokenizer=HeadlineTokenizer(HEADLINE_CFG["vocab"]))
    raise KeyError(kind)


GRID_CFG = {"model": "grid_mlp", "n_meas": 30, "n_state": 7, "hidden": 32, "lr": "3e-3", "seed": 1,
            "n_bus": 8, "branches": [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (1, 4)]}

FACTORIES = {
    "BusType": lambda: BusType.PV,
    "GridSELit": lambda: build_grid_module(GRID_CFG),
    "GridTopologyLit": lambda: build_grid_module({**GRID_CFG, "model": "grid_gnn", "lr": 2e-3}),
    "PMUForecastLit": lambda: REGISTRY["pmu_forecast"](pmu_parser().parse_args(["--n-pmu", "3", "--data-root", "data/pmu/2024"])),
    "DentalSegLit": lambda: build_dental_module(["optim.lr=0.001"]),
    "DentalSegLitV2": lambda: build_dental_module(name="dental_unet_v2"),
    "ToothDetectorLit": lambda: build_dental_module(name="tooth_detector"),
    "GRUHeadlineLit": lambda: build_headline_module(),
    "TransformerHeadlineLit": lambda: build_headline_module(model="transformer_headline"),
    "RougeRLHeadlineLit": lambda: build_headline_module(model="rouge_rl"),
    "GridSnapshotDataModule": lambda: build_datamodule("grid", {"n_snapshots": 128, "batch_size": 16}),
    "DentalXrayDataModule": lambda: build_datamodule("dental"),
    "HeadlineDataModule": lambda: build_datamodule("headline"),
}

NOT_BUILT = {
    "BaseHeadlineLit": "abstract base (decode() is left to subclasses); built only through GRUHeadlineLit and "
                       "TransformerHeadlineLit, whose **kwargs reach its save_hyperparameters()",
}
