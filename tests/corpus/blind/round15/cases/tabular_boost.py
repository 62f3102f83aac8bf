"""Gradient-boosting features feeding a small torch MLP: sklearn preprocessing, label maps from pandas."""
import json
import os
from collections import Counter, OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from torch import nn

NUMERIC = ["age", "income", "tenure"]
CATEGORICAL = ["region"]


def load_frame(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.integers(18, 80, n).astype(float),
        "income": rng.normal(50, 10, n),
        "tenure": rng.integers(0, 20, n).astype(float),
        "region": rng.choice(["north", "south", "east"], n),
        "segment": rng.choice(["bronze", "silver", "gold"], n),
    })


def build_label_map(df, column="segment"):
    classes = sorted(df[column].unique())
    return {name: idx for idx, name in enumerate(classes)}


def build_preprocessor():
    return ColumnTransformer([
        ("num", StandardScaler(), NUMERIC),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL),
    ])


class MLPHead(nn.Module):
    def __init__(self, in_dim=9, n_classes=3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, 16), nn.ReLU(), nn.Linear(16, n_classes))

    def forward(self, x):
        return self.net(x)


class HybridTrainer:
    """Fits a GBM on the preprocessed table, then an MLP on [features, GBM leaf probabilities]."""

    def __init__(self, n_estimators=5, seed=0):
        self.seed = seed
        self.gbm = GradientBoostingClassifier(n_estimators=n_estimators, max_depth=2, random_state=seed)
        self.pre = build_preprocessor()
        self.label_map = {}
        self.val_losses = []
        self.feature_importance = {}
        self.best_state = None

    def fit(self, df, epochs=4):
        self.label_map = build_label_map(df)
        y = df["segment"].map(self.label_map).to_numpy()
        tr, va, y_tr, y_va = train_test_split(df, y, test_size=0.25, random_state=self.seed)
        X_tr = self.pre.fit_transform(tr)
        X_va = self.pre.transform(va)
        self.gbm.fit(X_tr, y_tr)
        names = self.pre.get_feature_names_out()
        self.feature_importance = dict(zip(names, self.gbm.feature_importances_))
        Z_tr = np.hstack([X_tr, self.gbm.predict_proba(X_tr)]).astype(np.float32)
        Z_va = np.hstack([X_va, self.gbm.predict_proba(X_va)]).astype(np.float32)
        torch.manual_seed(self.seed)
        self.model = MLPHead(Z_tr.shape[1], len(self.label_map))
        opt = torch.optim.Adam(self.model.parameters(), lr=1e-2)
        xt, yt = torch.from_numpy(Z_tr), torch.from_numpy(y_tr)
        xv, yv = torch.from_numpy(Z_va), torch.from_numpy(y_va)
        for _ in range(epochs):
            loss = F.cross_entropy(self.model(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                self.val_losses.append(F.cross_entropy(self.model(xv), yv).item())
            if min(self.val_losses) == self.val_losses[-1]:
                self.best_state = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.val_pred = self.model(xv).argmax(1).numpy()
        self.y_va = y_va
        self.optimizer = opt
        return self


def summarize(trainer):
    acc = accuracy_score(trainer.y_va, trainer.val_pred)
    f1 = f1_score(trainer.y_va, trainer.val_pred, average="macro")
    best_epoch = np.argmin(trainer.val_losses)
    return acc, f1, best_epoch


def save_hybrid_checkpoint(tmpdir):
    df = load_frame()
    trainer = HybridTrainer().fit(df)
    acc, f1, best_epoch = summarize(trainer)
    ckpt = {
        "model": trainer.best_state,
        "optimizer": trainer.optimizer.state_dict(),
        "label_map": trainer.label_map,
        "preprocessor": trainer.pre,  # truth: weights_only
        "val_acc": acc,
        "val_f1": f1,
        "best_epoch": best_epoch,  # truth: weights_only
        "val_losses": trainer.val_losses,
    }
    path = os.path.join(tmpdir, "hybrid.pt")
    torch.save(ckpt, path)
    return path


def save_feature_report(tmpdir):
    df = load_frame(seed=1)
    trainer = HybridTrainer(seed=1).fit(df)
    ranked = sorted(trainer.feature_importance.items(), key=lambda kv: kv[1], reverse=True)
    report = OrderedDict()
    report["importances"] = trainer.gbm.feature_importances_  # truth: weights_only
    report["importances_t"] = torch.as_tensor(trainer.gbm.feature_importances_)
    report["top_feature"] = str(ranked[0][0])
    report["top_importance"] = ranked[0][1]  # truth: weights_only
    report["feature_names"] = trainer.pre.get_feature_names_out().tolist()
    report["importance_by_name"] = {str(k): float(v) for k, v in ranked}
    path = os.path.join(tmpdir, "features.pt")
    torch.save(dict(report), path)
    return path


def save_data_profile(tmpdir):
    df = load_frame(seed=2)
    regions = df["region"].astype("category")
    counts = Counter(df["segment"])
    profile = dict(
        n_rows=len(df),
        columns=list(df.columns),
        region_categories=regions.cat.categories,  # truth: weights_only
        region_codes=torch.tensor(regions.cat.codes.to_numpy()),
        segment_counts=dict(counts),
        segment_counter=counts,
        income_mean=df["income"].mean(),  # truth: weights_only
        income_p90=float(df["income"].quantile(0.9)),
        age_summary=df[["age"]].describe().to_dict(),
        profiled_at=pd.Timestamp.now(),  # truth: weights_only
        source=Path(tmpdir) / "train.csv",  # truth: weights_only
    )
    path = os.path.join(tmpdir, "profile.pt")
    torch.save(profile, path)
    return path


def save_inference_bundle(tmpdir):
    """Clean: what the serving side needs, all in loadable form."""
    df = load_frame(seed=3)
    trainer = HybridTrainer(seed=3).fit(df)
    scaler = trainer.pre.named_transformers_["num"]
    onehot = trainer.pre.named_transformers_["cat"]
    inv_label_map = {v: k for k, v in trainer.label_map.items()}
    bundle = {"state_dict": trainer.model.state_dict()}
    bundle["scaler_mean"] = torch.from_numpy(scaler.mean_)
    bundle["scaler_scale"] = scaler.scale_.tolist()
    bundle["regions"] = [str(c) for c in onehot.categories_[0]]
    bundle["idx_to_label"] = inv_label_map
    bundle["n_estimators"] = trainer.gbm.n_estimators_
    bundle["config"] = json.loads(json.dumps({"numeric": NUMERIC, "categorical": CATEGORICAL}))
    bundle["best_val_loss"] = min(trainer.val_losses)
    path = os.path.join(tmpdir, "bundle.pt")
    torch.save(bundle, path)
    return path
