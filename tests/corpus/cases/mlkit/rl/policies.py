"""Policies: a three-level hierarchy spread over packages."""

import multiprocessing
import threading

import torch
import torch.multiprocessing as tmp
from torch import nn

import mlkit.data.io_utils as iou
from mlkit.audio import SpecEncoder
from mlkit.compat import LightningModule
from mlkit.nets import blocks


class PolicyBase(blocks.ConvBlock):
    """Conv trunk shared by every policy."""

    def __init__(self, n_actions=4):
        super().__init__(3, 16)
        self.n_actions = n_actions
        self.head = nn.Linear(16, n_actions)


class EpsilonGreedy(PolicyBase):
    def __init__(self, eps=0.1):
        super().__init__()
        self.eps = eps
        self.explore = [lambda q, i=i: q.argsort()[..., -i] for i in range(1, 3)]  # truth: pickle

    def forward(self, x):
        q = self.head(super().forward(x).mean(dim=(2, 3)))
        return self.explore[0](q) if torch.rand(()) < self.eps else q.argmax(-1)


class ListeningPolicy(SpecEncoder):
    """Acts on audio; the base already owns an event loop (reported there)."""

    def __init__(self):
        super().__init__(dim=16)
        self.actor = nn.Linear(16, 2)
        self.trajectory_q = tmp.Queue()  # truth: pickle

    def forward(self, wav):
        return self.actor(super().forward(wav))


class ActorLearner(LightningModule):
    """Actors run in processes and signal through an event."""

    def __init__(self):
        super().__init__()
        self.policy = PolicyBase()
        self.actors = multiprocessing.get_context("spawn").Event()  # truth: pickle
        self.replay_index = iou.open_index()  # truth: pickle

    def training_step(self, batch, batch_idx):
        return self.policy(batch).sum()


class ParallelEnvs(nn.Module):
    def __init__(self, n=2):
        super().__init__()
        self.locks = [threading.Lock() for _ in range(n)]  # truth: pickle
        self.state = {i: None for i in range(n)}

    def forward(self, x):
        return x


class LoggedPolicy(PolicyBase):
    def __init__(self, paths=("/dev/null", "/dev/null")):
        super().__init__()
        self.sinks = []  # truth: pickle
        for p in paths:
            self.sinks.append(open(p, "w"))
        self.names = []
        for p in paths:
            self.names.append(p.rsplit("/", 1)[-1])
