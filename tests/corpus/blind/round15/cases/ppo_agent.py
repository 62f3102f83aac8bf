"""PPO actor-critic on a toy vector env: rollout buffer, GAE from numpy, running obs normaliser."""
import argparse
import os
import random
import time
from collections import deque

import numpy as np
import torch
from torch import nn


class RunningMeanStd:
    def __init__(self, shape=(4,), epsilon=1e-4):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = epsilon

    def update(self, x):
        batch_mean, batch_var, batch_count = x.mean(0), x.var(0), x.shape[0]
        delta = batch_mean - self.mean
        tot = self.count + batch_count
        self.mean = self.mean + delta * batch_count / tot
        m2 = self.var * self.count + batch_var * batch_count + delta ** 2 * self.count * batch_count / tot
        self.var = m2 / tot
        self.count = tot


class RolloutBuffer:
    def __init__(self, num_steps=8, num_envs=2, obs_dim=4):
        self.obs = np.zeros((num_steps, num_envs, obs_dim), np.float32)
        self.rewards = np.zeros((num_steps, num_envs), np.float32)
        self.values = np.zeros((num_steps, num_envs), np.float32)
        self.dones = np.zeros((num_steps, num_envs), np.float32)
        self.ptr = 0

    def add(self, obs, reward, value, done):
        self.obs[self.ptr] = obs
        self.rewards[self.ptr] = reward
        self.values[self.ptr] = value
        self.dones[self.ptr] = done
        self.ptr += 1


class ActorCritic(nn.Module):
    def __init__(self, obs_dim=4, n_actions=2, hidden=16):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh())
        self.pi = nn.Linear(hidden, n_actions)
        self.v = nn.Linear(hidden, 1)

    def forward(self, x):
        h = self.body(x)
        return self.pi(h), self.v(h).squeeze(-1)


def compute_gae(buf, last_value, gamma=0.99, lam=0.95):
    T = buf.rewards.shape[0]
    adv = np.zeros_like(buf.rewards)
    lastgaelam = 0.0
    for t in reversed(range(T)):
        next_v = last_value if t == T - 1 else buf.values[t + 1]
        nonterminal = 1.0 - buf.dones[t]
        delta = buf.rewards[t] + gamma * next_v * nonterminal - buf.values[t]
        lastgaelam = delta + gamma * lam * nonterminal * lastgaelam
        adv[t] = lastgaelam
    return adv, adv + buf.values


def parse_args(argv=()):
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--num-envs", type=int, default=2)
    p.add_argument("--num-steps", type=int, default=8)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--gae-lambda", type=float, default=0.95)
    p.add_argument("--learning-rate", type=float, default=2.5e-4)
    return p.parse_args(list(argv))


def collect(agent, args, obs_rms):
    rng = np.random.default_rng(args.seed)
    buf = RolloutBuffer(args.num_steps, args.num_envs)
    obs = rng.standard_normal((args.num_envs, 4)).astype(np.float32)
    ep_returns = deque(maxlen=10)
    running = np.zeros(args.num_envs)
    for _ in range(args.num_steps):
        obs_rms.update(obs)
        with torch.no_grad():
            _, value = agent(torch.as_tensor(obs))
        reward = rng.random(args.num_envs).astype(np.float32)
        done = (rng.random(args.num_envs) < 0.3).astype(np.float32)
        buf.add(obs, reward, value.numpy(), done)
        running += reward
        for i in np.flatnonzero(done):
            ep_returns.append(running[i])
            running[i] = 0.0
        obs = rng.standard_normal((args.num_envs, 4)).astype(np.float32)
    if not ep_returns:
        ep_returns.append(running.mean())
    return buf, ep_returns


def save_ppo_update(tmpdir):
    args = parse_args()
    torch.manual_seed(args.seed)
    agent = ActorCritic()
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    obs_rms = RunningMeanStd()
    buf, ep_returns = collect(agent, args, obs_rms)
    advantages, returns = compute_gae(buf, buf.values[-1], args.gamma, args.gae_lambda)
    explained_var = 1 - np.var(returns - buf.values) / (np.var(returns) + 1e-8)
    state = {
        "agent": agent.state_dict(),
        "optimizer": optimizer.state_dict(),
        "args": args,  # truth: weights_only
        "obs_rms_mean": obs_rms.mean,  # truth: weights_only
        "obs_rms_var": torch.from_numpy(obs_rms.var),
        "obs_rms_count": obs_rms.count,
        "explained_variance": explained_var,  # truth: weights_only
        "mean_advantage": float(advantages.mean()),
        "global_step": args.num_steps * args.num_envs,
    }
    path = os.path.join(tmpdir, "ppo.pt")
    torch.save(state, path)
    return path


def save_episode_stats(tmpdir):
    args = parse_args(["--seed", "3"])
    agent = ActorCritic()
    obs_rms = RunningMeanStd()
    _, ep_returns = collect(agent, args, obs_rms)
    stats = {}
    stats["episode_returns"] = list(ep_returns)  # truth: weights_only
    stats["best_return"] = max(float(r) for r in ep_returns)
    stats["recent_mean"] = np.mean(ep_returns).item()
    stats["return_history"] = ep_returns  # truth: weights_only
    stats["wall_time"] = time.time()
    path = os.path.join(tmpdir, "episodes.pt")
    torch.save({"agent": agent.state_dict(), "stats": stats}, path)
    return path


def save_rng_snapshot(tmpdir):
    args = parse_args()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    env_seeds = np.random.randint(0, 2**31 - 1, size=args.num_envs)
    ckpt = dict(
        python_rng=random.getstate(),
        torch_rng=torch.get_rng_state(),
        numpy_rng=np.random.get_state(),  # truth: weights_only
        env_seeds=env_seeds.tolist(),
        first_env_seed=env_seeds[0],  # truth: weights_only
        hparams=vars(args),
    )
    path = os.path.join(tmpdir, "rng.pt")
    torch.save(ckpt, path)
    return path


def save_policy_only(tmpdir):
    """Clean: everything reaches the file as tensors or Python scalars."""
    args = parse_args()
    agent = ActorCritic()
    obs_rms = RunningMeanStd()
    buf, ep_returns = collect(agent, args, obs_rms)
    advantages, returns = compute_gae(buf, buf.values[-1])
    payload = {"model": agent.state_dict()}
    payload.update(
        obs_mean=torch.as_tensor(obs_rms.mean),
        obs_var=obs_rms.var.tolist(),
        returns=torch.tensor(returns),
        clip_fraction=round(float(np.abs(advantages).mean()), 4),
        n_episodes=len(ep_returns),
    )
    path = os.path.join(tmpdir, "policy.pt")
    torch.save(payload, path)
    return path


def save_agent_whole(tmpdir):
    agent = ActorCritic(hidden=8)
    path = os.path.join(tmpdir, "agent_full.pt")
    torch.save(agent, path)  # truth: weights_only
    return path
