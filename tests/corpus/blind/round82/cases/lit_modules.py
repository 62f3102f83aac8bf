"""Lightning ports of the three projects: PV nowcasting, code completion, pedestrian trajectories.

Every module is built by a `build_*` function from the project's config (an OmegaConf YAML for
trajectories, dataclasses for the LM, a plain dict plus a telemetry frame for PV), the way the
`train.py` entry points do it; `BUILDERS` maps the `task:` key of a run config to its builder.
"""
import enum
import functools
from dataclasses import dataclass

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, TensorDataset

# ------------------------------------------------------------------ shared helpers

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
DISTANCES = {
    "l2": lambda a, b: (a - b).norm(dim=-1),
    "l1": lambda a, b: (a - b).abs().sum(-1),
}


def pinball_loss(pred, target, quantiles):
    diff = target.unsqueeze(-1) - pred
    return torch.maximum(quantiles * diff, (quantiles - 1) * diff).mean()


def circumsolar_mask(images, radius=0.1):
    """Zero a disc around the brightest pixel (the sun) of each sky image."""
    b, _, h, w = images.shape
    flat = images.mean(1).flatten(1).argmax(1)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    cy, cx = (flat // w).float() / h, (flat % w).float() / w
    disc = ((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2) < radius ** 2
    return images * (~disc).unsqueeze(1)


def telemetry_frame(days=3, tz="Europe/Berlin", seed=0):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2023-07-01", periods=days * 96, freq="15min", tz=tz)
    cz = np.clip(np.sin(np.pi * (idx.hour + idx.minute / 60 - 6) / 14), 0, None)
    pv = 9.6 * cz * np.clip(1 - rng.gamma(0.6, 0.3, len(idx)), 0.05, 1)
    return pd.DataFrame({"pv_kw": pv, "cos_zenith": cz, "temp_air": 15 + 10 * cz}, index=idx)


# ------------------------------------------------------------------ PV nowcasting

class PVNowcastModule(pl.LightningModule):
    def __init__(
        self,
        n_features: int = 3,
        hidden: int = 32,
        horizon: int = 4,
        quantiles: tuple = (0.1, 0.5, 0.9),
        lr: float = 1e-3,
        timezone: str = "UTC",
        loss: str = "pinball",
        target_scaler=None,  # truth: hparam
        capacity_kw: float = 1.0,  # truth: hparam
        train_end=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.gru = nn.GRU(n_features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, horizon * len(quantiles))
        self.register_buffer("q", torch.tensor(quantiles))

    def forward(self, x):
        _, h = self.gru(x)
        return self.head(h[-1]).view(x.shape[0], self.hparams.horizon, -1)

    def training_step(self, batch, _):
        x, y = batch
        loss = pinball_loss(self(x), y, self.q)
        self.log("train/pinball", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class SkyCamNowcaster(pl.LightningModule):
    def __init__(self, encoder: nn.Module, image_size: int = 64, channels: int = 3, horizon_min: int = 10,
                 csi_clip: float = 1.2, aux_weights=None, lr: float = 3e-4,
                 sun_mask=None):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        self.head = nn.LazyLinear(1)

    def forward(self, images):
        if self.hparams.sun_mask is not None:
            images = self.hparams.sun_mask(images)
        return self.head(self.encoder(images).flatten(1)).clamp(0, self.hparams.csi_clip)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


ENCODERS = {
    "tiny_cnn": lambda c: nn.Sequential(nn.Conv2d(c, 8, 5, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(4)),
    "resnet_stub": lambda c: nn.Sequential(nn.Conv2d(c, 16, 7, stride=4), nn.BatchNorm2d(16), nn.ReLU(),
                                           nn.AdaptiveAvgPool2d(2)),
}


def build_pv_module(cfg, frame):
    split = int(len(frame) * cfg.get("train_frac", 0.8))
    scaler = StandardScaler().fit(frame[["pv_kw"]].iloc[:split])
    return PVNowcastModule(
        n_features=frame.shape[1],
        hidden=cfg["hidden"],
        horizon=cfg["horizon"],
        quantiles=tuple(cfg["quantiles"]),
        lr=cfg["lr"],
        timezone=str(frame.index.tz),
        target_scaler=scaler,
        capacity_kw=frame["pv_kw"].max(),
        train_end=frame.index[split],
    )


def build_skycam(cfg, csi_history):
    return SkyCamNowcaster(
        encoder=ENCODERS[cfg["encoder"]](cfg["channels"]),
        image_size=cfg["image_size"],
        channels=cfg["channels"],
        horizon_min=cfg["horizon_min"],
        csi_clip=float(np.quantile(csi_history, 0.995)),
        aux_weights={k: float(v) for k, v in cfg["aux_weights"].items()},
        sun_mask=circumsolar_mask if cfg["mask_sun"] else None,
    )


class PVDataModule(pl.LightningDataModule):
    def __init__(self, data_dir: str = "data/pv", sites: tuple = ("kassel_lab",), lookback: int = 16,
                 horizon: int = 4, batch_size: int = 64, val_days: int = 1, num_workers: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.train_set = self.val_set = None

    def setup(self, stage=None):
        frame = telemetry_frame(days=3)
        x = torch.tensor(frame.to_numpy(), dtype=torch.float32)
        lb, hz = self.hparams.lookback, self.hparams.horizon
        xs = torch.stack([x[t - lb:t] for t in range(lb, len(x) - hz)])
        ys = torch.stack([x[t:t + hz, 0] for t in range(lb, len(x) - hz)])
        cut = len(xs) - self.hparams.val_days * 96
        self.train_set, self.val_set = TensorDataset(xs[:cut], ys[:cut]), TensorDataset(xs[cut:], ys[cut:])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)


# ------------------------------------------------------------------ code completion

class Lang(str, enum.Enum):
    PYTHON = "python"
    TYPESCRIPT = "typescript"
    RUST = "rust"


class CharTokenizer:
    def __init__(self, alphabet="".join(chr(i) for i in range(32, 127)) + "\n\t"):
        self.specials = ["<pad>", "<bos>", "<eos>", "<fim_pre>", "<fim_mid>", "<fim_suf>"]
        self.itos = self.specials + list(alphabet)
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        self.pad_id = self.stoi["<pad>"]

    def __len__(self):
        return len(self.itos)

    def encode(self, text):
        return [self.stoi.get(ch, self.pad_id) for ch in text]


def inverse_sqrt(step, warmup):
    return min((step + 1) / warmup, (warmup / (step + 1)) ** 0.5)


@dataclass
class LMRunConfig:
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    max_len: int = 128
    dropout: float = 0.1
    warmup_steps: int = 100
    fim_rate: float = 0.5
    language: str = "python"
    trial: int = 2
    precision: str = "bf16"


LR_GRID = np.geomspace(1e-4, 1e-3, 5)
WD_GRID = np.linspace(0.0, 0.2, 5)


class CodeCompletionModule(pl.LightningModule):
    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        max_len: int = 128,
        dropout: float = 0.1,
        lr: float = 3e-4,
        weight_decay: float = 0.1,  # truth: hparam
        warmup_steps: int = 100,
        fim_rate: float = 0.5,
        pad_id: int = 0,
        compute_dtype: torch.dtype = torch.float32,
        tokenizer=None,  # truth: hparam
        language: Lang = Lang.PYTHON,  # truth: hparam
        lr_schedule=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.pos = nn.Parameter(torch.zeros(1, max_len, d_model))
        block = nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, dropout, batch_first=True)
        self.blocks = nn.TransformerEncoder(block, n_layers, enable_nested_tensor=False)
        self.lm_head = nn.Linear(d_model, vocab_size)

    def forward(self, ids):
        t = ids.shape[1]
        h = self.embed(ids) + self.pos[:, :t]
        mask = nn.Transformer.generate_square_subsequent_mask(t)
        return self.lm_head(self.blocks(h, mask=mask, is_causal=True))

    def training_step(self, ids, _):
        logits = self(ids[:, :-1])
        return F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], ignore_index=self.hparams.pad_id)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self.hparams.lr_schedule or (lambda s: 1.0))
        return [opt], [{"scheduler": sched, "interval": "step"}]


class CompletionRanker(pl.LightningModule):
    """Re-ranks sampled completions; the scorer backbone is passed in and not stored."""

    def __init__(self, scorer: nn.Module, d_model: int = 64, margin: float = 0.2, lr: float = 1e-4,
                 max_candidates: int = 8):
        super().__init__()
        self.save_hyperparameters("d_model", "margin", "lr")
        self.scorer = scorer
        self.proj = nn.Linear(d_model, 1)

    def forward(self, feats):
        return self.proj(self.scorer(feats)).squeeze(-1)


def build_codelm(run: LMRunConfig, tokenizer=None):
    tokenizer = tokenizer or CharTokenizer()
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    return CodeCompletionModule(
        vocab_size=len(tokenizer),
        d_model=run.d_model,
        n_layers=run.n_layers,
        n_heads=run.n_heads,
        max_len=run.max_len,
        dropout=run.dropout,
        lr=float(LR_GRID[run.trial]),
        weight_decay=WD_GRID[run.trial],
        warmup_steps=run.warmup_steps,
        fim_rate=run.fim_rate,
        pad_id=tokenizer.pad_id,
        compute_dtype=dtypes[run.precision],
        tokenizer=tokenizer,
        language=Lang(run.language),
        lr_schedule=functools.partial(inverse_sqrt, warmup=run.warmup_steps),
    )


class CodeCompletionDataModule(pl.LightningDataModule):
    def __init__(self, languages=("python",), max_len: int = 128, batch_size: int = 16, fim_rate: float = 0.5,
                 pad_id: int = 0):
        super().__init__()
        self.save_hyperparameters()

    def train_dataloader(self):
        ids = torch.randint(6, 100, (64, self.hparams.max_len))
        return DataLoader(ids, batch_size=self.hparams.batch_size)


# ------------------------------------------------------------------ pedestrian trajectories

TRAJ_YAML = """
data: {scenes: [eth, hotel, univ, zara1, zara2], test_scene: eth, obs_len: 8, pred_len: 12, fps: 2.5, skip: 1}
model: {arch: social_lstm, embed_dim: 32, hidden: 48, cell: lstm, grid_size: 4, neighborhood: 2.0,
        distance: l2, noise_std: 0.05, d_model: 64, n_heads: 4, n_layers: 2}
train: {lr: 1.0e-3, best_of_k: 20, batch_size: 32}
"""


class TrajectoryBase(pl.LightningModule):
    def __init__(self, obs_len: int = 8, pred_len: int = 12, lr: float = 1e-3, best_of_k: int = 20):
        super().__init__()
        self.save_hyperparameters()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    def validation_step(self, batch, _):
        obs, fut = batch
        samples = torch.stack([self(obs, sample=True) for _ in range(self.hparams.best_of_k)])
        dist = self.hparams.get("distance_fn", DISTANCES["l2"])(samples, fut[None])
        self.log("val/min_ade", dist.mean(-1).min(0).values.mean())


class SocialLSTMModule(TrajectoryBase):
    def __init__(
        self,
        embed_dim: int = 32,
        hidden: int = 48,
        grid_size: int = 4,
        neighborhood: float = 2.0,
        frame_dt: float = 0.4,
        cell_cls=nn.LSTM,  # truth: hparam
        scenes=None,  # truth: hparam
        distance_fn=None,  # truth: hparam
        noise=None,  # truth: hparam
        **base_kwargs,
    ):
        super().__init__(**base_kwargs)
        self.embed = nn.Linear(2, embed_dim)
        self.rnn = cell_cls(embed_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 2 * self.hparams.pred_len)

    def forward(self, obs, sample=False):
        out, _ = self.rnn(self.embed(obs - obs[:, :1]))
        rel = self.out(out[:, -1]).view(-1, self.hparams.pred_len, 2)
        if sample and self.hparams.noise is not None:
            rel = rel + self.hparams.noise.sample(rel.shape)
        return obs[:, -1:] + rel.cumsum(1)


class TrajectoryTransformer(pl.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        m = cfg.model
        self.inp = nn.Linear(2, m.d_model)
        layer = nn.TransformerEncoderLayer(m.d_model, m.n_heads, 2 * m.d_model, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, m.n_layers, enable_nested_tensor=False)
        self.out = nn.Linear(m.d_model, 2 * cfg.data.pred_len)


class GoalConditionedPredictor(pl.LightningModule):
    def __init__(self, cfg: dict):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.goal_head = nn.Linear(2 * cfg["data"]["obs_len"], cfg["goal_grid"][0] * cfg["goal_grid"][1])


class TrajectoryDataModule(pl.LightningDataModule):
    def __init__(self, scenes: list = None, test_scene: str = "eth", obs_len: int = 8, pred_len: int = 12,
                 batch_size: int = 32, skip: int = 1):
        super().__init__()
        self.save_hyperparameters()

    def train_dataloader(self):
        n = 4 * self.hparams.batch_size
        obs = torch.randn(n, self.hparams.obs_len, 2).cumsum(1)
        fut = obs[:, -1:] + torch.randn(n, self.hparams.pred_len, 2).cumsum(1)
        return DataLoader(TensorDataset(obs, fut), batch_size=self.hparams.batch_size)


def load_traj_cfg(overrides=()):
    return OmegaConf.merge(OmegaConf.create(TRAJ_YAML), OmegaConf.from_dotlist(list(overrides)))


def build_trajectory(cfg):
    m, d = cfg.model, cfg.data
    if m.arch == "transformer":
        return TrajectoryTransformer(cfg)
    if m.arch == "goal":
        plain = OmegaConf.to_container(cfg, resolve=True)
        plain["goal_grid"] = (8, 8)
        return GoalConditionedPredictor(plain)
    return SocialLSTMModule(
        embed_dim=m.embed_dim,
        hidden=m.hidden,
        grid_size=m.grid_size,
        neighborhood=m.neighborhood,
        frame_dt=d.skip / d.fps,
        cell_cls=CELLS[m.cell],
        scenes=d.scenes,
        distance_fn=DISTANCES[m.distance],
        noise=torch.distributions.Normal(0.0, m.noise_std),
        obs_len=d.obs_len,
        pred_len=d.pred_len,
        lr=cfg.train.lr,
        best_of_k=cfg.train.best_of_k,
    )


def build_traj_datamodule(cfg):
    d = cfg.data
    return TrajectoryDataModule(scenes=list(d.scenes), test_scene=d.test_scene, obs_len=d.obs_len,
                                pred_len=d.pred_len, batch_size=cfg.train.batch_size, skip=d.skip)


PV_RUN = {"task": "pv", "hidden": 32, "horizon": 4, "quantiles": [0.1, 0.5, 0.9], "lr": 2e-3}
SKY_RUN = {"task": "skycam", "encoder": "tiny_cnn", "channels": 3, "image_size": 64, "horizon_min": 10,
           "aux_weights": {"csi": 1.0, "ramp": 0.3}, "mask_sun": True}

BUILDERS = {
    "pv": lambda: build_pv_module(PV_RUN, telemetry_frame()),
    "skycam": lambda: build_skycam(SKY_RUN, np.random.default_rng(0).uniform(0, 1.3, 500)),
    "codelm": lambda: build_codelm(LMRunConfig()),
    "social_lstm": lambda: build_trajectory(load_traj_cfg()),
    "traj_transformer": lambda: build_trajectory(load_traj_cfg(["model.arch=transformer"])),
    "goal": lambda: build_trajectory(load_traj_cfg(["model.arch=goal"])),
}

FACTORIES = {
    "PVNowcastModule": BUILDERS["pv"],
    "SkyCamNowcaster": BUILDERS["skycam"],
    "CodeCompletionModule": BUILDERS["codelm"],
    "CompletionRanker": lambda: CompletionRanker(nn.Sequential(nn.Linear(16, 64), nn.Tanh()), d_model=64),
    "TrajectoryBase": lambda: TrajectoryBase(obs_len=8, pred_len=12),
    "SocialLSTMModule": BUILDERS["social_lstm"],
    "TrajectoryTransformer": BUILDERS["traj_transformer"],
    "GoalConditionedPredictor": BUILDERS["goal"],
    "PVDataModule": lambda: PVDataModule(sites=("kassel_lab", "leipzig_park"), batch_size=128),
    "CodeCompletionDataModule": lambda: CodeCompletionDataModule(languages=[Lang.PYTHON.value, "rust"]),
    "TrajectoryDataModule": lambda: build_traj_datamodule(load_traj_cfg()),
    "Lang": lambda: Lang("rust"),
}
