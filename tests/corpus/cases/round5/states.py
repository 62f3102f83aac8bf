"""Pickling protocols, right and wrong, and inheritance chains across files."""
import io
import os
import threading

from torch import nn

from round5.common import ProjectBase
from round5.encoders import TextEncoder


class RightState(nn.Module):
    """Clean: __getstate__ pops the lock and __setstate__ makes a new one."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.lock = threading.Lock()

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("lock", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self.lock = threading.Lock()


class WrongKeyState(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self._lock = threading.Lock()  # truth: pickle

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("lock", None)
        return state


class PartialState(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.log_file = open(os.devnull, "w")  # truth: pickle
        self.gate = lambda x: x  # truth: pickle

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["log_file"]
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self.log_file = open(os.devnull, "w")


class ReduceState(nn.Module):
    """Clean: __reduce__ rebuilds from the constructor argument only."""

    def __init__(self, width=2):
        super().__init__()
        self.width = width
        self.lin = nn.Linear(width, width)
        self.stream = open(os.devnull)

    def __reduce__(self):
        return (type(self), (self.width,))


class FilteredState(nn.Module):
    """Clean: __getstate__ filters with a comprehension; StringIO pickles anyway."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.ready = threading.Event()
        self.notes = io.StringIO()

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "ready"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.ready = threading.Event()


class TaggedTextEncoder(TextEncoder):
    def __init__(self):
        super().__init__()
        self.tokens = {"a": 1}
        self.cursor = iter(self.tokens)
        self.ready = threading.Event()  # truth: pickle


class RecorderBase(ProjectBase):
    def __init__(self):
        super().__init__()
        self._setup_recording()

    def _setup_recording(self):
        self.local = threading.local()  # truth: pickle


class RecorderMid(RecorderBase):
    def __init__(self):
        super().__init__()
        self.depth = 2


class RecorderLeaf(RecorderMid):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
