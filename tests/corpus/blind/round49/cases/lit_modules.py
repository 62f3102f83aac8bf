"""Lightning wrappers for the three projects: source separation, wildfire spread and demand /
price elasticity.  Modules are built the way the training entry points build them: from the
argparse options, the dataclass / OmegaConf configs and the model registries of each project.
"""
import functools
import math

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

import music_source_separation as mss
import price_elasticity as pe
import wildfire_spread as wf


# ----------------------------------------------------------------------------- music


def mel_filterbank(sample_rate, n_fft, n_mels=8, fmin=0.0, fmax=None):
    """Slaney-ish triangular filters, numpy (as in most separation repos that skip librosa)."""
    fmax = fmax or sample_rate / 2
    hz_to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
    mel_to_hz = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)
    mels = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    hz = mel_to_hz(mels)
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    fb = np.zeros((n_mels, len(bins)), dtype=np.float32)
    for m in range(1, n_mels + 1):
        lo, c, hi = hz[m - 1], hz[m], hz[m + 1]
        fb[m - 1] = np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0, None)
    return fb


def random_gain(stems, low=0.25, high=1.25):
    g = torch.empty(stems.shape[0], 1).uniform_(low, high)
    return stems * g


class LitUnmix(L.LightningModule):
    def __init__(
        self,
        separator,  # truth: hparam
        target="vocals",
        sample_rate=44100,
        n_fft=4096,
        n_hop=1024,
        lr=1e-3,
        weight_decay=1e-5,
        input_mean=None,
        loss_fn=nn.MSELoss(),  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.separator = separator
        self.stft = mss.STFT(n_fft, n_hop)
        self.loss_fn = loss_fn

    def forward(self, mixture):
        return self.separator(self.stft(mixture))

    def training_step(self, batch, batch_idx):
        mixture, target = batch
        loss = self.loss_fn(self(mixture), self.stft(target))
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class LitMaskSeparator(L.LightningModule):
    """Multi-target mask estimator on mel features; the backbone is passed in and not stored."""

    def __init__(
        self,
        backbone,
        mel_basis,  # truth: hparam
        sources=mss.SOURCES,
        sample_rate=44100,
        max_bin=1487,
        augment=None,  # truth: hparam
        mixing_prob=0.5,
        optimizer_name="adam",
        sched_cfg=None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.register_buffer("mel", torch.as_tensor(mel_basis))
        self.heads = nn.ModuleDict({s: nn.Linear(mel_basis.shape[0], mel_basis.shape[1]) for s in sources})

    def forward(self, mag):
        feats = torch.einsum("mf,bft->btm", self.mel, mag)
        return {s: torch.sigmoid(h(feats)).transpose(1, 2) * mag for s, h in self.heads.items()}

    def training_step(self, batch, batch_idx):
        mix, stems = batch
        if self.hparams.augment is not None:
            stems = self.hparams.augment(stems)
        out = self(mix)
        return sum(F.l1_loss(out[s], stems[:, i]) for i, s in enumerate(self.hparams.sources))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **(self.hparams.sched_cfg or {}))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val/loss"}}


class SeparationDataModule(L.LightningDataModule):
    def __init__(self, root="data/musdb18hq", target="vocals", seq_dur=6.0, batch_size=16,
                 samples_per_track=64, num_workers=4, sources=("vocals", "drums", "bass", "other")):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        stems, mix = mss.synth_stems(6, 512)
        self.train_set = torch.utils.data.TensorDataset(mix[:4], stems[:4, 0])

    def train_dataloader(self):
        return torch.utils.data.DataLoader(self.train_set, batch_size=self.hparams.batch_size)


def build_unmix_module(argv=()):
    args = mss.parse_args(list(argv))
    tracks = mss.make_track_table(seed=args.seed)
    rate = int(tracks["rate"].mode()[0])
    nb_bins = args.nfft // 2 + 1
    max_bin = int(mss.bandwidth_to_max_bin(rate, args.nfft, args.bandwidth))
    stft = mss.STFT(args.nfft, args.nhop)
    _, mixtures = mss.synth_stems(4, 512, seed=args.seed)
    mean, _ = mss.input_statistics(stft, mixtures, max_bin)
    separator = mss.OpenUnmixLite(nb_bins, args.hidden_size, args.nb_channels, max_bin=max_bin)
    return LitUnmix(separator, target=args.target, sample_rate=rate, n_fft=args.nfft, n_hop=args.nhop,
                    lr=args.lr, weight_decay=args.weight_decay, input_mean=mean)


def build_mask_separator(argv=()):
    args = mss.parse_args(list(argv))
    tracks = mss.make_track_table(seed=args.seed)
    rate = int(tracks["rate"].mode()[0])
    backbone = nn.Sequential(nn.Conv1d(8, 8, 3, padding=1), nn.ReLU())
    return LitMaskSeparator(
        backbone,
        mel_filterbank(rate, args.nfft, n_mels=8),
        sample_rate=rate,
        max_bin=int(mss.bandwidth_to_max_bin(rate, args.nfft, args.bandwidth)),
        augment=functools.partial(random_gain, low=0.25, high=1.25),
        sched_cfg={"factor": args.lr_decay_gamma, "patience": args.lr_decay_patience},
    )


# ----------------------------------------------------------------------------- wildfire


class LitFireSpread(L.LightningModule):
    def __init__(
        self,
        in_channels=6,
        hidden=8,
        activation=wf.Activation.GELU,  # truth: hparam
        dropout=0.1,
        pos_weight=1.0,  # truth: hparam
        channel_mean=None,
        channel_std=None,
        threshold=0.5,
        season_start=None,
        region_bbox=None,
        data_dir="data/next_day_wildfire_spread",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = wf.SpreadCNN(in_channels, hidden, activation, dropout)
        self.criterion = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([float(pos_weight)]))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.criterion(self(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=3e-3)


class LitFireConvLSTM(L.LightningModule):
    """Config-driven variant: the whole experiment config is the hyperparameter set."""

    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        g = cfg.grid
        self.encoder = nn.Conv2d(len(g.channels), cfg.model.hidden, 3, padding=1)
        self.gates = nn.Conv2d(2 * cfg.model.hidden, 4 * cfg.model.hidden, 3, padding=1)
        self.head = nn.Conv2d(cfg.model.hidden, 1, 1)

    def forward(self, seq):  # (batch, time, channels, H, W)
        h = c = torch.zeros(seq.shape[0], self.hparams.model.hidden, *seq.shape[-2:])
        for t in range(seq.shape[1]):
            i, f, o, g = self.gates(torch.cat([self.encoder(seq[:, t]), h], 1)).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return self.head(h).squeeze(1)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.train.lr)


class LitFireRiskRegressor(L.LightningModule):
    """Regresses burned area per cell from fire-weather indices."""

    def __init__(
        self,
        encoder,
        region,  # truth: hparam
        fwi_thresholds=(5.2, 11.2, 21.3, 38.0),
        loss="huber",
        huber_delta=1.0,
        crs="EPSG:4326",
        cell_km=0.375,
        lr=1e-3,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(self.encoder(x).mean((-1, -2)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        pred = self(x).squeeze(-1)
        if self.hparams.loss == "huber":
            return F.huber_loss(pred, y, delta=self.hparams.huber_delta)
        return F.mse_loss(pred, y)


class FireDataModule(L.LightningDataModule):
    def __init__(self, data_dir="data/next_day_wildfire_spread", grid_size=8, channels=("fuel", "slope"),
                 batch_size=4, val_fraction=0.25, season=("2021-06-01", "2021-10-31"), num_workers=2):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        x, y = wf.synth_fire_grids(16, self.hparams.grid_size, len(self.hparams.channels), seed=0)
        self.full = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))


def build_fire_module(cfg=None):
    cfg = cfg or wf.ExperimentConfig()
    g = cfg.grid
    x, y = wf.synth_fire_grids(16, g.size, len(g.channels), cfg.train.seed)
    pos = (y > 0).sum()
    region = wf.load_region(cfg.region_yaml)
    return LitFireSpread(
        in_channels=len(g.channels),
        hidden=cfg.model.hidden,
        activation=cfg.model.activation,
        dropout=cfg.model.dropout,
        pos_weight=(y.size - pos) / pos,
        channel_mean=x.mean(axis=(0, 2, 3)).tolist(),
        channel_std=torch.from_numpy(x.std(axis=(0, 2, 3))),
        threshold=cfg.train.threshold,
        season_start=region["fire_season"]["start"].isoformat(),
        region_bbox=tuple(region["bbox"]),
        data_dir=str(cfg.train.data_dir),
    )


def build_fire_convlstm():
    cfg = OmegaConf.structured(wf.ExperimentConfig)
    cfg.model.hidden = 4
    return LitFireConvLSTM(cfg)


def build_fire_risk():
    cfg = wf.ExperimentConfig()
    region = wf.load_region(cfg.region_yaml)
    encoder = nn.Sequential(nn.Conv2d(len(cfg.grid.channels), 8, 3, padding=1), nn.ReLU())
    return LitFireRiskRegressor(encoder, region, fwi_thresholds=tuple(region["fwi_thresholds"]),
                                crs=region["crs"], cell_km=cfg.grid.cell_km)


# ----------------------------------------------------------------------------- demand / elasticity


def make_clipper(max_beta):
    def clip(beta):
        return beta.clamp(max=max_beta)
    return clip


class LitDemand(L.LightningModule):
    def __init__(
        self,
        model_name="loglog_mlp",
        n_skus=100,
        n_weeks=52,  # truth: hparam
        n_features=5,
        feature_names=None,
        scaler=None,  # truth: hparam
        optim_kwargs=None,  # truth: hparam
        train_cfg=None,
        log_target=True,
        quantiles=(0.1, 0.5, 0.9),
    ):
        super().__init__()
        self.save_hyperparameters()
        cls = pe.MODEL_REGISTRY[model_name]
        self.model = cls(n_skus=n_skus, n_categories=3, n_features=n_features)
        self.week_emb = nn.Embedding(int(n_weeks), 2)

    def forward(self, sku, cat, log_price, feats):
        return self.model(sku, cat, log_price, feats)

    def training_step(self, batch, batch_idx):
        *inputs, log_qty = batch
        loss = F.mse_loss(self(*inputs), log_qty)
        self.log("train/mse", loss)
        return loss

    def configure_optimizers(self):
        kw = dict(self.hparams.optim_kwargs or {})
        kw["betas"] = tuple(kw.get("betas", (0.9, 0.999)))
        return torch.optim.AdamW(self.parameters(), **kw)


class LitElasticityNet(L.LightningModule):
    def __init__(
        self,
        backbone_name="linear",
        price_transform=np.log,  # truth: hparam
        clip_fn=None,  # truth: hparam
        cutoff_date=None,
        currency="EUR",
        price_floor=0.0,
        holdout_weeks=4,
        elasticity_prior=None,
        prior_strength=0.1,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = pe.MODEL_REGISTRY[backbone_name](n_skus=12, n_categories=3, n_features=5)
        self.prior = torch.tensor(list((elasticity_prior or {"x": -1.0}).values()))

    def forward(self, sku, cat, price, feats):
        log_price = torch.log(price)
        return self.model(sku, cat, log_price, feats)

    def training_step(self, batch, batch_idx):
        *inputs, log_qty = batch
        beta = self.model.beta
        if self.hparams.clip_fn is not None:
            beta = self.hparams.clip_fn(beta)
        prior = self.hparams.prior_strength * (beta - self.prior[: beta.numel()]).pow(2).sum()
        return F.mse_loss(self(*inputs), log_qty) + prior


class DemandDataModule(L.LightningDataModule):
    def __init__(self, experiment="elasticity_v3", n_skus=12, n_weeks=20, holdout_weeks=4, batch_size=64,
                 start="2024-01-01", categories=("grocery", "electronics", "apparel")):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        cfg = pe.load_config([f"data.n_skus={self.hparams.n_skus}", f"data.n_weeks={self.hparams.n_weeks}"])
        df = pe.make_transactions(cfg)
        self.train_df, self.test_df, _ = pe.split_holdout(df, cfg)


def build_demand_module(overrides=()):
    cfg = pe.load_config(list(overrides))
    df = pe.make_transactions(cfg)
    train_df, _, _ = pe.split_holdout(df, cfg)
    pipe = pe.FeaturePipeline().fit(train_df)
    return LitDemand(
        model_name=cfg.model.name,
        n_skus=df["sku"].nunique(),
        n_weeks=df["week"].max() + 1,
        n_features=pipe.poly.n_output_features_,
        feature_names=list(pipe.poly.get_feature_names_out()),
        scaler=pipe.scaler,
        optim_kwargs=dict(cfg.optim),
        train_cfg=dict(cfg.train),
        log_target=True,
    )


MODULE_REGISTRY = {"demand": build_demand_module}


def register_module(name):
    def deco(fn):
        MODULE_REGISTRY[name] = fn
        return fn
    return deco


@register_module("elasticity")
def build_elasticity_module(overrides=()):
    cfg = pe.load_config(list(overrides))
    df = pe.make_transactions(cfg)
    _, _, cutoff = pe.split_holdout(df, cfg)
    models = pe.fit_category_elasticities(df)
    return LitElasticityNet(
        backbone_name="linear",
        clip_fn=make_clipper(-0.05),
        cutoff_date=cutoff.strftime("%Y-%m-%d"),
        currency=pe.Currency(cfg.pricing.currency).value,
        price_floor=float(pe.Decimal(str(cfg.pricing.floor))),
        holdout_weeks=cfg.data.holdout_weeks,
        elasticity_prior={cat: float(m.coef_[0]) for cat, m in models.items()},
        prior_strength=math.sqrt(0.01),
    )


FACTORIES = {
    "LitUnmix": build_unmix_module,
    "LitMaskSeparator": build_mask_separator,
    "LitFireSpread": build_fire_module,
    "LitFireConvLSTM": build_fire_convlstm,
    "LitFireRiskRegressor": build_fire_risk,
    "LitDemand": lambda: MODULE_REGISTRY["demand"](),
    "LitElasticityNet": lambda: MODULE_REGISTRY["elasticity"](["pricing.currency=EUR"]),
}
