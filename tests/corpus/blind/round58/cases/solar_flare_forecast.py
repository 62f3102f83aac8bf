"""Solar-flare forecasting from SDO/HMI SHARP magnetogram cutouts.

Train script in the style of the SWAN-SF / Bobra & Couvidat pipelines: a small CNN reads the
line-of-sight Bz cutout of an active region, a GRU reads the last hours of SHARP summary
parameters, and a binary head predicts whether a >=M-class flare peaks within the forecast window.
Scores are the usual space-weather ones (TSS, HSS, Brier skill score against climatology).

    python solar_flare_forecast.py --threshold-class M --window-hours 24 --epochs 5
"""
import argparse
import collections
import datetime
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, confusion_matrix, roc_auc_score
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight

SHARP_KEYS = ("USFLUX", "MEANGAM", "MEANGBT", "MEANJZH", "TOTUSJH", "ABSNJZH", "SAVNCPP", "R_VALUE", "AREA_ACR")
GOES_CLASSES = {"A": 1e-8, "B": 1e-7, "C": 1e-6, "M": 1e-5, "X": 1e-4}
Split = collections.namedtuple("Split", ["train", "val", "test"])


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=Path("data/sharp_cea_720s"))
    p.add_argument("--patch", type=int, default=32, help="Bz cutout size after rebinning")
    p.add_argument("--lookback", type=int, default=6, help="hours of SHARP history")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--threshold-class", default="M", choices=sorted(GOES_CLASSES))
    p.add_argument("--window-hours", type=int, default=24)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--harps", type=int, nargs="+", default=[377, 401, 1638, 7115])
    return p


def synth_sharp(n, lookback, patch, seed):
    """Stand-in for the SHARP loader: features, Bz cutouts, peak GOES flux, NOAA numbers, times."""
    rng = np.random.default_rng(seed)
    feats = rng.lognormal(mean=0.0, sigma=1.0, size=(n, lookback, len(SHARP_KEYS))).astype(np.float32)
    bz = rng.normal(scale=200.0, size=(n, 1, patch, patch)).astype(np.float32)
    flux = 10.0 ** rng.uniform(-7.5, -3.8, size=n)
    noaa = rng.integers(11000, 13000, size=n)
    t_obs = np.datetime64("2014-01-01T00:00") + rng.integers(0, 365 * 24 * 4, size=n).astype("timedelta64[h]")
    return {"feats": feats, "bz": bz, "flux": flux, "noaa": noaa, "t_obs": t_obs}


def goes_label(flux, cls):
    return (flux >= GOES_CLASSES[cls]).astype(np.int64)


def goes_class_name(flux):
    for letter in "XMCBA":
        if flux >= GOES_CLASSES[letter]:
            return f"{letter}{flux / GOES_CLASSES[letter]:.1f}"
    return "A0.0"


def chronological_split(t_obs, val_frac=0.15, test_frac=0.15):
    order = np.argsort(t_obs)
    n = len(order)
    n_test, n_val = int(n * test_frac), int(n * val_frac)
    return Split(order[: n - n_val - n_test], order[n - n_val - n_test: n - n_test], order[n - n_test:])


class FlareNet(nn.Module):
    def __init__(self, n_feats=len(SHARP_KEYS), patch=32, hidden=32):
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.gru = nn.GRU(n_feats, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Linear(16 + hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, bz, feats):
        _, h = self.gru(feats)
        return self.head(torch.cat([self.cnn(bz / 1000.0), h[-1]], dim=1)).squeeze(1)


def skill_scores(y_true, prob, thr=0.5):
    """TSS and HSS from the 2x2 contingency table (Bloomfield et al. 2012)."""
    tn, fp, fn, tp = confusion_matrix(y_true, prob >= thr, labels=[0, 1]).ravel()
    tss = tp / (tp + fn + 1e-9) - fp / (fp + tn + 1e-9)
    hss = 2 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn) + 1e-9)
    return {"tss": tss, "hss": hss, "tp": int(tp), "fp": int(fp), "fn": int(fn), "tn": int(tn)}


def scale_features(feats, idx_fit):
    """Log-transform the heavy-tailed SHARP parameters, then standardise on the training rows."""
    logf = np.log1p(feats)
    scaler = StandardScaler().fit(logf[idx_fit].reshape(-1, logf.shape[-1]))
    scaled = (logf - scaler.mean_) / scaler.scale_
    return scaled.astype(np.float32), scaler


def run_epochs(model, data, idx, y, args, pos_weight):
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, dtype=torch.float32))
    history = {"loss": [], "lr": []}
    bz, feats = torch.from_numpy(data["bz"]), torch.from_numpy(data["feats"])
    target = torch.from_numpy(y).float()
    for _ in range(args.epochs):
        model.train()
        perm = idx[np.random.default_rng(args.seed).permutation(len(idx))]
        running = []
        for start in range(0, len(perm), args.batch_size):
            b = torch.from_numpy(perm[start: start + args.batch_size])
            loss = loss_fn(model(bz[b], feats[b]), target[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            running.append(loss.item())
        history["loss"].append(sum(running) / len(running))
        history["lr"].append(opt.param_groups[0]["lr"])
    return opt, history


@torch.no_grad()
def predict(model, data, idx):
    model.eval()
    b = torch.from_numpy(idx)
    return torch.sigmoid(model(torch.from_numpy(data["bz"])[b], torch.from_numpy(data["feats"])[b])).numpy()


def prepare(args, n=120):
    data = synth_sharp(n, args.lookback, args.patch, args.seed)
    y = goes_label(data["flux"], args.threshold_class)
    split = chronological_split(data["t_obs"])
    data["feats"], scaler = scale_features(data["feats"], split.train)
    return data, y, split, scaler


def save_baseline_run(tmpdir):
    args = build_parser().parse_args(["--epochs", "2", "--threshold-class", "C"])
    torch.manual_seed(args.seed)
    data, y, split, scaler = prepare(args)
    weights = compute_class_weight("balanced", classes=np.array([0, 1]), y=y[split.train])
    model = FlareNet(patch=args.patch)
    opt, history = run_epochs(model, data, split.train, y, args, pos_weight=weights[1] / weights[0])
    prob = predict(model, data, split.val)

    best_tss, best_thr = -1.0, 0.5
    for thr in np.linspace(0.05, 0.95, 19):
        s = skill_scores(y[split.val], prob, thr)
        if s["tss"] > best_tss:
            best_tss, best_thr = s["tss"], thr
    climatology = y[split.train].mean()
    bs = brier_score_loss(y[split.val], prob)
    bs_ref = brier_score_loss(y[split.val], np.full_like(prob, climatology))

    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "args": args,  # truth: weights_only
        "epoch": args.epochs,
        "history": history,
        "val_auc": roc_auc_score(y[split.val], prob) if y[split.val].any() else float("nan"),
        "val_tss": best_tss,  # truth: weights_only
        "decision_threshold": best_thr,  # truth: weights_only
        "brier_skill": 1.0 - bs / max(bs_ref, 1e-9),
        "climatology": climatology,  # truth: weights_only
        "sharp_keys": list(SHARP_KEYS),
        "feature_mean": torch.from_numpy(scaler.mean_),
        "feature_scale": scaler.scale_,  # truth: weights_only
        "class_weights": weights.tolist(),
    }
    path = os.path.join(tmpdir, f"flarenet_{args.threshold_class}_{args.window_hours}h.pt")
    torch.save(ckpt, path)
    return path


def save_time_split_cv(tmpdir):
    """Per-year folds (solar-cycle phase leaks otherwise); keep the best fold's weights."""
    args = build_parser().parse_args(["--epochs", "1", "--seed", "11"])
    data, y, _, _ = prepare(args, n=150)
    years = data["t_obs"].astype("datetime64[Y]").astype(int) + 1970
    fold_scores, best = [], None
    for year in sorted(set(years.tolist())):
        test_idx, train_idx = np.where(years == year)[0], np.where(years != year)[0]
        model = FlareNet(patch=args.patch)
        run_epochs(model, data, train_idx, y, args, pos_weight=3.0)
        scores = skill_scores(y[test_idx], predict(model, data, test_idx))
        fold_scores.append(float(scores["tss"]))
        if best is None or scores["hss"] > best[1]["hss"]:
            best = (year, scores, model.state_dict())
    year, scores, state = best
    peak = data["flux"][np.argmax(data["flux"])]
    ckpt = dict(
        state_dict=state,
        held_out_year=year,
        fold_tss=fold_scores,
        mean_tss=sum(fold_scores) / len(fold_scores),
        best_hss=float(scores["hss"]),
        contingency={k: scores[k] for k in ("tp", "fp", "fn", "tn")},
        years_seen=set(years.tolist()),
        active_regions=frozenset(data["noaa"].tolist()),  # truth: weights_only
        forecast_window=datetime.timedelta(hours=args.window_hours),  # truth: weights_only
        issued=datetime.datetime.now(datetime.timezone.utc).isoformat(),
        strongest_event=goes_class_name(peak),
        log_peak_flux=math.log10(peak),
        first_obs=str(data["t_obs"].min()),
        last_obs=data["t_obs"].max().item(),  # truth: weights_only
    )
    path = os.path.join(tmpdir, "flarenet_cv_best.pt")
    torch.save(ckpt, path)
    return path


class CalibratedForecaster:
    """Logistic regression on the last SHARP frame plus an isotonic recalibration of the CNN."""

    def __init__(self, threshold_class="M"):
        self.threshold_class = threshold_class
        self.lr = LogisticRegression(C=0.5, max_iter=500)
        self.iso = IsotonicRegression(out_of_bounds="clip")
        self.fitted = False

    def fit(self, feats_last, prob_cnn, y):
        self.lr.fit(feats_last, y)
        self.iso.fit(prob_cnn, y)
        self.fitted = True
        return self

    def summary(self):
        return {
            "coef": torch.tensor(self.lr.coef_[0], dtype=torch.float32),
            "intercept": float(self.lr.intercept_[0]),
            "classes": self.lr.classes_.tolist(),
            "lr_params": self.lr.get_params(),
        }


def save_calibrated(tmpdir):
    args = build_parser().parse_args(["--epochs", "1", "--threshold-class", "C", "--patch", "16"])
    data, y, split, scaler = prepare(args, n=100)
    model = FlareNet(patch=args.patch)
    run_epochs(model, data, split.train, y, args, pos_weight=2.0)
    fit_idx = np.concatenate([split.train, split.val])
    cal = CalibratedForecaster(args.threshold_class).fit(
        data["feats"][fit_idx, -1], predict(model, data, fit_idx), y[fit_idx])
    ckpt = {"model": model.state_dict(), "threshold_class": cal.threshold_class}
    ckpt.update(cal.summary())
    ckpt["iterations"] = cal.lr.n_iter_[0]  # truth: weights_only
    ckpt["isotonic"] = cal.iso  # truth: weights_only
    ckpt["iso_knots"] = torch.as_tensor(cal.iso.X_thresholds_)
    ckpt["scaler_n_seen"] = int(scaler.n_samples_seen_)
    ckpt["n_features"] = scaler.n_features_in_
    ckpt["data_dir"] = os.fspath(args.data_dir)
    path = os.path.join(tmpdir, "flarenet_calibrated.pt")
    torch.save(ckpt, path)
    return path


def save_inference_bundle(tmpdir):
    """What the operational forecaster loads: weights plus the normalisation it must reapply."""
    args = build_parser().parse_args(["--epochs", "1"])
    data, y, split, scaler = prepare(args, n=80)
    model = FlareNet(patch=args.patch)
    run_epochs(model, data, split.train, y, args, pos_weight=4.0)
    norm = {"mean": scaler.mean_, "scale": scaler.scale_, "log1p": True}
    path = os.path.join(tmpdir, "flarenet_bundle.pt")
    torch.save((model.state_dict(), norm, split),  # truth: weights_only
               path)
    return path


def save_ema_weights(tmpdir):
    """EMA weights from the last run with loadable metadata only (the version that ships)."""
    args = build_parser().parse_args(["--epochs", "2", "--lookback", "4"])
    data, y, split, scaler = prepare(args, n=90)
    model = FlareNet(patch=args.patch)
    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=None)
    t0 = time.time()
    _, history = run_epochs(model, data, split.train, y, args, pos_weight=3.0)
    ema.update_parameters(model)
    prob = predict(ema.module, data, split.test)
    scores = skill_scores(y[split.test], prob)
    hparams = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    per_class_rate = {}
    for letter in ("C", "M", "X"):
        per_class_rate[letter] = float(goes_label(data["flux"], letter).mean())
    ckpt = {
        "ema_state": ema.state_dict(),
        "n_averaged": ema.n_averaged,
        "hparams": hparams,
        "test_tss": float(scores["tss"]),
        "test_hss": round(scores["hss"].item(), 4),
        "contingency": [scores["tp"], scores["fp"], scores["fn"], scores["tn"]],
        "event_rate": per_class_rate,
        "train_seconds": time.time() - t0,
        "final_loss": history["loss"][-1],
        "feature_mean": scaler.mean_.tolist(),
        "feature_scale": torch.tensor(scaler.scale_),
        "bz_shape": torch.Size(data["bz"].shape[1:]),
        "dtype": torch.float32,
        "rng": np.random.default_rng(args.seed).bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "cutout_sum": int(np.prod(data["bz"].shape[2:])),
        "torch_version": str(torch.__version__),
    }
    path = os.path.join(tmpdir, "flarenet_ema.pt")
    torch.save(ckpt, path)
    return path


FACTORIES = {
    "CalibratedForecaster": lambda: CalibratedForecaster("M"),
}
