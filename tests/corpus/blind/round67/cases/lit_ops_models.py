"""LightningModules and DataModules for the three ops projects: sepsis early warning,
podcast topic segmentation and warehouse pick-path RL.

Modules are registered by name and built from YAML through `build_module(section)`, which
computes data statistics first (cohort means, boundary priors, layout sizes), the way the
training entry point does before handing everything to `Trainer.fit`.
"""
import functools
from datetime import timedelta
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from podcast_segmentation import DEFAULT_STOPWORDS, BoundaryScheme, synth_episodes, tokenize
from sepsis_early_warning import FEATURES, SepsisGRU, simulate_cohort
from warehouse_pickpath_rl import ACTION_NAMES, QNet, load_config, make_env

MODULES = {}


def register(name):
    def deco(cls):
        MODULES[name] = cls
        return cls
    return deco


PROJECT_YAML = """
sepsis:
  module: sepsis_gru
  hidden_size: 32
  num_layers: 1
  dropout: 0.1
  lr: 0.001
  loss: focal
  n_patients: 24
segmentation:
  module: boundary_tagger
  embed_dim: 48
  hidden: 48
  scheme: bio
  max_tokens: 24
  lr: 0.002
  model:
    encoder: bilstm
    embed_dim: 48
    hidden: 48
    dropout: 0.1
    lr: 0.002
pickpath:
  optim: adamw
  clip_eps: 0.2
  rollout_len: 64
"""


def project_config():
    return OmegaConf.create(PROJECT_YAML)


class FocalLoss(nn.Module):
    def __init__(self, gamma=2.0, pos_weight=None):
        super().__init__()
        self.gamma = gamma
        self.register_buffer("pos_weight", pos_weight if pos_weight is not None else torch.ones(1))

    def forward(self, logits, target):
        bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=self.pos_weight, reduction="none")
        p_t = torch.exp(-bce)
        return ((1 - p_t) ** self.gamma * bce).mean()


LOSSES = {"bce": nn.BCEWithLogitsLoss, "focal": FocalLoss}
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


class RunningMeanStd:
    def __init__(self, shape=(1,), eps=1e-4):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = eps

    def update(self, x):
        b_mean, b_var, n = x.mean(0), x.var(0), x.shape[0]
        delta, tot = b_mean - self.mean, self.count + n
        self.mean = self.mean + delta * n / tot
        self.var = (self.var * self.count + b_var * n + delta ** 2 * self.count * n / tot) / tot
        self.count = tot


def linear_decay(step, start, end, steps):
    return start + min(1.0, step / steps) * (end - start)


# --------------------------------------------------------------------------- sepsis

@register("sepsis_gru")
class SepsisGRUModule(L.LightningModule):
    def __init__(
        self,
        n_features: int = len(FEATURES),
        hidden_size: int = 32,
        num_layers: int = 1,
        dropout: float = 0.1,
        lr: float = 1e-3,
        pos_weight: float = 1.0,
        feature_means=None,  # truth: hparam
        feature_stds=None,
        prevalence: float = 0.05,  # truth: hparam
        criterion=None,  # truth: hparam
        feature_names=tuple(FEATURES),
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = SepsisGRU(n_features, hidden_size, num_layers, dropout)
        self.criterion = criterion or nn.BCEWithLogitsLoss()
        means = torch.as_tensor(feature_means if feature_means is not None else np.zeros(n_features))
        self.register_buffer("means", means.float())
        self.register_buffer("stds", feature_stds if feature_stds is not None else torch.ones(n_features))

    def forward(self, x):
        return self.net((x - self.means) / self.stds)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.criterion(self(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class TCNEncoder(nn.Module):
    def __init__(self, n_features=len(FEATURES), channels=(32, 32), kernel_size=3):
        super().__init__()
        layers, c_in = [], n_features
        for i, c in enumerate(channels):
            layers += [nn.Conv1d(c_in, c, kernel_size, padding=(kernel_size - 1) * 2 ** i, dilation=2 ** i), nn.ReLU()]
            c_in = c
        self.net = nn.Sequential(*layers)
        self.out_dim = c_in

    def forward(self, x):
        return self.net(x.transpose(1, 2))[..., : x.shape[1]].transpose(1, 2)


@register("sepsis_tcn")
class SepsisTCNModule(L.LightningModule):
    def __init__(
        self,
        encoder: nn.Module,
        head_dropout: float = 0.2,
        lr: float = 3e-4,
        class_weights=None,
        horizon=timedelta(hours=6),  # truth: hparam
        lr_schedule: str = "onecycle",
        warmup_frac: float = 0.1,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(encoder.out_dim, 1))

    def forward(self, x):
        return self.head(self.encoder(x)[:, -1]).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        w = self.hparams.class_weights
        return F.binary_cross_entropy_with_logits(self(x), y, pos_weight=None if w is None else w[1:])


def cohort_statistics(n_patients, seed=7):
    df = simulate_cohort(n_patients, seed)
    filled = df.groupby("patient_id")[FEATURES].ffill()
    prevalence = df["SepsisLabel"].mean()
    return {
        "means": filled.mean().fillna(0.0).to_numpy(),
        "stds": torch.tensor(filled.std().fillna(1.0).to_numpy(), dtype=torch.float32),
        "prevalence": prevalence,
        "pos_weight": float((1 - prevalence) / prevalence),
        "n_stays": df["patient_id"].nunique(),
    }


def build_sepsis_module(cfg):
    stats = cohort_statistics(cfg.n_patients)
    loss_cls = LOSSES[cfg.loss]
    if cfg.module == "sepsis_tcn":
        neg = 1.0 - float(stats["prevalence"])
        return MODULES["sepsis_tcn"](
            encoder=TCNEncoder(),
            lr=cfg.lr,
            class_weights=torch.tensor([neg, stats["pos_weight"]]),
        )
    return MODULES[cfg.module](
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        dropout=cfg.dropout,
        lr=cfg.lr,
        pos_weight=stats["pos_weight"],
        feature_means=stats["means"],
        feature_stds=stats["stds"],
        prevalence=stats["prevalence"],
        criterion=loss_cls(pos_weight=torch.tensor([stats["pos_weight"]])),
    )


class SepsisDataModule(L.LightningDataModule):
    def __init__(
        self,
        data_dir: str = "data/physionet2019",
        window: int = 8,
        batch_size: int = 64,
        val_fraction: float = 0.2,
        num_workers: int = 0,
        seed: int = 7,
    ):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        df = simulate_cohort(32, self.hparams.seed).fillna(0.0)
        x = torch.tensor(df[FEATURES].to_numpy(np.float32)).unsqueeze(1).repeat(1, self.hparams.window, 1)
        y = torch.tensor(df["SepsisLabel"].to_numpy(np.float32))
        n_val = int(len(y) * self.hparams.val_fraction)
        self.train_set = TensorDataset(x[n_val:], y[n_val:])
        self.val_set = TensorDataset(x[:n_val], y[:n_val])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True,
                          num_workers=self.hparams.num_workers)


# --------------------------------------------------------------------------- segmentation

@register("topic_segmenter")
class TopicSegmenterModule(L.LightningModule):
    def __init__(
        self,
        cfg,  # truth: hparam
        vocab_size: int = 5000,
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.embed = nn.EmbeddingBag(vocab_size, cfg.embed_dim, mode="mean")
        self.rnn = nn.LSTM(cfg.embed_dim, cfg.hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * cfg.hidden, 1)

    def forward(self, tokens):
        ctx, _ = self.rnn(self.embed(tokens).unsqueeze(0))
        return self.out(ctx.squeeze(0)).squeeze(-1)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


@register("boundary_tagger")
class BoundaryTaggerModule(L.LightningModule):
    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 64,
        hidden: int = 64,
        scheme=BoundaryScheme.BINARY,  # truth: hparam
        stopwords=DEFAULT_STOPWORDS,  # truth: hparam
        tokenizer=None,  # truth: hparam
        boundary_prior: float = 0.1,
        label_names=("continue", "boundary"),
        max_tokens: int = 32,
        lr: float = 2e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        n_out = 1 if scheme is BoundaryScheme.BINARY else 3
        self.embed = nn.EmbeddingBag(vocab_size, embed_dim, mode="mean")
        self.rnn = nn.GRU(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, n_out)
        prior = torch.logit(torch.tensor(boundary_prior))
        nn.init.constant_(self.out.bias, float(prior))

    def forward(self, tokens):
        ctx, _ = self.rnn(self.embed(tokens).unsqueeze(0))
        return self.out(ctx.squeeze(0))

    def split_sentences(self, text):
        return [self.hparams.tokenizer(s) for s in text.split(".") if s.strip()]


class PretrainedEmbeddingSegmenter(L.LightningModule):
    def __init__(
        self,
        embeddings: np.ndarray,
        lr: float = 1e-3,
        hidden: int = 64,
        freeze: bool = True,
        window: int = 3,
    ):
        super().__init__()
        self.save_hyperparameters("lr", "hidden", "freeze", "window")
        self.embed = nn.Embedding.from_pretrained(torch.from_numpy(embeddings).float(), freeze=freeze)
        self.conv = nn.Conv1d(embeddings.shape[1], hidden, 2 * window + 1, padding=window)
        self.out = nn.Linear(hidden, 1)

    def forward(self, ids):
        h = self.embed(ids).mean(1).T.unsqueeze(0)
        return self.out(F.relu(self.conv(h)).squeeze(0).T).squeeze(-1)


def build_segmentation_module(cfg, kind=None):
    episodes = synth_episodes(8, seed=13)
    vocab = sorted({t for ep in episodes for s in ep["sentences"] for t in tokenize(s)})
    prior = np.mean([np.mean(ep["labels"]) for ep in episodes])
    kind = kind or cfg.module
    if kind == "topic_segmenter":
        model_cfg = OmegaConf.merge(cfg.model, {"vocab": len(vocab)})
        return MODULES[kind](model_cfg, vocab_size=len(vocab) + 2)
    if kind == "pretrained":
        table = np.random.default_rng(0).normal(size=(len(vocab) + 2, 50)).astype(np.float32)
        return PretrainedEmbeddingSegmenter(table, lr=cfg.lr, hidden=cfg.hidden)
    max_tokens = cfg.max_tokens
    return MODULES[kind](
        vocab_size=len(vocab) + 2,
        embed_dim=cfg.embed_dim,
        hidden=cfg.hidden,
        scheme=BoundaryScheme(cfg.scheme),
        stopwords=DEFAULT_STOPWORDS | {"yeah", "right"},
        tokenizer=lambda s: tokenize(s)[:max_tokens],
        boundary_prior=float(prior),
        max_tokens=max_tokens,
        lr=cfg.lr,
    )


class PodcastDataModule(L.LightningDataModule):
    def __init__(
        self,
        transcripts_dir: str = "data/podcasts/transcripts",
        max_tokens: int = 32,
        batch_size: int = 1,
        min_vocab_count: int = 2,
        n_episodes: int = 16,
    ):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        self.episodes = synth_episodes(self.hparams.n_episodes, seed=13)


# --------------------------------------------------------------------------- warehouse

@register("pickpath_dqn")
class PickPathDQNModule(L.LightningModule):
    def __init__(
        self,
        env_cfg: dict,
        obs_dim: int,
        n_actions: int,
        hidden: int = 64,
        gamma: float = 0.97,
        lr: float = 1e-3,
        eps_schedule=None,  # truth: hparam
        sync_every: int = 50,
        replay_size: int = 2000,
        layout_file=None,  # truth: hparam
        max_episode_steps: int = 120,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.q_net = QNet(obs_dim, n_actions, hidden)
        self.target_net = QNet(obs_dim, n_actions, hidden)
        self.target_net.load_state_dict(self.q_net.state_dict())

    def epsilon(self):
        return self.hparams.eps_schedule(self.global_step)

    def training_step(self, batch, batch_idx):
        obs, act, rew, nxt, done = batch
        q = self.q_net(obs).gather(1, act.unsqueeze(1)).squeeze(1)
        with torch.no_grad():
            target = rew + self.hparams.gamma * (1 - done) * self.target_net(nxt).max(1).values
        return F.smooth_l1_loss(q, target)


@register("pickpath_ppo")
class WarehousePPOModule(L.LightningModule):
    def __init__(
        self,
        policy: nn.Module,
        obs_dim: int,
        clip_eps: float = 0.2,
        value_coef: float = 0.5,
        entropy_coef: float = 0.01,
        rollout_len: int = 128,
        optimizer_cls=torch.optim.Adam,  # truth: hparam
        obs_normalizer=None,  # truth: hparam
        device_name=torch.device("cpu"),
        dtype=torch.float32,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["policy"])
        self.policy = policy
        self.value = nn.Linear(obs_dim, 1)

    def configure_optimizers(self):
        return self.hparams.optimizer_cls(self.parameters(), lr=3e-4)


class WarehouseBaseModule(L.LightningModule):
    def __init__(self, lr: float = 1e-3, gamma: float = 0.99, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()


class SlottingAwareDQNModule(WarehouseBaseModule):
    def __init__(
        self,
        obs_dim: int = 126,
        sku_velocity=None,  # truth: hparam
        slot_names=None,
        lr: float = 1e-3,
        gamma: float = 0.99,
        seed: int = 0,
    ):
        super().__init__(lr=lr, gamma=gamma, seed=seed)
        self.q_net = QNet(obs_dim, len(ACTION_NAMES))


def order_history(env, n_orders=40, seed=0):
    rng = np.random.default_rng(seed)
    skus = list(env.slot_of)
    picks = rng.choice(skus, size=(n_orders, env.items_per_order), p=None)
    return pd.DataFrame({"order_id": np.repeat(np.arange(n_orders), env.items_per_order),
                         "sku": picks.ravel()})


def build_pickpath_module(kind="pickpath_dqn", overrides=()):
    cfg = load_config(overrides)
    proj = project_config().pickpath
    env = make_env(cfg.env)
    if kind == "pickpath_ppo":
        norm = RunningMeanStd(shape=(env.obs_dim,))
        norm.update(np.stack([env.reset() for _ in range(8)]))
        return MODULES[kind](
            policy=QNet(env.obs_dim, len(ACTION_NAMES)),
            obs_dim=env.obs_dim,
            clip_eps=proj.clip_eps,
            rollout_len=proj.rollout_len,
            optimizer_cls=OPTIMIZERS[proj.optim],
            obs_normalizer=norm,
        )
    if kind == "slotting":
        orders = order_history(env)
        velocity = orders["sku"].value_counts(normalize=True)
        return SlottingAwareDQNModule(
            obs_dim=env.obs_dim,
            sku_velocity=velocity,
            slot_names=sorted(env.slot_of),
            lr=cfg.agent.lr,
            gamma=cfg.agent.gamma,
        )
    a = cfg.agent
    return MODULES[kind](
        env_cfg=OmegaConf.to_container(cfg.env, resolve=True),
        obs_dim=env.obs_dim,
        n_actions=len(ACTION_NAMES),
        hidden=a.hidden,
        gamma=a.gamma,
        lr=a.lr,
        eps_schedule=functools.partial(linear_decay, start=a.eps_start, end=a.eps_end, steps=a.eps_decay_steps),
        sync_every=a.target_sync,
        replay_size=a.buffer_size,
        layout_file=Path(cfg.train.run_dir) / "layout.npy",
        max_episode_steps=int(np.prod(env.grid.shape)) // 2,
    )


class PickEpisodeDataModule(L.LightningDataModule):
    def __init__(
        self,
        env_cfg=None,
        episodes_per_epoch: int = 32,
        batch_size: int = 64,
        rollout_len: int = 128,
    ):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        cfg = load_config()
        self.env = make_env(OmegaConf.create(self.hparams.env_cfg or OmegaConf.to_container(cfg.env)))


def build_module(section, **kw):
    cfg = project_config()
    if section == "sepsis":
        return build_sepsis_module(OmegaConf.merge(cfg.sepsis, kw))
    if section == "segmentation":
        return build_segmentation_module(cfg.segmentation, **kw)
    return build_pickpath_module(section, **kw)


FACTORIES = {
    "SepsisGRUModule": lambda: build_module("sepsis"),
    "SepsisTCNModule": lambda: build_module("sepsis", module="sepsis_tcn"),
    "TCNEncoder": TCNEncoder,
    "TopicSegmenterModule": lambda: build_module("segmentation", kind="topic_segmenter"),
    "BoundaryTaggerModule": lambda: build_module("segmentation"),
    "PretrainedEmbeddingSegmenter": lambda: build_module("segmentation", kind="pretrained"),
    "PickPathDQNModule": lambda: build_module("pickpath_dqn"),
    "WarehousePPOModule": lambda: build_module("pickpath_ppo"),
    "SlottingAwareDQNModule": lambda: build_module("slotting"),
    "PickEpisodeDataModule": lambda: PickEpisodeDataModule(env_cfg=OmegaConf.to_container(load_config().env)),
}
