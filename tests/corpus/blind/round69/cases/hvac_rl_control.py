"""Model-free HVAC control: a DQN agent picks supply-air setpoint and fan level
for a multi-zone RC thermal model (Sinergym / BOPTEST style, simulated in numpy).

Config lives in YAML and is merged over a structured OmegaConf schema, the way
Hydra projects do it; checkpoints are written by small `save_*` entry points.
"""
import datetime
import enum
import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf

CONFIG_YAML = """
env: {n_zones: 2, step_minutes: 15, setpoints: [16.0, 19.0, 22.0, 25.0], fan_levels: [0.0, 0.5, 1.0]}
agent: {hidden: [64, 64], lr: 0.001, gamma: 0.97, tau: 0.01, eps_decay_steps: 400}
buffer_size: 2000
episodes: 3
seed: 5
"""


class ControlMode(enum.Enum):
    HEATING = "heating"
    COOLING = "cooling"
    AUTO = "auto"


@dataclass
class EnvConfig:
    n_zones: int = 1
    step_minutes: int = 30
    episode_hours: int = 24
    setpoints: List[float] = field(default_factory=lambda: [18.0, 21.0, 24.0])
    fan_levels: List[float] = field(default_factory=lambda: [0.0, 1.0])
    comfort_band: List[float] = field(default_factory=lambda: [20.0, 24.0])
    price_peak: float = 0.30
    price_offpeak: float = 0.10


@dataclass
class AgentConfig:
    hidden: List[int] = field(default_factory=lambda: [32, 32])
    lr: float = 1e-3
    gamma: float = 0.95
    tau: float = 0.005
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_decay_steps: int = 1000
    batch_size: int = 32


@dataclass
class RunConfig:
    name: str = "dqn_2zone"
    mode: ControlMode = ControlMode.AUTO
    tags: List[str] = field(default_factory=lambda: ["dqn", "rc-model"])


@dataclass
class HvacConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    run: RunConfig = field(default_factory=RunConfig)
    buffer_size: int = 1000
    episodes: int = 2
    seed: int = 0


def load_config(**overrides):
    schema = OmegaConf.structured(HvacConfig)
    return OmegaConf.merge(schema, OmegaConf.create(CONFIG_YAML), OmegaConf.create(overrides))


class Box:
    """Minimal gym.spaces.Box stand-in (the project vendors it to avoid gym)."""

    def __init__(self, low, high):
        self.low = np.asarray(low, dtype=np.float32)
        self.high = np.asarray(high, dtype=np.float32)
        self.shape = self.low.shape


class ThermalZoneEnv:
    def __init__(self, cfg, seed=0):
        self.cfg = cfg
        self.n_zones = cfg.env.n_zones
        self.dt_h = cfg.env.step_minutes / 60.0
        self.R, self.C = 2.5, 3.0
        self.actions = [(sp, fan) for sp in cfg.env.setpoints for fan in cfg.env.fan_levels]
        self.rng = np.random.default_rng(seed)
        self.weather_rs = np.random.RandomState(seed)
        hours = np.arange(0, 24, self.dt_h)
        self.outdoor_profile = 8.0 + 7.0 * np.sin((hours - 9.0) / 24.0 * 2 * np.pi)
        self.observation_space = Box([-10.0] * (2 * self.n_zones + 2), [45.0] * (2 * self.n_zones + 2))

    def reset(self):
        self.t = 0
        self.hour = self.rng.integers(0, 6)
        self.temps = self.rng.normal(19.0, 1.5, size=self.n_zones)
        self.occupied = np.zeros(self.n_zones)
        return self._obs()

    def _obs(self):
        idx = self.t % len(self.outdoor_profile)
        outdoor = self.outdoor_profile[idx] + self.weather_rs.normal(0, 0.5)
        hour = (self.hour + self.t * self.dt_h) % 24
        return np.concatenate([self.temps, self.occupied, [outdoor, hour]]).astype(np.float32)

    def step(self, action):
        sp, fan = self.actions[action]
        obs = self._obs()
        outdoor, hour = obs[-2], obs[-1]
        q_hvac = fan * 4.0 * (sp - self.temps)
        self.temps = self.temps + self.dt_h * ((outdoor - self.temps) / (self.R * self.C) + q_hvac / self.C)
        self.occupied = ((8 <= hour) & (hour < 18)) * np.ones(self.n_zones)
        power_kw = np.abs(q_hvac).sum() * 0.35 + fan * 0.4
        price = self.cfg.env.price_peak if 12 <= hour < 20 else self.cfg.env.price_offpeak
        lo, hi = self.cfg.env.comfort_band
        violation = (np.clip(lo - self.temps, 0, None) + np.clip(self.temps - hi, 0, None)) * self.occupied
        reward = -(power_kw * self.dt_h * price) - 0.5 * violation.sum()
        self.t += 1
        done = self.t * self.dt_h >= self.cfg.env.episode_hours
        info = {"power_kw": power_kw, "violation": violation.sum(), "price": price}
        return self._obs(), reward, done, info


class ReplayBuffer:
    def __init__(self, capacity, obs_dim):
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.dones = np.zeros(capacity, dtype=np.bool_)
        self.ptr, self.size = 0, 0

    def add(self, o, a, r, o2, d):
        i = self.ptr
        self.obs[i], self.actions[i], self.rewards[i], self.next_obs[i], self.dones[i] = o, a, r, o2, d
        self.ptr = (self.ptr + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, rng, batch):
        idx = rng.integers(0, self.size, size=batch)
        return (torch.from_numpy(self.obs[idx]), torch.from_numpy(self.actions[idx]),
                torch.from_numpy(self.rewards[idx]), torch.from_numpy(self.next_obs[idx]),
                torch.from_numpy(self.dones[idx].astype(np.float32)))


class QNetwork(nn.Module):
    def __init__(self, obs_dim, n_actions, hidden=(64, 64)):
        super().__init__()
        layers, d = [], obs_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        layers.append(nn.Linear(d, n_actions))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class DQNAgent:
    def __init__(self, cfg, obs_dim, n_actions):
        a = cfg.agent
        self.cfg = cfg
        self.n_actions = n_actions
        self.q = QNetwork(obs_dim, n_actions, list(a.hidden))
        self.q_target = QNetwork(obs_dim, n_actions, list(a.hidden))
        self.q_target.load_state_dict(self.q.state_dict())
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=a.lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, mode="max", patience=2)
        self.rng = np.random.default_rng(cfg.seed)
        self.steps = 0
        self.epsilon = a.eps_start

    def act(self, obs):
        a = self.cfg.agent
        self.epsilon = np.interp(self.steps, [0, a.eps_decay_steps], [a.eps_start, a.eps_end])
        self.steps += 1
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(self.n_actions))
        with torch.no_grad():
            return self.q(torch.from_numpy(obs)[None]).argmax(-1).item()

    def update(self, buffer):
        a = self.cfg.agent
        if buffer.size < a.batch_size:
            return None, None
        o, act, r, o2, d = buffer.sample(self.rng, a.batch_size)
        q = self.q(o).gather(1, act[:, None]).squeeze(1)
        with torch.no_grad():
            target = r + a.gamma * (1 - d) * self.q_target(o2).max(1).values
        loss = F.smooth_l1_loss(q, target)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            for p, tp in zip(self.q.parameters(), self.q_target.parameters()):
                tp.mul_(1 - a.tau).add_(p, alpha=a.tau)
        return loss.item(), q.mean().item()


def run_episode(env, agent, buffer):
    obs, done = env.reset(), False
    ep_return, energy, violation, losses = 0.0, 0.0, 0.0, []
    while not done:
        action = agent.act(obs)
        nxt, reward, done, info = env.step(action)
        buffer.add(obs, action, reward, nxt, done)
        loss, _ = agent.update(buffer)
        if loss is not None:
            losses.append(loss)
        ep_return += reward
        energy += info["power_kw"] * env.dt_h
        violation += info["violation"] * env.dt_h
        obs = nxt
    return {"return": ep_return, "energy_kwh": energy, "violation_kh": violation,
            "mean_loss": statistics.mean(losses) if losses else math.nan}


def train(cfg):
    torch.manual_seed(cfg.seed)
    env = ThermalZoneEnv(cfg, seed=cfg.seed)
    obs_dim = env.observation_space.shape[0]
    agent = DQNAgent(cfg, obs_dim, len(env.actions))
    buffer = ReplayBuffer(cfg.buffer_size, obs_dim)
    log = {"return": [], "energy_kwh": [], "violation_kh": []}
    recent = deque(maxlen=10)
    best_return = -np.inf
    for _ in range(cfg.episodes):
        ep = run_episode(env, agent, buffer)
        for k in log:
            log[k].append(ep[k])
        recent.append(ep["return"])
        agent.scheduler.step(np.mean(recent))
        if ep["return"] > best_return:
            best_return = ep["return"]
    return env, agent, buffer, log, recent, best_return


FACTORIES = {
    "ControlMode": lambda: ControlMode.AUTO,
    "Box": lambda: Box([0.0, 0.0], [1.0, 1.0]),
    "ThermalZoneEnv": lambda: ThermalZoneEnv(load_config()),
    "ReplayBuffer": lambda: ReplayBuffer(16, 6),
    "QNetwork": lambda: QNetwork(6, 12),
    "DQNAgent": lambda: DQNAgent(load_config(), 6, 12),
}


# ----------------------------------------------------------------- checkpoints

def save_agent_checkpoint(tmpdir):
    cfg = load_config(episodes=1)
    env, agent, buffer, log, recent, best = train(cfg)
    ckpt = {
        "q": agent.q.state_dict(),
        "q_target": agent.q_target.state_dict(),
        "optimizer": agent.optimizer.state_dict(),
        "scheduler": agent.scheduler.state_dict(),
        "cfg": cfg,  # truth: weights_only
        "epsilon": agent.epsilon,  # truth: weights_only
        "eps_floor": cfg.agent.eps_end,
        "steps": agent.steps,
        "run_name": cfg.run.name,
    }
    out = Path(tmpdir) / f"{cfg.run.name}_last.pt"
    torch.save(ckpt, out)
    return str(out)


def save_replay_buffer(tmpdir):
    cfg = load_config(episodes=1)
    _, _, buf, _, _, _ = train(cfg)
    n = buf.size
    torch.save({
        "obs": torch.from_numpy(buf.obs[:n]).clone(),
        "next_obs": torch.from_numpy(buf.next_obs[:n]),
        "actions": torch.from_numpy(buf.actions[:n]),
        "rewards": buf.rewards[:n].tolist(),
        "dones": torch.as_tensor(buf.dones[:n]),
        "ptr": buf.ptr,
        "size": n,
        "capacity": buf.capacity,
        "action_counts": np.bincount(buf.actions[:n], minlength=12).tolist(),
        "dominant_action": np.bincount(buf.actions[:n]).argmax(),  # truth: weights_only
        "reward_min": buf.rewards[:n].min().item(),
        "obs_dtype_name": str(buf.obs.dtype),
    }, Path(tmpdir) / "replay.pt")
    return str(Path(tmpdir) / "replay.pt")


def summarize(log, recent, best_return):
    returns = [float(r) for r in log["return"]]
    return {
        "best_return": best_return,
        "mean_recent": float(np.mean(recent)),
        "returns": returns,
        "median_return": statistics.median(returns),
        "total_energy": math.fsum(log["energy_kwh"]),
        "violation_avg": round(np.mean(log["violation_kh"]), 3),
    }


def save_training_progress(tmpdir):
    cfg = load_config(episodes=3)
    env, agent, buffer, log, recent, best_return = train(cfg)
    s = summarize(log, recent, best_return)
    progress = {"episode": len(log["return"]), "log_keys": sorted(log)}
    progress["recent_returns"] = recent  # truth: weights_only
    progress["recent_list"] = list(recent)  # truth: weights_only
    progress["best_return"] = s["best_return"]  # truth: weights_only
    progress["mean_recent"] = s["mean_recent"]
    progress["returns"] = s["returns"]
    progress["median_return"] = s["median_return"]
    progress["total_energy_kwh"] = s["total_energy"]
    progress["energy_sum"] = sum(log["energy_kwh"])  # truth: weights_only
    progress["violation_avg"] = s["violation_avg"]  # truth: weights_only
    progress["lr"] = agent.optimizer.param_groups[0]["lr"]
    progress["plateau"] = agent.scheduler.state_dict()
    path = Path(tmpdir) / "progress.pt"
    torch.save(progress, path)
    return str(path)


def save_env_snapshot(tmpdir):
    cfg = load_config()
    env = ThermalZoneEnv(cfg, seed=11)
    env.reset()
    for a in range(4):
        env.step(a)
    snap = dict(
        t=env.t,
        start_hour=int(env.hour),
        temps=torch.tensor(env.temps),
        thermal={"R": env.R, "C": env.C, "dt_h": env.dt_h},
        setpoints=cfg.env.setpoints,  # truth: weights_only
        comfort_band=tuple(cfg.env.comfort_band),
        control_step_s=datetime.timedelta(minutes=cfg.env.step_minutes).total_seconds(),
        env_rng=env.rng.bit_generator.state,
        outdoor_profile=torch.from_numpy(env.outdoor_profile).float(),
        observation_space=env.observation_space,  # truth: weights_only
        obs_low=env.observation_space.low.tolist(),
    )
    path = Path(tmpdir) / "env_snapshot.pt"
    torch.save(snap, path)
    return str(path)


def save_policy_export(tmpdir):
    """What the BMS gateway loads: weights plus everything to build obs and decode actions."""
    cfg = load_config(episodes=1)
    env, agent, buffer, log, recent, best = train(cfg)
    obs = buffer.obs[:buffer.size]
    export = {
        "state_dict": agent.q.state_dict(),
        "obs_mean": torch.from_numpy(obs.mean(0)),
        "obs_std": torch.from_numpy(obs.std(0) + 1e-6),
        "action_map": [[float(sp), float(fan)] for sp, fan in env.actions],
        "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "mode": cfg.run.mode.value,
        "hidden": list(cfg.agent.hidden),
        "n_zones": cfg.env.n_zones,
        "exported_at": datetime.datetime.now().isoformat(),
        "format_version": 3,
    }
    path = Path(tmpdir) / "policy.pt"
    torch.save(export, path)
    return str(path)


def save_hparam_sweep_entry(tmpdir):
    """One row of the sweep table, written by the sweep driver."""
    cfg = load_config(episodes=2, agent={"lr": 3e-4, "gamma": 0.99})
    env, agent, buffer, log, recent, best = train(cfg)
    run_cfg = OmegaConf.to_container(cfg.run)
    row = {
        "agent": OmegaConf.to_container(cfg.agent),
        "env": OmegaConf.to_container(cfg.env, resolve=True),
        "run_name": run_cfg["name"],
        "mode": run_cfg["mode"],  # truth: weights_only
        "tags": run_cfg["tags"],
    }
    row["best_return"] = float(best)
    row["energy_last"] = log["energy_kwh"][-1].item()
    row["optimizer"] = agent.optimizer  # truth: weights_only
    row["mode_name"] = cfg.run.mode.name
    path = Path(tmpdir) / "sweep_row.pt"
    torch.save(row, path)
    return str(path)
