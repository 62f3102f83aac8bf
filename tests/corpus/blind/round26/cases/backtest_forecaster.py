"""Walk-forward LSTM return forecaster and a cross-sectional long/short backtest on daily bars.

argparse CLI, a business-day pandas index, rolling momentum/volatility features, a scaler fit on
each training window only (no look-ahead), and the usual portfolio metrics (Sharpe, Sortino,
max drawdown, turnover, historical VaR).
"""
import argparse
import dataclasses
import datetime as dt
import math
import statistics
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from sklearn.preprocessing import StandardScaler
from torch import nn

TRADING_DAYS = 252


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="walk-forward LSTM backtest")
    p.add_argument("--tickers", nargs="+", default=["AAA", "BBB", "CCC", "DDD"])
    p.add_argument("--start", type=pd.Timestamp, default=pd.Timestamp("2020-01-01"))
    p.add_argument("--periods", type=int, default=220)
    p.add_argument("--freq", default="B")
    p.add_argument("--lookback", type=int, default=10)
    p.add_argument("--train-days", type=int, default=100)
    p.add_argument("--test-days", type=int, default=40)
    p.add_argument("--cost-bps", type=float, default=5.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("runs/lstm_wf"))
    p.add_argument("--seed", type=int, default=11)
    return p.parse_args(argv)


def make_prices(tickers, start, periods, freq, seed):
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=periods, freq=freq, name="date")
    rets = rng.normal(0.0003, 0.012, size=(periods, len(tickers)))
    return pd.DataFrame(100.0 * np.exp(np.cumsum(rets, axis=0)), index=idx, columns=tickers)


def make_features(prices, windows=(5, 20)):
    rets = np.log(prices).diff()
    feats = {"ret_1d": rets}
    for w in windows:
        feats[f"mom_{w}"] = rets.rolling(w).sum()
        feats[f"vol_{w}"] = rets.rolling(w).std()
    X = pd.concat(feats, axis=1).dropna()
    Y = rets.shift(-1).reindex(X.index).dropna()
    return X.loc[Y.index], Y


def walk_forward_windows(index, train_days, test_days):
    out = []
    for start in range(0, len(index) - train_days - test_days + 1, test_days):
        out.append((index[start:start + train_days], index[start + train_days:start + train_days + test_days]))
    return out


def to_sequences(values, lookback):
    return torch.stack([torch.as_tensor(values[i - lookback + 1:i + 1], dtype=torch.float32)
                        for i in range(lookback - 1, len(values))])


class LSTMForecaster(nn.Module):
    def __init__(self, n_features=20, hidden=16, n_assets=4, dropout=0.1):
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_assets))

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class WalkForwardTrainer:
    def __init__(self, args, n_features, n_assets):
        self.args = args
        self.model = LSTMForecaster(n_features, 16, n_assets)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=args.lr)
        self.scaler = None
        self.train_end = None
        self.val_losses = []
        self.best_val = math.inf
        self.rng = np.random.default_rng(args.seed)

    def fit_window(self, X, Y, train_idx, val_frac=0.2):
        n_val = max(int(len(train_idx) * val_frac), self.args.lookback + 1)
        fit_idx, val_idx = train_idx[:-n_val], train_idx[-n_val:]
        self.scaler = StandardScaler().fit(X.loc[fit_idx].to_numpy())
        lb = self.args.lookback
        xs = to_sequences(self.scaler.transform(X.loc[fit_idx].to_numpy()), lb)
        ys = torch.as_tensor(Y.loc[fit_idx].to_numpy(copy=True)[lb - 1:], dtype=torch.float32)
        xv = to_sequences(self.scaler.transform(X.loc[val_idx].to_numpy()), lb)
        yv = torch.as_tensor(Y.loc[val_idx].to_numpy(copy=True)[lb - 1:], dtype=torch.float32)
        for _ in range(self.args.epochs):
            self.model.train()
            for chunk in np.array_split(self.rng.permutation(len(xs)), 4):
                loss = nn.functional.mse_loss(self.model(xs[chunk]), ys[chunk])
                self.opt.zero_grad(); loss.backward(); self.opt.step()
            self.model.eval()
            with torch.no_grad():
                v = nn.functional.mse_loss(self.model(xv), yv).item()
            self.val_losses.append(v)
            self.best_val = min(self.best_val, v)
        self.train_end = train_idx[-1]
        return self

    @torch.no_grad()
    def predict(self, X, test_idx):
        lb = self.args.lookback
        pos = X.index.get_indexer(test_idx)
        window = X.iloc[pos[0] - lb + 1:pos[-1] + 1]
        preds = self.model(to_sequences(self.scaler.transform(window.to_numpy()), lb)).numpy()
        return pd.DataFrame(preds, index=test_idx, columns=X["ret_1d"].columns)


@dataclasses.dataclass
class BacktestResult:
    returns: pd.Series
    equity: pd.Series
    turnover: float
    sharpe: float
    max_drawdown: float
    start: pd.Timestamp
    end: pd.Timestamp


def sharpe_ratio(r, periods=TRADING_DAYS):
    return np.sqrt(periods) * r.mean() / (r.std() + 1e-12)


def sortino_ratio(r, periods=TRADING_DAYS):
    downside = float(r[r < 0].std()) if (r < 0).any() else 0.0
    return math.sqrt(periods) * float(r.mean()) / (downside + 1e-12)


def max_drawdown(equity):
    return (equity / equity.cummax() - 1.0).min()


def run_backtest(preds, realized, cost_bps):
    w = preds.sub(preds.mean(axis=1), axis=0)
    w = w.div(w.abs().sum(axis=1).replace(0.0, 1.0), axis=0)
    turnover = w.diff().abs().sum(axis=1).fillna(w.abs().sum(axis=1))
    net = (w * realized.loc[w.index]).sum(axis=1) - turnover * cost_bps / 1e4
    equity = (1.0 + net).cumprod()
    result = BacktestResult(net, equity, turnover.mean(), sharpe_ratio(net), max_drawdown(equity),
                            net.index[0], net.index[-1])
    return result, w


def run_walk_forward(args):
    torch.manual_seed(args.seed)
    prices = make_prices(args.tickers, args.start, args.periods, args.freq, args.seed)
    X, Y = make_features(prices)
    windows = walk_forward_windows(X.index, args.train_days, args.test_days)
    trainer = WalkForwardTrainer(args, X.shape[1], Y.shape[1])
    preds = []
    for train_idx, test_idx in windows:
        preds.append(trainer.fit_window(X, Y, train_idx).predict(X, test_idx))
    return prices, X, Y, windows, trainer, pd.concat(preds)


def save_forecaster_checkpoint(tmpdir):
    args = parse_args(["--epochs", "1"])
    prices, X, _, _, trainer, _ = run_walk_forward(args)
    ckpt = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.opt.state_dict(),
        "scaler_mean": trainer.scaler.mean_.tolist(),
        "scaler_scale": trainer.scaler.scale_,  # truth: weights_only
        "scaler_n_seen": int(trainer.scaler.n_samples_seen_),
        "feature_names": list(X.columns),
        "lookback": args.lookback,
        "freq": prices.index.freqstr,
        "train_end": trainer.train_end,  # truth: weights_only
        "best_val_mse": trainer.best_val,
        "val_curve": trainer.val_losses,
        "tickers": args.tickers,
        "run_name": args.out.name,
    }
    ckpt.update(out_dir=args.out)  # truth: weights_only
    path = os.path.join(tmpdir, "forecaster.pt")
    torch.save(ckpt, path)
    return path


def save_backtest_report(tmpdir):
    args = parse_args(["--epochs", "1"])
    _, _, Y, _, _, preds = run_walk_forward(args)
    result, weights = run_backtest(preds, Y, args.cost_bps)
    years = len(result.returns) / TRADING_DAYS
    ann_return = float(result.equity.iloc[-1]) ** (1.0 / years) - 1.0
    report = {
        "sharpe": round(result.sharpe, 3),  # truth: weights_only
        "sortino": sortino_ratio(result.returns),
        "max_drawdown": result.max_drawdown,  # truth: weights_only
        "calmar": ann_return / (abs(float(result.max_drawdown)) + 1e-12),
        "ann_return": ann_return,
        "ann_vol": float(result.returns.std()) * math.sqrt(TRADING_DAYS),
        "avg_turnover": result.turnover,  # truth: weights_only
        "hit_rate": float((result.returns > 0).mean()),
        "n_days": len(result.returns),
        "n_obs": result.returns.count(),  # truth: weights_only
        "daily_vol": statistics.stdev(result.returns),
        "rank_ic": float(spearmanr(preds.stack(), Y.loc[preds.index].stack()).statistic),
        "equity_curve": torch.tensor(result.equity.to_numpy(), dtype=torch.float64),
        "final_weights": weights.iloc[-1].to_dict(),
        "period": {
            "start": result.start.isoformat(),
            "end": result.end,  # truth: weights_only
        },
    }
    report["var_95"] = result.returns.quantile(0.05)  # truth: weights_only
    report["cvar_95"] = result.returns[result.returns <= result.returns.quantile(0.05)].mean().item()
    path = os.path.join(tmpdir, "backtest_report.pt")
    torch.save(report, path)
    return path


def save_walk_forward_state(tmpdir):
    args = parse_args(["--epochs", "1"])
    prices, _, _, windows, trainer, _ = run_walk_forward(args)
    state = dict(
        model=trainer.model.state_dict(),
        windows=[(tr[0].isoformat(), te[-1].isoformat()) for tr, te in windows],
        n_windows=len(windows),
        bar_freq=prices.index.freq,  # truth: weights_only
        np_rng=trainer.rng,  # truth: weights_only
        np_rng_state=trainer.rng.bit_generator.state,
        torch_rng=torch.get_rng_state(),
        next_refit=(trainer.train_end + pd.offsets.BDay(args.test_days)).isoformat(),
        cost_bps=args.cost_bps,
    )
    path = os.path.join(tmpdir, "walk_forward.pt")
    torch.save(state, path)
    return path


def save_scaler(tmpdir):
    args = parse_args(["--epochs", "1", "--periods", "180"])
    _, _, _, _, trainer, _ = run_walk_forward(args)
    path = os.path.join(tmpdir, "scaler.pt")
    torch.save(trainer.scaler, path)  # truth: weights_only
    return path


def save_signal_config(tmpdir):
    args = parse_args(["--tickers", "AAA", "BBB"])
    cli = {k: (v.isoformat() if isinstance(v, pd.Timestamp) else str(v) if isinstance(v, Path) else v)
           for k, v in vars(args).items()}
    config = {
        "cli": cli,
        "trading_days": TRADING_DAYS,
        "annualisation": math.sqrt(TRADING_DAYS),
        "features": ["ret_1d", "mom_5", "vol_5", "mom_20", "vol_20"],
        "first_bar": args.start.strftime("%Y-%m-%d"),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(),
        "cost": {"bps": args.cost_bps, "per_side": args.cost_bps / 2},
    }
    path = os.path.join(tmpdir, "signal_config.pt")
    torch.save(config, path)
    return path


def _result():
    args = parse_args(["--epochs", "1", "--periods", "180"])
    _, _, Y, _, _, preds = run_walk_forward(args)
    return run_backtest(preds, Y, args.cost_bps)[0]


FACTORIES = {
    "WalkForwardTrainer": lambda: WalkForwardTrainer(parse_args([]), 20, 4),
    "BacktestResult": _result,
}
