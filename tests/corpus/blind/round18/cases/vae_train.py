"""Tiny VAE trainer driven by an OmegaConf config, with KL annealing, early stopping and pandas
metric logs (taming-transformers / pytorch-vae style)."""
import datetime
import enum
import os
from collections import OrderedDict, defaultdict, namedtuple

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.decomposition import PCA
from sklearn.metrics import mean_squared_error

DEFAULTS = """
model:
  in_dim: 16
  latent_dim: 4
  hidden: 8
train:
  lr: 1.0e-3
  beta_max: 1.0
  anneal_steps: 4
  patience: 2
"""


class Phase(enum.Enum):
    WARMUP = "warmup"
    ANNEAL = "anneal"
    FULL = "full"


NOT_BUILT = {"Phase": "an Enum: its members are the instances"}

Recon = namedtuple("Recon", ["mse", "kl"])


class VAE(nn.Module):
    def __init__(self, in_dim=16, latent_dim=4, hidden=8):
        super().__init__()
        self.enc = nn.Linear(in_dim, hidden)
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)
        self.dec = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, in_dim))

    def forward(self, x):
        h = F.relu(self.enc(x))
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.dec(z), mu, logvar


def load_config(overrides=()):
    base = OmegaConf.create(DEFAULTS)
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


class EarlyStopping:
    def __init__(self, patience=2):
        self.patience = patience
        self.best = np.inf
        self.bad_epochs = 0
        self.history = []

    def step(self, value):
        self.history.append(value)
        improved = value < self.best
        if improved:
            self.best = value
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def should_stop(self):
        return self.bad_epochs >= self.patience


class VAETrainer:
    def __init__(self, cfg=None):
        self.cfg = cfg if cfg is not None else load_config()
        torch.manual_seed(0)
        m = self.cfg.model
        self.model = VAE(m.in_dim, m.latent_dim, m.hidden)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.train.lr)
        self.stopper = EarlyStopping(self.cfg.train.patience)
        self.step = 0
        self.phase = Phase.WARMUP
        self.log = defaultdict(list)
        self.data = torch.randn(8, m.in_dim)

    def beta(self):
        return np.minimum(self.cfg.train.beta_max, self.step / self.cfg.train.anneal_steps)

    def train_epoch(self):
        recon, mu, logvar = self.model(self.data)
        mse = F.mse_loss(recon, self.data)
        kl = -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
        loss = mse + float(self.beta()) * kl
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.step += 1
        self.phase = Phase.ANNEAL if self.step < self.cfg.train.anneal_steps else Phase.FULL
        self.log["loss"].append(loss.item())
        self.log["kl"].append(kl.item())
        return Recon(mse.item(), kl.item())

    def evaluate(self):
        with torch.no_grad():
            recon, mu, _ = self.model(self.data)
        val = mean_squared_error(self.data.numpy(), recon.numpy())
        self.stopper.step(val)
        return val, mu.numpy()


def run(epochs=3, overrides=()):
    trainer = VAETrainer(load_config(overrides))
    last = None
    for _ in range(epochs):
        last = trainer.train_epoch()
        trainer.evaluate()
    return trainer, last


def save_vae_checkpoint(tmpdir):
    trainer, last = run(3)
    path = os.path.join(tmpdir, "vae.ckpt")
    torch.save({
        "state_dict": trainer.model.state_dict(),
        "optimizer": trainer.opt.state_dict(),
        "config": trainer.cfg,  # truth: weights_only
        "config_dict": OmegaConf.to_container(trainer.cfg, resolve=True),
        "phase": trainer.phase,  # truth: weights_only
        "phase_name": trainer.phase.value,
        "last": last,  # truth: weights_only
        "last_mse": last.mse,
    }, path)
    return path


def save_early_stopping_state(tmpdir):
    trainer, _ = run(3)
    es = trainer.stopper
    path = os.path.join(tmpdir, "es.pt")
    ckpt = {"model": trainer.model.state_dict()}
    ckpt["early_stopping"] = {
        "best": es.best,
        "bad_epochs": es.bad_epochs,
        "history": [float(v) for v in es.history],
        "patience": trainer.cfg.train.patience,
    }
    ckpt["log"] = trainer.log  # truth: weights_only
    ckpt["log_plain"] = dict(trainer.log)
    ckpt["beta"] = trainer.beta()  # truth: weights_only
    torch.save(ckpt, path)
    return path


def save_latent_stats(tmpdir):
    trainer, _ = run(2)
    _, mu = trainer.evaluate()
    pca = PCA(n_components=2).fit(mu)
    df = pd.DataFrame(trainer.log)
    ckpt = OrderedDict()
    ckpt["model"] = trainer.model.state_dict()
    ckpt["pca"] = pca  # truth: weights_only
    ckpt["explained_variance"] = pca.explained_variance_ratio_.tolist()
    ckpt["latent_mean"] = torch.from_numpy(mu.mean(axis=0))
    ckpt["final_loss"] = df["loss"].iloc[-1]  # truth: weights_only
    ckpt["mean_kl"] = df["kl"].mean()  # truth: weights_only
    ckpt["n_rows"] = len(df)
    ckpt["saved_at"] = datetime.datetime.now()  # truth: weights_only
    ckpt["saved_at_iso"] = datetime.datetime.now().isoformat()
    path = os.path.join(tmpdir, "latent.pt")
    torch.save(ckpt, path)
    return path


def save_clean_vae(tmpdir):
    trainer, last = run(2, overrides=["train.lr=0.01"])
    val, _ = trainer.evaluate()
    path = os.path.join(tmpdir, "vae_clean.pt")
    metrics = {"val_mse": float(val), "kl": last.kl, "steps": trainer.step}
    metrics.update(best=float(trainer.stopper.best), stop=bool(trainer.stopper.should_stop))
    torch.save({"model": trainer.model.state_dict(),
                "metrics": metrics,
                "cfg": OmegaConf.to_container(trainer.cfg),
                "loss_curve": torch.tensor(trainer.log["loss"]),
                "phase": trainer.phase.name}, path)
    return path
