"""Lightning side of the three projects: clause classification, hyperspectral patches, PINNs.

`train.py experiment=<name>` looks the experiment up in EXPERIMENTS, lets the family's builder
prepare what the module needs (label tree, class weights, band selection + PCA, PDE coefficients)
and instantiates the registered LightningModule / LightningDataModule.
"""
import argparse
import dataclasses
import functools
import math
from collections import defaultdict
from enum import Enum
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.decomposition import PCA
from sklearn.utils.class_weight import compute_class_weight
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXPERIMENTS = OmegaConf.create("""
clause_hier: {family: clause, module: clause_hier, vocab_size: 2048, embed_dim: 64, chunk_size: 128,
              stride: 96, lr: 3.0e-4, seed: 7}
clause_calib: {family: clause, module: clause_calib, vocab_size: 2048, embed_dim: 64, n_bins: 15,
               calib: {method: temperature, max_iter: 50}, seed: 7}
long_doc: {family: clause, module: long_doc, chunk_size: 256, stride: 192, max_chunks: 16,
           pooling: attention, hidden: 128, dropout: 0.1, seed: 7}
hsi_hybrid: {family: hsi, module: hsi_hybrid, bands: 64, n_classes: 5, patch_size: 7, top_k: 24,
             n_components: 10, lr: 1.0e-3, weight_decay: 1.0e-4, seed: 3}
hsi_spectral: {family: hsi, module: hsi_spectral, bands: 64, n_classes: 5, dropout: 0.3, seed: 3}
hsi_from_config: {family: hsi, module: hsi_from_config, bands: 64, n_classes: 5, top_k: 16, n_components: 8,
                  model: {hidden: [64, 32], dropout: 0.2}, optim: {lr: 2.0e-3, betas: [0.9, 0.99]}, seed: 3}
burgers: {family: pinn, module: burgers, nu_scale: 0.01, n_collocation: 2000, layers: [2, 20, 20, 20, 1],
          weights: {pde: 1.0, ic: 10.0, bc: 10.0}, lbfgs: true, lr: 1.0e-3}
heat: {family: pinn, module: heat, alpha: 0.1, n_boundary: 128, sampler: sobol, warmup: 500,
       domain: {x: [0.0, 1.0], t: [0.0, 0.5]}, fourier_scale: 2.0, ref_dir: data/heat_ref}
pinn_cli: {family: pinn_cli, argv: [--nu, '0.003', --n-collocation, '4000', --ref-dir, data/burgers_fd]}
""")

MODULES, DATAMODULES = {}, {}


def register(table, name):
    def deco(cls):
        table[name] = cls
        return cls
    return deco


# ----------------------------------------------------------------------------- shared pieces

LABEL_TREE = {
    "termination": ["for_convenience", "for_cause", "auto_renewal"],
    "liability": ["cap", "indemnification"],
    "ip": ["assignment", "license_grant", "non_compete"],
    "boilerplate": ["governing_law", "notice"],
}


def build_label_tree(flat_pairs):
    tree = defaultdict(list)
    for parent, leaf in flat_pairs:
        tree[parent].append(leaf)
    return tree


def leaf_frequencies(tree, seed):
    rng = np.random.default_rng(seed)
    leaves = [leaf for cat in sorted(tree) for leaf in tree[cat]]
    return leaves, rng.choice(len(leaves), size=400, p=np.linspace(2, 1, len(leaves)) / np.linspace(2, 1, len(leaves)).sum())


def chunk_ids(ids, size, stride):
    return [ids[i:i + size] for i in range(0, max(len(ids) - size, 0) + 1, stride)]


@dataclasses.dataclass
class NormStats:
    mean: list = dataclasses.field(default_factory=lambda: [0.0])
    std: list = dataclasses.field(default_factory=lambda: [1.0])


class PDEKind(Enum):
    BURGERS = "burgers"
    HEAT = "heat"


class WarmupRamp:
    """Weight of the PDE residual term: 0 -> 1 over `warmup` steps."""

    def __init__(self, warmup=500, floor=0.0):
        self.warmup, self.floor = warmup, floor

    def __call__(self, step):
        return min(1.0, self.floor + (1.0 - self.floor) * step / max(1, self.warmup))


def mlp(dims, act=nn.Tanh):
    layers = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), act()]
    return nn.Sequential(*layers[:-1])


class HybridBackbone(nn.Module):
    def __init__(self, n_components=10, width=16):
        super().__init__()
        self.c3 = nn.Conv3d(1, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4 * n_components, width, 3, padding=1)
        self.out_dim = width

    def forward(self, x):
        return F.relu(self.c2(F.relu(self.c3(x.unsqueeze(1))).flatten(1, 2))).mean((2, 3))


# ----------------------------------------------------------------------------- clause modules

@register(MODULES, "clause_hier")
class ClauseHierModule(L.LightningModule):
    def __init__(
        self,
        vocab_size: int = 2048,
        embed_dim: int = 64,
        num_categories: int = 4,
        num_leaves: int = 10,
        label_tree=None,  # truth: hparam
        class_weights=None,  # truth: hparam
        chunk_size: int = 128,
        stride: int = 96,
        lr: float = 3e-4,
        temperature: float = 1.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.EmbeddingBag(vocab_size, embed_dim, mode="mean")
        self.cat_head = nn.Linear(embed_dim, num_categories)
        self.leaf_head = nn.Linear(embed_dim, num_leaves)
        w = torch.ones(num_leaves) if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("leaf_weight", w)

    def training_step(self, batch, _):
        chunks, offsets, y_cat, y_leaf = batch
        h = self.emb(chunks, offsets)
        cat, leaf = self.cat_head(h), self.leaf_head(h) / self.hparams.temperature
        loss = F.cross_entropy(cat, y_cat) + F.cross_entropy(leaf, y_leaf, weight=self.leaf_weight)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


@register(MODULES, "clause_calib")
class ClauseCalibModule(L.LightningModule):
    def __init__(self, cfg, encoder=None):  # truth: hparam[cfg]
        super().__init__()
        self.save_hyperparameters(cfg)
        self.encoder = encoder if encoder is not None else nn.EmbeddingBag(cfg.vocab_size, cfg.embed_dim)
        self.log_t = nn.Parameter(torch.zeros(1))


@register(MODULES, "long_doc")
class LongDocModule(L.LightningModule):
    def __init__(
        self,
        pooling: str = "attention",
        max_chunks: int = 16,
        chunker=None,  # truth: hparam
        label_names: tuple = (),
        thresholds=None,
        loss_fn=None,
        hidden: int = 128,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["loss_fn"])
        self.chunker = chunker
        self.loss_fn = loss_fn if loss_fn is not None else nn.BCEWithLogitsLoss()
        self.emb = nn.Embedding(4096, hidden, padding_idx=0)
        self.attn = nn.Linear(hidden, 1)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, max(1, len(label_names))))

    def predict_step(self, batch, _):
        chunk = self.emb(batch).mean(2)
        logits = self.head((self.attn(chunk).softmax(1) * chunk).sum(1))
        return torch.sigmoid(logits) >= self.hparams.thresholds


def build_clause(cfg):
    tree = build_label_tree((cat, leaf) for cat, leaves in LABEL_TREE.items() for leaf in leaves)
    leaves, draws = leaf_frequencies(tree, cfg.seed)
    if cfg.module == "clause_hier":
        weights = compute_class_weight("balanced", classes=np.arange(len(leaves)), y=draws)
        temperature = float(np.clip(1.0 + 0.1 * np.log(weights.max()), 0.5, 3.0))
        return MODULES["clause_hier"](cfg.vocab_size, cfg.embed_dim, len(tree), len(leaves), tree, weights,
                                      cfg.chunk_size, cfg.stride, cfg.lr, temperature)
    if cfg.module == "clause_calib":
        return MODULES["clause_calib"](cfg)
    return MODULES["long_doc"](
        pooling=cfg.pooling,
        max_chunks=cfg.max_chunks,
        chunker=functools.partial(chunk_ids, size=cfg.chunk_size, stride=cfg.stride),
        label_names=tuple(leaves),
        thresholds=torch.full((len(leaves),), 0.5),
        loss_fn=nn.BCEWithLogitsLoss(pos_weight=torch.ones(len(leaves))),
        hidden=cfg.hidden,
        dropout=cfg.dropout,
    )


# ----------------------------------------------------------------------------- hyperspectral modules

@register(MODULES, "hsi_hybrid")
class HSIHybridModule(L.LightningModule):
    def __init__(self, in_bands=64, n_classes=5, patch_size=7,
                 band_idx=None,  # truth: hparam
                 pca=None,  # truth: hparam
                 wavelengths=(), lr=1e-3, weight_decay=1e-4, backbone=None):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.pca = pca
        self.backbone = backbone if backbone is not None else HybridBackbone()
        self.head = nn.Linear(self.backbone.out_dim, n_classes)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


@register(MODULES, "hsi_spectral")
class HSISpectralModule(L.LightningModule):
    def __init__(
        self,
        n_bands: int = 64,
        n_classes: int = 5,
        norm_stats: NormStats = None,  # truth: hparam
        spectral_mean=None,
        criterion: nn.Module = nn.CrossEntropyLoss(label_smoothing=0.05),  # truth: hparam
        dropout: float = 0.3,
        activation: str = "relu",
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.criterion = criterion
        act = {"relu": nn.ReLU, "gelu": nn.GELU}[activation]
        self.net = nn.Sequential(nn.Linear(n_bands, 64), act(), nn.Dropout(dropout), nn.Linear(64, n_classes))
        self.register_buffer("mu", spectral_mean if spectral_mean is not None else torch.zeros(n_bands))

    def training_step(self, batch, _):
        x, y = batch
        loss = self.criterion(self.net(x - self.mu), y)
        self.log("train/ce", loss)
        return loss


@register(MODULES, "hsi_from_config")
class HSIFromConfigModule(L.LightningModule):
    def __init__(self, model_cfg: dict, optim_cfg: dict, selected_bands: tuple = (), n_components: int = 8):
        super().__init__()
        self.save_hyperparameters()
        dims = [n_components, *model_cfg["hidden"]]
        self.net = nn.Sequential(*[m for a, b in zip(dims[:-1], dims[1:]) for m in (nn.Linear(a, b), nn.ReLU())])


def synth_pixels(bands, n_classes, seed, n=300):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    centers = rng.random((n_classes, bands))
    return centers[y] + 0.05 * rng.standard_normal((n, bands)), y


def build_hsi(cfg):
    X, y = synth_pixels(cfg.bands, cfg.n_classes, cfg.seed)
    if cfg.module == "hsi_spectral":
        mu, sd = X.mean(0), X.std(0)
        return MODULES["hsi_spectral"](cfg.bands, cfg.n_classes, NormStats(mu.tolist(), sd.tolist()),
                                       torch.from_numpy(mu).float(), dropout=cfg.dropout)
    score = np.abs(np.corrcoef(np.c_[X, y].T)[-1, :-1])
    keep = np.sort(np.argsort(score)[::-1][: cfg.top_k])
    pca = PCA(n_components=cfg.n_components, random_state=cfg.seed).fit(X[:, keep])
    if cfg.module == "hsi_from_config":
        c = OmegaConf.to_container(cfg, resolve=True)
        return MODULES["hsi_from_config"](c["model"], c["optim"], tuple(int(b) for b in keep),
                                          int(pca.n_components_))
    wavelengths = np.linspace(400.0, 2500.0, cfg.bands)[keep]
    return MODULES["hsi_hybrid"](len(keep), cfg.n_classes, cfg.patch_size, keep, pca,
                                 tuple(wavelengths.round(1).tolist()), cfg.lr, cfg.weight_decay,
                                 HybridBackbone(cfg.n_components))


# ----------------------------------------------------------------------------- PINN modules

class PINNBase(L.LightningModule):
    def residual(self, xt, coef):
        xt = xt.clone().requires_grad_(True)
        u = self.net(xt)
        g = torch.autograd.grad(u.sum(), xt, create_graph=True)[0]
        u_xx = torch.autograd.grad(g[:, :1].sum(), xt, create_graph=True)[0][:, :1]
        return g[:, 1:] + (u * g[:, :1] if self.nonlinear else 0.0) - coef * u_xx


@register(MODULES, "burgers")
class BurgersPINNModule(PINNBase):
    def __init__(
        self,
        pde=PDEKind.BURGERS,  # truth: hparam
        nu=0.01 / math.pi,  # truth: hparam
        initial_condition=None,  # truth: hparam
        n_collocation: int = 2000,
        layers=(2, 20, 20, 1),
        loss_weights=None,
        use_lbfgs: bool = True,
        lr: float = 1e-3,
        activation: str = "tanh",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.nonlinear = pde is PDEKind.BURGERS
        self.net = mlp(list(layers), {"tanh": nn.Tanh, "silu": nn.SiLU}[activation])
        x0 = torch.linspace(-1.0, 1.0, 128).unsqueeze(1)
        u0 = initial_condition(x0) if initial_condition is not None else -torch.sin(math.pi * x0)
        self.register_buffer("x0", torch.cat([x0, torch.zeros_like(x0)], 1))
        self.register_buffer("u0", u0)

    def training_step(self, batch, _):
        w = self.hparams.loss_weights or {"pde": 1.0, "ic": 1.0}
        r = self.residual(batch, self.hparams.nu)
        loss = w["pde"] * r.pow(2).mean() + w["ic"] * (self.net(self.x0) - self.u0).pow(2).mean()
        self.log("train/loss", loss)
        return loss


@register(MODULES, "heat")
class HeatPINNModule(PINNBase):
    def __init__(self, alpha=0.1,
                 domain=None,
                 ref_path=None,  # truth: hparam
                 ramp=None,  # truth: hparam
                 sampler="sobol", n_boundary=128, fourier_scale=1.0):
        super().__init__()
        self.save_hyperparameters()
        self.nonlinear = False
        self.ramp = ramp if ramp is not None else WarmupRamp()
        self.register_buffer("B", fourier_scale * torch.randn(2, 16))
        self.net = nn.Sequential(nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))


@register(MODULES, "pinn_cli")
class PINNArgsModule(PINNBase):
    def __init__(self, args):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(args)
        self.nonlinear = True
        self.net = mlp([2, args.width, args.width, 1])


def parse_pinn_args(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--nu", type=float, default=0.01 / math.pi)
    p.add_argument("--n-collocation", type=int, default=2000)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--ref-dir", type=Path, default=Path("data/ref"))
    return p.parse_args(argv)


def build_pinn(cfg):
    if cfg.family == "pinn_cli":
        return MODULES["pinn_cli"](parse_pinn_args(list(cfg.argv)))
    if cfg.module == "burgers":
        return MODULES["burgers"](
            PDEKind(cfg.module),
            np.round(cfg.nu_scale / np.pi, 6),
            lambda x: -torch.sin(math.pi * x),
            cfg.n_collocation,
            list(cfg.layers),
            dict(cfg.weights),
            cfg.lbfgs,
            cfg.lr,
        )
    c = OmegaConf.to_container(cfg)
    return MODULES["heat"](c["alpha"], c["domain"], Path(c["ref_dir"]) / "heat_alpha0.1.npz",
                           WarmupRamp(c["warmup"]), c["sampler"], c["n_boundary"], c["fourier_scale"])


BUILDERS = {"clause": build_clause, "hsi": build_hsi, "pinn": build_pinn, "pinn_cli": build_pinn}


def build_from_experiment(name):
    cfg = EXPERIMENTS[name]
    return BUILDERS[cfg.family](cfg)


# ----------------------------------------------------------------------------- datamodules

@register(DATAMODULES, "clause")
class ClauseDataModule(L.LightningDataModule):
    def __init__(self, chunk_size=128, stride=96, max_chunks=16, batch_size=8, num_workers=0, seed=7):
        super().__init__()
        self.save_hyperparameters()

    def train_dataloader(self):
        g = torch.Generator().manual_seed(self.hparams.seed)
        x = torch.randint(1, 2048, (64, self.hparams.max_chunks, self.hparams.chunk_size), generator=g)
        return DataLoader(TensorDataset(x, torch.randint(0, 10, (64,), generator=g)),
                          batch_size=self.hparams.batch_size, shuffle=True, num_workers=self.hparams.num_workers)


@register(DATAMODULES, "hsi")
class HSIPatchDataModule(L.LightningDataModule):
    def __init__(self, patch_size=7, train_ratio=0.3, batch_size=64, pad_mode="reflect", band_subset=(),
                 class_names=("corn", "grass", "soy", "woods", "hay")):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        X, y = synth_pixels(64, len(self.hparams.class_names), seed=3)
        self.train_set = TensorDataset(torch.from_numpy(X).float(), torch.from_numpy(y))


@register(DATAMODULES, "pinn")
class CollocationDataModule(L.LightningDataModule):
    def __init__(self, n_interior=2000, method="sobol", domain=None, seed=0, batch_size=512):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        d = self.hparams.domain or {"x": [-1.0, 1.0], "t": [0.0, 1.0]}
        eng = torch.quasirandom.SobolEngine(2, scramble=True, seed=self.hparams.seed)
        lo = torch.tensor([d["x"][0], d["t"][0]])
        hi = torch.tensor([d["x"][1], d["t"][1]])
        self.train_set = TensorDataset(lo + (hi - lo) * eng.draw(self.hparams.n_interior))


FACTORIES = {
    "ClauseHierModule": functools.partial(build_from_experiment, "clause_hier"),
    "ClauseCalibModule": functools.partial(build_from_experiment, "clause_calib"),
    "LongDocModule": functools.partial(build_from_experiment, "long_doc"),
    "HSIHybridModule": functools.partial(build_from_experiment, "hsi_hybrid"),
    "HSISpectralModule": functools.partial(build_from_experiment, "hsi_spectral"),
    "HSIFromConfigModule": functools.partial(build_from_experiment, "hsi_from_config"),
    "BurgersPINNModule": functools.partial(build_from_experiment, "burgers"),
    "HeatPINNModule": functools.partial(build_from_experiment, "heat"),
    "PINNArgsModule": functools.partial(build_from_experiment, "pinn_cli"),
    "PDEKind": lambda: PDEKind.HEAT,
    "HSIPatchDataModule": lambda: DATAMODULES["hsi"](patch_size=9, band_subset=(3, 9, 27)),
    "CollocationDataModule": lambda: DATAMODULES["pinn"](domain=OmegaConf.to_container(EXPERIMENTS.heat.domain)),
}
