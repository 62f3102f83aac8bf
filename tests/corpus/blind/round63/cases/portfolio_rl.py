"""Portfolio allocation with reinforcement learning (PPO and DDPG) on daily asset returns.

Config is a YAML document read through OmegaConf and merged with dotlist overrides; agents and
reward functions are looked up in registries, the way FinRL-like projects wire them together.
"""
import math
from collections import deque

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import yaml
from omegaconf import OmegaConf
from sklearn.covariance import LedoitWolf

CONFIG_YAML = """
data:
  tickers: [AAPL, MSFT, JPM, XOM, GLD, TLT]
  start: "2019-01-01"
  periods: 260
  window: 10
  train_frac: 0.8
env:
  initial_value: 1000000.0
  cost_bps: 10
  reward: log_return
agent:
  name: ppo
  hidden: [64, 64]
  lr: 3.0e-4
  gamma: 0.99
  gae_lambda: 0.95
  clip: 0.2
  update_epochs: 2
  rollout: 48
  lr_schedule: [1.0, 0.5, 0.25]
seed: 11
run:
  iterations: 3
  name: ${agent.name}_${env.reward}
"""

AGENTS = {}
REWARDS = {}


def register_agent(name):
    def deco(cls):
        AGENTS[name] = cls
        return cls
    return deco


def register_reward(name):
    def deco(fn):
        REWARDS[name] = fn
        return fn
    return deco


@register_reward("log_return")
def log_return_reward(port_ret, history):
    return np.log1p(port_ret)


@register_reward("differential_sharpe")
def differential_sharpe_reward(port_ret, history):
    if len(history) < 2:
        return port_ret
    mu, sd = np.mean(history), np.std(history) + 1e-8
    return (port_ret - mu) / sd


def load_config(overrides=()):
    base = OmegaConf.create(yaml.safe_load(CONFIG_YAML))
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


def make_prices(cfg):
    rng = np.random.default_rng(cfg.seed)
    tickers = list(cfg.data.tickers)
    dates = pd.bdate_range(cfg.data.start, periods=cfg.data.periods)
    mu = rng.uniform(0.0001, 0.0006, len(tickers))
    sigma = rng.uniform(0.005, 0.02, len(tickers))
    rets = rng.normal(mu, sigma, size=(len(dates), len(tickers)))
    return pd.DataFrame(100 * np.exp(np.cumsum(rets, 0)), index=dates, columns=tickers)


def sharpe_ratio(returns, periods=252):
    returns = np.asarray(returns)
    return returns.mean() / (returns.std() + 1e-12) * np.sqrt(periods)


def max_drawdown(values):
    peak = np.maximum.accumulate(values)
    return ((values - peak) / peak).min()


class PortfolioEnv:
    def __init__(self, returns, window=10, cost_bps=10, reward="log_return", initial_value=1e6):
        self.returns = returns
        self.window = window
        self.cost = cost_bps / 1e4
        self.reward_fn = REWARDS[reward]
        self.initial_value = initial_value
        self.n_assets = returns.shape[1]
        self.reset()

    @property
    def obs_dim(self):
        return self.window * self.n_assets + self.n_assets

    def _obs(self):
        hist = self.returns[self.t - self.window:self.t].ravel()
        return np.concatenate([hist, self.weights]).astype(np.float32)

    def reset(self):
        self.t = self.window
        self.weights = np.full(self.n_assets, 1.0 / self.n_assets)
        self.value = self.initial_value
        self.port_returns = []
        return self._obs()

    def step(self, action):
        turnover = np.abs(action - self.weights).sum()
        port_ret = float(action @ self.returns[self.t]) - self.cost * turnover
        self.value *= 1 + port_ret
        reward = self.reward_fn(port_ret, self.port_returns)
        self.port_returns.append(port_ret)
        grown = action * (1 + self.returns[self.t])
        self.weights = grown / grown.sum()
        self.t += 1
        done = self.t >= len(self.returns)
        return self._obs(), reward, done, {"value": self.value, "turnover": turnover}


class RunningMeanStd:
    def __init__(self, shape=(), epsilon=1e-4):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = epsilon

    def update(self, x):
        batch_mean, batch_var, batch_count = x.mean(0), x.var(0), x.shape[0]
        delta = batch_mean - self.mean
        tot = self.count + batch_count
        self.mean = self.mean + delta * batch_count / tot
        m2 = self.var * self.count + batch_var * batch_count + delta ** 2 * self.count * batch_count / tot
        self.var, self.count = m2 / tot, tot


class ActorCritic(nn.Module):
    def __init__(self, obs_dim=66, n_assets=6, hidden=(64, 64)):
        super().__init__()
        layers, d = [], obs_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.Tanh()]
            d = h
        self.body = nn.Sequential(*layers)
        self.alpha = nn.Linear(d, n_assets)
        self.value = nn.Linear(d, 1)

    def dist(self, obs):
        h = self.body(obs)
        return torch.distributions.Dirichlet(nn.functional.softplus(self.alpha(h)) + 1.0), self.value(h).squeeze(-1)


@register_agent("ppo")
class PPOAgent:
    def __init__(self, cfg, obs_dim, n_assets):
        self.cfg = cfg
        self.policy = ActorCritic(obs_dim, n_assets, tuple(cfg.hidden))
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr)
        self.obs_rms = RunningMeanStd((obs_dim,))
        self.global_step = 0
        self.updates = 0
        self.recent_returns = deque(maxlen=50)
        self.last_losses = {}

    def act(self, obs):
        x = torch.as_tensor((obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + 1e-8), dtype=torch.float32)
        with torch.no_grad():
            d, v = self.policy.dist(x)
            a = d.sample()
        return a, d.log_prob(a), v, x

    def collect(self, env):
        obs, batch = env.reset(), []
        for _ in range(self.cfg.rollout):
            self.obs_rms.update(obs[None])
            a, logp, v, x = self.act(obs)
            obs, r, done, info = env.step(a.numpy().astype(np.float64))
            batch.append((x, a, logp, v, r))
            self.recent_returns.append(r)
            self.global_step += 1
            if done:
                break
        return batch

    def update(self, batch):
        xs, acts, logps, vals, rews = zip(*batch)
        ret, g = [], 0.0
        for r in reversed(rews):
            g = r + self.cfg.gamma * g
            ret.insert(0, g)
        ret = torch.tensor(ret, dtype=torch.float32)
        xs, acts, old_logp, vals = torch.stack(xs), torch.stack(acts), torch.stack(logps), torch.stack(vals)
        adv = ret - vals
        for _ in range(self.cfg.update_epochs):
            d, v = self.policy.dist(xs)
            ratio = torch.exp(d.log_prob(acts) - old_logp)
            pg = -torch.min(ratio * adv, ratio.clamp(1 - self.cfg.clip, 1 + self.cfg.clip) * adv).mean()
            vf = nn.functional.mse_loss(v, ret)
            loss = pg + 0.5 * vf - 0.01 * d.entropy().mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.updates += 1
        self.last_losses = {"policy": pg.item(), "value": vf.item(), "entropy": d.entropy().mean().item()}
        return self.last_losses

    def checkpoint_state(self):
        state = {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "global_step": self.global_step}
        extras = {"updates": self.updates, "last_losses": dict(self.last_losses)}
        return state, extras


class OUNoise:
    def __init__(self, size=6, theta=0.15, sigma=0.2, seed=0):
        self.theta, self.sigma = theta, sigma
        self.rng = np.random.default_rng(seed)
        self.x_prev = np.zeros(size)

    def __call__(self):
        self.x_prev = self.x_prev + self.theta * -self.x_prev + self.sigma * self.rng.normal(size=self.x_prev.shape)
        return self.x_prev


class ReplayBuffer:
    def __init__(self, capacity=512, obs_dim=66, n_assets=6):
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.act = np.zeros((capacity, n_assets), np.float32)
        self.rew = np.zeros(capacity, np.float32)
        self.capacity, self.pos, self.size, self.full = capacity, 0, 0, False

    def add(self, o, a, r):
        self.obs[self.pos], self.act[self.pos], self.rew[self.pos] = o, a, r
        self.pos = (self.pos + 1) % self.capacity
        self.full = self.full or self.pos == 0
        self.size = min(self.size + 1, self.capacity)


@register_agent("ddpg")
class DDPGAgent:
    def __init__(self, cfg, obs_dim, n_assets):
        self.cfg = cfg
        self.actor = nn.Sequential(nn.Linear(obs_dim, 64), nn.ReLU(), nn.Linear(64, n_assets), nn.Softmax(-1))
        self.critic = nn.Sequential(nn.Linear(obs_dim + n_assets, 64), nn.ReLU(), nn.Linear(64, 1))
        self.actor_target = nn.Sequential(*[m for m in self.actor])
        self.buffer = ReplayBuffer(512, obs_dim, n_assets)
        self.noise = OUNoise(n_assets, seed=cfg.get("seed", 0))
        self.episode_rewards = []
        self.recent_returns = deque(maxlen=20)

    def run_episode(self, env):
        obs, total, done = env.reset(), 0.0, False
        while not done:
            with torch.no_grad():
                a = self.actor(torch.as_tensor(obs)).numpy()
            a = np.clip(a + 0.05 * self.noise(), 1e-6, None)
            a = a / a.sum()
            nxt, r, done, _ = env.step(a)
            self.buffer.add(obs, a, r)
            self.recent_returns.append(float(r))
            total += r
            obs = nxt
        self.episode_rewards.append(total)
        return total


def backtest(policy_fn, env):
    obs, done, values, weights = env.reset(), False, [env.value], []
    while not done:
        a = policy_fn(obs)
        obs, _, done, info = env.step(a)
        values.append(info["value"])
        weights.append(a)
    values = np.array(values)
    rets = np.diff(values) / values[:-1]
    return {"sharpe": sharpe_ratio(rets), "max_drawdown": max_drawdown(values), "final_value": float(values[-1]),
            "weights": np.stack(weights), "values": values, "days": len(rets)}


class Runner:
    def __init__(self, cfg):
        self.cfg = cfg
        self.prices = make_prices(cfg)
        rets = self.prices.pct_change().dropna().to_numpy()
        self.split = int(len(rets) * cfg.data.train_frac)
        self.train_env = PortfolioEnv(rets[:self.split], cfg.data.window, cfg.env.cost_bps, cfg.env.reward,
                                      cfg.env.initial_value)
        self.test_env = PortfolioEnv(rets[self.split - cfg.data.window:], cfg.data.window, cfg.env.cost_bps,
                                     cfg.env.reward, cfg.env.initial_value)
        self.agent = AGENTS[cfg.agent.name](cfg.agent, self.train_env.obs_dim, self.train_env.n_assets)
        self.cov_model = LedoitWolf().fit(rets[:self.split])
        self.rng = np.random.default_rng(cfg.seed)
        self.best_sharpe = -math.inf
        self.iteration = 0

    def greedy(self, obs):
        return self.agent.act(obs)[0].numpy().astype(np.float64)

    def train(self):
        torch.manual_seed(self.cfg.seed)
        for it in range(self.cfg.run.iterations):
            self.iteration = it
            self.agent.update(self.agent.collect(self.train_env))
            report = backtest(self.greedy, self.test_env)
            if report["sharpe"] > self.best_sharpe:
                self.best_sharpe = report["sharpe"]
        return self

    def state_dict(self):
        state, extras = self.agent.checkpoint_state()
        state.update(iteration=self.iteration, run_name=self.cfg.run.name, extras=extras)
        return state


def save_agent_checkpoint(tmpdir):
    runner = Runner(load_config(["run.iterations=2"])).train()
    agent = runner.agent
    state, extras = agent.checkpoint_state()
    ckpt = {
        **state,
        "extras": extras,
        "config": runner.cfg,  # truth: weights_only
        "env_cfg": OmegaConf.to_container(runner.cfg.env, resolve=True),
        "tickers": list(runner.cfg.data.tickers),
        "obs_rms": {
            "mean": agent.obs_rms.mean,  # truth: weights_only
            "var": torch.from_numpy(agent.obs_rms.var),
            "count": agent.obs_rms.count,
        },
        "recent_return_mean": float(np.mean(agent.recent_returns)) if agent.recent_returns else 0.0,
    }
    path = f"{tmpdir}/{runner.cfg.run.name}_agent.pt"
    torch.save(ckpt, path)
    return path


def save_backtest_report(tmpdir):
    runner = Runner(load_config(["run.iterations=1", "env.reward=differential_sharpe"])).train()
    report = backtest(runner.greedy, runner.test_env)
    n = runner.test_env.n_assets
    equal = backtest(lambda obs: np.full(n, 1.0 / n), runner.test_env)
    idx = runner.prices.index
    ckpt = {
        "sharpe": report["sharpe"],  # truth: weights_only
        "max_drawdown": float(report["max_drawdown"]),
        "final_value": report["final_value"],
        "weights_last": report["weights"][-1],  # truth: weights_only
        "mean_weights": dict(zip(runner.prices.columns, report["weights"].mean(0).round(4).tolist())),
        "period": {
            "start": idx[runner.split],  # truth: weights_only
            "end": str(idx[-1].date()),
            "days": report["days"],
        },
        "benchmark": {"name": "equal_weight", "ew_sharpe": sharpe_ratio(np.diff(equal["values"]) / equal["values"][:-1]).item(),
                      "final_value": equal["final_value"]},
        "values": torch.tensor(report["values"]),
    }
    path = f"{tmpdir}/backtest.pt"
    torch.save(ckpt, path)
    return path


def save_ddpg_state(tmpdir):
    cfg = load_config(["agent.name=ddpg"])
    runner = Runner(cfg)
    agent = runner.agent
    for _ in range(2):
        agent.run_episode(runner.train_env)
    buf = agent.buffer
    ckpt = {"actor": agent.actor.state_dict(), "critic": agent.critic.state_dict(),
            "actor_target": agent.actor_target.state_dict()}
    ckpt["buffer"] = {"obs": torch.as_tensor(buf.obs[:buf.size]), "act": torch.as_tensor(buf.act[:buf.size]),
                      "rew": torch.as_tensor(buf.rew[:buf.size]), "pos": buf.pos, "full": buf.full}
    ckpt["noise"] = {"theta": agent.noise.theta, "sigma": agent.noise.sigma,
                     "x_prev": agent.noise.x_prev,  # truth: weights_only
                     "rng": agent.noise.rng.bit_generator.state}
    ckpt["recent_returns"] = agent.recent_returns  # truth: weights_only
    ckpt["episode_rewards"] = agent.episode_rewards  # truth: weights_only
    ckpt["episodes"] = len(agent.episode_rewards)
    path = f"{tmpdir}/ddpg.pt"
    torch.save(ckpt, path)
    return path


def save_config_snapshot(tmpdir):
    cfg = load_config(["agent.lr=1e-4", "data.window=20"])
    prices = make_prices(cfg)
    snapshot = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "yaml": OmegaConf.to_yaml(cfg, resolve=True),
        "agent": cfg.agent.name,
        "lr": cfg.agent.lr,
        "hidden": list(cfg.agent.hidden),
        "lr_schedule": [float(x) for x in cfg.agent.lr_schedule],
        "registered_agents": sorted(AGENTS),
        "registered_rewards": sorted(REWARDS),
        "tickers": prices.columns.tolist(),
        "first_date": prices.index[0].isoformat(),
        "n_days": len(prices),
        "ann_vol": (prices.pct_change().std() * math.sqrt(252)).round(4).to_dict(),
    }
    path = f"{tmpdir}/config_snapshot.pt"
    torch.save(snapshot, path)
    return path


def save_training_state(tmpdir):
    runner = Runner(load_config(["run.iterations=2", "seed=5"])).train()
    state = runner.state_dict()
    state["best_sharpe"] = runner.best_sharpe  # truth: weights_only
    state["rng_state"] = runner.rng.bit_generator.state
    state["np_rng"] = runner.rng  # truth: weights_only
    state["cov"] = torch.tensor(runner.cov_model.covariance_, dtype=torch.float32)
    state["torch_rng"] = torch.get_rng_state()
    state["lr_now"] = runner.agent.optimizer.param_groups[0]["lr"]
    state["next_eval_offset"] = runner.rng.choice(len(runner.test_env.returns) - runner.cfg.data.window)
    state["config"] = OmegaConf.to_container(runner.cfg)
    path = f"{tmpdir}/training_state.pt"
    torch.save(state, path)
    return path


FACTORIES = {
    "PortfolioEnv": lambda: PortfolioEnv(np.zeros((30, 6)), window=10),
    "PPOAgent": lambda: PPOAgent(load_config().agent, 66, 6),
    "DDPGAgent": lambda: DDPGAgent(load_config().agent, 66, 6),
    "Runner": lambda: Runner(load_config()),
}
