"""Regional epidemic forecasting: SEIR dynamics with a neural residual on the
transmission rate, fitted jointly over a per-region table.

Configuration lives in YAML (OmegaConf), data preparation in pandas/sklearn, and
the weekly forecast hub submission is written next to the model checkpoint.
"""
import os
from collections import namedtuple
from datetime import date

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from omegaconf import OmegaConf
from scipy import optimize, stats
from sklearn.metrics import mean_absolute_error
from sklearn.preprocessing import LabelEncoder, StandardScaler

CONFIG_YAML = """
data:
  regions: [north, south, east, west, capital]
  start: "2024-01-07"
  weeks: 26
  holdout_weeks: 4
  seed: 7
model:
  compartments: [S, E, I, R]
  hidden: 16
  incubation_days: 5.2
  infectious_days: 7.0
  substeps: 7
train:
  lr: 0.02
  epochs: 12
  weight_decay: 1e-4
forecast:
  horizon_weeks: 4
  quantiles: [0.025, 0.25, 0.5, 0.75, 0.975]
  samples: 64
"""
FEATURES = ["log_pop", "urban_frac", "contacts", "vacc_rate"]
Intervention = namedtuple("Intervention", ["region", "start_week", "effect"])


def load_config(overrides=()):
    base = OmegaConf.create(CONFIG_YAML)
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


def make_region_table(cfg):
    rng = np.random.default_rng(cfg.data.seed)
    regions = list(cfg.data.regions)
    pop = rng.integers(200_000, 3_000_000, size=len(regions))
    return pd.DataFrame({
        "region": regions,
        "population": pop,
        "log_pop": np.log(pop),
        "urban_frac": rng.uniform(0.2, 0.95, len(regions)).round(3),
        "contacts": rng.uniform(6, 14, len(regions)).round(2),
        "vacc_rate": rng.uniform(0.3, 0.8, len(regions)).round(3),
    })


def simulate_cases(cfg, table):
    """Weekly incidence per region from a discrete SEIR with seasonal forcing and noise."""
    rng = np.random.default_rng(cfg.data.seed + 1)
    sigma, gamma = 1 / cfg.model.incubation_days, 1 / cfg.model.infectious_days
    dates = pd.date_range(cfg.data.start, periods=cfg.data.weeks, freq="W-SUN")
    rows = []
    for _, reg in table.iterrows():
        n = reg["population"]
        s, e, i = n - 50.0, 30.0, 20.0
        beta0 = 0.12 * reg["contacts"] / 10 * (1 - 0.5 * reg["vacc_rate"])
        for w, d in enumerate(dates):
            beta = beta0 * (1 + 0.3 * np.cos(2 * np.pi * w / 52))
            new = 0.0
            for _ in range(7):
                inf, onset, rec = beta * s * i / n, sigma * e, gamma * i
                s, e, i = s - inf, e + inf - onset, i + onset - rec
                new += onset
            rows.append({"date": d, "region": reg["region"], "cases": int(rng.poisson(max(new, 1.0)))})
    return pd.DataFrame(rows)


class SEIRResidual(nn.Module):
    """Per-region log transmission rate times exp(MLP(season, covariates))."""

    def __init__(self, num_regions=5, num_features=4, hidden=16, sigma=1 / 5.2, gamma=1 / 7.0, substeps=7):
        super().__init__()
        self.log_beta = nn.Parameter(torch.full((num_regions,), float(np.log(0.3))))
        self.residual = nn.Sequential(nn.Linear(num_features + 2, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.residual[-1].weight)
        self.sigma, self.gamma, self.substeps = sigma, gamma, substeps

    def forward(self, covariates, population, weeks, init_infected=20.0):
        n = population
        s, e, i = n - 50.0, torch.full_like(n, 30.0), torch.full_like(n, init_infected)
        out = []
        for w in range(weeks):
            season = torch.tensor([np.sin(2 * np.pi * w / 52), np.cos(2 * np.pi * w / 52)], dtype=torch.float32)
            x = torch.cat([covariates, season.expand(len(n), 2)], dim=1)
            beta = self.log_beta.exp() * self.residual(x).squeeze(-1).exp()
            new = torch.zeros_like(n)
            for _ in range(self.substeps):
                inf, onset, rec = beta * s * i / n, self.sigma * e, self.gamma * i
                s, e, i = s - inf, e + inf - onset, i + onset - rec
                new = new + onset
            out.append(new)
        return torch.stack(out, dim=1)


class RegionalForecaster:
    def __init__(self, cfg=None):
        self.cfg = cfg if cfg is not None else load_config()
        torch.manual_seed(self.cfg.data.seed)
        self.table = make_region_table(self.cfg)
        self.cases = simulate_cases(self.cfg, self.table)
        self.encoder = LabelEncoder().fit(self.table["region"])
        self.scaler = StandardScaler().fit(self.table[FEATURES])
        m = self.cfg.model
        self.model = SEIRResidual(len(self.table), len(FEATURES), m.hidden,
                                  1 / m.incubation_days, 1 / m.infectious_days, m.substeps)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.train.lr,
                                          weight_decay=self.cfg.train.weight_decay)
        self.history = []

    def tensors(self):
        x = torch.tensor(self.scaler.transform(self.table[FEATURES]), dtype=torch.float32)
        pop = torch.tensor(self.table["population"].to_numpy(), dtype=torch.float32)
        wide = self.cases.pivot(index="region", columns="date", values="cases").loc[self.encoder.classes_]
        y = torch.tensor(wide.to_numpy(), dtype=torch.float32)
        return x, pop, y

    def fit(self):
        x, pop, y = self.tensors()
        train_w = y.shape[1] - self.cfg.data.holdout_weeks
        for _ in range(self.cfg.train.epochs):
            pred = self.model(x, pop, train_w)
            loss = ((pred.clamp_min(1e-3).log1p() - y[:, :train_w].log1p()) ** 2).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.history.append(loss.item())
        return self.history

    @torch.no_grad()
    def forecast(self):
        x, pop, y = self.tensors()
        mean = self.model(x, pop, y.shape[1] + self.cfg.forecast.horizon_weeks)
        draws = torch.distributions.Poisson(mean.clamp_min(1.0)).sample((self.cfg.forecast.samples,))
        levels = torch.tensor(list(self.cfg.forecast.quantiles))
        return torch.quantile(draws, levels, dim=0), y


def fit_mechanistic(weekly_cases, population, cfg):
    """Classical baseline: least-squares SIR fit (beta, gamma) to one region's curve."""
    def simulate(theta):
        beta, gamma = theta
        s, i, out = population - 20.0, 20.0, []
        for _ in range(len(weekly_cases)):
            new = 0.0
            for _ in range(7):
                inf = beta * s * i / population
                s, i = s - inf, i + inf - gamma * i
                new += inf
            out.append(new)
        return np.array(out)

    def loss(theta):
        return np.mean((np.log1p(simulate(theta)) - np.log1p(weekly_cases)) ** 2)

    return optimize.minimize(loss, x0=np.array([0.3, 1 / cfg.model.infectious_days]),
                             bounds=[(0.01, 2.0), (0.02, 1.0)], method="L-BFGS-B")


def save_forecaster_checkpoint(tmpdir):
    cfg = load_config(["train.epochs=6"])
    fc = RegionalForecaster(cfg)
    history = fc.fit()
    ckpt = {
        "state_dict": fc.model.state_dict(),
        "optimizer": fc.optimizer.state_dict(),
        "config": cfg,  # truth: weights_only
        "compartments": list(cfg.model.compartments),
        "region_index": {r: i for i, r in enumerate(fc.encoder.classes_.tolist())},
        "population": fc.table.set_index("region")["population"].to_dict(),
        "total_cases": fc.cases.groupby("region")["cases"].sum().to_dict(),
        "final_loss": history[-1],
        "epochs": cfg.train.epochs,
        "lr": cfg.train.lr,
    }
    last = fc.cases["date"].max()
    ckpt["last_observed"] = last  # truth: weights_only
    ckpt["last_observed_iso"] = last.date().isoformat()
    path = os.path.join(tmpdir, "seir_residual.ckpt")
    torch.save(ckpt, path)
    return path


def save_preprocessing(tmpdir):
    fc = RegionalForecaster()
    x, _, _ = fc.tensors()
    prep = {"features": list(FEATURES), "covariates": x}
    prep["regions"] = fc.encoder.classes_.tolist()
    prep["region_classes"] = fc.encoder.classes_  # truth: weights_only
    prep["scaler_stats"] = {"mean": fc.scaler.mean_.tolist(), "scale": fc.scaler.scale_.tolist(),
                            "n_features": fc.scaler.n_features_in_}
    prep["scaler"] = fc.scaler  # truth: weights_only
    prep["region_records"] = fc.table.to_dict("records")
    prep["region_table"] = fc.table.to_dict("list")
    prep["config"] = OmegaConf.to_container(fc.cfg.data, resolve=True)
    path = os.path.join(tmpdir, "preprocessing.pt")
    torch.save(prep, path)
    return path


def save_mechanistic_baseline(tmpdir):
    cfg = load_config()
    table = make_region_table(cfg)
    cases = simulate_cases(cfg, table)
    fits = {}
    for region, grp in cases.groupby("region"):
        pop = float(table.loc[table["region"] == region, "population"].iloc[0])
        res = fit_mechanistic(grp["cases"].to_numpy()[:12], pop, cfg)
        beta, gamma = res.x
        fits[region] = {
            "beta": float(beta),
            "gamma": float(gamma),
            "r0": beta / gamma,  # truth: weights_only
            "nll": float(res.fun),
            "converged": res.success,
            "iterations": res.nit,
        }
    gi = stats.gamma(a=2.5, scale=cfg.model.infectious_days / 2.5)
    baseline = dict(
        fits=fits,
        generation_interval=gi,  # truth: weights_only
        gi_mean_days=float(gi.mean()),
        gi_pmf=torch.tensor(np.diff(gi.cdf(np.arange(0, 22))), dtype=torch.float32),
        horizon=pd.Timedelta(weeks=cfg.forecast.horizon_weeks),  # truth: weights_only
        horizon_days=pd.Timedelta(weeks=cfg.forecast.horizon_weeks).days,
        fitted_weeks=12,
    )
    path = os.path.join(tmpdir, "baseline.pt")
    torch.save(baseline, path)
    return path


def save_forecast_bundle(tmpdir):
    fc = RegionalForecaster(load_config(["train.epochs=4", "forecast.samples=32"]))
    fc.fit()
    qpred, y = fc.forecast()
    hold = fc.cfg.data.holdout_weeks
    obs_w = y.shape[1]
    lo, med, hi = qpred[0], qpred[2], qpred[-1]
    scores = {}
    for r, region in enumerate(fc.encoder.classes_.tolist()):
        truth = y[r, obs_w - hold:].numpy()
        inside = (truth >= lo[r, obs_w - hold:obs_w].numpy()) & (truth <= hi[r, obs_w - hold:obs_w].numpy())
        scores[region] = {
            "mae": mean_absolute_error(truth, med[r, obs_w - hold:obs_w].numpy()),
            "coverage_95": inside.mean(),  # truth: weights_only
            "width_95": float((hi[r] - lo[r])[obs_w - hold:obs_w].mean()),
        }
    interventions = [Intervention("capital", 10, 0.7), Intervention("north", 14, 0.85)]
    bundle = {
        "quantiles": qpred[:, :, obs_w:].clone(),
        "quantile_levels": list(fc.cfg.forecast.quantiles),
        "quantile_cfg": fc.cfg.forecast.quantiles,  # truth: weights_only
        "scores": scores,
        "interventions": interventions,  # truth: weights_only
        "intervention_table": [iv._asdict() for iv in interventions],
        "target_end_dates": [d.strftime("%Y-%m-%d") for d in pd.date_range(
            fc.cases["date"].max(), periods=fc.cfg.forecast.horizon_weeks + 1, freq="W-SUN")[1:]],
        "issued": date.today().isoformat(),
        "model": "seir-residual",
    }
    path = os.path.join(tmpdir, "hub_submission.pt")
    torch.save(bundle, path)
    return path


def save_ensemble_weights(tmpdir):
    cfg = load_config(["train.epochs=3"])
    fc = RegionalForecaster(cfg)
    fc.fit()
    qpred, y = fc.forecast()
    obs_w, hold = y.shape[1], cfg.data.holdout_weeks
    members = {"seir_residual": qpred[2, :, obs_w - hold:obs_w],
               "persistence": y[:, obs_w - hold - 1:obs_w - 1],
               "mean_4wk": y[:, obs_w - hold - 4:obs_w - hold].mean(1, keepdim=True).expand(-1, hold)}
    errors = {}
    for name, pred in members.items():
        errors[name] = float((pred - y[:, obs_w - hold:obs_w]).abs().mean())
    inv = torch.tensor([1.0 / (e + 1e-6) for e in errors.values()])
    weights = inv / inv.sum()
    out = {
        "members": list(members),
        "weights": weights,
        "weights_list": [round(w, 4) for w in weights.tolist()],
        "mae": errors,
        "best_member": min(errors, key=errors.get),
        "holdout_weeks": hold,
    }
    path = os.path.join(tmpdir, "ensemble.pt")
    torch.save(out, path)
    return path
