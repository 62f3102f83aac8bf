"""LightningModules for the three projects (single-cell, renewables, speech SSL), the way the
team's `train.py` entry points build them: factory functions, a name -> class registry, argparse,
dataclass configs and OmegaConf YAML.  Every module calls `self.save_hyperparameters(...)`."""
import argparse
import dataclasses
import datetime
import enum
import functools
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from pandas.tseries.holiday import USFederalHolidayCalendar
from sklearn.preprocessing import LabelEncoder

MODEL_REGISTRY = {}


def register(name):
    def deco(cls):
        MODEL_REGISTRY[name] = cls
        return cls
    return deco


def build_model(name, **kwargs):
    return MODEL_REGISTRY[name](**kwargs)


def _toy_expression(n_cells=96, n_genes=40, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(2.0, size=(n_cells, n_genes)).astype(np.float32)
    obs = pd.DataFrame({"cell_type": rng.choice(["T", "B", "NK"], n_cells),
                        "donor": rng.integers(0, 4, n_cells)})
    var_names = pd.Index([f"G{i}" for i in range(n_genes - 2)] + ["MT-CO1", "MT-ND1"])
    return counts, obs, var_names


# ============================================================================ single-cell

class ScVAE(pl.LightningModule):
    """scVI-like VAE on the HVG subset, negative binomial likelihood."""

    def __init__(
        self,
        n_genes: int,
        latent_dim: int = 10,
        hvg_mask=None,  # truth: hparam
        gene_names=(),
        n_batches: int = 1,
        batch_categories=None,
        library_log_mean: float = 0.0,
        dispersion: str = "gene",
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Linear(n_genes + n_batches, 64), nn.ReLU(), nn.Linear(64, 2 * latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim + n_batches, 64), nn.ReLU(), nn.Linear(64, n_genes))
        self.log_theta = nn.Parameter(torch.zeros(n_genes))

    def forward(self, x, b):
        mu, logvar = self.encoder(torch.cat([torch.log1p(x), b], 1)).chunk(2, 1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.decoder(torch.cat([z, b], 1)).softmax(1), mu, logvar

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def build_scvae(n_top=16, seed=0):
    counts, obs, var_names = _toy_expression(seed=seed)
    X = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)
    disp = X.var(0) / np.maximum(X.mean(0), 1e-6)
    disp[var_names.str.startswith("MT-")] = -np.inf
    hvg = np.zeros(len(var_names), bool)
    hvg[np.argsort(disp)[::-1][:n_top]] = True
    lib = np.log(counts.sum(1))
    return ScVAE(
        n_genes=int(hvg.sum()),
        hvg_mask=hvg,
        gene_names=var_names[hvg].tolist(),
        n_batches=obs["donor"].nunique(),
        batch_categories=sorted(obs["donor"].unique().tolist()),
        library_log_mean=float(lib.mean()),
    )


@register("celltype_mlp")
class CellTypeClassifier(pl.LightningModule):
    def __init__(
        self,
        encoder: nn.Module,
        n_classes: int,
        label_encoder=None,  # truth: hparam
        class_names=None,
        class_weights=None,
        loss_fn=None,  # truth: hparam
        lr: float = 1e-3,
        freeze_encoder: bool = True,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        self.head = nn.Linear(encoder[-1].out_features, n_classes)
        self.loss_fn = loss_fn or nn.CrossEntropyLoss(weight=class_weights)

    def training_step(self, batch, _):
        x, y = batch
        with torch.set_grad_enabled(not self.hparams.freeze_encoder):
            h = self.encoder(x)
        loss = self.loss_fn(self.head(h), y)
        self.log("train/ce", loss)
        return loss


def build_celltype_classifier(seed=0):
    counts, obs, _ = _toy_expression(seed=seed)
    le = LabelEncoder().fit(obs["cell_type"])
    y = le.transform(obs["cell_type"])
    freq = np.bincount(y, minlength=len(le.classes_))
    weights = torch.tensor(freq.sum() / (len(freq) * freq), dtype=torch.float32)
    encoder = nn.Sequential(nn.Linear(counts.shape[1], 32), nn.ReLU(), nn.Linear(32, 16))
    return build_model(
        "celltype_mlp",
        encoder=encoder,
        n_classes=len(le.classes_),
        label_encoder=le,
        class_names=le.classes_.tolist(),
        class_weights=weights,
        loss_fn=nn.CrossEntropyLoss(weight=weights, label_smoothing=0.05),
    )


@register("hvg_gate")
class HVGGateModule(pl.LightningModule):
    """Learns a soft gene gate; only the listed scalars are meant to be hyperparameters."""

    def __init__(self, n_genes, n_top=2000, flavor="seurat_v3", min_mean=0.0125, gene_filter=None, expr_stats=None):  # truth: hparam[gene_filter]
        super().__init__()
        min_mean = float(min_mean)
        self.save_hyperparameters("n_top", "flavor", "min_mean", "gene_filter")
        self.gate_logits = nn.Parameter(torch.zeros(n_genes))
        self.expr_stats = expr_stats

    def forward(self, x):
        return x * torch.sigmoid(self.gate_logits)


def build_hvg_gate():
    counts, _, var_names = _toy_expression()
    stats = pd.DataFrame({"mean": counts.mean(0), "var": counts.var(0)}, index=var_names)
    return build_model("hvg_gate", n_genes=len(var_names), n_top=16, min_mean=np.float32(0.05),
                       gene_filter=lambda g: not g.startswith("MT-"),
                       expr_stats=stats)


# ============================================================================ renewables

class Season(enum.Enum):
    WINTER = "DJF"
    SUMMER = "JJA"


@dataclass
class ForecastCfg:
    quantiles: tuple = (0.1, 0.5, 0.9)
    horizon: str = "24h"
    hidden: int = 64
    lr: float = 1e-3
    data_root: Path = Path("/data/scada/north_ridge")
    features: list = field(default_factory=lambda: ["wind_speed", "irradiance", "temp", "hour_sin", "hour_cos"])


class QuantileForecaster(pl.LightningModule):
    def __init__(
        self,
        cfg: ForecastCfg,  # truth: hparam
        n_features: int,
        quantiles=(0.1, 0.5, 0.9),
        horizon=None,  # truth: hparam
        holiday_dates=None,
        season=None,  # truth: hparam
        target_scale: float = 1.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, len(quantiles)))
        self.register_buffer("q", torch.tensor(quantiles))

    def training_step(self, batch, _):
        x, y = batch
        diff = y[:, None] / self.hparams.target_scale - self.net(x)
        loss = torch.maximum(self.q * diff, (self.q - 1) * diff).mean()
        self.log("train/pinball", loss)
        return loss


def build_forecaster(cfg: ForecastCfg):
    idx = pd.date_range("2024-01-01", periods=24 * 14, freq="h")
    power = pd.Series(np.random.default_rng(0).gamma(2.0, 5.0, len(idx)), index=idx)
    hol = USFederalHolidayCalendar().holidays(idx[0], idx[-1])
    return QuantileForecaster(
        cfg,
        n_features=len(cfg.features),
        quantiles=cfg.quantiles,
        horizon=pd.Timedelta(cfg.horizon),
        holiday_dates=[d.date().isoformat() for d in hol],
        season=Season.WINTER if idx[0].month in (12, 1, 2) else Season.SUMMER,
        target_scale=float(power.std()),
    )


WIND_YAML = """
site: {name: north_ridge, capacity_mw: 48.0, tz: America/Chicago, hub_height_m: 95}
data: {resample: {rule: 1h, agg: mean}, features: [wind_speed, wind_dir_sin, wind_dir_cos, temp]}
model: {hidden: 64, quantiles: [0.05, 0.25, 0.5, 0.75, 0.95], dropout: 0.1}
optim: {lr: 0.002, weight_decay: 0.0001, warmup_steps: 200}
"""


class WindPowerLit(pl.LightningModule):
    def __init__(
        self,
        cfg: DictConfig,  # truth: hparam
        turbine_ids=None,
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.turbine_ids = list(turbine_ids or [])
        n_q = len(cfg.model.quantiles)
        self.net = nn.Sequential(nn.Linear(len(cfg.data.features), cfg.model.hidden), nn.ReLU(),
                                 nn.Linear(cfg.model.hidden, n_q))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.optim.lr,
                                 weight_decay=self.hparams.optim.weight_decay)


class SolarQuantileLit(pl.LightningModule):
    def __init__(
        self,
        site: str,
        capacity_mw: float,
        features,
        quantiles,  # truth: hparam
        resample=None,
        optim_cfg=None,  # truth: hparam
        lr: float = 1e-3,
        tz: str = "UTC",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(len(features), len(quantiles))

    def forward(self, x):
        return self.net(x) * self.hparams.capacity_mw


def build_wind_and_solar(yaml_text=WIND_YAML, overrides=("optim.lr=0.001",)):
    cfg = OmegaConf.merge(OmegaConf.create(yaml_text), OmegaConf.from_dotlist(list(overrides)))
    wind = WindPowerLit(cfg, turbine_ids=[f"WTG{i:02d}" for i in range(1, 13)])
    solar = SolarQuantileLit(
        site=cfg.site.name,
        capacity_mw=cfg.site.capacity_mw,
        features=list(cfg.data.features),
        quantiles=cfg.model.quantiles,
        resample=OmegaConf.to_container(cfg.data.resample),
        optim_cfg=cfg.optim,
        lr=cfg.optim.lr,
        tz=cfg.site.tz,
    )
    return wind, solar


# ============================================================================ speech SSL

def anneal_tau(step, start=2.0, end=0.5, decay=0.999995):
    return max(end, start * decay ** step)


class Stage(enum.Enum):
    PRETRAIN = "pretrain"
    FINETUNE = "finetune"


@register("w2v_contrastive")
class ContrastiveSpeechLit(pl.LightningModule):
    def __init__(
        self,
        feature_encoder: nn.Module,  # truth: hparam
        quantizer: nn.Module,
        codebook_size: int = 320,
        num_groups: int = 2,
        tau_schedule=None,  # truth: hparam
        mask_prob: float = 0.65,
        mask_length: int = 10,
        code_prior=None,  # truth: hparam
        codebook_counts=None,
        stage: str = "pretrain",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["quantizer"])
        self.feature_encoder = feature_encoder
        self.quantizer = quantizer
        self.tau = tau_schedule(0) if tau_schedule else 2.0

    def training_step(self, batch, _):
        z = self.feature_encoder(batch[:, None]).transpose(1, 2)
        logits = self.quantizer(z)
        probs = logits.softmax(-1).mean((0, 1))
        ppl = torch.exp(-(probs * probs.clamp_min(1e-7).log()).sum())
        self.log("train/code_ppl", ppl)
        return -ppl


def build_contrastive(warmup_steps=20):
    enc = nn.Sequential(nn.Conv1d(1, 32, 10, 5), nn.GELU(), nn.Conv1d(32, 32, 8, 4), nn.GELU())
    prior = defaultdict(float)
    for code in np.random.default_rng(0).integers(0, 320, 200).tolist():
        prior[code] += 1 / 200
    return build_model(
        "w2v_contrastive",
        feature_encoder=enc,
        quantizer=nn.Linear(32, 2 * 320),
        tau_schedule=functools.partial(anneal_tau, start=2.0, end=0.5),
        mask_prob=float(np.interp(0, [0, warmup_steps], [0.3, 0.65])),
        code_prior=prior,
        codebook_counts=Counter(np.random.default_rng(1).integers(0, 320, 50).tolist()),
        stage=Stage.PRETRAIN.value,
    )


def w2v_parser():
    p = argparse.ArgumentParser("w2v-pretrain")
    p.add_argument("--manifest", default="data/librispeech/train-960.tsv")
    p.add_argument("--conv-dim", type=int, default=32)
    p.add_argument("--codebook-size", type=int, default=320)
    p.add_argument("--mask-prob", type=float, default=0.65)
    p.add_argument("--tau", type=float, nargs=3, default=[2.0, 0.5, 0.999995])
    p.add_argument("--lr", type=float, default=5e-4)
    return p


class Wav2VecLit(pl.LightningModule):
    def __init__(self, args):
        super().__init__()
        self.save_hyperparameters(args)
        self.conv = nn.Conv1d(1, args.conv_dim, 10, 5)
        self.proj = nn.Linear(args.conv_dim, args.codebook_size)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def build_w2v_from_argv(argv=("--lr", "1e-4", "--mask-prob", "0.5")):
    return Wav2VecLit(w2v_parser().parse_args(list(argv)))


class HubertLit(pl.LightningModule):
    """HuBERT iteration 2: targets are k-means labels of iteration-1 features."""

    def __init__(
        self,
        args,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(args)
        self.proj = nn.Linear(args.conv_dim, args.n_clusters)


def build_hubert(argv=("--n-clusters", "100")):
    p = w2v_parser()
    p.add_argument("--km-path", type=Path, default=Path("exp/hubert/km_iter1.bin"))
    p.add_argument("--n-clusters", type=int, default=500)
    return HubertLit(p.parse_args(list(argv)))


@dataclass
class ProbeConfig:
    lr: float = 1e-3
    temperature: float = 0.07
    n_speakers: int = 40


class SpeakerProbeLit(pl.LightningModule):
    def __init__(
        self,
        feat_dim: int,
        n_speakers: int,
        lr=1e-3,
        temperature=0.07,  # truth: hparam
        layer: int = 6,
    ):
        super().__init__()
        lr = float(lr)
        self.save_hyperparameters()
        self.temperature = float(temperature)
        self.head = nn.Linear(feat_dim, n_speakers, bias=False)

    def forward(self, h):
        return F.normalize(self.head(F.normalize(h, dim=-1)), dim=-1) / self.temperature


def build_speaker_probe(pc: ProbeConfig = ProbeConfig()):
    sweep = np.geomspace(0.03, 0.3, 4)
    lrs = np.array([pc.lr, pc.lr * 3], dtype=np.float32)
    return SpeakerProbeLit(feat_dim=32, n_speakers=pc.n_speakers, lr=lrs[0], temperature=sweep[1])


FACTORIES = {
    "ScVAE": build_scvae,
    "CellTypeClassifier": build_celltype_classifier,
    "HVGGateModule": build_hvg_gate,
    "Season": lambda: Season.WINTER,
    "ForecastCfg": ForecastCfg,
    "QuantileForecaster": lambda: build_forecaster(ForecastCfg()),
    "WindPowerLit": lambda: build_wind_and_solar()[0],
    "SolarQuantileLit": lambda: build_wind_and_solar()[1],
    "Stage": lambda: Stage.PRETRAIN,
    "ContrastiveSpeechLit": build_contrastive,
    "Wav2VecLit": build_w2v_from_argv,
    "HubertLit": build_hubert,
    "ProbeConfig": ProbeConfig,
    "SpeakerProbeLit": build_speaker_probe,
}


if __name__ == "__main__":
    for build in (build_scvae, build_celltype_classifier, build_hvg_gate, build_contrastive,
                  build_w2v_from_argv, build_hubert, build_speaker_probe):
        print(type(build()).__name__)
    print([type(m).__name__ for m in build_wind_and_solar()])
    print(type(build_forecaster(ForecastCfg(horizon="48h"))).__name__)
