"""Lightning modules for PPO and image classification, built by factories from configs."""
import argparse
import enum
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn


class Stage(enum.Enum):
    FIT = "fit"
    FINETUNE = "finetune"


@dataclass
class PPOConfig:
    env_id: str = "CartPole-v1"
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    ent_coef: float = 0.01
    hidden: int = 32
    obs_dim: int = 4
    n_actions: int = 2


@dataclass
class AugConfig:
    mixup_alpha: float = 0.2
    cutmix_alpha: float = 0.0
    label_smoothing: float = 0.1


class RewardNormalizer:
    def __init__(self, gamma=0.99):
        self.gamma = gamma
        self.ret = np.zeros(1)
        self.var = np.ones(1)


class LabelSmoothingCE(nn.Module):
    def __init__(self, smoothing=0.1):
        super().__init__()
        self.smoothing = smoothing

    def forward(self, logits, target):
        return F.cross_entropy(logits, target, label_smoothing=self.smoothing)


def mlp(in_dim, hidden, out_dim):
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, out_dim))


# ---------------------------------------------------------------- RL modules
class LitPPO(L.LightningModule):
    def __init__(
        self,
        actor: nn.Module,  # truth: hparam
        critic: nn.Module,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_coef: float = 0.2,
        reward_norm: RewardNormalizer = None,  # truth: hparam
        stage: Stage = Stage.FIT,  # truth: hparam
        lr: float = 3e-4,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["critic"])
        self.actor = actor
        self.critic = critic

    def training_step(self, batch, batch_idx):
        obs, actions, adv = batch
        logp = torch.log_softmax(self.actor(obs), -1).gather(1, actions[:, None]).squeeze(1)
        return -(logp * adv).mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class LitA2C(L.LightningModule):
    def __init__(
        self,
        obs_dim: int = 4,
        n_actions: int = 2,
        hidden: int = 32,
        gamma: float = 0.99,
        ent_coef: float = 0.01,
        value_coef: float = 0.5,
        env_seeds: list = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = mlp(obs_dim, hidden, n_actions + 1)

    def training_step(self, batch, batch_idx):
        return self.net(batch[0]).pow(2).mean()


class LitPPOFromConfig(L.LightningModule):
    def __init__(
        self,
        cfg: PPOConfig,  # truth: hparam
        obs_low: np.ndarray = None,  # truth: hparam
        max_episode_steps: int = 500,
        return_target=None,  # truth: hparam
        schedule=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.policy = mlp(cfg.obs_dim, cfg.hidden, cfg.n_actions)

    def training_step(self, batch, batch_idx):
        return self.policy(batch[0]).mean()


class LitRecurrentPPO(L.LightningModule):
    def __init__(
        self,
        ppo: dict = None,
        rnn_hidden: int = 16,
        seq_len: int = 8,
        obs_stats: dict = None,
        lr: float = 2.5e-4,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.rnn = nn.GRU(4, rnn_hidden, batch_first=True)

    def training_step(self, batch, batch_idx):
        out, _ = self.rnn(batch[0])
        return out.mean()


# ---------------------------------------------------------------- image modules
class LitImageClassifier(L.LightningModule):
    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int = 10,
        criterion: nn.Module = None,  # truth: hparam
        aug: AugConfig = None,  # truth: hparam
        data_dir: Path = Path("data"),  # truth: hparam
        optimizer_cls=torch.optim.AdamW,  # truth: hparam
        lr: float = 1e-3,
        ema_decay: float = 0.9999,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.head = nn.LazyLinear(num_classes)
        self.criterion = criterion or nn.CrossEntropyLoss()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.criterion(self.head(self.backbone(x)), y)

    def configure_optimizers(self):
        return self.hparams.optimizer_cls(self.parameters(), lr=self.hparams.lr)


class LitOmegaClassifier(L.LightningModule):
    def __init__(
        self,
        cfg: DictConfig,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, cfg.model.num_classes))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)


class LitPlainClassifier(L.LightningModule):
    def __init__(
        self,
        model_cfg: dict = None,
        class_names: list = None,
        class_weights: torch.Tensor = None,
        label_smoothing: float = 0.0,
        mixup: dict = None,
        output_dir: str = "runs",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, len(class_names or [0, 1])))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y, weight=self.hparams.class_weights)


class LitFinetuner(L.LightningModule):
    def __init__(
        self,
        args: argparse.Namespace,  # truth: hparam
        loss_fn: nn.Module = None,
        freeze_epochs: int = 1,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["loss_fn"])
        self.loss_fn = loss_fn
        self.net = nn.Linear(4, 2)

    def training_step(self, batch, batch_idx):
        return self.loss_fn(self.net(batch[0]), batch[1])


# ---------------------------------------------------------------- factories
BASE_CFG = OmegaConf.create({
    "model": {"name": "tiny", "num_classes": 5, "drop_rate": 0.0},
    "optim": {"lr": 1e-3, "weight_decay": 0.05},
    "aug": {"mixup_alpha": 0.2, "cutmix_alpha": 0.0},
    "data": {"root": "data/imagenette", "img_size": 8},
})


def get_train_args(argv=()):
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--freeze-epochs", type=int, default=1)
    p.add_argument("--data-dir", type=Path, default=Path("data"))
    return p.parse_args(list(argv))


def build_ppo(cfg=PPOConfig()):
    actor = mlp(cfg.obs_dim, cfg.hidden, cfg.n_actions)
    critic = mlp(cfg.obs_dim, cfg.hidden, 1)
    return LitPPO(actor, critic, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, clip_coef=cfg.clip_coef,
                  reward_norm=RewardNormalizer(cfg.gamma), stage=Stage.FINETUNE)


def build_a2c(cfg=PPOConfig()):
    seeds = np.random.default_rng(0).integers(0, 1000, 4)
    return LitA2C(obs_dim=cfg.obs_dim, n_actions=cfg.n_actions, hidden=cfg.hidden,
                  gamma=float(np.float32(cfg.gamma)), ent_coef=cfg.ent_coef, env_seeds=seeds.tolist())


def build_ppo_from_config(cfg=PPOConfig()):
    low = np.full(cfg.obs_dim, -10.0, np.float32)
    target = np.mean([195.0, 200.0, 475.0])
    return LitPPOFromConfig(cfg, obs_low=low, max_episode_steps=int(target), return_target=target,
                            schedule=lambda step: max(0.0, 1.0 - step / 1e6))


def build_recurrent_ppo(cfg=PPOConfig()):
    obs = np.random.default_rng(1).standard_normal((32, cfg.obs_dim))
    stats = {"mean": obs.mean(0).tolist(), "std": torch.from_numpy(obs.std(0)), "count": len(obs)}
    return LitRecurrentPPO(ppo=asdict(cfg), rnn_hidden=16, seq_len=8, obs_stats=stats, lr=2.5e-4)


def build_image_classifier(cfg=BASE_CFG):
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return LitImageClassifier(
        backbone,
        num_classes=cfg.model.num_classes,
        criterion=LabelSmoothingCE(0.1),
        aug=AugConfig(**cfg.aug),
        data_dir=Path(cfg.data.root),
        optimizer_cls=torch.optim.AdamW,
        lr=cfg.optim.lr,
    )


def build_omega_classifier(cfg=BASE_CFG):
    return LitOmegaClassifier(cfg)


def build_plain_classifier(cfg=BASE_CFG):
    names = [f"class_{i}" for i in range(cfg.model.num_classes)]
    counts = np.array([5, 3, 8, 2, 7])
    weights = torch.tensor(counts.sum() / (len(counts) * counts), dtype=torch.float32)
    return LitPlainClassifier(
        model_cfg=OmegaConf.to_container(cfg.model, resolve=True),
        class_names=names,
        class_weights=weights,
        label_smoothing=0.1,
        mixup=asdict(AugConfig()),
        output_dir=str(Path("runs") / cfg.model.name),
    )


def build_finetuner(argv=()):
    args = get_train_args(argv)
    return LitFinetuner(args, loss_fn=LabelSmoothingCE(), freeze_epochs=args.freeze_epochs)


FACTORIES = {
    "LitPPO": build_ppo,
    "LitA2C": build_a2c,
    "LitPPOFromConfig": build_ppo_from_config,
    "LitRecurrentPPO": build_recurrent_ppo,
    "LitImageClassifier": build_image_classifier,
    "LitOmegaClassifier": build_omega_classifier,
    "LitPlainClassifier": build_plain_classifier,
    "LitFinetuner": build_finetuner,
}
NOT_BUILT = {"Stage": "an Enum: its members exist, nobody calls Stage()"}


def save_lit_style_checkpoint(tmpdir):
    """What a hand-rolled loop writes next to Lightning's own checkpoints."""
    model = build_plain_classifier()
    cfg = OmegaConf.merge(BASE_CFG, {"optim": {"lr": 3e-4}})
    ckpt = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    ckpt["config"] = cfg  # truth: weights_only
    ckpt["config_dict"] = OmegaConf.to_container(cfg, resolve=True)
    ckpt["lr"] = cfg.optim.lr
    ckpt["num_classes"] = cfg.model.num_classes
    ckpt["stage"] = Stage.FIT.value
    ckpt["loss_fn"] = LabelSmoothingCE(0.1)  # truth: weights_only
    path = os.path.join(tmpdir, "lit_style.ckpt")
    torch.save(ckpt, path)
    return path


def save_ppo_module_state(tmpdir):
    module = build_ppo()
    ckpt = dict(state_dict=module.state_dict(), hparams_gamma=module.hparams.gamma,
                stage=module.hparams.stage)  # truth: weights_only
    path = os.path.join(tmpdir, "ppo_module.pt")
    torch.save(ckpt, path)
    return path
