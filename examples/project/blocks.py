"""Subclasses of the project's base: scope and factories resolve through project/base.py."""

import torch

from .base import Layer, open_cache


class CachedBlock(Layer):
    def __init__(self, cache_dir: str = "/tmp/cache") -> None:
        super().__init__()
        self.cache = open_cache(cache_dir)  # an lmdb environment, through the factory
        self.scale = torch.ones(1)


class StreamingBlock(Layer):
    def __init__(self) -> None:
        super().__init__()
        self.source = (i * i for i in range(10))  # generators never pickle

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * next(self.source)
