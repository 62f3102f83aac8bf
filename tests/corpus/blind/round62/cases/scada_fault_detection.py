"""Wind-turbine fault detection from 10-minute SCADA records.

Two models share the preprocessing: a 1D-convolutional autoencoder trained on healthy
windows only (anomaly score = reconstruction error) and a supervised classifier over the
turbine status codes.  Usage:

    python scada_fault_detection.py --task autoencoder --out runs/ae
    python scada_fault_detection.py --task classifier --window 36
"""
import argparse
import datetime
import os
import random
import time
from collections import defaultdict

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score, classification_report
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.utils.class_weight import compute_class_weight

SENSORS = ["wind_speed", "rotor_rpm", "gen_power", "pitch_angle",
           "gearbox_temp", "bearing_temp", "ambient_temp", "nacelle_temp"]
STATUS = {0: "normal", 1: "pitch_fault", 2: "gearbox_overheat", 3: "generator_fault"}
RATED_POWER_KW = 2050.0
SAMPLE_PERIOD = datetime.timedelta(minutes=10)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--task", choices=["autoencoder", "classifier"], default="autoencoder")
    p.add_argument("--out", default="runs/scada")
    p.add_argument("--turbines", type=int, default=4)
    p.add_argument("--days", type=int, default=3)
    p.add_argument("--window", type=int, default=24, help="10-minute steps per window")
    p.add_argument("--stride", type=int, default=6)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--latent", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--quantile", type=float, default=99.5)
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args(argv)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def synth_scada(n_turbines, days, seed):
    """Stand-in for the operator's export: one row per turbine and 10-minute interval."""
    rng = np.random.default_rng(seed)
    steps = days * 144
    frames = []
    for tid in range(1, n_turbines + 1):
        ts = pd.date_range("2023-01-01", periods=steps, freq="10min")
        ws = np.clip(rng.weibull(2.0, steps) * 8.0, 0, 25)
        power = RATED_POWER_KW / (1 + np.exp(-(ws - 9.0)))
        status = np.zeros(steps, dtype=int)
        for code in (1, 2, 3):
            start = rng.integers(0, steps - 20)
            status[start:start + 12] = code
        frames.append(pd.DataFrame({
            "timestamp": ts, "turbine_id": tid, "wind_speed": ws,
            "rotor_rpm": ws * 1.6 + rng.normal(0, 0.3, steps),
            "gen_power": power + rng.normal(0, 25, steps) - 300 * (status == 3),
            "pitch_angle": np.where(ws > 12, ws - 12, 0) + 4 * (status == 1),
            "gearbox_temp": 55 + 0.01 * power + 15 * (status == 2) + rng.normal(0, 1, steps),
            "bearing_temp": 40 + 0.004 * power + rng.normal(0, 1, steps),
            "ambient_temp": 5 + rng.normal(0, 2, steps),
            "nacelle_temp": 18 + rng.normal(0, 1.5, steps),
            "status_code": status,
        }))
    return pd.concat(frames, ignore_index=True)


def clean(df):
    df = df.sort_values(["turbine_id", "timestamp"]).reset_index(drop=True)
    df = df[(df.wind_speed >= 0) & (df.gen_power > -100)]
    df["gen_power"] = df["gen_power"].clip(upper=1.05 * RATED_POWER_KW)
    return df


def add_features(df):
    g = df.groupby("turbine_id")
    df["gearbox_delta"] = df["gearbox_temp"] - df["ambient_temp"]
    df["power_rolling"] = g["gen_power"].transform(lambda s: s.rolling(6, min_periods=1).mean())
    return df, SENSORS + ["gearbox_delta", "power_rolling"]


def make_windows(df, cols, scaler, window, stride):
    xs, ys, owners = [], [], []
    for tid, g in df.groupby("turbine_id"):
        values = scaler.transform(g[cols].to_numpy())
        labels = g["status_code"].to_numpy()
        for start in range(0, len(g) - window + 1, stride):
            xs.append(values[start:start + window].T)
            ys.append(labels[start:start + window].max())
            owners.append(tid)
    return np.stack(xs).astype(np.float32), np.asarray(ys), owners


class ConvAutoencoder(nn.Module):
    def __init__(self, n_features, hidden=32, latent=8):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv1d(n_features, hidden, 5, padding=2), nn.ReLU(),
                                     nn.Conv1d(hidden, latent, 3, padding=1))
        self.decoder = nn.Sequential(nn.Conv1d(latent, hidden, 3, padding=1), nn.ReLU(),
                                     nn.Conv1d(hidden, n_features, 5, padding=2))

    def forward(self, x):
        return self.decoder(self.encoder(x))


class FaultClassifier(nn.Module):
    def __init__(self, n_features, n_classes, hidden=32):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(n_features, hidden, 5, padding=2), nn.ReLU(),
                                  nn.AdaptiveAvgPool1d(1))
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):
        return self.head(self.conv(x).squeeze(-1))


def prepare(args):
    seed_everything(args.seed)
    df, cols = add_features(clean(synth_scada(args.turbines, args.days, args.seed)))
    healthy = df[df.status_code == 0]
    scaler = StandardScaler().fit(healthy[cols].to_numpy())
    return df, cols, scaler


def train_autoencoder(args, x):
    model = ConvAutoencoder(x.shape[1], args.hidden, args.latent)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    data = torch.from_numpy(x)
    history = defaultdict(list)
    for epoch in range(args.epochs):
        perm = torch.randperm(len(data))
        losses = []
        for i in range(0, len(data), args.batch_size):
            batch = data[perm[i:i + args.batch_size]]
            loss = F.mse_loss(model(batch), batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        history["loss"].append(np.mean(losses))
        history["lr"].append(opt.param_groups[0]["lr"])
    return model, opt, history


@torch.no_grad()
def reconstruction_errors(model, x):
    model.eval()
    t = torch.from_numpy(x)
    return ((model(t) - t) ** 2).mean(dim=(1, 2)).numpy()


def save_autoencoder_checkpoint(tmpdir):
    args = parse_args(["--task", "autoencoder", "--out", tmpdir])
    df, cols, scaler = prepare(args)
    x, y, _ = make_windows(df, cols, scaler, args.window, args.stride)
    model, opt, history = train_autoencoder(args, x[y == 0])
    errors = reconstruction_errors(model, x)
    threshold = np.percentile(errors[y == 0], args.quantile)
    flagged = errors > threshold
    ckpt = {
        "model_state": model.state_dict(),
        "optimizer_state": opt.state_dict(),
        "epoch": args.epochs,
        "args": args,  # truth: weights_only
        "hparams": vars(args),
        "feature_cols": list(cols),
        "feature_mean": scaler.mean_,  # truth: weights_only
        "feature_scale": torch.from_numpy(scaler.scale_).float(),
        "threshold": threshold,  # truth: weights_only
        "final_loss": history["loss"][-1].item(),
        "lr_trace": list(history["lr"]),
        "val_auc": roc_auc_score(y > 0, errors),
        "n_windows": int(x.shape[0]),
        "window_shape": x.shape[1:],
    }
    ckpt["flag_rate"] = float(flagged.mean())
    ckpt["flagged_faulty"] = int(flagged[y > 0].sum())
    path = os.path.join(tmpdir, "ae_last.pt")
    torch.save(ckpt, path)
    return path


def class_report(y_true, y_pred, le):
    names = [STATUS[c] for c in le.classes_.tolist()]
    report = classification_report(le.inverse_transform(y_true), le.inverse_transform(y_pred),
                                   output_dict=True, zero_division=0)
    cm = confusion_matrix(y_true, y_pred, labels=list(range(len(names))))
    return report, cm, names


def fit_classifier(args, x, y_enc, weights):
    model = FaultClassifier(x.shape[1], len(weights), args.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    crit = nn.CrossEntropyLoss(weight=torch.as_tensor(weights, dtype=torch.float32))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y_enc).long()
    best = {"f1": -1.0, "epoch": -1}
    scores = []
    for epoch in range(args.epochs):
        model.train()
        for i in range(0, len(xt), args.batch_size):
            loss = crit(model(xt[i:i + args.batch_size]), yt[i:i + args.batch_size])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            pred = model(xt).argmax(1).numpy()
        f1 = f1_score(y_enc, pred, average="macro")
        scores.append(f1)
        if f1 > best["f1"]:
            best = {"f1": f1, "epoch": epoch}
    return model, opt, sched, pred, best, scores


def save_fault_classifier(tmpdir):
    args = parse_args(["--task", "classifier", "--window", "12"])
    df, cols, scaler = prepare(args)
    x, y, owners = make_windows(df, cols, scaler, args.window, args.stride)
    le = LabelEncoder().fit(y)
    y_enc = le.transform(y)
    weights = compute_class_weight("balanced", classes=np.unique(y_enc), y=y_enc)
    model, opt, sched, pred, best, scores = fit_classifier(args, x, y_enc, weights)
    report, cm, names = class_report(y_enc, pred, le)
    per_turbine = {}
    for tid in sorted(set(owners)):
        mask = np.asarray(owners) == tid
        per_turbine[f"WT{tid:02d}"] = round(f1_score(y_enc[mask], pred[mask], average="macro"), 4)
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "label_encoder": le,  # truth: weights_only
        "classes": le.classes_.tolist(),
        "class_names": names,
        "class_weights": weights,  # truth: weights_only
        "class_weights_t": torch.tensor(weights, dtype=torch.float32),
        "report": report,
        "macro_f1": scores[-1],
        "best": best,
        "per_turbine_f1": per_turbine,
        "confusion": cm,  # truth: weights_only
        "confusion_list": cm.tolist(),
        "sample_period_s": SAMPLE_PERIOD.total_seconds(),
    }
    state.update(window=args.window, stride=args.stride, sensors=tuple(cols))
    path = os.path.join(tmpdir, "fault_clf.pt")
    torch.save(state, path)
    return path


def power_curve(df, bin_width=0.5):
    """Binned IEC-style power curve from healthy records."""
    healthy = df[df.status_code == 0]
    edges = np.arange(0.0, 25.0 + bin_width, bin_width)
    idx = np.digitize(healthy.wind_speed.to_numpy(), edges) - 1
    curve = np.zeros(len(edges) - 1)
    counts = np.bincount(idx, minlength=len(edges) - 1)[: len(edges) - 1]
    for b in range(len(edges) - 1):
        if counts[b]:
            curve[b] = healthy.gen_power.to_numpy()[idx == b].mean()
    return edges, curve, counts


def save_power_curve_reference(tmpdir):
    df = clean(synth_scada(3, 2, seed=11))
    edges, curve, counts = power_curve(df)
    rated = edges[np.argmax(curve >= 0.95 * curve.max())]
    cut_in = float(edges[np.argmax(curve > 0.02 * RATED_POWER_KW)])
    summary = {
        "rated_speed": rated,  # truth: weights_only
        "cut_in_speed": cut_in,
        "max_power": float(curve.max()),
        "bins_used": int((counts > 0).sum()),
        "capacity_factor": float(df.gen_power.mean()) / RATED_POWER_KW,
        "availability": float((df.status_code == 0).mean()),
    }
    ref = {
        "edges": torch.from_numpy(edges),
        "curve": torch.tensor(curve, dtype=torch.float32),
        "counts": counts.tolist(),
        "summary": summary,
        "period": (df.timestamp.min(), df.timestamp.max()),  # truth: weights_only
        "period_iso": [df.timestamp.min().isoformat(), df.timestamp.max().isoformat()],
        "turbines": sorted(df.turbine_id.unique().tolist()),
        "created_unix": time.time(),
    }
    path = os.path.join(tmpdir, "power_curve.pt")
    torch.save(ref, path)
    return path


def save_resume_state(tmpdir):
    args = parse_args(["--epochs", "1", "--days", "2"])
    df, cols, scaler = prepare(args)
    x, y, _ = make_windows(df, cols, scaler, args.window, args.stride)
    model, opt, history = train_autoencoder(args, x[y == 0])
    resume = {
        "epoch": args.epochs,
        "global_step": len(history["loss"]) * ((len(x) + args.batch_size - 1) // args.batch_size),
        "model": model.state_dict(),
        "optim": opt.state_dict(),
        "history": history,  # truth: weights_only
        "history_plain": {k: [float(v) for v in vals] for k, vals in history.items()},
        "rng": {
            "python": random.getstate(),
            "numpy": np.random.get_state(),  # truth: weights_only
            "torch": torch.get_rng_state(),
        },
        "scaler": {"mean": scaler.mean_.tolist(), "var": scaler.var_.tolist(),
                   "n_seen": int(scaler.n_samples_seen_)},
    }
    path = os.path.join(tmpdir, "resume.pt")
    torch.save(resume, path)
    return path


def save_deploy_bundle(tmpdir):
    """The edge box loads the whole module: no class definitions on the device side."""
    args = parse_args(["--epochs", "1", "--days", "2"])
    df, cols, scaler = prepare(args)
    x, y, _ = make_windows(df, cols, scaler, args.window, args.stride)
    model, _, _ = train_autoencoder(args, x[y == 0])
    model.eval()
    path = os.path.join(tmpdir, "ae_deploy.pt")
    torch.save(model, path)  # truth: weights_only
    return path


def save_weights_for_fleet(tmpdir):
    args = parse_args(["--epochs", "1", "--days", "2", "--hidden", "16"])
    df, cols, scaler = prepare(args)
    x, y, _ = make_windows(df, cols, scaler, args.window, args.stride)
    model, _, history = train_autoencoder(args, x[y == 0])
    errors = reconstruction_errors(model, x)
    meta = dict(
        sensors=list(cols),
        scaler_mean=scaler.mean_.astype(np.float32).tolist(),
        scaler_scale=torch.as_tensor(scaler.scale_, dtype=torch.float32),
        threshold=float(np.quantile(errors[y == 0], 0.995)),
        median_error=np.median(errors).item(),
        window=args.window,
        trained_at=datetime.datetime(2023, 1, 3).isoformat(),
        torch_version=str(torch.__version__),
        numpy_version=np.__version__,
        dtype=torch.float32,
    )
    path = os.path.join(tmpdir, "fleet_weights.pt")
    torch.save({"state_dict": model.state_dict(), "meta": meta}, path)
    return path


FACTORIES = {
    "ConvAutoencoder": lambda: ConvAutoencoder(len(SENSORS) + 2, hidden=16, latent=4),
    "FaultClassifier": lambda: FaultClassifier(len(SENSORS) + 2, len(STATUS)),
}


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.task == "autoencoder":
        print(save_autoencoder_checkpoint(args.out))
    else:
        print(save_fault_classifier(args.out))


if __name__ == "__main__":
    main()
