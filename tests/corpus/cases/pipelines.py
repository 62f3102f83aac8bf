"""sklearn pipelines and estimators wrapping torch models."""

import bz2
import codecs
import hmac
import logging
import logging.handlers
import lzma
import os
import queue
from importlib import import_module
from os import environ
from sqlite3 import connect as sql_connect

import numpy as np
import torch
from sklearn.base import BaseEstimator as Base
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from tqdm import trange

from mlkit.rl.policies import PolicyBase


class TorchClassifier(Base):
    """Wraps a torch policy so it can sit in a Pipeline."""

    def __init__(self, epochs=1):
        self.epochs = epochs
        self.model_ = PolicyBase()
        self.progress_ = trange(epochs, leave=False)  # truth: pickle
        self.log_ = logging.Logger("torch-classifier")  # truth: pickle

    def fit(self, X, y=None):
        return self


class CalibratedLR(LogisticRegression):
    def __init__(self, C=1.0):
        super().__init__(C=C)
        self.audit = logging.handlers.RotatingFileHandler(os.devnull, maxBytes=1024)  # truth: pickle


class LoggingPipeline(Pipeline):
    def __init__(self, steps=None):
        super().__init__(steps or [("lr", LogisticRegression())])
        self.events = queue.Queue()
        self.events = logging.handlers.QueueHandler(self.events)  # truth: pickle


class CompressedFeatures(Base):
    def __init__(self):
        self.packer = bz2.BZ2Compressor()  # truth: pickle
        self.unpacker = lzma.LZMADecompressor()  # truth: pickle
        self.packed_ = bz2.compress(b"abc")

    def fit(self, X, y=None):
        return self


class SignedModel(Base):
    def __init__(self, key=b"secret"):
        self.signer = hmac.new(key, digestmod="sha256")  # truth: pickle
        self.signature_ = hmac.new(key, b"weights", "sha256").hexdigest()

    def fit(self, X, y=None):
        return self


class EnvBackedEstimator(Base):
    def __init__(self):
        self.settings = environ  # truth: pickle
        self.codec = import_module("json")  # truth: pickle
        self.seed = int(environ.get("SEED", "0"))

    def fit(self, X, y=None):
        return self


class CachedEstimator(Base):
    def __init__(self):
        self.db = sql_connect(":memory:")  # truth: pickle
        self.notes = codecs.open(os.devnull, "w", "utf-8")  # truth: pickle

    def fit(self, X, y=None):
        return self


class TensorEstimator(Base):
    """Clean: tensors, a scipy-free array and a torch dtype."""

    def __init__(self):
        self.weights_ = torch.zeros(3)
        self.dtype = torch.float32
        self.device = torch.device("cpu")
        self.bins_ = np.linspace(0, 1, 5)
        self.ranges_ = np.array([[0.0, 1.0], [2.0, 3.0]])

    def fit(self, X, y=None):
        return self
