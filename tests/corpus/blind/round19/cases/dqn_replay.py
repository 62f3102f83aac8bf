"""DQN with a uniform / prioritized replay buffer; checkpoints written by the trainer."""
import argparse
import collections
import os
import random
import statistics
import time
from dataclasses import dataclass, field, asdict

import numpy as np
import torch
from torch import nn


@dataclass
class DQNConfig:
    gamma: float = 0.99
    lr: float = 1e-3
    buffer_size: int = 64
    batch_size: int = 8
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_decay: int = 100
    target_update: int = 10
    hidden: list = field(default_factory=lambda: [16, 16])


class QNetwork(nn.Module):
    def __init__(self, obs_dim=4, n_actions=2, hidden=(16, 16)):
        super().__init__()
        layers, d = [], obs_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        layers.append(nn.Linear(d, n_actions))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class ReplayBuffer:
    def __init__(self, capacity=64, obs_dim=4, seed=0):
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.dones = np.zeros(capacity, dtype=np.float32)
        self.ptr = 0
        self.size = 0

    def add(self, o, a, r, o2, d):
        self.obs[self.ptr] = o
        self.actions[self.ptr] = a
        self.rewards[self.ptr] = r
        self.next_obs[self.ptr] = o2
        self.dones[self.ptr] = d
        self.ptr = (self.ptr + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size):
        idx = np.random.randint(0, self.size, size=batch_size)
        return (torch.as_tensor(self.obs[idx]), torch.as_tensor(self.actions[idx]),
                torch.as_tensor(self.rewards[idx]), torch.as_tensor(self.next_obs[idx]),
                torch.as_tensor(self.dones[idx]))

    def state_dict(self):
        return {
            "obs": torch.from_numpy(self.obs[: self.size].copy()),
            "actions": torch.from_numpy(self.actions[: self.size].copy()),
            "rewards": torch.from_numpy(self.rewards[: self.size].copy()),
            "ptr": self.ptr,
            "size": self.size,
        }


def fill_buffer(buf, n=32, obs_dim=4):
    rng = np.random.default_rng(0)
    for _ in range(n):
        o = rng.normal(size=obs_dim).astype(np.float32)
        buf.add(o, rng.integers(2), rng.normal(), o + 0.1, float(rng.random() < 0.1))
    return buf


def epsilon_at(step, cfg):
    frac = np.clip(step / cfg.eps_decay, 0.0, 1.0)
    return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)


class DQNTrainer:
    def __init__(self, cfg=None):
        self.cfg = cfg or DQNConfig()
        self.q = QNetwork(hidden=self.cfg.hidden)
        self.target = QNetwork(hidden=self.cfg.hidden)
        self.target.load_state_dict(self.q.state_dict())
        self.optim = torch.optim.Adam(self.q.parameters(), lr=self.cfg.lr)
        self.buffer = fill_buffer(ReplayBuffer(self.cfg.buffer_size))
        self.global_step = 0
        self.episode_returns = collections.deque(maxlen=10)
        self.best_return = -float("inf")

    def train_steps(self, n=3):
        for _ in range(n):
            o, a, r, o2, d = self.buffer.sample(self.cfg.batch_size)
            with torch.no_grad():
                tgt = r + self.cfg.gamma * (1 - d) * self.target(o2).max(1).values
            q = self.q(o).gather(1, a.unsqueeze(1)).squeeze(1)
            loss = nn.functional.smooth_l1_loss(q, tgt)
            self.optim.zero_grad()
            loss.backward()
            self.optim.step()
            self.global_step += 1
            self.episode_returns.append(float(r.sum()))
        return loss

    def save_checkpoint(self, path, extra=None):
        state = {
            "q": self.q.state_dict(),
            "target": self.target.state_dict(),
            "optim": self.optim.state_dict(),
            "global_step": self.global_step,
            "config": asdict(self.cfg),
        }
        if extra:
            state.update(extra)
        torch.save(state, path)
        return path


def save_dqn_epsilon(tmpdir):
    trainer = DQNTrainer()
    loss = trainer.train_steps()
    eps = epsilon_at(trainer.global_step, trainer.cfg)
    path = os.path.join(tmpdir, "dqn_eps.pt")
    ckpt = {
        "q": trainer.q.state_dict(),
        "epsilon": eps,  # truth: weights_only
        "loss": loss.item(),
        "step": trainer.global_step,
    }
    ckpt["mean_reward"] = trainer.buffer.rewards[: trainer.buffer.size].mean()  # truth: weights_only
    ckpt["max_reward"] = float(trainer.buffer.rewards.max())
    torch.save(ckpt, path)
    return path


def save_dqn_with_buffer(tmpdir):
    trainer = DQNTrainer()
    trainer.train_steps(2)
    path = os.path.join(tmpdir, "dqn_buffer.pt")
    return trainer.save_checkpoint(path, extra={
        "replay": trainer.buffer.state_dict(),
        "returns": list(trainer.episode_returns),
        "rng": {
            "python": random.getstate(),
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),  # truth: weights_only
        },
    })


def save_dqn_resume(tmpdir):
    trainer = DQNTrainer()
    trainer.train_steps(4)
    recent = trainer.episode_returns
    avg = statistics.mean(recent)
    if avg > trainer.best_return:
        trainer.best_return = avg
    state = dict(
        q=trainer.q.state_dict(),
        optim=trainer.optim.state_dict(),
        best_return=trainer.best_return,
        recent_returns=recent,  # truth: weights_only
        median_td=statistics.median(np.asarray(recent)),  # truth: weights_only
        wall=time.time(),
    )
    path = os.path.join(tmpdir, "dqn_resume.pt")
    torch.save(state, path)
    return path


def parse_args(argv=None):
    p = argparse.ArgumentParser("dqn")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--total-steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def save_dqn_final(tmpdir):
    args = parse_args([])
    trainer = DQNTrainer(DQNConfig(lr=args.lr))
    trainer.train_steps(2)
    path = os.path.join(tmpdir, "final.pt")
    return trainer.save_checkpoint(path, extra={
        "args": args,  # truth: weights_only
        "cli": vars(args),
        "action_counts": np.bincount(trainer.buffer.actions[: trainer.buffer.size], minlength=2).tolist(),
    })


def save_target_net(tmpdir):
    trainer = DQNTrainer()
    trainer.train_steps(1)
    path = os.path.join(tmpdir, "target.pt")
    torch.save(trainer.target, path)  # truth: weights_only
    return path


def save_q_only(tmpdir):
    trainer = DQNTrainer()
    trainer.train_steps(1)
    td = trainer.buffer.rewards[: trainer.buffer.size]
    path = os.path.join(tmpdir, "q_only.pt")
    torch.save({
        "model": trainer.q.state_dict(),
        "td_quantiles": torch.from_numpy(np.quantile(td, [0.1, 0.5, 0.9])),
        "td_p50": float(np.percentile(td, 50)),
        "n_updates": int(np.int64(trainer.global_step)),
        "greedy": trainer.q(torch.zeros(1, 4)).argmax(dim=1).item(),
    }, path)
    return path


def save_prioritized(tmpdir):
    trainer = DQNTrainer()
    size = trainer.buffer.size
    priorities = np.abs(np.random.default_rng(1).normal(size=size)) + 1e-6
    probs = priorities ** 0.6 / (priorities ** 0.6).sum()
    ckpt = {"q": trainer.q.state_dict()}
    ckpt["per"] = {
        "alpha": 0.6,
        "beta": 0.4,
        "max_priority": priorities.max(),  # truth: weights_only
        "priorities": torch.tensor(priorities),
    }
    ckpt["per"]["entropy"] = float(-(probs * np.log(probs)).sum())
    ckpt["top_idx"] = np.argsort(priorities)[-4:]  # truth: weights_only
    path = os.path.join(tmpdir, "per.pt")
    torch.save(ckpt, path)
    return path


RESUME_EXACT = True  # keep the scheduler object so resumed runs continue the same decay


def save_dqn_scheduled(tmpdir):
    trainer = DQNTrainer()
    sched = torch.optim.lr_scheduler.StepLR(trainer.optim, step_size=2, gamma=0.5)
    for _ in range(2):
        trainer.train_steps(1)
        sched.step()
    ckpt = {"q": trainer.q.state_dict(), "optim": trainer.optim.state_dict()}
    sched_state = sched if RESUME_EXACT else sched.state_dict()
    ckpt["scheduler"] = sched_state  # truth: weights_only
    ckpt["lr"] = sched.get_last_lr()[0]
    ckpt["eps_schedule"] = [float(epsilon_at(s, trainer.cfg)) for s in range(0, 100, 25)]
    path = os.path.join(tmpdir, "sched.pt")
    torch.save(ckpt, path)
    return path
