"""LightningModules for the vocoder / TTS, motion forecasting and NeRF experiments.

Each module is built the way the experiment scripts build it: from argparse arguments,
from a model registry, from an OmegaConf config or from a dataclass experiment spec.
"""
import argparse
import dataclasses
import enum
import functools
import re
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf

# ----------------------------------------------------------------------------- shared bits


@dataclasses.dataclass
class MelSpec:
    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    fmax: float = 8000.0


class SpeakerEncoding(enum.Enum):
    LOOKUP = "lookup"
    D_VECTOR = "d_vector"


def english_cleaners(text):
    text = text.lower()
    text = re.sub(r"\s+", " ", text)
    return text.strip()


class MelStats:
    """Per-bin statistics over the training mels (what `compute_statistics.py` writes out)."""

    def __init__(self, mels):
        cat = np.concatenate(mels, axis=1)
        self.mean = cat.mean(axis=1)
        self.std = cat.std(axis=1) + 1e-5
        self.frames = cat.shape[1]
        self.energy_max = np.float32(np.abs(cat).max())


def fake_mels(n=4, n_mels=80, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(-5.0, 2.0, size=(n_mels, int(t))).astype(np.float32) for t in rng.integers(20, 40, n)]


class TinyGenerator(nn.Module):
    def __init__(self, n_mels=80, channels=32, upsample_rates=(8, 8, 4)):
        super().__init__()
        self.pre = nn.Conv1d(n_mels, channels, 7, padding=3)
        ups, ch = [], channels
        for r in upsample_rates:
            ups.append(nn.ConvTranspose1d(ch, max(ch // 2, 4), 2 * r, r, padding=r // 2))
            ch = max(ch // 2, 4)
        self.ups = nn.ModuleList(ups)
        self.post = nn.Conv1d(ch, 1, 7, padding=3)

    def forward(self, mel):
        x = self.pre(mel)
        for up in self.ups:
            x = up(F.leaky_relu(x, 0.1))
        return torch.tanh(self.post(x)).squeeze(1)


# ----------------------------------------------------------------------------- vocoder (argparse)


def parse_vocoder_args(argv=None):
    p = argparse.ArgumentParser("train_hifigan")
    p.add_argument("--data-root", type=Path, default=Path("data/LJSpeech-1.1/wavs"))
    p.add_argument("--n-mels", type=int, default=80)
    p.add_argument("--upsample-rates", type=int, nargs="+", default=[8, 8, 4])
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--betas", type=float, nargs=2, default=[0.8, 0.99])
    p.add_argument("--segment-size", type=int, default=8192)
    p.add_argument("--hop-length", type=int, default=256)
    return p.parse_args(argv)


class LitHiFiGAN(L.LightningModule):
    def __init__(
        self,
        n_mels,
        upsample_rates,
        lr,
        betas,
        audio,  # truth: hparam
        mel_mean,  # truth: hparam
        mel_std,
        data_root,  # truth: hparam
        segment_size=8192,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = TinyGenerator(n_mels, upsample_rates=tuple(upsample_rates))
        self.register_buffer("mel_mean_t", torch.as_tensor(mel_mean))
        self.register_buffer("mel_std_t", torch.as_tensor(mel_std))

    def forward(self, mel):
        return self.generator((mel - self.mel_mean_t[:, None]) / self.mel_std_t[:, None])

    def training_step(self, batch, batch_idx):
        mel, wav = batch
        opt = self.optimizers()
        loss = F.l1_loss(self(mel)[:, : wav.size(1)], wav)
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        self.log("train/l1", loss)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), self.hparams.lr, betas=tuple(self.hparams.betas))


def build_vocoder_from_args(args):
    stats = MelStats(fake_mels(n_mels=args.n_mels))
    audio = MelSpec(n_mels=args.n_mels, hop_length=args.hop_length)
    return LitHiFiGAN(
        n_mels=args.n_mels,
        upsample_rates=list(args.upsample_rates),
        lr=args.lr,
        betas=args.betas,
        audio=audio,
        mel_mean=stats.mean,
        mel_std=torch.from_numpy(stats.std),
        data_root=args.data_root,
        segment_size=args.segment_size,
    )


class LitVocoderFinetune(L.LightningModule):
    """Fine-tunes a generator on ground-truth-aligned mels; the pretrained net itself is not an hparam."""

    def __init__(self, generator, pretrained_path, lr=1e-5, freeze_pre=True, hop_length=256):
        super().__init__()
        self.save_hyperparameters(ignore=["generator"])
        self.generator = generator
        if freeze_pre:
            self.generator.pre.requires_grad_(False)

    def training_step(self, batch, batch_idx):
        mel, wav = batch
        return F.l1_loss(self.generator(mel)[:, : wav.size(1)], wav)

    def configure_optimizers(self):
        return torch.optim.Adam((p for p in self.parameters() if p.requires_grad), lr=self.hparams.lr)


def build_finetune(args, ckpt_dir="runs/hifigan"):
    gen = TinyGenerator(args.n_mels, upsample_rates=tuple(args.upsample_rates))
    return LitVocoderFinetune(gen, str(Path(ckpt_dir) / "g_02500000.pt"), lr=args.lr / 20, hop_length=args.hop_length)


def parse_disc_args(argv=None):
    p = argparse.ArgumentParser("train_mpd")
    p.add_argument("--periods", type=int, nargs="+", default=[2, 3, 5, 7, 11])
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--log-dir", default="runs/mpd")
    p.add_argument("--fp16", action="store_true")
    return p.parse_args(argv)


class LitMultiPeriodDiscriminator(L.LightningModule):
    def __init__(self, args):
        super().__init__()
        self.save_hyperparameters(args)
        self.discs = nn.ModuleList(nn.Conv2d(1, args.channels, (5, 1), (3, 1), padding=(2, 0))
                                   for _ in args.periods)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, betas=(0.8, 0.99))


# ----------------------------------------------------------------------------- TTS (registry)

MODELS = {}


def register(name):
    def deco(cls):
        MODELS[name] = cls
        return cls
    return deco


class SpeakerTable:
    def __init__(self, names):
        self.names = sorted(set(names))
        self.ids = {n: i for i, n in enumerate(self.names)}


@register("fastspeech")
class LitMultiSpeakerTTS(L.LightningModule):
    def __init__(
        self,
        n_symbols,
        n_speakers,
        speaker_map,
        speaker_encoding=SpeakerEncoding.LOOKUP,  # truth: hparam
        pitch_mean=0.0,
        energy_max=1.0,
        text_cleaner=english_cleaners,  # truth: hparam
        speaker_table=None,
        d_model=64,
        lr=1e-3,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["speaker_table"])
        self.embed = nn.Embedding(n_symbols, d_model)
        self.spk = nn.Embedding(n_speakers, d_model)
        self.decoder = nn.GRU(d_model, d_model, batch_first=True)
        self.mel = nn.Linear(d_model, 80)

    def forward(self, tokens, speaker):
        h, _ = self.decoder(self.embed(tokens) + self.spk(speaker)[:, None])
        return self.mel(h)

    def training_step(self, batch, batch_idx):
        tokens, speaker, mel = batch
        loss = F.mse_loss(self(tokens, speaker), mel)
        self.log("train/mel_mse", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def build_tts(name="fastspeech", **overrides):
    meta = pd.DataFrame({"speaker": ["p225", "p226", "p225", "p231"], "f0": [190.0, 120.0, 201.0, 150.0]})
    table = SpeakerTable(meta["speaker"].tolist())
    stats = MelStats(fake_mels())
    kwargs = dict(
        n_symbols=64,
        n_speakers=meta["speaker"].nunique(),
        speaker_map=table.ids,
        pitch_mean=float(meta["f0"].mean()),
        energy_max=stats.energy_max.item(),
        speaker_table=table,
    )
    kwargs.update(overrides)
    return MODELS[name](**kwargs)


# ----------------------------------------------------------------------------- forecasting (OmegaConf)

FORECAST_YAML = """
model:
  num_modes: 6
  hidden: 64
  history_steps: 20
  future_steps: 30
data:
  root: data/av2
  agent_types: [vehicle, pedestrian, cyclist]
  map_radius: 50.0
optim:
  lr: 1.0e-3
  weight_decay: 1.0e-4
  warmup_epochs: 2
"""


class LitTrajectoryForecaster(L.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        m = cfg.model
        self.encoder = nn.GRU(2, m.hidden, batch_first=True)
        self.head = nn.Linear(m.hidden, m.num_modes * m.future_steps * 2)

    def forward(self, hist):
        _, h = self.encoder(hist)
        return self.head(h[-1]).view(hist.size(0), self.hparams.model.num_modes, -1, 2)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.optim.lr,
                                 weight_decay=self.hparams.optim.weight_decay)


class LitMotionTransformer(L.LightningModule):
    def __init__(
        self,
        num_modes,
        hidden,
        history_steps,
        future_steps,
        agent_types,
        map_radius,
        loss_fn,  # truth: hparam
        optim,
        data_cfg,  # truth: hparam
        agent_weights=None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.criterion = loss_fn
        layer = nn.TransformerEncoderLayer(hidden, 4, hidden * 2, batch_first=True)
        self.inp = nn.Linear(2, hidden)
        self.encoder = nn.TransformerEncoder(layer, 1)
        self.head = nn.Linear(hidden, num_modes * future_steps * 2)

    def forward(self, hist):
        h = self.encoder(self.inp(hist))[:, -1]
        return self.head(h).view(hist.size(0), self.hparams.num_modes, self.hparams.future_steps, 2)

    def training_step(self, batch, batch_idx):
        hist, fut = batch
        pred = self(hist)
        err = (pred - fut[:, None]).norm(dim=-1).mean(-1)
        best = err.argmin(1)
        loss = self.criterion(pred[torch.arange(len(pred)), best], fut)
        self.log("train/reg", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.optim["lr"])


def load_forecast_cfg(overrides=()):
    return OmegaConf.merge(OmegaConf.create(FORECAST_YAML), OmegaConf.from_dotlist(list(overrides)))


def build_forecaster(cfg):
    return LitMotionTransformer(
        num_modes=cfg.model.num_modes,
        hidden=cfg.model.hidden,
        history_steps=cfg.model.history_steps,
        future_steps=cfg.model.future_steps,
        agent_types=list(cfg.data.agent_types),
        map_radius=cfg.data.map_radius,
        loss_fn=nn.SmoothL1Loss(beta=0.5),
        optim=dict(cfg.optim),
        data_cfg=dict(cfg.data),
        agent_weights={t: 1.0 for t in cfg.data.agent_types},
    )


class LitMapAwareForecaster(L.LightningModule):
    def __init__(
        self,
        lane_encoder,
        n_cities,
        city_lane_length,  # truth: hparam
        speed_limit_mean,  # truth: hparam
        intersection_ratio,
        lane_feature_names=("length", "speed_limit", "is_intersection"),
        hidden=64,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["lane_encoder"])
        self.lane_encoder = lane_encoder
        self.city_embed = nn.Embedding(n_cities, hidden)
        self.fuse = nn.Linear(hidden * 2, hidden)


def build_map_forecaster(lanes):
    return LitMapAwareForecaster(
        lane_encoder=nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 64)),
        n_cities=lanes["city"].nunique(),
        city_lane_length=lanes.groupby("city")["length"].mean(),
        speed_limit_mean=lanes["speed_limit"].mean(),
        intersection_ratio=float(lanes["is_intersection"].mean()),
        lane_feature_names=tuple(c for c in lanes.columns if c not in ("lane_id", "city")),
    )


def demo_lanes(n=30, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"lane_id": np.arange(n), "city": rng.choice(["PIT", "MIA"], n),
                         "length": rng.uniform(5, 80, n), "speed_limit": rng.choice([25.0, 45.0], n),
                         "is_intersection": rng.random(n) < 0.2})


# ----------------------------------------------------------------------------- NeRF (dataclass spec)


def stratified_samples(near, far, n_samples, perturb=1.0):
    t = torch.linspace(0.0, 1.0, n_samples)
    z = near * (1 - t) + far * t
    if perturb:
        z = z + (torch.rand_like(z) - 0.5) * (far - near) / n_samples
    return z


@dataclasses.dataclass
class NeRFExperiment:
    scene: str = "lego"
    netdepth: int = 8
    netwidth: int = 128
    n_samples: int = 32
    white_bkgd: bool = True
    lrate: float = 5e-4
    lrate_decay_steps: int = 250_000
    render: dict = dataclasses.field(default_factory=lambda: {"chunk": 4096, "raw_noise_std": 0.0})


class LitNeRF(L.LightningModule):
    def __init__(
        self,
        netdepth,
        netwidth,
        near,
        far,  # truth: hparam
        focal,
        poses,
        white_bkgd,
        sampler,  # truth: hparam
        activation=nn.Softplus,  # truth: hparam
        lr_lambda=None,  # truth: hparam
        lrate=5e-4,
        render=None,
    ):
        super().__init__()
        self.save_hyperparameters()
        layers, d = [], 3
        for _ in range(netdepth):
            layers += [nn.Linear(d, netwidth), nn.ReLU()]
            d = netwidth
        self.trunk = nn.Sequential(*layers)
        self.out = nn.Linear(netwidth, 4)
        self.sigma_act = activation()
        self.register_buffer("poses", poses.clone())

    def forward(self, pts):
        raw = self.out(self.trunk(pts))
        return torch.sigmoid(raw[..., :3]), self.sigma_act(raw[..., 3])

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lrate)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self.hparams.lr_lambda)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def make_lit_nerf(exp: NeRFExperiment):
    rng = np.random.default_rng(0)
    bds = np.stack([rng.uniform(2.0, 2.5, 20), rng.uniform(5.5, 6.0, 20)], 1)
    poses = np.tile(np.eye(4)[:3], (20, 1, 1)).astype(np.float32)
    W = 400
    focal = 0.5 * W / np.tan(0.5 * 0.6911112070083618)
    decay_steps = exp.lrate_decay_steps
    return LitNeRF(
        netdepth=exp.netdepth,
        netwidth=exp.netwidth,
        near=float(bds.min()) * 0.9,
        far=bds.max() * 1.0,
        focal=float(focal),
        poses=torch.from_numpy(poses),
        white_bkgd=exp.white_bkgd,
        sampler=functools.partial(stratified_samples, n_samples=exp.n_samples),
        activation=nn.Softplus,
        lr_lambda=lambda step: 0.1 ** (step / decay_steps),
        lrate=exp.lrate,
        render=dict(exp.render),
    )


NERF_YAML = """
netdepth: 8
netwidth: 256
multires: 10
n_samples: 64
n_importance: 128
bounds: [2.0, 6.0]
optim: {lr: 5.0e-4, decay_steps: 250000}
"""


class LitNeRFFromYaml(L.LightningModule):
    def __init__(self, cfg_dict):
        super().__init__()
        self.save_hyperparameters(cfg_dict)
        self.mlp = nn.Sequential(nn.Linear(3 + 6 * cfg_dict["multires"], cfg_dict["netwidth"]), nn.ReLU(),
                                 nn.Linear(cfg_dict["netwidth"], 4))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.optim["lr"])


def build_nerf_from_yaml(text=NERF_YAML, overrides=()):
    cfg = OmegaConf.merge(OmegaConf.create(text), OmegaConf.from_dotlist(list(overrides)))
    return LitNeRFFromYaml(OmegaConf.to_container(cfg, resolve=True))


class LitNeRFW(L.LightningModule):
    """NeRF in the wild: per-image appearance codes; camera arrays are data, not hparams."""

    def __init__(self, n_images, appearance_dim, image_ids, cameras, lr=5e-4, scene_bounds=(2.0, 6.0)):
        super().__init__()
        self.save_hyperparameters("n_images", "appearance_dim", "lr", "scene_bounds")
        self.appearance = nn.Embedding(n_images, appearance_dim)
        self.register_buffer("image_ids", torch.as_tensor(image_ids))
        self.register_buffer("cameras", torch.as_tensor(cameras, dtype=torch.float32))


def build_nerfw(n_images=12):
    ids = np.arange(n_images) * 3
    cams = np.random.default_rng(0).normal(size=(n_images, 3, 4))
    return LitNeRFW(n_images=len(ids), appearance_dim=48, image_ids=ids, cameras=cams,
                    scene_bounds=(float(cams[..., 3].min()), float(cams[..., 3].max())))


FACTORIES = {
    "LitHiFiGAN": lambda: build_vocoder_from_args(parse_vocoder_args([])),
    "LitVocoderFinetune": lambda: build_finetune(parse_vocoder_args([])),
    "LitMultiSpeakerTTS": lambda: build_tts("fastspeech"),
    "SpeakerTable": lambda: SpeakerTable(["p225", "p226"]),
    "MelStats": lambda: MelStats(fake_mels()),
    "LitTrajectoryForecaster": lambda: LitTrajectoryForecaster(load_forecast_cfg(["optim.lr=3e-4"])),
    "LitMotionTransformer": lambda: build_forecaster(load_forecast_cfg()),
    "LitMapAwareForecaster": lambda: build_map_forecaster(demo_lanes()),
    "LitNeRF": lambda: make_lit_nerf(NeRFExperiment(netdepth=2, netwidth=32)),
    "LitNeRFW": lambda: build_nerfw(),
    "LitMultiPeriodDiscriminator": lambda: LitMultiPeriodDiscriminator(parse_disc_args(["--fp16"])),
    "LitNeRFFromYaml": lambda: build_nerf_from_yaml(overrides=["netwidth=64", "multires=6"]),
    "SpeakerEncoding": lambda: SpeakerEncoding.D_VECTOR,
}
