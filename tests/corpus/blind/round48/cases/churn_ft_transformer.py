"""Customer churn with an FT-Transformer over tabular features (argparse training script).

python churn_ft_transformer.py --epochs 3 --d-token 8 --out runs/churn
"""
import argparse
import datetime
import os
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import stats
from sklearn.metrics import (average_precision_score, brier_score_loss, confusion_matrix,
                             precision_recall_curve, roc_auc_score)
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import LabelEncoder, StandardScaler

CAT_COLS = ["contract", "payment_method", "internet_service"]
NUM_COLS = ["tenure_months", "monthly_charges", "total_charges", "support_calls"]
TARGET = "churned"


def build_parser():
    p = argparse.ArgumentParser(description="FT-Transformer churn model")
    p.add_argument("--data-dir", type=Path, default=Path("data/telco"))
    p.add_argument("--out", type=str, default="runs/churn")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=1e-5)
    p.add_argument("--d-token", type=int, default=8)
    p.add_argument("--n-heads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    return p


def make_customers(n=48, seed=0):
    rng = np.random.default_rng(seed)
    contract = rng.choice(["month-to-month", "one_year", "two_year"], size=n, p=[0.5, 0.3, 0.2])
    tenure = rng.integers(1, 72, size=n)
    monthly = np.round(rng.uniform(20, 110, size=n), 2)
    df = pd.DataFrame({
        "customer_id": [f"C{i:05d}" for i in range(n)],
        "contract": contract,
        "payment_method": rng.choice(["e_check", "card", "bank_transfer"], size=n),
        "internet_service": rng.choice(["dsl", "fiber", "none"], size=n),
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "total_charges": monthly * tenure,
        "support_calls": rng.poisson(1.5, size=n),
        "signup_date": pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 900, size=n), unit="D"),
    })
    logit = 1.2 * (df["contract"] == "month-to-month") - 0.03 * df["tenure_months"] + 0.4 * df["support_calls"]
    df[TARGET] = (rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)
    df.loc[df.index[:2], TARGET] = [0, 1]
    return df


class TabularPreprocessor:
    """Label-encodes categoricals and standardizes numerics, like most churn repos do."""

    def __init__(self, cat_cols, num_cols):
        self.cat_cols = list(cat_cols)
        self.num_cols = list(num_cols)
        self.encoders = {}
        self.scaler = StandardScaler()
        self.fitted_at = None

    def fit(self, df):
        for col in self.cat_cols:
            self.encoders[col] = LabelEncoder().fit(df[col].astype(str))
        self.scaler.fit(df[self.num_cols].to_numpy(dtype=np.float64))
        self.fitted_at = time.time()
        return self

    def cardinalities(self):
        return [len(self.encoders[c].classes_) for c in self.cat_cols]

    def transform(self, df):
        x_cat = np.stack([self.encoders[c].transform(df[c].astype(str)) for c in self.cat_cols], axis=1)
        x_num = self.scaler.transform(df[self.num_cols].to_numpy(dtype=np.float64))
        return torch.as_tensor(x_cat, dtype=torch.long), torch.as_tensor(x_num, dtype=torch.float32)

    def vocab(self):
        return {c: self.encoders[c].classes_.tolist() for c in self.cat_cols}


class FeatureTokenizer(nn.Module):
    def __init__(self, n_num=4, cardinalities=(3, 3, 3), d_token=8):
        super().__init__()
        self.num_weight = nn.Parameter(torch.randn(n_num, d_token) * 0.1)
        self.num_bias = nn.Parameter(torch.zeros(n_num, d_token))
        self.register_buffer("cat_offsets", torch.tensor([0] + list(cardinalities[:-1])).cumsum(0))
        self.cat_emb = nn.Embedding(sum(cardinalities), d_token)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_token))

    def forward(self, x_cat, x_num):
        num_tok = x_num.unsqueeze(-1) * self.num_weight + self.num_bias
        cat_tok = self.cat_emb(x_cat + self.cat_offsets)
        cls = self.cls.expand(x_num.shape[0], -1, -1)
        return torch.cat([cls, num_tok, cat_tok], dim=1)


class FTTransformer(nn.Module):
    def __init__(self, n_num=4, cardinalities=(3, 3, 3), d_token=8, n_heads=2, n_blocks=1, dropout=0.1):
        super().__init__()
        self.tokenizer = FeatureTokenizer(n_num, cardinalities, d_token)
        layer = nn.TransformerEncoderLayer(d_token, n_heads, dim_feedforward=2 * d_token, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, n_blocks, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(d_token), nn.ReLU(), nn.Linear(d_token, 1))

    def forward(self, x_cat, x_num):
        h = self.blocks(self.tokenizer(x_cat, x_num))
        return self.head(h[:, 0]).squeeze(-1)


class ChurnTrainer:
    def __init__(self, model, lr=3e-3, weight_decay=1e-5, pos_weight=1.0, batch_size=16):
        self.model = model
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.pos_weight = torch.tensor(float(pos_weight))
        self.batch_size = batch_size
        self.epoch = 0
        self.history = defaultdict(list)

    def fit_epoch(self, x_cat, x_num, y):
        self.model.train()
        losses = []
        for i in range(0, len(y), self.batch_size):
            logits = self.model(x_cat[i:i + self.batch_size], x_num[i:i + self.batch_size])
            loss = F.binary_cross_entropy_with_logits(logits, y[i:i + self.batch_size].float(),
                                                      pos_weight=self.pos_weight)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        self.epoch += 1
        self.history["train_loss"].append(np.mean(losses))
        return np.mean(losses)

    @torch.no_grad()
    def predict(self, x_cat, x_num):
        self.model.eval()
        return torch.sigmoid(self.model(x_cat, x_num)).numpy()

    def evaluate(self, x_cat, x_num, y):
        y = y.numpy()
        prob = self.predict(x_cat, x_num)
        prec, rec, thr = precision_recall_curve(y, prob)
        f1 = 2 * prec * rec / np.clip(prec + rec, 1e-9, None)
        best = int(np.argmax(f1[:-1]))
        return {
            "auc": roc_auc_score(y, prob),
            "ap": average_precision_score(y, prob),
            "brier": brier_score_loss(y, prob),
            "ks": stats.ks_2samp(prob[y == 1], prob[y == 0]).statistic,
            "threshold": thr[best],
            "confusion": confusion_matrix(y, prob >= thr[best]),
        }


def prepare(args):
    torch.manual_seed(args.seed)
    df = make_customers(seed=args.seed)
    prep = TabularPreprocessor(CAT_COLS, NUM_COLS).fit(df)
    x_cat, x_num = prep.transform(df)
    y = torch.as_tensor(df[TARGET].to_numpy())
    model = FTTransformer(len(NUM_COLS), prep.cardinalities(), args.d_token, args.n_heads)
    pos_weight = (len(df) - df[TARGET].sum()) / max(df[TARGET].sum(), 1)
    trainer = ChurnTrainer(model, args.lr, args.weight_decay, pos_weight, args.batch_size)
    return df, prep, (x_cat, x_num, y), trainer


def save_best_checkpoint(tmpdir):
    args = build_parser().parse_args(["--out", tmpdir, "--epochs", "2"])
    df, prep, (x_cat, x_num, y), trainer = prepare(args)
    best_auc, best_state = -1.0, None
    for _ in range(args.epochs):
        train_loss = trainer.fit_epoch(x_cat, x_num, y)
        metrics = trainer.evaluate(x_cat, x_num, y)
        if metrics["auc"] > best_auc:
            best_auc = metrics["auc"]
            best_state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "best.pt")
    torch.save({
        "epoch": trainer.epoch,
        "model_state_dict": best_state,
        "optimizer_state_dict": trainer.optimizer.state_dict(),
        "args": args,  # truth: weights_only
        "best_auc": best_auc,
        "train_loss": train_loss,  # truth: weights_only
        "ks_statistic": metrics["ks"],  # truth: weights_only
        "average_precision": metrics["ap"],
        "cardinalities": prep.cardinalities(),
        "vocab": prep.vocab(),
    }, path)
    return path


def save_preprocessing_bundle(tmpdir):
    df = make_customers()
    prep = TabularPreprocessor(CAT_COLS, NUM_COLS).fit(df)
    _, tenure_edges = pd.qcut(df["tenure_months"], q=4, retbins=True)
    bundle = {
        "cat_cols": prep.cat_cols,
        "num_cols": list(df[prep.num_cols].columns),
        "vocab": prep.vocab(),
        "num_mean": prep.scaler.mean_,  # truth: weights_only
        "num_scale": torch.from_numpy(prep.scaler.scale_).float(),
        "n_samples_seen": int(prep.scaler.n_samples_seen_),
        "dtypes": df[prep.num_cols].dtypes.astype(str).to_dict(),
        "tenure_edges": tenure_edges,  # truth: weights_only
        "churn_rate": df[TARGET].mean(),  # truth: weights_only
        "contract_counts": Counter(df["contract"]),
        "contract_churn": df.groupby("contract")[TARGET].mean().to_dict(),
        "n_customers": len(df),
        "fitted_at": prep.fitted_at,
    }
    bundle["signup_cutoff"] = df["signup_date"].max()  # truth: weights_only
    bundle["signup_start"] = str(df["signup_date"].min().date())
    path = os.path.join(tmpdir, "preprocessor.pt")
    torch.save(bundle, path)
    return path


def save_cv_ensemble(tmpdir):
    args = build_parser().parse_args(["--epochs", "1"])
    df = make_customers(seed=1)
    skf = StratifiedKFold(n_splits=2, shuffle=True, random_state=args.seed)
    fold_states, fold_metrics = [], defaultdict(list)
    oof = np.zeros(len(df))
    for fold, (tr, va) in enumerate(skf.split(df, df[TARGET])):
        prep = TabularPreprocessor(CAT_COLS, NUM_COLS).fit(df.iloc[tr])
        xc, xn = prep.transform(df)
        y = torch.as_tensor(df[TARGET].to_numpy())
        trainer = ChurnTrainer(FTTransformer(len(NUM_COLS), prep.cardinalities(), args.d_token), args.lr)
        trainer.fit_epoch(xc[tr], xn[tr], y[tr])
        oof[va] = trainer.predict(xc[va], xn[va])
        for name, value in trainer.evaluate(xc[va], xn[va], y[va]).items():
            fold_metrics[name].append(value)
        fold_states.append(trainer.model.state_dict())
    aucs = [float(a) for a in fold_metrics["auc"]]
    ensemble = {
        "fold_states": fold_states,
        "n_folds": skf.get_n_splits(),
        "fold_auc": aucs,
        "cv_auc_mean": statistics.fmean(aucs),
        "cv_auc_std": statistics.pstdev(aucs),
        "oof_auc": roc_auc_score(df[TARGET], oof),
        "oof_pred": torch.from_numpy(oof),
        "thresholds": fold_metrics["threshold"],  # truth: weights_only
        "fold_briers": [round(b, 4) for b in fold_metrics["brier"]],
        "metric_history": fold_metrics,  # truth: weights_only
    }
    ensemble.update(
        created=datetime.datetime.now(),  # truth: weights_only
        host=os.uname().nodename,
    )
    path = os.path.join(tmpdir, "cv_ensemble.pt")
    torch.save(ensemble, path)
    return path


def population_stability(expected, actual, bins=5):
    edges = np.quantile(expected, np.linspace(0, 1, bins + 1))
    e = np.histogram(expected, edges)[0] / len(expected) + 1e-6
    a = np.histogram(actual, edges)[0] / len(actual) + 1e-6
    return np.sum((a - e) * np.log(a / e))


def save_drift_monitor(tmpdir):
    reference, current = make_customers(seed=2), make_customers(seed=3)
    psi = {c: population_stability(reference[c], current[c]) for c in NUM_COLS}
    ks_pvalues = {c: float(stats.ks_2samp(reference[c], current[c]).pvalue) for c in NUM_COLS}
    worst = max(psi, key=psi.get)
    state = {
        "reference_rows": len(reference),
        "psi": {c: float(v) for c, v in psi.items()},
        "ks_pvalues": ks_pvalues,
        "worst_feature": worst,
        "worst_rank": int(np.argsort(list(psi.values()))[-1]),
        "worst_psi": psi[worst],  # truth: weights_only
        "alert": bool(psi[worst] > 0.2),
        "reference_means": reference[NUM_COLS].mean().to_dict(),
        "current_churn": current[TARGET].value_counts(normalize=True).to_dict(),
        "window": {"start": reference["signup_date"].min().isoformat(),
                   "days": (current["signup_date"].max() - reference["signup_date"].min()).days},
    }
    path = os.path.join(tmpdir, "drift.pt")
    torch.save(state, path)
    return path


def save_serving_export(tmpdir):
    args = build_parser().parse_args([])
    df, prep, (x_cat, x_num, y), trainer = prepare(args)
    trainer.fit_epoch(x_cat, x_num, y)
    metrics = trainer.evaluate(x_cat, x_num, y)
    hparams = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(trainer.optimizer, mode="max")
    scheduler.step(metrics["auc"])
    export = {
        "model": trainer.model.state_dict(),
        "hparams": hparams,
        "vocab": prep.vocab(),
        "scaler": {"mean": prep.scaler.mean_.tolist(), "scale": prep.scaler.scale_.tolist()},
        "decision_threshold": round(float(metrics["threshold"]), 4),
        "confusion": metrics["confusion"].tolist(),
        "brier": metrics["brier"],
        "scheduler": scheduler.state_dict(),
        "train_loss_curve": [float(v) for v in trainer.history["train_loss"]],
        "torch_version": str(torch.__version__),
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "feature_order": ["[CLS]"] + NUM_COLS + CAT_COLS,
        "n_churned": int(df[TARGET].sum()),
    }
    path = os.path.join(tmpdir, "serving.pt")
    torch.save(export, path)
    return path


FACTORIES = {
    "TabularPreprocessor": lambda: TabularPreprocessor(CAT_COLS, NUM_COLS).fit(make_customers(n=16)),
    "ChurnTrainer": lambda: ChurnTrainer(FTTransformer()),
}


if __name__ == "__main__":
    import sys
    print(save_best_checkpoint(sys.argv[1] if len(sys.argv) > 1 else "."))
