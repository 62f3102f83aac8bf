"""__getstate__ / __setstate__ shapes, right and wrong."""
import copy
import threading
import weakref
from queue import Queue

import torch.nn as nn
from torch.utils.data import Dataset
import lightning.pytorch as pl

from nets_common import devnull_writer

_TRANSIENT = ("_lock", "_queue")


class Registry:
    def __init__(self):
        self.names = ["a"]


class BufferedEncoder(nn.Module):
    """Clean: a filter loop skips the transient keys."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self._lock = threading.Lock()
        self._queue = Queue()

    def __getstate__(self):
        state = {}
        for key, value in self.__dict__.items():
            if key in _TRANSIENT:
                continue
            state[key] = value
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._lock = threading.Lock()
        self._queue = Queue()


class CachedLookup(Dataset):
    """Clean: dict comprehension over a set of names."""

    def __init__(self):
        self.items = [1, 2]
        self.sink = devnull_writer()
        self.mutex = threading.RLock()

    def __getstate__(self):
        drop = {"sink", "mutex"}
        return {k: v for k, v in vars(self).items() if k not in drop}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.sink = None
        self.mutex = threading.RLock()

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return self.items[i]


class PopDefaults(nn.Module):
    """Clean: pop with a default on a copy."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.ready = threading.Event()

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("ready", None)
        state.pop("not_there", None)
        return state


class DeepCopiedState(nn.Module):
    """Clean: copy.copy then del."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.out = devnull_writer()

    def __getstate__(self):
        state = copy.copy(self.__dict__)
        del state["out"]
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self.out = None


class OwnedChild(nn.Module):
    """Clean: the weak reference is replaced by its referent on the way out."""

    def __init__(self, owner=None):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self._owner_ref = weakref.ref(owner if owner is not None else _DEFAULT_OWNER)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_owner_ref"] = self._owner_ref()
        return state

    def __setstate__(self, state):
        owner = state.pop("_owner_ref")
        super().__setstate__(state)
        self._owner_ref = weakref.ref(owner)


_DEFAULT_OWNER = Registry()


class TupleState:
    """Clean: a tuple state with a matching __setstate__."""

    def __init__(self):
        self.weights = [0.1, 0.2]
        self.bias = 0.0
        self.guard = threading.Lock()

    def __getstate__(self):
        return (self.weights, self.bias)

    def __setstate__(self, state):
        self.weights, self.bias = state
        self.guard = threading.Lock()


class PassThroughState(Dataset):
    def __init__(self):
        self.items = [1, 2, 3]
        self.log = devnull_writer()  # truth: pickle

    def __getstate__(self):
        return self.__dict__

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return self.items[i]


class MisnamedPop(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.writer_lock = threading.Lock()  # truth: pickle

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("lock", None)
        state.pop("writer", None)
        return state


class PrivateOnlyFilter(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self._cache_rows = {}
        self.progress = threading.Condition()  # truth: pickle

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_cache")}

    def __setstate__(self, state):
        super().__setstate__(state)
        self._cache_rows = {}


class CopyButReturnOriginal(Dataset):
    def __init__(self):
        self.items = [1]
        self.stream = devnull_writer()  # truth: pickle

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("stream", None)
        return self.__dict__

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.items[i]


class WeakParent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.parent = weakref.ref(_DEFAULT_OWNER)  # truth: pickle
        self.peer = weakref.proxy(_DEFAULT_OWNER)


class CallbackWithState(pl.Callback):
    """Clean: a Lightning callback that drops its writer in __getstate__."""

    def __init__(self):
        self.out = devnull_writer()
        self.seen = 0

    def __getstate__(self):
        d = self.__dict__.copy()
        d["out"] = None
        return d


class CallbackLeaky(pl.Callback):
    def __init__(self):
        self.out = devnull_writer()  # truth: pickle
        self.seen = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen += 1
        self.out.write(f"{self.seen}\n")
