"""Weekly demand forecasting and inventory policy for a store x SKU network.

The planning config lives in YAML (one file per planning cycle); forecasters are looked up by name
in a registry, trained on rolling windows of weekly sales and backtested on the last cutoffs. The
inventory module turns forecast quantiles and supplier lead times into safety stock, reorder
points and order quantities.
"""
import datetime
import math
import os
import statistics
from decimal import Decimal

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import yaml
from omegaconf import OmegaConf
from pandas.tseries.frequencies import to_offset
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error

PLANNING_YAML = """
data:
  start: 2023-01-02
  weeks: 60
  freq: W-MON
  stores: [S01, S02, S03]
  n_skus: 8
  holidays: [2023-04-07, 2023-11-24, 2023-12-25]
model:
  name: quantile_mlp
  lookback: 8
  horizon: 4
  quantiles: [0.1, 0.5, 0.9]
  hidden: 32
  lr: 0.003
  epochs: 3
inventory:
  service_level: 0.95
  review_weeks: 1
  holding_rate: 0.22
  order_cost: "45.00"
  lead_time_days: [5, 7, 6, 9, 12, 6, 8, 7, 10, 6]
"""

FORECASTERS = {}


def register(name):
    def deco(cls):
        FORECASTERS[name] = cls
        return cls
    return deco


def load_config(overrides=()):
    cfg = OmegaConf.create(PLANNING_YAML)
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))


def make_sales(cfg):
    rng = np.random.default_rng(17)
    dates = pd.date_range(str(cfg.data.start), periods=cfg.data.weeks, freq=cfg.data.freq)
    holidays = pd.to_datetime(list(cfg.data.holidays))
    rows = []
    for store in cfg.data.stores:
        for k in range(cfg.data.n_skus):
            base = rng.uniform(20, 120)
            season = 1 + 0.3 * np.sin(2 * np.pi * np.arange(len(dates)) / 52.0 + k)
            promo = rng.random(len(dates)) < 0.1
            near_holiday = np.isin(dates.to_period("W").start_time, holidays.to_period("W").start_time)
            qty = rng.poisson(base * season * (1 + 0.5 * promo + 0.3 * near_holiday))
            price = np.round(rng.uniform(2, 15), 2) * (1 - 0.2 * promo)
            for d, q, p, pr in zip(dates, qty, price, promo):
                rows.append((d, store, f"SKU{k:03d}", int(q), float(p), bool(pr)))
    return pd.DataFrame(rows, columns=["date", "store", "sku", "qty", "price", "promo"])


def make_windows(sales, lookback, horizon):
    X, Y = [], []
    for _, g in sales.sort_values("date").groupby(["store", "sku"]):
        y = np.log1p(g["qty"].to_numpy(dtype=np.float32))
        for s in range(len(y) - lookback - horizon + 1):
            X.append(y[s:s + lookback])
            Y.append(y[s + lookback:s + lookback + horizon])
    return torch.from_numpy(np.stack(X)), torch.from_numpy(np.stack(Y))


@register("quantile_mlp")
class QuantileMLP(nn.Module):
    def __init__(self, lookback=8, horizon=4, quantiles=(0.1, 0.5, 0.9), hidden=32):
        super().__init__()
        self.horizon = horizon
        self.n_q = len(quantiles)
        self.register_buffer("q", torch.tensor(list(quantiles)))
        self.net = nn.Sequential(nn.Linear(lookback, hidden), nn.ReLU(), nn.Linear(hidden, horizon * self.n_q))

    def forward(self, x):
        return self.net(x).view(-1, self.horizon, self.n_q)


@register("seasonal_naive")
class SeasonalNaive:
    def __init__(self, season=52, horizon=4):
        self.season = season
        self.horizon = horizon
        self.last = {}

    def fit(self, sales):
        for key, g in sales.sort_values("date").groupby(["store", "sku"]):
            self.last[key] = g["qty"].tolist()[-self.season:]
        return self

    def predict(self, key):
        hist = self.last[key]
        return [hist[i % len(hist)] for i in range(self.horizon)]


@register("croston")
class Croston:
    def __init__(self, alpha=0.1):
        self.alpha = alpha
        self.level = {}
        self.interval = {}

    def fit(self, sales):
        for key, g in sales.groupby("sku"):
            z, p, gap = None, None, 1
            for q in g.groupby("date")["qty"].sum().tolist():
                if q > 0:
                    z = q if z is None else z + self.alpha * (q - z)
                    p = gap if p is None else p + self.alpha * (gap - p)
                    gap = 1
                else:
                    gap += 1
            self.level[key], self.interval[key] = z, p
        return self

    def rate(self, key):
        return self.level[key] / self.interval[key]


def build_forecaster(cfg):
    m = cfg.model
    cls = FORECASTERS[m.name]
    if m.name == "quantile_mlp":
        return cls(lookback=m.lookback, horizon=m.horizon, quantiles=m.quantiles, hidden=m.hidden)
    return cls()


def pinball(pred, y, q):
    diff = y.unsqueeze(-1) - pred
    return torch.maximum(q * diff, (q - 1) * diff).mean()


def train_quantiles(model, X, Y, cfg):
    opt = torch.optim.Adam(model.parameters(), lr=cfg.model.lr)
    losses = []
    for _ in range(cfg.model.epochs):
        perm = torch.randperm(len(X))
        for s in range(0, len(X), 128):
            idx = perm[s:s + 128]
            loss = pinball(model(X[idx]), Y[idx], model.q)
            opt.zero_grad()
            loss.backward()
            opt.step()
        losses.append(round(loss.item(), 5))
    return opt, losses


def inventory_policy(sales, cfg):
    inv = cfg.inventory
    lead_weeks = np.mean(inv.lead_time_days) / 7.0
    z = stats.norm.ppf(inv.service_level)
    weekly = sales.groupby(["sku", "date"])["qty"].sum().groupby("sku")
    policy = pd.DataFrame({"mean": weekly.mean(), "std": weekly.std(), "price": sales.groupby("sku")["price"].mean()})
    policy["safety_stock"] = z * policy["std"] * np.sqrt(lead_weeks + inv.review_weeks)
    policy["reorder_point"] = policy["mean"] * lead_weeks + policy["safety_stock"]
    annual = policy["mean"] * 52
    holding = policy["price"] * inv.holding_rate
    policy["eoq"] = np.sqrt(2 * annual * float(inv.order_cost) / holding)
    return policy, z


def backtest(sales, cfg, n_cutoffs=3):
    dates = np.sort(sales["date"].unique())
    cutoffs = [pd.Timestamp(d) for d in dates[-(n_cutoffs * cfg.model.horizon)::cfg.model.horizon]]
    naive = FORECASTERS["seasonal_naive"](season=4, horizon=cfg.model.horizon)
    folds, actual_all, pred_all = [], [], []
    for cut in cutoffs:
        naive.fit(sales[sales["date"] < cut])
        fut = sales[(sales["date"] >= cut)].sort_values("date")
        a, p = [], []
        for key, g in fut.groupby(["store", "sku"]):
            a += g["qty"].tolist()[:cfg.model.horizon]
            p += naive.predict(key)[:len(g["qty"].tolist()[:cfg.model.horizon])]
        folds.append({"cutoff": cut.isoformat(), "mae": mean_absolute_error(a, p)})
        actual_all += a
        pred_all += p
    return folds, np.asarray(actual_all, dtype=float), np.asarray(pred_all, dtype=float), cutoffs


def save_quantile_forecaster(tmpdir):
    cfg = load_config(["model.epochs=2"])
    sales = make_sales(cfg)
    X, Y = make_windows(sales, cfg.model.lookback, cfg.model.horizon)
    model = build_forecaster(cfg)
    opt, losses = train_quantiles(model, X, Y, cfg)
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "quantiles": cfg.model.quantiles,  # truth: weights_only
        "horizon": cfg.model.horizon,
        "train_end": sales["date"].max(),  # truth: weights_only
        "train_start": sales["date"].min().isoformat(),
        "losses": losses,
        "sku_index": {sku: i for i, sku in enumerate(sorted(sales["sku"].unique()))},
        "stores": sales["store"].unique(),  # truth: weights_only
        "log_target": True,
    }
    path = os.path.join(tmpdir, "quantile_mlp.pt")
    torch.save(ckpt, path)
    return path


def save_inventory_policy(tmpdir):
    cfg = load_config()
    sales = make_sales(cfg)
    policy, z = inventory_policy(sales, cfg)
    lead = np.asarray(cfg.inventory.lead_time_days, dtype=float)
    out = {"service_level": cfg.inventory.service_level}
    out["z"] = z  # truth: weights_only
    out["policy"] = policy.round(2).to_dict("index")
    out["reorder_points"] = policy["reorder_point"].round(1).to_dict()
    out["lead_time_gamma"] = stats.gamma.fit(lead, floc=0)  # truth: weights_only
    out["lead_time_mean_days"] = float(lead.mean())
    out["order_cost"] = Decimal(cfg.inventory.order_cost)  # truth: weights_only
    out["order_cost_str"] = cfg.inventory.order_cost
    out["holding_rate"] = cfg.inventory.holding_rate
    out["eoq_units_total"] = math.fsum(policy["eoq"])
    out["skus"] = policy.index.tolist()
    path = os.path.join(tmpdir, "policy.pt")
    torch.save(out, path)
    return path


def save_backtest_report(tmpdir):
    cfg = load_config()
    sales = make_sales(cfg)
    folds, actual, pred, cutoffs = backtest(sales, cfg)
    lo, hi = actual * 0.8, actual * 1.2
    report = dict(
        folds=folds,
        mape=mean_absolute_percentage_error(actual + 1, pred + 1),
        wape=np.abs(actual - pred).sum() / actual.sum(),  # truth: weights_only
        bias=float((pred - actual).sum() / actual.sum()),
        within_20pct=((pred >= lo) & (pred <= hi)).mean(),  # truth: weights_only
        cutoffs=[c.isoformat() for c in cutoffs],
        freq=pd.infer_freq(pd.DatetimeIndex(sorted(sales["date"].unique()))),
        offset=to_offset(cfg.data.freq).freqstr,
        n_series=int(sales.groupby(["store", "sku"]).ngroups),
    )
    path = os.path.join(tmpdir, "backtest.pt")
    torch.save(report, path)
    return path


def save_planning_snapshot(tmpdir):
    raw = yaml.safe_load(PLANNING_YAML)
    cfg = load_config()
    sales = make_sales(cfg)
    snap = {
        "data_start": raw["data"]["start"],  # truth: weights_only
        "data_start_omegaconf": cfg.data.start,
        "holidays": set(raw["data"]["holidays"]),  # truth: weights_only
        "holiday_strings": sorted(d.isoformat() for d in raw["data"]["holidays"]),
        "horizons": list(range(1, cfg.model.horizon + 1)),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "column_types": sales.dtypes.astype(str).to_dict(),
        "n_rows": len(sales),
        "promo_share": statistics.fmean(sales["promo"]),
        "last_iso_week": sales["date"].dt.isocalendar().week.max(),  # truth: weights_only
        "inventory": OmegaConf.to_container(cfg.inventory),
    }
    path = os.path.join(tmpdir, "snapshot.pt")
    torch.save(snap, path)
    return path


def save_croston_baseline(tmpdir):
    cfg = load_config()
    sales = make_sales(cfg)
    sparse = sales.assign(qty=np.where(np.random.default_rng(3).random(len(sales)) < 0.6, 0, sales["qty"]))
    croston = FORECASTERS["croston"](alpha=0.15).fit(sparse)
    rates = {}
    zero_share = {}
    for sku, g in sparse.groupby("sku"):
        rates[sku] = round(float(croston.rate(sku)), 3)
        zero_share[sku] = float((g["qty"] == 0).mean())
    baseline = {
        "method": "croston",
        "alpha": croston.alpha,
        "rates": rates,
        "zero_share": zero_share,
        "mean_rate": statistics.fmean(rates.values()),
        "quantiles": list(cfg.model.quantiles),
        "model_cfg": OmegaConf.to_container(cfg.model),
        "weekly_totals": sparse.groupby("date")["qty"].sum().tolist()[-8:],
        "rate_tensor": torch.tensor(list(rates.values())),
        "seed_state": np.random.default_rng(3).bit_generator.state,
    }
    path = os.path.join(tmpdir, "croston.pt")
    torch.save(baseline, path)
    return path


FACTORIES = {
    "QuantileMLP": lambda: build_forecaster(load_config()),
    "SeasonalNaive": lambda: FORECASTERS["seasonal_naive"](season=4).fit(make_sales(load_config())),
    "Croston": lambda: FORECASTERS["croston"](alpha=0.2).fit(make_sales(load_config())),
}
