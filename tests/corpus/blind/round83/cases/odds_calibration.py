"""Calibrating football 1X2 probabilities against bookmaker odds.

Pipeline: bookmaker odds -> implied probabilities -> margin removal (Shin or proportional)
-> a small MLP on fair probabilities + Elo features -> temperature scaling or isotonic
post-calibration -> fractional-Kelly backtest against closing odds.

Everything is driven by one `CalibConfig` dataclass; the save_* functions are the
experiment entry points (synthetic, seeded fixtures) that each write one checkpoint.
"""
import datetime
import math
import os
from dataclasses import asdict, dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import optimize, stats
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss, log_loss

OUTCOMES = ("home", "draw", "away")
ODDS_COLS = ["odds_home", "odds_draw", "odds_away"]
CLOSE_COLS = ["close_home", "close_draw", "close_away"]
FEATURES = ["p_home_fair", "p_draw_fair", "p_away_fair", "elo_diff", "overround", "rest_diff"]


class Market(Enum):
    MATCH_ODDS = "1x2"
    OVER_UNDER_25 = "ou2.5"
    ASIAN_HANDICAP = "ah"


@dataclass
class CalibConfig:
    leagues: tuple = ("EPL", "LALIGA", "SERIEA", "BUNDESLIGA")
    n_matches: int = 800
    season_start: str = "2023-08-11"
    hidden: int = 32
    dropout: float = 0.1
    lr: float = 5e-3
    epochs: int = 25
    batch_size: int = 128
    n_bins: int = 10
    devig: str = "shin"
    kelly_fraction: float = 0.25
    min_edge: float = 0.03
    max_stake_frac: float = 0.05
    val_frac: float = 0.3
    seed: int = 2024
    tags: list = field(default_factory=lambda: ["1x2", "pre-match"])


@dataclass
class CalibrationReport:
    method: str
    ece: float
    brier_home: float
    log_loss: float
    n: int


# ----------------------------------------------------------------------------- fixtures

def simulate_matches(cfg):
    rng = np.random.default_rng(cfg.seed)
    n = cfg.n_matches
    league = rng.choice(list(cfg.leagues), n)
    home_elo = rng.normal(1500, 110, n)
    away_elo = rng.normal(1500, 110, n)
    s = (home_elo - away_elo + 65.0) / 180.0
    p_away = 1.0 / (1.0 + np.exp(0.55 + s))
    p_home = 1.0 - 1.0 / (1.0 + np.exp(s - 0.55))
    p_true = np.stack([p_home, 1.0 - p_home - p_away, p_away], axis=1)
    result = np.array([rng.choice(3, p=p) for p in p_true])
    margin = pd.Series(league).map({"EPL": 0.045, "LALIGA": 0.055, "SERIEA": 0.06}).fillna(0.07).to_numpy()
    noisy = p_true * np.exp(rng.normal(0, 0.08, (n, 3)))
    book = noisy / noisy.sum(axis=1, keepdims=True) * (1.0 + margin[:, None])
    closing = p_true * np.exp(rng.normal(0, 0.03, (n, 3)))
    closing = closing / closing.sum(axis=1, keepdims=True) * (1.0 + margin[:, None])
    days = np.sort(rng.integers(0, 280, n))
    df = pd.DataFrame({
        "match_id": np.arange(n),
        "league": league,
        "kickoff": pd.Timestamp(cfg.season_start) + pd.to_timedelta(days, unit="D")
                   + pd.to_timedelta(rng.choice([13, 15, 17, 20], n), unit="h"),
        "home_elo": home_elo,
        "away_elo": away_elo,
        "rest_diff": rng.integers(-3, 4, n),
        "result": result,
    })
    df[ODDS_COLS] = np.round(1.0 / book, 2)
    df[CLOSE_COLS] = np.round(1.0 / closing, 2)
    return df


# ----------------------------------------------------------------------------- margins

def implied_probabilities(df):
    raw = 1.0 / df[ODDS_COLS].to_numpy()
    return raw, raw.sum(axis=1) - 1.0


def devig_proportional(raw):
    return raw / raw.sum(axis=1, keepdims=True)


def _shin_fair(pi, z, book):
    return (np.sqrt(z ** 2 + 4 * (1 - z) * pi ** 2 / book) - z) / (2 * (1 - z))


def devig_shin(raw):
    """Shin (1993): per match, solve for the insider share z that makes fair probs sum to 1."""
    fair = np.empty_like(raw)
    zs = np.empty(len(raw))
    for i, pi in enumerate(raw):
        book = pi.sum()
        z = optimize.brentq(lambda t: _shin_fair(pi, t, book).sum() - 1.0, 0.0, 0.5)
        fair[i], zs[i] = _shin_fair(pi, z, book), z
    return fair, zs


def build_features(df, cfg):
    raw, overround = implied_probabilities(df)
    if cfg.devig == "shin":
        fair, z = devig_shin(raw)
    else:
        fair, z = devig_proportional(raw), np.zeros(len(raw))
    feats = df.assign(
        p_home_fair=fair[:, 0], p_draw_fair=fair[:, 1], p_away_fair=fair[:, 2],
        elo_diff=(df.home_elo - df.away_elo) / 400.0, overround=overround, shin_z=z,
    )
    feature_cols = feats.columns.intersection(FEATURES, sort=False)
    return feats, feature_cols


def time_split(df, val_frac):
    cutoff = df.kickoff.quantile(1.0 - val_frac)
    return df.kickoff < cutoff, df.kickoff >= cutoff, cutoff


# ----------------------------------------------------------------------------- model

class OutcomeMLP(nn.Module):
    def __init__(self, n_in=len(FEATURES), hidden=32, dropout=0.1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_in, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, len(OUTCOMES)),
        )

    def forward(self, x):
        return self.net(x)


def train_mlp(model, X, y, cfg):
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y).long()
    gen = torch.Generator().manual_seed(cfg.seed)
    losses = []
    for _ in range(cfg.epochs):
        model.train()
        perm = torch.randperm(len(Xt), generator=gen)
        total = 0.0
        for start in range(0, len(Xt), cfg.batch_size):
            idx = perm[start:start + cfg.batch_size]
            loss = F.cross_entropy(model(Xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(Xt))
    return losses, opt


@torch.no_grad()
def predict_logits(model, X):
    model.eval()
    return model(torch.from_numpy(X)).numpy()


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits, y):
    res = optimize.minimize_scalar(lambda t: log_loss(y, softmax(logits / t), labels=[0, 1, 2]),
                                   bounds=(0.05, 10.0), method="bounded")
    return res.x, res.fun


def expected_calibration_error(probs, y, n_bins=10):
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, n_bins - 1)
    table = (pd.DataFrame({"bin": idx, "conf": conf, "correct": correct})
             .groupby("bin").agg(conf=("conf", "mean"), acc=("correct", "mean"), n=("conf", "size")))
    ece = np.sum(table.n / len(y) * (table.acc - table.conf).abs())
    return ece, table, edges


def kelly_backtest(df, probs, cfg, bankroll=1000.0):
    odds, closing = df[ODDS_COLS].to_numpy(), df[CLOSE_COLS].to_numpy()
    edge = probs * odds - 1.0
    pick = edge.argmax(axis=1)
    rows = []
    for i in range(len(df)):
        k = pick[i]
        if edge[i, k] < cfg.min_edge:
            continue
        o, p = odds[i, k], probs[i, k]
        frac = cfg.kelly_fraction * (p * o - 1.0) / (o - 1.0)
        stake = min(frac, cfg.max_stake_frac) * bankroll
        pnl = stake * (o - 1.0) if df.result.iat[i] == k else -stake
        bankroll += pnl
        rows.append({"match_id": int(df.match_id.iat[i]), "outcome": OUTCOMES[k], "stake": float(stake),
                     "pnl": float(pnl), "clv": float(o / closing[i, k] - 1.0), "bankroll": float(bankroll)})
    bets = pd.DataFrame(rows)
    peak = bets.bankroll.cummax()
    return {
        "n_bets": len(bets),
        "turnover": float(bets.stake.sum()),
        "roi": bets.pnl.sum() / bets.stake.sum(),
        "hit_rate": float((bets.pnl > 0).mean()),
        "max_drawdown": float(((peak - bets.bankroll) / peak).max()),
        "mean_clv": bets.clv.mean(),
        "final_bankroll": bankroll,
        "ledger": bets,
    }


def run_experiment(cfg):
    torch.manual_seed(cfg.seed)
    df = simulate_matches(cfg)
    feats, feature_cols = build_features(df, cfg)
    tr, va, cutoff = time_split(feats, cfg.val_frac)
    X = feats[feature_cols].to_numpy(np.float32)
    mu, sd = X[tr.to_numpy()].mean(axis=0), X[tr.to_numpy()].std(axis=0) + 1e-6
    Xn = ((X - mu) / sd).astype(np.float32)
    y = feats.result.to_numpy()
    model = OutcomeMLP(len(feature_cols), cfg.hidden, cfg.dropout)
    losses, opt = train_mlp(model, Xn[tr.to_numpy()], y[tr.to_numpy()], cfg)
    return {
        "df": feats, "feature_cols": feature_cols, "train": tr, "val": va, "cutoff": cutoff,
        "mu": mu, "sd": sd, "X": Xn, "y": y, "model": model, "optimizer": opt, "losses": losses,
    }


# ----------------------------------------------------------------------------- entry points

def save_outcome_model(tmpdir):
    cfg = CalibConfig(epochs=8)
    run = run_experiment(cfg)
    ckpt = {
        "model": run["model"].state_dict(),
        "optimizer": run["optimizer"].state_dict(),
        "config": cfg,  # truth: weights_only
        "config_dict": asdict(cfg),
        "feature_cols": run["feature_cols"],  # truth: weights_only
        "feature_names": list(run["feature_cols"]),
        "feature_mean": torch.from_numpy(run["mu"]),
        "feature_std": run["sd"],  # truth: weights_only
        "final_loss": run["losses"][-1],
        "loss_curve": run["losses"],
        "cutoff": run["cutoff"].isoformat(),
        "market": Market.MATCH_ODDS.value,
    }
    path = os.path.join(tmpdir, "outcome_mlp.pt")
    torch.save(ckpt, path)
    return path


def save_temperature_scaling(tmpdir):
    cfg = CalibConfig(epochs=10, seed=7)
    run = run_experiment(cfg)
    va = run["val"].to_numpy()
    logits, y = predict_logits(run["model"], run["X"][va]), run["y"][va]
    ece_before, _, _ = expected_calibration_error(softmax(logits), y, cfg.n_bins)
    temperature, nll_after = fit_temperature(logits, y)
    calibrated = softmax(logits / temperature)
    ece_after, table, edges = expected_calibration_error(calibrated, y, cfg.n_bins)
    report = CalibrationReport(
        method="temperature",
        ece=float(ece_after),
        brier_home=brier_score_loss(y == 0, calibrated[:, 0]),
        log_loss=log_loss(y, calibrated, labels=[0, 1, 2]),
        n=int(va.sum()),
    )
    ckpt = {"model": run["model"].state_dict()}
    ckpt["temperature"] = temperature  # truth: weights_only
    ckpt["nll_after"] = float(nll_after)
    ckpt["ece_before"] = ece_before  # truth: weights_only
    ckpt["report"] = asdict(report)
    ckpt["reliability"] = table.reset_index().to_dict("list")
    ckpt["bin_edges"] = edges.tolist()
    ckpt["n_bins"] = cfg.n_bins
    path = os.path.join(tmpdir, "temperature.pt")
    torch.save(ckpt, path)
    return path


def save_isotonic_calibrator(tmpdir):
    cfg = CalibConfig(epochs=6, seed=31, devig="proportional")
    run = run_experiment(cfg)
    df, tr, va = run["df"], run["train"].to_numpy(), run["val"].to_numpy()
    p_home = softmax(predict_logits(run["model"], run["X"]))[:, 0]
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    iso.fit(p_home[tr], (run["y"][tr] == 0).astype(float))
    first, last = df.kickoff[tr].min(), df.kickoff[tr].max()
    ckpt = dict(
        isotonic=iso,  # truth: weights_only
        iso_x=iso.X_thresholds_.tolist(),
        iso_y=iso.y_thresholds_.tolist(),
        iso_params=iso.get_params(),
        brier_val=brier_score_loss(run["y"][va] == 0, iso.predict(p_home[va])),
        train_window=last - first,  # truth: weights_only
        train_days=(last - first).days,
        first_kickoff=first.isoformat(),
        n_train=int(tr.sum()),
    )
    ckpt.update(
        league_counts=df.league[tr].value_counts(),  # truth: weights_only
        league_share=df.league[tr].value_counts(normalize=True).to_dict(),
        top_league=df.league[tr].value_counts().idxmax(),
    )
    path = os.path.join(tmpdir, "isotonic_home.pt")
    torch.save(ckpt, path)
    return path


def save_betting_backtest(tmpdir):
    cfg = CalibConfig(epochs=10, seed=99, kelly_fraction=0.2)
    run = run_experiment(cfg)
    va = run["val"].to_numpy()
    probs = softmax(predict_logits(run["model"], run["X"][va]))
    start = Decimal("1000.00")
    results = kelly_backtest(run["df"][va].reset_index(drop=True), probs, cfg, bankroll=float(start))
    ckpt = dict(
        strategy="fractional_kelly",
        kelly_fraction=cfg.kelly_fraction,
        min_edge=cfg.min_edge,
        starting_bankroll=start,  # truth: weights_only
        starting_bankroll_str=str(start.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)),
        n_bets=results["n_bets"],
        turnover=results["turnover"],
        roi=results["roi"],  # truth: weights_only
        hit_rate=results["hit_rate"],
        max_drawdown=results["max_drawdown"],
        clv_mean=float(results["mean_clv"]),
        final_bankroll=results["final_bankroll"],  # truth: weights_only
        ledger=results["ledger"].to_dict("records"),
        model=run["model"].state_dict(),
    )
    path = os.path.join(tmpdir, "kelly_backtest.pt")
    torch.save(ckpt, path)
    return path


def save_devig_table(tmpdir):
    cfg = CalibConfig(n_matches=400, seed=5)
    df = simulate_matches(cfg)
    raw, overround = implied_probabilities(df)
    fair, z = devig_shin(raw)
    prop = devig_proportional(raw)
    rho, pval = stats.spearmanr(fair[:, 0], df.home_elo - df.away_elo)
    df = df.assign(overround=overround)
    table = {
        "method": "shin",
        "n_matches": len(df),
        "overround_mean": float(overround.mean()),
        "overround_by_league": df.groupby("league").overround.mean().to_dict(),
        "shin_z": z.tolist(),
        "shin_z_median": float(np.median(z)),
        "fair_home": torch.tensor(fair[:, 0]),
        "shin_minus_prop": torch.from_numpy(fair - prop),
        "odds_quantiles": df.odds_home.quantile([0.05, 0.5, 0.95]).tolist(),
        "leagues": sorted(df.league.unique()),
        "last_kickoff": df.kickoff.max().isoformat(),
        "spearman_elo": {"rho": float(rho), "p": float(pval)},
        "favourite_longshot_slope": round(float(np.polyfit(raw[:, 0], fair[:, 0], 1)[0]), 4),
        "rows": df.index.max() + 1,
        "example_fractional": float(Decimal("2.50")) - 1.0,
    }
    path = os.path.join(tmpdir, "devig_table.pt")
    torch.save(table, path)
    return path


def save_league_calibrators(tmpdir):
    cfg = CalibConfig(epochs=6, seed=13)
    run = run_experiment(cfg)
    df, va = run["df"], run["val"].to_numpy()
    logits_all = predict_logits(run["model"], run["X"])
    per_league = {}
    for league, grp in df[va].groupby("league"):
        rows = grp.index.to_numpy()
        t, nll = fit_temperature(logits_all[rows], run["y"][rows])
        ece, _, _ = expected_calibration_error(softmax(logits_all[rows] / t), run["y"][rows], cfg.n_bins)
        per_league[league] = {"temperature": float(t), "nll": float(nll), "ece": round(float(ece), 4),
                              "n": len(rows)}
    t_global, _ = fit_temperature(logits_all[va], run["y"][va])
    ece_global, _, _ = expected_calibration_error(softmax(logits_all[va] / t_global), run["y"][va])
    base = {"model": run["model"].state_dict(), "per_league": per_league}
    extra = {
        "global_temperature": float(t_global),
        "global_ece": round(ece_global, 4),  # truth: weights_only
        "market": Market.MATCH_ODDS,  # truth: weights_only
        "config": replace(cfg, tags=list(cfg.tags) + ["per-league"]).__dict__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "log10_matches": math.log10(len(df)),
    }
    path = os.path.join(tmpdir, "league_calibrators.pt")
    torch.save({**base, **extra}, path)
    return path


FACTORIES = {"Market": lambda: Market.MATCH_ODDS,
             "CalibrationReport": lambda: CalibrationReport("temperature", 0.03, 0.2, 0.98, 240)}
