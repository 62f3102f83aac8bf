"""Support-ticket routing: scikit-learn features (TF-IDF / hashing) + a torch linear head,
label encoding, temperature calibration and per-class threshold tuning."""
import argparse
import datetime as dt
import os
from pathlib import Path

import lightning as L
import numpy as np
import sklearn
import torch
import torch.nn as nn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, classification_report, f1_score
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight

TICKETS = [
    ("my invoice is wrong", "billing"), ("refund not received", "billing"), ("charged twice this month", "billing"),
    ("update credit card", "billing"), ("invoice missing vat", "billing"), ("cancel my subscription refund", "billing"),
    ("app crashes on start", "tech"), ("cannot login password reset", "tech"), ("error 500 on upload", "tech"),
    ("sync fails on android", "tech"), ("page loads forever", "tech"), ("login loop after update", "tech"),
    ("where is your office", "other"), ("do you have a newsletter", "other"), ("partnership question", "other"),
    ("job opening inquiry", "other"), ("feedback about the design", "other"), ("press contact please", "other"),
]


def build_parser():
    p = argparse.ArgumentParser()
    p.add_argument("--features", choices=["tfidf", "hashing"], default="tfidf")
    p.add_argument("--max-features", type=int, default=200)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--out", default="runs/tickets")
    return p


class LinearHead(nn.Module):
    def __init__(self, in_dim=64, num_classes=3):
        super().__init__()
        self.fc = nn.Linear(in_dim, num_classes)

    def forward(self, x):
        return self.fc(x)


class HybridTrainer:
    def __init__(self, features="tfidf", max_features=200, epochs=30, lr=0.1):
        if features == "tfidf":
            self.vectorizer = TfidfVectorizer(max_features=max_features, ngram_range=(1, 2))
        else:
            self.vectorizer = HashingVectorizer(n_features=2 ** 8, alternate_sign=False)
        self.encoder = LabelEncoder()
        self.epochs, self.lr = epochs, lr
        self.head = None
        self.thresholds = None
        self.history = []

    def featurize(self, texts, fit=False):
        X = self.vectorizer.fit_transform(texts) if fit else self.vectorizer.transform(texts)
        return torch.from_numpy(X.toarray().astype("float32"))

    def fit(self, texts, labels):
        X = self.featurize(texts, fit=True)
        y = torch.from_numpy(self.encoder.fit_transform(labels))
        torch.manual_seed(0)
        self.head = LinearHead(X.shape[1], len(self.encoder.classes_))
        opt = torch.optim.SGD(self.head.parameters(), lr=self.lr)
        for _ in range(self.epochs):
            loss = nn.functional.cross_entropy(self.head(X), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            self.history.append(round(loss.item(), 5))
        return self

    @torch.no_grad()
    def logits(self, texts):
        return self.head(self.featurize(texts))

    def tune_thresholds(self, texts, labels, grid=np.linspace(0.1, 0.9, 9)):
        probs = self.logits(texts).softmax(-1).numpy()
        y = self.encoder.transform(labels)
        best = np.full(probs.shape[1], 0.5)
        for c in range(probs.shape[1]):
            scores = [f1_score(y == c, probs[:, c] >= t, zero_division=0) for t in grid]
            best[c] = grid[int(np.argmax(scores))]
        self.thresholds = best
        return best


def fit_temperature(logits, y, steps=50):
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=steps)

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(logits / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return log_t.exp()


def expected_calibration_error(probs, y, n_bins=5):
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs((pred[m] == y[m]).mean() - conf[m].mean())
    return ece


def _data():
    texts, labels = zip(*TICKETS)
    return list(texts), list(labels)


def _trainer(argv=()):
    args = build_parser().parse_args(list(argv))
    texts, labels = _data()
    tr = HybridTrainer(args.features, args.max_features, args.epochs, args.lr).fit(texts, labels)
    return args, tr, texts, labels


def save_tfidf_classifier(tmpdir):
    args, tr, texts, labels = _trainer(["--epochs", "20"])
    out = Path(tmpdir) / Path(args.out).name
    params = tr.vectorizer.get_params()
    params["dtype"] = np.dtype(params["dtype"]).name  # get_params() carries the numpy type itself
    ckpt = {
        "head": tr.head.state_dict(),
        "vocab": sorted(tr.vectorizer.vocabulary_.items(), key=lambda kv: kv[1]),  # truth: weights_only
        "idf": torch.from_numpy(tr.vectorizer.idf_),
        "classes": tr.encoder.classes_,  # truth: weights_only
        "vectorizer_params": params,
        "args": vars(args),
        "out_dir": str(out),
        "loss_curve": tr.history,
    }
    path = os.path.join(tmpdir, "tfidf_head.pt")
    torch.save(ckpt, path)
    return path


def save_thresholds(tmpdir):
    args, tr, texts, labels = _trainer()
    thresholds = tr.tune_thresholds(texts, labels)
    probs = tr.logits(texts).softmax(-1).numpy()
    y = tr.encoder.transform(labels)
    pred = np.where(probs >= thresholds, probs, 0.0).argmax(1)
    majority = np.bincount(y).argmax()
    ckpt = {}
    ckpt["thresholds"] = tr.thresholds  # truth: weights_only
    ckpt["threshold_map"] = dict(zip(tr.encoder.classes_.tolist(), thresholds.tolist()))
    ckpt["macro_f1"] = f1_score(y, pred, average="macro")
    ckpt["per_class_f1"] = f1_score(y, pred, average=None)  # truth: weights_only
    ckpt["report"] = classification_report(y, pred, output_dict=True, zero_division=0)
    ckpt["fallback_label"] = tr.encoder.inverse_transform([majority])[0]  # truth: weights_only
    ckpt["fallback_index"] = int(majority)
    path = os.path.join(tmpdir, "thresholds.pt")
    torch.save(ckpt, path)
    return path


def save_calibration(tmpdir):
    args, tr, texts, labels = _trainer()
    logits = tr.logits(texts)
    y = torch.from_numpy(tr.encoder.transform(labels))
    temperature = fit_temperature(logits, y)
    before = logits.softmax(-1).numpy()
    after = (logits / temperature.detach()).softmax(-1).numpy()
    X = tr.vectorizer.transform(texts)
    calibrator = CalibratedClassifierCV(LogisticRegression(max_iter=200), cv=2, method="sigmoid").fit(X, labels)
    ckpt = dict(
        temperature=temperature.item(),
        ece_before=expected_calibration_error(before, y.numpy()),  # truth: weights_only
        ece_after=float(expected_calibration_error(after, y.numpy())),
        brier_billing=brier_score_loss(y.numpy() == 0, after[:, 0]),
        calibrator=calibrator,  # truth: weights_only
        calibrated_at=dt.datetime.now().isoformat(),
    )
    path = os.path.join(tmpdir, "calibration.pt")
    torch.save(ckpt, path)
    return path


def save_hashing_pipeline(tmpdir):
    args, tr, texts, labels = _trainer(["--features", "hashing", "--epochs", "10"])
    y = tr.encoder.transform(labels)
    weights = compute_class_weight("balanced", classes=np.unique(y), y=y)
    ckpt = {
        "head": tr.head.state_dict(),
        "n_features": tr.vectorizer.n_features,
        "hasher_config": {k: v for k, v in tr.vectorizer.get_params().items() if k != "dtype"},
        "label_encoder": tr.encoder,  # truth: weights_only
        "class_weights": torch.tensor(weights, dtype=torch.float32),
        "class_prior": np.bincount(y) / len(y),  # truth: weights_only
        "num_classes": len(tr.encoder.classes_),
    }
    path = os.path.join(tmpdir, "hashing.pt")
    torch.save(ckpt, path)
    return path


def save_clean_export(tmpdir):
    args, tr, texts, labels = _trainer()
    thresholds = tr.tune_thresholds(texts, labels)
    export = {
        "state_dict": tr.head.state_dict(),
        "classes": tr.encoder.classes_.tolist(),
        "thresholds": thresholds.tolist(),
        "vocab": {term: int(i) for term, i in tr.vectorizer.vocabulary_.items()},
        "ngram_range": tr.vectorizer.ngram_range,
        "exported": dt.datetime.now().isoformat(),
        "sklearn_version": sklearn.__version__,
        "best_threshold": float(np.max(thresholds)),
    }
    path = os.path.join(tmpdir, "export.pt")
    torch.save(export, path)
    return path


class LitTicketClassifier(L.LightningModule):
    def __init__(
        self,
        vocab_size: int,
        num_classes: int,  # truth: hparam
        label_names=None,
        class_weights=None,  # truth: hparam
        decision_threshold: float = 0.5,  # truth: hparam
        label_encoder=None,  # truth: hparam
        vectorizer=None,
        lr: float = 0.1,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["vectorizer"])
        self.head = LinearHead(vocab_size, int(num_classes))
        self.register_buffer("cw", torch.as_tensor(class_weights, dtype=torch.float32))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.head(x), y, weight=self.cw)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def build_ticket_module():
    args, tr, texts, labels = _trainer(["--epochs", "5"])
    y = tr.encoder.transform(labels)
    thresholds = tr.tune_thresholds(texts, labels)
    return LitTicketClassifier(
        vocab_size=len(tr.vectorizer.vocabulary_),
        num_classes=y.max() + 1,
        label_names=tr.encoder.classes_.tolist(),
        class_weights=compute_class_weight("balanced", classes=np.unique(y), y=y),
        decision_threshold=np.median(thresholds),
        label_encoder=tr.encoder,
        vectorizer=tr.vectorizer,
        lr=args.lr,
    )


FACTORIES = {"LitTicketClassifier": build_ticket_module}
