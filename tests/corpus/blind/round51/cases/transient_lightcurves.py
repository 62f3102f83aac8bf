"""Photometric transient classification from multi-band light curves (PLAsTiCC / ELAsTiCC style).

train_transients.py --epochs 30 --batch-size 64 --out runs/gru

Light curves arrive as a long table (object_id, mjd, passband, flux, flux_err, detected) plus
per-object host metadata; every object becomes a padded sequence of (flux, flux_err, dt, band one-hot)
and a GRU classifies it into one of the transient classes.
"""
import argparse
import collections
import datetime
import os
import random
import statistics
import time

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from scipy import signal, stats
from sklearn.metrics import (classification_report, confusion_matrix, f1_score, log_loss,
                             top_k_accuracy_score)
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.utils.class_weight import compute_class_weight

PASSBANDS = ("u", "g", "r", "i", "z", "y")
CLASSES = ["SNIa", "SNII", "SNIbc", "SLSN-I", "TDE", "AGN"]
META_FEATURES = ["hostgal_photoz", "hostgal_photoz_err", "mwebv"]
MJD_ZERO = datetime.datetime(1858, 11, 17)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n-objects", type=int, default=48)
    p.add_argument("--max-len", type=int, default=32)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--scale-lr", action="store_true")
    p.add_argument("--out", default="runs/gru")
    return p


def simulate_light_curves(n_objects, seed=0, obs_per_band=6):
    """A toy survey: Gaussian-in-time bursts per class, AGN as red noise."""
    rng = np.random.default_rng(seed)
    rows, meta = [], []
    for oid in range(n_objects):
        label = CLASSES[oid % len(CLASSES)]
        t0 = 60000.0 + rng.uniform(0, 300)
        width = {"SNIa": 18.0, "SNII": 45.0, "SNIbc": 14.0, "SLSN-I": 80.0, "TDE": 60.0, "AGN": 200.0}[label]
        z = rng.uniform(0.05, 0.9)
        for b, band in enumerate(PASSBANDS):
            mjd = np.sort(t0 + rng.uniform(-60, 120, size=obs_per_band))
            flux = 100.0 * np.exp(-0.5 * ((mjd - t0) / width) ** 2) * (1.0 + 0.1 * b)
            if label == "AGN":
                flux = 20.0 + np.cumsum(rng.normal(0, 4, size=obs_per_band))
            err = rng.uniform(2.0, 6.0, size=obs_per_band)
            flux = flux + rng.normal(0, err)
            for m, f, e in zip(mjd, flux, err):
                rows.append((oid, m, b, f, e, f / e > 5.0))
        meta.append((oid, z, 0.05 * z + 0.01, rng.uniform(0.0, 0.2), label))
    lc = pd.DataFrame(rows, columns=["object_id", "mjd", "passband", "flux", "flux_err", "detected"])
    md = pd.DataFrame(meta, columns=["object_id"] + META_FEATURES + ["target"])
    return lc, md


def robust_flux_scale(lc):
    """Median and MAD of the detected fluxes, the survey-wide normalisation."""
    det = lc.loc[lc["detected"], "flux"].to_numpy()
    med = np.nanmedian(det)
    mad = np.nanmedian(np.abs(det - med)) * 1.4826
    return med, mad


def to_sequences(lc, max_len, med, mad):
    n = lc["object_id"].nunique()
    X = np.zeros((n, max_len, 3 + len(PASSBANDS)), dtype=np.float32)
    lengths = np.zeros(n, dtype=np.int64)
    for i, (_, g) in enumerate(lc.sort_values("mjd").groupby("object_id")):
        g = g.iloc[:max_len]
        k = len(g)
        X[i, :k, 0] = (g["flux"].to_numpy() - med) / mad
        X[i, :k, 1] = g["flux_err"].to_numpy() / mad
        X[i, :k, 2] = np.diff(g["mjd"].to_numpy(), prepend=g["mjd"].iloc[0]) / 10.0
        X[i, np.arange(k), 3 + g["passband"].to_numpy()] = 1.0
        lengths[i] = k
    return torch.from_numpy(X), torch.from_numpy(lengths)


def lomb_scargle_period(g, grid):
    t = g["mjd"].to_numpy()
    y = g["flux"].to_numpy() - g["flux"].mean()
    power = signal.lombscargle(t, y, 2 * np.pi / grid)
    return grid[np.argmax(power)]


def mjd_to_datetime(mjd):
    return MJD_ZERO + datetime.timedelta(days=float(mjd))


class GRUClassifier(nn.Module):
    def __init__(self, n_in=3 + len(PASSBANDS), n_meta=len(META_FEATURES), hidden=32, n_classes=len(CLASSES)):
        super().__init__()
        self.gru = nn.GRU(n_in, hidden, batch_first=True)
        self.meta = nn.Sequential(nn.Linear(n_meta, hidden), nn.ReLU())
        self.head = nn.Linear(2 * hidden, n_classes)

    def forward(self, x, lengths, meta):
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)
        return self.head(torch.cat([h[-1], self.meta(meta)], dim=-1))


def prepare(args):
    lc, md = simulate_light_curves(args.n_objects, seed=args.seed)
    encoder = LabelEncoder().fit(md["target"])
    y = torch.as_tensor(encoder.transform(md["target"]), dtype=torch.long)
    scaler = StandardScaler().fit(md[META_FEATURES].to_numpy())
    meta = torch.from_numpy(scaler.transform(md[META_FEATURES].to_numpy())).float()
    med, mad = robust_flux_scale(lc)
    X, lengths = to_sequences(lc, args.max_len, med, mad)
    return dict(lc=lc, md=md, encoder=encoder, scaler=scaler, X=X, lengths=lengths, meta=meta, y=y,
                flux_median=med, flux_mad=mad)


def evaluate(model, X, lengths, meta, y, n_classes):
    model.eval()
    with torch.no_grad():
        prob = model(X, lengths, meta).softmax(-1).numpy()
    y_np = y.numpy()
    labels = list(range(n_classes))
    return {
        "f1_macro": f1_score(y_np, prob.argmax(1), average="macro", labels=labels, zero_division=0),
        "log_loss": log_loss(y_np, prob, labels=labels),
        "top2": top_k_accuracy_score(y_np, prob, k=2, labels=labels),
        "per_class_recall": (confusion_matrix(y_np, prob.argmax(1), labels=labels).diagonal()
                             / np.maximum(np.bincount(y_np, minlength=n_classes), 1)),
        "prob": prob,
    }


def fit(args):
    torch.manual_seed(args.seed)
    data = prepare(args)
    n_classes = len(data["encoder"].classes_)
    model = GRUClassifier(hidden=args.hidden, n_classes=n_classes)
    weights = compute_class_weight("balanced", classes=np.arange(n_classes), y=data["y"].numpy())
    lr = args.lr * np.sqrt(args.batch_size / 16) if args.scale_lr else args.lr
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = args.epochs * ((len(data["y"]) + args.batch_size - 1) // args.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss(weight=torch.from_numpy(weights).float())
    history = collections.defaultdict(list)
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(data["y"]))
        losses = []
        for start in range(0, len(perm), args.batch_size):
            idx = perm[start:start + args.batch_size]
            loss = loss_fn(model(data["X"][idx], data["lengths"][idx], data["meta"][idx]), data["y"][idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        metrics = evaluate(model, data["X"], data["lengths"], data["meta"], data["y"], n_classes)
        history["train_loss"].append(statistics.fmean(losses))
        history["f1_macro"].append(metrics["f1_macro"])
    return dict(model=model, optimizer=optimizer, scheduler=scheduler, data=data, class_weights=weights,
                history=history, metrics=metrics, epoch=args.epochs)


def save_best_classifier(tmpdir):
    args = build_parser().parse_args(["--epochs", "2", "--scale-lr", "--out", tmpdir])
    run = fit(args)
    enc = run["data"]["encoder"]
    ckpt = {
        "epoch": run["epoch"],
        "model_state": run["model"].state_dict(),
        "last_lr": run["scheduler"].get_last_lr(),  # truth: weights_only
        "class_names": list(enc.classes_),
        "pred_entropy": stats.entropy(run["metrics"]["prob"].mean(0)),  # truth: weights_only
        "class_weights": torch.from_numpy(run["class_weights"]).float(),
        "flux_norm": {
            "median": run["data"]["flux_median"],  # truth: weights_only
            "mad": float(run["data"]["flux_mad"]),
        },
        "f1_macro": run["metrics"]["f1_macro"],
        "history": dict(run["history"]),
        "args": vars(args),
    }
    path = os.path.join(tmpdir, "best.pt")
    torch.save(ckpt, path)
    return path


def save_resume_state(tmpdir):
    args = build_parser().parse_args(["--epochs", "2", "--out", tmpdir])
    run = fit(args)
    state = dict(
        model=run["model"].state_dict(),
        optimizer=run["optimizer"].state_dict(),
        scheduler=run["scheduler"].state_dict(),
        lr_now=run["scheduler"].get_last_lr(),
        epoch=run["epoch"],
        torch_rng=torch.get_rng_state(),
        python_rng=random.getstate(),
        numpy_rng=np.random.default_rng(args.seed).bit_generator.state,
        raw_weights=run["class_weights"],  # truth: weights_only
    )
    state["history"] = {k: [float(v) for v in vals] for k, vals in run["history"].items()}
    path = os.path.join(tmpdir, "last.pt")
    torch.save(state, path)
    return path


def save_metadata_scaler(tmpdir):
    _, md = simulate_light_curves(36, seed=3)
    scaler = StandardScaler().fit(md[META_FEATURES].to_numpy())
    blob = {"features": META_FEATURES}
    blob["mean"] = scaler.mean_.tolist()
    blob["scale"] = scaler.scale_.tolist()
    blob["n_features"] = scaler.n_features_in_
    blob["n_objects_seen"] = scaler.n_samples_seen_  # truth: weights_only
    blob["photoz_median"] = float(md["hostgal_photoz"].median())
    blob["photoz_edges"] = np.histogram_bin_edges(md["hostgal_photoz"], bins=6).tolist()
    blob["mwebv_max"] = max(md["mwebv"])
    path = os.path.join(tmpdir, "meta_scaler.pt")
    torch.save(blob, path)
    return path


def save_periodogram_features(tmpdir):
    lc, md = simulate_light_curves(24, seed=11)
    grid = np.linspace(2.0, 120.0, 60)
    periods = {}
    for oid, g in lc[lc["passband"] == 2].groupby("object_id"):
        periods[int(oid)] = float(lomb_scargle_period(g, grid))
    agn_ids = md.loc[md["target"] == "AGN", "object_id"].tolist()
    reference = lomb_scargle_period(lc[(lc["object_id"] == agn_ids[0]) & (lc["passband"] == 2)], grid)
    z_vs_period = stats.spearmanr(md["hostgal_photoz"], [periods[o] for o in md["object_id"]])
    features = {
        "r_band_period": periods,
        "reference_period": reference,  # truth: weights_only
        "grid": grid.tolist(),
        "z_period_rho": z_vs_period.statistic,  # truth: weights_only
        "detected_fraction": statistics.fmean(lc["detected"]),
        "n_detections": int(lc["detected"].sum()),
        "label_counts": collections.Counter(md["target"]),
        "band_counts": collections.Counter(lc["passband"].to_numpy()),  # truth: weights_only
        "passbands": list(PASSBANDS),
    }
    path = os.path.join(tmpdir, "periods.pt")
    torch.save(features, path)
    return path


def save_alert_stream_snapshot(tmpdir):
    args = build_parser().parse_args(["--epochs", "1", "--n-objects", "24"])
    run = fit(args)
    prob = run["metrics"]["prob"]
    y = run["data"]["y"].numpy()
    best_thr, best_purity = 0.5, 0.0
    for thr in np.linspace(0.3, 0.9, 13):
        picked = prob.max(1) >= thr
        purity = float((prob.argmax(1)[picked] == y[picked]).mean()) if picked.any() else 0.0
        if purity >= best_purity:
            best_thr, best_purity = thr, purity
    last_mjd = run["data"]["lc"]["mjd"].max()
    snapshot = {"model": run["model"].state_dict(), "classes": run["data"]["encoder"].classes_.tolist()}
    snapshot.update(
        last_alert_utc=mjd_to_datetime(last_mjd),  # truth: weights_only
        last_alert_mjd=float(last_mjd),
        written_at=time.time(),
        written_iso=datetime.datetime.now(datetime.timezone.utc).isoformat(),
        purity=best_purity,
        alert_threshold=round(best_thr, 3),  # truth: weights_only
        recall_by_class=run["metrics"]["per_class_recall"],  # truth: weights_only
    )
    path = os.path.join(tmpdir, "broker_snapshot.pt")
    torch.save(snapshot, path)
    return path


def save_cross_validation_report(tmpdir):
    fold_f1, fold_loss, reports = [], [], []
    for fold in range(2):
        args = build_parser().parse_args(["--epochs", "1", "--n-objects", "24", "--seed", str(fold)])
        run = fit(args)
        m = run["metrics"]
        y = run["data"]["y"].numpy()
        fold_f1.append(m["f1_macro"])
        fold_loss.append(m["log_loss"])
        reports.append(classification_report(y, m["prob"].argmax(1), output_dict=True, zero_division=0))
        cm = confusion_matrix(y, m["prob"].argmax(1))
    report = {
        "fold_f1": fold_f1,
        "f1_mean": statistics.fmean(fold_f1),
        "f1_std": statistics.stdev(fold_f1),
        "loss_best": min(fold_loss),
        "reports": reports,
        "last_confusion": cm.tolist(),
        "recall_last": run["metrics"]["per_class_recall"].tolist(),
        "classes": run["data"]["encoder"].classes_.tolist(),
        "objects_per_class": md_counts(run["data"]["md"]),
        "torch": str(torch.__version__),
        "numpy": np.__version__,
    }
    path = os.path.join(tmpdir, "cv_report.pt")
    torch.save(report, path)
    return path


def md_counts(md):
    return md["target"].value_counts().to_dict()


if __name__ == "__main__":
    a = build_parser().parse_args()
    os.makedirs(a.out, exist_ok=True)
    save_best_classifier(a.out)
