"""Imitation learning for a robot arm (behaviour cloning, action chunking) and a continual-learning
LightningModule, built from experiment configs the way the train scripts do."""
import argparse
import enum
import os
from pathlib import Path

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn import functional as F

NOT_BUILT = {"Gripper": "an Enum: members are values, not instances to build"}


class Gripper(enum.Enum):
    PARALLEL = "parallel"
    SUCTION = "suction"


class BoxSpace:
    """Minimal gym-like action space kept by the project."""

    def __init__(self, low=-1.0, high=1.0, shape=(7,)):
        self.low = np.full(shape, low, dtype=np.float32)
        self.high = np.full(shape, high, dtype=np.float32)
        self.shape = shape


def demo_stats(n=32, obs_dim=10, act_dim=7, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32)
    return {"obs_mean": obs.mean(0), "obs_std": obs.std(0) + 1e-6,
            "act_min": act.min(0), "act_max": act.max(0)}


class StateEncoder(nn.Module):
    def __init__(self, obs_dim=10, hidden=32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU())

    def forward(self, x):
        return self.net(x)


class BCPolicy(L.LightningModule):
    """Behaviour cloning from teleoperated demos; encoder comes from a pretrained checkpoint."""

    def __init__(
        self,
        encoder: nn.Module,
        obs_dim: int = 10,
        act_dim: int = 7,
        hidden: int = 32,
        lr: float = 1e-3,
        loss_fn=nn.SmoothL1Loss(),  # truth: hparam
        action_space: BoxSpace = None,  # truth: hparam
        camera_names=("wrist", "front"),
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        self.head = nn.Linear(hidden, act_dim)
        self.loss_fn = loss_fn

    def training_step(self, batch, batch_idx):
        obs, act = batch
        return self.loss_fn(self.head(self.encoder(obs)), act)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class ActionChunkingPolicy(L.LightningModule):
    """ACT-style policy that predicts a chunk of future actions."""

    def __init__(
        self,
        obs_dim: int = 10,
        act_dim: int = 7,
        chunk_size: int = 8,
        kl_weight: float = 10.0,
        norm_stats: dict = None,  # truth: hparam
        action_scale=None,  # truth: hparam
        gripper: Gripper = Gripper.PARALLEL,  # truth: hparam
        temporal_agg: bool = True,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = nn.Sequential(nn.Linear(obs_dim, 32), nn.ReLU(), nn.Linear(32, act_dim * chunk_size))

    def forward(self, obs):
        return self.backbone(obs).view(obs.shape[0], self.hparams.chunk_size, -1)

    def training_step(self, batch, batch_idx):
        obs, actions = batch
        return F.l1_loss(self(obs), actions)


class DiffusionPolicyLit(L.LightningModule):
    """Config-driven module: the Hydra config is stored as-is."""

    def __init__(
        self,
        cfg: DictConfig,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.noise_pred = nn.Linear(cfg.model.obs_dim + cfg.model.act_dim + 1, cfg.model.act_dim)

    def training_step(self, batch, batch_idx):
        obs, act = batch
        t = torch.rand(obs.shape[0], 1)
        noise = torch.randn_like(act)
        return F.mse_loss(self.noise_pred(torch.cat([obs, act + noise, t], -1)), noise)


class DiffusionPolicyPlain(L.LightningModule):
    """Same model, but the train script passes OmegaConf.to_container(cfg)."""

    def __init__(
        self,
        cfg: dict,
        num_inference_steps: int = 16,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.noise_pred = nn.Linear(cfg["model"]["obs_dim"] + cfg["model"]["act_dim"] + 1, cfg["model"]["act_dim"])


class LitEWCClassifier(L.LightningModule):
    """Continual learning with an EWC penalty; task stats arrive from the previous task's run."""

    def __init__(
        self,
        in_dim: int = 6,
        n_classes: int = 6,
        ewc_lambda: float = 100.0,
        online_gamma=1.0,  # truth: hparam
        task_ids=range(3),  # truth: hparam
        fisher: dict = None,
        prev_acc=None,  # truth: hparam
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(in_dim, n_classes)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)


class LitReplayClassifier(L.LightningModule):
    """Experience replay; only scalar knobs go into hparams."""

    def __init__(
        self,
        backbone: nn.Module,
        memory_size: int = 200,
        replay_ratio: float = 0.5,
        lr: float = 0.05,
        augment: nn.Module = None,
        class_order=None,
    ):
        super().__init__()
        self.save_hyperparameters("memory_size", "replay_ratio", "lr")
        self.backbone = backbone
        self.augment = augment if augment is not None else nn.Identity()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.backbone(self.augment(x)), y)


class LitOfflineRL(L.LightningModule):
    """IQL on a fixed dataset; the launcher forwards its argparse namespace."""

    def __init__(
        self,
        args: argparse.Namespace,  # truth: hparam
        expectile: float = 0.7,
        beta: float = 3.0,
        dataset_dir=None,  # truth: hparam
        transform=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.q = nn.Linear(args.obs_dim + args.act_dim, 1)


class LitOfflineRLArgs(L.LightningModule):
    """Same, but the whole namespace is handed to save_hyperparameters (Lightning takes vars())."""

    def __init__(
        self,
        hparams: argparse.Namespace,
    ):
        super().__init__()
        self.save_hyperparameters(hparams)
        self.q = nn.Linear(hparams.obs_dim + hparams.act_dim, 1)


class LitGoalConditioned(L.LightningModule):
    """Goal-conditioned BC: every hparam is a plain value computed from the dataset."""

    def __init__(
        self,
        goal_dim: int = 3,
        horizon: int = 16,
        max_action: float = 1.0,
        obs_mean=None,
        image_shape=torch.Size([3, 64, 64]),
        dtype=torch.float32,
        device_name: str = "cpu",
        camera_ids: list = None,
        num_demos: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.head = nn.Linear(10 + goal_dim, 7)


# ----------------------------------------------------------------- how the train scripts build them

def parse_args(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--obs-dim", dest="obs_dim", type=int, default=10)
    p.add_argument("--act-dim", dest="act_dim", type=int, default=7)
    p.add_argument("--dataset", default="/data/robomimic/lift/ph/low_dim.hdf5")
    p.add_argument("--expectile", type=float, default=0.7)
    return p.parse_args(argv)


def load_cfg():
    return OmegaConf.create({"model": {"obs_dim": 10, "act_dim": 7},
                             "train": {"lr": 1e-4, "epochs": 2, "ema_decay": 0.995}})


def build_bc():
    stats = demo_stats()
    return BCPolicy(StateEncoder(), action_space=BoxSpace(shape=(7,)),
                    camera_names=tuple(["wrist", "front", "side"]))


def build_act():
    stats = demo_stats()
    return ActionChunkingPolicy(
        chunk_size=int(np.int64(8)),
        norm_stats=stats,
        action_scale=stats["act_max"] - stats["act_min"],
    )


def build_ewc():
    prev = np.array([[0.9, 0.0, 0.0], [0.7, 0.85, 0.0]])
    fisher = {"net.weight": torch.rand(6, 6), "net.bias": torch.rand(6)}
    return LitEWCClassifier(
        ewc_lambda=float(np.float64(250.0)),
        online_gamma=np.float32(0.9),
        fisher=fisher,
        prev_acc=prev[-1],
        seed=np.random.randint(1000),
    )


def build_offline():
    args = parse_args([])
    return LitOfflineRL(args, expectile=args.expectile, dataset_dir=Path(args.dataset),
                        transform=lambda batch: batch)


def build_goal():
    stats = demo_stats()
    return LitGoalConditioned(
        max_action=float(stats["act_max"].max()),
        obs_mean=torch.from_numpy(stats["obs_mean"]),
        camera_ids=np.arange(3).tolist(),
        num_demos=len(stats["obs_mean"]),
    )


FACTORIES = {
    "BCPolicy": build_bc,
    "ActionChunkingPolicy": build_act,
    "DiffusionPolicyLit": lambda: DiffusionPolicyLit(load_cfg()),
    "DiffusionPolicyPlain": lambda: DiffusionPolicyPlain(OmegaConf.to_container(load_cfg(), resolve=True)),
    "LitEWCClassifier": build_ewc,
    "LitReplayClassifier": lambda: LitReplayClassifier(nn.Linear(6, 6), augment=nn.Dropout(0.1),
                                                       class_order=np.arange(6)),
    "LitOfflineRL": build_offline,
    "LitOfflineRLArgs": lambda: LitOfflineRLArgs(parse_args([])),
    "LitGoalConditioned": build_goal,
}


# ----------------------------------------------------------------- plain torch exports for the robot

def save_bc_export(tmpdir):
    policy = build_bc()
    stats = demo_stats()
    path = os.path.join(tmpdir, "bc_export.pt")
    torch.save({
        "state_dict": policy.state_dict(),
        "hyper_parameters": {"obs_dim": 10, "act_dim": 7, "hidden": 32},
        "obs_mean": torch.from_numpy(stats["obs_mean"]),
        "obs_std": stats["obs_std"],  # truth: weights_only
        "act_low": policy.hparams.action_space.low.tolist(),
        "gripper": Gripper.SUCTION.value,
    }, path)
    return path


def save_act_export(tmpdir):
    policy = build_act()
    path = os.path.join(tmpdir, "act_export.pt")
    export = {"weights": policy.backbone.state_dict(), "chunk_size": policy.hparams.chunk_size}
    for key, value in policy.hparams.norm_stats.items():
        export[key] = torch.as_tensor(value)
    export["gripper"] = policy.hparams.gripper  # truth: weights_only
    export["action_scale_max"] = policy.hparams.action_scale.max()  # truth: weights_only
    torch.save(export, path)
    return path


def save_goal_export(tmpdir):
    policy = build_goal()
    path = os.path.join(tmpdir, "goal_export.pt")
    torch.save({"state_dict": policy.state_dict(), "hparams": dict(policy.hparams)}, path)
    return path
