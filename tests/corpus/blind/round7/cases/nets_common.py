"""Project helpers shared by the other modules: base classes, hook helpers, feature functions."""
import functools
import os
import sqlite3

import numpy as np
import torch
from torch import nn
from torch.nn.modules.loss import _Loss, _WeightedLoss
from torch.nn.modules.batchnorm import _BatchNorm


def log_scale(x):
    return np.log1p(np.abs(x))


def clip_features(x, lo=-3.0, hi=3.0):
    return np.clip(x, lo, hi)


def rank_metric(y_true, y_pred):
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def whitespace_tokens(text):
    return text.split()


def record_shape(module, inputs, output):
    module._last_shape = tuple(output.shape)


def attach_probe(module, store=None):
    """Registers a closure that writes activations into `store`; returns the module."""
    store = {} if store is None else store

    def _probe(mod, inp, out):
        store[type(mod).__name__] = out.detach()

    module.register_forward_hook(_probe)
    return module


def attach_shape_recorder(module):
    module.register_forward_hook(record_shape)
    return module


def open_catalog(path=":memory:"):
    conn = sqlite3.connect(path)
    conn.execute("create table if not exists items (id integer, label text)")
    return conn


def devnull_writer():
    return open(os.devnull, "w")


class MaskedLossBase(_Loss):
    """Project base loss: padding-aware reduction. Clean on its own."""

    def __init__(self, pad_value=-100, reduction="mean"):
        super().__init__(reduction=reduction)
        self.pad_value = pad_value

    def masked(self, values, target):
        mask = target != self.pad_value
        return values[mask]


class WeightedBase(_WeightedLoss):
    def __init__(self, weight=None):
        super().__init__(weight=weight)
        self.eps = 1e-6


class GhostNormBase(_BatchNorm):
    """Ghost batch norm skeleton; subclasses pick the dimensionality."""

    def __init__(self, num_features=8, virtual_batch=4):
        super().__init__(num_features)
        self.virtual_batch = virtual_batch

    def _check_input_dim(self, x):
        if x.dim() != 2:
            raise ValueError("expected 2D input")


def make_text_features(lowercase=True):
    """Returns a vectorizer whose preprocessor is a closure over `lowercase`."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    def prep(s):
        return s.lower() if lowercase else s

    return TfidfVectorizer(preprocessor=prep)


def make_plain_text_features():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(preprocessor=str.lower, tokenizer=whitespace_tokens, token_pattern=None)
