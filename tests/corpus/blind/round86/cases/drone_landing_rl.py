"""Autonomous drone landing with Soft Actor-Critic.

A planar quadrotor (x, z, vx, vz) must touch down on a pad at x = 0 under wind, gently.
Configuration is a YAML document read with OmegaConf and overridden from the command line
(`train.total_steps=2000 env.wind=steady`).
"""
import collections
import copy
import datetime
import enum
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

# 32-unit MLPs: intra-op threads only add synchronisation overhead (same default as many SAC repos)
torch.set_num_threads(1)

CONFIG_YAML = """
env:
  dt: 0.05
  max_steps: 80
  gravity: 9.81
  mass: 1.2
  max_thrust: 18.0
  max_lateral: 4.0
  pad_radius: 0.5
  safe_speed: 1.0
  wind: gusty            # calm | steady | gusty
  wind_speed: 1.5
  start_altitude: [3.0, 6.0]
agent:
  hidden_sizes: [32, 32]
  gamma: 0.99
  tau: 0.005
  actor_lr: 3.0e-4
  critic_lr: 3.0e-4
  alpha_lr: 3.0e-4
  init_alpha: 0.2
  batch_size: 32
train:
  total_steps: 300
  warmup_steps: 120
  update_every: 4
  eval_episodes: 3
  seed: 3
  buffer_size: 5000
  run_dir: runs/drone_sac/seed${train.seed}
curriculum:
  levels: [[1.0, 3.0], [3.0, 6.0], [6.0, 10.0]]
  window: 10
  promote_at: 0.6
"""


def load_config(overrides=None):
    cfg = OmegaConf.create(CONFIG_YAML)
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    return cfg


class WindProfile(enum.Enum):
    CALM = "calm"
    STEADY = "steady"
    GUSTY = "gusty"


# ----------------------------------------------------------------------------- environment

class DroneLandingEnv:
    """Observation: (x, z, vx, vz); action in [-1, 1]^2: (collective thrust, lateral force)."""

    def __init__(self, cfg=None, seed=0):
        self.cfg = cfg if cfg is not None else load_config().env
        self.wind = WindProfile(self.cfg.wind)
        self.rng = np.random.default_rng(seed)
        self.state = np.zeros(4)
        self.steps = 0
        self.gust = 0.0

    def reset(self, altitude=None):
        lo, hi = altitude or self.cfg.start_altitude
        self.state = np.array([self.rng.uniform(-2.0, 2.0), self.rng.uniform(lo, hi), 0.0, 0.0])
        self.steps = 0
        self.gust = 0.0
        return self.state.astype(np.float32)

    def wind_force(self):
        if self.wind is WindProfile.CALM:
            return 0.0
        if self.wind is WindProfile.STEADY:
            return self.cfg.wind_speed
        self.gust = 0.9 * self.gust + 0.3 * self.rng.normal()
        return self.cfg.wind_speed * (0.5 + self.gust)

    def step(self, action):
        c = self.cfg
        thrust = (np.clip(action[0], -1, 1) + 1) / 2 * c.max_thrust
        lateral = np.clip(action[1], -1, 1) * c.max_lateral
        ax = (lateral + self.wind_force()) / c.mass
        az = thrust / c.mass - c.gravity
        x, z, vx, vz = self.state
        vx, vz = vx + ax * c.dt, vz + az * c.dt
        x, z = x + vx * c.dt, z + vz * c.dt
        self.state = np.array([x, z, vx, vz])
        self.steps += 1
        info = {"landed": False, "touchdown_speed": None}
        terminated = z <= 0.0
        reward = -0.05 * abs(x) - 0.02 * abs(vz) - 0.01
        if terminated:
            speed = np.linalg.norm([vx, vz])
            landed = abs(x) <= c.pad_radius and speed <= c.safe_speed
            reward += 10.0 if landed else -5.0 - speed
            info.update(landed=landed, touchdown_speed=speed)
        truncated = self.steps >= c.max_steps
        return self.state.astype(np.float32), reward, terminated, truncated, info


class RunningMeanStd:
    """Observation normaliser (Welford merge of batch moments)."""

    def __init__(self, shape=(4,), epsilon=1e-4):
        self.mean = np.zeros(shape)
        self.var = np.ones(shape)
        self.count = epsilon

    def update(self, x):
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.mean.shape[0])
        batch_mean, batch_var, batch_count = x.mean(0), x.var(0), x.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta ** 2 * self.count * batch_count / total
        self.var = m2 / total
        self.count = total

    def normalize(self, x):
        return ((x - self.mean) / np.sqrt(self.var + 1e-8)).astype(np.float32)


class ReplayBuffer:
    def __init__(self, capacity=1000, seed=0):
        self.storage = collections.deque(maxlen=capacity)
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return len(self.storage)

    def add(self, obs, act, rew, next_obs, done):
        self.storage.append((obs, act, rew, next_obs, done))

    def sample(self, batch_size):
        idx = self.rng.integers(0, len(self.storage), size=batch_size)
        obs, act, rew, nxt, done = zip(*(self.storage[i] for i in idx))
        as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)
        return as_t(obs), as_t(act), as_t(rew), as_t(nxt), as_t(done)


class LandingCurriculum:
    """Start close to the pad; move to higher start altitudes once landings are reliable."""

    def __init__(self, levels=((1.0, 3.0), (3.0, 6.0)), window=10, promote_at=0.6):
        self.levels = [tuple(float(v) for v in lv) for lv in levels]
        self.level = 0
        self.promote_at = promote_at
        self.recent = collections.deque(maxlen=window)
        self.promotions = []

    def altitude(self):
        return self.levels[self.level]

    def success_rate(self):
        return sum(self.recent) / max(len(self.recent), 1)

    def record(self, landed, step):
        self.recent.append(bool(landed))
        full = len(self.recent) == self.recent.maxlen
        if full and self.success_rate() >= self.promote_at and self.level < len(self.levels) - 1:
            self.level += 1
            self.recent.clear()
            self.promotions.append((step, self.level))


# ----------------------------------------------------------------------------- agent

def mlp(sizes, out_act=None):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    if out_act is not None:
        layers.append(out_act)
    return nn.Sequential(*layers)


class GaussianActor(nn.Module):
    def __init__(self, obs_dim=4, act_dim=2, hidden=(32, 32)):
        super().__init__()
        self.body = mlp([obs_dim, *hidden], nn.ReLU())
        self.mu = nn.Linear(hidden[-1], act_dim)
        self.log_std = nn.Linear(hidden[-1], act_dim)

    def forward(self, obs, deterministic=False):
        h = self.body(obs)
        mu, log_std = self.mu(h), self.log_std(h).clamp(-5, 2)
        dist = torch.distributions.Normal(mu, log_std.exp())
        u = mu if deterministic else dist.rsample()
        a = torch.tanh(u)
        logp = (dist.log_prob(u) - torch.log(1 - a.pow(2) + 1e-6)).sum(-1)
        return a, logp


class TwinCritic(nn.Module):
    def __init__(self, obs_dim=4, act_dim=2, hidden=(32, 32)):
        super().__init__()
        self.q1 = mlp([obs_dim + act_dim, *hidden, 1])
        self.q2 = mlp([obs_dim + act_dim, *hidden, 1])

    def forward(self, obs, act):
        x = torch.cat([obs, act], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class SACAgent:
    def __init__(self, obs_dim=4, act_dim=2, cfg=None, seed=0):
        cfg = cfg if cfg is not None else load_config().agent
        hidden = tuple(cfg.hidden_sizes)
        torch.manual_seed(seed)
        self.actor = GaussianActor(obs_dim, act_dim, hidden)
        self.critic = TwinCritic(obs_dim, act_dim, hidden)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), requires_grad=True)
        self.target_entropy = -np.prod((act_dim,))
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)
        self.gamma, self.tau, self.batch_size = cfg.gamma, cfg.tau, cfg.batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.updates = 0

    @torch.no_grad()
    def act(self, obs, deterministic=False):
        a, _ = self.actor(torch.as_tensor(obs).unsqueeze(0), deterministic)
        return a.squeeze(0).numpy()

    def update(self, buffer):
        obs, act, rew, nxt, done = buffer.sample(self.batch_size)
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            a2, logp2 = self.actor(nxt)
            q_next = torch.min(*self.critic_target(nxt, a2)) - alpha * logp2
            target = rew + self.gamma * (1 - done) * q_next
        q1, q2 = self.critic(obs, act)
        critic_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        a, logp = self.actor(obs)
        actor_loss = (alpha * logp - torch.min(*self.critic(obs, a))).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad()
        alpha_loss.backward()
        self.alpha_opt.step()
        with torch.no_grad():
            for p, tp in zip(self.critic.parameters(), self.critic_target.parameters()):
                tp.mul_(1 - self.tau).add_(self.tau * p)
        self.updates += 1
        return {"critic": critic_loss.item(), "actor": actor_loss.item(), "alpha": alpha.item()}


FACTORIES = {"WindProfile": lambda: WindProfile.GUSTY}


# ----------------------------------------------------------------------------- loops

def train_sac(cfg, curriculum=None):
    env = DroneLandingEnv(cfg.env, seed=cfg.train.seed)
    agent = SACAgent(cfg=cfg.agent, seed=cfg.train.seed)
    buffer = ReplayBuffer(cfg.train.buffer_size, seed=cfg.train.seed)
    rms = RunningMeanStd()
    log = {"episode_returns": [], "landings": [], "losses": [], "global_step": 0, "best_return": -math.inf}
    raw = env.reset(curriculum.altitude() if curriculum else None)
    rms.update(raw)
    obs, ep_ret = rms.normalize(raw), 0.0
    for step in range(cfg.train.total_steps):
        if step < cfg.train.warmup_steps:
            action = env.rng.uniform(-1, 1, size=2).astype(np.float32)
        else:
            action = agent.act(obs)
        raw, reward, terminated, truncated, info = env.step(action)
        rms.update(raw)
        nxt = rms.normalize(raw)
        buffer.add(obs, action, reward, nxt, float(terminated))
        obs, ep_ret = nxt, ep_ret + reward
        if step >= cfg.train.warmup_steps and step % cfg.train.update_every == 0:
            log["losses"].append(agent.update(buffer))
        if terminated or truncated:
            log["episode_returns"].append(ep_ret)
            log["landings"].append(bool(info["landed"]))
            log["best_return"] = max(log["best_return"], float(ep_ret))
            if curriculum is not None:
                curriculum.record(info["landed"], step)
            raw = env.reset(curriculum.altitude() if curriculum else None)
            obs, ep_ret = rms.normalize(raw), 0.0
        log["global_step"] = step + 1
    return agent, env, buffer, rms, log


def evaluate_policy(agent, env, rms, episodes):
    """Mean return, landing success rate and touchdown speeds of the deterministic policy."""
    returns, successes, speeds = [], [], []
    for _ in range(episodes):
        obs, done, ret = rms.normalize(env.reset()), False, 0.0
        while not done:
            raw, r, terminated, truncated, info = env.step(agent.act(obs, deterministic=True))
            obs, ret, done = rms.normalize(raw), ret + r, terminated or truncated
        returns.append(ret)
        successes.append(info["landed"])
        if info["touchdown_speed"] is not None:
            speeds.append(info["touchdown_speed"])
    return float(np.mean(returns)), np.mean(successes), speeds


# ----------------------------------------------------------------------------- checkpoints

def save_sac_checkpoint(tmpdir):
    cfg = load_config(["train.total_steps=240"])
    agent, env, buffer, rms, log = train_sac(cfg)
    ckpt = {
        "actor": agent.actor.state_dict(),
        "critics": {"online": agent.critic.state_dict(), "target": agent.critic_target.state_dict()},
        "log_alpha": agent.log_alpha.detach(),
        "alpha": agent.log_alpha.exp().item(),
        "target_entropy": agent.target_entropy,  # truth: weights_only
        "optimizers": {
            "actor": agent.actor_opt.state_dict(),
            "critic": agent.critic_opt,  # truth: weights_only
            "alpha": agent.alpha_opt.state_dict(),
        },
        "config": OmegaConf.to_container(cfg, resolve=True),
        "global_step": log["global_step"],
        "updates": agent.updates,
    }
    path = f"{tmpdir}/sac_step{log['global_step']}.pt"
    torch.save(ckpt, path)
    return path


def save_replay_and_normalizer(tmpdir):
    cfg = load_config(["train.total_steps=160", "train.warmup_steps=160"])
    agent, env, buffer, rms, log = train_sac(cfg)
    ckpt = dict(
        replay=buffer.storage,  # truth: weights_only
        replay_size=len(buffer),
        replay_capacity=buffer.storage.maxlen,
        obs_rms={"mean": torch.as_tensor(rms.mean),
                 "var": rms.var,  # truth: weights_only
                 "count": rms.count},
        buffer_rng=buffer.rng.bit_generator.state,
        env_rng=env.rng,  # truth: weights_only
        torch_rng=torch.get_rng_state(),
        agent_gen_state=agent.gen.get_state(),
        python_version=sys.version.split()[0],
    )
    path = f"{tmpdir}/replay_rms.pt"
    torch.save(ckpt, path)
    return path


def save_eval_summary(tmpdir):
    t0 = time.monotonic()
    cfg = load_config(["train.total_steps=200", "env.wind=steady"])
    agent, env, buffer, rms, log = train_sac(cfg)
    mean_ret, success_rate, speeds = evaluate_policy(agent, env, rms, cfg.train.eval_episodes)
    summary = {}
    summary["mean_return"] = mean_ret
    summary["success_rate"] = success_rate  # truth: weights_only
    summary["touchdown_speeds"] = speeds  # truth: weights_only
    summary["worst_touchdown"] = max((float(s) for s in speeds), default=None)
    summary["wind"] = env.wind  # truth: weights_only
    summary["wind_name"] = cfg.env.wind
    summary["hidden_sizes"] = cfg.agent.hidden_sizes  # truth: weights_only
    summary["start_altitude"] = list(cfg.env.start_altitude)
    summary["episode_returns"] = log["episode_returns"]  # truth: weights_only
    summary["landings"] = log["landings"]
    summary["train_landing_rate"] = sum(log["landings"]) / max(len(log["landings"]), 1)
    summary["best_return"] = log["best_return"]
    summary["pad_radius"] = cfg.env.pad_radius
    summary["eval_seconds"] = round(time.monotonic() - t0, 2)
    path = f"{tmpdir}/eval_summary.pt"
    torch.save(summary, path)
    return path


def save_curriculum_state(tmpdir):
    cfg = load_config(["train.total_steps=200", "train.warmup_steps=200"])
    cur = LandingCurriculum(cfg.curriculum.levels, cfg.curriculum.window, cfg.curriculum.promote_at)
    agent, env, buffer, rms, log = train_sac(cfg, curriculum=cur)
    state = {
        "curriculum": {
            "level": cur.level,
            "altitude": cur.altitude(),
            "recent": cur.recent,  # truth: weights_only
            "recent_list": list(cur.recent),
            "promotions": cur.promotions,
            "rate": cur.success_rate(),
            "levels": cur.levels,
        },
        "run_dir": cfg.train.run_dir,
        "actor": agent.actor.state_dict(),
    }
    state["cfg"] = cfg  # truth: weights_only
    state["cfg_yaml"] = OmegaConf.to_yaml(cfg)
    state["train_cfg"] = dict(cfg.train)
    path = f"{tmpdir}/curriculum.pt"
    torch.save(state, path)
    return path


def save_actor_for_deployment(tmpdir):
    cfg = load_config(["train.total_steps=160"])
    agent, env, buffer, rms, log = train_sac(cfg)
    export = {
        "actor": agent.actor.state_dict(),
        "obs_dim": 4,
        "act_dim": 2,
        "hidden_sizes": list(cfg.agent.hidden_sizes),
        "obs_mean": torch.as_tensor(rms.mean, dtype=torch.float32),
        "obs_std": torch.as_tensor(np.sqrt(rms.var + 1e-8), dtype=torch.float32),
        "obs_count": rms.count,
        "max_thrust": float(cfg.env.max_thrust),
        "dt": cfg.env.dt,
        "touchdown_limit": math.hypot(cfg.env.safe_speed, 0.0),
        "exported_at": datetime.datetime.now().isoformat(timespec="seconds"),
        "numpy_version": np.__version__,
    }
    path = f"{tmpdir}/actor_export.pt"
    torch.save(export, path)
    return path


def save_policy_snapshot(tmpdir):
    cfg = load_config(["train.total_steps=160"])
    agent, env, buffer, rms, log = train_sac(cfg)
    snapshot = (agent.actor.state_dict(), log["best_return"], cfg.train.seed, agent.log_alpha.exp().item())
    path = f"{tmpdir}/policy_snapshot.pt"
    torch.save(snapshot, path)
    return path
