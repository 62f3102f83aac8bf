"""Data-driven full-waveform inversion (OpenFWI / InversionNet layout) and a first-break picker.

    python seismic_fwi_train.py --dataset flatvel-a --epochs 40 -b 64 -o Invnet_models

Shot gathers (n_shots, nt, n_rec) are log-transformed and min-max scaled to [-1, 1]; velocity maps
(nz, nx) are scaled with the dataset's label range. Synthetic layered models keep the script
self-contained; swap `make_layered_dataset` for the .npy loaders on the cluster.
"""
import argparse
import datetime
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import signal
from torch.utils.data import DataLoader, TensorDataset

# per-dataset ranges, as in OpenFWI's dataset_config.json
DATASET_CTX = {
    "flatvel-a": {"data_min": -26.0, "data_max": 52.0, "label_min": 1500, "label_max": 4500},
    "curvefault-b": {"data_min": -30.0, "data_max": 58.0, "label_min": 1500, "label_max": 5000},
}


def get_parser():
    p = argparse.ArgumentParser(description="FCN training for full-waveform inversion")
    p.add_argument("--dataset", default="flatvel-a", choices=sorted(DATASET_CTX))
    p.add_argument("--n-shots", type=int, default=3)
    p.add_argument("--nt", type=int, default=64)
    p.add_argument("--n-rec", type=int, default=16)
    p.add_argument("--nz", type=int, default=16)
    p.add_argument("--nx", type=int, default=16)
    p.add_argument("--dt", type=float, default=0.002)
    p.add_argument("--dx", type=float, default=10.0)
    p.add_argument("--f0", type=float, default=15.0, help="Ricker peak frequency (Hz)")
    p.add_argument("-b", "--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lambda-g1v", type=float, default=1.0)
    p.add_argument("--lambda-g2v", type=float, default=1.0)
    p.add_argument("-k", type=float, default=1.0, help="log-transform scale")
    p.add_argument("-o", "--output-path", default="Invnet_models")
    p.add_argument("--seed", type=int, default=0)
    return p


# ------------------------------------------------------------------ data

def ricker(f0, dt, nt):
    t = (np.arange(nt) - nt // 8) * dt
    a = (np.pi * f0 * t) ** 2
    return ((1.0 - 2.0 * a) * np.exp(-a)).astype(np.float32)


def layered_velocity(rng, nz, nx, vmin, vmax, n_layers=3):
    depths = np.sort(rng.choice(np.arange(2, nz - 2), n_layers - 1, replace=False))
    vels = np.sort(rng.uniform(vmin, vmax, n_layers))
    v = np.empty((nz, nx), np.float32)
    top = 0
    for bottom, vel in zip(list(depths) + [nz], vels):
        v[top:bottom] = vel
        top = bottom
    return v


def convolutional_shots(v, wavelet, args):
    """1-D convolutional model per receiver column, hyperbolic moveout between shots."""
    nz, nx = v.shape
    rec_cols = np.linspace(0, nx - 1, args.n_rec).astype(int)
    src_cols = np.linspace(0, nx - 1, args.n_shots).astype(int)
    data = np.zeros((args.n_shots, args.nt, args.n_rec), np.float32)
    for s, sc in enumerate(src_cols):
        for r, rc in enumerate(rec_cols):
            col = v[:, rc]
            refl = (col[1:] - col[:-1]) / (col[1:] + col[:-1])
            t0 = np.cumsum(2.0 * args.dx / col[:-1])
            offset = abs(rc - sc) * args.dx
            t = np.sqrt(t0 ** 2 + (offset / col[:-1]) ** 2)
            idx = np.clip((t / args.dt).astype(int), 0, args.nt - 1)
            np.add.at(data[s, :, r], idx, refl * 100.0)
        data[s] = signal.fftconvolve(data[s], wavelet[:, None], mode="same", axes=0)
    return data


def log_transform(data, k=1.0):
    return np.sign(data) * np.log1p(np.abs(k * data))


def minmax(x, lo, hi):
    return 2.0 * (x - lo) / (hi - lo) - 1.0


def make_layered_dataset(args, ctx, n, seed):
    rng = np.random.default_rng(seed)
    w = ricker(args.f0, args.dt, args.nt)
    vel = np.stack([layered_velocity(rng, args.nz, args.nx, ctx["label_min"], ctx["label_max"]) for _ in range(n)])
    shots = np.stack([convolutional_shots(v, w, args) for v in vel])
    return shots, vel


def build_loaders(args, ctx):
    shots, vel = make_layered_dataset(args, ctx, n=16, seed=args.seed)
    lo, hi = log_transform(ctx["data_min"], args.k), log_transform(ctx["data_max"], args.k)
    x = minmax(log_transform(shots, args.k), lo, hi).astype(np.float32)
    y = minmax(vel, ctx["label_min"], ctx["label_max"])[:, None].astype(np.float32)
    ds = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    train, val = torch.utils.data.random_split(ds, [12, 4], generator=torch.Generator().manual_seed(args.seed))
    stats = {
        "log_min": float(lo),
        "log_max": float(hi),
        "n_train": len(train),
        "clip_fraction": float((np.abs(x) > 1).mean()),
    }
    return (DataLoader(train, batch_size=args.batch_size, shuffle=True),
            DataLoader(val, batch_size=args.batch_size), stats)


# ------------------------------------------------------------------ model

class InversionNetMini(nn.Module):
    def __init__(self, n_shots=3, nz=16, nx=16, dim=16):
        super().__init__()
        self.out_size = (nz, nx)
        self.encoder = nn.Sequential(
            nn.Conv2d(n_shots, dim, (7, 1), stride=(2, 1), padding=(3, 0)), nn.BatchNorm2d(dim), nn.LeakyReLU(0.2),
            nn.Conv2d(dim, dim, 3, stride=2, padding=1), nn.BatchNorm2d(dim), nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d((4, 4)),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(dim, dim, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(dim, 1, 4, stride=2, padding=1),
        )

    def forward(self, x):
        out = self.decoder(self.encoder(x))
        return torch.tanh(F.interpolate(out, size=self.out_size, mode="bilinear", align_corners=False))


class TracePicker(nn.Module):
    """Trace-wise first-break segmentation: p(sample is after the first arrival)."""

    def __init__(self, channels=8):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(1, channels, 9, padding=4), nn.ReLU(),
            nn.Conv1d(channels, channels, 9, padding=4), nn.ReLU(),
            nn.Conv1d(channels, 1, 1),
        )

    def forward(self, x):
        return self.net(x).squeeze(1)


# ------------------------------------------------------------------ train / eval

def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_one_epoch(model, loader, optimizer, args):
    model.train()
    total = 0.0
    for x, y in loader:
        pred = model(x)
        loss = args.lambda_g1v * F.l1_loss(pred, y) + args.lambda_g2v * F.mse_loss(pred, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * x.size(0)
    return total / len(loader.dataset)


def ssim_np(a, b, c1=0.01 ** 2, c2=0.03 ** 2):
    mu_a, mu_b = a.mean(), b.mean()
    cov = ((a - mu_a) * (b - mu_b)).mean()
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (a.var() + b.var() + c2))


@torch.no_grad()
def evaluate(model, loader, ctx):
    model.eval()
    mae, mse, ssims = 0.0, 0.0, []
    scale = (ctx["label_max"] - ctx["label_min"]) / 2.0
    for x, y in loader:
        pred = model(x)
        mae += (pred - y).abs().mean().item() * scale * x.size(0)
        mse += F.mse_loss(pred, y).item() * x.size(0)
        for p, t in zip(pred.numpy(), y.numpy()):
            ssims.append(ssim_np((p + 1) / 2, (t + 1) / 2))
    n = len(loader.dataset)
    return {"mae": mae / n, "mse": mse / n, "ssim": np.mean(ssims)}


# ------------------------------------------------------------------ checkpoints

def save_inversionnet(tmpdir):
    args = get_parser().parse_args(["--epochs", "2", "-o", tmpdir])
    ctx = DATASET_CTX[args.dataset]
    seed_everything(args.seed)
    train_loader, val_loader, data_stats = build_loaders(args, ctx)
    model = InversionNetMini(args.n_shots, args.nz, args.nx)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    lr_scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    best_mae, best_metrics = float("inf"), None
    for epoch in range(args.epochs):
        train_one_epoch(model, train_loader, optimizer, args)
        metrics = evaluate(model, val_loader, ctx)
        lr_scheduler.step()
        if metrics["mae"] < best_mae:
            best_mae, best_metrics = metrics["mae"], metrics
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "lr_scheduler": lr_scheduler.state_dict(),
        "epoch": epoch,
        "args": args,  # truth: weights_only
        "best_mae": best_mae,
        "best_ssim": best_metrics["ssim"],  # truth: weights_only
        "data_stats": data_stats,
        "dataset_ctx": dict(ctx),
    }
    path = os.path.join(args.output_path, "checkpoint.pth")
    torch.save(checkpoint, path)
    return path


def save_first_break_picker(tmpdir):
    args = get_parser().parse_args(["--nt", "128"])
    rng = np.random.default_rng(args.seed)
    sos = signal.butter(4, [5.0, 60.0], btype="bandpass", fs=1.0 / args.dt, output="sos")
    fb = rng.integers(20, 100, size=64)
    traces = rng.normal(0, 0.05, (64, args.nt)).astype(np.float32)
    for i, k in enumerate(fb):
        traces[i, k:k + 16] += ricker(args.f0, args.dt, 16)
    traces = signal.sosfiltfilt(sos, traces, axis=1).astype(np.float32)
    labels = (np.arange(args.nt)[None, :] >= fb[:, None]).astype(np.float32)
    x, y = torch.from_numpy(traces[:, None]), torch.from_numpy(labels)
    model = TracePicker()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        loss = F.binary_cross_entropy_with_logits(model(x[:48]), y[:48])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        probs = torch.sigmoid(model(x[48:])).numpy()
    thresholds = np.linspace(0.1, 0.9, 17)
    errors = [np.abs((probs > t).argmax(axis=1) - fb[48:]).mean() for t in thresholds]
    best = int(np.argmin(errors))
    state = {"model": model.state_dict(), "final_loss": loss.item()}
    state["threshold"] = thresholds[best]  # truth: weights_only
    state["pick_error_ms"] = float(errors[best]) * args.dt * 1000.0
    state["bandpass_sos"] = sos  # truth: weights_only
    state["bandpass_hz"] = [5.0, 60.0]
    state["sampling_rate"] = 1.0 / args.dt
    state["trained_at"] = datetime.datetime.now()  # truth: weights_only
    state["wall_time"] = time.time()
    path = os.path.join(tmpdir, "fb_picker.pt")
    torch.save(state, path)
    return path


def save_swa_inversionnet(tmpdir):
    args = get_parser().parse_args([])
    ctx = DATASET_CTX["curvefault-b"]
    train_loader, _, _ = build_loaders(args, ctx)
    model = InversionNetMini(args.n_shots, args.nz, args.nx)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    swa_model = torch.optim.swa_utils.AveragedModel(model)
    for _ in range(2):
        train_one_epoch(model, train_loader, optimizer, args)
        swa_model.update_parameters(model)
    torch.optim.swa_utils.update_bn(train_loader.dataset.dataset.tensors[0].split(4), swa_model)
    out = Path(tmpdir) / "swa"
    out.mkdir(exist_ok=True)
    torch.save(swa_model,  # truth: weights_only
               out / "swa_full.pt")
    return str(out / "swa_full.pt")


def survey_geometry(args):
    src_x = np.linspace(0.0, (args.nx - 1) * args.dx, args.n_shots)
    rec_x = np.linspace(0.0, (args.nx - 1) * args.dx, args.n_rec)
    return src_x, rec_x


def save_survey_and_wavelet(tmpdir):
    args = get_parser().parse_args(["--dx", "5"])
    ctx = DATASET_CTX[args.dataset]
    src_x, rec_x = survey_geometry(args)
    w = ricker(args.f0, args.dt, args.nt)
    spectrum = np.abs(np.fft.rfft(w))
    freqs = np.fft.rfftfreq(args.nt, d=args.dt)
    velocity = layered_velocity(np.random.default_rng(1), args.nz, args.nx, ctx["label_min"], ctx["label_max"])
    cfl = ctx["label_max"] * args.dt / args.dx * np.sqrt(2.0)
    geometry = {
        "source_x": src_x.tolist(),
        "receiver_x": rec_x,  # truth: weights_only
        "grid_spacing": (args.dx, args.dx),
        "max_offset": float(np.abs(rec_x[None, :] - src_x[:, None]).max()),
        "velocity_dtype": velocity.dtype,  # truth: weights_only
        "shape": velocity.shape,
    }
    wavelet = {
        "samples": torch.from_numpy(w),
        "peak_hz": args.f0,
        "dominant_hz": freqs[np.argmax(spectrum)],  # truth: weights_only
        "nyquist_hz": 0.5 / args.dt,
    }
    payload = {"geometry": geometry, "wavelet": wavelet, "initial_velocity": torch.from_numpy(velocity)}
    payload["fd_stable"] = cfl < 1.0 / math.sqrt(2.0)  # truth: weights_only
    payload["cfl_limit"] = 1.0 / math.sqrt(2.0)
    path = os.path.join(tmpdir, "survey.pt")
    torch.save(payload, path)
    return path


def save_resume_state(tmpdir):
    args = get_parser().parse_args(["--epochs", "1"])
    ctx = DATASET_CTX[args.dataset]
    seed_everything(args.seed)
    train_loader, val_loader, _ = build_loaders(args, ctx)
    _, vel = make_layered_dataset(args, ctx, n=4, seed=7)
    model = InversionNetMini(args.n_shots, args.nz, args.nx)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    global_step = 0
    for x, y in train_loader:
        loss = F.l1_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        global_step += 1
    ckpt = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    ckpt.update(step=global_step, np_rng=np.random.get_state(),  # truth: weights_only
                torch_rng=torch.get_rng_state())
    ckpt["vel_clip"] = np.percentile(vel, [1, 99]).tolist()
    ckpt["eps"] = np.finfo(np.float32).eps  # truth: weights_only
    ckpt["int16_max"] = np.iinfo(np.int16).max
    ckpt["val_mae"] = evaluate(model, val_loader, ctx)["mae"]
    path = os.path.join(tmpdir, f"resume_{global_step:06d}.pt")
    torch.save(ckpt, path)
    return path


def save_lowfreq_extrapolation(tmpdir):
    """Bandwidth extension: predict the <5 Hz band of a trace from its band-limited version."""
    args = get_parser().parse_args(["--nt", "128", "--seed", "3"])
    seed_everything(args.seed)
    rng = np.random.default_rng(args.seed)
    sos_low = signal.butter(4, 5.0, btype="lowpass", fs=1.0 / args.dt, output="sos")
    sos_high = signal.butter(4, 5.0, btype="highpass", fs=1.0 / args.dt, output="sos")
    full = rng.normal(size=(32, args.nt)).astype(np.float32)
    low = signal.sosfiltfilt(sos_low, full, axis=1).astype(np.float32)
    high = signal.sosfiltfilt(sos_high, full, axis=1).astype(np.float32)
    x, y = torch.from_numpy(high[:, None].copy()), torch.from_numpy(low.copy())
    model = TracePicker(channels=4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    val_losses = []
    for _ in range(3):
        loss = F.mse_loss(model(x[:24]), y[:24])
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            val_losses.append(F.mse_loss(model(x[24:]), y[24:]).item())
    snr = 10 * np.log10(np.mean(low ** 2) / np.mean((low - high) ** 2))
    out_dir = Path(tmpdir) / "lowfreq"
    out_dir.mkdir()
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "args": vars(args),
        "cutoff_hz": 5.0,
        "sos_low": sos_low.tolist(),
        "val_losses": [round(v, 6) for v in val_losses],
        "best_epoch": int(np.argmin(val_losses)),
        "input_snr_db": float(snr),
        "rng": {"torch": torch.get_rng_state(), "numpy": rng.bit_generator.state, "python": random.getstate()},
        "n_params": sum(p.numel() for p in model.parameters()),
        "eps": torch.finfo(torch.float32).eps,
        "versions": {"torch": str(torch.__version__), "numpy": np.__version__},
        "output_dir": str(out_dir),
        "host": os.uname().nodename,
    }
    path = out_dir / "lowfreq.pt"
    torch.save(ckpt, path)
    return os.fspath(path)


if __name__ == "__main__":
    a = get_parser().parse_args()
    os.makedirs(a.output_path, exist_ok=True)
    print(save_inversionnet(a.output_path))
