"""A registry of named dataset *descriptions* (not torch datasets)."""

import threading

_REGISTRY = {}
_REGISTRY_LOCK = threading.Lock()


class Dataset:
    """A description of a dataset: name, URL, checksum.  Plain Python."""

    def __init__(self, name="toy", url=""):
        self.name = name
        self.url = url

    def register(self):
        with _REGISTRY_LOCK:
            _REGISTRY[self.name] = self


class Module:
    """A plugin module of the CLI (unrelated to torch)."""

    commands = ()

    def __init__(self):
        self.enabled = True
