"""Open-Unmix style spectrogram-mask separator: train / evaluate / export script.

Mirrors the usual `train.py` of a source-separation repo: argparse options, a track
table built with pandas, an STFT front end, per-source SDR with numpy, and several
checkpoint flavours (best model, resume state, evaluation dump, EMA export).
"""
import argparse
import collections
import copy
import datetime
import hashlib
import math
import os
import platform
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy
import scipy.signal
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

SOURCES = ("vocals", "drums", "bass", "other")


def get_parser():
    parser = argparse.ArgumentParser(description="Open-Unmix lite trainer")
    parser.add_argument("--root", type=Path, default=Path("data/musdb18hq"))
    parser.add_argument("--output", type=str, default="open-unmix-lite")
    parser.add_argument("--target", type=str, default="vocals")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-5)
    parser.add_argument("--patience", type=int, default=140)
    parser.add_argument("--lr-decay-patience", type=int, default=80)
    parser.add_argument("--lr-decay-gamma", type=float, default=0.3)
    parser.add_argument("--seq-dur", type=float, default=0.25)
    parser.add_argument("--nfft", type=int, default=64)
    parser.add_argument("--nhop", type=int, default=16)
    parser.add_argument("--hidden-size", type=int, default=16)
    parser.add_argument("--bandwidth", type=int, default=16000, help="max frequency in Hz")
    parser.add_argument("--nb-channels", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--unidirectional", action="store_true")
    return parser


def parse_args(argv=None):
    return get_parser().parse_args(argv if argv is not None else [])


class STFT(nn.Module):
    def __init__(self, n_fft, n_hop):
        super().__init__()
        self.n_fft = n_fft
        self.n_hop = n_hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, x):
        spec = torch.stft(x, self.n_fft, self.n_hop, window=self.window, return_complex=True)
        return spec.abs()


class OpenUnmixLite(nn.Module):
    def __init__(self, nb_bins, hidden_size=16, nb_channels=1, max_bin=None):
        super().__init__()
        self.nb_bins = nb_bins
        self.max_bin = max_bin or nb_bins
        self.fc1 = nn.Linear(self.max_bin * nb_channels, hidden_size, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden_size)
        self.lstm = nn.LSTM(hidden_size, hidden_size // 2, batch_first=True, bidirectional=True)
        self.fc2 = nn.Linear(hidden_size * 2, nb_bins * nb_channels)
        self.input_mean = nn.Parameter(torch.zeros(self.max_bin))
        self.input_scale = nn.Parameter(torch.ones(self.max_bin))

    def forward(self, mag):  # mag: (batch, bins, frames)
        x = mag.transpose(1, 2)[..., : self.max_bin]
        x = (x + self.input_mean) * self.input_scale
        h = torch.tanh(self.bn1(self.fc1(x).transpose(1, 2)).transpose(1, 2))
        out, _ = self.lstm(h)
        mask = F.relu(self.fc2(torch.cat([h, out], -1)))
        return mask.transpose(1, 2) * mag


def make_track_table(n_tracks=6, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "name": [f"track_{i:03d}" for i in range(n_tracks)],
        "subset": ["train"] * (n_tracks - 2) + ["valid"] * 2,
        "duration": rng.uniform(120.0, 300.0, n_tracks).round(1),
        "rate": [8000] * n_tracks,
        "lufs": rng.normal(-14.0, 2.0, n_tracks),
    })


def synth_stems(n_tracks, n_samples, seed=0):
    g = torch.Generator().manual_seed(seed)
    stems = torch.randn(n_tracks, len(SOURCES), n_samples, generator=g) * 0.1
    return stems, stems.sum(1)


def bandwidth_to_max_bin(rate, n_fft, bandwidth):
    freqs = np.linspace(0, float(rate) / 2, n_fft // 2 + 1, endpoint=True)
    return np.max(np.where(freqs <= bandwidth)[0]) + 1


def input_statistics(stft, mixtures, max_bin):
    mags = torch.cat([stft(m[None]) for m in mixtures], -1)[0, :max_bin]
    mean = mags.mean(-1)
    std = mags.std(-1).clamp_min(1e-5)
    return -mean, 1.0 / std


def sdr(reference, estimate, eps=1e-8):
    num = np.sum(reference ** 2) + eps
    den = np.sum((reference - estimate) ** 2) + eps
    return 10 * np.log10(num / den)


def framewise_sdr(reference, estimate, win):
    n = len(reference) // win
    return np.array([sdr(reference[i * win:(i + 1) * win], estimate[i * win:(i + 1) * win]) for i in range(n)])


def separate(model, stft, mixture):
    with torch.no_grad():
        spec = torch.stft(mixture, stft.n_fft, stft.n_hop, window=stft.window, return_complex=True)
        mask_mag = model(spec.abs()[None])[0]
        est = torch.polar(mask_mag, spec.angle())
        return torch.istft(est, stft.n_fft, stft.n_hop, window=stft.window, length=mixture.shape[-1])


def train_epoch(model, stft, optimizer, mixtures, targets):
    model.train()
    losses = []
    for mix, tgt in zip(mixtures, targets):
        optimizer.zero_grad()
        est = model(stft(mix[None]))
        loss = F.mse_loss(est, stft(tgt[None]))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)


def valid_epoch(model, stft, mixtures, targets):
    model.eval()
    with torch.no_grad():
        return torch.stack([F.mse_loss(model(stft(m[None])), stft(t[None])) for m, t in zip(mixtures, targets)]).mean()


class EarlyStopping:
    def __init__(self, patience=10, min_delta=0.0):
        self.patience = patience
        self.min_delta = min_delta
        self.best = None
        self.num_bad_epochs = 0

    def step(self, metric):
        if self.best is None or metric < self.best - self.min_delta:
            self.best = metric
            self.num_bad_epochs = 0
            return False
        self.num_bad_epochs += 1
        return self.num_bad_epochs > self.patience


def run_training(args):
    torch.manual_seed(args.seed)
    tracks = make_track_table(seed=args.seed)
    rate = int(tracks["rate"].mode()[0])
    n_samples = int(args.seq_dur * rate)
    stems, mixtures = synth_stems(len(tracks), n_samples, seed=args.seed)
    target_idx = SOURCES.index(args.target)
    stft = STFT(args.nfft, args.nhop)
    nb_bins = args.nfft // 2 + 1
    max_bin = bandwidth_to_max_bin(rate, args.nfft, args.bandwidth)
    model = OpenUnmixLite(nb_bins, args.hidden_size, args.nb_channels, max_bin=int(max_bin))
    mean, scale = input_statistics(stft, mixtures, int(max_bin))
    model.input_mean.data.copy_(mean)
    model.input_scale.data.copy_(scale)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=args.lr_decay_gamma, patience=args.lr_decay_patience)
    stopper = EarlyStopping(patience=args.patience)
    train_losses, valid_losses, best_epoch = [], [], 0
    for epoch in range(1, args.epochs + 1):
        t0 = time.time()
        train_losses.append(train_epoch(model, stft, optimizer, mixtures[:4], stems[:4, target_idx]))
        v = valid_epoch(model, stft, mixtures[4:], stems[4:, target_idx])
        scheduler.step(v)
        valid_losses.append(v.item())
        if v.item() == min(valid_losses):
            best_epoch = epoch
        stopper.step(v.item())
        epoch_time = time.time() - t0
    return dict(model=model, stft=stft, optimizer=optimizer, scheduler=scheduler, stopper=stopper,
                tracks=tracks, rate=rate, max_bin=max_bin, stems=stems, mixtures=mixtures,
                train_losses=train_losses, valid_losses=valid_losses, best_epoch=best_epoch,
                epoch_time=epoch_time, target_idx=target_idx)


def evaluate_sources(model, stft, mixtures, stems, names):
    """museval-like: per track and source, the median over frames of the framewise SDR."""
    frames = collections.defaultdict(list)
    per_track = {}
    for name, mix, ref in zip(names, mixtures, stems):
        est = separate(model, stft, mix)
        for j, src in enumerate(SOURCES):
            frames[src].extend(framewise_sdr(ref[j].numpy(), est.numpy(), win=256).tolist())
        per_track[name] = float(sdr(ref[0].numpy(), est.numpy()))
    return frames, per_track


def save_best_model(tmpdir):
    args = parse_args(["--epochs", "2"])
    run = run_training(args)
    val_names = run["tracks"].query("subset == 'valid'")["name"].tolist()
    frames, per_track = evaluate_sources(run["model"], run["stft"], run["mixtures"][4:], run["stems"][4:], val_names)
    target_frames = np.asarray(frames[args.target])
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    state = {
        "epoch": args.epochs,
        "state_dict": run["model"].state_dict(),
        "best_loss": min(run["valid_losses"]),
        "best_epoch": run["best_epoch"],
        "optimizer": run["optimizer"].state_dict(),
        "scheduler": run["scheduler"].state_dict(),
        "train_loss_history": run["train_losses"],
        "valid_loss_history": run["valid_losses"],
        "num_bad_epochs": run["stopper"].num_bad_epochs,
        "args": params,
        "musdb_root": args.root,  # truth: weights_only
        "sample_rate": run["rate"],
        "max_bin": run["max_bin"],  # truth: weights_only
        "nb_bins": args.nfft // 2 + 1,
        "median_sdr": np.nanmedian(target_frames),  # truth: weights_only
        "per_track_sdr": per_track,
        "epoch_time": run["epoch_time"],
    }
    path = os.path.join(tmpdir, f"{args.target}.chkpnt")
    torch.save(state, path)
    return path


def save_target_json_like(tmpdir):
    """The `<target>.pth` + metadata pair that Open-Unmix ships, folded into one file."""
    args = parse_args(["--epochs", "1", "--target", "drums"])
    run = run_training(args)
    tracks = run["tracks"]
    window = scipy.signal.get_window("hann", args.nfft)
    meta = {
        "target": args.target,
        "sources": list(SOURCES),
        "rate": run["rate"],
        "nfft": args.nfft,
        "nhop": args.nhop,
        "nb_channels": args.nb_channels,
        "hidden_size": args.hidden_size,
        "train_tracks": tracks.loc[tracks.subset == "train", "name"].tolist(),
        "subset_minutes": (tracks.groupby("subset")["duration"].sum() / 60.0).to_dict(),
        "window": window,  # truth: weights_only
        "torch_window": torch.hann_window(args.nfft),
        "reference_lufs": tracks["lufs"].median(),  # truth: weights_only
        "lufs_by_track": dict(zip(tracks["name"], tracks["lufs"].round(2).tolist())),
        "column_types": tracks.dtypes,  # truth: weights_only
        "column_names": tracks.columns.tolist(),
        "commit": hashlib.sha1(b"open-unmix-lite").hexdigest(),
        "versions": {"torch": torch.version.__version__, "numpy": np.__version__,
                     "scipy": scipy.__version__, "python": platform.python_version()},
    }
    meta["created"] = datetime.datetime.now()  # truth: weights_only
    meta["created_unix"] = time.time()
    path = os.path.join(tmpdir, f"{args.target}.pth")
    torch.save({"state_dict": run["model"].state_dict(), "meta": meta}, path)
    return path


def save_eval_dump(tmpdir):
    args = parse_args(["--epochs", "1"])
    run = run_training(args)
    names = run["tracks"]["name"].tolist()[4:]
    frames, per_track = evaluate_sources(run["model"], run["stft"], run["mixtures"][4:], run["stems"][4:], names)
    scores = np.array([per_track[n] for n in names])
    summary = {}
    for src in SOURCES:
        vals = np.asarray(frames[src])
        summary[src] = {"median": float(np.nanmedian(vals)), "mean": float(np.nanmean(vals)),
                        "n_frames": int(vals.size)}
    dump = dict(
        summary=summary,
        frames=frames,  # truth: weights_only
        frames_as_lists={k: list(v) for k, v in frames.items()},
        worst_track=names[int(np.argmin(scores))],
        worst_index=np.argmin(scores),  # truth: weights_only
        best_sdr=max(per_track.values()),
        sdr_range=(min(per_track.values()), max(per_track.values())),
        mean_sdr=statistics_mean(per_track.values()),
        framewise_rounded=[round(x, 2) for x in frames[args.target]],
    )
    path = os.path.join(tmpdir, "eval_scores.pt")
    torch.save(dump, path)
    return path


def statistics_mean(values):
    values = list(values)
    return math.fsum(values) / len(values)


def save_resume_state(tmpdir):
    args = parse_args(["--epochs", "1", "--target", "bass"])
    random.seed(args.seed)
    np.random.seed(args.seed)
    run = run_training(args)
    stopper = run["stopper"]
    ckpt = {"epoch": args.epochs, "state_dict": run["model"].state_dict()}
    ckpt["optimizer"] = run["optimizer"].state_dict()
    ckpt["scheduler"] = run["scheduler"].state_dict()
    ckpt["rng"] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # truth: weights_only
        "numpy_generator": np.random.default_rng(args.seed).bit_generator.state,
    }
    ckpt["early_stopping"] = {"best": stopper.best, "num_bad_epochs": stopper.num_bad_epochs,
                              "patience": stopper.patience}
    ckpt.update(
        max_bin=int(run["max_bin"]),
        valid_losses=run["valid_losses"],
        lr=run["optimizer"].param_groups[0]["lr"],
        target_energy=run["stems"][:, run["target_idx"]].pow(2).mean(),
    )
    ckpt["seq_len"] = int(args.seq_dur * run["rate"])
    path = os.path.join(tmpdir, "resume.ckpt")
    torch.save(ckpt, path)
    return path


def save_swa_export(tmpdir):
    args = parse_args(["--epochs", "1"])
    run = run_training(args)
    swa = AveragedModel(run["model"])  # SWA over the last epochs
    swa.update_parameters(run["model"])
    path = os.path.join(tmpdir, "swa_separator.pt")
    torch.save(swa, path)  # truth: weights_only
    return path


def save_ema_weights(tmpdir):
    args = parse_args(["--epochs", "1", "--target", "other"])
    run = run_training(args)
    ema = AveragedModel(copy.deepcopy(run["model"]), multi_avg_fn=get_ema_multi_avg_fn(0.99))
    ema.update_parameters(run["model"])
    wiener = {"niter": 1, "softmask": False, "residual": True, "alpha": 1.0,
              "eps": torch.finfo(torch.float32).eps}
    export = {
        "ema_state_dict": ema.module.state_dict(),
        "n_averaged": ema.n_averaged,
        "wiener": wiener,
        "stft": {"n_fft": run["stft"].n_fft, "n_hop": run["stft"].n_hop, "window": "hann"},
        "bandwidth_hz": args.bandwidth,
        "max_bin": run["max_bin"].item(),
        "rate": run["rate"],
        "pi_over_hop": math.pi / args.nhop,
    }
    path = os.path.join(tmpdir, "ema_weights.pt")
    torch.save(export, path)
    return path


FACTORIES = {
    "STFT": lambda: STFT(64, 16),
    "OpenUnmixLite": lambda: OpenUnmixLite(33, hidden_size=16, max_bin=20),
    "EarlyStopping": lambda: EarlyStopping(patience=3),
}


if __name__ == "__main__":
    import tempfile
    print(save_best_model(tempfile.mkdtemp()))
