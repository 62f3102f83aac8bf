"""Remote photoplethysmography (rPPG): heart rate from face video.

Classical baselines (POS, CHROM on mean-RGB traces of the face ROI) and a small PhysNet-style
3D CNN trained with a negative-Pearson loss.  HR is read off the Welch spectrum of the
band-passed pulse signal inside [0.7, 3.0] Hz (42-180 bpm).  Clips are synthesised here so
that the pipeline runs end to end; on UBFC-rPPG / PURE the loaders return the same arrays.
"""
import dataclasses
import math
import os
import statistics
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.signal
import scipy.stats
import torch
import torch.nn as nn
from sklearn.model_selection import GroupKFold

POS_P = np.array([[0.0, 1.0, -1.0], [-2.0, 1.0, 1.0]])


@dataclass
class PreprocConfig:
    fs: float = 30.0
    window_s: float = 6.0
    stride_s: float = 2.0
    low_hz: float = 0.7
    high_hz: float = 3.0
    order: int = 3

    @property
    def window(self):
        return int(round(self.window_s * self.fs))


@dataclass
class TrainConfig:
    model: str = "physnet"
    img_size: int = 8
    base_ch: int = 8
    lr: float = 1e-3
    epochs: int = 2
    batch_size: int = 4
    ema_decay: float = 0.99
    seed: int = 0
    subjects: tuple = ("s01", "s02", "s03", "s04", "s05", "s06")
    clips_per_subject: int = 2
    hr_range: tuple = (40, 180)


class EvalResult(NamedTuple):
    mae: float = 0.0
    rmse: float = 0.0
    pearson: float = 0.0
    n_clips: int = 0


# ----------------------------------------------------------------------------- signal helpers

def synth_clip(rng, hr_bpm, n_frames, fs, size):
    t = np.arange(n_frames) / fs
    pulse = np.sin(2 * np.pi * hr_bpm / 60.0 * t)
    base = rng.uniform(0.3, 0.7, size=3)
    video = base[None, :, None, None] + 0.02 * rng.standard_normal((n_frames, 3, size, size))
    video[:, 1] += 0.01 * pulse[:, None, None]        # green carries most of the BVP
    video[:, 0] += 0.004 * pulse[:, None, None]
    return video.astype(np.float32), pulse.astype(np.float32)


def rgb_traces(video):
    return video.mean(axis=(2, 3))                     # (T, 3)


def pos_pulse(rgb, fs, win_s=1.6):
    """Wang et al. 2017, plane-orthogonal-to-skin."""
    n, w = len(rgb), int(win_s * fs)
    h = np.zeros(n)
    for s in range(0, n - w + 1):
        c = rgb[s:s + w] / rgb[s:s + w].mean(0)
        proj = c @ POS_P.T
        p = proj[:, 0] + proj[:, 0].std() / (proj[:, 1].std() + 1e-9) * proj[:, 1]
        h[s:s + w] += p - p.mean()
    return h


def bandpass_coeffs(pcfg):
    return scipy.signal.butter(pcfg.order, [pcfg.low_hz, pcfg.high_hz], btype="bandpass", fs=pcfg.fs)


def bandpass_sos(pcfg):
    return scipy.signal.butter(pcfg.order, [pcfg.low_hz, pcfg.high_hz], btype="bandpass",
                               fs=pcfg.fs, output="sos")


def psd_hr(x, pcfg):
    f, pxx = scipy.signal.welch(x, fs=pcfg.fs, nperseg=min(len(x), 256), nfft=2048)
    band = (f >= pcfg.low_hz) & (f <= pcfg.high_hz)
    return f[band][np.argmax(pxx[band])] * 60.0


def snr_db(x, pcfg, hr_bpm):
    f, pxx = scipy.signal.welch(x, fs=pcfg.fs, nperseg=min(len(x), 256), nfft=2048)
    f0 = hr_bpm / 60.0
    sig = ((np.abs(f - f0) < 0.1) | (np.abs(f - 2 * f0) < 0.2)).astype(float)
    band = (f >= pcfg.low_hz) & (f <= pcfg.high_hz)
    return 10.0 * math.log10(pxx[band & (sig > 0)].sum() / pxx[band & (sig == 0)].sum())


def hr_metrics(pred, gt):
    err = np.asarray(pred) - np.asarray(gt)
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err ** 2))),
        "mape": float(np.mean(np.abs(err) / np.asarray(gt)) * 100.0),
    }


def clip_table(cfg, pcfg):
    rng = np.random.default_rng(cfg.seed)
    rows, videos, pulses = [], [], []
    for subject in cfg.subjects:
        for k in range(cfg.clips_per_subject):
            hr = rng.uniform(55, 120)
            v, p = synth_clip(rng, hr, pcfg.window, pcfg.fs, cfg.img_size)
            rows.append({"subject": subject, "clip": k, "hr": hr})
            videos.append(v)
            pulses.append(p)
    return pd.DataFrame(rows), np.stack(videos), np.stack(pulses)


# ----------------------------------------------------------------------------- model

class NegPearsonLoss(nn.Module):
    def forward(self, pred, target):
        pred = pred - pred.mean(-1, keepdim=True)
        target = target - target.mean(-1, keepdim=True)
        r = (pred * target).sum(-1) / (pred.norm(dim=-1) * target.norm(dim=-1) + 1e-8)
        return (1 - r).mean()


class PhysNetLite(nn.Module):
    def __init__(self, base_ch=8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv3d(3, base_ch, (1, 3, 3), padding=(0, 1, 1)),
                                  nn.BatchNorm3d(base_ch), nn.ReLU())
        self.temporal = nn.Sequential(nn.Conv3d(base_ch, base_ch, (3, 3, 3), padding=1), nn.ReLU(),
                                      nn.Conv3d(base_ch, base_ch, (3, 1, 1), padding=(1, 0, 0)), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool3d((None, 1, 1))
        self.out = nn.Conv3d(base_ch, 1, 1)

    def forward(self, video):                     # (B, T, 3, H, W)
        x = video.permute(0, 2, 1, 3, 4)
        x = self.out(self.pool(self.temporal(self.stem(x))))
        return x.flatten(1)                       # (B, T)


class RPPGTrainer:
    def __init__(self, cfg=None, pcfg=None):
        self.cfg = cfg or TrainConfig()
        self.pcfg = pcfg or PreprocConfig()
        torch.manual_seed(self.cfg.seed)
        self.table, videos, pulses = clip_table(self.cfg, self.pcfg)
        self.videos = torch.from_numpy(videos)
        self.pulses = torch.from_numpy(pulses)
        n_train = int(0.67 * len(self.table))
        self.train_idx, self.val_idx = np.arange(n_train), np.arange(n_train, len(self.table))
        self.model = PhysNetLite(self.cfg.base_ch)
        self.criterion = NegPearsonLoss()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr)
        self.ema = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.history = {"loss": [], "val_mae": [], "val_rmse": []}
        self.epoch = 0
        self.num_updates = 0

    def _update_ema(self):
        d = self.cfg.ema_decay
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                self.ema[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.ema[k].copy_(v)
        self.num_updates += 1

    def train_epoch(self):
        self.model.train()
        losses, norms = [], []
        order = np.random.default_rng(self.epoch).permutation(self.train_idx)
        for s in range(0, len(order), self.cfg.batch_size):
            idx = torch.as_tensor(order[s:s + self.cfg.batch_size])
            loss = self.criterion(self.model(self.videos[idx]), self.pulses[idx])
            self.optimizer.zero_grad()
            loss.backward()
            norms.append(float(nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)))
            self.optimizer.step()
            self._update_ema()
            losses.append(loss.item())
        return np.mean(losses), max(norms)

    @torch.no_grad()
    def evaluate(self):
        self.model.eval()
        sos = bandpass_sos(self.pcfg)
        pred = self.model(self.videos[self.val_idx]).numpy()
        hr_pred = np.array([psd_hr(scipy.signal.sosfiltfilt(sos, p), self.pcfg) for p in pred])
        hr_gt = self.table["hr"].to_numpy()[self.val_idx]
        return hr_pred, hr_gt

    def fit(self):
        for _ in range(self.cfg.epochs):
            loss, _ = self.train_epoch()
            hr_pred, hr_gt = self.evaluate()
            err = hr_pred - hr_gt
            self.history["loss"].append(loss)
            self.history["val_mae"].append(np.abs(err).mean())
            self.history["val_rmse"].append(np.sqrt((err ** 2).mean()))
            self.epoch += 1
        return self


# ----------------------------------------------------------------------------- checkpoints

def save_physnet_checkpoint(tmpdir):
    cfg, pcfg = TrainConfig(epochs=2), PreprocConfig()
    trainer = RPPGTrainer(cfg, pcfg).fit()
    hr_pred, hr_gt = trainer.evaluate()
    r, p = scipy.stats.pearsonr(hr_pred, hr_gt)
    b, a = bandpass_coeffs(pcfg)
    ckpt = {
        "epoch": trainer.epoch,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "train_cfg": asdict(cfg),
        "preproc": pcfg,  # truth: weights_only
        "fs": pcfg.fs,
        "window": pcfg.window,
        "bandpass": (b, a),  # truth: weights_only
        "sos": torch.from_numpy(bandpass_sos(pcfg)),
        "metrics": hr_metrics(hr_pred, hr_gt),
        "pearson_r": r,  # truth: weights_only
        "pearson_p": float(p),
    }
    path = os.path.join(tmpdir, "physnet_ubfc.pth")
    torch.save(ckpt, path)
    return path


def save_pos_baseline(tmpdir):
    cfg, pcfg = TrainConfig(), PreprocConfig(window_s=12.0)
    table, videos, _ = clip_table(cfg, pcfg)
    sos = bandpass_sos(pcfg)
    hr_est, hr_rounded, snrs = [], [], []
    for video in videos:
        pulse = scipy.signal.sosfiltfilt(sos, pos_pulse(rgb_traces(video), pcfg.fs))
        hr = psd_hr(pulse, pcfg)
        hr_est.append(hr)
        hr_rounded.append(round(float(hr), 1))
        snrs.append(snr_db(pulse, pcfg, hr))
    result = {"method": "POS", "projection": POS_P}  # truth: weights_only
    result["hr_bpm"] = hr_est  # truth: weights_only
    result["hr_bpm_rounded"] = hr_rounded
    result["snr_db"] = snrs
    result["median_snr_db"] = statistics.median(snrs)
    result["gt_bpm"] = table["hr"].round(1).tolist()
    result["metrics"] = hr_metrics(hr_est, table["hr"].to_numpy())
    result["mean_rgb"] = rgb_traces(videos[0]).mean(0).tolist()
    result["preproc"] = asdict(pcfg)
    path = os.path.join(tmpdir, "pos_baseline.pt")
    torch.save(result, path)
    return path


def subject_folds(table, n_splits=3):
    gkf = GroupKFold(n_splits=n_splits)
    return list(gkf.split(table, groups=table["subject"]))


def save_subject_split(tmpdir):
    cfg, pcfg = TrainConfig(clips_per_subject=3), PreprocConfig(window_s=4.0)
    table, _, _ = clip_table(cfg, pcfg)
    folds = subject_folds(table)
    fold = 0
    train_idx, test_idx = folds[fold]
    train_df, test_df = table.iloc[train_idx], table.iloc[test_idx]
    test_ids = [str(s) for s in test_df["subject"]]
    split = {
        "fold": fold,
        "n_folds": len(folds),
        "train_subjects": sorted(train_df["subject"].unique()),
        "test_subjects": list(np.unique(test_ids)),  # truth: weights_only
        "clips_per_subject": table.groupby("subject").size().to_dict(),
        "hr_mean_by_subject": table.groupby("subject")["hr"].mean().round(1).to_dict(),
        "hr_std": float(test_df["hr"].std()),
        "hr_range": (float(table["hr"].min()), float(table["hr"].max())),
        "fold_indices": [te.tolist() for _, te in folds],
        "columns": list(table.columns),
    }
    path = os.path.join(tmpdir, f"split_fold{fold}.pt")
    torch.save(split, path)
    return path


def save_training_curves(tmpdir):
    trainer = RPPGTrainer(TrainConfig(epochs=3)).fit()
    hr_pred, hr_gt = trainer.evaluate()
    rmse = np.sqrt(np.mean((hr_pred - hr_gt) ** 2))
    curves = dict(
        loss=[float(x) for x in trainer.history["loss"]],
        val_mae=trainer.history["val_mae"],  # truth: weights_only
        best_mae=min(trainer.history["val_mae"]),  # truth: weights_only
        best_epoch=int(np.argmin(trainer.history["val_mae"])),
        val_rmse=round(rmse, 3),  # truth: weights_only
        val_rmse_py=round(float(rmse), 3),
        rmse_spread=statistics.stdev(trainer.history["val_rmse"]),
        epochs=trainer.epoch,
    )
    path = os.path.join(tmpdir, "curves.pt")
    torch.save(curves, path)
    return path


def save_eval_result(tmpdir):
    trainer = RPPGTrainer(TrainConfig(epochs=1)).fit()
    m = hr_metrics(*trainer.evaluate())
    result = EvalResult(m["mae"], m["rmse"], 0.0, len(trainer.val_idx))
    path = os.path.join(tmpdir, "eval_result.pt")
    torch.save(result, path)  # truth: weights_only
    return path


def save_ema_weights(tmpdir):
    cfg = TrainConfig(epochs=1, ema_decay=0.95)
    trainer = RPPGTrainer(cfg).fit()
    mean_loss, max_norm = trainer.train_epoch()
    state = {"ema": trainer.ema, "decay": cfg.ema_decay}
    state.update(
        num_updates=trainer.num_updates,
        last_loss=float(mean_loss),
        max_grad_norm=max_norm,
        hr_range=cfg.hr_range,
        subjects=list(cfg.subjects),
        torch_rng=torch.get_rng_state(),
        np_rng=np.random.default_rng(cfg.seed).bit_generator.state,
        field_names=[f.name for f in dataclasses.fields(PreprocConfig)],
    )
    path = os.path.join(tmpdir, "ema.pt")
    torch.save(state, path)
    return path
