"""Lightning wrappers for the three projects (precipitation downscaling, clinical NER, drone RL).

Every module is built by `build_module(task)` from one experiment YAML through small registries
(models, losses, transforms, reward functions), the way `train.py --task ner` does it.
"""
import argparse
import re
from enum import Enum
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import DataLoader, TensorDataset

EXPERIMENTS_YAML = """
precip:
  backbone: srcnn
  scale: 4
  width: 32
  in_vars: [tp, tcwv, z500]
  loss: wet_weighted_l1
  transform: log1p
  thresholds: [0.1, 1.0, 5.0, 20.0]
  lr: 3.0e-4
  weight_decay: 1.0e-4
  unet: {base: 16, depth: 3, tile: 64, max_epochs: 40}
ner:
  scheme: bioes
  entity_types: [PROBLEM, TEST, TREATMENT, DRUG, DOSE]
  normalizer: lower_strip_digits
  hidden: 128
  dropout: 0.25
  lr: 1.0e-3
  max_len: 96
  label_smoothing: 0.05
drone:
  algo: ppo
  obs_dim: 7
  act_dim: 3
  hidden: [64, 64]
  gamma: 0.99
  tau: 0.005
  init_alpha: 0.2
  reward: waypoint_progress
  wind_mean: [0.05, 0.0, 0.0]
  log_dir: runs/drone
  ppo: {lr: 3.0e-4, clip: 0.2, rollout: 2048, epochs: 10}
"""

MODELS, LOSSES, REWARDS = {}, {}, {}
TRANSFORMS = {"log1p": np.log1p, "sqrt": np.sqrt, "none": None}
TOKEN_RE = re.compile(r"\d+(?:\.\d+)?|[A-Za-z]+(?:[-'/.][A-Za-z]+)*\.?|[^\sA-Za-z\d]")


def register(table, name):
    def deco(obj):
        table[name] = obj
        return obj
    return deco


def load_experiment(task, overrides=()):
    cfg = OmegaConf.merge(OmegaConf.create(EXPERIMENTS_YAML), OmegaConf.from_dotlist(list(overrides)))
    return cfg[task]


class TaggingScheme(Enum):
    BIO = "bio"
    BIOES = "bioes"


# --------------------------------------------------------------------------- registered parts

@register(MODELS, "srcnn")
class SRCNNBackbone(nn.Module):
    def __init__(self, in_ch=4, width=32, scale=4):
        super().__init__()
        self.scale = scale
        self.net = nn.Sequential(nn.Conv2d(in_ch, width, 9, padding=4), nn.ReLU(),
                                 nn.Conv2d(width, width // 2, 5, padding=2), nn.ReLU(),
                                 nn.Conv2d(width // 2, 1, 5, padding=2))

    def forward(self, x):
        return F.relu(self.net(F.interpolate(x, scale_factor=self.scale, mode="bilinear")))


@register(LOSSES, "wet_weighted_l1")
class WetWeightedL1(nn.Module):
    def __init__(self, wet_threshold=0.1, wet_weight=4.0):
        super().__init__()
        self.wet_threshold, self.wet_weight = wet_threshold, wet_weight

    def forward(self, pred, target):
        w = 1.0 + (self.wet_weight - 1.0) * (target > self.wet_threshold).float()
        return (w * (pred - target).abs()).mean()


class BiLSTMEncoder(nn.Module):
    def __init__(self, vocab_size=500, dim=64, hidden=64):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.out_dim = 2 * hidden

    def forward(self, ids):
        return self.lstm(self.emb(ids))[0]


@register(REWARDS, "waypoint_progress")
def waypoint_progress(prev_dist, dist, action):
    return (prev_dist - dist) - 0.01 * float((action ** 2).sum())


def mlp(sizes):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers[:-1])


# --------------------------------------------------------------------------- precipitation

class PrecipDownscalingModule(L.LightningModule):
    def __init__(
        self,
        backbone: str = "srcnn",
        scale: int = 4,
        in_vars: tuple = ("tp",),
        width: int = 32,
        loss=None,  # truth: hparam
        norm_stats=None,  # truth: hparam
        thresholds=(0.1, 1.0),  # truth: hparam
        target_transform=None,  # truth: hparam
        lr: float = 3e-4,
        weight_decay: float = 0.0,
        orography=None,
        lat_bounds=(45.0, 47.0),
        warmup_epochs: int = 2,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = MODELS[backbone](len(in_vars) + 1, width, scale)
        self.criterion = loss if loss is not None else nn.L1Loss()
        self.register_buffer("orog", orography if orography is not None else torch.zeros(1, 1, 1, 1))

    def forward(self, coarse):
        orog = F.avg_pool2d(self.orog, self.hparams.scale).expand(coarse.shape[0], 1, -1, -1)
        return self.model(torch.cat([coarse, orog], dim=1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.criterion(self(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self(x)
        self.log("val/rmse", torch.sqrt(F.mse_loss(pred, y)))
        for thr in self.hparams.thresholds:
            hits = ((pred >= thr) & (y >= thr)).sum()
            union = ((pred >= thr) | (y >= thr)).sum().clamp(min=1)
            self.log(f"val/csi_{thr:g}", hits / union)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=self.hparams.warmup_epochs)
        return [opt], [sched]


class PrecipUNetModule(L.LightningModule):
    def __init__(self, in_channels=4, base=16, depth=3, loss=None, lr=1e-3, max_epochs=40,
                 wet_threshold=0.1, train_period="1991-2010", tile=64, dry_fraction=0.5):
        super().__init__()
        self.save_hyperparameters(ignore=["loss"])
        chans = [in_channels] + [base * 2 ** i for i in range(depth)]
        self.down = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(chans[:-1], chans[1:]))
        self.head = nn.Conv2d(chans[-1], 1, 1)
        self.loss = loss or WetWeightedL1(wet_threshold)

    def forward(self, x):
        for conv in self.down:
            x = F.gelu(conv(x))
        return F.softplus(self.head(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss(self(x), y)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return {"optimizer": opt,
                "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.hparams.max_epochs)}


class PrecipDataModule(L.LightningDataModule):
    def __init__(self, data_dir: str = "/data/era5_cerra", batch_size: int = 8, patch: int = 32,
                 scale: int = 4, n_samples: int = 24, num_workers: int = 0):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        rng = np.random.default_rng(0)
        p, s, n = self.hparams.patch, self.hparams.scale, self.hparams.n_samples
        fine = rng.gamma(0.6, 4.0, (n, 1, p, p)).astype(np.float32)
        coarse = fine.reshape(n, 1, p // s, s, p // s, s).mean(axis=(3, 5))
        coarse = np.repeat(coarse, 3, axis=1)
        self.train_set = TensorDataset(torch.from_numpy(coarse), torch.from_numpy(fine))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True,
                          num_workers=self.hparams.num_workers)


# --------------------------------------------------------------------------- clinical NER

def lower_strip_digits(text):
    return re.sub(r"\d", "0", text.lower().strip())


def build_normalizer(name):
    if name == "lower_strip_digits":
        return lambda tok: lower_strip_digits(tok)
    return str.lower


class ClinicalNERModule(L.LightningModule):
    def __init__(
        self,
        encoder: nn.Module,
        tag_names: list,
        scheme=TaggingScheme.BIO,  # truth: hparam
        class_weights=None,  # truth: hparam
        token_pattern=TOKEN_RE,  # truth: hparam
        normalizer=None,  # truth: hparam
        entity_types=None,  # truth: hparam
        dropout: float = 0.3,
        lr: float = 2e-3,
        max_len: int = 64,
        pad_label_id: int = -100,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.out_dim, len(tag_names))
        weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float)
        self.loss_fn = nn.CrossEntropyLoss(weight=weight, ignore_index=pad_label_id,
                                           label_smoothing=label_smoothing)

    def forward(self, ids):
        return self.classifier(self.drop(self.encoder(ids)))

    def training_step(self, batch, batch_idx):
        ids, tags = batch
        logits = self(ids)
        loss = self.loss_fn(logits.flatten(0, 1), tags.flatten())
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class NERSpanModule(L.LightningModule):
    """Span classifier over enumerated spans; only the scalar hparams are recorded."""

    def __init__(self, vocab_size, hidden=128, n_tags=6, dropout=0.2, lr=1e-3, max_span_width=8,
                 embeddings=None):
        super().__init__()
        self.save_hyperparameters("hidden", "n_tags", "dropout", "lr", "max_span_width")
        self.emb = nn.Embedding(int(vocab_size), hidden)
        if embeddings is not None:
            self.emb.weight.data[:, :embeddings.shape[1]] = torch.from_numpy(embeddings)
        self.width_emb = nn.Embedding(max_span_width + 1, 16)
        self.scorer = nn.Sequential(nn.Linear(2 * hidden + 16, hidden), nn.ReLU(), nn.Dropout(dropout),
                                    nn.Linear(hidden, n_tags))

    def forward(self, ids, starts, ends):
        h = self.emb(ids)
        b = torch.arange(ids.shape[0])[:, None]
        feats = torch.cat([h[b, starts], h[b, ends], self.width_emb((ends - starts).clamp(max=8))], -1)
        return self.scorer(feats)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class ClinicalNERDataModule(L.LightningDataModule):
    def __init__(self, data_dir: str = "/data/n2c2_2010", batch_size: int = 16, max_len: int = 64,
                 tag_names=("O",), lowercase: bool = True):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        n, t = 32, self.hparams.max_len
        ids = torch.randint(1, 500, (n, t))
        tags = torch.randint(0, len(self.hparams.tag_names), (n, t))
        self.train_set = TensorDataset(ids, tags)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)


# --------------------------------------------------------------------------- drone RL

class DronePPOModule(L.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.actor = mlp([cfg.obs_dim, *cfg.hidden, cfg.act_dim])
        self.critic = mlp([cfg.obs_dim, *cfg.hidden, 1])
        self.log_std = nn.Parameter(torch.full((cfg.act_dim,), -0.5))

    def training_step(self, batch, batch_idx):
        obs, act, logp_old, adv, ret = batch
        d = torch.distributions.Normal(self.actor(obs), self.log_std.exp())
        ratio = (d.log_prob(act).sum(-1) - logp_old).exp()
        clip = self.hparams.ppo.clip
        pg = -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()
        vl = F.mse_loss(self.critic(obs).squeeze(-1), ret)
        return pg + 0.5 * vl

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.ppo.lr)


class DroneSACModule(L.LightningModule):
    def __init__(
        self,
        obs_dim: int = 7,
        act_dim: int = 3,
        hidden=(64, 64),
        action_low=None,  # truth: hparam
        action_high=None,
        gamma: float = 0.99,
        tau: float = 0.005,
        init_alpha: float = 0.2,
        target_entropy=None,
        reward_fn=None,  # truth: hparam
        log_dir=None,  # truth: hparam
        algo: str = "sac",
        wind_mean=(0.0, 0.0, 0.0),
        device_name="cpu",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.actor = mlp([obs_dim, *hidden, 2 * act_dim])
        self.q = mlp([obs_dim + act_dim, *hidden, 1])
        self.q_target = mlp([obs_dim + act_dim, *hidden, 1])
        self.q_target.load_state_dict(self.q.state_dict())
        self.log_alpha = nn.Parameter(torch.tensor(float(np.log(init_alpha))))
        self.target_entropy = float(target_entropy if target_entropy is not None else -act_dim)

    def training_step(self, batch, batch_idx):
        actor_opt, q_opt = self.optimizers()
        o, a, r, o2, d = batch
        with torch.no_grad():
            mu, _ = self.actor(o2).chunk(2, -1)
            target = r + self.hparams.gamma * (1 - d) * self.q_target(torch.cat([o2, torch.tanh(mu)], -1)).squeeze(-1)
        q_loss = F.mse_loss(self.q(torch.cat([o, a], -1)).squeeze(-1), target)
        q_opt.zero_grad()
        self.manual_backward(q_loss)
        q_opt.step()

    def configure_optimizers(self):
        return (torch.optim.Adam(self.actor.parameters(), lr=3e-4),
                torch.optim.Adam(list(self.q.parameters()) + [self.log_alpha], lr=3e-4))


class DroneBCModule(L.LightningModule):
    """Behaviour cloning from pilot demonstrations, configured from the command line."""

    def __init__(self, args):
        super().__init__()
        self.save_hyperparameters(args)
        self.policy = mlp([args.obs_dim, args.hidden, args.hidden, args.act_dim])

    def training_step(self, batch, batch_idx):
        obs, act = batch
        return F.mse_loss(torch.tanh(self.policy(obs)), act)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class DroneRolloutDataModule(L.LightningDataModule):
    def __init__(self, n_steps: int = 256, batch_size: int = 64, obs_dim: int = 7, act_dim: int = 3,
                 env_cfg=None):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        h = self.hparams
        self.data = TensorDataset(torch.randn(h.n_steps, h.obs_dim), torch.rand(h.n_steps, h.act_dim) * 2 - 1)

    def train_dataloader(self):
        return DataLoader(self.data, batch_size=self.hparams.batch_size, shuffle=True)


# --------------------------------------------------------------------------- builders

class Box:
    def __init__(self, low=-1.0, high=1.0, shape=(3,)):
        self.low = np.full(shape, low, dtype=np.float32)
        self.high = np.full(shape, high, dtype=np.float32)
        self.shape = shape


def fit_precip_stats(n=16, patch=32, seed=0):
    rng = np.random.default_rng(seed)
    fine = rng.gamma(0.6, 4.0, (n, patch, patch)).astype(np.float32)
    fine *= rng.random(fine.shape) > 0.4
    x = np.log1p(fine)
    lat = np.linspace(45.0, 47.0, patch)
    orog = np.abs(rng.normal(500, 300, (1, 1, patch, patch))).astype(np.float32)
    return {"mean": x.mean(), "std": x.std()}, lat, orog, fine


def build_precip(cfg):
    stats, lat, orog, fine = fit_precip_stats()
    return PrecipDownscalingModule(
        backbone=cfg.backbone,
        scale=cfg.scale,
        in_vars=tuple(cfg.in_vars),
        width=cfg.width,
        loss=LOSSES[cfg.loss](),
        norm_stats=stats,
        thresholds=cfg.thresholds,
        target_transform=TRANSFORMS[cfg.transform],
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        orography=torch.from_numpy(orog),
        lat_bounds=(float(lat.min()), float(lat.max())),
    )


def build_precip_unet(cfg):
    stats, lat, orog, fine = fit_precip_stats()
    u = cfg.unet
    return PrecipUNetModule(in_channels=len(cfg.in_vars), base=u.base, depth=u.depth,
                            loss=LOSSES[cfg.loss](wet_threshold=cfg.thresholds[0]), lr=cfg.lr,
                            max_epochs=u.max_epochs, wet_threshold=float(np.float32(cfg.thresholds[0])),
                            tile=u.tile, dry_fraction=float((fine == 0).mean()))


def build_ner(cfg):
    tags = ["O"] + [f"{p}-{e}" for e in cfg.entity_types for p in ("B", "I", "E", "S")]
    le = LabelEncoder().fit(tags)
    rng = np.random.default_rng(1)
    y = le.transform(rng.choice(tags, 400, p=[0.8] + [0.2 / (len(tags) - 1)] * (len(tags) - 1)))
    weights = compute_class_weight("balanced", classes=np.unique(y), y=y)
    return ClinicalNERModule(
        encoder=BiLSTMEncoder(hidden=cfg.hidden // 2),
        tag_names=le.classes_.tolist(),
        scheme=TaggingScheme(cfg.scheme),
        class_weights=weights,
        token_pattern=TOKEN_RE,
        normalizer=build_normalizer(cfg.normalizer),
        entity_types=frozenset(cfg.entity_types),
        dropout=cfg.dropout,
        lr=cfg.lr,
        max_len=cfg.max_len,
        label_smoothing=cfg.label_smoothing,
    )


def build_ner_span(cfg):
    ids = np.random.default_rng(2).integers(0, 800, 5000)
    pretrained = np.random.default_rng(3).normal(size=(ids.max() + 1, 32)).astype(np.float32)
    return NERSpanModule(vocab_size=ids.max() + 1, hidden=cfg.hidden, n_tags=len(cfg.entity_types) + 1,
                         dropout=cfg.dropout, lr=cfg.lr, embeddings=pretrained)


def build_drone_sac(cfg, out_root="runs"):
    space = Box(shape=(cfg.act_dim,))
    return DroneSACModule(
        obs_dim=cfg.obs_dim,
        act_dim=cfg.act_dim,
        hidden=list(cfg.hidden),
        action_low=space.low,
        action_high=space.high.tolist(),
        gamma=cfg.gamma,
        tau=cfg.tau,
        init_alpha=cfg.init_alpha,
        target_entropy=-float(np.prod(space.shape)),
        reward_fn=REWARDS[cfg.reward],
        log_dir=Path(out_root) / cfg.log_dir,
        algo=cfg.algo,
        wind_mean=tuple(cfg.wind_mean),
        device_name=str(torch.device("cpu")),
    )


def build_drone_bc(argv=()):
    p = argparse.ArgumentParser()
    p.add_argument("--obs-dim", type=int, default=7)
    p.add_argument("--act-dim", type=int, default=3)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--demos", type=str, default="demos/pilot_*.npz")
    p.add_argument("--epochs", type=int, default=20)
    return DroneBCModule(p.parse_args(list(argv)))


BUILDERS = {
    "precip": build_precip,
    "precip_unet": build_precip_unet,
    "ner": build_ner,
    "ner_span": build_ner_span,
    "drone_ppo": DronePPOModule,
    "drone_sac": build_drone_sac,
}


def build_module(task, overrides=()):
    section = {"precip_unet": "precip", "ner_span": "ner", "drone_ppo": "drone", "drone_sac": "drone"}.get(task, task)
    return BUILDERS[task](load_experiment(section, overrides))


FACTORIES = {
    "TaggingScheme": lambda: TaggingScheme.BIOES,
    "ClinicalNERModule": lambda: build_module("ner"),
    "NERSpanModule": lambda: build_module("ner_span"),
    "PrecipDownscalingModule": lambda: build_module("precip"),
    "PrecipUNetModule": lambda: build_module("precip_unet"),
    "DronePPOModule": lambda: build_module("drone_ppo"),
    "DroneSACModule": lambda: build_module("drone_sac"),
    "DroneBCModule": lambda: build_drone_bc(["--hidden", "64"]),
    "ClinicalNERDataModule": lambda: ClinicalNERDataModule(
        tag_names=tuple(["O"] + [f"B-{e}" for e in load_experiment("ner").entity_types]), max_len=96),
    "DroneRolloutDataModule": lambda: DroneRolloutDataModule(
        env_cfg=OmegaConf.to_container(load_experiment("drone").ppo)),
}
