"""Quadrotor waypoint navigation with PPO (on-policy) and SAC (off-policy).

The drone is a point mass with linear drag, gravity compensation and gusty wind; the action is a
normalised 3-axis thrust command.  Configs are OmegaConf: a YAML file for PPO, a structured
dataclass config for SAC, both overridable from the command line as dotlists.

    python drone_rl.py ppo.lr=1e-4 env.wind_std=0.1
"""
import datetime
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from omegaconf import OmegaConf

PPO_YAML = """
seed: 3
env:
  dt: 0.05
  max_steps: 40
  mass: 0.03
  drag: 0.1
  max_thrust: 2.0
  goal_radius: 0.25
  wind_std: 0.05
  waypoints: [[0.0, 0.0, 1.0], [1.0, 0.5, 1.2], [1.5, -0.5, 1.0]]
ppo:
  lr: 3.0e-4
  gamma: 0.99
  gae_lambda: 0.95
  clip: 0.2
  epochs: 2
  minibatch: 32
  rollout: 96
  updates: 2
  ent_coef: 0.0
  vf_coef: 0.5
model:
  hidden: [64, 64]
  activation: tanh
log:
  dir: runs/drone_ppo
"""

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


class Algo(Enum):
    PPO = "ppo"
    SAC = "sac"


@dataclass
class SACEnvConfig:
    dt: float = 0.05
    max_steps: int = 40
    mass: float = 0.03
    drag: float = 0.1
    max_thrust: float = 2.0
    goal_radius: float = 0.25
    wind_std: float = 0.05
    wind_mean: tuple = (0.05, 0.0, 0.0)
    waypoints: list = field(default_factory=lambda: [[0.0, 0.0, 1.0], [1.0, 1.0, 1.5]])


@dataclass
class SACConfig:
    algo: Algo = Algo.SAC
    seed: int = 11
    env: SACEnvConfig = field(default_factory=SACEnvConfig)
    hidden: list = field(default_factory=lambda: [64, 64])
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    batch_size: int = 32
    buffer_size: int = 5000
    warmup: int = 40
    total_steps: int = 80


def load_ppo_config(overrides=()):
    return OmegaConf.merge(OmegaConf.create(PPO_YAML), OmegaConf.from_dotlist(list(overrides)))


def load_sac_config(overrides=()):
    return OmegaConf.merge(OmegaConf.structured(SACConfig), OmegaConf.from_dotlist(list(overrides)))


# --------------------------------------------------------------------------- environment

class QuadWaypointEnv:
    def __init__(self, cfg=None, seed=0):
        self.cfg = cfg if cfg is not None else OmegaConf.create(PPO_YAML).env
        self.np_random = np.random.default_rng(seed)
        self.waypoints = np.asarray(OmegaConf.to_container(self.cfg.waypoints), dtype=np.float64)
        self.action_low = -np.ones(3, dtype=np.float32)
        self.action_high = np.ones(3, dtype=np.float32)
        self.obs_dim, self.act_dim = 7, 3
        self.reset()

    def _obs(self):
        rel = self.waypoints[self.wp] - self.pos
        return np.concatenate([rel, self.vel, [self.wp / len(self.waypoints)]]).astype(np.float32)

    def reset(self):
        self.pos = np.array([0.0, 0.0, 0.5]) + self.np_random.normal(0, 0.05, 3)
        self.vel = np.zeros(3)
        self.wp, self.t = 0, 0
        return self._obs()

    def step(self, action):
        a = np.clip(action, self.action_low, self.action_high) * self.cfg.max_thrust
        wind = self.np_random.normal(0.0, self.cfg.wind_std, 3)
        acc = a / (self.cfg.mass * 100.0) - self.cfg.drag * self.vel + wind
        self.vel = self.vel + acc * self.cfg.dt
        self.pos = self.pos + self.vel * self.cfg.dt
        self.t += 1
        dist = np.linalg.norm(self.waypoints[self.wp] - self.pos)
        reached = dist < self.cfg.goal_radius
        reward = -dist - 0.01 * np.square(action).sum() + 5.0 * reached
        last = self.wp == len(self.waypoints) - 1
        success = reached & last
        if reached and not last:
            self.wp += 1
        crashed = self.pos[2] < 0.0
        truncated = self.t >= self.cfg.max_steps
        info = {"success": success, "crashed": crashed, "dist": dist}
        return self._obs(), reward, bool(success or crashed), truncated, info


class RunningMeanStd:
    def __init__(self, shape=(7,), epsilon=1e-4):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = epsilon

    def update(self, x):
        batch_mean, batch_var, batch_count = x.mean(axis=0), x.var(axis=0), x.shape[0]
        delta = batch_mean - self.mean
        tot = self.count + batch_count
        self.mean = self.mean + delta * batch_count / tot
        m2 = self.var * self.count + batch_var * batch_count + delta ** 2 * self.count * batch_count / tot
        self.var, self.count = m2 / tot, tot

    def normalize(self, x):
        return np.clip((x - self.mean) / np.sqrt(self.var + 1e-8), -10, 10).astype(np.float32)


# --------------------------------------------------------------------------- PPO

def mlp(sizes, activation):
    layers = []
    for i in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), ACTIVATIONS[activation]()]
    return nn.Sequential(*layers[:-1])


class ActorCritic(nn.Module):
    def __init__(self, obs_dim=7, act_dim=3, hidden=(64, 64), activation="tanh"):
        super().__init__()
        self.pi = mlp([obs_dim, *hidden, act_dim], activation)
        self.v = mlp([obs_dim, *hidden, 1], activation)
        self.log_std = nn.Parameter(-0.5 * torch.ones(act_dim))

    def dist(self, obs):
        return torch.distributions.Normal(self.pi(obs), self.log_std.exp())

    def act(self, obs):
        with torch.no_grad():
            d = self.dist(obs)
            a = d.sample()
            return a, d.log_prob(a).sum(-1), self.v(obs).squeeze(-1)


def collect(env, agent, rms, n_steps, returns_window):
    obs_buf, act_buf, logp_buf, rew_buf, val_buf, done_buf = [], [], [], [], [], []
    raw = env.reset()
    ep_ret = 0.0
    for _ in range(n_steps):
        rms.update(raw[None])
        obs = torch.from_numpy(rms.normalize(raw))
        a, logp, v = agent.act(obs)
        raw, r, term, trunc, info = env.step(a.numpy())
        ep_ret += r
        obs_buf.append(obs); act_buf.append(a); logp_buf.append(logp); val_buf.append(v)
        rew_buf.append(float(r)); done_buf.append(float(term or trunc))
        if term or trunc:
            returns_window.append(ep_ret)
            raw, ep_ret = env.reset(), 0.0
    return (torch.stack(obs_buf), torch.stack(act_buf), torch.stack(logp_buf),
            torch.tensor(rew_buf), torch.stack(val_buf), torch.tensor(done_buf))


def compute_gae(rew, val, done, gamma, lam):
    adv = torch.zeros_like(rew)
    last = 0.0
    for t in reversed(range(len(rew))):
        nxt = val[t + 1] if t + 1 < len(rew) else 0.0
        delta = rew[t] + gamma * nxt * (1 - done[t]) - val[t]
        last = delta + gamma * lam * (1 - done[t]) * last
        adv[t] = last
    return adv, adv + val


def ppo_update(agent, opt, batch, cfg):
    obs, act, logp_old, adv, ret = batch
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    stats = {"pg_loss": 0.0, "v_loss": 0.0, "approx_kl": 0.0, "clipfrac": 0.0}
    n = 0
    for _ in range(cfg.epochs):
        for idx in torch.randperm(len(obs)).split(cfg.minibatch):
            d = agent.dist(obs[idx])
            logp = d.log_prob(act[idx]).sum(-1)
            ratio = (logp - logp_old[idx]).exp()
            pg = -torch.min(ratio * adv[idx], ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * adv[idx]).mean()
            vl = (agent.v(obs[idx]).squeeze(-1) - ret[idx]).pow(2).mean()
            loss = pg + cfg.vf_coef * vl - cfg.ent_coef * d.entropy().sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
            opt.step()
            stats["pg_loss"] += pg.item()
            stats["v_loss"] += vl.item()
            stats["approx_kl"] += (logp_old[idx] - logp).mean().item()
            stats["clipfrac"] += ((ratio - 1).abs() > cfg.clip).float().mean().item()
            n += 1
    return {k: v / n for k, v in stats.items()}


def explained_variance(y_pred, y):
    var_y = np.var(y)
    return np.nan if var_y == 0 else 1 - np.var(y - y_pred) / var_y


def train_ppo(cfg):
    torch.manual_seed(cfg.seed)
    env = QuadWaypointEnv(cfg.env, seed=cfg.seed)
    agent = ActorCritic(env.obs_dim, env.act_dim, list(cfg.model.hidden), cfg.model.activation)
    opt = torch.optim.Adam(agent.parameters(), lr=cfg.ppo.lr)
    rms = RunningMeanStd((env.obs_dim,))
    returns = deque(maxlen=20)
    global_step, stats, ev = 0, {}, 0.0
    for update in range(1, cfg.ppo.updates + 1):
        obs, act, logp, rew, val, done = collect(env, agent, rms, cfg.ppo.rollout, returns)
        adv, ret = compute_gae(rew, val, done, cfg.ppo.gamma, cfg.ppo.gae_lambda)
        stats = ppo_update(agent, opt, (obs, act, logp, adv, ret), cfg.ppo)
        ev = explained_variance(val.numpy(), ret.numpy())
        global_step += cfg.ppo.rollout
    return env, agent, opt, rms, returns, update, global_step, stats, ev


def evaluate(env, agent, rms, episodes=4):
    successes, crashes, ep_returns, ep_lens, final_dists = 0, 0, [], [], []
    for _ in range(episodes):
        raw, done, trunc, ret, n = env.reset(), False, False, 0.0, 0
        while not (done or trunc):
            with torch.no_grad():
                a = agent.pi(torch.from_numpy(rms.normalize(raw)))
            raw, r, done, trunc, info = env.step(a.numpy())
            ret, n = ret + r, n + 1
        successes += info["success"]
        crashes += int(info["crashed"])
        ep_returns.append(ret)
        ep_lens.append(n)
        final_dists.append(info["dist"])
    return successes, crashes, ep_returns, ep_lens, final_dists


# --------------------------------------------------------------------------- SAC

class ReplayBuffer:
    def __init__(self, obs_dim=7, act_dim=3, capacity=1000):
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.act = np.zeros((capacity, act_dim), np.float32)
        self.rew = np.zeros(capacity, np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.done = np.zeros(capacity, np.float32)
        self.capacity, self.ptr, self.size = capacity, 0, 0

    def add(self, o, a, r, o2, d):
        i = self.ptr
        self.obs[i], self.act[i], self.rew[i], self.next_obs[i], self.done[i] = o, a, r, o2, d
        self.ptr = (self.ptr + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, n, rng):
        idx = rng.integers(0, self.size, n)
        return [torch.from_numpy(x[idx]) for x in (self.obs, self.act, self.rew, self.next_obs, self.done)]


class SACAgent:
    def __init__(self, obs_dim=7, act_dim=3, hidden=(64, 64), lr=3e-4, action_shape=(3,)):
        self.actor = mlp([obs_dim, *hidden, 2 * act_dim], "relu")
        self.q1 = mlp([obs_dim + act_dim, *hidden, 1], "relu")
        self.q1_target = mlp([obs_dim + act_dim, *hidden, 1], "relu")
        self.q1_target.load_state_dict(self.q1.state_dict())
        self.log_alpha = torch.zeros(1, requires_grad=True)
        self.target_entropy = -np.prod(action_shape)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=lr)
        self.q_opt = torch.optim.Adam(self.q1.parameters(), lr=lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=lr)

    def sample_action(self, obs):
        mu, log_std = self.actor(obs).chunk(2, dim=-1)
        d = torch.distributions.Normal(mu, log_std.clamp(-5, 2).exp())
        u = d.rsample()
        a = torch.tanh(u)
        return a, (d.log_prob(u) - torch.log(1 - a.pow(2) + 1e-6)).sum(-1)

    def update(self, batch, gamma, tau):
        o, a, r, o2, d = batch
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            a2, logp2 = self.sample_action(o2)
            target = r + gamma * (1 - d) * (self.q1_target(torch.cat([o2, a2], -1)).squeeze(-1) - alpha * logp2)
        q_loss = (self.q1(torch.cat([o, a], -1)).squeeze(-1) - target).pow(2).mean()
        self.q_opt.zero_grad(); q_loss.backward(); self.q_opt.step()
        a_new, logp = self.sample_action(o)
        pi_loss = (alpha * logp - self.q1(torch.cat([o, a_new], -1)).squeeze(-1)).mean()
        self.actor_opt.zero_grad(); pi_loss.backward(); self.actor_opt.step()
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad(); alpha_loss.backward(); self.alpha_opt.step()
        with torch.no_grad():
            for p, tp in zip(self.q1.parameters(), self.q1_target.parameters()):
                tp.mul_(1 - tau).add_(tau * p)
        return q_loss.item(), pi_loss.item()


def train_sac(cfg):
    torch.manual_seed(cfg.seed)
    env = QuadWaypointEnv(cfg.env, seed=cfg.seed)
    agent = SACAgent(env.obs_dim, env.act_dim, tuple(cfg.hidden), cfg.lr, env.action_low.shape)
    buf = ReplayBuffer(env.obs_dim, env.act_dim, cfg.buffer_size)
    o = env.reset()
    losses = []
    for step in range(cfg.total_steps):
        if step < cfg.warmup:
            a = env.np_random.uniform(-1, 1, env.act_dim).astype(np.float32)
        else:
            with torch.no_grad():
                a = agent.sample_action(torch.from_numpy(o))[0].numpy()
        o2, r, term, trunc, _ = env.step(a)
        buf.add(o, a, r, o2, float(term))
        o = env.reset() if term or trunc else o2
        if step >= cfg.warmup:
            losses.append(agent.update(buf.sample(cfg.batch_size, env.np_random), cfg.gamma, cfg.tau))
    return env, agent, buf, losses


FACTORIES = {
    "Algo": lambda: Algo.PPO,
    "QuadWaypointEnv": lambda: QuadWaypointEnv(load_ppo_config().env, seed=1),
}


# --------------------------------------------------------------------------- checkpoints

def save_ppo_checkpoint(out_dir, overrides=()):
    cfg = load_ppo_config(overrides)
    env, agent, opt, rms, returns, update, global_step, stats, ev = train_ppo(cfg)
    ckpt = {
        "update": update,
        "global_step": global_step,
        "model": agent.state_dict(),
        "optimizer": opt.state_dict(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "env_cfg": cfg.env,  # truth: weights_only
        "obs_rms": {
            "mean": torch.as_tensor(rms.mean),
            "var": rms.var,  # truth: weights_only
            "count": rms.count,
        },
        "recent_returns": list(returns),  # truth: weights_only
        "train_stats": stats,
        "explained_var": float(ev),
        "log_std": agent.log_std.detach().clone(),
    }
    log_dir = Path(out_dir) / cfg.log.dir
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"update_{update:05d}.pt"
    torch.save(ckpt, path)
    return str(path)


def save_ppo_eval(out_dir, overrides=("ppo.updates=1",)):
    cfg = load_ppo_config(overrides)
    env, agent, opt, rms, returns, update, *_ = train_ppo(cfg)
    successes, crashes, ep_returns, ep_lens, final_dists = evaluate(env, agent, rms, episodes=4)
    report = dict(
        policy=agent.state_dict(),
        episodes=len(ep_returns),
        success_rate=successes / len(ep_returns),  # truth: weights_only
        crash_rate=crashes / len(ep_returns),
        mean_return=statistics.fmean(ep_returns),
        return_std=float(np.std(ep_returns)),
        median_len=statistics.median(ep_lens),
        final_dist=[round(float(d), 3) for d in final_dists],
        waypoints=list(cfg.env.waypoints),  # truth: weights_only
        route=OmegaConf.to_container(cfg.env.waypoints),
        ppo=dict(cfg.ppo),
    )
    path = Path(out_dir) / "eval_report.pt"
    torch.save(report, path)
    return str(path)


def save_sac_checkpoint(out_dir, overrides=()):
    cfg = load_sac_config(overrides)
    env, agent, buf, losses = train_sac(cfg)
    ckpt = {
        "actor": agent.actor.state_dict(),
        "q1": agent.q1.state_dict(),
        "q1_target": agent.q1_target.state_dict(),
        "optimizers": {
            "actor": agent.actor_opt.state_dict(),
            "q": agent.q_opt.state_dict(),
            "alpha": agent.alpha_opt.state_dict(),
        },
        "log_alpha": agent.log_alpha.detach(),
        "target_entropy": agent.target_entropy,  # truth: weights_only
    }
    ckpt.update({
        "algo": cfg.algo,  # truth: weights_only
        "config": OmegaConf.to_container(cfg, enum_to_str=True),
        "wind_mean": cfg.env.wind_mean,  # truth: weights_only
        "hidden": tuple(cfg.hidden),
        "replay_ptr": buf.ptr,
        "replay_size": buf.size,
        "env_rng": env.np_random,  # truth: weights_only
        "env_rng_state": env.np_random.bit_generator.state,
        "last_losses": losses[-1] if losses else None,
    })
    path = Path(out_dir) / "sac.pt"
    torch.save(ckpt, path)
    return str(path)


def save_replay_snapshot(out_dir, overrides=("total_steps=60",)):
    t0 = time.perf_counter()
    cfg = load_sac_config(overrides)
    env, agent, buf, _ = train_sac(cfg)
    n = buf.size
    snapshot = {
        "buffer": {
            "obs": torch.from_numpy(buf.obs[:n]).clone(),
            "act": torch.from_numpy(buf.act[:n]).clone(),
            "rew": torch.from_numpy(buf.rew[:n]).clone(),
            "next_obs": torch.from_numpy(buf.next_obs[:n]).clone(),
            "done": torch.from_numpy(buf.done[:n]).clone(),
        },
        "ptr": buf.ptr,
        "capacity": buf.capacity,
        "dims": (env.obs_dim, env.act_dim),
        "act_bounds": (env.action_low.tolist(), env.action_high.tolist()),
        "reward_mean": buf.rew[:n].mean().item(),
        "seed": cfg.seed,
        "wall_time": time.perf_counter() - t0,
        "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    path = Path(out_dir) / "replay.pt"
    torch.save(snapshot, path)
    return str(path)


def save_policy_export(out_dir, overrides=("ppo.updates=1", "model.activation=elu")):
    cfg = load_ppo_config(overrides)
    env, agent, opt, rms, *_ = train_ppo(cfg)
    export = {}
    export["actor"] = agent.pi.state_dict()
    export["obs_mean"] = torch.from_numpy(rms.mean).float()
    export["obs_std"] = torch.from_numpy(np.sqrt(rms.var + 1e-8)).float()
    export["activation"] = cfg.model.activation
    export["activation_cls"] = ACTIVATIONS[cfg.model.activation]  # truth: weights_only
    export["hidden"] = list(cfg.model.hidden)
    export["dt"] = cfg.env.dt
    export["hover_thrust"] = cfg.env.mass * 9.81
    export["action_low"] = env.action_low  # truth: weights_only
    export["obs_dim"] = env.obs_dim
    path = Path(out_dir) / "policy_export.pt"
    torch.save(export, path)
    return str(path)


if __name__ == "__main__":
    import sys
    print(save_ppo_checkpoint("runs", sys.argv[1:]))
