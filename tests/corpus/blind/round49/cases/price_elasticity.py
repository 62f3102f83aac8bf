"""E-commerce price elasticity: log-log demand models, per-category elasticities and price
recommendations.  Configuration through OmegaConf (YAML + dotlist overrides), models through
a registry, preprocessing with pandas / scikit-learn, price optimisation with scipy.
"""
import dataclasses
import datetime
import enum
import os
import re
from decimal import Decimal

import numpy as np
import pandas as pd
import scipy.optimize
import scipy.stats
import torch
from omegaconf import OmegaConf
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.metrics import mean_absolute_percentage_error, r2_score
from sklearn.model_selection import KFold, cross_val_score
from sklearn.preprocessing import LabelEncoder, PolynomialFeatures, StandardScaler
from torch import nn

CONFIG_YAML = r"""
experiment: elasticity_v3
data:
  n_skus: 12
  n_weeks: 20
  holdout_weeks: 4
  start: "2024-01-01"
  categories: [grocery, electronics, apparel]
pricing:
  currency: EUR
  floor: 4.99
  ceiling: 199.0
  grid_points: 9
  unit_cost_ratio: 0.6
  sku_pattern: '^[A-Z]{3}-\d{4}$'
model:
  name: loglog_mlp
  hidden: 16
  embedding_dim: 4
  dropout: 0.1
optim:
  lr: 0.01
  weight_decay: 1.0e-4
  betas: [0.9, 0.999]
train:
  epochs: 3
  seed: 7
"""


class Currency(enum.Enum):
    EUR = "EUR"
    USD = "USD"
    GBP = "GBP"


@dataclasses.dataclass
class RunSpec:
    name: str = "elasticity_v3"
    currency: Currency = Currency.EUR
    owner: str = "pricing-ds"
    tags: list = dataclasses.field(default_factory=lambda: ["weekly", "loglog"])


def load_config(overrides=()):
    base = OmegaConf.create(CONFIG_YAML)
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


MODEL_REGISTRY = {}


def register_model(name):
    def deco(cls):
        MODEL_REGISTRY[name] = cls
        return cls
    return deco


@register_model("loglog_mlp")
class LogLogDemandNet(nn.Module):
    """log(qty) = a_sku + beta_cat * log(price) + mlp(features)."""

    def __init__(self, n_skus=12, n_categories=3, n_features=5, hidden=16, embedding_dim=4, dropout=0.1):
        super().__init__()
        self.sku_emb = nn.Embedding(n_skus, embedding_dim)
        self.beta = nn.Parameter(torch.full((n_categories,), -1.0))
        self.mlp = nn.Sequential(nn.Linear(n_features + embedding_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, 1))

    def forward(self, sku, cat, log_price, feats):
        h = torch.cat([self.sku_emb(sku), feats], -1)
        return self.beta[cat] * log_price + self.mlp(h).squeeze(-1)


@register_model("linear")
class LinearDemand(nn.Module):
    def __init__(self, n_skus=12, n_categories=3, n_features=5, **_):
        super().__init__()
        self.bias = nn.Embedding(n_skus, 1)
        self.beta = nn.Parameter(torch.full((n_categories,), -1.0))
        self.w = nn.Linear(n_features, 1, bias=False)

    def forward(self, sku, cat, log_price, feats):
        return self.bias(sku).squeeze(-1) + self.beta[cat] * log_price + self.w(feats).squeeze(-1)


def build_model(cfg, n_skus, n_categories, n_features):
    cls = MODEL_REGISTRY[cfg.model.name]
    return cls(n_skus=n_skus, n_categories=n_categories, n_features=n_features, hidden=cfg.model.hidden,
               embedding_dim=cfg.model.embedding_dim, dropout=cfg.model.dropout)


def make_transactions(cfg):
    rng = np.random.default_rng(cfg.train.seed)
    cats = list(cfg.data.categories)
    rows = []
    for i in range(cfg.data.n_skus):
        cat = cats[i % len(cats)]
        base_price = rng.uniform(5, 150)
        beta = {"grocery": -0.8, "electronics": -1.9, "apparel": -1.3}[cat]
        for week in range(cfg.data.n_weeks):
            promo = rng.random() < 0.2
            price = base_price * (0.8 if promo else 1.0) * rng.uniform(0.95, 1.05)
            qty = max(1, int(np.exp(4.0 + beta * np.log(price / base_price) + rng.normal(0, 0.1))))
            rows.append((f"{cat[:3].upper()}-{i:04d}", cat, week, promo, round(price, 2), qty))
    df = pd.DataFrame(rows, columns=["sku", "category", "week", "promo", "price", "qty"])
    df["date"] = pd.Timestamp(cfg.data.start) + pd.to_timedelta(df["week"] * 7, unit="D")
    return df


class FeaturePipeline:
    numeric = ("log_price", "promo", "week_sin", "week_cos")

    def __init__(self, degree=1):
        self.sku_encoder = LabelEncoder()
        self.cat_encoder = LabelEncoder()
        self.scaler = StandardScaler()
        self.poly = PolynomialFeatures(degree=degree, include_bias=False)

    def frame(self, df):
        out = pd.DataFrame({"log_price": np.log(df["price"]), "promo": df["promo"].astype(float),
                            "week_sin": np.sin(2 * np.pi * df["week"] / 52),
                            "week_cos": np.cos(2 * np.pi * df["week"] / 52)})
        out["log_price_x_promo"] = out["log_price"] * out["promo"]
        return out

    def fit(self, df):
        self.sku_encoder.fit(df["sku"])
        self.cat_encoder.fit(df["category"])
        self.scaler.fit(self.poly.fit_transform(self.frame(df)))
        return self

    def transform(self, df):
        feats = self.scaler.transform(self.poly.transform(self.frame(df)))
        return (torch.as_tensor(self.sku_encoder.transform(df["sku"])),
                torch.as_tensor(self.cat_encoder.transform(df["category"])),
                torch.as_tensor(np.log(df["price"].to_numpy()), dtype=torch.float32),
                torch.as_tensor(feats, dtype=torch.float32),
                torch.as_tensor(np.log(df["qty"].to_numpy()), dtype=torch.float32))


def split_holdout(df, cfg):
    cutoff = df["date"].max() - pd.Timedelta(weeks=cfg.data.holdout_weeks - 1)
    return df[df["date"] < cutoff], df[df["date"] >= cutoff], cutoff


def train_model(cfg, overrides=()):
    torch.manual_seed(cfg.train.seed)
    df = make_transactions(cfg)
    train_df, test_df, cutoff = split_holdout(df, cfg)
    pipe = FeaturePipeline().fit(train_df)
    tensors = pipe.transform(train_df)
    model = build_model(cfg, df["sku"].nunique(), df["category"].nunique(), tensors[3].shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                            betas=tuple(cfg.optim.betas))
    history = []
    for _ in range(cfg.train.epochs):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(*tensors[:4]), tensors[4])
        loss.backward()
        opt.step()
        history.append(round(loss.item(), 5))
    model.eval()
    with torch.no_grad():
        test_t = pipe.transform(test_df)
        pred = model(*test_t[:4]).exp().numpy()
    mape = mean_absolute_percentage_error(test_df["qty"], pred)
    return model, opt, pipe, df, cutoff, history, mape


def fit_category_elasticities(df):
    models = {}
    for cat, g in df.groupby("category"):
        X = np.log(g[["price"]].to_numpy())
        y = np.log(g["qty"].to_numpy())
        models[cat] = LinearRegression().fit(X, y)
    return models


def optimal_price(elasticity, unit_cost, lo, hi):
    """Constant-elasticity demand q = p**e: maximise (p - c) * q on [lo, hi]."""
    res = scipy.optimize.minimize_scalar(lambda p: -(p - unit_cost) * p ** elasticity, bounds=(lo, hi),
                                         method="bounded")
    return res


def save_demand_model(tmpdir):
    cfg = load_config(["train.epochs=2"])
    model, opt, pipe, df, cutoff, history, mape = train_model(cfg)
    scaler = pipe.scaler
    ckpt = {
        "model_name": cfg.model.name,
        "state_dict": model.state_dict(),
        "optimizer": opt.state_dict(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "sku_classes": pipe.sku_encoder.classes_.tolist(),
        "category_classes": list(pipe.cat_encoder.classes_),
        "feature_names": list(pipe.poly.get_feature_names_out()),
        "scaler": {
            "mean": torch.tensor(scaler.mean_),
            "scale": scaler.scale_.tolist(),
            "n_features": scaler.n_features_in_,
            "n_samples_seen": scaler.n_samples_seen_,  # truth: weights_only
        },
        "history": history,
        "holdout_mape": mape,
        "holdout_from": cutoff,  # truth: weights_only
        "holdout_from_str": cutoff.strftime("%Y-%m-%d"),
    }
    ckpt.update(
        n_skus=df["sku"].nunique(),
        n_rows=len(df),
        max_promo_weeks=df.groupby("sku")["promo"].sum().max(),  # truth: weights_only
        optim_cfg=cfg.optim,  # truth: weights_only
        optim_kwargs=dict(lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay, betas=list(cfg.optim.betas)),
    )
    path = os.path.join(tmpdir, f"{cfg.experiment}_{cfg.model.name}.pt")
    torch.save(ckpt, path)
    return path


def save_elasticity_estimates(tmpdir):
    cfg = load_config()
    df = make_transactions(cfg)
    models = fit_category_elasticities(df)
    elasticity, intercept, r2, n_obs = {}, {}, {}, {}
    for cat, lr in models.items():
        g = df[df["category"] == cat]
        X = np.log(g[["price"]].to_numpy())
        elasticity[cat] = float(lr.coef_[0])
        intercept[cat] = lr.intercept_.item()
        r2[cat] = r2_score(np.log(g["qty"]), lr.predict(X))
        n_obs[cat] = len(g)
    X_all = np.log(df[["price"]].to_numpy())
    y_all = np.log(df["qty"].to_numpy())
    pooled = LinearRegression().fit(X_all, y_all)
    cv = cross_val_score(Ridge(alpha=1.0), X_all, y_all, cv=KFold(3), scoring="r2")
    rho = scipy.stats.spearmanr(df["price"], df["qty"])
    promo = df.groupby("promo")["qty"].mean().to_dict()
    estimates = {
        "by_category": elasticity,
        "intercepts": intercept,
        "r2": r2,
        "n_obs": n_obs,
        "pooled_elasticity": pooled.coef_[0],  # truth: weights_only
        "pooled_r2": pooled.score(X_all, y_all),
        "cv_r2": cv.tolist(),
        "cv_r2_mean": cv.mean(),  # truth: weights_only
        "spearman_rho": float(rho.statistic),
        "promo_lift": promo[True] / promo[False] - 1.0,
        "promo_mean_qty": promo,
        "category_share": df["category"].value_counts(normalize=True).to_dict(),
        "weekly_units": df.groupby("week")["qty"].sum().to_dict(),
        "price_quantiles": df["price"].quantile([0.05, 0.5, 0.95]).to_dict(),
        "estimated_on": pd.Timestamp.now().isoformat(),
    }
    path = os.path.join(tmpdir, "elasticities.pt")
    torch.save(estimates, path)
    return path


def save_price_recommendations(tmpdir):
    cfg = load_config(["pricing.currency=EUR"])
    df = make_transactions(cfg)
    models = fit_category_elasticities(df)
    last = df.sort_values("date").groupby("sku").tail(1).set_index("sku")
    recommended, lift, solved = {}, {}, []
    for sku, row in last.iterrows():
        e = float(models[row["category"]].coef_[0])
        cost = float(row["price"]) * cfg.pricing.unit_cost_ratio
        res = optimal_price(min(e, -1.05), cost, cfg.pricing.floor, cfg.pricing.ceiling)
        recommended[sku] = round(float(res.x), 2)
        lift[sku] = float(-res.fun) / max(1e-9, (float(row["price"]) - cost) * float(row["price"]) ** e) - 1.0
        solved.append(bool(res.success))
    out = {
        "recommended": recommended,
        "expected_profit_lift": lift,
        "all_solved": all(solved),
        "currency": Currency(cfg.pricing.currency),  # truth: weights_only
        "currency_code": cfg.pricing.currency,
        "price_floor": Decimal(str(cfg.pricing.floor)),  # truth: weights_only
        "price_ceiling": float(cfg.pricing.ceiling),
        "price_grid": torch.linspace(cfg.pricing.floor, cfg.pricing.ceiling, cfg.pricing.grid_points),
        "sku_pattern": re.compile(cfg.pricing.sku_pattern),  # truth: weights_only
        "sku_regex": cfg.pricing.sku_pattern,
        "valid_skus": sorted(s for s in recommended if re.match(cfg.pricing.sku_pattern, s)),
        "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    path = os.path.join(tmpdir, "price_recommendations.pt")
    torch.save(out, path)
    return path


def save_experiment_snapshot(tmpdir):
    cfg = load_config(["model.name=linear", "train.epochs=1"])
    model, opt, pipe, df, cutoff, history, mape = train_model(cfg)
    spec = OmegaConf.structured(RunSpec(name=cfg.experiment))
    weeks = sorted(df["week"].unique().tolist())
    holdout = frozenset(weeks[-cfg.data.holdout_weeks:])
    grid = np.linspace(cfg.pricing.floor, cfg.pricing.ceiling, cfg.pricing.grid_points)
    beta = model.beta.detach().numpy()
    curve = np.exp(4.0 + beta[0] * np.log(grid / grid.mean()))
    snapshot = {"state_dict": model.state_dict(), "history": history}
    snapshot["run"] = OmegaConf.to_object(spec)  # truth: weights_only
    snapshot["run_dict"] = OmegaConf.to_container(spec, enum_to_str=True)
    snapshot["holdout_weeks"] = holdout  # truth: weights_only
    snapshot["train_weeks"] = [w for w in weeks if w not in holdout]
    snapshot["demand_curve"] = curve  # truth: weights_only
    snapshot["demand_curve_grid"] = grid.tolist()
    snapshot["beta"] = torch.from_numpy(beta.copy())
    snapshot["holdout_mape"] = mape
    path = os.path.join(tmpdir, "snapshot.pt")
    torch.save(snapshot, path)
    return path


def save_serving_export(tmpdir):
    cfg = load_config(["train.epochs=1"])
    model, opt, pipe, df, cutoff, history, mape = train_model(cfg)
    spec = OmegaConf.structured(RunSpec())
    export = {
        "model_name": cfg.model.name,
        "state_dict": model.state_dict(),
        "model_kwargs": {"n_skus": len(pipe.sku_encoder.classes_), "n_categories": len(pipe.cat_encoder.classes_),
                         "hidden": cfg.model.hidden, "embedding_dim": cfg.model.embedding_dim},
        "sku_index": dict(zip(pipe.sku_encoder.classes_.tolist(), range(len(pipe.sku_encoder.classes_)))),
        "category_index": {c: i for i, c in enumerate(pipe.cat_encoder.classes_.tolist())},
        "scaler_mean": pipe.scaler.mean_.tolist(),
        "scaler_scale": torch.from_numpy(pipe.scaler.scale_).float(),
        "feature_names": pipe.poly.get_feature_names_out().tolist(),
        "run": OmegaConf.to_container(spec, enum_to_str=True),
        "currency": Currency.EUR.value,
        "cutoff": cutoff.isoformat(),
        "last_price": df.sort_values("date").groupby("sku")["price"].last().to_dict(),
        "mape": round(mape, 4),
        "row_sample": df.drop(columns="date").head(2).to_dict("records"),
    }
    path = os.path.join(tmpdir, "serving.pt")
    torch.save(export, path)
    return path


FACTORIES = {
    "Currency": lambda: Currency.EUR,
    "LinearDemand": lambda: LinearDemand(n_skus=4),
}
