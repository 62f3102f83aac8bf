"""Audio front-ends: STFT/mel feature extractors and a waveform dataset."""
import functools
import os
import struct
import tempfile
import wave

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from .common import Backbone, focal_loss, open_run_log, smooth_l1


def _write_tone(path, sr=8000, n=800):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(np.zeros(n, dtype=np.int16).tobytes())
    return path


def _tone_path():
    return _write_tone(os.path.join(tempfile.mkdtemp(), "tone.wav"))


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + f / 700.0)


class MelFrontend(nn.Module):
    """Clean: the window is a buffer, stft is a partial of a torch function, mel math is vectorized."""

    def __init__(self, n_fft=64, n_mels=8, sr=8000):
        super().__init__()
        self.register_buffer("window", torch.hann_window(n_fft))
        self.stft = functools.partial(torch.stft, n_fft=n_fft, hop_length=n_fft // 4, return_complex=True)
        self.to_mel = np.vectorize(hz_to_mel)
        self.fb = nn.Parameter(torch.rand(n_fft // 2 + 1, n_mels), requires_grad=False)
        self.loss = smooth_l1

    def forward(self, wav):
        spec = self.stft(wav, window=self.window).abs() ** 2
        return torch.log(spec.transpose(-1, -2) @ self.fb + 1e-6)


class CachedResampler(nn.Module):
    def __init__(self, orig=16000, new=8000):
        super().__init__()
        self.orig, self.new = orig, new
        self.kernel_for = functools.lru_cache(maxsize=16)(self._kernel)  # truth: pickle
        self.header = struct.Struct("<4sI4s")  # truth: pickle

    def _kernel(self, ratio):
        return torch.ones(int(ratio * 4))

    def forward(self, x):
        return x[..., :: self.orig // self.new]


class WaveformDataset(Dataset):
    def __init__(self, path=None):
        self.path = path or _tone_path()
        self.reader = wave.open(self.path, "rb")  # truth: pickle
        self.num_frames = self.reader.getnframes()
        self.sample_rate = self.reader.getframerate()

    def __len__(self):
        return 1

    def __getitem__(self, i):
        self.reader.rewind()
        return np.frombuffer(self.reader.readframes(self.num_frames), dtype=np.int16)


class LazyWaveDataset(Dataset):
    """Clean: reads the header eagerly inside `with`, opens the file per worker."""

    def __init__(self, path=None):
        self.path = path or _tone_path()
        with wave.open(self.path, "rb") as w:
            self.num_frames = w.getnframes()
        self._reader = None

    def _ensure_open(self):
        if self._reader is None:
            self._reader = wave.open(self.path, "rb")
        return self._reader

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self._ensure_open().readframes(self.num_frames)


class ConvSpeechEncoder(Backbone):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 8, 5, stride=2)
        self.debug = open_run_log("encoder.log")  # truth: pickle
        self.aux_loss = focal_loss  # truth: pickle
        self.spec_augment = torch.jit.script(nn.Dropout(0.1))  # truth: pickle

    def forward(self, wav):
        return self.conv(wav.unsqueeze(1))


class KeywordSpotter(nn.Module):
    def __init__(self, keywords=("yes", "no", "up")):
        super().__init__()
        self.frontend = MelFrontend()
        self.head = nn.Linear(8, len(keywords))
        self.keywords = np.array(keywords)
        self.thresholds = np.array([0.5, 0.6, 0.7], dtype=np.float64)
        self.calibration = np.array([[0.1, 0.2], [0.3]], dtype=object)  # truth: portable

    def forward(self, wav):
        return self.head(self.frontend(wav).mean(1))
