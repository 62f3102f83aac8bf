"""LightningModules / LightningDataModules for the three projects (sleep staging, cross-lingual
QA, warehouse navigation), built from one OmegaConf config through a builder registry, the way
`train.py task=sleep` would build them."""
import enum
import re
import types
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.utils.class_weight import compute_class_weight

DEFAULTS = {
    "sleep": {
        "data": {"root": "/data/sleep-edf-20", "channels": ["EEG Fpz-Cz", "EOG horizontal"], "fs": 100.0,
                 "label_scheme": "aasm", "batch_size": 32, "val_fraction": 0.2},
        "model": {"width": 16, "dropout": 0.25, "lr": 1e-3, "weight_decay": 1e-4, "balanced": True},
    },
    "qa": {
        "languages": ["en", "de", "es", "ar", "hi", "vi"],
        "train_lang": "en",
        "eval_langs": ["de", "es", "ar"],
        "sampling_temperature": 3.0,
        "model": {"emb_dim": 64, "hidden": 64, "max_answer_len": 30, "lr": 3e-4, "warmup_ratio": 0.1},
        "tokenizer": {"lowercase": True, "max_len": 384, "doc_stride": 128},
    },
    "warehouse": {
        "env": {"height": 8, "width": 8, "rack_density": 0.2, "seed": 3},
        "agent": {"gamma": 0.97, "lr": 1e-3, "hidden": [64, 64], "eps": [1.0, 0.05, 5000], "target_update": 250},
        "reward": {"step": -0.01, "collision": -0.5, "goal": 1.0, "shaping": 0.05},
    },
}


def load_cfg(task, *overrides):
    cfg = OmegaConf.create(DEFAULTS[task])
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))


BUILDERS = {}


def builder(task):
    def deco(fn):
        BUILDERS[task] = fn
        return fn
    return deco


def build_module(task, cfg=None):
    return BUILDERS[task](cfg if cfg is not None else load_cfg(task))


# ============================================================================= sleep staging

class LabelScheme(enum.Enum):
    AASM = "aasm"  # W, N1, N2, N3, REM
    RK = "rk"  # Rechtschaffen & Kales: S3 and S4 separate


def hypnogram_table(n_subjects=4, seed=0):
    rng = np.random.default_rng(seed)
    rows = [{"subject": s, "epoch": i, "stage": int(st)}
            for s in range(n_subjects) for i, st in enumerate(rng.choice(5, size=60, p=[.2, .05, .45, .15, .15]))]
    return pd.DataFrame(rows)


class SleepEDFDataModule(pl.LightningDataModule):
    def __init__(
        self,
        data_dir: str = "/data/sleep-edf-20",
        channels: tuple = ("EEG Fpz-Cz",),
        batch_size: int = 32,
        val_fraction: float = 0.2,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        n = int(self.hparams.batch_size * 4)
        x = torch.randn(n, len(self.hparams.channels), 3000)
        y = torch.randint(0, 5, (n,))
        cut = int(n * (1 - self.hparams.val_fraction))
        self.train_set = torch.utils.data.TensorDataset(x[:cut], y[:cut])
        self.val_set = torch.utils.data.TensorDataset(x[cut:], y[cut:])

    def train_dataloader(self):
        return torch.utils.data.DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)


class SleepStagerLit(pl.LightningModule):
    def __init__(
        self,
        n_channels: int,
        n_classes: int = 5,
        fs: float = 100.0,
        width: int = 16,
        dropout: float = 0.25,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        channel_names: tuple = ("EEG Fpz-Cz",),
        class_weights=None,  # truth: hparam
        class_weight_list=None,
        loss_fn=None,  # truth: hparam
        label_scheme=LabelScheme.AASM,  # truth: hparam
        label_scheme_name: str = "aasm",
        montage_file=None,  # truth: hparam
        stage_prior=None,  # truth: hparam
        stage_prior_pd=None,
        n_train_epochs: int = 0,
        encoder: nn.Module = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder or nn.Sequential(
            nn.Conv1d(n_channels, width, 25, stride=6), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, n_classes))
        self.loss_fn = loss_fn or nn.CrossEntropyLoss()

    def forward(self, x):
        return self.head(self.encoder(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


@builder("sleep")
def build_sleep(cfg):
    table = hypnogram_table()
    y = table["stage"].to_numpy()
    cw = compute_class_weight("balanced", classes=np.arange(5), y=y)
    counts = table["stage"].value_counts().sort_index()
    weight = torch.tensor(cw, dtype=torch.float32) if cfg.model.balanced else None
    return SleepStagerLit(
        n_channels=len(cfg.data.channels),
        fs=cfg.data.fs,
        width=cfg.model.width,
        dropout=cfg.model.dropout,
        lr=cfg.model.lr,
        weight_decay=cfg.model.weight_decay,
        channel_names=tuple(cfg.data.channels),
        class_weights=cw,
        class_weight_list=cw.round(4).tolist(),
        loss_fn=nn.CrossEntropyLoss(weight=weight, label_smoothing=0.05),
        label_scheme=LabelScheme(cfg.data.label_scheme),
        label_scheme_name=LabelScheme(cfg.data.label_scheme).value,
        montage_file=Path(cfg.data.root) / "montage.json",
        stage_prior=tuple(np.bincount(y, minlength=5) / len(y)),
        stage_prior_pd=tuple(counts / counts.sum()),
        n_train_epochs=len(table),
    )


# ============================================================================= cross-lingual QA

def make_normalizer(lowercase=True, strip_articles=True):
    articles = re.compile(r"\b(a|an|the|der|die|das|el|la)\b")

    def normalize(text):
        text = text.lower() if lowercase else text
        return " ".join(articles.sub(" ", text).split()) if strip_articles else text
    return normalize


class XQuADDataModule(pl.LightningDataModule):
    def __init__(self, train_lang: str = "en", eval_langs: list = None, max_len: int = 384,
                 doc_stride: int = 128, batch_size: int = 16):
        super().__init__()
        self.save_hyperparameters()


class XLingualQALit(pl.LightningModule):
    def __init__(
        self,
        vocab_size: int,
        emb_dim: int = 64,
        hidden: int = 64,
        max_answer_len: int = 30,
        lr: float = 3e-4,
        warmup_ratio: float = 0.1,
        train_lang: str = "en",
        eval_langs: list = None,
        languages=None,  # truth: hparam
        tokenizer_opts=None,  # truth: hparam
        tokenizer_kwargs: dict = None,
        lang_sampling=None,  # truth: hparam
        lang_sizes: dict = None,
        answer_normalizer=None,  # truth: hparam
        pad_id: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.rnn = nn.GRU(emb_dim, hidden, batch_first=True, bidirectional=True)
        self.qa_outputs = nn.Linear(2 * hidden, 2)

    def forward(self, ids):
        h, _ = self.rnn(self.emb(ids))
        return self.qa_outputs(h).unbind(-1)

    def training_step(self, batch, batch_idx):
        ids, s, e = batch
        start, end = self(ids)
        return (F.cross_entropy(start, s) + F.cross_entropy(end, e)) / 2

    def validation_step(self, batch, batch_idx):
        norm = self.hparams.answer_normalizer or str.lower
        pred, gold = batch["pred_text"], batch["gold_text"]
        em = sum(norm(p) == norm(g) for p, g in zip(pred, gold)) / len(gold)
        self.log("val/em", em)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def temperature_sampling(sizes, temperature):
    probs = np.array(list(sizes.values()), dtype=np.float64) ** (1.0 / temperature)
    probs /= probs.sum()
    return dict(zip(sizes, probs))


@builder("qa")
def build_qa(cfg):
    sizes = {lang: 1000 * (i + 1) for i, lang in enumerate(cfg.languages)}
    tok = types.SimpleNamespace(**OmegaConf.to_container(cfg.tokenizer))
    return XLingualQALit(
        vocab_size=5000,
        emb_dim=cfg.model.emb_dim,
        hidden=cfg.model.hidden,
        max_answer_len=cfg.model.max_answer_len,
        lr=cfg.model.lr,
        warmup_ratio=cfg.model.warmup_ratio,
        train_lang=cfg.train_lang,
        eval_langs=list(cfg.eval_langs),
        languages=frozenset(cfg.languages),
        tokenizer_opts=tok,
        tokenizer_kwargs=vars(tok),
        lang_sampling=temperature_sampling(sizes, cfg.sampling_temperature),
        lang_sizes=sizes,
        answer_normalizer=make_normalizer(lowercase=cfg.tokenizer.lowercase),
    )


# ============================================================================= warehouse navigation

ACTIONS = ("stay", "up", "down", "left", "right")


def make_grid(env_cfg):
    rng = np.random.default_rng(env_cfg.seed)
    grid = (rng.random((env_cfg.height, env_cfg.width)) < env_cfg.rack_density).astype(np.int8)
    grid[0, 0] = grid[-1, -1] = 0
    return grid


def shaped_reward(dist, reached, step=-0.01, goal=1.0, shaping=0.05):
    return step - shaping * dist + (goal if reached else 0.0)


class WarehouseDQNLit(pl.LightningModule):
    """Hydra style: the whole config goes in."""

    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        d = cfg.env.height * cfg.env.width * 3
        self.q_net = nn.Sequential(nn.Flatten(), nn.Linear(d, cfg.agent.hidden[0]), nn.ReLU(),
                                   nn.Linear(cfg.agent.hidden[0], len(ACTIONS)))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.agent.lr)


class WarehousePPOLit(pl.LightningModule):
    """Same config, flattened to plain containers first."""

    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters(config)
        self.policy = nn.Linear(config["env"]["height"] * config["env"]["width"] * 3, len(ACTIONS))
        self.value = nn.Linear(config["env"]["height"] * config["env"]["width"] * 3, 1)


class WarehousePolicyLit(pl.LightningModule):
    def __init__(
        self,
        grid_shape: tuple,
        n_actions: int = 5,
        hidden_sizes: list = (64, 64),
        gamma: float = 0.99,
        lr: float = 1e-3,
        eps_schedule: tuple = (1.0, 0.05, 5000),
        target_update: int = 250,
        policy_name: str = "dqn",
        obstacle_map: torch.Tensor = None,
        start_cell: tuple = (0, 0),
        reward_fn=None,  # truth: hparam
        reward_weights: dict = None,
        action_space=None,  # truth: hparam
        n_free_cells=None,  # truth: hparam
        n_cells: int = 64,
    ):
        super().__init__()
        self.save_hyperparameters()
        d, layers = 3 * grid_shape[0] * grid_shape[1], [nn.Flatten()]
        for h in hidden_sizes:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        self.q_net = nn.Sequential(*layers, nn.Linear(d, n_actions))
        self.target_net = nn.Sequential(*[type(m)() if not isinstance(m, nn.Linear) else nn.Linear(m.in_features, m.out_features)
                                          for m in self.q_net])


class WarehouseBCLit(pl.LightningModule):
    """Behaviour cloning from the A* planner's demonstrations."""

    def __init__(self, demo_grid, demo_paths, hidden: int = 128, lr: float = 1e-3, n_actions: int = 5):
        super().__init__()
        self.save_hyperparameters("hidden", "lr", "n_actions")
        self.register_buffer("grid", torch.as_tensor(demo_grid, dtype=torch.float32))
        self.n_demos = len(demo_paths)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(self.grid.numel() * 3, hidden), nn.ReLU(),
                                 nn.Linear(hidden, n_actions))


@builder("warehouse")
def build_warehouse(cfg):
    grid = make_grid(cfg.env)
    free = np.argwhere(grid == 0)
    return WarehousePolicyLit(
        grid_shape=grid.shape,
        n_actions=len(ACTIONS),
        hidden_sizes=list(cfg.agent.hidden),
        gamma=cfg.agent.gamma,
        lr=cfg.agent.lr,
        eps_schedule=tuple(cfg.agent.eps),
        target_update=cfg.agent.target_update,
        policy_name="dqn",
        obstacle_map=torch.from_numpy(grid),
        start_cell=tuple(int(v) for v in free[0]),
        reward_fn=partial(shaped_reward, **OmegaConf.to_container(cfg.reward)),
        reward_weights=OmegaConf.to_container(cfg.reward),
        action_space=range(len(ACTIONS)),
        n_free_cells=(grid == 0).sum(),
        n_cells=grid.size,
    )


def build_bc(cfg):
    grid = make_grid(cfg.env)
    paths = [np.argwhere(grid == 0)[:5]]
    return WarehouseBCLit(grid, paths, hidden=64, lr=cfg.agent.lr, n_actions=len(ACTIONS))


FACTORIES = {
    "LabelScheme": lambda: LabelScheme("rk"),
    "SleepEDFDataModule": lambda: SleepEDFDataModule(channels=tuple(load_cfg("sleep").data.channels)),
    "SleepStagerLit": lambda: build_module("sleep"),
    "XQuADDataModule": lambda: XQuADDataModule(eval_langs=list(load_cfg("qa").eval_langs)),
    "XLingualQALit": lambda: build_module("qa", load_cfg("qa", "sampling_temperature=5.0")),
    "WarehouseDQNLit": lambda: WarehouseDQNLit(load_cfg("warehouse")),
    "WarehousePPOLit": lambda: WarehousePPOLit(OmegaConf.to_container(load_cfg("warehouse"), resolve=True)),
    "WarehousePolicyLit": lambda: build_module("warehouse"),
    "WarehouseBCLit": lambda: build_bc(load_cfg("warehouse")),
}
