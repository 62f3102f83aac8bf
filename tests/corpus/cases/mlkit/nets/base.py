"""Base classes shared by every network in mlkit.nets."""

import logging
import threading

import torch.nn as nn

log = logging.getLogger(__name__)

DEFAULT_WIDTH = 32


class Layer(nn.Module):
    """Every layer knows its name and logs through the package logger."""

    def __init__(self, name="layer"):
        super().__init__()
        self.name = name
        self.log = log  # loggers pickle by name

    def extra_repr(self):
        return f"name={self.name!r}"


class StatefulLayer(Layer):
    """Layers that keep run-time scratch state next to their weights.

    The scratch state (a lock and a buffer) is thrown away when the layer is
    pickled and rebuilt on load, so subclasses may put their own lock there.
    """

    def __init__(self, name="stateful"):
        super().__init__(name)
        self._lock = threading.Lock()
        self._scratch = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_lock", None)
        state["_scratch"] = None
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._lock = threading.Lock()


class LoggingMixin:
    """Mixed into a few layers: appends one line per forward call to a log file."""

    def __init__(self, *args, log_path="/dev/null", **kwargs):
        super().__init__(*args, **kwargs)
        self.log_path = log_path
        self.log_file = open(log_path, "a")  # truth: pickle

    def note(self, msg):
        self.log_file.write(msg + "\n")


class NoisyLinear(LoggingMixin, nn.Linear):
    """A linear layer that reports every call (debug builds only)."""

    def __init__(self, n_in=DEFAULT_WIDTH, n_out=DEFAULT_WIDTH):
        super().__init__(n_in, n_out)

    def forward(self, x):
        self.note(f"NoisyLinear {tuple(x.shape)}")
        return super().forward(x)


NOT_BUILT = {"LoggingMixin": "a mixin: only pickled as part of NoisyLinear, which is built"}
