"""SAC (online) and CQL/IQL-style offline RL from a fixed dataset; actor-critic checkpoints."""
import copy
import datetime
import enum
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.nn import functional as F

OBS_DIM, ACT_DIM = 3, 2
NOT_BUILT = {"Algo": "an Enum: members are values, not instances to build"}


class Algo(enum.Enum):
    SAC = "sac"
    CQL = "cql"
    IQL = "iql"


def mlp(inp, out, hidden=16):
    return nn.Sequential(nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, out))


class Actor(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = mlp(OBS_DIM, 2 * ACT_DIM)

    def forward(self, obs):
        mu, log_std = self.body(obs).chunk(2, -1)
        return mu, log_std.clamp(-5, 2)


class DoubleCritic(nn.Module):
    def __init__(self):
        super().__init__()
        self.q1 = mlp(OBS_DIM + ACT_DIM, 1)
        self.q2 = mlp(OBS_DIM + ACT_DIM, 1)

    def forward(self, obs, act):
        x = torch.cat([obs, act], -1)
        return self.q1(x), self.q2(x)


def make_offline_dataset(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "observations": rng.normal(size=(n, OBS_DIM)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, ACT_DIM)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": (rng.random(n) < 0.05),
    }


def normalization_stats(dataset, eps=1e-3):
    mean = dataset["observations"].mean(0)
    std = dataset["observations"].std(0) + eps
    return mean, std


class SACAgent:
    def __init__(self, tau=0.005, gamma=0.99, init_temperature=0.1):
        self.actor = Actor()
        self.critic = DoubleCritic()
        self.critic_target = copy.deepcopy(self.critic)
        self.log_alpha = torch.tensor(np.log(init_temperature), requires_grad=True)
        self.target_entropy = -np.prod((ACT_DIM,))
        self.tau = tau
        self.gamma = gamma
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=3e-4)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=3e-4)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=3e-4)
        self.updates = 0

    @property
    def alpha(self):
        return self.log_alpha.exp()

    def update(self, batch):
        obs, act, rew = batch
        q1, q2 = self.critic(obs, act)
        target = rew.unsqueeze(-1)
        critic_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        mu, log_std = self.actor(obs)
        alpha_loss = -(self.log_alpha * (log_std.sum(-1).detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad()
        alpha_loss.backward()
        self.alpha_opt.step()
        with torch.no_grad():
            for p, tp in zip(self.critic.parameters(), self.critic_target.parameters()):
                tp.mul_(1 - self.tau).add_(self.tau * p)
        self.updates += 1
        return {"critic_loss": critic_loss.item(), "alpha_loss": alpha_loss.item()}

    def state_dict(self):
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
        }


def as_batch(dataset, idx):
    return (torch.as_tensor(dataset["observations"][idx]),
            torch.as_tensor(dataset["actions"][idx]),
            torch.as_tensor(dataset["rewards"][idx]))


def train_briefly(agent, dataset, steps=3):
    history = []
    for i in range(steps):
        idx = np.arange(i * 8, i * 8 + 8)
        history.append(agent.update(as_batch(dataset, idx)))
    return pd.DataFrame(history)


def save_sac_agent(tmpdir):
    agent = SACAgent()
    log = train_briefly(agent, make_offline_dataset())
    ckpt = agent.state_dict()
    ckpt["alpha"] = agent.alpha.item()
    ckpt["target_entropy"] = agent.target_entropy  # truth: weights_only
    ckpt["updates"] = agent.updates
    ckpt["critic_loss_last"] = log["critic_loss"].iloc[-1]  # truth: weights_only
    ckpt["history"] = log.to_dict("list")
    path = os.path.join(tmpdir, "sac.pt")
    torch.save(ckpt, path)
    return path


def save_sac_clean(tmpdir):
    agent = SACAgent()
    log = train_briefly(agent, make_offline_dataset())
    summary = {col: float(log[col].mean()) for col in log.columns}
    path = Path(tmpdir) / "sac_clean.pt"
    torch.save({
        "agent": agent.state_dict(),
        "target_entropy": float(agent.target_entropy),
        "summary": summary,
        "saved_to": str(path),
        "saved_at": datetime.datetime.now().isoformat(),
    }, path)
    return str(path)


class OfflineTrainer:
    """CQL / IQL trainer on a static dataset, with observation normalization."""

    def __init__(self, algo=Algo.CQL, dataset_dir="/data/d4rl/hopper-medium-v2"):
        self.algo = algo
        self.dataset_dir = Path(dataset_dir)
        self.dataset = make_offline_dataset()
        self.obs_mean, self.obs_std = normalization_stats(self.dataset)
        self.agent = SACAgent()
        self.cfg = OmegaConf.create({"algo": algo.value, "cql_alpha": 5.0, "expectile": 0.7,
                                     "batch_size": 8, "eval_episodes": [1, 2, 3]})
        self.eval_scores = []
        self.started = datetime.datetime.now()

    def evaluate(self, n=3):
        rng = np.random.default_rng(self.agent.updates)
        raw = rng.uniform(1000, 3000, size=n)
        normalized = 100 * (raw - 20.0) / (3234.3 - 20.0)
        self.eval_scores.append(normalized.mean())
        return normalized

    def checkpoint(self):
        return {
            "agent": self.agent.state_dict(),
            "algo": self.algo.value,
            "obs_mean": torch.as_tensor(self.obs_mean),
            "obs_std": torch.as_tensor(self.obs_std),
        }


def save_cql(tmpdir):
    trainer = OfflineTrainer()
    train_briefly(trainer.agent, trainer.dataset, steps=2)
    trainer.evaluate()
    ckpt = trainer.checkpoint()
    ckpt["algo_enum"] = trainer.algo  # truth: weights_only
    ckpt["dataset_dir"] = trainer.dataset_dir  # truth: weights_only
    ckpt["config"] = trainer.cfg  # truth: weights_only
    ckpt["eval_scores"] = [float(s) for s in trainer.eval_scores]
    path = os.path.join(tmpdir, "cql.pt")
    torch.save(ckpt, path)
    return path


def save_iql(tmpdir):
    trainer = OfflineTrainer(algo=Algo.IQL)
    train_briefly(trainer.agent, trainer.dataset, steps=2)
    scores = trainer.evaluate()
    ckpt = trainer.checkpoint()
    ckpt.update(
        config=OmegaConf.to_container(trainer.cfg, resolve=True),
        dataset_dir=str(trainer.dataset_dir),
        normalized_score=scores.mean(),  # truth: weights_only
        score_std=scores.std().item(),
        elapsed=datetime.datetime.now() - trainer.started,  # truth: weights_only
        eval_episodes=trainer.cfg.eval_episodes,  # truth: weights_only
    )
    path = os.path.join(tmpdir, "iql.pt")
    torch.save(ckpt, path)
    return path


def save_obs_normalizer(tmpdir):
    dataset = make_offline_dataset()
    mean, std = normalization_stats(dataset)
    path = os.path.join(tmpdir, "normalizer.pt")
    payload = {
        "mean": mean,  # truth: weights_only
        "std": torch.from_numpy(std),
    }
    torch.save(payload, path)
    return path


def save_best_policy(tmpdir):
    trainer = OfflineTrainer()
    best = {"score": -np.inf, "actor": None}
    for _ in range(3):
        train_briefly(trainer.agent, trainer.dataset, steps=1)
        score = trainer.evaluate().mean()
        if score > best["score"]:
            best = {"score": score.item(), "actor": copy.deepcopy(trainer.agent.actor.state_dict())}
    path = os.path.join(tmpdir, "best_actor.pt")
    torch.save(best, path)
    return path
