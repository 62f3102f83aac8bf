"""Motor-imagery EEG decoding (BCI Competition IV 2a layout), leave-one-subject-out.

Synthetic epochs stand in for the GDF recordings so the script runs anywhere:

    python eeg_motor_imagery.py --subjects 1 2 3 --epochs 3 --out runs/mi
"""
import argparse
import collections
import os
import time
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.signal
import torch
import torch.nn as nn
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.metrics import cohen_kappa_score, confusion_matrix
from sklearn.preprocessing import LabelEncoder

CHANNELS = ("Fz", "FC3", "FC1", "FCz", "C3", "Cz", "C4", "Pz")
EVENTS = {"left_hand": 769, "right_hand": 770, "feet": 771, "tongue": 772}
FILTER_BANK = [(4.0, 8.0), (8.0, 13.0), (13.0, 30.0)]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="MI decoding with a compact EEGNet")
    p.add_argument("--subjects", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--sfreq", type=float, default=128.0)
    p.add_argument("--band", type=float, nargs=2, default=[8.0, 30.0])
    p.add_argument("--tmin", type=float, default=0.5)
    p.add_argument("--tmax", type=float, default=2.5)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--f1", type=int, default=4)
    p.add_argument("--d", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.25)
    p.add_argument("--no-align", dest="align", action="store_false")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=Path("runs/mi"))
    return p.parse_args(argv)


def synth_epochs(subject, n_trials=24, sfreq=128.0, seconds=3.0, seed=0):
    """X (trials x channels x samples, float32), string labels, subject id per trial."""
    rng = np.random.default_rng(seed + subject)
    n_times = int(sfreq * seconds)
    t = np.arange(n_times) / sfreq
    labels = rng.choice(list(EVENTS), size=n_trials)
    X = rng.standard_normal((n_trials, len(CHANNELS), n_times)).astype(np.float32)
    for i, lab in enumerate(labels):
        ch = CHANNELS.index("C4" if lab == "left_hand" else "C3")
        X[i, ch] += 0.8 * np.sin(2 * np.pi * 11.0 * t).astype(np.float32)
    return X, labels, np.full(n_trials, subject)


def load_subjects(subjects, sfreq):
    parts = [synth_epochs(s, sfreq=sfreq) for s in subjects]
    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    groups = np.concatenate([p[2] for p in parts])
    return X, y, groups


def bandpass_sos(band, sfreq, order=4):
    return scipy.signal.butter(order, band, btype="bandpass", fs=sfreq, output="sos")


def preprocess(X, sos, sfreq, tmin, tmax):
    Xf = scipy.signal.sosfiltfilt(sos, X, axis=-1)
    crop = slice(int(tmin * sfreq), int(tmax * sfreq))
    return np.ascontiguousarray(Xf[..., crop], dtype=np.float32), crop


def euclidean_alignment(X, R_inv_sqrt=None):
    """He & Wu (2019): whiten every trial by the inverse square root of the mean covariance."""
    if R_inv_sqrt is None:
        covs = np.einsum("nct,ndt->ncd", X, X) / X.shape[-1]
        R_inv_sqrt = scipy.linalg.fractional_matrix_power(covs.mean(axis=0), -0.5).real
    return np.einsum("cd,ndt->nct", R_inv_sqrt, X).astype(np.float32), R_inv_sqrt


def band_power(X, sfreq, lo, hi):
    freqs, psd = scipy.signal.welch(X, fs=sfreq, nperseg=64, axis=-1)
    sel = (freqs >= lo) & (freqs <= hi)
    return psd[..., sel].mean()


def log_var_features(X, sfreq):
    feats = []
    for lo, hi in FILTER_BANK:
        Xb = scipy.signal.sosfiltfilt(bandpass_sos((lo, hi), sfreq), X, axis=-1)
        feats.append(np.log(Xb.var(axis=-1)))
    return np.concatenate(feats, axis=1)


class EEGNet(nn.Module):
    def __init__(self, n_chans=8, n_classes=4, n_times=256, F1=4, D=2, dropout=0.25):
        super().__init__()
        F2 = F1 * D
        self.temporal = nn.Sequential(nn.Conv2d(1, F1, (1, 32), padding=(0, 16), bias=False), nn.BatchNorm2d(F1))
        self.spatial = nn.Sequential(
            nn.Conv2d(F1, F2, (n_chans, 1), groups=F1, bias=False), nn.BatchNorm2d(F2), nn.ELU(),
            nn.AvgPool2d((1, 4)), nn.Dropout(dropout))
        self.separable = nn.Sequential(
            nn.Conv2d(F2, F2, (1, 8), padding=(0, 4), groups=F2, bias=False), nn.Conv2d(F2, F2, 1, bias=False),
            nn.BatchNorm2d(F2), nn.ELU(), nn.AvgPool2d((1, 8)), nn.Dropout(dropout))
        with torch.no_grad():
            n_feat = self.features(torch.zeros(1, 1, n_chans, n_times)).shape[1]
        self.classify = nn.Linear(n_feat, n_classes)

    def features(self, x):
        return self.separable(self.spatial(self.temporal(x))).flatten(1)

    def forward(self, x):
        return self.classify(self.features(x.unsqueeze(1)))


class MITrainer:
    """One instance per held-out subject."""

    def __init__(self, args, n_classes, n_times, class_weights=None):
        self.args = args
        torch.manual_seed(args.seed)
        np.random.seed(args.seed)
        self.model = EEGNet(len(CHANNELS), n_classes, n_times, args.f1, args.d, args.dropout)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.lr)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(args.epochs, 1))
        w = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.criterion = nn.CrossEntropyLoss(weight=w)
        self.history = collections.defaultdict(list)
        self.per_subject = collections.defaultdict(list)
        self.best_kappa = -1.0
        self.best_epoch = 0
        self.best_state = None
        self.epoch = 0

    def _batches(self, X, y, shuffle):
        idx = np.random.permutation(len(X)) if shuffle else np.arange(len(X))
        for s in range(0, len(idx), self.args.batch_size):
            b = idx[s:s + self.args.batch_size]
            yield torch.from_numpy(X[b]), torch.from_numpy(y[b]).long()

    def train_epoch(self, X, y):
        self.model.train()
        losses = []
        for xb, yb in self._batches(X, y, shuffle=True):
            self.optimizer.zero_grad()
            loss = self.criterion(self.model(xb), yb)
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        self.scheduler.step()
        self.epoch += 1
        return np.mean(losses), len(losses)

    @torch.no_grad()
    def evaluate(self, X, y, groups=None):
        self.model.eval()
        pred = np.concatenate([self.model(xb).argmax(1).numpy() for xb, _ in self._batches(X, y, False)])
        out = {
            "acc": (pred == y).mean(),
            "kappa": cohen_kappa_score(y, pred),
            "confusion": confusion_matrix(y, pred, labels=np.arange(self.model.classify.out_features)),
        }
        if groups is not None:
            for g in np.unique(groups):
                m = groups == g
                self.per_subject[int(g)].append(float((pred[m] == y[m]).mean()))
        return out

    def fit(self, Xtr, ytr, Xva, yva, groups_va=None):
        metrics = {}
        for _ in range(self.args.epochs):
            loss, n_steps = self.train_epoch(Xtr, ytr)
            metrics = self.evaluate(Xva, yva, groups_va)
            self.history["loss"].append(loss)
            self.history["val_kappa"].append(metrics["kappa"])
            self.history["steps"].append(n_steps)
            if metrics["kappa"] > self.best_kappa:
                self.best_kappa = metrics["kappa"]
                self.best_epoch = self.epoch
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return metrics

    def summary(self):
        n_params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return n_params, self.scheduler.get_last_lr()[0]


def prepare_fold(args, test_subject=None):
    X, y_str, groups = load_subjects(args.subjects, args.sfreq)
    enc = LabelEncoder().fit(y_str)
    y = enc.transform(y_str)
    sos = bandpass_sos(args.band, args.sfreq)
    X, crop = preprocess(X, sos, args.sfreq, args.tmin, args.tmax)
    if test_subject is None:
        test_subject = np.unique(groups)[-1]
    tr, te = groups != test_subject, groups == test_subject
    Xtr, R = euclidean_alignment(X[tr]) if args.align else (X[tr], None)
    Xte, _ = euclidean_alignment(X[te]) if args.align else (X[te], None)
    fold = dict(Xtr=Xtr, ytr=y[tr], Xte=Xte, yte=y[te], groups_te=groups[te])
    return fold, enc, sos, crop, R, test_subject, y_str


def save_loso_fold(tmpdir):
    args = parse_args(["--epochs", "2", "--out", tmpdir])
    t0 = time.time()
    fold, enc, sos, crop, R, test_subject, y_str = prepare_fold(args)
    trainer = MITrainer(args, n_classes=len(enc.classes_), n_times=fold["Xtr"].shape[-1])
    metrics = trainer.fit(fold["Xtr"], fold["ytr"], fold["Xte"], fold["yte"], fold["groups_te"])
    n_params, last_lr = trainer.summary()
    ckpt = {
        "model_state": trainer.best_state,
        "optimizer_state": trainer.optimizer.state_dict(),
        "scheduler_state": trainer.scheduler.state_dict(),
        "epoch": trainer.epoch,
        "best_epoch": trainer.best_epoch,
        "args": args,  # truth: weights_only
        "channels": list(CHANNELS),
        "classes": enc.classes_,  # truth: weights_only
        "test_subject": test_subject,  # truth: weights_only
        "sos": sos,  # truth: weights_only
        "crop_samples": (crop.start, crop.stop),
        "ea_reference": None if R is None else torch.from_numpy(R).float(),
    }
    ckpt["metrics"] = {
        "kappa": metrics["kappa"],
        "best_kappa": trainer.best_kappa,
        "acc": metrics["acc"],  # truth: weights_only
        "confusion": metrics["confusion"].tolist(),
        "chance": 1.0 / len(enc.classes_),
    }
    ckpt["train_loss"] = trainer.history["loss"]  # truth: weights_only
    ckpt["val_kappa"] = trainer.history["val_kappa"]
    ckpt["steps_per_epoch"] = trainer.history["steps"]
    ckpt["n_params"] = n_params
    ckpt["last_lr"] = last_lr
    ckpt["label_counts"] = collections.Counter(y_str.tolist())
    ckpt["elapsed_s"] = time.time() - t0
    path = os.path.join(tmpdir, f"eegnet_loso_s{int(test_subject)}.pt")
    torch.save(ckpt, path)
    return path


def save_cross_subject_summary(tmpdir):
    args = parse_args(["--epochs", "1", "--subjects", "1", "2", "3", "--out", tmpdir])
    fold, enc, sos, crop, R, test_subject, y_str = prepare_fold(args, test_subject=1)
    trainer = MITrainer(args, n_classes=len(enc.classes_), n_times=fold["Xtr"].shape[-1])
    trainer.fit(fold["Xtr"], fold["ytr"], fold["Xte"], fold["yte"], fold["groups_te"])
    hparams = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    mu_power = band_power(fold["Xte"], args.sfreq, 8.0, 13.0)
    beta_power = band_power(fold["Xte"], args.sfreq, 13.0, 30.0)
    torch.save(
        {
            "state_dict": trainer.model.state_dict(),
            "hparams": hparams,
            "per_subject_acc": trainer.per_subject,  # truth: weights_only
            "last_subject_acc": {s: accs[-1] for s, accs in trainer.per_subject.items()},
            "mu_power": float(mu_power),
            "beta_power": float(beta_power),
            "erd_ratio": float(mu_power / beta_power),
            "power_ratio_db": 10 * np.log10(mu_power / beta_power),  # truth: weights_only
            "label_counts": collections.Counter(y_str),  # truth: weights_only
            "test_subject": int(test_subject),
            "crop": crop,  # truth: weights_only
            "classes": enc.classes_.tolist(),
            "events": EVENTS,
            "band": tuple(args.band),
            "sos": sos.tolist(),
            "train_loss": [float(v) for v in trainer.history["loss"]],
        },
        os.path.join(tmpdir, "summary.pt"),
    )
    return os.path.join(tmpdir, "summary.pt")


def save_filter_bank_baseline(tmpdir):
    """Log-variance filter-bank features + LDA; the torch checkpoint keeps what the online decoder needs."""
    args = parse_args(["--no-align"])
    X, y_str, groups = load_subjects(args.subjects, args.sfreq)
    enc = LabelEncoder().fit(y_str)
    y = enc.transform(y_str)
    feats = log_var_features(X, args.sfreq)
    mu, sd = feats.mean(axis=0), feats.std(axis=0) + 1e-6
    lda = LinearDiscriminantAnalysis().fit((feats - mu) / sd, y)
    train_acc = lda.score((feats - mu) / sd, y)
    bundle = {
        "lda": lda,  # truth: weights_only
        "coef": torch.from_numpy(lda.coef_).float(),
        "intercept": torch.from_numpy(lda.intercept_).float(),
        "feature_mean": torch.from_numpy(mu).float(),
        "feature_std": torch.tensor(sd, dtype=torch.float32),
        "filter_bank": FILTER_BANK,
        "train_acc": train_acc,
        "n_features": feats.shape[1],
        "n_trials": len(feats),
        "subjects": sorted({int(g) for g in groups}),
    }
    bundle["numpy_rng"] = np.random.default_rng(args.seed).bit_generator.state
    bundle["torch_rng"] = torch.get_rng_state()
    path = os.path.join(tmpdir, "fbcsp_lda.pt")
    torch.save(bundle, path)
    return path


def export_for_online_decoder(model, out_dir, fname="eegnet_full.pt"):
    model.eval()
    path = os.path.join(out_dir, fname)
    return path, model


def save_online_export(tmpdir):
    """The online BCI loop does torch.load(path) and calls the module directly."""
    args = parse_args(["--epochs", "1"])
    fold, enc, *_ = prepare_fold(args)
    trainer = MITrainer(args, n_classes=len(enc.classes_), n_times=fold["Xtr"].shape[-1])
    trainer.train_epoch(fold["Xtr"], fold["ytr"])
    path, module = export_for_online_decoder(trainer.model, tmpdir)
    torch.save(module, path)  # truth: weights_only
    return path


def save_calibration_finetune(tmpdir):
    """Fine-tune the head on the new user's calibration run; everything stored loads with defaults."""
    args = parse_args(["--epochs", "1", "--subjects", "1", "2"])
    fold, enc, sos, crop, R, test_subject, _ = prepare_fold(args, test_subject=2)
    trainer = MITrainer(args, n_classes=len(enc.classes_), n_times=fold["Xtr"].shape[-1])
    for name, p in trainer.model.named_parameters():
        p.requires_grad = name.startswith("classify")
    metrics = trainer.fit(fold["Xtr"], fold["ytr"], fold["Xte"], fold["yte"])
    frozen = [n for n, p in trainer.model.named_parameters() if not p.requires_grad]
    calib = dict(
        subject=int(test_subject),
        n_calibration_trials=int(fold["yte"].shape[0]),
        kappa=metrics["kappa"],
        acc=float(metrics["acc"]),
        acc_by_class=np.diag(metrics["confusion"]).tolist(),
    )
    ckpt = {"state_dict": trainer.model.state_dict(), "frozen": frozen}
    ckpt.update(
        calibration=calib,
        ea_reference=torch.from_numpy(R).float(),
        crop=[crop.start, crop.stop],
        sfreq=args.sfreq,
        torch_version=str(torch.__version__),
        numpy_version=np.__version__,
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    path = os.path.join(tmpdir, "calibrated.pt")
    torch.save(ckpt, path)
    return path


FACTORIES = {
    "MITrainer": lambda: MITrainer(parse_args([]), n_classes=4, n_times=256),
}
