"""Bid landscape forecasting for a second-price display auction (censored win-price model).

Usage:  python bid_landscape_forecast.py --epochs 3 --out runs/landscape

The market price z of an impression is observed only when we win (bid > z); lost auctions are
right-censored at our bid.  The network predicts a discrete distribution of z over a price grid
(DLF style) and is trained with the censored likelihood; a Kaplan-Meier estimate is kept as the
non-parametric baseline.
"""
import argparse
import math
import os
from collections import Counter
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.preprocessing import OneHotEncoder, StandardScaler

SLOTS = ("banner_top", "banner_side", "interstitial", "native_feed")
NUMERIC = ["floor_price", "hour_sin", "hour_cos", "user_freq"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n-auctions", type=int, default=1200)
    p.add_argument("--price-max", type=float, default=30.0, help="CPM cap of the price grid")
    p.add_argument("--num-bins", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--budget-cpm", type=str, default="12500.00")
    p.add_argument("--max-win-rate", type=float, default=0.35)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=Path("runs/landscape"))
    return p.parse_args(argv)


def make_bid_log(n, seed):
    """Synthetic impression log: one row per auction we took part in."""
    rng = np.random.default_rng(seed)
    hour = rng.integers(0, 24, n)
    slot = rng.choice(SLOTS, n)
    floor = np.round(rng.gamma(2.0, 1.0, n), 2)
    slot_mult = pd.Series(slot).map({"banner_top": 1.6, "banner_side": 0.8,
                                     "interstitial": 2.4, "native_feed": 1.1}).to_numpy()
    market = floor + rng.lognormal(mean=np.log(2.5 * slot_mult), sigma=0.5)
    bid = np.round(rng.gamma(3.0, 1.5, n) + floor, 2)
    df = pd.DataFrame({
        "campaign_id": rng.integers(0, 6, n),
        "ad_slot": slot,
        "hour": hour,
        "floor_price": floor,
        "user_freq": rng.poisson(3, n),
        "bid": bid,
        "market_price": market,
    })
    df["won"] = (df["bid"] > df["market_price"]).astype(int)
    # what the log actually shows: the paid (second) price when won, nothing when lost
    df["observed"] = np.where(df["won"] == 1, df["market_price"], df["bid"])
    df["hour_sin"] = np.sin(2 * math.pi * df["hour"] / 24)
    df["hour_cos"] = np.cos(2 * math.pi * df["hour"] / 24)
    return df


def encode_features(df, encoder=None, scaler=None):
    if encoder is None:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(df[["ad_slot"]])
        scaler = StandardScaler().fit(df[NUMERIC])
    x = np.hstack([encoder.transform(df[["ad_slot"]]), scaler.transform(df[NUMERIC])])
    return torch.from_numpy(x.astype(np.float32)), encoder, scaler


def price_grid(args):
    return np.linspace(0.0, args.price_max, args.num_bins + 1)


def kaplan_meier(observed, won, grid):
    """S(z) = P(market price > z) from right-censored observations."""
    order = np.argsort(observed)
    t, d = observed[order], won[order]
    at_risk = len(t) - np.arange(len(t))
    hazard = np.where(d == 1, 1.0 / at_risk, 0.0)
    surv = np.cumprod(1.0 - hazard)
    idx = np.searchsorted(t, grid, side="right") - 1
    return np.where(idx >= 0, surv[np.clip(idx, 0, None)], 1.0)


class LandscapeNet(nn.Module):
    def __init__(self, in_dim=8, num_bins=32, hidden=64):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_bins)

    def forward(self, x):
        return torch.log_softmax(self.head(self.body(x)), dim=-1)


def censored_nll(logp, z_bin, won):
    """-log p(z) for won auctions, -log P(z > bid) for lost ones."""
    p = logp.exp()
    tail = torch.flip(torch.cumsum(torch.flip(p, [1]), 1), [1])  # P(z >= bin)
    ll_won = logp.gather(1, z_bin[:, None]).squeeze(1)
    nxt = (z_bin + 1).clamp(max=p.shape[1] - 1)
    ll_lost = torch.log(tail.gather(1, nxt[:, None]).squeeze(1) + 1e-8)
    return -torch.where(won.bool(), ll_won, ll_lost).mean()


def to_tensors(df, grid):
    z_bin = np.clip(np.digitize(df["observed"].to_numpy(), grid) - 1, 0, len(grid) - 2)
    return torch.from_numpy(z_bin).long(), torch.tensor(df["won"].to_numpy())


def train_epoch(model, opt, x, z_bin, won, batch_size):
    model.train()
    losses = []
    perm = torch.randperm(len(x))
    for start in range(0, len(x), batch_size):
        idx = perm[start:start + batch_size]
        loss = censored_nll(model(x[idx]), z_bin[idx], won[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.mean(losses)


@torch.no_grad()
def evaluate(model, x, z_bin, won, grid):
    model.eval()
    logp = model(x)
    nll = censored_nll(logp, z_bin, won).item()
    centers = torch.tensor((grid[:-1] + grid[1:]) / 2, dtype=torch.float32)
    expected = (logp.exp() * centers).sum(1)
    err = (expected - centers[z_bin])[won.bool()]
    return nll, err.pow(2).mean().item()


def fit(args):
    torch.manual_seed(args.seed)
    df = make_bid_log(args.n_auctions, args.seed)
    grid = price_grid(args)
    x, encoder, scaler = encode_features(df)
    z_bin, won = to_tensors(df, grid)
    model = LandscapeNet(x.shape[1], args.num_bins)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    hist = []
    for _ in range(args.epochs):
        hist.append(train_epoch(model, opt, x, z_bin, won, args.batch_size))
    return df, grid, model, opt, hist, (encoder, scaler), (x, z_bin, won)


def save_landscape_checkpoint(tmpdir):
    args = parse_args(["--epochs", "2", "--out", tmpdir])
    df, grid, model, opt, hist, _, (x, z_bin, won) = fit(args)
    anlp, wmse = evaluate(model, x, z_bin, won, grid)
    km = kaplan_meier(df["observed"].to_numpy(), df["won"].to_numpy(), grid)
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": args.epochs,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "train_loss": hist[-1],  # truth: weights_only
        "loss_history": [float(h) for h in hist],
        "anlp": anlp,
        "wmse": wmse,
        "best_epoch": int(np.argmin(hist)),
        "price_grid": grid.tolist(),
        "km_survival": km,  # truth: weights_only
        "censor_rate": 1.0 - df["won"].mean(),  # truth: weights_only
        "n_auctions": len(df),
        "n_won": int(df["won"].sum()),
    }
    path = os.path.join(args.out, "landscape_last.pt")
    torch.save(ckpt, path)
    return path


def save_feature_pipeline(tmpdir):
    args = parse_args([])
    df = make_bid_log(400, args.seed)
    _, encoder, scaler = encode_features(df)
    slots = df["ad_slot"].unique().tolist()
    bundle = dict(
        feature_names=encoder.get_feature_names_out().tolist() + NUMERIC,
        categories=[c.tolist() for c in encoder.categories_],
        slot_vocab=dict(zip(slots, range(len(slots)))),
        scaler_mean=scaler.mean_,  # truth: weights_only
        scaler_scale=torch.from_numpy(scaler.scale_),
        n_seen=scaler.n_samples_seen_,  # truth: weights_only
        floor_quantiles=df["floor_price"].quantile([0.1, 0.5, 0.9]).to_dict(),
        column_dtypes=df.dtypes.astype(str).to_dict(),
        hour_hist=Counter(df["hour"]),
        slot_share=df["ad_slot"].value_counts(normalize=True).to_dict(),
    )
    bundle["encoder"] = encoder  # truth: weights_only
    path = os.path.join(tmpdir, "features.pt")
    torch.save(bundle, path)
    return path


class ShadingPolicy:
    """Bid shading from the forecast landscape: b* = argmax_b (v - b) * W(b)."""

    def __init__(self, value_cpm=8.0, grid_points=64):
        self.value_cpm = value_cpm
        self.grid = np.linspace(0.1, value_cpm, grid_points)
        self.curve = None
        self.alpha = 1.0

    def fit(self, win_prob_fn):
        w = win_prob_fn(self.grid)
        surplus = (self.value_cpm - self.grid) * w
        self.curve = surplus
        best = self.grid[np.argmax(surplus)]
        self.alpha = round(best / self.value_cpm, 4)
        return self

    def export(self):
        return {"value_cpm": self.value_cpm, "grid_min": float(self.grid[0]),
                "grid_max": float(self.grid[-1]), "grid_points": len(self.grid)}


def save_bid_shading_policy(tmpdir):
    args = parse_args(["--budget-cpm", "8400.50"])
    df = make_bid_log(600, args.seed)
    grid = price_grid(args)
    km = kaplan_meier(df["observed"].to_numpy(), df["won"].to_numpy(), grid)

    def win_prob(b):
        return 1.0 - np.interp(b, grid, km)

    policy = ShadingPolicy(value_cpm=9.0).fit(win_prob)
    observed_win_rate = df["won"].mean()
    ckpt = {"kind": "shading", "seed": args.seed}
    ckpt.update(policy.export())
    ckpt["shading_curve"] = policy.curve  # truth: weights_only
    ckpt["alpha"] = policy.alpha  # truth: weights_only
    ckpt["budget_cpm"] = Decimal(args.budget_cpm)  # truth: weights_only
    ckpt["budget_cpm_float"] = float(Decimal(args.budget_cpm))
    ckpt["target_win_rate"] = min(args.max_win_rate, observed_win_rate)
    ckpt["win_rate_at_value"] = float(win_prob(policy.value_cpm))
    ckpt["expected_surplus"] = math.fsum(policy.curve.tolist()) / len(policy.curve)
    path = os.path.join(tmpdir, "shading.pt")
    torch.save(ckpt, path)
    return path


def expected_calibration_error(prob, y, n_bins=10):
    edges = np.linspace(0, 1, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (prob >= lo) & (prob < hi)
        if m.any():
            ece += m.mean() * abs(prob[m].mean() - y[m].mean())
    return ece


def save_win_rate_calibration(tmpdir):
    df = make_bid_log(800, seed=11)
    raw = 1.0 / (1.0 + np.exp(-(df["bid"] - df["floor_price"] - 2.0).to_numpy()))
    iso = IsotonicRegression(out_of_bounds="clip").fit(raw, df["won"])
    calibrated = iso.predict(raw)
    per_campaign = {}
    for cid, g in df.groupby("campaign_id"):
        per_campaign[int(cid)] = {
            "n": len(g),
            "win_rate": g["won"].mean(),  # truth: weights_only
            "mean_bid": round(float(g["bid"].mean()), 3),
        }
    stamp = pd.Timestamp.now(tz="UTC")
    report = {
        "iso_thresholds": iso.X_thresholds_.tolist(),
        "iso_values": torch.tensor(iso.y_thresholds_),
        "brier_raw": brier_score_loss(df["won"], raw),
        "brier_cal": brier_score_loss(df["won"], calibrated),
        "auc": roc_auc_score(df["won"], calibrated),
        "ece": expected_calibration_error(calibrated, df["won"].to_numpy()),  # truth: weights_only
        "per_campaign": per_campaign,
        "snapshot": stamp,  # truth: weights_only
        "snapshot_iso": stamp.isoformat(),
        "snapshot_epoch_ms": stamp.value // 1_000_000,
    }
    path = os.path.join(tmpdir, "calibration.pt")
    torch.save(report, path)
    return path


def save_serving_weights(tmpdir):
    args = parse_args(["--epochs", "1"])
    df, grid, model, _, hist, (encoder, _), _ = fit(args)
    centers = (grid[:-1] + grid[1:]) / 2
    torch.save({
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "in_dim": model.body[0].in_features,
        "num_bins": args.num_bins,
        "bin_centers": torch.as_tensor(centers, dtype=torch.float32),
        "slots": list(encoder.categories_[0].tolist()),
        "hour_hist": Counter(df["hour"].tolist()),
        "loss": hist[-1].item(),
        "price_max": args.price_max,
        "dtype": torch.float32,
    }, os.path.join(tmpdir, "serving.pt"))
    return os.path.join(tmpdir, "serving.pt")


def main():
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print("wrote", save_landscape_checkpoint(str(args.out)))


if __name__ == "__main__":
    main()
