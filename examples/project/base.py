"""The project's own base layer: every subclass is an nn.Module, across files."""

import lmdb
from torch import nn


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.version = 1


def open_cache(path: str):
    return lmdb.open(path, map_size=1 << 20)
