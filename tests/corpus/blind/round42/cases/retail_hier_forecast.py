"""Hierarchical demand forecasting for a store x item grid (M5-style) with MinT reconciliation.

    python retail_hier_forecast.py --stores 4 --items 10 --horizon 14 --epochs 3 --out runs/hier

A global MLP forecasts every bottom series (store, item) from a window of scaled daily sales plus
store / department embeddings; the upper levels (total, region, store) are reconciled with MinT.
"""
import argparse
import json
import os
import time
from collections import defaultdict

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import yaml
from sklearn.metrics import mean_absolute_error
from sklearn.preprocessing import LabelEncoder, StandardScaler

CONFIG_YAML = """
split:
  train_end: 2024-02-15
  val_days: 14
hierarchy:
  levels: [total, region, store, item]
reconcile:
  method: mint_shrink
  min_var: 1.0e-4
"""

REGIONS = ("north", "south")
DEPTS = ("FOODS", "HOBBIES", "HOUSEHOLD")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--stores", type=int, default=4)
    p.add_argument("--items", type=int, default=10)
    p.add_argument("--days", type=int, default=120)
    p.add_argument("--window", type=int, default=28)
    p.add_argument("--horizon", type=int, default=14)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", default="runs/hier")
    return p.parse_args(argv)


def make_tables(n_stores, n_items, n_days, seed):
    """Store table, item table and a long daily sales table (date, store_id, item_id, units, price)."""
    rng = np.random.default_rng(seed)
    stores = pd.DataFrame({
        "store_id": [f"S{i:02d}" for i in range(n_stores)],
        "region": [REGIONS[i % len(REGIONS)] for i in range(n_stores)],
        "size_sqft": rng.integers(800, 3000, n_stores),
    })
    items = pd.DataFrame({
        "item_id": [f"I{j:03d}" for j in range(n_items)],
        "dept": [DEPTS[j % len(DEPTS)] for j in range(n_items)],
        "base_price": rng.uniform(1.0, 12.0, n_items).round(2),
    })
    dates = pd.date_range("2023-11-01", periods=n_days, freq="D")
    idx = pd.MultiIndex.from_product([dates, stores["store_id"], items["item_id"]],
                                     names=["date", "store_id", "item_id"])
    sales = idx.to_frame(index=False)
    weekly = 1.0 + 0.3 * np.sin(2 * np.pi * sales["date"].dt.day_of_week.to_numpy() / 7)
    sales["units"] = rng.poisson(4.0 * weekly).astype(np.float32)
    sales = sales.merge(items[["item_id", "base_price"]], on="item_id")
    sales["price"] = sales["base_price"] * rng.uniform(0.9, 1.1, len(sales))
    return stores, items, sales.drop(columns="base_price")


class Hierarchy:
    """Summing matrix S (n_total x n_bottom) for total / region / store / store-item."""

    def __init__(self, stores, items):
        self.bottom = [(s, i) for s in stores["store_id"] for i in items["item_id"]]
        region_of = dict(zip(stores["store_id"], stores["region"]))
        rows, self.tags = [], []
        rows.append(np.ones(len(self.bottom)))
        self.tags.append(("total",))
        for r in sorted(set(region_of.values())):
            rows.append(np.array([region_of[s] == r for s, _ in self.bottom], dtype=float))
            self.tags.append(("region", r))
        for s in stores["store_id"]:
            rows.append(np.array([b[0] == s for b in self.bottom], dtype=float))
            self.tags.append(("store", s))
        rows.extend(np.eye(len(self.bottom)))
        self.tags.extend(("item",) + b for b in self.bottom)
        self.S = np.vstack(rows)
        self.level_sizes = {}
        for tag in self.tags:
            self.level_sizes[tag[0]] = self.level_sizes.get(tag[0], 0) + 1


class MinTReconciler:
    def __init__(self, S, min_var=1e-4):
        self.S = S
        self.min_var = min_var
        self.P = None
        self.lambda_ = None

    def fit(self, residuals):
        """residuals: (T, n_total) in-sample one-step errors; shrink the covariance toward its diagonal."""
        cov = np.cov(residuals, rowvar=False)
        diag = np.clip(np.diag(cov), self.min_var, None)
        corr = cov / np.sqrt(np.outer(diag, diag))
        off = corr[~np.eye(len(diag), dtype=bool)]
        self.lambda_ = np.clip(np.var(off) / np.mean(off ** 2), 0.0, 1.0)
        W = self.lambda_ * np.diag(diag) + (1 - self.lambda_) * cov + np.eye(len(diag)) * self.min_var
        Winv = np.linalg.pinv(W)
        self.P = np.linalg.solve(self.S.T @ Winv @ self.S, self.S.T @ Winv)
        return self

    def reconcile(self, base):
        return base @ (self.S @ self.P).T


class WindowMLP(nn.Module):
    def __init__(self, window, horizon, n_stores, n_depts, hidden=64):
        super().__init__()
        self.store_emb = nn.Embedding(n_stores, 4)
        self.dept_emb = nn.Embedding(n_depts, 3)
        self.net = nn.Sequential(nn.Linear(window + 1 + 7, hidden), nn.ReLU(), nn.Linear(hidden, horizon))

    def forward(self, x, price, store, dept):
        z = torch.cat([x, price[:, None], self.store_emb(store), self.dept_emb(dept)], dim=1)
        return self.net(z)


class ForecastTrainer:
    def __init__(self, args, n_stores, n_depts):
        torch.manual_seed(args.seed)
        self.args = args
        self.model = WindowMLP(args.window, args.horizon, n_stores, n_depts, args.hidden)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=args.lr)
        self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(self.opt, factor=0.5, patience=1)
        self.best_val = float("inf")
        self.epoch = 0

    def make_windows(self, panel, price, store_codes, dept_codes):
        """panel: (n_bottom, T) scaled sales -> tensors of windows and targets."""
        w, h = self.args.window, self.args.horizon
        xs, ys, ps, ss, ds = [], [], [], [], []
        for t0 in range(0, panel.shape[1] - w - h + 1, 7):
            xs.append(panel[:, t0:t0 + w])
            ys.append(panel[:, t0 + w:t0 + w + h])
            ps.append(price[:, t0 + w - 1])
            ss.append(store_codes)
            ds.append(dept_codes)
        cat = lambda a: torch.from_numpy(np.concatenate(a).astype(np.float32))
        return cat(xs), cat(ys), cat(ps), torch.from_numpy(np.concatenate(ss)), torch.from_numpy(np.concatenate(ds))

    def fit(self, train, val):
        history = defaultdict(list)
        for self.epoch in range(1, self.args.epochs + 1):
            self.model.train()
            x, y, p, s, d = train
            loss = nn.functional.mse_loss(self.model(x, p, s, d), y)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            val_mae = self.validate(val)
            self.sched.step(val_mae)
            history["train_mse"].append(loss.item())
            history["val_mae"].append(val_mae)
            self.best_val = min(self.best_val, val_mae)
        return history

    @torch.no_grad()
    def validate(self, val):
        self.model.eval()
        x, y, p, s, d = val
        return mean_absolute_error(y.numpy().ravel(), self.model(x, p, s, d).numpy().ravel())

    def predict_bottom(self, last_window, price, store_codes, dept_codes):
        with torch.no_grad():
            out = self.model(torch.from_numpy(last_window.astype(np.float32)),
                             torch.from_numpy(price.astype(np.float32)),
                             torch.from_numpy(store_codes), torch.from_numpy(dept_codes))
        return out.numpy()


def prepare(args):
    stores, items, sales = make_tables(args.stores, args.items, args.days, args.seed)
    hier = Hierarchy(stores, items)
    store_le = LabelEncoder().fit(stores["store_id"])
    dept_le = LabelEncoder().fit(items["dept"])
    panel = sales.pivot_table(index=["store_id", "item_id"], columns="date", values="units").loc[hier.bottom]
    price = sales.pivot_table(index=["store_id", "item_id"], columns="date", values="price").loc[hier.bottom]
    scaler = StandardScaler().fit(price.to_numpy().reshape(-1, 1))
    scale = panel.mean(axis=1).clip(lower=1.0)
    dept_of = dict(zip(items["item_id"], items["dept"]))
    store_codes = store_le.transform([s for s, _ in hier.bottom])
    dept_codes = dept_le.transform([dept_of[i] for _, i in hier.bottom])
    return dict(stores=stores, items=items, sales=sales, hier=hier, store_le=store_le, dept_le=dept_le,
                panel=panel, price=price, scaler=scaler, scale=scale, store_codes=store_codes,
                dept_codes=dept_codes)


def split_and_fit(args, data):
    y = (data["panel"].to_numpy() / data["scale"].to_numpy()[:, None])
    pz = data["scaler"].transform(data["price"].to_numpy().reshape(-1, 1)).reshape(y.shape)
    cut = y.shape[1] - args.horizon
    trainer = ForecastTrainer(args, len(data["store_le"].classes_), len(data["dept_le"].classes_))
    train = trainer.make_windows(y[:, :cut], pz[:, :cut], data["store_codes"], data["dept_codes"])
    val = trainer.make_windows(y[:, cut - args.window:], pz[:, cut - args.window:],
                               data["store_codes"], data["dept_codes"])
    history = trainer.fit(train, val)
    return trainer, history, y, pz


def save_forecaster(tmpdir):
    args = parse_args(["--epochs", "3", "--out", tmpdir])
    data = prepare(args)
    trainer, history, _, _ = split_and_fit(args, data)
    cutoff = data["sales"]["date"].max() - pd.Timedelta(days=args.horizon)
    ckpt = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.opt.state_dict(),
        "scheduler": trainer.sched.state_dict(),
        "epoch": trainer.epoch,
        "args": vars(args),
        "store_vocab": data["store_le"].classes_.tolist(),
        "dept_classes": list(data["dept_le"].classes_),
        "cutoff": cutoff,  # truth: weights_only
        "cutoff_str": str(cutoff.date()),
        "best_val_mae": trainer.best_val,
        "history": dict(history),
        "price_scaler": {"mean": data["scaler"].mean_.tolist(), "scale": data["scaler"].scale_.tolist()},
        "n_series": int(data["hier"].S.shape[1]),
        "saved_at": time.time(),
    }
    ckpt["price_mean"] = data["scaler"].mean_[0]  # truth: weights_only
    ckpt["series_scale"] = torch.tensor(data["scale"].to_numpy(), dtype=torch.float32)
    ckpt.update({
        "zero_share": (data["panel"] == 0).to_numpy().mean(),  # truth: weights_only
        "intermittent_series": int(((data["panel"] == 0).mean(axis=1) > 0.3).sum()),
    })
    path = os.path.join(tmpdir, "forecaster.pt")
    torch.save(ckpt, path)
    return path


def save_reconciler(tmpdir):
    cfg = yaml.safe_load(CONFIG_YAML)
    args = parse_args(["--epochs", "1"])
    data = prepare(args)
    trainer, _, y, pz = split_and_fit(args, data)
    hier = data["hier"]
    # one-step in-sample residuals at every level: aggregate bottom errors through S
    fitted = trainer.predict_bottom(y[:, -args.window - args.horizon:-args.horizon], pz[:, -args.horizon - 1],
                                    data["store_codes"], data["dept_codes"])
    actual = y[:, -args.horizon:]
    rng = np.random.default_rng(0)
    resid = (hier.S @ (actual - fitted)).T + rng.normal(0, 0.05, (args.horizon, hier.S.shape[0]))
    rec = MinTReconciler(hier.S, min_var=cfg["reconcile"]["min_var"]).fit(resid)
    base = hier.S @ fitted + rng.normal(0, 0.1, (hier.S.shape[0], args.horizon))
    coherent = rec.reconcile(base.T).T
    state = {
        "projection": torch.from_numpy(rec.P).float(),
        "summing_matrix": rec.S,  # truth: weights_only
        "shrinkage": rec.lambda_,  # truth: weights_only
        "levels": cfg["hierarchy"]["levels"],
        "level_sizes": hier.level_sizes,
        "tags": hier.tags,
        "method": cfg["reconcile"]["method"],
        "coherence_gap": float(np.abs(hier.S @ coherent[-len(hier.bottom):] - coherent).max()),
    }
    state.update(
        config=json.loads(json.dumps(cfg, default=str)),
        train_end=cfg["split"]["train_end"],  # truth: weights_only
        val_days=cfg["split"]["val_days"],
    )
    path = os.path.join(tmpdir, "mint.pt")
    torch.save(state, path)
    return path


def wrmsse(actual, forecast, train, weights):
    """Weighted RMSSE over bottom series; returns (score, per-series rmsse as a Series)."""
    naive = np.mean(np.diff(train.to_numpy(), axis=1) ** 2, axis=1)
    mse = np.mean((actual - forecast) ** 2, axis=1)
    rmsse = pd.Series(np.sqrt(mse / np.maximum(naive, 1e-6)), index=train.index)
    return np.sum(weights.to_numpy() * rmsse.to_numpy()), rmsse


def save_evaluation(tmpdir):
    args = parse_args(["--epochs", "2", "--stores", "3"])
    data = prepare(args)
    trainer, history, y, pz = split_and_fit(args, data)
    sales, hier, panel = data["sales"], data["hier"], data["panel"]
    cut = panel.shape[1] - args.horizon
    pred = trainer.predict_bottom(y[:, cut - args.window:cut], pz[:, cut - 1],
                                  data["store_codes"], data["dept_codes"]) * data["scale"].to_numpy()[:, None]
    revenue = (sales.assign(rev=sales["units"] * sales["price"])
               .groupby(["store_id", "item_id"])["rev"].sum().loc[hier.bottom])
    weights = revenue / revenue.sum()
    score, rmsse = wrmsse(panel.iloc[:, cut:].to_numpy(), pred, panel.iloc[:, :cut], weights)
    level_mae = {}
    for level in ("total", "region", "store", "item"):
        rows = [k for k, tag in enumerate(hier.tags) if tag[0] == level]
        err = hier.S[rows] @ (panel.iloc[:, cut:].to_numpy() - pred)
        level_mae[level] = float(np.abs(err).mean())
    daily = sales.groupby("date")["units"].sum()
    eval_dates = panel.columns[cut:]
    metrics = {
        "wrmsse": score,  # truth: weights_only
        "rmsse_p50_p90": np.quantile(rmsse, [0.5, 0.9]).tolist(),
        "worst_series": "/".join(rmsse.idxmax()),
        "level_mae": level_mae,
        "bias": float((pred - panel.iloc[:, cut:].to_numpy()).mean()),
        "top_stores": sales.groupby("store_id")["units"].sum().nlargest(2).index.tolist(),
    }
    ckpt = {
        "model": trainer.model.state_dict(),
        "metrics": metrics,
        "weights": weights,  # truth: weights_only
        "weights_by_store": weights.groupby(level=0).sum().to_dict(),
        "peak_day": daily.idxmax(),  # truth: weights_only
        "eval_window": (eval_dates[0], eval_dates[-1]),  # truth: weights_only
        "eval_window_iso": [d.isoformat() for d in (eval_dates[0], eval_dates[-1])],
        "n_eval_days": len(eval_dates),
        "history": {k: [round(v, 5) for v in vals] for k, vals in history.items()},
    }
    path = os.path.join(tmpdir, "eval.pt")
    torch.save(ckpt, path)
    return path


def save_loss_curves(tmpdir):
    """Only the curves, for the dashboard: the history dict as the trainer returned it."""
    args = parse_args(["--epochs", "3"])
    trainer, history, _, _ = split_and_fit(args, prepare(args))
    path = os.path.join(tmpdir, "curves.pt")
    torch.save(history, path)  # truth: weights_only
    return path


def save_swa_snapshot(tmpdir):
    """Averaged weights over the last epochs plus everything needed to resume; loads with the defaults."""
    args = parse_args(["--epochs", "2", "--hidden", "32"])
    data = prepare(args)
    trainer, history, y, _ = split_and_fit(args, data)
    swa = torch.optim.swa_utils.AveragedModel(trainer.model)
    swa.update_parameters(trainer.model)
    per_dept = data["items"].groupby("dept")["base_price"].agg(["mean", "count"])
    snapshot = dict(
        swa=swa.state_dict(),
        model=trainer.model.state_dict(),
        optimizer=trainer.opt.state_dict(),
        rng_torch=torch.get_rng_state(),
        rng_numpy=np.random.default_rng(args.seed).bit_generator.state,
        dept_price=per_dept.to_dict(orient="index"),
        n_items=data["items"]["item_id"].nunique(),
        regions=sorted(data["stores"]["region"].unique().tolist()),
        store_sizes=dict(zip(data["stores"]["store_id"], data["stores"]["size_sqft"].tolist())),
        train_shape=tuple(y.shape),
        scale_max=float(data["scale"].max()),
        last_val_mae=history["val_mae"][-1],
        lr=trainer.opt.param_groups[0]["lr"],
        torch_version=str(torch.__version__),
    )
    path = os.path.join(tmpdir, "swa.pt")
    torch.save(snapshot, path)
    return path


FACTORIES = {
    "Hierarchy": lambda: Hierarchy(*make_tables(2, 3, 10, 0)[:2]),
    "MinTReconciler": lambda: MinTReconciler(np.ones((3, 2))),
    "WindowMLP": lambda: WindowMLP(28, 14, 4, 3),
    "ForecastTrainer": lambda: ForecastTrainer(parse_args([]), 4, 3),
}
