#!/usr/bin/env python
"""Customer lifetime value: RFM features -> zero-inflated lognormal (ZILN) network.

    python clv_pipeline.py --data-dir data/retail --horizon-days 365 --epochs 20

Also fits a BG/NBD-style baseline with scipy and a quantile MLP for spend intervals.
"""
import argparse
import math
import os
from collections import deque
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import optimize, special
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = ["recency", "frequency", "monetary", "tenure", "aov"]
CATEGORICAL = ["channel"]


def build_arg_parser():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", type=Path, default=Path("data/retail"))
    p.add_argument("--out-dir", type=str, default="runs/clv")
    p.add_argument("--cutoff", type=str, default="2023-06-30")
    p.add_argument("--horizon-days", type=int, default=365)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--quantiles", type=float, nargs="+", default=[0.1, 0.5, 0.9])
    p.add_argument("--seed", type=int, default=7)
    return p


def simulate_transactions(n_customers=300, seed=7, start="2022-01-01", days=730):
    rng = np.random.default_rng(seed)
    rows = []
    channels = np.array(["web", "app", "store"])
    for cid in range(n_customers):
        rate = rng.gamma(0.8, 0.02)
        first = rng.integers(0, days // 2)
        n = max(1, rng.poisson(rate * (days - first)))
        t = np.sort(rng.integers(first, days, size=n))
        spend = rng.lognormal(3.0 + 0.3 * (cid % 3), 0.6, size=n)
        ch = channels[rng.integers(0, 3)]
        rows += [(cid, d, s, ch) for d, s in zip(t, spend)]
    df = pd.DataFrame(rows, columns=["customer_id", "day", "amount", "channel"])
    df["date"] = pd.Timestamp(start) + pd.to_timedelta(df["day"], unit="D")
    return df.drop(columns="day")


def rfm_features(df, cutoff, horizon_days):
    cal = df[df["date"] <= cutoff]
    hold = df[(df["date"] > cutoff) & (df["date"] <= cutoff + pd.Timedelta(days=horizon_days))]
    g = cal.groupby("customer_id")
    feats = pd.DataFrame({
        "recency": (g["date"].max() - g["date"].min()).dt.days,
        "frequency": g.size() - 1,
        "monetary": g["amount"].mean(),
        "tenure": (cutoff - g["date"].min()).dt.days,
        "channel": g["channel"].first(),
    })
    feats["aov"] = g["amount"].sum() / g.size()
    feats["target"] = hold.groupby("customer_id")["amount"].sum().reindex(feats.index).fillna(0.0)
    return feats


def fit_preprocessor(feats):
    pre = ColumnTransformer([
        ("num", StandardScaler(), NUMERIC),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL),
    ])
    X = pre.fit_transform(feats[NUMERIC + CATEGORICAL]).astype(np.float32)
    return pre, X


class ZILNLoss(nn.Module):
    """Zero-inflated lognormal loss (Wang et al., 2019)."""

    def forward(self, logits, target):
        p_logit, mu, sigma_raw = logits.unbind(-1)
        positive = (target > 0).float()
        cls = F.binary_cross_entropy_with_logits(p_logit, positive)
        sigma = F.softplus(sigma_raw) + 1e-4
        safe = torch.where(target > 0, target, torch.ones_like(target))
        nll = (torch.log(safe) - mu) ** 2 / (2 * sigma ** 2) + torch.log(sigma * safe * math.sqrt(2 * math.pi))
        return cls + (positive * nll).sum() / positive.sum().clamp(min=1)


class CLVNet(nn.Module):
    def __init__(self, n_in=8, hidden=64, n_out=3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, n_out))

    def forward(self, x):
        return self.net(x)


def ziln_expected_value(logits):
    p_logit, mu, sigma_raw = logits.unbind(-1)
    sigma = F.softplus(sigma_raw) + 1e-4
    return torch.sigmoid(p_logit) * torch.exp(mu + 0.5 * sigma ** 2)


def normalized_gini(y_true, y_pred):
    order = np.argsort(-y_pred)
    cum = np.cumsum(y_true[order]) / y_true.sum()
    gini = (cum - np.arange(1, len(y_true) + 1) / len(y_true)).sum() / len(y_true)
    perfect = np.cumsum(np.sort(y_true)[::-1]) / y_true.sum()
    return gini / ((perfect - np.arange(1, len(y_true) + 1) / len(y_true)).sum() / len(y_true))


def decile_table(y_true, y_pred):
    df = pd.DataFrame({"y": y_true, "p": y_pred})
    df["decile"] = pd.qcut(df["p"].rank(method="first"), 10, labels=False)
    tab = df.groupby("decile").agg(actual=("y", "mean"), predicted=("p", "mean"))
    tab["lift"] = tab["actual"] / df["y"].mean()
    return tab


class CLVTrainer:
    def __init__(self, n_in=8, hidden=64, lr=3e-3, n_out=3, loss=None):
        self.model = CLVNet(n_in, hidden, n_out)
        self.loss_fn = loss or ZILNLoss()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=10)
        self.epoch_losses = deque(maxlen=5)
        self.global_step = 0

    def fit(self, X, y, epochs, batch_size):
        X, y = torch.from_numpy(X), torch.as_tensor(y, dtype=torch.float32)
        for _ in range(epochs):
            perm, total = torch.randperm(len(X)), []
            for i in range(0, len(X), batch_size):
                idx = perm[i:i + batch_size]
                loss = self.loss_fn(self.model(X[idx]), y[idx])
                self.opt.zero_grad()
                loss.backward()
                self.opt.step()
                self.global_step += 1
                total.append(loss.item())
            self.sched.step()
            self.epoch_losses.append(sum(total) / len(total))
        return list(self.epoch_losses)

    @torch.no_grad()
    def predict(self, X):
        return ziln_expected_value(self.model(torch.from_numpy(X))).numpy()


def pinball_loss(pred, target, quantiles):
    diff = target.unsqueeze(-1) - pred
    q = torch.as_tensor(quantiles)
    return torch.maximum(q * diff, (q - 1) * diff).mean()


def bgnbd_negloglik(params, freq, rec, T):
    r, alpha, a, b = np.exp(params)
    ln_a1 = special.gammaln(r + freq) - special.gammaln(r) + r * np.log(alpha)
    ln_a2 = special.betaln(a, b + freq) - special.betaln(a, b)
    ln_a3 = -(r + freq) * np.log(alpha + T)
    ln_a4 = np.log(a) - np.log(b + freq - 1 + 1e-9) - (r + freq) * np.log(alpha + rec)
    d = (freq > 0).astype(float)
    return -np.sum(ln_a1 + ln_a2 + np.logaddexp(ln_a3, d * ln_a4 + (1 - d) * -1e9))


FACTORIES = {"CLVNet": lambda: CLVNet(8)}


def _prepare(argv):
    args = build_arg_parser().parse_args(argv)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    df = simulate_transactions(seed=args.seed)
    cutoff = pd.Timestamp(args.cutoff)
    feats = rfm_features(df, cutoff, args.horizon_days)
    return args, df, cutoff, feats


def save_ziln_model(tmpdir):
    args, df, cutoff, feats = _prepare(["--epochs", "2", "--data-dir", "/data/retail_uk"])
    pre, X = fit_preprocessor(feats)
    y = feats["target"].to_numpy(np.float32)
    trainer = CLVTrainer(X.shape[1], args.hidden, args.lr)
    losses = trainer.fit(X, y, args.epochs, args.batch_size)
    pred = trainer.predict(X)
    deciles = decile_table(y, pred)
    num_scaler = pre.named_transformers_["num"]
    hparams = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    ckpt = {
        "state_dict": trainer.model.state_dict(),
        "optimizer": trainer.opt.state_dict(),
        "args": args,  # truth: weights_only
        "hparams": hparams,
        "feature_names": list(pre.get_feature_names_out()),
        "scaler_mean": num_scaler.mean_,  # truth: weights_only
        "scaler_scale": torch.tensor(num_scaler.scale_, dtype=torch.float32),
        "channel_levels": pre.named_transformers_["cat"].categories_[0].tolist(),  # truth: weights_only
        "cutoff": cutoff,  # truth: weights_only
        "cutoff_iso": cutoff.isoformat(),
        "losses": losses,
        "gini": normalized_gini(y, pred),  # truth: weights_only
        "decile_lift": deciles["lift"].round(3).tolist(),
        "top_decile_share": float(deciles["actual"].iloc[-1] / deciles["actual"].sum()),
    }
    ckpt["spend_quantiles"] = df["amount"].quantile([0.5, 0.9, 0.99]).to_dict()
    ckpt["zero_rate"] = (y == 0).mean()  # truth: weights_only
    ckpt["n_customers"] = df["customer_id"].nunique()
    path = os.path.join(tmpdir, "ziln.pt")
    torch.save(ckpt, path)
    return path


def save_bgnbd_baseline(tmpdir):
    args, df, cutoff, feats = _prepare(["--cutoff", "2023-03-31"])
    freq = feats["frequency"].to_numpy(float)
    rec = feats["recency"].to_numpy(float)
    T = feats["tenure"].to_numpy(float)
    res = optimize.minimize(bgnbd_negloglik, x0=np.zeros(4), args=(freq, rec, T), method="Nelder-Mead",
                            options={"maxiter": 400})
    r, alpha, a, b = np.exp(res.x)
    names = ("r", "alpha", "a", "b")
    ckpt = {
        "model": "bgnbd",
        "params": dict(zip(names, np.exp(res.x).tolist())),
        "log_params": res.x,  # truth: weights_only
        "nll": float(res.fun),
        "converged": res.success,
        "n_iter": res.nit,
        "calibration_end": cutoff.date(),  # truth: weights_only
        "holdout_days": timedelta(days=args.horizon_days).days,
        "mean_purchase_rate": float(r / alpha),
        "dropout_prob": a / (a + b),  # truth: weights_only
    }
    path = os.path.join(tmpdir, "bgnbd.pt")
    torch.save(ckpt, path)
    return path


def save_cohort_retention(tmpdir):
    _, df, cutoff, _ = _prepare([])
    df = df.assign(month=df["date"].dt.to_period("M"))
    first = df.groupby("customer_id")["month"].min().rename("cohort")
    df = df.join(first, on="customer_id")
    df["age"] = (df["month"] - df["cohort"]).apply(lambda off: off.n)
    counts = df.groupby(["cohort", "age"])["customer_id"].nunique().unstack(fill_value=0)
    retention = counts.div(counts[0], axis=0)
    sizes = counts[0]
    ckpt = {}
    ckpt["retention"] = torch.tensor(retention.to_numpy(), dtype=torch.float32)
    ckpt["cohort_labels"] = [str(p) for p in retention.index]
    ckpt["first_cohort"] = retention.index[0]  # truth: weights_only
    ckpt["largest_cohort"] = str(sizes.idxmax())
    ckpt["largest_cohort_size"] = int(sizes.max())
    ckpt["month3_retention"] = retention[3].fillna(0).tolist() if 3 in retention else []
    ckpt["avg_month1"] = float(retention[1].mean())
    ckpt["as_of"] = date(2023, 6, 30).isoformat()
    path = os.path.join(tmpdir, "cohorts.pt")
    torch.save(ckpt, path)
    return path


def save_quantile_spend(tmpdir):
    args, df, cutoff, feats = _prepare(["--quantiles", "0.1", "0.5", "0.9"])
    pre, X = fit_preprocessor(feats)
    y = np.log1p(feats["target"].to_numpy(np.float32))
    trainer = CLVTrainer(X.shape[1], 32, 1e-2, n_out=len(args.quantiles),
                         loss=lambda p, t: pinball_loss(p, t, args.quantiles))
    trainer.fit(X, y, 2, 64)
    with torch.no_grad():
        q = trainer.model(torch.from_numpy(X)).numpy()
    lo, hi = q[:, 0], q[:, -1]
    covered = (y >= lo) & (y <= hi)
    state = {"model": trainer.model.state_dict(), "sched": trainer.sched.state_dict()}
    state.update(
        quantiles=tuple(args.quantiles),
        coverage=covered.mean(),  # truth: weights_only
        interval_width=float(np.median(hi - lo)),
        recent_losses=trainer.epoch_losses,  # truth: weights_only
        global_step=trainer.global_step,
        crossing_rate=float((np.diff(q, axis=1) < 0).mean()),
    )
    path = os.path.join(tmpdir, "quantile_mlp.pt")
    torch.save(state, path)
    return path


def save_serving_artifact(tmpdir):
    args, df, cutoff, feats = _prepare(["--hidden", "16", "--epochs", "1"])
    pre, X = fit_preprocessor(feats)
    y = feats["target"].to_numpy(np.float32)
    trainer = CLVTrainer(X.shape[1], args.hidden, args.lr)
    trainer.fit(X, y, args.epochs, args.batch_size)
    num = pre.named_transformers_["num"]
    artifact = {
        "state_dict": trainer.model.state_dict(),
        "numeric": NUMERIC,
        "categorical": {c: list(map(str, cats)) for c, cats in zip(CATEGORICAL, pre.named_transformers_["cat"].categories_)},
        "mean": torch.from_numpy(num.mean_.astype(np.float32)),
        "scale": num.scale_.tolist(),
        "n_in": int(X.shape[1]),
        "hidden": args.hidden,
        "cutoff": str(cutoff.date()),
        "horizon_days": args.horizon_days,
        "data_dir": os.fspath(args.data_dir),
        "target_mean": float(y.mean()),
        "zero_share": round(float((y == 0).mean()), 4),
        "max_target": y.max().item(),
    }
    path = os.path.join(tmpdir, "clv_serving.pt")
    torch.save(artifact, path)
    return path
