"""Shared project code: a base model, factories and decorators the other files import."""
import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.preprocessing import StandardScaler
from torch import nn


class ProjectBase(nn.Module):
    """Clean: every model of the project derives from it."""

    def __init__(self):
        super().__init__()
        self.created_by = os.environ.get("USER", "nobody")
        self.tags = ("base",)


class RunLog:
    """A helper (not a model) that keeps its log file open."""

    def __init__(self, path=os.devnull):
        self.path = path
        self.fh = open(path, "a")

    def write(self, line):
        self.fh.write(line + "\n")


def make_sink(path=os.devnull):
    mode = "a"
    return open(path, mode)


def make_pool(workers=2):
    return ThreadPoolExecutor(max_workers=workers)


def make_scaler():
    scaler = StandardScaler()
    scaler.fit(np.arange(6.0).reshape(3, 2))
    return scaler


def traced(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


def timed(fn):
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


@traced
def traced_square(x):
    return x * x


@timed
def timed_cube(x):
    return x * x * x


NOT_BUILT = {"RunLog": "a plain helper class, not a model; it holds an open file"}
