"""Sepsis early warning from hourly ICU vitals (PhysioNet/CinC 2019 layout).

    python sepsis_early_warning.py --data-dir data/physionet2019 --epochs 20 --hidden 64

Reads one row per patient-hour, forward-fills vitals inside each stay, imputes and scales,
feeds the last `--window` hours to a GRU and predicts SepsisLabel (onset within 6 h).
"""
import argparse
import math
import os
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.preprocessing import StandardScaler

VITALS = ["HR", "O2Sat", "Temp", "SBP", "MAP", "DBP", "Resp", "EtCO2"]
LABS = ["Lactate", "WBC", "Creatinine", "Platelets", "Bilirubin_total"]
DEMOGRAPHICS = ["Age", "Gender", "ICULOS"]
FEATURES = VITALS + LABS + DEMOGRAPHICS
PREDICTION_HORIZON_H = 6
PHYSIO_LIMITS = {"HR": (20, 250), "O2Sat": (50, 100), "Temp": (30, 43), "MAP": (20, 200), "Resp": (4, 60)}


def build_parser():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", type=Path, default=Path("data/physionet2019"))
    p.add_argument("--out-dir", default="runs/sepsis")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--window", type=int, default=8, help="hours of history fed to the GRU")
    p.add_argument("--alert-quantile", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--n-patients", type=int, default=48)
    return p


def simulate_cohort(n_patients, seed):
    """Stand-in for reading the psv files: hourly rows, labs mostly missing."""
    rng = np.random.default_rng(seed)
    rows = []
    for pid in range(n_patients):
        los = int(rng.integers(14, 30))
        onset = int(rng.integers(8, los)) if rng.random() < 0.35 else None
        base = rng.normal(0.0, 1.0, size=len(FEATURES))
        for t in range(los):
            drift = 0.0 if onset is None else max(0.0, (t - onset + PREDICTION_HORIZON_H) / 4.0)
            rec = dict(zip(FEATURES, base + rng.normal(0.0, 0.4, size=len(FEATURES)) + drift))
            for lab in LABS:
                if rng.random() < 0.8:
                    rec[lab] = np.nan
            rec["ICULOS"] = t + 1
            rec["patient_id"] = f"p{pid:06d}"
            rec["SepsisLabel"] = int(onset is not None and t >= onset - PREDICTION_HORIZON_H)
            rows.append(rec)
    return pd.DataFrame(rows)


def clip_physiology(df):
    bounds = {}
    for col, (lo, hi) in PHYSIO_LIMITS.items():
        lo_q, hi_q = df[col].quantile([0.001, 0.999])
        bounds[col] = (max(lo_q, (lo - 80) / 40), min(hi_q, (hi - 80) / 40 + 5))
        df[col] = df[col].clip(*bounds[col])
    return df, bounds


def preprocess(df, imputer=None, scaler=None):
    df = df.sort_values(["patient_id", "ICULOS"]).copy()
    df[FEATURES] = df.groupby("patient_id")[FEATURES].ffill()
    if imputer is None:
        imputer = SimpleImputer(strategy="median").fit(df[FEATURES])
    x = imputer.transform(df[FEATURES])
    if scaler is None:
        scaler = StandardScaler().fit(x)
    df[FEATURES] = scaler.transform(x)
    return df, imputer, scaler


def make_windows(df, window):
    xs, ys, pids = [], [], []
    for pid, stay in df.groupby("patient_id", sort=False):
        feats = stay[FEATURES].to_numpy(dtype=np.float32)
        labels = stay["SepsisLabel"].to_numpy()
        padded = np.vstack([np.zeros((window - 1, feats.shape[1]), np.float32), feats])
        for t in range(len(stay)):
            xs.append(padded[t:t + window])
            ys.append(labels[t])
            pids.append(pid)
    return torch.from_numpy(np.stack(xs)), torch.tensor(ys, dtype=torch.float32), np.array(pids)


class SepsisGRU(nn.Module):
    def __init__(self, n_features, hidden, layers=1, dropout=0.0):
        super().__init__()
        self.gru = nn.GRU(n_features, hidden, num_layers=layers, batch_first=True,
                          dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, 1))

    def forward(self, x):
        out, _ = self.gru(x)
        return self.head(out[:, -1]).squeeze(-1)


def utility_score(y_true, y_prob, threshold):
    """Simplified PhysioNet 2019 utility: reward early alerts, penalise false ones."""
    pred = y_prob >= threshold
    tp = np.sum(pred & (y_true == 1))
    fp = np.sum(pred & (y_true == 0))
    fn = np.sum(~pred & (y_true == 1))
    return (tp - 0.05 * fp - 2.0 * fn) / max(1, np.sum(y_true == 1))


def prepare(args):
    torch.manual_seed(args.seed)
    raw = simulate_cohort(args.n_patients, args.seed)
    raw, bounds = clip_physiology(raw)
    patients = raw["patient_id"].unique()
    n_val = max(4, len(patients) // 5)
    val_ids = set(patients[-n_val:].tolist())
    train_df = raw[~raw["patient_id"].isin(val_ids)]
    val_df = raw[raw["patient_id"].isin(val_ids)]
    missing = train_df[FEATURES].isna().mean()
    train_df, imputer, scaler = preprocess(train_df)
    val_df, _, _ = preprocess(val_df, imputer, scaler)
    return {
        "train": make_windows(train_df, args.window),
        "val": make_windows(val_df, args.window),
        "train_df": train_df,
        "imputer": imputer,
        "scaler": scaler,
        "missing": missing,
        "bounds": bounds,
    }


def train(args, data):
    x, y, _ = data["train"]
    xv, yv, _ = data["val"]
    model = SepsisGRU(len(FEATURES), args.hidden, args.layers, args.dropout)
    pos = float(y.sum())
    pos_weight = torch.tensor([(len(y) - pos) / max(pos, 1.0)])
    criterion = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    history = defaultdict(list)
    best_auroc, best_epoch, best_state = -1.0, -1, None
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x))
        running = 0.0
        for i in range(0, len(x), args.batch_size):
            idx = perm[i:i + args.batch_size]
            loss = criterion(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            running += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            prob = torch.sigmoid(model(xv)).numpy()
        auroc = roc_auc_score(yv.numpy(), prob)
        history["train_loss"].append(running / len(x))
        history["val_auroc"].append(auroc)
        if auroc > best_auroc:
            best_auroc, best_epoch = auroc, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return model, optimizer, history, best_epoch


def predict(model, windows):
    model.eval()
    with torch.no_grad():
        return torch.sigmoid(model(windows)).numpy()


def default_args(**overrides):
    args = build_parser().parse_args([])
    for k, v in overrides.items():
        setattr(args, k, v)
    return args


def save_best_gru(tmpdir):
    args = default_args(out_dir=tmpdir)
    data = prepare(args)
    model, optimizer, history, best_epoch = train(args, data)
    xv, yv, _ = data["val"]
    prob = predict(model, xv)
    threshold = np.quantile(prob, args.alert_quantile)
    train_df, scaler = data["train_df"], data["scaler"]
    ckpt = {
        "epoch": best_epoch,
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "args": args,  # truth: weights_only
        "features": FEATURES,
        "scaler": {
            "mean": torch.from_numpy(scaler.mean_).float(),
            "scale": scaler.scale_.tolist(),
        },
        "best_auroc": max(history["val_auroc"]),
        "best_auprc": average_precision_score(yv.numpy(), prob),
        "alert_threshold": threshold,  # truth: weights_only
        "prevalence": train_df["SepsisLabel"].mean(),  # truth: weights_only
        "n_train_patients": train_df["patient_id"].nunique(),
        "n_train_hours": len(train_df),
    }
    ckpt["history"] = history  # truth: weights_only
    path = os.path.join(args.out_dir, f"gru_best_e{best_epoch}.pt")
    torch.save(ckpt, path)
    return path


def save_preprocessing_bundle(tmpdir):
    args = default_args(out_dir=tmpdir, epochs=1)
    data = prepare(args)
    imputer, scaler, missing = data["imputer"], data["scaler"], data["missing"]
    out_dir = Path(args.out_dir)
    bundle = dict(
        imputer_medians=imputer.statistics_,  # truth: weights_only
        imputer_strategy=imputer.strategy,
        scaler=scaler,  # truth: weights_only
        scaler_mean=scaler.mean_.astype(np.float32).tolist(),
        feature_order=list(FEATURES),
        missing_rate=missing.to_dict(),
        lab_missing_max=float(missing[LABS].max()),
        clip_bounds={col: (float(lo), float(hi)) for col, (lo, hi) in data["bounds"].items()},
        data_dir=args.data_dir,  # truth: weights_only
        export_dir=str(out_dir),
        n_features=scaler.n_features_in_,
    )
    path = str(out_dir / "preprocessing.pt")
    torch.save(bundle, path)
    return path


def expected_calibration_error(y, p, n_bins=10):
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (p >= lo) & (p < hi)
        if mask.any():
            ece += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(ece)


def save_calibrated_scorer(tmpdir):
    args = default_args(out_dir=tmpdir, epochs=1)
    data = prepare(args)
    model, _, _, _ = train(args, data)
    xv, yv, _ = data["val"]
    y = yv.numpy()
    prob = predict(model, xv).astype(np.float64)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(prob, y)
    calibrated = np.clip(iso.predict(prob), 0.0, 1.0)
    ckpt = {"model_state": model.state_dict(), "window": args.window}
    ckpt["calibration"] = {
        "x_thresholds": torch.as_tensor(iso.X_thresholds_),
        "y_thresholds": iso.y_thresholds_,  # truth: weights_only
        "increasing": iso.increasing_,
        "brier_raw": brier_score_loss(y, prob),
        "brier_calibrated": brier_score_loss(y, calibrated),
        "ece": expected_calibration_error(y, calibrated),
    }
    ckpt["calibrated_at"] = datetime.now()  # truth: weights_only
    ckpt["calibrated_unix"] = time.time()
    path = os.path.join(tmpdir, "gru_calibrated.pt")
    torch.save(ckpt, path)
    return path


def alert_lead_times(prob, pids, y, threshold):
    """Hours between the first alert and the first positive label, per septic stay."""
    leads = []
    for pid in np.unique(pids):
        m = pids == pid
        yy, pp = y[m], prob[m]
        if yy.max() == 0:
            continue
        first_pos = int(np.argmax(yy == 1))
        alerts = np.flatnonzero(pp >= threshold)
        if len(alerts):
            leads.append(first_pos - int(alerts[0]) + PREDICTION_HORIZON_H)
    return np.asarray(leads if leads else [0], dtype=np.float64)


def save_alert_policy(tmpdir):
    args = default_args(out_dir=tmpdir, epochs=1)
    data = prepare(args)
    model, _, _, _ = train(args, data)
    xv, yv, pids = data["val"]
    y = yv.numpy()
    prob = predict(model, xv)
    threshold = float(np.quantile(prob, args.alert_quantile))
    leads = alert_lead_times(prob, pids, y, threshold)
    patient_days = len(y) / 24.0
    n_alerts = int((prob >= threshold).sum())
    policy = {
        "threshold": threshold,
        "horizon": timedelta(hours=PREDICTION_HORIZON_H),  # truth: weights_only
        "horizon_hours": PREDICTION_HORIZON_H,
        "suppress_after_alert_h": 4,
        "alerts_per_patient_day": n_alerts / patient_days,
        "lead_time_median_h": float(np.median(leads)),
        "lead_time_p90_h": float(np.percentile(leads, 90)),
        "utility": utility_score(y, prob, threshold),  # truth: weights_only
        "utility_rounded": round(float(utility_score(y, prob, threshold)), 4),
    }
    ckpt = {
        "model_state": model.state_dict(),
        "policy": policy,
        "torch_version": torch.__version__,  # truth: weights_only
        "numpy_version": np.__version__,
        "created": datetime.now().isoformat(timespec="seconds"),
    }
    path = os.path.join(tmpdir, "alert_policy.pt")
    torch.save(ckpt, path)
    return path


def save_full_model(tmpdir):
    """Quick debugging dump used by the bedside dashboard prototype."""
    args = default_args(out_dir=tmpdir, epochs=1)
    model, _, _, _ = train(args, prepare(args))
    path = os.path.join(tmpdir, "gru_full.pt")
    torch.save(model, path)  # truth: weights_only
    return path


def save_export_weights(tmpdir):
    args = default_args(out_dir=tmpdir, epochs=1, hidden=16)
    data = prepare(args)
    model, _, history, best_epoch = train(args, data)
    xv, yv, _ = data["val"]
    prob = predict(model, xv)
    export = {
        "state_dict": model.state_dict(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "feature_names": tuple(FEATURES),
        "val_auroc": float(roc_auc_score(yv.numpy(), prob)),
        "val_prevalence": yv.mean().item(),
        "train_loss_last": history["train_loss"][-1],
        "log_odds_bias": math.log(max(1e-6, float(yv.mean())) / max(1e-6, 1.0 - float(yv.mean()))),
        "epochs_trained": best_epoch + 1,
        "dtype": torch.float32,
        "input_shape": torch.Size([args.window, len(FEATURES)]),
    }
    path = os.path.join(tmpdir, "export.pt")
    torch.save(export, path)
    return path


def main(argv=None):
    args = build_parser().parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    data = prepare(args)
    model, optimizer, history, best_epoch = train(args, data)
    print(f"best epoch {best_epoch}: val AUROC {max(history['val_auroc']):.3f}")
    torch.save({"model_state": model.state_dict(), "epoch": best_epoch},
               os.path.join(args.out_dir, "last.pt"))


FACTORIES = {"SepsisGRU": lambda: SepsisGRU(len(FEATURES), 32)}

if __name__ == "__main__":
    main()
