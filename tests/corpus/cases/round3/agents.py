"""Reinforcement-learning agents: replay buffers, target networks, actors."""
import copy
import multiprocessing as mp
import queue
import random
import threading
from collections import deque, namedtuple
from concurrent import futures

import numpy as np
import torch
from torch import nn, optim
from torch.optim.lr_scheduler import LambdaLR, StepLR

Transition = namedtuple("Transition", "state action reward next_state done")


def epsilon_by_step(step, start=1.0, end=0.05, decay=500):
    return end + (start - end) * np.exp(-step / decay)


class QNetwork(nn.Module):
    def __init__(self, obs=4, actions=2):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs, 32), nn.ReLU(), nn.Linear(32, actions))

    def forward(self, x):
        return self.net(x)


class DQNAgent(nn.Module):
    """Clean: replay deque, target network copy, optimizer and a step scheduler."""

    def __init__(self, obs=4, actions=2):
        super().__init__()
        self.q = QNetwork(obs, actions)
        self.target = copy.deepcopy(self.q)
        self.buffer = deque(maxlen=10_000)
        self.buffer.append(Transition(np.zeros(obs), 0, 0.0, np.zeros(obs), False))
        self.optimizer = optim.Adam(self.q.parameters(), lr=1e-3)
        self.lr_sched = StepLR(self.optimizer, step_size=100)
        self.epsilon = epsilon_by_step
        self.rng = random.Random(0)
        self.np_rng = np.random.RandomState(0)

    def act(self, obs):
        if self.rng.random() < self.epsilon(0):
            return self.rng.randrange(2)
        return int(self.q(torch.as_tensor(obs)).argmax())


class PPOAgent(nn.Module):
    def __init__(self, obs=4, actions=2):
        super().__init__()
        self.actor = nn.Linear(obs, actions)
        self.critic = nn.Linear(obs, 1)
        self.opt = optim.AdamW(self.parameters(), lr=3e-4)
        self.sched = LambdaLR(self.opt, lr_lambda=lambda epoch: 1 - epoch / 1000)  # truth: pickle
        self.clip = 0.2
        self.rollout = []

    def forward(self, x):
        return self.actor(x), self.critic(x)


class AsyncActorLearner(nn.Module):
    """IMPALA-style: actors push trajectories through queues, a pool runs the envs."""

    def __init__(self):
        super().__init__()
        self.policy = QNetwork()
        self.trajectories = mp.get_context("spawn").Queue(maxsize=8)  # truth: pickle
        self.local_queue = queue.Queue()  # truth: pickle
        self.env_pool = futures.ThreadPoolExecutor(max_workers=2)  # truth: pickle
        self.stop = threading.Event()  # truth: pickle
        self.n_actors = 2

    def forward(self, x):
        return self.policy(x)


class PrioritizedReplay(nn.Module):
    def __init__(self, capacity=128, alpha=0.6):
        super().__init__()
        self.capacity = capacity
        self.alpha = alpha
        self.priorities = np.zeros(capacity, dtype=np.float32)
        self.storage = [None] * capacity
        self.meta = np.full(capacity, None)  # truth: portable
        self._write_lock = mp.Lock()  # truth: pickle
        self.sampler = np.random.default_rng(3)

    def forward(self, x):
        return x


class SACAgent(nn.Module):
    def __init__(self, obs=4, act=2):
        super().__init__()
        self.policy = nn.Linear(obs, 2 * act)
        self.q1, self.q2 = nn.Linear(obs + act, 1), nn.Linear(obs + act, 1)
        self.log_alpha = nn.Parameter(torch.zeros(1))
        self.target_entropy = -float(act)
        self.dist_cls = torch.distributions.Normal
        self.soft_update = lambda tgt, src, tau=0.005: tgt.data.mul_(1 - tau).add_(tau * src.data)  # truth: pickle
        self.episode_returns, self.episode_iter = [], iter([])

    def forward(self, x):
        mu, log_std = self.policy(x).chunk(2, -1)
        return self.dist_cls(mu, log_std.exp())


class MCTSPlanner(nn.Module):
    def __init__(self):
        super().__init__()
        self.value = nn.Linear(4, 1)
        self.tree = {}
        self.visit = self.tree.setdefault
        self.children = self.tree.items()  # truth: pickle
        self.expand_order = (k for k in sorted(self.tree))  # truth: pickle

    def forward(self, x):
        return self.value(x)
