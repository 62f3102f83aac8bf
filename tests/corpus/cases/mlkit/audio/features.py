"""Feature extraction front-ends."""

import functools
import weakref

import numpy as np
import torch
from torch.nn.modules import Module

from mlkit.compat import _Module

__all__ = ["FeatureExtractor", "MelFrontend", "N_MELS"]

N_MELS = 40


class FeatureExtractor(Module):
    """Base of all front-ends: keeps the sample rate and a window cache."""

    def __init__(self, sample_rate=16000):
        super().__init__()
        self.sample_rate = sample_rate
        self.windows = {}

    def window(self, n):
        if n not in self.windows:
            self.windows[n] = torch.hann_window(n)
        return self.windows[n]


class MelFrontend(FeatureExtractor):
    def __init__(self, n_fft=400):
        super().__init__()
        self.n_fft = n_fft
        self.mel_basis = torch.rand(N_MELS, n_fft // 2 + 1)
        self.cached_filter = functools.lru_cache(maxsize=32)(self._filter)  # truth: pickle

    def _filter(self, n):
        return np.hanning(n)

    def forward(self, wav):
        spec = torch.stft(wav, self.n_fft, window=self.window(self.n_fft), return_complex=True)
        return self.mel_basis @ spec.abs()


class Resampler(_Module):
    """Written against the alias in mlkit.compat."""

    def __init__(self, orig=16000, new=8000):
        super().__init__()
        self.ratio = new / orig
        self.finalizer = weakref.finalize(self, print, "resampler freed")
        self.kernels = weakref.WeakKeyDictionary()  # truth: pickle

    def forward(self, x):
        return x[..., :: int(1 / self.ratio)]
