"""Lightning modules and datamodules for the three projects of this repo:
perturbation response prediction, handwritten math recognition, dispatch RL.

Everything is built from one OmegaConf experiment file through a small registry
(`build_module(cfg)`), the way the `train.py` entry point does it.
"""
import argparse
import enum
import functools
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.preprocessing import LabelEncoder, OneHotEncoder
from torch.utils.data import DataLoader, TensorDataset

EXPERIMENTS = """
perturb:
  n_genes: 40
  perts: [ctrl, KLF1, GATA1, SPI1, CEBPA]
  model: {hidden: [128, 64], latent: 16, dropout: 0.1}
  optim: {lr: 1.0e-3, weight_decay: 1.0e-5}
  vae: {beta: 0.5, kl_warmup_frac: 0.1, adversary_weight: 0.2}
hme:
  vocab: ['\\frac', '\\sqrt', '{', '}', '^', '_', x, y, '2', '+', '=']
  model: {channels: 32, hidden: 64, attn: 32}
  decode: {mode: beam, beam_size: 5, max_len: 48}
  optim: {lr: 2.0e-4, label_smoothing: 0.1}
  augment: {scale: [0.8, 1.2], rotate: 5, elastic: false}
dispatch:
  grid: [4, 4]
  horizon_quantile: 0.9
  optim: {name: adamw, lr: 3.0e-4}
  dqn: {batch_size: 64, target_sync: 200, eps_start: 1.0, eps_end: 0.05, replay: 50000}
  reward: {idle_penalty: 0.1, reposition_cost: 0.05}
"""

REGISTRY = {}


def register(name):
    def deco(fn):
        REGISTRY[name] = fn
        return fn
    return deco


def load_experiments():
    return OmegaConf.create(EXPERIMENTS)


class BaseModule(L.LightningModule):
    """Shared optimizer plumbing; subclasses call save_hyperparameters themselves."""

    def configure_optimizers(self):
        hp = self.hparams
        lr = hp.get("lr", 1e-3) if isinstance(hp, dict) else 1e-3
        return torch.optim.AdamW(self.parameters(), lr=lr)


# =============================================================== perturbation

def fake_screen(n_genes, perts, n_cells=120, seed=0):
    rng = np.random.default_rng(seed)
    genes = pd.Index([f"G{i:03d}" for i in range(n_genes)], name="gene_symbol")
    expr = pd.DataFrame(rng.gamma(2.0, 1.0, size=(n_cells, n_genes)), columns=genes)
    obs = pd.DataFrame({"perturbation": [perts[i % len(perts)] for i in range(n_cells)],
                        "cell_type": ["K562" if i % 4 else "RPE1" for i in range(n_cells)]})
    return expr, obs


class PerturbResponseModule(BaseModule):
    def __init__(
        self,
        n_genes,
        n_perts,
        gene_names,
        control_mean,  # truth: hparam
        hidden_dims=(128, 64),
        latent_dim=16,
        dropout=0.1,
        dose_transform=np.log1p,  # truth: hparam
        loss_fn=None,  # truth: hparam
        lr=1e-3,
        de_top_k=20,
        pert_vocab=None,
        cell_type_weights=None,
    ):
        super().__init__()
        gene_names = list(gene_names)
        self.save_hyperparameters()
        self.loss_fn = loss_fn or nn.MSELoss()
        layers, d = [], n_genes
        for h in hidden_dims:
            layers += [nn.Linear(d, h), nn.GELU(), nn.Dropout(dropout)]
            d = h
        self.encoder = nn.Sequential(*layers, nn.Linear(d, latent_dim))
        self.pert_emb = nn.Embedding(n_perts, latent_dim)
        self.decoder = nn.Linear(latent_dim, n_genes)
        self.register_buffer("ctrl", torch.as_tensor(control_mean, dtype=torch.float32))

    def forward(self, pert, dose):
        z = self.encoder(self.ctrl.expand(len(pert), -1)) + self.pert_emb(pert) * self.hparams.dose_transform(dose)[:, None]
        return self.ctrl + self.decoder(z)

    def training_step(self, batch, batch_idx):
        x, pert, dose = batch
        loss = self.loss_fn(self(pert, dose), x)
        self.log("train/mse", loss)
        return loss


class PerturbVAEModule(BaseModule):
    """CPA-flavoured: latent basal state + additive perturbation embedding, KL warm-up."""

    def __init__(
        self,
        n_genes,
        latent_dim,
        beta,  # truth: hparam
        kl_warmup,
        adversary_weight=0.2,
        library_stats=None,
        covariate_encoder=None,
    ):
        super().__init__()
        self.save_hyperparameters("n_genes", "latent_dim", "beta", "kl_warmup", "adversary_weight")
        self.library_stats = library_stats
        self.covariate_encoder = covariate_encoder
        self.enc = nn.Linear(n_genes, 2 * latent_dim)
        self.dec = nn.Linear(latent_dim, n_genes)

    def training_step(self, batch, batch_idx):
        x = batch[0]
        mu, logvar = self.enc(x).chunk(2, -1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1).mean()
        warm = min(1.0, (self.global_step + 1) / max(1, self.hparams.kl_warmup))
        loss = F.mse_loss(self.dec(z), x) + warm * float(self.hparams.beta) * kl
        self.log("train/loss", loss)
        return loss


class PerturbDataModule(L.LightningDataModule):
    def __init__(self, data_dir="data/norman2019", batch_size=64, holdout_perts=("KLF1",), num_workers=0,
                 val_fraction=0.1, seed=0):
        super().__init__()
        self.save_hyperparameters()
        self.expr, self.obs = fake_screen(40, ["ctrl", "KLF1", "GATA1", "SPI1", "CEBPA"], seed=seed)

    def train_dataloader(self):
        keep = ~self.obs["perturbation"].isin(self.hparams.holdout_perts).to_numpy()
        x = torch.tensor(self.expr.to_numpy()[keep], dtype=torch.float32)
        return DataLoader(TensorDataset(x), batch_size=self.hparams.batch_size, shuffle=True)


@register("perturb_mlp")
def build_perturb_mlp(cfg):
    pc = cfg.perturb
    expr, obs = fake_screen(pc.n_genes, list(pc.perts))
    enc = LabelEncoder().fit(obs["perturbation"])
    ctrl_mean = expr[obs["perturbation"] == "ctrl"].mean(axis=0).to_numpy()
    counts = obs["cell_type"].value_counts()
    weights = torch.tensor((counts.sum() / counts).to_numpy(), dtype=torch.float32)
    return PerturbResponseModule(
        n_genes=len(expr.columns),
        n_perts=len(enc.classes_),
        gene_names=expr.columns,
        control_mean=ctrl_mean,
        hidden_dims=tuple(pc.model.hidden),
        latent_dim=pc.model.latent,
        dropout=pc.model.dropout,
        loss_fn=nn.MSELoss(),
        lr=pc.optim.lr,
        de_top_k=int(np.ceil(0.25 * pc.n_genes)),
        pert_vocab=enc.classes_.tolist(),
        cell_type_weights=weights,
    )


@register("perturb_vae")
def build_perturb_vae(cfg):
    pc = cfg.perturb
    expr, obs = fake_screen(pc.n_genes, list(pc.perts))
    lib = expr.sum(axis=1).to_numpy()
    n_steps = len(expr) // 32 * 50
    return PerturbVAEModule(
        n_genes=expr.shape[1],
        latent_dim=pc.model.latent,
        beta=pc.vae.beta / np.sqrt(pc.model.latent),
        kl_warmup=int(pc.vae.kl_warmup_frac * n_steps),
        adversary_weight=pc.vae.adversary_weight,
        library_stats={"log_mean": np.log(lib).mean(), "log_var": np.log(lib).var()},
        covariate_encoder=OneHotEncoder(handle_unknown="ignore").fit(obs[["cell_type"]]),
    )


# ========================================================== handwritten math

class DecodeMode(enum.Enum):
    GREEDY = "greedy"
    BEAM = "beam"


class LatexVocab:
    def __init__(self, symbols=()):
        self.itos = ["<pad>", "<sos>", "<eos>"] + list(symbols)
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    def __len__(self):
        return len(self.itos)


TOKEN_RE = re.compile(r"\\[A-Za-z]+|[{}^_]|\S")


class ConvEncoder(nn.Module):
    def __init__(self, channels=32):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))

    def forward(self, x):
        return self.net(x).flatten(2).transpose(1, 2)


class HMEConfigModule(BaseModule):
    """Older variant: the whole experiment node goes in as one config object."""

    def __init__(self, cfg, vocab_size, encoder=None):  # truth: hparam[cfg]
        super().__init__()
        self.save_hyperparameters(cfg)
        self.encoder = encoder or ConvEncoder(cfg.model.channels)
        self.head = nn.Linear(cfg.model.channels, vocab_size)


class HMEAttentionModule(BaseModule):
    def __init__(
        self,
        vocab,  # truth: hparam
        encoder,
        decode_mode=DecodeMode.GREEDY,  # truth: hparam
        token_pattern=r"\S",
        max_len=48,
        beam_size=1,
        pad_id=0,
        sos_id=1,
        eos_id=2,
        img_mean=0.5,
        img_std=0.5,
        augment=None,
        coverage=True,
        label_smoothing=0.0,
        lr=2e-4,
        param_dtype=torch.float32,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        self.vocab = vocab
        self.emb = nn.Embedding(len(vocab), 32)
        self.gru = nn.GRU(32 + 32, 64, batch_first=True)
        self.out = nn.Linear(64, len(vocab))

    def training_step(self, batch, batch_idx):
        img, tgt = batch
        feats = self.encoder((img - self.hparams.img_mean) / self.hparams.img_std).mean(1, keepdim=True)
        emb = self.emb(tgt[:, :-1])
        h, _ = self.gru(torch.cat([emb, feats.expand(-1, emb.size(1), -1)], -1))
        logits = self.out(h)
        loss = F.cross_entropy(logits.transpose(1, 2), tgt[:, 1:], ignore_index=self.hparams.pad_id,
                               label_smoothing=self.hparams.label_smoothing)
        self.log("train/ce", loss)
        return loss


class HMEDataModule(L.LightningDataModule):
    def __init__(self, root="data/crohme", years=(2014, 2016, 2019), img_height=64, max_width=512,
                 batch_size=16, augment=None):
        super().__init__()
        self.save_hyperparameters()
        self.images = torch.rand(32, 1, img_height // 4, max_width // 8)

    def train_dataloader(self):
        tgt = torch.randint(3, 10, (len(self.images), 12))
        return DataLoader(TensorDataset(self.images, tgt), batch_size=self.hparams.batch_size)


def _image_stats(n=16, seed=0):
    imgs = np.random.default_rng(seed).random((n, 32, 96))
    return float(imgs.mean()), float(imgs.std())


@register("hme_attn")
def build_hme_attention(cfg):
    hc = cfg.hme
    vocab = LatexVocab(hc.vocab)
    mean, std = _image_stats()
    return HMEAttentionModule(
        vocab=vocab,
        encoder=ConvEncoder(hc.model.channels),
        decode_mode=DecodeMode(hc.decode.mode),
        token_pattern=TOKEN_RE.pattern,
        max_len=hc.decode.max_len,
        beam_size=hc.decode.beam_size,
        pad_id=vocab.stoi["<pad>"],
        sos_id=vocab.stoi["<sos>"],
        eos_id=vocab.stoi["<eos>"],
        img_mean=mean,
        img_std=std,
        augment=OmegaConf.to_container(hc.augment),
        coverage=True,
        label_smoothing=hc.optim.label_smoothing,
        lr=hc.optim.lr,
        param_dtype=torch.bfloat16,
    )


@register("hme_cfg")
def build_hme_config(cfg):
    return HMEConfigModule(cfg.hme, vocab_size=len(cfg.hme.vocab) + 3)


# ============================================================== dispatch RL

@dataclass
class EnvConfig:
    grid: tuple = (4, 4)
    n_drivers: int = 12
    horizon: int = 24
    peak_hours: list = field(default_factory=lambda: [7, 8, 17, 18])


def shaped_reward(fare, idle_steps, moved, idle_penalty=0.1, reposition_cost=0.05):
    return fare - idle_penalty * idle_steps - reposition_cost * moved


OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def q_network(n_in=34, n_out=5, hidden=64):
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


class DispatchDQNModule(L.LightningModule):
    def __init__(
        self,
        q_net,
        target_net,
        env_cfg,  # truth: hparam
        reward_fn,  # truth: hparam
        gamma,  # truth: hparam
        optimizer_cls=torch.optim.Adam,  # truth: hparam
        reposition_filter=None,  # truth: hparam
        grid_shape=(4, 4),
        n_actions=5,
        batch_size=64,
        target_sync=200,
        eps_start=1.0,
        eps_end=0.05,
        replay_size=50_000,
        lr=3e-4,
        device_hint=torch.device("cpu"),
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["q_net", "target_net"])
        self.q_net = q_net
        self.target_net = target_net

    def training_step(self, batch, batch_idx):
        s, a, r, s2, done = batch
        q = self.q_net(s).gather(1, a[:, None]).squeeze(1)
        with torch.no_grad():
            nxt = self.target_net(s2).max(-1).values
        loss = F.smooth_l1_loss(q, r + self.hparams.gamma * nxt * (1 - done))
        if self.global_step % self.hparams.target_sync == 0:
            self.target_net.load_state_dict(self.q_net.state_dict())
        return loss

    def configure_optimizers(self):
        return self.hparams.optimizer_cls(self.q_net.parameters(), lr=self.hparams.lr)


def dispatch_args(argv=()):
    p = argparse.ArgumentParser()
    p.add_argument("--log-dir", type=Path, default=Path("runs/ppo"))
    p.add_argument("--clip", type=float, default=0.2)
    p.add_argument("--entropy", type=float, default=0.01)
    p.add_argument("--rollout", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-4)
    return p.parse_args(list(argv))


class DispatchPPOModule(L.LightningModule):
    def __init__(self, args):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(args)
        self.actor = q_network()
        self.critic = q_network(n_out=1)

    def configure_optimizers(self):
        return torch.optim.Adam(list(self.actor.parameters()) + list(self.critic.parameters()), lr=self.hparams.lr)


class DispatchA2CModule(L.LightningModule):
    def __init__(self, args, n_envs=8):
        super().__init__()
        self.save_hyperparameters(args)
        self.policy = q_network()
        self.value = q_network(n_out=1)


class DispatchDataModule(L.LightningDataModule):
    def __init__(self, log_path="logs/orders.parquet", episodes=100, batch_size=64, grid=(4, 4)):
        super().__init__()
        self.save_hyperparameters()
        n = 256
        self.transitions = (torch.randn(n, 34), torch.randint(0, 5, (n,)), torch.randn(n),
                            torch.randn(n, 34), torch.zeros(n))

    def train_dataloader(self):
        return DataLoader(TensorDataset(*self.transitions), batch_size=self.hparams.batch_size, shuffle=True)


def _episode_lengths(seed=3):
    rng = np.random.default_rng(seed)
    log = pd.DataFrame({"episode": rng.integers(0, 20, 400)})
    return log.groupby("episode").size()


@register("dispatch_dqn")
def build_dispatch_dqn(cfg):
    dc = cfg.dispatch
    horizon = _episode_lengths().quantile(dc.horizon_quantile)
    r = dc.reward
    return DispatchDQNModule(
        q_net=q_network(),
        target_net=q_network(),
        env_cfg=EnvConfig(grid=tuple(dc.grid)),
        reward_fn=functools.partial(shaped_reward, idle_penalty=r.idle_penalty, reposition_cost=r.reposition_cost),
        gamma=1.0 - 1.0 / horizon,
        optimizer_cls=OPTIMIZERS[dc.optim.name],
        reposition_filter=lambda zone, supply: supply[zone] < 2,
        grid_shape=tuple(dc.grid),
        n_actions=5,
        batch_size=dc.dqn.batch_size,
        target_sync=dc.dqn.target_sync,
        eps_start=dc.dqn.eps_start,
        eps_end=dc.dqn.eps_end,
        replay_size=dc.dqn.replay,
        lr=dc.optim.lr,
    )


@register("dispatch_ppo")
def build_dispatch_ppo(cfg):
    return DispatchPPOModule(dispatch_args(["--rollout", "512"]))


@register("dispatch_a2c")
def build_dispatch_a2c(cfg):
    args = dispatch_args()
    args.log_dir = str(args.log_dir)
    return DispatchA2CModule(args, n_envs=4)


def build_module(name, cfg=None):
    return REGISTRY[name](cfg if cfg is not None else load_experiments())


FACTORIES = {
    "PerturbResponseModule": lambda: build_module("perturb_mlp"),
    "PerturbVAEModule": lambda: build_module("perturb_vae"),
    "HMEConfigModule": lambda: build_module("hme_cfg"),
    "HMEAttentionModule": lambda: build_module("hme_attn"),
    "DispatchDQNModule": lambda: build_module("dispatch_dqn"),
    "DispatchPPOModule": lambda: build_module("dispatch_ppo"),
    "DispatchA2CModule": lambda: build_module("dispatch_a2c"),
    "DecodeMode": lambda: DecodeMode.BEAM,
    "HMEDataModule": lambda: HMEDataModule(augment=OmegaConf.to_container(load_experiments().hme.augment)),
}
