"""Lightning wrappers for the three projects (traffic signs, DDI, portfolio RL).

Experiments are named OmegaConf configs; `build(name, overrides)` merges the dotlist overrides and
calls the builder registered for the experiment, which prepares the data statistics the module needs
and constructs it. The modules call `save_hyperparameters()` so `load_from_checkpoint` can rebuild them.
"""
import argparse
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from omegaconf import OmegaConf
from sklearn.covariance import LedoitWolf
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, TensorDataset

from ddi_prediction import DDIConfig, DDINet, DrugFeaturizer, SplitStrategy, load_ddi_tables
from portfolio_rl import ActorCritic, load_config, make_prices
from traffic_sign_detection import SIGN_CLASSES, TinyDetector, kmeans_anchors, synth_annotations

EXPERIMENTS = {
    "gtsdb_tiny": {
        "builder": "sign_detector",
        "data": {"root": "data/gtsdb", "img_size": 64, "n_images": 24},
        "model": {"width": 16, "num_anchors": 3},
        "optim": {"lr": 0.01, "warmup_epochs": 1},
        "loss": {"box": 0.05, "obj": 1.0, "cls": 0.5},
        "eval": {"conf_thres": 0.25, "iou_thres": 0.45, "max_det": 100},
    },
    "gtsrb_crops": {
        "builder": "sign_classifier",
        "data": {"root": "data/gtsrb", "img_size": 32},
        "model": {"channels": [16, 32], "num_classes": 4},
        "optim": {"lr": 1e-3, "label_smoothing": 0.1},
    },
    "ddi_fp": {
        "builder": "ddi",
        "model": {"hidden": [96, 48], "dropout": 0.2},
        "optim": {"lr": 2e-3, "weight_decay": 1e-5, "label_smoothing": 0.05},
        "data": {"split": "cold_drug", "n_drugs": 40, "n_pairs": 300},
    },
    "portfolio_ppo": {"builder": "portfolio_ppo", "base": "portfolio_rl"},
    "portfolio_forecast": {"builder": "portfolio_forecast", "base": "portfolio_rl"},
}

BUILDERS = {}


def builder(name):
    def deco(fn):
        BUILDERS[name] = fn
        return fn
    return deco


def build(name, overrides=()):
    cfg = OmegaConf.create(EXPERIMENTS[name])
    if cfg.get("base") == "portfolio_rl":
        cfg = OmegaConf.merge(load_config(), cfg)
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    return BUILDERS[cfg.builder](cfg)


# ----------------------------------------------------------------------------- traffic signs

class SignDetectorModule(pl.LightningModule):
    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        anchors,  # truth: hparam
        img_size: int = 64,
        class_names=tuple(SIGN_CLASSES),
        lr: float = 1e-2,
        warmup_epochs: int = 1,
        conf_thres: float = 0.25,
        iou_thres: float = 0.45,
        max_det: int = 100,
        loss_gains=None,
        mean_std=None,
        data_root=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.model = backbone
        self.model.anchors.copy_(torch.as_tensor(anchors, dtype=torch.float32))

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        imgs, _ = batch
        loss = self(imgs)[..., 4].sigmoid().mean() * self.hparams.loss_gains["obj"]
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.937, nesterov=True)
        sched = torch.optim.lr_scheduler.LinearLR(opt, 0.1, total_iters=self.hparams.warmup_epochs)
        return [opt], [sched]


@builder("sign_detector")
def build_sign_detector(cfg):
    df = synth_annotations(n_images=cfg.data.n_images)
    anchors = kmeans_anchors(df[["w", "h"]].to_numpy(np.float32), k=cfg.model.num_anchors)
    pixels = np.random.default_rng(0).random((64, 3))
    backbone = TinyDetector(nc=df.class_id.nunique(), na=cfg.model.num_anchors, width=cfg.model.width)
    return SignDetectorModule(
        backbone,
        num_classes=df.class_id.nunique(),
        anchors=anchors,
        img_size=cfg.data.img_size,
        lr=cfg.optim.lr,
        warmup_epochs=cfg.optim.warmup_epochs,
        conf_thres=cfg.eval.conf_thres,
        iou_thres=cfg.eval.iou_thres,
        max_det=cfg.eval.max_det,
        loss_gains=OmegaConf.to_container(cfg.loss),
        mean_std=(tuple(pixels.mean(0).round(3).tolist()), tuple(pixels.std(0).round(3).tolist())),
        data_root=Path(cfg.data.root),
    )


class SignClassifierModule(pl.LightningModule):
    """Second stage: classifies the crops the detector proposes (GTSRB-style 32x32 crops)."""

    def __init__(
        self,
        cfg,  # truth: hparam
        class_weights=None,
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        chans = [3, *cfg.model.channels]
        convs = []
        for cin, cout in zip(chans, chans[1:]):
            convs += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        self.net = nn.Sequential(*convs, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(chans[-1], cfg.model.num_classes))
        self.criterion = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=cfg.optim.label_smoothing)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.criterion(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.optim.lr)


@builder("sign_classifier")
def build_sign_classifier(cfg):
    counts = np.bincount(synth_annotations().class_id, minlength=cfg.model.num_classes)
    weights = torch.tensor(counts.sum() / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32)
    return SignClassifierModule(cfg, class_weights=weights)


# ----------------------------------------------------------------------------- drug-drug interactions

class DDIModule(pl.LightningModule):
    def __init__(
        self,
        in_dim: int,
        n_types,  # truth: hparam
        hidden=(96, 48),
        dropout: float = 0.2,
        lr: float = 2e-3,
        weight_decay: float = 1e-5,
        optimizer: str = "adamw",
        loss_fn=None,  # truth: hparam
        class_weights=None,
        split=SplitStrategy.COLD_DRUG,  # truth: hparam
        fp_density=None,  # truth: hparam
        monitor: str = "val/macro_f1",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = DDINet(in_dim, hidden, n_types, dropout)
        self.loss_fn = loss_fn or nn.CrossEntropyLoss(weight=class_weights)

    def training_step(self, batch, batch_idx):
        xa, xb, y = batch
        loss = self.loss_fn(self.net(xa, xb), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[self.hparams.optimizer]
        return cls(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class DDIDataModule(pl.LightningDataModule):
    def __init__(self, n_drugs: int = 40, n_pairs: int = 300, fp_bits: int = 128, split: str = "cold_drug",
                 batch_size: int = 64, num_workers: int = 0, seed: int = 7):
        super().__init__()
        self.save_hyperparameters()
        self.featurizer = None

    def setup(self, stage=None):
        cfg = DDIConfig(fp_bits=self.hparams.fp_bits, n_drugs=self.hparams.n_drugs, n_pairs=self.hparams.n_pairs,
                        seed=self.hparams.seed, split=self.hparams.split)
        drugs, pairs = load_ddi_tables(cfg)
        self.featurizer = DrugFeaturizer(cfg.fp_bits).fit(drugs, pairs)
        self.train_set = TensorDataset(*self.featurizer.transform(pairs))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True,
                          num_workers=self.hparams.num_workers)


@builder("ddi")
def build_ddi(cfg):
    dcfg = DDIConfig(n_drugs=cfg.data.n_drugs, n_pairs=cfg.data.n_pairs, split=cfg.data.split)
    drugs, pairs = load_ddi_tables(dcfg)
    feat = DrugFeaturizer(dcfg.fp_bits).fit(drugs, pairs)
    labels = feat.encoder.transform(pairs.interaction)
    freq = np.bincount(labels) / len(labels)
    weights = torch.tensor(1.0 / np.maximum(freq, 1e-3), dtype=torch.float32)
    return DDIModule(
        in_dim=feat.fps.shape[1],
        n_types=labels.max() + 1,
        hidden=tuple(cfg.model.hidden),
        dropout=cfg.model.dropout,
        lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay,
        loss_fn=nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.optim.label_smoothing),
        class_weights=weights,
        split=SplitStrategy(cfg.data.split),
        fp_density=feat.fps[:, : dcfg.fp_bits].mean(),
    )


class DDIArgsModule(pl.LightningModule):
    """Older entry point kept for the paper scripts: everything comes in through argparse."""

    def __init__(
        self,
        args,  # truth: hparam
        n_types: int = 8,
    ):
        super().__init__()
        self.save_hyperparameters(args)
        self.net = DDINet(args.in_dim, tuple(args.hidden), n_types, args.dropout)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def ddi_arg_parser():
    p = argparse.ArgumentParser()
    p.add_argument("--in-dim", type=int, default=132)
    p.add_argument("--hidden", type=int, nargs="+", default=[96, 48])
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--cache-dir", type=Path, default=Path(".cache/ddi"))
    return p


# ----------------------------------------------------------------------------- portfolio RL

class BaseRLModule(pl.LightningModule):
    def __init__(self, lr: float = 3e-4, gamma: float = 0.99, **kwargs):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def make_reward(cfg):
    lam = cfg.env.get("risk_aversion", 1.0)

    def reward(port_ret, history):
        var = np.var(history[-20:]) if len(history) > 1 else 0.0
        return port_ret - lam * var
    return reward


class PortfolioPPOModule(BaseRLModule):
    def __init__(
        self,
        tickers,
        window: int = 10,
        reward_fn=None,  # truth: hparam
        risk_aversion: float = 1.0,
        cost: float = 1e-3,
        clip: float = 0.2,
        entropy_coef: float = 0.01,
        rollout: int = 48,
        cov_prior=None,  # truth: hparam
        start_date=None,  # truth: hparam
        agent_cfg=None,  # truth: hparam
        lr: float = 3e-4,
        gamma: float = 0.99,
    ):
        super().__init__(lr=lr, gamma=gamma)
        n = len(tickers)
        self.policy = ActorCritic(window * n + n, n, tuple(agent_cfg.hidden) if agent_cfg else (64, 64))

    def training_step(self, batch, batch_idx):
        obs, rets = batch
        dist, value = self.policy.dist(obs)
        weights = dist.mean
        port = (weights * rets).sum(-1)
        loss = -port.mean() + self.hparams.entropy_coef * -dist.entropy().mean()
        self.manual_backward(loss)
        return loss


class PortfolioDataModule(pl.LightningDataModule):
    def __init__(self, tickers=("AAPL", "MSFT"), window: int = 10, periods: int = 260, train_end: str = "2019-10-01",
                 batch_size: int = 32):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        cfg = load_config([f"data.periods={self.hparams.periods}"])
        prices = make_prices(cfg)[list(self.hparams.tickers)]
        rets = prices.pct_change().dropna()
        train = rets.loc[: self.hparams.train_end].to_numpy(np.float32)
        w = self.hparams.window
        obs = np.stack([np.concatenate([train[i - w:i].ravel(), np.full(train.shape[1], 1 / train.shape[1])])
                        for i in range(w, len(train))])
        self.train_set = TensorDataset(torch.from_numpy(obs), torch.from_numpy(train[w:]))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size)


@builder("portfolio_ppo")
def build_portfolio_ppo(cfg):
    prices = make_prices(cfg)
    rets = prices.pct_change().dropna()
    split = int(len(rets) * cfg.data.train_frac)
    cov = LedoitWolf().fit(rets.iloc[:split].to_numpy())
    return PortfolioPPOModule(
        tickers=tuple(cfg.data.tickers),
        window=cfg.data.window,
        reward_fn=make_reward(cfg),
        risk_aversion=float(cfg.env.get("risk_aversion", 1.0)),
        cost=cfg.env.cost_bps / 1e4,
        clip=cfg.agent.clip,
        rollout=cfg.agent.rollout,
        cov_prior=cov.covariance_,
        start_date=rets.index[split],
        agent_cfg=cfg.agent,
        lr=cfg.agent.lr,
        gamma=cfg.agent.gamma,
    )


class AllocationForecaster(pl.LightningModule):
    """Supervised baseline: predicts next-day returns, allocates by softmax of the forecast."""

    def __init__(self, n_assets: int, window: int = 10, hidden: int = 32, lr: float = 1e-3, scaler=None,
                 universe=None, train_stats=None):  # truth: hparam[train_stats]
        super().__init__()
        self.save_hyperparameters("n_assets", "window", "hidden", "lr", "train_stats")
        self.scaler = scaler
        self.net = nn.Sequential(nn.Linear(window * n_assets, hidden), nn.GELU(), nn.Linear(hidden, n_assets))

    def forward(self, x):
        return self.net(x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


@builder("portfolio_forecast")
def build_forecaster(cfg):
    prices = make_prices(cfg)
    rets = prices.pct_change().dropna()
    scaler = StandardScaler().fit(rets.to_numpy())
    universe = pd.DataFrame({"ticker": prices.columns, "first_price": prices.iloc[0].to_numpy()})
    return AllocationForecaster(
        n_assets=prices.shape[1],
        window=cfg.data.window,
        lr=cfg.agent.lr,
        scaler=scaler,
        universe=universe,
        train_stats={"mu": rets.mean().to_numpy(), "sigma": rets.std().to_dict(), "n_days": len(rets)},
    )


FACTORIES = {
    "SignDetectorModule": lambda: build("gtsdb_tiny"),
    "SignClassifierModule": lambda: build("gtsrb_crops"),
    "DDIModule": lambda: build("ddi_fp"),
    "DDIArgsModule": lambda: DDIArgsModule(ddi_arg_parser().parse_args([])),
    "BaseRLModule": lambda: BaseRLModule(lr=1e-3),
    "PortfolioPPOModule": lambda: build("portfolio_ppo", ["env.cost_bps=5"]),
    "AllocationForecaster": lambda: build("portfolio_forecast"),
}
