"""Inheritance across files, odd assignment forms, and classes that are no models at all."""
import asyncio
import os
import re
import sys
import tempfile
import threading
import types
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras
import numpy as np
import torch
import torch.nn as nn

from round3.blocks import TinyGPT
from round3.common import StatsMixin
from round3.diffusion import TinyUNet

VERSION_RE = re.compile(r"v(\d+)")


def _capture():
    try:
        raise RuntimeError("warmup failed")
    except RuntimeError:
        return sys.exc_info()


class ChatModel(TinyGPT):
    """Two levels down from nn.Module, through another file."""

    def __init__(self):
        super().__init__(vocab=50)
        self.version = VERSION_RE.match("v3")  # truth: pickle
        self.tls = threading.local()  # truth: pickle
        self.sys_prompt = "You are helpful."

    def chat(self, ids):
        return self(ids)


class InpaintUNet(TinyUNet, StatsMixin):
    def __init__(self):
        super().__init__()
        self.init_stats()
        self.mask_token = nn.Parameter(torch.zeros(1))
        setattr(self, "warn_ctx", warnings.catch_warnings())  # truth: pickle
        self.fh, self.mode = tempfile.SpooledTemporaryFile(max_size=1024), "rgb"
        self.last_failure = _capture()  # truth: pickle

    def forward(self, x, t=None):
        return super().forward(x, t)


class ServingWrapper(nn.Module):
    """Clean: asyncio primitives, a temp directory object, a compiled submodule, a finalizer."""

    def __init__(self):
        super().__init__()
        self.model = torch.compile(nn.Linear(4, 4))
        self.request_lock = asyncio.Lock()
        self.pending = asyncio.Queue()
        self.workdir = tempfile.TemporaryDirectory()
        self.meta = types.SimpleNamespace(name="svc", replicas=2)
        self.argv = list(sys.argv)

    def forward(self, x):
        return self.model(x)


class PluginHost(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(2, 2)
        self.backend = np  # truth: pickle
        self.Plugin = type("Plugin", (), {"name": "noop"})  # truth: pickle
        self.registry: types.MappingProxyType = types.MappingProxyType({"noop": 1})  # truth: pickle
        self.record = np.zeros(2, dtype=[("id", "i4"), ("payload", "O")])  # truth: portable
        self.table = np.zeros(2, dtype=[("id", "i4"), ("score", "f4")])

    def forward(self, x):
        return self.head(x)


class ExperimentRunner:
    """Plain orchestration object: owns files and threads, never checkpointed."""

    def __init__(self):
        self.log = open(os.devnull, "w")
        self.worker = threading.Thread(target=print)
        self.on_epoch = [lambda e: None]


class KerasSentiment(keras.Model):  # truth: keras
    def __init__(self):
        super().__init__()
        self.embed = keras.layers.Embedding(100, 8)
        self.out = keras.layers.Dense(1)
        self.tokenize = lambda s: s.split()
        self.vocab_file = open(os.devnull)

    def call(self, x):
        return self.out(self.embed(x))


NOT_BUILT = {"ExperimentRunner": "not a model: a plain runner, out of scope and it does not pickle"}
