"""Lightning modules for RL, GAN, diffusion and tabular work, all calling save_hyperparameters()."""
import math

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn as nn
from sklearn.preprocessing import StandardScaler


def mlp(i, h, o, act=nn.ReLU):
    return nn.Sequential(nn.Linear(i, h), act(), nn.Linear(h, o))


class DDPMScheduler:
    """A small noise scheduler in the style of diffusers'."""

    def __init__(self, num_train_timesteps=100, beta_start=1e-4, beta_end=0.02):
        self.num_train_timesteps = num_train_timesteps
        self.betas = torch.linspace(beta_start, beta_end, num_train_timesteps)
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)

    def add_noise(self, x, noise, t):
        a = self.alphas_cumprod[t].sqrt().view(-1, 1)
        return a * x + (1 - a ** 2).sqrt() * noise


class PolicyGradientModule(pl.LightningModule):
    def __init__(
        self,
        obs_dim: int = 4,
        act_dim: int = 2,
        hidden: int = 64,
        gamma: float = 0.99,  # truth: hparam
        entropy_coef: float = 0.01,
        activation: nn.Module = nn.Tanh(),  # truth: hparam
        lr: float = 3e-4,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.policy = nn.Sequential(nn.Linear(obs_dim, hidden), activation, nn.Linear(hidden, act_dim))

    def forward(self, obs):
        return torch.distributions.Categorical(logits=self.policy(obs))


class ActorCriticModule(pl.LightningModule):
    def __init__(
        self,
        obs_shape: tuple = (4,),
        n_actions: int = 2,
        max_action: float = 1.0,  # truth: hparam
        reward_stats: dict = None,  # truth: hparam
        gae_lambda: float = 0.95,
        clip_range: float = 0.2,
        rollout_len: int = 128,
    ):
        super().__init__()
        self.save_hyperparameters()
        dim = int(np.prod(obs_shape))
        self.actor = mlp(dim, 32, n_actions)
        self.critic = mlp(dim, 32, 1)


class TunedActorCritic(pl.LightningModule):
    def __init__(
        self,
        obs_shape: tuple = (4,),
        n_actions: int = 2,
        max_action: float = 1.0,
        reward_stats: dict = None,
        device_name: str = "cpu",
        dtype: torch.dtype = torch.float32,
        obs_low: torch.Tensor = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        dim = int(np.prod(obs_shape))
        self.actor = mlp(dim, 32, n_actions)


class GANModule(pl.LightningModule):
    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,  # truth: hparam
        latent_dim: int = 8,
        lr: float = 2e-4,
        betas: tuple = (0.5, 0.999),
        ema_decay: float = 0.999,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["generator"])
        self.generator = generator
        self.discriminator = discriminator
        self.automatic_optimization = False


class CleanGANModule(pl.LightningModule):
    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        latent_dim: int = 8,
        lr_g: float = 2e-4,
        lr_d: float = 1e-4,
        n_critic: int = 5,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["generator", "discriminator"])
        self.generator = generator
        self.discriminator = discriminator


class DiffusionModule(pl.LightningModule):
    def __init__(
        self,
        hidden: int = 32,
        timesteps: int = 100,
        betas=None,  # truth: hparam
        noise_scheduler: DDPMScheduler = None,  # truth: hparam
        prediction_type: str = "epsilon",
        ema_decay: float = 0.9999,
        snr_gamma: float = 5.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.denoiser = mlp(16 + 1, hidden, 16, act=nn.SiLU)


class LatentDiffusionModule(pl.LightningModule):
    def __init__(
        self,
        hidden: int = 32,
        timesteps: int = 100,
        betas: list = None,
        noise_scheduler: DDPMScheduler = None,
        scale_factor: float = 0.18215,
        warmup_steps: int = 500,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["noise_scheduler"])
        self.noise_scheduler = noise_scheduler
        self.denoiser = mlp(16 + 1, hidden, 16, act=nn.SiLU)


class TabularLitModule(pl.LightningModule):
    def __init__(
        self,
        n_num: int = 3,
        cat_cards: list = (4, 3),
        class_weights: torch.Tensor = None,
        scaler: StandardScaler = None,  # truth: hparam
        feature_fn=None,  # truth: hparam
        pos_rate: float = 0.5,  # truth: hparam
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.embs = nn.ModuleList([nn.Embedding(c, 4) for c in cat_cards])
        self.head = mlp(n_num + 4 * len(cat_cards), 16, 1)


class TabularLitFixed(pl.LightningModule):
    def __init__(
        self,
        n_num: int = 3,
        cat_cards: list = (4, 3),
        scaler_mean: list = None,
        scaler_scale: list = None,
        pos_rate: float = 0.5,
        lr: float = 1e-3,
        total_steps: int = 100,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("mean", torch.tensor(scaler_mean or [0.0] * n_num))
        self.head = mlp(n_num + 4 * len(cat_cards), 16, 1)


class SelectiveModule(pl.LightningModule):
    def __init__(
        self,
        lr: float = 1e-3,
        hidden: int = 32,
        loss_fn: nn.Module = nn.SmoothL1Loss(),
        optimizer_cls: type = torch.optim.AdamW,
    ):
        super().__init__()
        self.save_hyperparameters("lr", "hidden")
        self.loss_fn = loss_fn
        self.optimizer_cls = optimizer_cls
        self.net = mlp(4, hidden, 1)


def _tabular_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    y = (rng.random(50) < 0.3).astype(np.int64)
    return x, y


def _make_tabular():
    x, y = _tabular_data()
    weights = torch.tensor([1.0, (y == 0).sum() / max((y == 1).sum(), 1)], dtype=torch.float32)
    return TabularLitModule(
        n_num=x.shape[1],
        cat_cards=[4, 3],
        class_weights=weights,
        scaler=StandardScaler().fit(x),
        feature_fn=lambda df: df * 2,
        pos_rate=y.mean(),
    )


def _make_tabular_fixed():
    x, y = _tabular_data()
    sc = StandardScaler().fit(x)
    batches = math.ceil(len(x) / 16)
    return TabularLitFixed(
        n_num=int(x.shape[1]),
        cat_cards=[4, 3],
        scaler_mean=sc.mean_.tolist(),
        scaler_scale=sc.scale_.tolist(),
        pos_rate=float(y.mean()),
        total_steps=batches * 10,
    )


def _make_actor_critic():
    rewards = np.random.default_rng(1).normal(size=100)
    return ActorCriticModule(
        obs_shape=(8,),
        n_actions=len(range(3)),
        max_action=np.abs(rewards).max(),
        reward_stats={"mean": rewards.mean(), "std": rewards.std()},
    )


def _make_tuned_actor_critic():
    rewards = np.random.default_rng(1).normal(size=100)
    low = np.full(8, -5.0)
    return TunedActorCritic(
        obs_shape=tuple(int(d) for d in np.zeros((8,)).shape),
        n_actions=3,
        max_action=float(np.abs(rewards).max()),
        reward_stats={"mean": float(rewards.mean()), "std": rewards.std().item()},
        device_name=str(torch.device("cpu")),
        dtype=torch.float32,
        obs_low=torch.from_numpy(low),
    )


def _make_diffusion():
    steps = 100
    return DiffusionModule(
        timesteps=steps,
        betas=np.linspace(1e-4, 0.02, steps),
        noise_scheduler=DDPMScheduler(steps),
    )


def _make_latent_diffusion():
    steps = 100
    return LatentDiffusionModule(
        timesteps=steps,
        betas=np.linspace(1e-4, 0.02, steps).tolist(),
        noise_scheduler=DDPMScheduler(steps),
    )


FACTORIES = {
    "PolicyGradientModule": lambda: PolicyGradientModule(gamma=np.float32(0.99)),
    "ActorCriticModule": _make_actor_critic,
    "TunedActorCritic": _make_tuned_actor_critic,
    "GANModule": lambda: GANModule(generator=mlp(8, 32, 16), discriminator=mlp(16, 32, 1)),
    "CleanGANModule": lambda: CleanGANModule(generator=mlp(8, 32, 16), discriminator=mlp(16, 32, 1)),
    "DiffusionModule": _make_diffusion,
    "LatentDiffusionModule": _make_latent_diffusion,
    "TabularLitModule": _make_tabular,
    "TabularLitFixed": _make_tabular_fixed,
}
