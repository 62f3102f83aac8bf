"""Contextual bandits (epsilon-greedy, LinUCB, a neural reward model) on a synthetic linear env."""
import collections
import dataclasses
import datetime as dt
import enum
import functools
import math
import os
import statistics
import time

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from omegaconf import OmegaConf

DEFAULTS = OmegaConf.create({
    "env": {"n_arms": 4, "dim": 5, "noise": 0.1, "arm_names": ["news", "sports", "music", "video"]},
    "agent": {"kind": "linucb", "epsilon": 0.2, "alpha": 1.0, "schedule": "inverse_sqrt"},
    "run": {"horizon": 60, "seed": 7},
})
STARTED = dt.datetime(2024, 5, 1, 12, 0, 0)


class ExplorationSchedule(enum.Enum):
    CONSTANT, LINEAR_DECAY, INVERSE_SQRT = "constant", "linear_decay", "inverse_sqrt"


def inverse_sqrt(t, base=0.2):
    return base / math.sqrt(max(t, 1))


def epsilon_at(t, base, schedule, horizon):
    if schedule is ExplorationSchedule.CONSTANT:
        return base
    if schedule is ExplorationSchedule.LINEAR_DECAY:
        return base * max(0.0, 1.0 - t / horizon)
    return inverse_sqrt(t, base)


@dataclasses.dataclass
class BanditConfig:
    n_arms: int = 4
    dim: int = 5
    horizon: int = 60
    epsilon: float = 0.2
    alpha: float = 1.0
    seed: int = 7
    schedule: ExplorationSchedule = ExplorationSchedule.INVERSE_SQRT


class SyntheticEnv:
    def __init__(self, n_arms=4, dim=5, noise=0.1, seed=0):
        self.rng = np.random.default_rng(seed)
        self.theta = self.rng.normal(size=(n_arms, dim))
        self.noise = noise

    def context(self):
        return (x := self.rng.normal(size=self.theta.shape[1])) / np.linalg.norm(x)

    def expected(self, x):
        return self.theta @ x

    def pull(self, arm, x):
        return self.expected(x)[arm] + self.noise * self.rng.normal()


class EpsilonGreedyAgent:
    def __init__(self, n_arms=4, epsilon=0.2, schedule=ExplorationSchedule.INVERSE_SQRT, horizon=60, seed=0):
        self.counts = np.zeros(n_arms)
        self.values = np.zeros(n_arms)
        self.base_eps, self.schedule, self.horizon = epsilon, schedule, horizon
        self.epsilon = epsilon
        self.rng = np.random.default_rng(seed)
        self.t = 0
        self.last_action = None

    def act(self, x=None):
        self.t += 1
        self.epsilon = epsilon_at(self.t, self.base_eps, self.schedule, self.horizon)
        if self.rng.random() < self.epsilon:
            self.last_action = self.rng.integers(len(self.counts))
        else:
            self.last_action = np.argmax(self.values)
        return self.last_action

    def update(self, arm, x, reward):
        self.counts[arm] += 1
        self.values[arm] += (reward - self.values[arm]) / self.counts[arm]  # incremental mean

    def state_dict(self):
        return {"counts": torch.from_numpy(self.counts.copy()), "values": self.values.tolist(),
                "t": self.t, "epsilon": float(self.epsilon)}


class LinUCBAgent:
    def __init__(self, n_arms=4, dim=5, alpha=1.0):
        self.alpha = alpha
        self.A = [np.eye(dim) for _ in range(n_arms)]
        self.b = [np.zeros(dim) for _ in range(n_arms)]
        self.last_ucb = None

    def theta(self):
        return [np.linalg.solve(A, b) for A, b in zip(self.A, self.b)]

    def act(self, x):
        ucb = []
        for A, th in zip(self.A, self.theta()):
            bonus = self.alpha * math.sqrt(x @ np.linalg.solve(A, x))
            ucb.append(th @ x + bonus)
        self.last_ucb = np.array(ucb)
        return int(np.argmax(self.last_ucb))

    def update(self, arm, x, reward):
        self.A[arm] += np.outer(x, x)
        self.b[arm] += reward * x

    def state_dict(self):
        return {"A": torch.from_numpy(np.stack(self.A)), "b": torch.from_numpy(np.stack(self.b)), "alpha": self.alpha}


@dataclasses.dataclass
class RunLog:
    actions: list = dataclasses.field(default_factory=list)
    rewards: list = dataclasses.field(default_factory=list)
    regrets: list = dataclasses.field(default_factory=list)

    def records(self):
        return [{"t": t, "arm": int(a), "reward": float(r), "regret": float(g)}
                for t, (a, r, g) in enumerate(zip(self.actions, self.rewards, self.regrets))]


def run_simulation(env, agent, horizon):
    log = RunLog()
    for _ in range(horizon):
        x = env.context()
        arm = agent.act(x)
        reward = env.pull(arm, x)
        agent.update(arm, x, reward)
        log.actions.append(arm)
        log.rewards.append(reward)
        log.regrets.append(env.expected(x).max() - env.expected(x)[arm])
    return log


def _egreedy_run(cfg=None):
    cfg = cfg or BanditConfig()
    env = SyntheticEnv(cfg.n_arms, cfg.dim, seed=cfg.seed)
    agent = EpsilonGreedyAgent(cfg.n_arms, cfg.epsilon, cfg.schedule, cfg.horizon, seed=cfg.seed)
    return env, agent, run_simulation(env, agent, cfg.horizon)


def save_egreedy_agent(tmpdir):
    env, agent, log = _egreedy_run()
    ckpt = {
        "counts": torch.from_numpy(agent.counts),
        "values": agent.values,  # truth: weights_only
        "t": agent.t,
        "epsilon": agent.epsilon,
        "rng_state": agent.rng.bit_generator.state,
        "last_action": agent.last_action,  # truth: weights_only
        "schedule": agent.schedule.value,
    }
    path = os.path.join(tmpdir, "egreedy.pt")
    torch.save(ckpt, path)
    return path


def save_linucb(tmpdir):
    cfg = BanditConfig(alpha=0.5)
    env = SyntheticEnv(cfg.n_arms, cfg.dim, seed=cfg.seed)
    agent = LinUCBAgent(cfg.n_arms, cfg.dim, cfg.alpha)
    run_simulation(env, agent, cfg.horizon)
    ckpt = {"A": [torch.from_numpy(a) for a in agent.A], "alpha": agent.alpha}
    ckpt["b"] = agent.b  # truth: weights_only
    ckpt["theta_norms"] = [float(np.linalg.norm(t)) for t in agent.theta()]
    ckpt["ucb_last"] = agent.last_ucb  # truth: weights_only
    ckpt["schedule"] = cfg.schedule  # truth: weights_only
    ckpt["horizon"] = cfg.horizon
    path = os.path.join(tmpdir, "linucb.pt")
    torch.save(ckpt, path)
    return path


def save_regret_curve(tmpdir):
    cfg = BanditConfig(horizon=80, schedule=ExplorationSchedule.LINEAR_DECAY)
    env, agent, log = _egreedy_run(cfg)
    cum_regret = np.cumsum(log.regrets)
    curve = dict(
        cumulative_regret=torch.tensor(cum_regret),
        final_regret=cum_regret[-1],  # truth: weights_only
        mean_reward=statistics.fmean(log.rewards),
        reward_std=statistics.pstdev([float(r) for r in log.rewards]),
        arm_pulls=collections.Counter(log.actions),  # truth: weights_only
        rewards=log.rewards,  # truth: weights_only
        regret_slope=float(np.polyfit(np.arange(len(cum_regret)), cum_regret, 1)[0]),
        sublinear=bool(cum_regret[-1] / len(cum_regret) < cum_regret[len(cum_regret) // 2] / (len(cum_regret) // 2)),
    )
    path = os.path.join(tmpdir, "regret.pt")
    torch.save(curve, path)
    return path


def save_replay_log(tmpdir):
    t0 = time.perf_counter()
    env, agent, log = _egreedy_run()
    df = pd.DataFrame(log.records())
    ckpt = {
        "log": df.to_dict("list"),
        "per_arm_mean": df.groupby("arm")["reward"].mean().to_dict(),
        "n_rounds": len(df),
        "window_mean": df["reward"].rolling(10).mean().iloc[-1],  # truth: weights_only
        "best_round": int(df["reward"].idxmax()),
        "started": STARTED.isoformat(),
        "wall_time": time.perf_counter() - t0,
        "duration": dt.datetime.now() - STARTED,  # truth: weights_only
    }
    path = os.path.join(tmpdir, "replay_log.pt")
    torch.save(ckpt, path)
    return path


def save_config_snapshot(tmpdir):
    cfg = OmegaConf.merge(DEFAULTS, OmegaConf.from_dotlist(["agent.alpha=0.5", "run.horizon=40"]))
    schedule = ExplorationSchedule(cfg.agent.schedule)
    ckpt = {
        "cfg": OmegaConf.to_container(cfg, resolve=True),
        "arm_names": cfg.env.arm_names,  # truth: weights_only
        "horizon": cfg.run.horizon,
        "alpha": cfg.agent.alpha,
        "schedule": schedule.name,
        "eps_at_end": epsilon_at(cfg.run.horizon, cfg.agent.epsilon, schedule, cfg.run.horizon),
    }
    path = os.path.join(tmpdir, "config_snapshot.pt")
    torch.save(ckpt, path)
    return path


def save_agent_pool(tmpdir):
    cfg = BanditConfig(horizon=30)
    env = SyntheticEnv(cfg.n_arms, cfg.dim, seed=1)
    agents = {"egreedy": EpsilonGreedyAgent(cfg.n_arms, seed=1), "linucb": LinUCBAgent(cfg.n_arms, cfg.dim)}
    totals = {}
    for name, agent in agents.items():
        log = run_simulation(env, agent, cfg.horizon)
        totals[name] = math.fsum(log.regrets)
    ckpt = {
        "agents": {name: agent.state_dict() for name, agent in agents.items()},
        "total_regret": totals,
        "winner": min(totals, key=totals.get),
        "config": {**dataclasses.asdict(cfg), "schedule": cfg.schedule.value},
    }
    path = os.path.join(tmpdir, "agent_pool.pt")
    torch.save(ckpt, path)
    return path


def save_policy_bundle(tmpdir):
    cfg = BanditConfig(alpha=2.0)
    agent = LinUCBAgent(cfg.n_arms, cfg.dim, cfg.alpha)
    bundle = dict(
        policy=agent,  # truth: weights_only
        policy_state=agent.state_dict(),
        created=STARTED.timestamp(),
    )
    path = os.path.join(tmpdir, "policy_bundle.pt")
    torch.save(bundle, path)
    return path


class LitNeuralBandit(L.LightningModule):
    def __init__(
        self,
        context_dim: int = 5, n_arms: int = 4, hidden: int = 16, lr: float = 1e-3,
        exploration: ExplorationSchedule = ExplorationSchedule.CONSTANT,  # truth: hparam
        arm_prior=None,  # truth: hparam
        epsilon_fn=None,  # truth: hparam
        env: SyntheticEnv = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["env"])
        self.net = nn.Sequential(nn.Linear(context_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_arms))

    def training_step(self, batch, batch_idx):
        x, arm, reward = batch
        loss = nn.functional.mse_loss(self.net(x).gather(1, arm[:, None]).squeeze(1), reward)
        self.log("train/mse", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def make_neural_bandit(cfg):
    n_arms = np.int64(cfg.env.n_arms)
    return LitNeuralBandit(
        context_dim=int(cfg.env.dim),
        n_arms=int(n_arms),
        lr=float(cfg.agent.alpha) * 1e-3,
        arm_prior=np.full(n_arms, 1.0 / n_arms),
        epsilon_fn=functools.partial(inverse_sqrt, base=cfg.agent.epsilon),
        env=SyntheticEnv(int(n_arms), int(cfg.env.dim)),
    )


FACTORIES = {
    "ExplorationSchedule": lambda: ExplorationSchedule.LINEAR_DECAY,
    "LitNeuralBandit": lambda: make_neural_bandit(DEFAULTS),
}
