"""Single-channel speech enhancement: a small GRU mask estimator on STFT magnitudes.

Laid out like the usual `train.py` of a denoising repo: argparse at the top, a Trainer that owns
the model / optimizer / scheduler, and a few `save_*` entry points that write checkpoints for the
different stages (pretraining, fine-tuning on a noise set, export for the inference server).
"""
import argparse
import math
import os
import random
import time
from collections import deque
from pathlib import Path

import numpy as np
import scipy.signal
import torch
import torch.nn as nn
import torch.nn.functional as F

SAMPLE_RATE = 16000
SNR_GRID = np.arange(-5, 20, 5)


def build_parser():
    p = argparse.ArgumentParser(description="train a mask-based speech enhancer")
    p.add_argument("--n-fft", type=int, default=256)
    p.add_argument("--hop", type=int, default=64)
    p.add_argument("--hidden", type=int, default=48)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--noise-dir", type=Path, default=Path("data") / "noise")
    p.add_argument("--ckpt-dir", default="checkpoints")
    p.add_argument("--snr-low", type=float, default=-5.0)
    p.add_argument("--snr-high", type=float, default=15.0)
    return p


def parse_args(argv=None):
    return build_parser().parse_args([] if argv is None else argv)


# ---------------------------------------------------------------- signal helpers

def synth_clean(n, length=4096, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / SAMPLE_RATE
    f0 = 120 + 200 * torch.rand(n, 1, generator=g)
    return torch.sin(2 * math.pi * f0 * t) * (0.5 + 0.5 * torch.sin(2 * math.pi * 3 * t))


def mix_at_snr(clean, noise, snr_db):
    p_clean = clean.pow(2).mean(-1, keepdim=True)
    p_noise = noise.pow(2).mean(-1, keepdim=True).clamp_min(1e-8)
    scale = torch.sqrt(p_clean / (p_noise * 10 ** (snr_db / 10)))
    return clean + scale * noise


def si_sdr(est, ref, eps=1e-8):
    ref = ref - ref.mean(-1, keepdim=True)
    est = est - est.mean(-1, keepdim=True)
    proj = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps) * ref
    noise = est - proj
    return 10 * torch.log10(proj.pow(2).sum(-1) / (noise.pow(2).sum(-1) + eps) + eps)


def highpass_coeffs(cutoff=80.0, order=4):
    b, a = scipy.signal.butter(order, cutoff / (SAMPLE_RATE / 2), btype="highpass")
    return b, a


# ---------------------------------------------------------------- model

class MaskGRU(nn.Module):
    def __init__(self, n_fft=256, hidden=48):
        super().__init__()
        self.n_bins = n_fft // 2 + 1
        self.gru = nn.GRU(self.n_bins, hidden, batch_first=True)
        self.proj = nn.Linear(hidden, self.n_bins)

    def forward(self, mag):
        h, _ = self.gru(mag.transpose(1, 2))
        return torch.sigmoid(self.proj(h)).transpose(1, 2)


class Enhancer(nn.Module):
    def __init__(self, n_fft=256, hop=64, hidden=48):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft))
        self.mask_net = MaskGRU(n_fft, hidden)

    def forward(self, wav):
        spec = torch.stft(wav, self.n_fft, self.hop, window=self.window, return_complex=True)
        mask = self.mask_net(spec.abs())
        return torch.istft(spec * mask, self.n_fft, self.hop, window=self.window, length=wav.shape[-1])


# ---------------------------------------------------------------- trainer

class EnhancementTrainer:
    def __init__(self, args=None):
        self.args = args if args is not None else parse_args()
        a = self.args
        self.model = Enhancer(a.n_fft, a.hop, a.hidden)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=a.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=0.9)
        self.recent_losses = deque(maxlen=5)
        self.history = {"train_loss": [], "val_sisdr": []}
        self.best_sisdr = -float("inf")
        self.best_epoch = -1
        self.rng = np.random.default_rng(1234)
        self.step = 0

    def sample_snr(self):
        return self.rng.uniform(self.args.snr_low, self.args.snr_high)

    def train_epoch(self, n_batches=2, batch=4):
        self.model.train()
        losses = []
        for i in range(n_batches):
            clean = synth_clean(batch, seed=self.step)
            noise = torch.randn_like(clean)
            noisy = mix_at_snr(clean, noise, self.sample_snr())
            est = self.model(noisy)
            loss = F.l1_loss(est, clean) - 0.01 * si_sdr(est, clean).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.step += 1
            losses.append(loss.item())
            self.recent_losses.append(loss.item())
        self.scheduler.step()
        mean_loss = np.mean(losses)
        self.history["train_loss"].append(float(mean_loss))
        return mean_loss

    @torch.no_grad()
    def evaluate(self, batch=4):
        self.model.eval()
        per_snr = {}
        for snr in SNR_GRID:
            clean = synth_clean(batch, seed=int(snr) + 100)
            noisy = mix_at_snr(clean, torch.randn_like(clean), float(snr))
            per_snr[int(snr)] = si_sdr(self.model(noisy), clean).mean().item()
        scores = np.array(list(per_snr.values()))
        return scores.mean(), per_snr

    def fit(self):
        for epoch in range(self.args.epochs):
            self.train_epoch()
            sisdr, _ = self.evaluate()
            self.history["val_sisdr"].append(round(float(sisdr), 3))
            if sisdr > self.best_sisdr:
                self.best_sisdr = sisdr
                self.best_epoch = epoch
        return self

    def state_dict(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
        }

    def save_checkpoint(self, path, extra=None):
        state = self.state_dict()
        if extra:
            state.update(extra)
        torch.save(state, path)
        return path


FACTORIES = {
    "EnhancementTrainer": lambda: EnhancementTrainer(parse_args(["--epochs", "1"])),
    "MaskGRU": MaskGRU,
    "Enhancer": Enhancer,
}


# ---------------------------------------------------------------- checkpoints

def save_pretrain(tmpdir):
    args = parse_args(["--epochs", "1"])
    trainer = EnhancementTrainer(args).fit()
    final_loss = trainer.train_epoch(n_batches=1)
    path = os.path.join(tmpdir, "pretrain_last.pt")
    torch.save(
        {
            "model": trainer.model.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "epoch": args.epochs,
            "args": args,  # truth: weights_only
            "train_loss": final_loss,  # truth: weights_only
            "loss_window": trainer.recent_losses,  # truth: weights_only
            "loss_window_list": list(trainer.recent_losses),
            "history": trainer.history,
            "lr": trainer.scheduler.get_last_lr()[0],
            "n_bins": trainer.model.mask_net.n_bins,
        },
        path,
    )
    return path


def save_finetune(tmpdir):
    args = parse_args(["--epochs", "1", "--snr-low", "0"])
    trainer = EnhancementTrainer(args).fit()
    sisdr, per_snr = trainer.evaluate()
    extra = {
        "best_sisdr": trainer.best_sisdr,  # truth: weights_only
        "best_epoch": trainer.best_epoch,
        "val_sisdr": float(sisdr),
        "per_snr": per_snr,
        "snr_grid": SNR_GRID,  # truth: weights_only
        "snr_grid_list": SNR_GRID.tolist(),
        "hparams": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "noise_dir": args.noise_dir,  # truth: weights_only
        "noise_dir_str": os.fspath(args.noise_dir),
        "rng_state": trainer.rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
    }
    return trainer.save_checkpoint(os.path.join(tmpdir, "finetune.pt"), extra)


def save_frontend(tmpdir):
    """The inference server also needs the fixed pre-filter and the STFT settings."""
    b, a = highpass_coeffs()
    zi = scipy.signal.lfilter_zi(b, a)
    window = scipy.signal.get_window("hann", 256)
    frontend = {}
    frontend["highpass_b"] = b  # truth: weights_only
    frontend["highpass_a"] = torch.from_numpy(a).float()
    frontend["zi"] = zi.tolist()
    frontend["window"] = torch.as_tensor(window, dtype=torch.float32)
    frontend["window_energy"] = float(np.sum(window ** 2))
    frontend["coherent_gain"] = float(window.sum()) / len(window)
    frontend["sample_rate"] = SAMPLE_RATE
    frontend["speaker_ids"] = frozenset({"p225", "p226", "p227"})  # truth: weights_only
    frontend["speaker_list"] = sorted({"p225", "p226", "p227"})
    frontend["valid_frames"] = range(0, 4096 // 64)  # truth: weights_only
    frontend["valid_frames_tuple"] = (0, 4096 // 64)
    path = os.path.join(tmpdir, "frontend.pt")
    torch.save(frontend, path)
    return path


def summarize_noise_bank(n=6, length=2048, seed=3):
    rs = np.random.RandomState(seed)
    bank = rs.randn(n, length).astype(np.float32)
    rms = np.sqrt((bank ** 2).mean(axis=1))
    return bank, rms, rs


def save_noise_bank(tmpdir):
    bank, rms, rs = summarize_noise_bank()
    loudest = int(np.argmax(rms))
    ckpt = dict(
        bank=torch.from_numpy(bank),
        rms=torch.tensor(rms),
        rms_db=[20 * math.log10(float(r)) for r in rms],
        loudest=loudest,
        peak_rms=rms[loudest].item(),
        median_rms=float(np.median(rms)),
        dtype=bank.dtype,  # truth: weights_only
        dtype_name=str(bank.dtype),
        shape=bank.shape,
        rs_state=rs.get_state(),  # truth: weights_only
        py_state=random.getstate(),
    )
    path = os.path.join(tmpdir, "noise_bank.pt")
    torch.save(ckpt, path)
    return path


def save_export(tmpdir):
    """Export for the streaming server: weights, config and a clean metadata block."""
    args = parse_args()
    trainer = EnhancementTrainer(args)
    t0 = time.time()
    trainer.train_epoch(n_batches=1)
    elapsed = time.time() - t0
    sisdr, per_snr = trainer.evaluate()
    meta = {
        "created": time.strftime("%Y-%m-%d"),
        "torch": str(torch.__version__),
        "train_seconds": round(elapsed, 2),
        "val_sisdr": sisdr.item(),
        "per_snr_db": {k: round(v, 2) for k, v in per_snr.items()},
        "complex_stft": True,
        "window_device": trainer.model.window.device,
        "window_dtype": trainer.model.window.dtype,
    }
    ckpt = {"state_dict": trainer.model.state_dict(), "config": {"n_fft": args.n_fft, "hop": args.hop,
                                                                 "hidden": args.hidden}}
    ckpt["meta"] = meta
    ckpt["scheduler"] = trainer.scheduler.state_dict()
    path = os.path.join(tmpdir, "export.pt")
    torch.save(ckpt, path)
    return path


def save_full_model(tmpdir):
    """Old habit kept for the demo notebook: the whole module is pickled."""
    trainer = EnhancementTrainer(parse_args(["--hidden", "16"]))
    path = os.path.join(tmpdir, "enhancer_full.pt")
    torch.save(
        trainer.model,  # truth: weights_only
        path,
    )
    return path


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.ckpt_dir, exist_ok=True)
    trainer = EnhancementTrainer(args).fit()
    trainer.save_checkpoint(os.path.join(args.ckpt_dir, "last.pt"), {"best_epoch": trainer.best_epoch})


if __name__ == "__main__":
    main()
