"""Battery energy arbitrage with deep Q-learning on day-ahead prices.

A grid-scale battery buys energy in cheap hours and sells it in expensive ones.  The
environment steps hourly through a price series; the observation is the state of charge,
the hour of day and a normalised 24 h price window.  Agents come from a small registry
(`dqn`, `double_dqn`) and are configured with OmegaConf (YAML + dotlist overrides).
"""
import os
import time
from collections import Counter, deque
from enum import IntEnum

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from omegaconf import OmegaConf
from sklearn.preprocessing import StandardScaler

CONFIG_YAML = """
run:
  name: dqn-epex-de
  seed: 11
  start: 2024-03-01
env:
  capacity_mwh: 2.0
  power_mw: 1.0
  efficiency: 0.92
  degradation_eur_per_mwh: 4.0
  window: 24
  episode_hours: 48
agent:
  name: dqn
  hidden_sizes: [64, 64]
  lr: 1e-3
  gamma: 0.99
  eps_start: 1.0
  eps_end: 0.05
  eps_decay: 0.995
  buffer_size: 5000
  batch_size: 32
  target_sync: 50
train:
  episodes: 3
"""

SCHEDULE_YAML = """
market: EPEX-DE-LU
product: day-ahead
start: 2024-03-01
end: 2024-03-08
"""


def load_config(overrides=()):
    cfg = OmegaConf.create(CONFIG_YAML)
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    return cfg


def load_schedule():
    return yaml.safe_load(SCHEDULE_YAML)


def make_prices(start="2024-03-01", hours=24 * 8, seed=0):
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=hours, freq="h")
    hour = idx.hour.to_numpy()
    daily = 60 + 25 * np.sin((hour - 7) / 24 * 2 * np.pi) + 15 * np.sin((hour - 17) / 12 * 2 * np.pi)
    return pd.Series(daily + rng.normal(0, 8, hours), index=idx, name="eur_mwh")


def price_features(prices):
    feats = pd.DataFrame({"price": prices, "hour": prices.index.hour, "weekday": prices.index.weekday})
    for lag in (1, 24):
        feats[f"lag_{lag}"] = prices.shift(lag)
    feats["roll_mean_24"] = prices.rolling(24).mean()
    return feats.dropna()


class Action(IntEnum):
    DISCHARGE = 0
    IDLE = 1
    CHARGE = 2


class BatteryArbitrageEnv:
    def __init__(self, prices=None, capacity_mwh=2.0, power_mw=1.0, efficiency=0.92,
                 degradation_eur_per_mwh=4.0, window=24, episode_hours=48):
        self.prices = prices if prices is not None else make_prices()
        self.capacity_mwh = capacity_mwh
        self.power_mw = power_mw
        self.efficiency = efficiency
        self.degradation = degradation_eur_per_mwh
        self.window = window
        self.episode_hours = episode_hours
        self.scale = float(self.prices.std())
        self.soc = 0.5 * capacity_mwh
        self.t = window
        self.t_end = window + episode_hours

    @property
    def obs_dim(self):
        return self.window + 3

    def _obs(self):
        win = self.prices.iloc[self.t - self.window:self.t].to_numpy()
        win = (win - win.mean()) / self.scale
        hour = self.prices.index[self.t].hour
        extra = [self.soc / self.capacity_mwh, np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24)]
        return np.concatenate([win, extra]).astype(np.float32)

    def reset(self, start=None):
        self.t = self.window if start is None else start
        self.t_end = min(self.t + self.episode_hours, len(self.prices) - 1)
        self.soc = 0.5 * self.capacity_mwh
        return self._obs()

    def step(self, action):
        price = self.prices.iloc[self.t]
        action = Action(action)
        if action is Action.CHARGE:
            delta = min(self.power_mw, (self.capacity_mwh - self.soc) / self.efficiency)
            self.soc += delta * self.efficiency
            reward = -price * delta
        elif action is Action.DISCHARGE:
            delta = -min(self.power_mw, self.soc)
            self.soc += delta
            reward = -price * delta * self.efficiency
        else:
            delta, reward = 0.0, 0.0
        reward -= self.degradation * abs(delta)
        self.t += 1
        done = self.t >= self.t_end
        return self._obs(), reward, done, {"soc": self.soc, "delta_mwh": delta, "action": action}


class QNetwork(nn.Module):
    def __init__(self, obs_dim=27, n_actions=3, hidden_sizes=(64, 64)):
        super().__init__()
        layers, d = [], obs_dim
        for h in hidden_sizes:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        self.body = nn.Sequential(*layers, nn.Linear(d, n_actions))

    def forward(self, obs):
        return self.body(obs)


class ReplayBuffer:
    def __init__(self, capacity=5000, seed=0):
        self.buffer = deque(maxlen=capacity)
        self.rng = np.random.default_rng(seed)

    def push(self, *transition):
        self.buffer.append(transition)

    def __len__(self):
        return len(self.buffer)

    def sample(self, batch_size):
        idx = self.rng.choice(len(self.buffer), size=batch_size, replace=False)
        obs, act, rew, nxt, done = zip(*(self.buffer[i] for i in idx))
        return (torch.as_tensor(np.stack(obs)), torch.as_tensor(act), torch.as_tensor(rew, dtype=torch.float32),
                torch.as_tensor(np.stack(nxt)), torch.as_tensor(done, dtype=torch.float32))


AGENTS = {}


def register_agent(name):
    def deco(cls):
        AGENTS[name] = cls
        return cls
    return deco


@register_agent("dqn")
class DQNAgent:
    def __init__(self, obs_dim=27, n_actions=3, hidden_sizes=(64, 64), lr=1e-3, gamma=0.99, eps_start=1.0,
                 eps_end=0.05, eps_decay=0.995, buffer_size=5000, batch_size=32, target_sync=50, seed=0):
        torch.manual_seed(seed)
        self.q_net = QNetwork(obs_dim, n_actions, hidden_sizes)
        self.target_net = QNetwork(obs_dim, n_actions, hidden_sizes)
        self.target_net.load_state_dict(self.q_net.state_dict())
        self.optimizer = torch.optim.Adam(self.q_net.parameters(), lr=lr)
        self.buffer = ReplayBuffer(buffer_size, seed)
        self.rng = np.random.default_rng(seed)
        self.n_actions = n_actions
        self.gamma, self.batch_size, self.target_sync = gamma, batch_size, target_sync
        self.eps_start, self.eps_end, self.eps_decay = eps_start, eps_end, eps_decay
        self.steps = 0

    @property
    def epsilon(self):
        return max(self.eps_end, self.eps_start * self.eps_decay ** self.steps)

    def act(self, obs, greedy=False):
        if not greedy and self.rng.random() < self.epsilon:
            return Action(int(self.rng.integers(self.n_actions)))
        with torch.no_grad():
            return Action(int(self.q_net(torch.as_tensor(obs)).argmax()))

    def _targets(self, rew, nxt, done):
        with torch.no_grad():
            return rew + self.gamma * (1 - done) * self.target_net(nxt).max(1).values

    def learn(self):
        self.steps += 1
        if len(self.buffer) < self.batch_size:
            return None
        obs, act, rew, nxt, done = self.buffer.sample(self.batch_size)
        q = self.q_net(obs).gather(1, act.long().unsqueeze(1)).squeeze(1)
        loss = F.smooth_l1_loss(q, self._targets(rew, nxt, done))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        if self.steps % self.target_sync == 0:
            self.target_net.load_state_dict(self.q_net.state_dict())
        return loss.item()


@register_agent("double_dqn")
class DoubleDQNAgent(DQNAgent):
    def _targets(self, rew, nxt, done):
        with torch.no_grad():
            best = self.q_net(nxt).argmax(1, keepdim=True)
            return rew + self.gamma * (1 - done) * self.target_net(nxt).gather(1, best).squeeze(1)


def make_env(cfg, prices=None):
    return BatteryArbitrageEnv(prices, **OmegaConf.to_container(cfg.env, resolve=True))


def build_agent(cfg, obs_dim, n_actions=len(Action)):
    kwargs = OmegaConf.to_container(cfg.agent, resolve=True)
    name = kwargs.pop("name")
    return AGENTS[name](obs_dim=obs_dim, n_actions=n_actions, seed=cfg.run.seed, **kwargs)


class ArbitrageRunner:
    def __init__(self, cfg=None):
        self.cfg = cfg if cfg is not None else load_config()
        self.env = make_env(self.cfg, make_prices(str(self.cfg.run.start), seed=self.cfg.run.seed))
        self.agent = build_agent(self.cfg, self.env.obs_dim)
        self.episode_returns = []
        self.actions = []
        self.losses = []

    def run_episode(self, greedy=False):
        obs, done, ep_return, infos = self.env.reset(), False, 0.0, []
        while not done:
            action = self.agent.act(obs, greedy)
            nxt, reward, done, info = self.env.step(action)
            if not greedy:
                self.agent.buffer.push(obs, int(action), float(reward), nxt, float(done))
                loss = self.agent.learn()
                if loss is not None:
                    self.losses.append(loss)
            self.actions.append(action)
            ep_return += reward
            infos.append(info)
            obs = nxt
        self.episode_returns.append(ep_return)
        return ep_return, infos

    def train(self, episodes=None):
        for _ in range(episodes or self.cfg.train.episodes):
            self.run_episode()
        return self


FACTORIES = {
    "Action": lambda: Action.IDLE,
    "DQNAgent": lambda: build_agent(load_config(), 27),
    "DoubleDQNAgent": lambda: build_agent(load_config(["agent.name=double_dqn"]), 27),
}


def save_dqn_checkpoint(tmpdir):
    cfg = load_config(["train.episodes=2"])
    runner = ArbitrageRunner(cfg).train()
    agent = runner.agent
    ckpt = {
        "q_net": agent.q_net.state_dict(),
        "target_net": agent.target_net.state_dict(),
        "optimizer": agent.optimizer.state_dict(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "env_cfg": cfg.env,  # truth: weights_only
        "global_step": agent.steps,
        "epsilon": agent.epsilon,
        "rng_state": agent.rng.bit_generator.state,
        "buffer_len": len(agent.buffer),
        "replay": agent.buffer.buffer,  # truth: weights_only
        "last_losses": runner.losses[-10:],
        "env_stats": {
            "capacity_mwh": runner.env.capacity_mwh,
            "price_scale": runner.env.scale,
            "mean_price": runner.env.prices.mean(),  # truth: weights_only
            "hours": len(runner.env.prices),
        },
    }
    path = os.path.join(tmpdir, f"{cfg.run.name}_step{agent.steps}.pt")
    torch.save(ckpt, path)
    return path


def save_episode_log(tmpdir):
    runner = ArbitrageRunner(load_config(["train.episodes=2"])).train()
    cap = runner.env.capacity_mwh
    log = {"returns": [], "cycles": [], "final_soc": []}
    for _ in range(3):
        ep_return, infos = runner.run_episode(greedy=True)
        log["returns"].append(float(ep_return))
        log["cycles"].append(sum(abs(i["delta_mwh"]) for i in infos) / (2 * cap))
        log["final_soc"].append(infos[-1]["soc"] / cap)
    ckpt = {
        "log": log,
        "episode_returns": runner.episode_returns,  # truth: weights_only
        "best_greedy_return": max(log["returns"]),
        "mean_return": float(np.mean(runner.episode_returns)),
        "action_counts": Counter(runner.actions),  # truth: weights_only
        "action_names": Counter(a.name for a in runner.actions),
        "epsilon_final": runner.agent.epsilon,
        "n_steps": runner.agent.steps,
    }
    path = os.path.join(tmpdir, "episodes.pt")
    torch.save(ckpt, path)
    return path


def save_price_features(tmpdir):
    prices = make_prices("2024-03-01", seed=5)
    feats = price_features(prices)
    scaler = StandardScaler().fit(feats.to_numpy())
    profile = prices.groupby(prices.index.hour).mean()
    ckpt = {
        "feature_names": list(feats.columns),
        "scaler_mean": scaler.mean_,  # truth: weights_only
        "scaler_scale": scaler.scale_.tolist(),
        "n_samples_seen": int(scaler.n_samples_seen_),
        "price_p90": float(prices.quantile(0.9)),
        "price_max": prices.max().item(),
        "peak_hour": int(profile.idxmax()),
        "trough_hour": profile.idxmin(),  # truth: weights_only
        "hourly_profile": profile.round(2).to_dict(),
        "spread": round(float(profile.max() - profile.min()), 2),
    }
    ckpt["train_start"] = prices.index[0]  # truth: weights_only
    ckpt["train_end"] = prices.index[-1].isoformat()
    ckpt["n_hours"] = len(prices)
    path = os.path.join(tmpdir, "price_features.pt")
    torch.save(ckpt, path)
    return path


def save_registry_checkpoint(tmpdir):
    cfg = load_config(["agent.name=double_dqn", "agent.hidden_sizes=[32,32]", "train.episodes=1"])
    schedule = load_schedule()
    runner = ArbitrageRunner(cfg).train()
    ckpt = {"state_dict": runner.agent.q_net.state_dict()}
    ckpt.update({
        "agent_name": cfg.agent.name,
        "agent_cls": AGENTS[cfg.agent.name],  # truth: weights_only
        "hidden_sizes": cfg.agent.hidden_sizes,  # truth: weights_only
        "hidden": list(cfg.agent.hidden_sizes),
        "gamma": cfg.agent.gamma,
        "market": schedule["market"],
        "delivery_start": schedule["start"],  # truth: weights_only
        "run_start": cfg.run.start,
        "obs_dim": runner.env.obs_dim,
    })
    path = os.path.join(tmpdir, "registry_ckpt.pt")
    torch.save(ckpt, path)
    return path


def save_policy_tuple(tmpdir):
    runner = ArbitrageRunner(load_config(["train.episodes=1"])).train()
    path = os.path.join(tmpdir, "policy.pt")
    torch.save((runner.agent.q_net.state_dict(), runner.env.capacity_mwh, list(Action)), path)  # truth: weights_only
    return path


def save_eval_summary(tmpdir):
    cfg = load_config(["train.episodes=1"])
    runner = ArbitrageRunner(cfg).train()
    ep_return, infos = runner.run_episode(greedy=True)
    prices = runner.env.prices
    summary = {
        "profit_eur": float(ep_return),
        "soc_trace": torch.tensor([i["soc"] for i in infos]),
        "price_trace": torch.from_numpy(prices.to_numpy()[:len(infos)]),
        "actions": [int(i["action"]) for i in infos],
        "action_labels": [a.name.lower() for a in Action],
        "config_yaml": OmegaConf.to_yaml(cfg),
        "timestamps": [ts.isoformat() for ts in prices.index[:len(infos)]],
        "saved_unix": time.time(),
        "efficiency": cfg.env.efficiency,
        "hidden_sizes": tuple(cfg.agent.hidden_sizes),
    }
    path = os.path.join(tmpdir, "eval_summary.pt")
    torch.save(summary, path)
    return path
