# HAR (accelerometer) and ECG beat classification on sliding windows.
# Leave-subjects-out for HAR, patient-grouped CV for ECG.  Features are the usual
# hand-crafted stats + Welch dominant frequency; the deep model is a small 1D CNN.
import dataclasses
import datetime
import os
import time
from collections import Counter, OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from scipy import signal, stats
from sklearn.metrics import (balanced_accuracy_score, cohen_kappa_score, confusion_matrix,
                             f1_score)
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.utils.class_weight import compute_class_weight

ACTIVITIES = ["walking", "upstairs", "downstairs", "sitting", "standing", "laying"]
FS = 50.0
ECG_FS = 360
BEATS = ["N", "S", "V", "F"]


@dataclasses.dataclass
class WindowSpec:
    size: int = 128
    step: int = 64
    channels: tuple = ("acc_x", "acc_y", "acc_z")


def synth_har_frame(n_subjects=6, per_subject=2400, seed=0):
    rng = np.random.default_rng(seed)
    parts = []
    for s in range(n_subjects):
        acts = rng.choice(ACTIVITIES, size=per_subject // 200)
        labels = np.repeat(acts, 200)
        t = np.arange(per_subject) / FS
        freq = np.array([ACTIVITIES.index(a) for a in labels]) * 0.4 + 0.5
        xyz = np.sin(2 * np.pi * freq * t)[:, None] * rng.uniform(0.2, 1.0, 3) + rng.normal(0, 0.3, (per_subject, 3))
        parts.append(pd.DataFrame({"subject": s, "t": t, "acc_x": xyz[:, 0], "acc_y": xyz[:, 1],
                                   "acc_z": xyz[:, 2], "activity": labels}))
    return pd.concat(parts, ignore_index=True)


def make_windows(df, spec):
    X, y, subj = [], [], []
    for sid, g in df.groupby("subject"):
        vals = g[list(spec.channels)].to_numpy(np.float32)
        lab = g["activity"].to_numpy()
        for start in range(0, len(g) - spec.size + 1, spec.step):
            values, counts = np.unique(lab[start:start + spec.size], return_counts=True)
            X.append(vals[start:start + spec.size].T)
            y.append(values[counts.argmax()])  # majority label of the window
            subj.append(sid)
    return np.stack(X), np.array(y), np.array(subj)


def extract_features(X):
    """(n, c, t) -> (n, 6c) hand-crafted features + their names."""
    blocks = {
        "mean": X.mean(-1),
        "std": X.std(-1),
        "skew": stats.skew(X, axis=-1),
        "kurt": stats.kurtosis(X, axis=-1),
        "mad": np.abs(np.diff(X, axis=-1)).mean(-1),
    }
    f, pxx = signal.welch(X, fs=FS, nperseg=64, axis=-1)
    blocks["domfreq"] = f[pxx.argmax(-1)]
    names = [f"{b}_{c}" for b in blocks for c in range(X.shape[1])]
    return np.concatenate(list(blocks.values()), axis=1).astype(np.float32), names


class CNN1D(nn.Module):
    def __init__(self, n_channels=3, n_classes=6, width=16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(n_channels, width, 7, padding=3), nn.BatchNorm1d(width), nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(width, width * 2, 5, padding=2), nn.BatchNorm1d(width * 2), nn.ReLU(),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(width * 2, n_classes)

    def forward(self, x):
        return self.classifier(self.features(x))


class EarlyStopping:
    def __init__(self, patience=3, min_delta=0.0):
        self.patience = patience
        self.min_delta = min_delta
        self.best = None
        self.best_epoch = None
        self.bad_epochs = 0
        self.scores = []

    def step(self, score, epoch):
        self.scores.append(score)
        if self.best is None or score > self.best + self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = score, epoch, 0
            return False
        self.bad_epochs += 1
        return self.bad_epochs > self.patience


class HARTrainer:
    def __init__(self, n_channels=3, n_classes=6, class_weights=None, lr=3e-3):
        self.model = CNN1D(n_channels, n_classes)
        w = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.criterion = nn.CrossEntropyLoss(weight=w, label_smoothing=0.05)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.stopper = EarlyStopping(patience=2)
        self.epoch = 0
        self.log = []

    def run_epoch(self, X, y, bs=32):
        self.model.train()
        perm = torch.randperm(len(X))
        total = 0.0
        for i in range(0, len(X), bs):
            idx = perm[i:i + bs]
            loss = self.criterion(self.model(X[idx]), y[idx])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            total += loss.item() * len(idx)
        return total / len(X)

    @torch.no_grad()
    def evaluate(self, X, y):
        self.model.eval()
        pred = self.model(X).argmax(1).numpy()
        y = y.numpy()
        labels = np.arange(self.model.classifier.out_features)
        return (f1_score(y, pred, average="macro", labels=labels, zero_division=0),
                confusion_matrix(y, pred, labels=labels),
                f1_score(y, pred, average=None, labels=labels, zero_division=0),
                pred)

    def fit(self, Xtr, ytr, Xva, yva, epochs=3):
        out = None
        for epoch in range(epochs):
            self.epoch = epoch
            train_loss = self.run_epoch(Xtr, ytr)
            out = self.evaluate(Xva, yva)
            self.log.append({"epoch": epoch, "train_loss": train_loss, "val_f1": out[0]})
            if self.stopper.step(out[0], epoch):
                break
        return out


def leave_subjects_out(subj, test_subjects=(4, 5)):
    te = np.isin(subj, test_subjects)
    return ~te, te


def synth_ecg(n_patients=6, seconds=20, seed=0):
    """Fake single-lead ECG: a spike train with patient-specific heart rate + labelled beats."""
    rng = np.random.default_rng(seed)
    records = []
    for pid in range(n_patients):
        n = seconds * ECG_FS
        x = rng.normal(0, 0.05, n)
        rr = int(ECG_FS * 60 / rng.uniform(55, 95))
        peaks = np.arange(rr // 2, n - 120, rr)
        x[peaks] += 1.0
        x = signal.filtfilt(*signal.butter(2, [0.5, 40], btype="band", fs=ECG_FS), x)
        labels = rng.choice(BEATS, size=len(peaks), p=[0.7, 0.1, 0.15, 0.05])
        records.append((pid, x.astype(np.float32), labels))
    return records


def beat_windows(records, before=90, after=110):
    X, y, groups, hr = [], [], [], []
    for pid, x, labels in records:
        peaks, _ = signal.find_peaks(x, height=0.3 * x.max(), distance=int(0.3 * ECG_FS))
        hr.append(60.0 / (np.diff(peaks).mean() / ECG_FS))
        for p, lab in zip(peaks, labels):
            if p - before >= 0 and p + after <= len(x):
                X.append(x[p - before:p + after])
                y.append(lab)
                groups.append(pid)
    return np.stack(X)[:, None, :], np.array(y), np.array(groups), hr


# --------------------------------------------------------------------------- checkpoints

def save_har_cnn(tmpdir):
    torch.manual_seed(0)
    spec = WindowSpec()
    X, y_str, subj = make_windows(synth_har_frame(), spec)
    le = LabelEncoder().fit(y_str)
    y = le.transform(y_str)
    tr, te = leave_subjects_out(subj)
    cw = compute_class_weight("balanced", classes=np.unique(y[tr]), y=y[tr])
    mu = X[tr].mean(axis=(0, 2), keepdims=True)
    sd = X[tr].std(axis=(0, 2), keepdims=True) + 1e-6
    Xt = torch.from_numpy((X - mu) / sd)
    yt = torch.from_numpy(y).long()
    trainer = HARTrainer(n_classes=len(le.classes_), class_weights=cw)
    macro_f1, cm, per_class, _ = trainer.fit(Xt[tr], yt[tr], Xt[te], yt[te])

    ckpt = OrderedDict()
    ckpt["model_state"] = trainer.model.state_dict()
    ckpt["optimizer_state"] = trainer.optimizer.state_dict()
    ckpt["classes"] = le.classes_  # truth: weights_only
    ckpt["class_names"] = le.classes_.tolist()
    ckpt["label_to_idx"] = {c: i for i, c in enumerate(le.classes_.tolist())}
    ckpt["class_weights"] = trainer.criterion.weight
    ckpt["channel_mean"] = torch.from_numpy(mu.squeeze())
    ckpt["channel_std"] = torch.from_numpy(sd.squeeze()).clone()
    ckpt["macro_f1"] = macro_f1
    ckpt["per_class_f1"] = per_class  # truth: weights_only
    ckpt["confusion"] = cm.tolist()
    ckpt["window"] = dataclasses.asdict(spec)
    ckpt["fs"] = FS
    ckpt["epochs_run"] = trainer.epoch + 1
    ckpt["log"] = trainer.log
    path = os.path.join(tmpdir, "har_cnn.pt")
    torch.save(ckpt, path)
    return path


def save_har_feature_head(tmpdir):
    spec = WindowSpec(size=100, step=50)
    df = synth_har_frame(seed=1)
    X, y_str, subj = make_windows(df, spec)
    feats, names = extract_features(X)
    table = pd.DataFrame(feats, columns=names)
    table["activity"] = y_str
    tr, te = leave_subjects_out(subj)
    scaler = StandardScaler().fit(feats[tr])
    le = LabelEncoder().fit(ACTIVITIES)
    head = nn.Sequential(nn.Linear(feats.shape[1], 32), nn.ReLU(), nn.Linear(32, len(ACTIVITIES)))
    opt = torch.optim.SGD(head.parameters(), lr=0.1, momentum=0.9)
    xt = torch.tensor(scaler.transform(feats), dtype=torch.float32)
    yt = torch.as_tensor(le.transform(y_str))
    for _ in range(20):
        loss = nn.functional.cross_entropy(head(xt[tr]), yt[tr])
        opt.zero_grad()
        loss.backward()
        opt.step()
    pred = head(xt[te]).argmax(1).numpy()
    counts = table["activity"].value_counts()
    dom = table.filter(like="domfreq").to_numpy()

    ckpt = {
        "head": head.state_dict(),
        "feature_names": table.columns.drop("activity"),  # truth: weights_only
        "feature_list": names,
        "scaler_mean": scaler.mean_.tolist(),
        "scaler_scale": torch.tensor(scaler.scale_, dtype=torch.float32),
        "scaler_n": int(scaler.n_samples_seen_),
        "label_counts": counts,  # truth: weights_only
        "label_count_dict": counts.to_dict(),
        "majority_class": counts.idxmax(),
        "imbalance_ratio": counts.max() / counts.min(),  # truth: weights_only
        "dominant_freq_hz": float(np.median(dom)),
        "balanced_acc": balanced_accuracy_score(le.transform(y_str[te]), pred),
        "kappa": cohen_kappa_score(le.transform(y_str[te]), pred),
        "n_windows": len(table),
        "n_features": table.shape[1] - 1,
    }
    path = os.path.join(tmpdir, "har_features.pt")
    torch.save(ckpt, path)
    return path


def save_ecg_cv(tmpdir):
    torch.manual_seed(1)
    X, y_str, groups, hr = beat_windows(synth_ecg())
    y = np.array([BEATS.index(b) for b in y_str])
    t0 = time.perf_counter()
    rows, best_state, best_f1, split = [], None, -1.0, None
    for fold, (tr_idx, va_idx) in enumerate(GroupKFold(n_splits=3).split(X, y, groups)):
        trainer = HARTrainer(n_channels=1, n_classes=len(BEATS))
        f1, cm, _, _ = trainer.fit(torch.from_numpy(X[tr_idx]), torch.from_numpy(y[tr_idx]),
                                   torch.from_numpy(X[va_idx]), torch.from_numpy(y[va_idx]), epochs=2)
        rows.append({"fold": fold, "f1": f1, "n_val": len(va_idx), "support_V": int(cm[2].sum())})
        if f1 > best_f1:
            best_f1, best_state, split = f1, trainer.model.state_dict(), (tr_idx, va_idx)
    folds = pd.DataFrame(rows)
    elapsed = datetime.timedelta(seconds=time.perf_counter() - t0)

    ckpt = {"state_dict": best_state, "beat_classes": BEATS}
    ckpt["folds"] = folds  # truth: weights_only
    ckpt["fold_records"] = folds.to_dict("records")
    ckpt["cv_f1_mean"] = folds["f1"].mean()  # truth: weights_only
    ckpt["cv_f1_std"] = float(folds["f1"].std())
    ckpt["best_fold"] = int(folds["f1"].idxmax())
    ckpt["best_f1"] = best_f1
    ckpt["train_seconds"] = elapsed.total_seconds()
    ckpt["split"] = {
        "train_patients": np.unique(groups[split[0]]),  # truth: weights_only
        "val_patients": np.unique(groups[split[1]]).tolist(),
    }
    ckpt["beat_counts"] = Counter(y_str)  # truth: weights_only
    ckpt["beat_counts_py"] = Counter(y_str.tolist())
    ckpt["mean_hr"] = [round(float(h), 1) for h in hr]
    ckpt["mean_hr_overall"] = float(np.mean(hr))
    ckpt["data_root"] = Path(tmpdir) / "mitbih"  # truth: weights_only
    ckpt["data_root_str"] = os.fspath(Path(tmpdir) / "mitbih")
    path = os.path.join(tmpdir, "ecg_cv.pt")
    torch.save(ckpt, path)
    return path


def save_ecg_balanced(tmpdir):
    """Oversampling with a WeightedRandomSampler: keep what is needed to rebuild it on resume."""
    torch.manual_seed(2)
    X, y_str, groups, _ = beat_windows(synth_ecg(n_patients=4, seed=2))
    y = np.array([BEATS.index(b) for b in y_str])
    freq = np.bincount(y, minlength=len(BEATS))
    sample_w = 1.0 / np.maximum(freq, 1)[y]
    gen = torch.Generator().manual_seed(2)
    sampler = torch.utils.data.WeightedRandomSampler(torch.as_tensor(sample_w), num_samples=len(y), generator=gen)
    drawn = np.bincount(y[list(sampler)], minlength=len(BEATS))
    model = CNN1D(n_channels=1, n_classes=len(BEATS))
    stopper = EarlyStopping(patience=4)
    for epoch, score in enumerate([0.41, 0.47, 0.46, 0.52]):
        stopper.step(score, epoch)

    ckpt = dict(model=model.state_dict(), epoch=len(stopper.scores))
    ckpt.update(
        sampler_weights=torch.as_tensor(sample_w),
        sampler_generator=gen.get_state(),
        class_freq=freq.tolist(),
        drawn_freq={BEATS[i]: int(c) for i, c in enumerate(drawn)},
        early_stopping=stopper,  # truth: weights_only
        best_score=stopper.best,
        best_epoch=stopper.best_epoch,
        best_epoch_np=int(np.argmax(stopper.scores)),
        patience_left=stopper.patience - stopper.bad_epochs,
    )
    path = os.path.join(tmpdir, "ecg_balanced.pt")
    torch.save(ckpt, path)
    return path


def save_har_export(tmpdir):
    """Deployment bundle for the watch app: nothing but tensors and plain Python."""
    spec = WindowSpec()
    model = CNN1D()
    bundle = {
        "weights": model.state_dict(),
        "activities": list(ACTIVITIES),
        "fs": FS,
        "window": dataclasses.asdict(spec),
        "channels": list(spec.channels),
        "confusion_template": np.zeros((6, 6), dtype=int).tolist(),
        "input_shape": tuple(torch.Size([1, 3, spec.size])),
        "dtype": torch.float32,
        "exported": datetime.date.today().isoformat(),
        "bn_momentum": [m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm1d)],
    }
    path = os.path.join(tmpdir, "har_export.pt")
    torch.save(bundle, path)
    return path


FACTORIES = {}
