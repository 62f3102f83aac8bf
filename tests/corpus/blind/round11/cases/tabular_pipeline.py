"""Tabular pipeline: sklearn preprocessing in front of a small torch MLP; the checkpoint carries
what inference needs to rebuild the preprocessing."""
import os

import numpy as np
import torch
import torch.nn as nn
from sklearn.metrics import roc_auc_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.utils.class_weight import compute_class_weight

NUM_COLS = ["age", "income", "tenure"]
CAT_COLS = ["region", "plan"]


class TabularMLP(nn.Module):
    def __init__(self, n_num=3, cat_cards=(4, 3), emb_dim=4, hidden=16):
        super().__init__()
        self.embs = nn.ModuleList([nn.Embedding(c, emb_dim) for c in cat_cards])
        self.head = nn.Sequential(nn.Linear(n_num + emb_dim * len(cat_cards), hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x_num, x_cat):
        e = [emb(x_cat[:, i]) for i, emb in enumerate(self.embs)]
        return self.head(torch.cat([x_num] + e, dim=1)).squeeze(-1)


def make_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x_num = rng.normal(size=(n, 3)) * [10.0, 1000.0, 3.0] + [40.0, 5000.0, 5.0]
    region = rng.choice(["north", "south", "east", "west"], size=n)
    plan = rng.choice(["basic", "plus", "pro"], size=n)
    y = (rng.random(n) < 0.3).astype(np.int64)
    return x_num, region, plan, y


def _fit():
    x_num, region, plan, y = make_data()
    scaler = StandardScaler().fit(x_num)
    encoders = {"region": LabelEncoder().fit(region), "plan": LabelEncoder().fit(plan)}
    x_cat = np.stack([encoders["region"].transform(region), encoders["plan"].transform(plan)], axis=1)
    model = TabularMLP(cat_cards=tuple(len(e.classes_) for e in encoders.values()))
    xtr, xva, ctr, cva, ytr, yva = train_test_split(x_num, x_cat, y, test_size=0.25, random_state=0)
    with torch.no_grad():
        logits = model(torch.tensor(scaler.transform(xva), dtype=torch.float32), torch.as_tensor(cva))
    probs = torch.sigmoid(logits).numpy()
    return model, scaler, encoders, y, yva, probs


def save_preprocessing_objects(tmpdir):
    model, scaler, encoders, y, yva, probs = _fit()
    bundle = {
        "model": model.state_dict(),
        "scaler": scaler,  # truth: weights_only
        "region_encoder": encoders["region"],  # truth: weights_only
        "plan_vocab": dict(zip(encoders["plan"].classes_.tolist(), range(len(encoders["plan"].classes_)))),
        "num_cols": NUM_COLS,
        "cat_cols": CAT_COLS,
    }
    path = os.path.join(tmpdir, "bundle.pt")
    torch.save(bundle, path)
    return path


def save_preprocessing_arrays(tmpdir):
    model, scaler, encoders, y, yva, probs = _fit()
    bundle = {
        "model": model.state_dict(),
        "scaler_mean": scaler.mean_,  # truth: weights_only
        "scaler_scale": torch.tensor(scaler.scale_),
        "n_features": scaler.n_features_in_,
        "region_classes": list(encoders["region"].classes_),  # truth: weights_only
        "plan_classes": encoders["plan"].classes_.tolist(),
        "class_weights": compute_class_weight("balanced", classes=np.unique(y), y=y),  # truth: weights_only
        "pos_rate": y.mean(),  # truth: weights_only
        "n_rows": len(y),
    }
    path = os.path.join(tmpdir, "bundle_arrays.pt")
    torch.save(bundle, path)
    return path


def save_portable_bundle(tmpdir):
    model, scaler, encoders, y, yva, probs = _fit()
    weights = compute_class_weight("balanced", classes=np.unique(y), y=y)
    bundle = {
        "model": model.state_dict(),
        "scaler": {"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()},
        "vocab": {name: [str(c) for c in enc.classes_] for name, enc in encoders.items()},
        "class_weights": torch.from_numpy(weights).float(),
        "pos_rate": float(y.mean()),
        "cat_cards": [int(len(e.classes_)) for e in encoders.values()],
        "num_cols": tuple(NUM_COLS),
    }
    path = os.path.join(tmpdir, "bundle_portable.pt")
    torch.save(bundle, path)
    return path


def save_with_metrics(tmpdir):
    model, scaler, encoders, y, yva, probs = _fit()
    preds = (probs > 0.5).astype(int)
    ckpt = {"model": model.state_dict(), "threshold": 0.5}
    ckpt["metrics"] = {}
    ckpt["metrics"]["auc"] = roc_auc_score(yva, probs)
    ckpt["metrics"]["logloss"] = log_loss(yva, probs)
    ckpt["metrics"]["positives"] = preds.sum()  # truth: weights_only
    ckpt["metrics"]["n_val"] = int(yva.shape[0])
    ckpt["metrics"]["brier"] = float(np.mean((probs - yva) ** 2))
    ckpt["metrics"]["max_prob"] = probs.max()  # truth: weights_only
    path = os.path.join(tmpdir, "with_metrics.pt")
    torch.save(ckpt, path)
    return path


def save_category_sizes(tmpdir):
    x_num, region, plan, y = make_data()
    cards = {}
    cards["region"] = len(np.unique(region))
    cards["plan"] = np.unique(plan).size
    cards["max_region_code"] = LabelEncoder().fit_transform(region).max()  # truth: weights_only
    path = os.path.join(tmpdir, "cards.pt")
    torch.save({"cardinalities": cards, "feature_order": NUM_COLS + CAT_COLS}, path)
    return path
