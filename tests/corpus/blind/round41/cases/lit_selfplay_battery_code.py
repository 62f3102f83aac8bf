"""Lightning wrappers for the three projects (self-play, battery prognostics, code completion).

Every experiment is one OmegaConf config; `build_module(cfg)` looks the builder up in a registry,
prepares whatever the module needs (branching statistics, fitted scalers, a trained tokenizer) and
constructs the LightningModule. DataModules are built the same way through `build_datamodule`.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, TensorDataset

from alphazero_selfplay import COLS, ROWS, ConnectFour, PolicyValueNet
from battery_soh_rul import SOHNet, prepare
from codegen_finetune import CORPUS, CharBPETokenizer, TinyCodeLM, pack_sequences

CONFIGS = {
    "alphazero": """
module: alphazero
game: {rows: 6, cols: 7, probe_games: 6}
net: {channels: 32, blocks: 2}
optim: {lr: 0.002, weight_decay: 0.0001}
loss: {value: huber}
mcts: {c_puct: 1.5, temp_moves: 8, symmetries: [identity, mirror]}
elo: {anchor: 1500}
data: {buffer_size: 5000, batch_size: 32, min_buffer: 64}
""",
    "soh": """
module: soh
features: {columns: [capacity_ah, ir_mohm, temp_max_c, charge_time_s], window: 5}
model: {hidden: 32, lr: 0.003}
eol: {soh_threshold: 0.8}
""",
    "rul": """
module: rul
data: {batch_size: 64, seed: 7}
""",
    "code_lm": """
module: code_lm
tokenizer: {vocab_size: 100}
model: {d_model: 32, n_heads: 4, n_layers: 2, ctx_len: 64}
optim: {lr: 0.003, warmup_steps: 5}
eval:
  pass_k: [1, 5, 10]
  stop: ["\\ndef", "\\nclass"]
  sampling: {temperature: 0.2, top_p: 0.95, max_new_tokens: 32}
trainer: {dtype: bfloat16}
data: {batch_size: 8, fim_rate: 0.5}
""",
    "elo": """
module: elo
players: [gen0, gen1, gen2, gen3]
k_factor: 32
""",
}

LOSSES = {
    "mse": nn.MSELoss,
    "huber": functools.partial(nn.HuberLoss, delta=0.5),
    "l1": nn.L1Loss,
}
BUILDERS = {}


def builder(name):
    def register(fn):
        BUILDERS[name] = fn
        return fn
    return register


def load_config(name, overrides=()):
    return OmegaConf.merge(OmegaConf.create(CONFIGS[name]), OmegaConf.from_dotlist(list(overrides)))


def build_module(cfg):
    return BUILDERS[cfg.module](cfg)


class Chemistry(Enum):
    NMC = "nmc"
    LFP = "lfp"
    NCA = "nca"


@dataclass
class SamplingConfig:
    temperature: float = 0.2
    top_p: float = 0.95
    max_new_tokens: int = 32


# ----------------------------------------------------------------------------- self-play

def temperature_schedule(hot_moves, tau=1.0):
    def schedule(move_idx):
        return tau if move_idx < hot_moves else 0.0
    return schedule


def branching_factors(n_games, seed=0):
    rng = np.random.default_rng(seed)
    counts = []
    for _ in range(n_games):
        game = ConnectFour()
        while game.winner() is None:
            legal = np.flatnonzero(game.legal_mask())
            counts.append(len(legal))
            game.play(int(rng.choice(legal)))
    return counts


class AlphaZeroLit(pl.LightningModule):
    def __init__(
        self,
        board_shape=(ROWS, COLS),
        n_actions=COLS,
        channels=32,
        n_blocks=2,
        lr=2e-3,
        weight_decay=1e-4,
        value_loss=None,  # truth: hparam
        dirichlet_alpha=1.0,  # truth: hparam
        c_puct=1.5,
        temperature_fn=None,  # truth: hparam
        elo_anchor=1500.0,
        symmetries=frozenset({"identity"}),
    ):
        super().__init__()
        c_puct = float(c_puct)  # configs scale it by the board width with numpy
        self.save_hyperparameters()
        self.net = PolicyValueNet(channels, n_blocks)
        self.value_loss = value_loss or nn.MSELoss()

    def forward(self, planes):
        return self.net(planes)

    def training_step(self, batch, batch_idx):
        planes, pi, z = batch
        logits, v = self(planes)
        policy_loss = -(pi * F.log_softmax(logits, -1)).sum(-1).mean()
        value_loss = self.value_loss(v.squeeze(-1), z)
        self.log_dict({"loss/policy": policy_loss, "loss/value": value_loss}, prog_bar=True)
        return policy_loss + value_loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


@builder("alphazero")
def build_alphazero(cfg):
    counts = branching_factors(cfg.game.probe_games)
    return AlphaZeroLit(
        board_shape=(cfg.game.rows, cfg.game.cols),
        n_actions=cfg.game.cols,
        channels=cfg.net.channels,
        n_blocks=cfg.net.blocks,
        lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay,
        value_loss=LOSSES[cfg.loss.value](),
        dirichlet_alpha=10.0 / np.mean(counts),
        c_puct=cfg.mcts.c_puct * np.sqrt(cfg.game.cols / 7),
        temperature_fn=temperature_schedule(cfg.mcts.temp_moves),
        elo_anchor=float(cfg.elo.anchor),
        symmetries=tuple(cfg.mcts.symmetries),
    )


class SelfPlayDataModule(pl.LightningDataModule):
    def __init__(self, buffer_size=5000, batch_size=32, min_buffer=64, games_per_epoch=2, num_workers=0):
        super().__init__()
        self.save_hyperparameters()
        self.examples = None

    def setup(self, stage=None):
        n = max(self.hparams.min_buffer, 1)
        planes = torch.zeros(n, 3, ROWS, COLS)
        pis = torch.full((n, COLS), 1.0 / COLS)
        self.examples = TensorDataset(planes, pis, torch.zeros(n))

    def train_dataloader(self):
        return DataLoader(self.examples, batch_size=self.hparams.batch_size, shuffle=True,
                          num_workers=self.hparams.num_workers)


class BradleyTerryEloLit(pl.LightningModule):
    """Fits Elo ratings to the arena's match log (logistic Bradley-Terry on rating differences)."""

    def __init__(self, n_players, k_factor=32.0, anchor_player="gen0", init_ratings=None,  # truth: hparam[init_ratings]
                 logistic_scale=400.0 / math.log(10), match_history=None, **metadata):
        super().__init__()
        k_factor = float(k_factor)
        self.save_hyperparameters(ignore=["match_history"])
        start = torch.as_tensor(init_ratings if init_ratings is not None else np.zeros(n_players), dtype=torch.float32)
        self.ratings = nn.Parameter(start.clone())
        self.match_history = match_history

    def training_step(self, batch, batch_idx):
        a, b, score = batch
        diff = (self.ratings[a] - self.ratings[b]) / self.hparams.logistic_scale
        return F.binary_cross_entropy_with_logits(diff, score)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1.0)


@builder("elo")
def build_elo(cfg):
    players = list(cfg.players)
    history = pd.DataFrame({"a": [1, 2, 3], "b": [0, 1, 2], "score": [0.5, 0.75, 0.5]})
    return BradleyTerryEloLit(
        n_players=len(players),
        k_factor=cfg.k_factor / np.sqrt(len(players) / 2),
        anchor_player=players[0],
        init_ratings=np.full(len(players), 1500.0),
        match_history=history,
        arena="connect4",
        games_per_match=int(history.shape[0]),
    )


# ----------------------------------------------------------------------------- battery

class RegressionSteps:
    """Shared train/val steps for the battery regressors."""

    def _shared_step(self, batch, stage):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log(f"{stage}/mse", loss)
        return loss

    def training_step(self, batch, batch_idx):
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._shared_step(batch, "val")


class SOHRegressorLit(RegressionSteps, pl.LightningModule):
    def __init__(self, cfg: DictConfig):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = SOHNet(len(cfg.features.columns), cfg.model.hidden)

    def forward(self, x):
        return self.net(x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.model.lr)


class BatteryBaseLit(RegressionSteps, pl.LightningModule):
    hparams_ignore = ()

    def __init__(self, lr=3e-3, weight_decay=0.0):
        super().__init__()
        self.save_hyperparameters(ignore=list(self.hparams_ignore))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


@builder("soh")
def build_soh(cfg):
    return SOHRegressorLit(cfg)


class RULSequenceLit(BatteryBaseLit):
    hparams_ignore = ("scaler",)

    def __init__(
        self,
        feature_names,  # truth: hparam
        scaler,
        nominal_capacity,  # truth: hparam
        chemistry=Chemistry.NMC,  # truth: hparam
        window=20,
        hidden=64,
        eol_soh=0.8,
        loss_weights=None,
        data_root="data/cycles",
        feature_mean=None,
        cycle_limit=None,
        lr=1e-3,
    ):
        window = int(window)
        super().__init__(lr=lr)
        self.scaler = scaler
        self.encoder = nn.GRU(len(feature_names), hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x):
        out, _ = self.encoder(x)
        return self.head(out[:, -1])[:, 0]


@builder("rul")
def build_rul(cfg):
    bcfg, df, _ = prepare()
    cols = list(bcfg.features.columns)
    feats = df[cols]
    scaler = StandardScaler().fit(feats.to_numpy())
    per_cell_q0 = df.groupby("cell_id")["capacity_ah"].first()
    return RULSequenceLit(
        feature_names=feats.columns,
        scaler=scaler,
        nominal_capacity=per_cell_q0.median(),
        chemistry=Chemistry[bcfg.cell.chemistry],
        window=df.groupby("cell_id").size().min() // 10,
        hidden=bcfg.model.hidden,
        eol_soh=bcfg.eol.soh_threshold,
        loss_weights={"soh": 1.0, "rul": 0.05},
        data_root=str(Path(bcfg.paths.data)),
        feature_mean=torch.tensor(scaler.mean_, dtype=torch.float32),
        cycle_limit=int(df["cycle"].max()),
    )


class BatteryDataModule(pl.LightningDataModule):
    def __init__(self, val_cells=("B0005", "B0006"), window=20, batch_size=64, num_workers=0, seed=7):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        _, df, _ = prepare()
        x = torch.tensor(df[["capacity_ah", "ir_mohm"]].to_numpy(), dtype=torch.float32)
        self.train_set = TensorDataset(x, torch.tensor(df["soh"].to_numpy(), dtype=torch.float32))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)


# ----------------------------------------------------------------------------- code completion

class CodeCompletionLit(pl.LightningModule):
    def __init__(
        self,
        tokenizer,  # truth: hparam
        d_model=32,
        n_heads=4,
        n_layers=2,
        ctx_len=64,
        lr=3e-3,
        warmup_steps=5,
        optimizer_cls=torch.optim.AdamW,  # truth: hparam
        pass_k=(1, 5),  # truth: hparam
        sampling=None,  # truth: hparam
        stop_sequences=("\ndef", "\nclass"),
        fim_rate=0.5,
        compute_dtype=torch.float32,
        completion_filter=None,  # truth: hparam
        vocab_size=None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = tokenizer
        self.lm = TinyCodeLM(vocab_size or tokenizer.vocab_size, d_model, n_heads, n_layers, ctx_len)

    def training_step(self, batch, batch_idx):
        (blocks,) = batch
        logits = self.lm(blocks[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), blocks[:, 1:].reshape(-1),
                               ignore_index=self.tokenizer.pad_id)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        opt = self.hparams.optimizer_cls(self.parameters(), lr=self.hparams.lr)
        warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=self.hparams.warmup_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": warm, "interval": "step"}}


@builder("code_lm")
def build_code_lm(cfg):
    tok = CharBPETokenizer.train(CORPUS, cfg.tokenizer.vocab_size)
    return CodeCompletionLit(
        tokenizer=tok,
        d_model=cfg.model.d_model,
        n_heads=cfg.model.n_heads,
        n_layers=cfg.model.n_layers,
        ctx_len=cfg.model.ctx_len,
        lr=cfg.optim.lr,
        warmup_steps=cfg.optim.warmup_steps,
        pass_k=cfg.eval.pass_k,
        sampling=SamplingConfig(**cfg.eval.sampling),
        stop_sequences=tuple(cfg.eval.stop),
        compute_dtype=getattr(torch, cfg.trainer.dtype),
        completion_filter=lambda text: "import os" not in text,
        vocab_size=tok.vocab_size,
    )


class CodeDataModule(pl.LightningDataModule):
    def __init__(self, tokenizer=None, corpus_name="toy-python", ctx_len=64, batch_size=8, fim_rate=0.5,
                 dedup_jaccard=0.85, num_workers=0):
        super().__init__()
        self.save_hyperparameters("corpus_name", "ctx_len", "batch_size", "fim_rate", "dedup_jaccard")
        self.tokenizer = tokenizer

    def setup(self, stage=None):
        docs = [self.tokenizer.encode(d) for d in CORPUS]
        blocks, _ = pack_sequences(docs, self.hparams.ctx_len, self.tokenizer.eos_id, self.tokenizer.pad_id)
        self.train_set = TensorDataset(blocks)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)


def build_datamodule(name, cfg):
    if name == "alphazero":
        return SelfPlayDataModule(buffer_size=cfg.data.buffer_size, batch_size=cfg.data.batch_size,
                                  min_buffer=cfg.data.min_buffer)
    if name == "rul":
        return BatteryDataModule(val_cells=["B0007", "B0010"], batch_size=cfg.data.batch_size, seed=cfg.data.seed)
    if name == "code_lm":
        tok = CharBPETokenizer.train(CORPUS, cfg.tokenizer.vocab_size)
        return CodeDataModule(tokenizer=tok, ctx_len=cfg.model.ctx_len, batch_size=cfg.data.batch_size,
                              fim_rate=cfg.data.fim_rate)
    raise KeyError(name)


FACTORIES = {
    "Chemistry": lambda: Chemistry.LFP,
    "AlphaZeroLit": lambda: build_module(load_config("alphazero")),
    "BradleyTerryEloLit": lambda: build_module(load_config("elo")),
    "SOHRegressorLit": lambda: build_module(load_config("soh")),
    "RULSequenceLit": lambda: build_module(load_config("rul")),
    "CodeCompletionLit": lambda: build_module(load_config("code_lm", ["optim.lr=0.001"])),
    "SelfPlayDataModule": lambda: build_datamodule("alphazero", load_config("alphazero")),
    "BatteryDataModule": lambda: build_datamodule("rul", load_config("rul")),
    "CodeDataModule": lambda: build_datamodule("code_lm", load_config("code_lm")),
}
NOT_BUILT = {}
