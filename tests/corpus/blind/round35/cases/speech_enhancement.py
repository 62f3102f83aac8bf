"""Single-channel speech enhancement with a GRU spectral mask.

Synthetic harmonic "speech" is mixed with four noise types at fixed SNRs; the enhancer predicts a
magnitude mask on the STFT. SI-SDR, SI-SDRi, segmental SNR and a log-spectral distance are computed
by hand with numpy, and the per-noise breakdown lives in a pandas DataFrame.
"""
from __future__ import annotations

import collections
import dataclasses
import enum
import heapq
import math
import os
import random
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pandas as pd
import torch
import torch.nn as nn


class NoiseType(enum.Enum):
    WHITE = "white"
    BABBLE = "babble"
    STREET = "street"
    HUM = "hum"


@dataclasses.dataclass
class STFTConfig:
    n_fft: int = 256
    hop_length: int = 64
    win_length: int = 256
    window: str = "hann"
    sample_rate: int = 8000
    center: bool = True

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 2
    batch_size: int = 4
    lr: float = 2e-3
    snr_db: Tuple[float, ...] = (-5.0, 0.0, 5.0)
    utt_seconds: float = 0.5
    n_train: int = 16
    n_valid: int = 8
    seed: int = 7
    grad_clip: float = 5.0
    out_dir: str = "runs/se/gru_mask"


# --------------------------------------------------------------------------- data

def harmonic_speech(n: int, sr: int, rng: np.random.RandomState) -> np.ndarray:
    t = np.arange(n) / sr
    f0 = rng.uniform(100, 220) * (1 + 0.1 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    env = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(2, 5) * t)) ** 2
    return (env * sum(np.sin(k * phase) / k for k in range(1, 6))).astype(np.float32)


def make_noise(kind: NoiseType, n: int, sr: int, rng: np.random.RandomState) -> np.ndarray:
    t = np.arange(n) / sr
    if kind is NoiseType.WHITE:
        x = rng.standard_normal(n)
    elif kind is NoiseType.BABBLE:
        x = sum(harmonic_speech(n, sr, rng) for _ in range(4))
    elif kind is NoiseType.STREET:
        x = np.cumsum(rng.standard_normal(n))
        x = x - np.convolve(x, np.ones(64) / 64, mode="same")
    else:
        x = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3))
    return (x / (np.std(x) + 1e-8)).astype(np.float32)


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    p_clean = np.mean(clean ** 2)
    p_noise = np.mean(noise ** 2)
    gain = np.sqrt(p_clean / (p_noise * 10 ** (snr_db / 10)))
    return (clean + gain * noise).astype(np.float32)


class NoisySpeechSet(torch.utils.data.Dataset):
    def __init__(self, n: int = 8, snrs=(-5.0, 0.0, 5.0), seconds: float = 0.5, sr: int = 8000, seed: int = 0):
        rng = np.random.RandomState(seed)
        kinds = list(NoiseType)
        self.clean, self.noisy, self.meta = [], [], []
        for i in range(n):
            kind, snr = kinds[i % len(kinds)], snrs[i % len(snrs)]
            s = harmonic_speech(int(seconds * sr), sr, rng)
            self.clean.append(s)
            self.noisy.append(mix_at_snr(s, make_noise(kind, len(s), sr, rng), snr))
            self.meta.append({"noise": kind.value, "snr": float(snr)})

    def __len__(self):
        return len(self.clean)

    def __getitem__(self, i):
        return torch.from_numpy(self.noisy[i]), torch.from_numpy(self.clean[i])


# --------------------------------------------------------------------------- metrics

def si_sdr(est: np.ndarray, ref: np.ndarray, eps: float = 1e-8):
    est = est - est.mean()
    ref = ref - ref.mean()
    alpha = np.dot(est, ref) / (np.dot(ref, ref) + eps)
    target = alpha * ref
    residual = est - target
    return 10 * np.log10((np.sum(target ** 2) + eps) / (np.sum(residual ** 2) + eps))


def segmental_snr(est: np.ndarray, ref: np.ndarray, frame: int = 256, eps: float = 1e-8) -> float:
    vals = []
    for i in range(len(ref) // frame):
        r, e = ref[i * frame:(i + 1) * frame], est[i * frame:(i + 1) * frame]
        snr = 10 * math.log10((float(np.sum(r ** 2)) + eps) / (float(np.sum((r - e) ** 2)) + eps))
        vals.append(min(max(snr, -10.0), 35.0))
    return sum(vals) / max(len(vals), 1)


def log_spectral_distance(est: np.ndarray, ref: np.ndarray, n_fft: int = 256):
    frames = len(ref) // n_fft
    E = np.abs(np.fft.rfft(est[: frames * n_fft].reshape(frames, n_fft), axis=1)) ** 2
    R = np.abs(np.fft.rfft(ref[: frames * n_fft].reshape(frames, n_fft), axis=1)) ** 2
    d = 10 * np.log10(R + 1e-10) - 10 * np.log10(E + 1e-10)
    return np.mean(np.sqrt(np.mean(d ** 2, axis=1)))


def neg_si_sdr(est: torch.Tensor, ref: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    ratio = target.pow(2).sum(-1) / ((est - target).pow(2).sum(-1) + eps)
    return -(10 * torch.log10(ratio + eps)).mean()


def mel_filterbank(n_fft: int, n_mels: int, sr: int) -> np.ndarray:
    hz2mel = lambda f: 2595 * np.log10(1 + f / 700)
    mel2hz = lambda m: 700 * (10 ** (m / 2595) - 1)
    pts = mel2hz(np.linspace(hz2mel(0), hz2mel(sr / 2), n_mels + 2))
    bins = np.floor((n_fft + 1) * pts / sr).astype(int)
    fb = np.zeros((n_mels, n_fft // 2 + 1), dtype=np.float32)
    for m in range(1, n_mels + 1):
        lo, c, hi = bins[m - 1], bins[m], bins[m + 1]
        fb[m - 1, lo:c] = (np.arange(lo, c) - lo) / max(c - lo, 1)
        fb[m - 1, c:hi] = (hi - np.arange(c, hi)) / max(hi - c, 1)
    return fb


# --------------------------------------------------------------------------- model

class GRUMaskEnhancer(nn.Module):
    def __init__(self, stft: STFTConfig | None = None, hidden: int = 48):
        super().__init__()
        self.stft = stft or STFTConfig()
        self.register_buffer("window", torch.hann_window(self.stft.win_length))
        self.rnn = nn.GRU(self.stft.n_freqs, hidden, batch_first=True)
        self.mask = nn.Linear(hidden, self.stft.n_freqs)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        c = self.stft
        spec = torch.stft(wav, c.n_fft, c.hop_length, c.win_length, window=self.window,
                          center=c.center, return_complex=True)
        h, _ = self.rnn(torch.log1p(spec.abs()).transpose(1, 2))
        m = torch.sigmoid(self.mask(h)).transpose(1, 2)
        return torch.istft(spec * m, c.n_fft, c.hop_length, c.win_length, window=self.window,
                           center=c.center, length=wav.shape[-1])


# --------------------------------------------------------------------------- evaluation

class Evaluator:
    def __init__(self, stft: STFTConfig | None = None):
        self.stft = stft or STFTConfig()

    @torch.no_grad()
    def run(self, model: nn.Module, dataset: NoisySpeechSet) -> pd.DataFrame:
        model.eval()
        rows = []
        for i in range(len(dataset)):
            noisy, clean = dataset[i]
            est = model(noisy[None]).squeeze(0).numpy()
            n, c = noisy.numpy(), clean.numpy()
            rows.append({
                "utt": i,
                **dataset.meta[i],
                "sisdr": si_sdr(est, c),
                "sisdr_in": si_sdr(n, c),
                "segsnr": segmental_snr(est, c),
                "lsd": log_spectral_distance(est, c, self.stft.n_fft),
            })
        df = pd.DataFrame(rows)
        df["sisdri"] = df["sisdr"] - df["sisdr_in"]
        return df


def summarize(df: pd.DataFrame):
    per_noise = df.groupby("noise")[["sisdr", "sisdri", "segsnr", "lsd"]].mean()
    overall = {
        "sisdr": df["sisdr"].mean(),
        "sisdri": df["sisdri"].mean(),
        "segsnr": df["segsnr"].mean(),
        "lsd": df["lsd"].median(),
    }
    return overall, per_noise


class TopKCheckpoints:
    """Callback: remembers the k best epochs (by SI-SDR) and the file each one went to."""

    def __init__(self, k: int = 2, dirpath: str = "runs/se/ckpts"):
        self.k, self.dirpath = k, dirpath
        self.heap: List[Tuple[float, int, str]] = []

    def on_validation_end(self, epoch: int, score) -> bool:
        item = (float(score), epoch, os.path.join(self.dirpath, f"epoch{epoch:03d}.pt"))
        if len(self.heap) < self.k:
            heapq.heappush(self.heap, item)
            return True
        if item[0] > self.heap[0][0]:
            heapq.heapreplace(self.heap, item)
            return True
        return False

    def state_dict(self) -> Dict:
        return {"k": self.k, "dirpath": self.dirpath, "best_k": sorted(self.heap, reverse=True)}


class EnhancementTrainer:
    def __init__(self, cfg: TrainConfig | None = None, stft: STFTConfig | None = None):
        self.cfg = cfg or TrainConfig()
        self.stft = stft or STFTConfig()
        torch.manual_seed(self.cfg.seed)
        self.rng = np.random.RandomState(self.cfg.seed)
        self.model = GRUMaskEnhancer(self.stft)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr)
        self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(self.opt, mode="max", factor=0.5, patience=1)
        self.scaler = torch.amp.GradScaler("cpu", enabled=False)
        self.callback = TopKCheckpoints()
        self.history = collections.defaultdict(list)
        self.best_sisdr = -np.inf
        self.best_epoch = -1
        self.epoch = 0
        self.train_set = NoisySpeechSet(self.cfg.n_train, self.cfg.snr_db, self.cfg.utt_seconds,
                                        self.stft.sample_rate, seed=self.cfg.seed)
        self.valid_set = NoisySpeechSet(self.cfg.n_valid, self.cfg.snr_db, self.cfg.utt_seconds,
                                        self.stft.sample_rate, seed=self.cfg.seed + 1)

    def train_one_epoch(self) -> float:
        self.model.train()
        loader = torch.utils.data.DataLoader(self.train_set, batch_size=self.cfg.batch_size, shuffle=True)
        losses = []
        for noisy, clean in loader:
            with torch.autocast("cpu", enabled=False):
                loss = neg_si_sdr(self.model(noisy), clean)
            self.opt.zero_grad()
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.opt)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.scaler.step(self.opt)
            self.scaler.update()
            losses.append(loss.item())
        return float(np.mean(losses))

    def validate(self) -> Dict:
        df = Evaluator(self.stft).run(self.model, self.valid_set)
        overall, _ = summarize(df)
        return overall

    def fit(self):
        for _ in range(self.cfg.epochs):
            self.epoch += 1
            self.history["train_loss"].append(self.train_one_epoch())
            val = self.validate()
            self.history["val_sisdr"].append(round(float(val["sisdr"]), 3))
            self.sched.step(val["sisdr"])
            self.callback.on_validation_end(self.epoch, val["sisdr"])
            if val["sisdr"] > self.best_sisdr:
                self.best_sisdr = val["sisdr"]
                self.best_epoch = self.epoch
        return self


# --------------------------------------------------------------------------- checkpoints

def save_se_checkpoint(tmpdir):
    trainer = EnhancementTrainer(TrainConfig(epochs=2)).fit()
    ckpt = dict(
        epoch=trainer.epoch,
        model=trainer.model.state_dict(),
        optimizer=trainer.opt.state_dict(),
        scheduler=trainer.sched.state_dict(),
        scaler=trainer.scaler,  # truth: weights_only
        best_sisdr=trainer.best_sisdr,  # truth: weights_only
        best_epoch=trainer.best_epoch,
        history=dict(trainer.history),
        train_cfg=dataclasses.asdict(trainer.cfg),
        stft=dataclasses.asdict(trainer.stft),
        np_rng=trainer.rng.get_state(),  # truth: weights_only
        callbacks={"TopKCheckpoints": trainer.callback.state_dict()},
    )
    path = os.path.join(tmpdir, "last.ckpt")
    torch.save(ckpt, path)
    return path


def save_eval_breakdown(tmpdir):
    trainer = EnhancementTrainer(TrainConfig(epochs=1)).fit()
    df = Evaluator(trainer.stft).run(trainer.model, trainer.valid_set)
    overall, per_noise = summarize(df)
    ckpt = {"model": trainer.model.state_dict(), "epoch": trainer.epoch}
    ckpt["per_noise"] = per_noise  # truth: weights_only
    ckpt["per_noise_sisdri"] = per_noise["sisdri"].round(3).to_dict()
    ckpt["counts"] = df["noise"].value_counts().to_dict()
    ckpt["sisdri"] = overall["sisdri"]  # truth: weights_only
    ckpt["segsnr"] = float(overall["segsnr"])
    ckpt["lsd"] = overall["lsd"].item()
    ckpt["worst_noise"] = per_noise["sisdri"].idxmin()
    ckpt["by_snr"] = {float(k): round(float(v), 3) for k, v in df.groupby("snr")["sisdri"].mean().items()}
    ckpt["utterances"] = df[["utt", "noise", "snr", "sisdri"]].to_dict("records")
    ckpt["n_utts"] = len(df)
    path = os.path.join(tmpdir, "eval_breakdown.pt")
    torch.save(ckpt, path)
    return path


def save_frontend(tmpdir):
    stft = STFTConfig(n_fft=512, hop_length=128, win_length=512, sample_rate=16000)
    window = np.hanning(stft.win_length + 1)[:-1].astype(np.float32)
    mel = mel_filterbank(stft.n_fft, 40, stft.sample_rate)
    frontend = {
        "stft": stft,  # truth: weights_only
        "stft_kwargs": {"n_fft": stft.n_fft, "hop_length": stft.hop_length,
                        "win_length": stft.win_length, "center": stft.center},
        "window": window,  # truth: weights_only
        "window_t": torch.hann_window(stft.win_length),
        "mel_fb": torch.from_numpy(mel).float(),
        "n_mels": mel.shape[0],
        "noise_types": [n.value for n in NoiseType],
        "train_noise": NoiseType.BABBLE,  # truth: weights_only
        "freq_resolution_hz": stft.sample_rate / stft.n_fft,
        "frame_shift_ms": 1000 * stft.hop_length / stft.sample_rate,
    }
    path = os.path.join(tmpdir, "frontend.pt")
    torch.save(frontend, path)
    return path


def save_exported_model(tmpdir):
    trainer = EnhancementTrainer(TrainConfig(epochs=1)).fit()
    trainer.model.eval()
    path = os.path.join(tmpdir, "enhancer_full.pt")
    torch.save(trainer.model, path)  # truth: weights_only
    return path


def save_resume_state(tmpdir):
    random.seed(0)
    trainer = EnhancementTrainer(TrainConfig(epochs=1)).fit()
    ckpt = {
        "epoch": trainer.epoch,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.opt.state_dict(),
        "scheduler": trainer.sched.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "rng": {
            "python": random.getstate(),
            "torch": torch.get_rng_state(),
            "numpy_pcg64": np.random.default_rng(trainer.cfg.seed).bit_generator.state,
        },
        "history": {k: list(v) for k, v in trainer.history.items()},
        "best": {"sisdr": float(trainer.best_sisdr), "epoch": trainer.best_epoch},
        "topk": trainer.callback.state_dict(),
        "noise_mix": dict(collections.Counter(m["noise"] for m in trainer.train_set.meta)),
        "out": str(Path(trainer.cfg.out_dir) / "last.pt"),
    }
    path = os.path.join(tmpdir, "resume.pt")
    torch.save(ckpt, path)
    return path


FACTORIES = {
    "NoiseType": lambda: NoiseType.STREET,
}
