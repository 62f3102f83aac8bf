"""A Lightning project where every module is built by a factory from a config: structured
dataclass schemas for the tabular and forecasting models, plain YAML for the autoencoder, and a
registry `build_module(name, cfg)` used by `main()` and by the sweep launcher."""
import dataclasses
import functools
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import List, Optional, Tuple

import lightning.pytorch as pl
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf


class Arch(Enum):
    MLP = "mlp"
    RESMLP = "resmlp"


class Activation(Enum):
    GELU = "gelu"
    SILU = "silu"


class Norm(Enum):
    LAYER = "layer"
    BATCH = "batch"


ACTIVATIONS = {"gelu": nn.GELU, "silu": nn.SiLU}


@dataclass
class TabularModelConfig:
    arch: Arch = Arch.RESMLP
    hidden_sizes: List[int] = field(default_factory=lambda: [64, 32])
    activation: Activation = Activation.GELU
    norm: Norm = Norm.LAYER
    dropout: float = 0.1


@dataclass
class TabularDataConfig:
    root: Path = Path("/data/adult")
    target: str = "income"
    num_features: int = 14
    num_classes: int = 2
    cache_dir: Optional[Path] = None


@dataclass
class OptimConfig:
    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: Tuple[float, float] = (0.9, 0.999)


@dataclass
class TabularConfig:
    model: TabularModelConfig = field(default_factory=TabularModelConfig)
    data: TabularDataConfig = field(default_factory=TabularDataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 7
    max_epochs: int = 20


@dataclass
class ForecastConfig:
    horizon: int = 24
    lookback: int = 96
    hidden: int = 32
    activation: Activation = Activation.SILU
    quantiles: Tuple[float, ...] = (0.1, 0.5, 0.9)
    lr: float = 3e-4
    name: str = "tcn-h${horizon}"


@dataclass
class RunConfig:
    name: str = "tabular-baseline"
    ckpt_dir: Path = Path("checkpoints")
    log_every: int = 50
    tags: List[str] = field(default_factory=lambda: ["tabular"])


@dataclass
class LoggingConfig:
    project: str = "tabular"
    log_every: int = 50
    log_grads: bool = False
    tags: List[str] = field(default_factory=lambda: ["tabular", "baseline"])


AE_YAML = """
model:
  in_dim: 32
  latent_dim: 8
  hidden: [64, 32]
optim:
  lr: 1.0e-3
  weight_decay: 0.0
run:
  name: ae-z${model.latent_dim}
  log_every: 50
curriculum:
  - {noise: 0.3, epochs: 5}
  - {noise: 0.1, epochs: 10}
  - {noise: 0.0, epochs: 5}
"""


def tabular_config(overrides=()):
    return OmegaConf.merge(OmegaConf.structured(TabularConfig), OmegaConf.from_dotlist(list(overrides)))


def forecast_config(overrides=()):
    return OmegaConf.merge(OmegaConf.structured(ForecastConfig), OmegaConf.from_dotlist(list(overrides)))


def ae_config(overrides=()):
    return OmegaConf.merge(OmegaConf.create(AE_YAML), OmegaConf.from_dotlist(list(overrides)))


def mlp(sizes, act=nn.GELU, dropout=0.0):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), act(), nn.Dropout(dropout)]
    return nn.Sequential(*layers[:-2]) if layers else nn.Identity()


# ----------------------------------------------------------------------------- autoencoder (YAML)

class LitAutoencoder(pl.LightningModule):
    def __init__(
        self,
        cfg: DictConfig,  # truth: hparam
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        m = cfg.model
        self.encoder = mlp([m.in_dim, *m.hidden, m.latent_dim])
        self.decoder = mlp([m.latent_dim, *reversed(list(m.hidden)), m.in_dim])

    def training_step(self, batch, batch_idx):
        x = batch
        return F.mse_loss(self.decoder(self.encoder(x)), x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class LitDenoisingAE(pl.LightningModule):
    """Curriculum of noise levels; each stage is one entry of `cfg.curriculum`."""

    def __init__(
        self,
        in_dim: int,
        latent_dim: int,
        stages: list,  # truth: hparam
        stage_names: list,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = mlp([in_dim, 32, latent_dim, 32, in_dim])


class LitAutoencoderPlain(pl.LightningModule):
    """The fixed version: the module converts the config itself before saving it."""

    def __init__(
        self,
        cfg,
        lr: float = 1e-3,
    ):
        super().__init__()
        cfg = OmegaConf.to_container(cfg, resolve=True)
        self.save_hyperparameters()
        m = cfg["model"]
        self.encoder = mlp([m["in_dim"], *m["hidden"], m["latent_dim"]])


def build_autoencoder(cfg):
    return LitAutoencoder(cfg, lr=cfg.optim.lr)


def build_denoising(cfg):
    stages = list(cfg.curriculum)
    names = [f"noise{s.noise}" for s in cfg.curriculum]
    return LitDenoisingAE(cfg.model.in_dim, cfg.model.latent_dim, stages, names)


def build_autoencoder_plain(cfg):
    return LitAutoencoderPlain(cfg, lr=float(cfg.optim.lr))


# ----------------------------------------------------------------------------- tabular (structured)

class LitTabular(pl.LightningModule):
    def __init__(
        self,
        arch,  # truth: hparam
        hidden_sizes,  # truth: hparam
        norm: str,
        dropout: float,
        num_features: int,
        num_classes: int,
        data_root,  # truth: hparam
        optim_cfg,  # truth: hparam
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        sizes = [num_features, *hidden_sizes]
        self.body = mlp(sizes, dropout=dropout)
        self.norm = nn.LayerNorm(sizes[-1]) if norm == "layer" else nn.BatchNorm1d(sizes[-1])
        self.head = nn.Linear(sizes[-1], num_classes)

    def forward(self, x):
        return self.head(self.norm(self.body(x)))

    def configure_optimizers(self):
        o = self.hparams.optim_cfg
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=o.weight_decay)


class LitTabularClean(pl.LightningModule):
    """Same model after the 'checkpoints must load with weights_only' cleanup."""

    def __init__(
        self,
        arch: str,
        hidden_sizes: List[int],
        norm: str,
        num_features: int,
        num_classes: int,
        data_root: str,
        optim_cfg: dict,
        betas: tuple,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.body = mlp([num_features, *hidden_sizes])
        self.head = nn.Linear(hidden_sizes[-1], num_classes)


class LitTabularRun(pl.LightningModule):
    """Sweep launcher version: model built outside, run settings flattened by dataclasses.asdict."""

    def __init__(
        self,
        backbone: nn.Module,
        cfg: DictConfig,
        run: dict,  # truth: hparam
        logging: dict,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone", "cfg"])
        self.backbone = backbone
        self.head = nn.Linear(cfg.model.hidden_sizes[-1], cfg.data.num_classes)


class LitTabularSelective(pl.LightningModule):
    def __init__(
        self,
        cfg: DictConfig,
        data_root: Path,
        lr: float,
        weight_decay: float,
    ):
        super().__init__()
        self.save_hyperparameters("lr", "weight_decay")
        self.net = mlp([cfg.data.num_features, *cfg.model.hidden_sizes, cfg.data.num_classes])


def build_tabular(cfg):
    return LitTabular(
        arch=cfg.model.arch,
        hidden_sizes=cfg.model.hidden_sizes,
        norm=cfg.model.norm.value,
        dropout=cfg.model.dropout,
        num_features=cfg.data.num_features,
        num_classes=cfg.data.num_classes,
        data_root=cfg.data.root,
        optim_cfg=cfg.optim,
        lr=cfg.optim.lr,
    )


def build_tabular_clean(cfg):
    return LitTabularClean(
        arch=cfg.model.arch.value,
        hidden_sizes=list(cfg.model.hidden_sizes),
        norm=cfg.model.norm.name.lower(),
        num_features=cfg.data.num_features,
        num_classes=cfg.data.num_classes,
        data_root=str(cfg.data.root),
        optim_cfg=OmegaConf.to_container(cfg.optim, resolve=True),
        betas=tuple(cfg.optim.betas),
    )


def build_tabular_run(cfg, run_cfg=None, log_cfg=None):
    run_cfg = run_cfg or RunConfig(name=f"tabular-{cfg.model.arch.value}")
    log_cfg = log_cfg or LoggingConfig()
    backbone = mlp([cfg.data.num_features, *cfg.model.hidden_sizes])
    return LitTabularRun(backbone, cfg, dataclasses.asdict(run_cfg), dataclasses.asdict(log_cfg), lr=cfg.optim.lr)


def build_tabular_selective(cfg):
    return LitTabularSelective(cfg, cfg.data.root, cfg.optim.lr, cfg.optim.weight_decay)


# ----------------------------------------------------------------------------- forecasting (structured)

class LitForecaster(pl.LightningModule):
    """Converts its config to a container first, like the Lightning docs suggest for Hydra users."""

    def __init__(
        self,
        cfg,  # truth: hparam
    ):
        super().__init__()
        cfg = OmegaConf.to_container(cfg, resolve=True)
        self.save_hyperparameters()
        self.net = mlp([cfg["lookback"], cfg["hidden"], cfg["horizon"] * len(cfg["quantiles"])])


class LitForecasterStr(pl.LightningModule):
    def __init__(
        self,
        cfg,
    ):
        super().__init__()
        cfg = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        self.save_hyperparameters()
        act = ACTIVATIONS[cfg["activation"].lower()]
        self.net = mlp([cfg["lookback"], cfg["hidden"], cfg["horizon"]], act=act)


class LitQuantileForecaster(pl.LightningModule):
    """Hydra-style `_partial_: true` optimizer: the module receives an optimizer factory."""

    def __init__(
        self,
        model_cfg: dict,  # truth: hparam
        optimizer,  # truth: hparam
        scheduler_fn=None,  # truth: hparam
        quantiles: tuple = (0.1, 0.5, 0.9),
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = mlp([model_cfg["lookback"], model_cfg["hidden"], model_cfg["horizon"] * len(quantiles)])

    def configure_optimizers(self):
        opt = self.hparams.optimizer(self.parameters())
        return {"optimizer": opt, "lr_scheduler": self.hparams.scheduler_fn(opt)}


class LitForecasterDictMerge(pl.LightningModule):
    def __init__(
        self,
        cfg: dict,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = mlp([cfg["lookback"], cfg["hidden"], cfg["horizon"]])


class LitForecasterDictMergeClean(pl.LightningModule):
    def __init__(
        self,
        cfg: dict,
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = mlp([cfg["lookback"], cfg["hidden"], cfg["horizon"]])


def build_forecaster(cfg):
    return LitForecaster(cfg)


def build_forecaster_str(cfg):
    return LitForecasterStr(cfg)


def build_quantile(cfg):
    model_cfg = OmegaConf.to_container(cfg)
    optimizer = functools.partial(torch.optim.AdamW, lr=cfg.lr, weight_decay=0.01)
    return LitQuantileForecaster(
        model_cfg,
        optimizer,
        scheduler_fn=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.horizon),
        quantiles=tuple(cfg.quantiles),
    )


def build_forecaster_merged(cfg, run_cfg=None):
    base = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    run_cfg = run_cfg or RunConfig(name="forecast")
    run = {"run_name": run_cfg.name, "ckpt_dir": run_cfg.ckpt_dir}
    return LitForecasterDictMerge({**base, **run})


def build_forecaster_merged_clean(cfg, run_cfg=None):
    params = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    run_cfg = run_cfg or RunConfig(name="forecast")
    params.update(run_name=run_cfg.name, ckpt_dir=str(run_cfg.ckpt_dir), tags=list(run_cfg.tags))
    return LitForecasterDictMergeClean(params, seed=11)


# ----------------------------------------------------------------------------- registry and entry point

REGISTRY = {
    "autoencoder": (ae_config, build_autoencoder),
    "denoising": (ae_config, build_denoising),
    "autoencoder_plain": (ae_config, build_autoencoder_plain),
    "tabular": (tabular_config, build_tabular),
    "tabular_clean": (tabular_config, build_tabular_clean),
    "tabular_run": (tabular_config, build_tabular_run),
    "tabular_selective": (tabular_config, build_tabular_selective),
    "forecast": (forecast_config, build_forecaster),
    "forecast_str": (forecast_config, build_forecaster_str),
    "quantile": (forecast_config, build_quantile),
    "forecast_merged": (forecast_config, build_forecaster_merged),
    "forecast_merged_clean": (forecast_config, build_forecaster_merged_clean),
}


def build_module(name, overrides=()):
    make_cfg, factory = REGISTRY[name]
    return factory(make_cfg(overrides))


def main(names=tuple(REGISTRY)):
    return {name: build_module(name) for name in names}


FACTORIES = {
    "Arch": lambda: Arch.MLP,
    "Activation": lambda: Activation.GELU,
    "Norm": lambda: Norm.BATCH,
    "LitAutoencoder": lambda: build_module("autoencoder"),
    "LitDenoisingAE": lambda: build_module("denoising"),
    "LitAutoencoderPlain": lambda: build_module("autoencoder_plain"),
    "LitTabular": lambda: build_module("tabular", ["model.dropout=0.2"]),
    "LitTabularClean": lambda: build_module("tabular_clean"),
    "LitTabularRun": lambda: build_module("tabular_run"),
    "LitTabularSelective": lambda: build_module("tabular_selective"),
    "LitForecaster": lambda: build_module("forecast", ["horizon=48"]),
    "LitForecasterStr": lambda: build_module("forecast_str"),
    "LitQuantileForecaster": lambda: build_module("quantile"),
    "LitForecasterDictMerge": lambda: build_module("forecast_merged"),
    "LitForecasterDictMergeClean": lambda: build_module("forecast_merged_clean"),
}
