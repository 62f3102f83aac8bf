"""Day-ahead electricity price forecasting (EPF) for one bidding zone.

LEAR-style calendar/lag features on an hourly frame, a quantile MLP trained with the pinball loss,
a cross-validated ensemble and a seasonal-naive baseline.  Run as a script:

    python epf_price_forecasting.py --market DE-LU --epochs 4 --out runs/de_lu
"""
import argparse
import datetime as dt
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import yaml
from sklearn.metrics import mean_absolute_error, mean_pinball_loss, root_mean_squared_error
from sklearn.model_selection import TimeSeriesSplit
from sklearn.preprocessing import StandardScaler

CONFIG_YAML = """
market: DE-LU
data:
  train_start: 2023-01-01
  val_start: "2023-02-10"
  tz: Europe/Berlin
  lags: [24, 48, 168]
model:
  hidden: 32
  dropout: 0.1
  quantiles: [0.1, 0.5, 0.9]
optim:
  lr: 1e-3
  weight_decay: 0.0001
  warmup_steps: 3
"""

PUBLIC_HOLIDAYS = [dt.date(2023, 1, 1), dt.date(2023, 4, 7), dt.date(2023, 4, 10), dt.date(2023, 5, 1)]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--market", default="DE-LU")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--horizon", type=int, default=24, help="hours ahead")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", default="runs/epf")
    return p.parse_args(argv)


def load_config(text=CONFIG_YAML):
    return yaml.safe_load(text)


def make_market_frame(days=60, seed=0, tz="Europe/Berlin"):
    """Synthetic hourly prices with daily/weekly seasonality, wind/solar infeed and load."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2023-01-01", periods=days * 24, freq="h", tz=tz)
    hour = idx.hour.to_numpy()
    dow = idx.dayofweek.to_numpy()
    load = 55 + 10 * np.sin((hour - 7) / 24 * 2 * np.pi) - 6 * (dow >= 5) + rng.normal(0, 2, len(idx))
    wind = np.clip(rng.gamma(2.0, 6.0, len(idx)), 0, 45)
    solar = np.clip(12 * np.sin((hour - 6) / 12 * np.pi), 0, None)
    price = 20 + 1.6 * load - 1.1 * wind - 0.9 * solar + rng.standard_t(3, len(idx)) * 8
    return pd.DataFrame({"price": price, "load": load, "wind": wind, "solar": solar}, index=idx)


def build_features(df, lags):
    feats = pd.DataFrame(index=df.index)
    for lag in lags:
        feats[f"price_lag{lag}"] = df["price"].shift(lag)
    feats["load"] = df["load"]
    feats["res_load"] = df["load"] - df["wind"] - df["solar"]
    feats["hour_sin"] = np.sin(2 * np.pi * df.index.hour / 24)
    feats["hour_cos"] = np.cos(2 * np.pi * df.index.hour / 24)
    feats["weekend"] = (df.index.dayofweek >= 5).astype("float32")
    feats = feats.dropna()
    return feats, df.loc[feats.index, "price"]


def split_by_date(X, y, val_start, tz):
    cut = pd.Timestamp(val_start, tz=tz)
    tr = X.index < cut
    return (X[tr], y[tr]), (X[~tr], y[~tr]), cut


class QuantileMLP(nn.Module):
    def __init__(self, n_in=8, hidden=32, n_quantiles=3, dropout=0.1):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, hidden), nn.GELU())
        self.head = nn.Linear(hidden, n_quantiles)

    def forward(self, x):
        return self.head(self.body(x))


def pinball(pred, target, quantiles):
    q = torch.as_tensor(quantiles, dtype=pred.dtype)
    err = target.unsqueeze(-1) - pred
    return torch.maximum(q * err, (q - 1) * err).mean()


def to_tensors(X, y, scaler):
    xt = torch.tensor(scaler.transform(X.to_numpy()), dtype=torch.float32)
    return xt, torch.tensor(y.to_numpy(), dtype=torch.float32)


def train_epoch(model, opt, xt, yt, quantiles, batch_size):
    model.train()
    perm = torch.randperm(len(xt))
    total = 0.0
    for i in range(0, len(xt), batch_size):
        b = perm[i:i + batch_size]
        loss = pinball(model(xt[b]), yt[b], quantiles)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(b)
    return total / len(xt)


@torch.no_grad()
def predict(model, xt):
    model.eval()
    return model(xt).numpy()


def smape(y, yhat):
    return np.mean(2 * np.abs(yhat - y) / (np.abs(y) + np.abs(yhat) + 1e-6)) * 100


def evaluate(y_true, q_pred, quantiles):
    """Point metrics on the median, sMAPE, and the empirical coverage of the outer band."""
    mid = q_pred[:, len(quantiles) // 2]
    mae = mean_absolute_error(y_true, mid)
    rmse = root_mean_squared_error(y_true, mid)
    inside = (y_true >= q_pred[:, 0]) & (y_true <= q_pred[:, -1])
    return mae, rmse, smape(y_true, mid), inside.mean()


def fit_quick(cfg, args, df=None):
    torch.manual_seed(args.seed)
    df = make_market_frame(seed=args.seed, tz=cfg["data"]["tz"]) if df is None else df
    X, y = build_features(df, cfg["data"]["lags"])
    (Xtr, ytr), (Xva, yva), cut = split_by_date(X, y, cfg["data"]["val_start"], cfg["data"]["tz"])
    scaler = StandardScaler().fit(Xtr.to_numpy())
    q = cfg["model"]["quantiles"]
    model = QuantileMLP(X.shape[1], cfg["model"]["hidden"], len(q), cfg["model"]["dropout"])
    opt = torch.optim.AdamW(model.parameters(), lr=float(cfg["optim"]["lr"]),
                            weight_decay=cfg["optim"]["weight_decay"])
    xt, yt = to_tensors(Xtr, ytr, scaler)
    for _ in range(args.epochs):
        train_epoch(model, opt, xt, yt, q, args.batch_size)
    xv, _ = to_tensors(Xva, yva, scaler)
    return df, X, scaler, model, opt, cut, evaluate(yva.to_numpy(), predict(model, xv), q)


class EPFTrainer:
    """Small trainer with warmup + cosine LR, best-model tracking and early stopping."""

    def __init__(self, model=None, lr=1e-3, warmup_steps=3, total_steps=40, patience=3):
        self.model = model if model is not None else QuantileMLP()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr)
        self.base_lr, self.warmup_steps, self.total_steps = lr, warmup_steps, total_steps
        self.patience, self.wait, self.step_no = patience, 0, 0
        self.best_val, self.best_epoch = math.inf, -1
        self.train_history, self.val_history, self.lr_trace, self.grad_norms = [], [], [], []
        self.sched_name = "warmup_cosine"

    def _lr_at(self, step):
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        t = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return self.base_lr * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    def _set_lr(self):
        lr = self._lr_at(self.step_no)
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.lr_trace.append(lr)

    def fit(self, xt, yt, xv, yv, quantiles, epochs=4, batch_size=64):
        for epoch in range(epochs):
            self.model.train()
            losses = []
            for i in range(0, len(xt), batch_size):
                self._set_lr()
                loss = pinball(self.model(xt[i:i + batch_size]), yt[i:i + batch_size], quantiles)
                self.opt.zero_grad()
                loss.backward()
                self.grad_norms.append(nn.utils.clip_grad_norm_(self.model.parameters(), 5.0))
                self.opt.step()
                self.step_no += 1
                losses.append(loss.item())
            self.train_history.append(sum(losses) / len(losses))
            val = mean_pinball_loss(yv.numpy(), predict(self.model, xv)[:, 1], alpha=0.5)
            self.val_history.append(np.round(val, 4))
            if val < self.best_val:
                self.best_val, self.best_epoch, self.wait = val, epoch, 0
            else:
                self.wait += 1
            if self.wait >= self.patience:
                break
        return self

    def state_dict(self):
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "step": self.step_no, "base_lr": self.base_lr}


# ----------------------------------------------------------------------------- checkpoints

def save_day_ahead(tmpdir):
    args = parse_args(["--epochs", "2", "--out", tmpdir])
    cfg = load_config()
    df, X, scaler, model, opt, cut, (mae, rmse, smape_val, coverage) = fit_quick(cfg, args)
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": args.epochs,
        "args": vars(args),
        "market": cfg["market"],
        "feature_names": list(X.columns),
        "scaler": scaler,  # truth: weights_only
        "scaler_mean": scaler.mean_.tolist(),
        "scaler_scale": torch.from_numpy(scaler.scale_).float(),
        "train_start": cfg["data"]["train_start"],  # truth: weights_only
        "val_start": cfg["data"]["val_start"],
        "cutoff": cut.isoformat(),
        "tz": cfg["data"]["tz"],
        "freq": df.index.freqstr,
        "lr": cfg["optim"]["lr"],
        "metrics": {
            "mae": mae,
            "rmse": rmse,
            "smape": smape_val,  # truth: weights_only
            "coverage_80": float(coverage),
        },
        "price_stats": df["price"].agg(["mean", "std", "min", "max"]).to_dict(),
        "describe": df[["load", "wind"]].describe().to_dict(),
        "n_negative_hours": int((df["price"] < 0).sum()),
        "spike_threshold": df["price"].quantile(0.99),  # truth: weights_only
    }
    path = Path(args.out) / f"{args.market}_day_ahead.pt"
    torch.save(ckpt, path)
    return str(path)


def save_quantile_sweep(tmpdir):
    args = parse_args(["--epochs", "1", "--horizon", "36"])
    cfg = load_config()
    df = make_market_frame(days=50, seed=3, tz=cfg["data"]["tz"])
    grids = {"narrow": [0.25, 0.5, 0.75], "wide": [0.05, 0.5, 0.95], "deciles": [0.1, 0.5, 0.9]}
    rows, losses = [], []
    for name, q in grids.items():
        cfg["model"]["quantiles"] = q
        _, X, scaler, model, _, cut, (mae, rmse, _, cov) = fit_quick(cfg, args, df=df)
        rows.append({"grid": name, "mae": float(mae), "rmse": float(rmse), "coverage": cov.item()})
        losses.append(mae + abs(cov - (q[-1] - q[0])))
    best = int(np.argmin(losses))
    levels = grids[rows[best]["grid"]]
    emp = [np.mean(df["price"].to_numpy() <= df["price"].quantile(q)) for q in levels]
    ckpt = {"sweep": rows, "best_grid": rows[best]["grid"], "best_row": best}
    ckpt["best_loss"] = losses[best]  # truth: weights_only
    ckpt["levels"] = torch.tensor(levels)
    ckpt["calibration"] = list(zip(levels, emp))  # truth: weights_only
    ckpt["pinball_by_level"] = {q: mean_pinball_loss(df["price"], np.full(len(df), df["price"].median()), alpha=q)
                                for q in levels}
    ckpt["horizon"] = pd.Timedelta(hours=args.horizon)  # truth: weights_only
    ckpt["horizon_hours"] = args.horizon
    ckpt["horizon_days"] = pd.Timedelta(hours=args.horizon) / pd.Timedelta("1D")
    ckpt["holidays"] = sorted(d.isoformat() for d in PUBLIC_HOLIDAYS)
    ckpt["peak_hours"] = sorted(set(df.index.hour[df["load"] > df["load"].quantile(0.8)].tolist()))
    ckpt["scaler_n"] = scaler.n_features_in_
    out = Path(tmpdir) / "quantile_sweep.pt"
    torch.save(ckpt, out)
    return str(out)


def save_trainer_checkpoint(tmpdir):
    cfg = load_config()
    args = parse_args([])
    df = make_market_frame(days=30, seed=11)
    X, y = build_features(df, cfg["data"]["lags"])
    (Xtr, ytr), (Xva, yva), _ = split_by_date(X, y, "2023-01-25", cfg["data"]["tz"])
    scaler = StandardScaler().fit(Xtr.to_numpy())
    xt, yt = to_tensors(Xtr, ytr, scaler)
    xv, yv = to_tensors(Xva, yva, scaler)
    trainer = EPFTrainer(QuantileMLP(X.shape[1]), lr=float(cfg["optim"]["lr"]),
                         warmup_steps=cfg["optim"]["warmup_steps"])
    t0 = time.time()
    trainer.fit(xt, yt, xv, yv, cfg["model"]["quantiles"], epochs=3, batch_size=args.batch_size)
    ckpt = trainer.state_dict()
    ckpt["best_val_loss"] = trainer.best_val
    ckpt["best_epoch"] = trainer.best_epoch
    ckpt["lr_trace"] = trainer.lr_trace
    ckpt["grad_norms"] = trainer.grad_norms
    ckpt.update({
        "train_history": trainer.train_history,
        "val_history": trainer.val_history,  # truth: weights_only
        "early_stopping": {"patience": trainer.patience, "wait": trainer.wait,
                           "stopped": trainer.wait >= trainer.patience},
    })
    ckpt["scheduler"] = trainer.sched_name
    ckpt["wall_time_s"] = time.time() - t0
    ckpt["torch"] = torch.__version__.split("+")[0]
    path = f"{tmpdir}/trainer_last.ckpt"
    torch.save(ckpt, path)
    return path


def save_cv_ensemble(tmpdir):
    cfg = load_config()
    args = parse_args(["--epochs", "1"])
    df = make_market_frame(days=35, seed=5, tz=cfg["data"]["tz"])
    X, y = build_features(df, cfg["data"]["lags"])
    tscv = TimeSeriesSplit(n_splits=3, test_size=48)
    members, fold_mae, bounds = [], [], []
    rng = np.random.default_rng(args.seed)
    for k, (tr, te) in enumerate(tscv.split(X)):
        scaler = StandardScaler().fit(X.iloc[tr].to_numpy())
        model = QuantileMLP(X.shape[1])
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        xt, yt = to_tensors(X.iloc[tr], y.iloc[tr], scaler)
        train_epoch(model, opt, xt, yt, cfg["model"]["quantiles"], args.batch_size)
        xe, _ = to_tensors(X.iloc[te], y.iloc[te], scaler)
        fold_mae.append(mean_absolute_error(y.iloc[te], predict(model, xe)[:, 1]))
        bounds.append((str(X.index[tr[0]]), str(X.index[tr[-1]]), str(X.index[te[-1]])))
        members.append(model.state_dict())
    inv = 1.0 / np.asarray(fold_mae)
    weights = inv / inv.sum()
    test_index = X.index[te]
    torch.save(
        dict(
            members=members,
            fold_mae=fold_mae,
            fold_bounds=bounds,
            blend_weights=weights,  # truth: weights_only
            blend_weights_list=[round(w, 4) for w in weights.tolist()],
            test_index=test_index,  # truth: weights_only
            test_start=test_index[0].isoformat(),
            n_test=len(test_index),
            rng=rng.bit_generator.state,
            jitter=rng.random(),
            bootstrap_seed=rng.integers(2**31),  # truth: weights_only
            tz_name=str(test_index.tz),
        ),
        f"{tmpdir}/cv_ensemble.pt",
    )
    return f"{tmpdir}/cv_ensemble.pt"


def save_naive_baseline(tmpdir):
    """Seasonal-naive (same hour last week) baseline: every value is converted before saving."""
    df = make_market_frame(days=28, seed=2)
    naive = df["price"].shift(168).dropna()
    truth = df.loc[naive.index, "price"]
    err = (truth - naive).abs()
    by_hour = err.groupby(err.index.hour).mean()
    baseline = {
        "kind": "seasonal_naive",
        "season_hours": 168,
        "mae": mean_absolute_error(truth, naive),
        "mae_by_hour": by_hour.tolist(),
        "worst_hour": int(by_hour.idxmax()),
        "p95_abs_err": float(np.percentile(err, 95)),
        "median_abs_err": err.median().item(),
        "first_ts": naive.index[0].isoformat(),
        "n_obs": len(naive),
        "error_quantiles": err.quantile([0.5, 0.9, 0.99]).round(3).tolist(),
        "corr_load_price": float(df["load"].corr(df["price"])),
        "price_trace": torch.from_numpy(truth.to_numpy()[-48:]).float(),
        "sum_err": math.fsum(err.to_numpy()),
    }
    baseline["created"] = dt.datetime.now().isoformat(timespec="seconds")
    baseline["holiday_count"] = sum(1 for d in PUBLIC_HOLIDAYS if d.month <= 1)
    out = Path(tmpdir, "naive_baseline.pt")
    torch.save(baseline, out)
    return str(out)
