"""DQN-style agent: replay buffer statistics, epsilon schedule and RNG streams in the checkpoint."""
import os
import random
from collections import deque

import numpy as np
import torch
import torch.nn as nn


class QNetwork(nn.Module):
    def __init__(self, obs_dim=4, n_actions=2, hidden=32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_actions))

    def forward(self, x):
        return self.net(x)


class ReplayBuffer:
    def __init__(self, capacity=64, obs_dim=4):
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.ptr = 0
        self.size = 0

    def add(self, o, r):
        self.obs[self.ptr] = o
        self.rewards[self.ptr] = r
        self.ptr = (self.ptr + 1) % len(self.rewards)
        self.size = min(self.size + 1, len(self.rewards))


def _fill(buf, n=40):
    rng = np.random.default_rng(0)
    for _ in range(n):
        buf.add(rng.normal(size=4), float(rng.random()))
    return buf


def epsilon_at(step, start=1.0, end=0.05, decay=10_000):
    return np.clip(start - (start - end) * step / decay, end, start)


def save_dqn(tmpdir):
    q = QNetwork()
    target = QNetwork()
    opt = torch.optim.Adam(q.parameters(), lr=1e-3)
    buf = _fill(ReplayBuffer())
    step = 2500
    ckpt = {
        "q_net": q.state_dict(),
        "target_net": target.state_dict(),
        "optimizer": opt.state_dict(),
        "global_step": step,
        "epsilon": epsilon_at(step),  # truth: weights_only
        "replay_size": buf.size,
        "replay_ptr": buf.ptr,
        "mean_reward": buf.rewards[: buf.size].mean(),  # truth: weights_only
    }
    path = os.path.join(tmpdir, "dqn.pt")
    torch.save(ckpt, path)
    return path


def save_dqn_fixed(tmpdir):
    q = QNetwork()
    buf = _fill(ReplayBuffer())
    step = 2500
    ckpt = {
        "q_net": q.state_dict(),
        "global_step": step,
        "epsilon": float(epsilon_at(step)),
        "mean_reward": buf.rewards[: buf.size].mean().item(),
        "reward_std": float(np.std(buf.rewards[: buf.size])),
        "replay_size": buf.size,
    }
    path = os.path.join(tmpdir, "dqn_fixed.pt")
    torch.save(ckpt, path)
    return path


def save_rng_states(tmpdir):
    env_rng = np.random.default_rng(123)
    env_rng.random(5)
    state = {}
    state["python"] = random.getstate()
    state["torch"] = torch.get_rng_state()
    state["numpy_legacy"] = np.random.get_state()  # truth: weights_only
    state["numpy_env"] = env_rng  # truth: weights_only
    state["numpy_env_state"] = env_rng.bit_generator.state
    path = os.path.join(tmpdir, "rng.pt")
    torch.save(state, path)
    return path


def save_episode_stats(tmpdir):
    returns = deque(maxlen=100)
    lengths = deque(maxlen=100)
    for i in range(30):
        returns.append(float(i) * 0.5)
        lengths.append(i + 10)
    q = QNetwork()
    torch.save(
        {
            "model": q.state_dict(),
            "recent_returns": returns,  # truth: weights_only
            "recent_lengths": list(lengths),
            "best_return": max(returns),
            "episodes": len(returns),
            "avg_length": np.mean(lengths),  # truth: weights_only
            "median_return": sorted(returns)[len(returns) // 2],
        },
        os.path.join(tmpdir, "episodes.pt"),
    )
    return os.path.join(tmpdir, "episodes.pt")


def save_replay_snapshot(tmpdir):
    buf = _fill(ReplayBuffer())
    snap = dict(
        obs=buf.obs[: buf.size],  # truth: weights_only
        obs_tensor=torch.from_numpy(buf.obs[: buf.size]),
        rewards=torch.as_tensor(buf.rewards[: buf.size]),
        ptr=buf.ptr,
        reward_max=buf.rewards.max(),  # truth: weights_only
        reward_min=float(buf.rewards.min()),
    )
    path = os.path.join(tmpdir, "replay.pt")
    torch.save(snap, path)
    return path


def save_agent_whole(tmpdir):
    q = QNetwork()
    path = os.path.join(tmpdir, "agent_full.pt")
    torch.save(q, path)  # truth: weights_only
    return path
