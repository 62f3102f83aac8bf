"""Uplift modelling on a simulated retention campaign.

Propensity scores (scikit-learn logistic regression), an IPW average treatment effect with bootstrap
confidence intervals, a T-learner (one classifier per arm) and an S-learner (a small torch MLP that
sees the treatment flag), cohort tables and Qini areas in pandas/numpy.
"""
import dataclasses
import enum
import os

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

FEATURES = ("age", "tenure", "visits", "is_west")


class Learner(enum.Enum):
    T = "t_learner"
    S = "s_learner"


@dataclasses.dataclass
class UpliftConfig:
    features: tuple = FEATURES
    n_boot: int = 40
    clip_low: float = 0.02
    clip_high: float = 0.98
    hidden: int = 16
    epochs: int = 40
    lr: float = 0.05
    seed: int = 7


def make_campaign(n=400, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "age": rng.integers(18, 70, n),
        "tenure": rng.exponential(3.0, n).round(2),
        "visits": rng.poisson(4, n),
        "region": rng.choice(["north", "south", "west"], n),
    })
    df["is_west"] = (df["region"] == "west").astype(int)
    logit = -0.3 + 0.03 * (df["age"] - 40) + 0.15 * (df["visits"] - 4)
    df["treated"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    base = 0.15 + 0.02 * df["visits"]
    tau = 0.08 + 0.12 * df["is_west"]
    df["converted"] = (rng.random(n) < np.clip(base + tau * df["treated"], 0, 1)).astype(int)
    df["cohort"] = pd.cut(df["age"], bins=[17, 30, 45, 70], labels=["young", "mid", "senior"])
    return df


def ipw_ate(t, y, e):
    return np.mean(t * y / e) - np.mean((1 - t) * y / (1 - e))


class PropensityModel:
    def __init__(self, features, clip=(0.02, 0.98)):
        self.features = list(features)
        self.clip = clip
        self.scaler = StandardScaler()
        self.model = LogisticRegression(max_iter=500)
        self.auc = None

    def fit(self, df):
        X = self.scaler.fit_transform(df[self.features])
        self.model.fit(X, df["treated"])
        self.scores = np.clip(self.model.predict_proba(X)[:, 1], *self.clip)
        self.auc = roc_auc_score(df["treated"], self.scores)
        self.overlap = (self.scores.min(), self.scores.max())
        return self


class TLearner:
    def __init__(self, features):
        self.features = list(features)
        self.control = LogisticRegression(max_iter=500)
        self.treated = LogisticRegression(max_iter=500)

    def fit(self, df):
        for arm, model in ((0, self.control), (1, self.treated)):
            part = df[df["treated"] == arm]
            model.fit(part[self.features].to_numpy(dtype=float), part["converted"])
        return self

    def predict_uplift(self, df):
        X = df[self.features].to_numpy(dtype=float)
        return self.treated.predict_proba(X)[:, 1] - self.control.predict_proba(X)[:, 1]


class SLearnerNet(nn.Module):
    def __init__(self, n_features, hidden=16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features + 1, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x, t):
        return self.net(torch.cat([x, t.unsqueeze(1)], dim=1)).squeeze(1)


class UpliftExperiment:
    def __init__(self, cfg=None):
        self.cfg = cfg or UpliftConfig()
        self.rng = np.random.default_rng(self.cfg.seed)
        self.df = make_campaign(seed=self.cfg.seed)
        self.propensity = PropensityModel(self.cfg.features, (self.cfg.clip_low, self.cfg.clip_high))
        self.t_learner = TLearner(self.cfg.features)
        self.s_net = None
        self.ate_ipw = None
        self.boot_ates = []
        self.loss_history = []

    def _tensors(self, df):
        X = df[list(self.cfg.features)].to_numpy(dtype=np.float32)
        X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-6)
        t = torch.tensor(df["treated"].to_numpy(), dtype=torch.float32)
        return torch.from_numpy(X), t

    def fit_s_learner(self):
        torch.manual_seed(self.cfg.seed)
        X, t = self._tensors(self.df)
        y = torch.tensor(self.df["converted"].to_numpy(), dtype=torch.float32)
        self.s_net = SLearnerNet(X.shape[1], self.cfg.hidden)
        self.s_optimizer = torch.optim.Adam(self.s_net.parameters(), lr=self.cfg.lr)
        loss_fn = nn.BCEWithLogitsLoss()
        for _ in range(self.cfg.epochs):
            self.s_optimizer.zero_grad()
            loss = loss_fn(self.s_net(X, t), y)
            loss.backward()
            self.s_optimizer.step()
            self.loss_history.append(loss.item())

    def predict_s(self, df):
        X, _ = self._tensors(df)
        with torch.no_grad():
            p1 = torch.sigmoid(self.s_net(X, torch.ones(len(df))))
            p0 = torch.sigmoid(self.s_net(X, torch.zeros(len(df))))
        return (p1 - p0).numpy()

    def fit(self):
        self.propensity.fit(self.df)
        t = self.df["treated"].to_numpy()
        y = self.df["converted"].to_numpy()
        self.ate_ipw = ipw_ate(t, y, self.propensity.scores)
        self.t_learner.fit(self.df)
        self.df["cate_t"] = self.t_learner.predict_uplift(self.df)
        self.fit_s_learner()
        self.df["cate_s"] = self.predict_s(self.df)
        return self

    def bootstrap(self):
        t = self.df["treated"].to_numpy()
        y = self.df["converted"].to_numpy()
        e = self.propensity.scores
        n = len(t)
        for _ in range(self.cfg.n_boot):
            idx = self.rng.integers(0, n, n)
            self.boot_ates.append(ipw_ate(t[idx], y[idx], e[idx]))
        return np.percentile(self.boot_ates, [2.5, 97.5])

    def qini(self, score_col):
        d = self.df.sort_values(score_col, ascending=False)
        treated = d["treated"].to_numpy()
        conv = d["converted"].to_numpy()
        n_t = np.maximum(np.cumsum(treated), 1)
        n_c = np.maximum(np.cumsum(1 - treated), 1)
        curve = np.cumsum(conv * treated) - np.cumsum(conv * (1 - treated)) * n_t / n_c
        x = np.arange(1, len(d) + 1) / len(d)
        return np.trapezoid(curve, x), curve

    def cohort_table(self):
        return (self.df.groupby("cohort", observed=True)
                .agg(n=("treated", "size"), uplift=("cate_t", "mean"), treated_rate=("treated", "mean")))


FACTORIES = {
    "Learner": lambda: Learner.T,
    "PropensityModel": lambda: PropensityModel(FEATURES).fit(make_campaign(120)),
    "TLearner": lambda: TLearner(FEATURES).fit(make_campaign(120)),
    "SLearnerNet": lambda: SLearnerNet(len(FEATURES)),
}


def save_propensity_model(tmpdir):
    exp = UpliftExperiment().fit()
    prop = exp.propensity
    path = os.path.join(tmpdir, "propensity.pt")
    torch.save({
        "estimator": prop.model,  # truth: weights_only
        "coef": prop.model.coef_.ravel().tolist(),
        "intercept": float(prop.model.intercept_[0]),
        "params": prop.model.get_params(),
        "scaler": {"mean": prop.scaler.mean_.tolist(), "scale": prop.scaler.scale_.tolist()},
        "features": list(prop.scaler.feature_names_in_),
        "auc": prop.auc,
        "accuracy": accuracy_score(exp.df["treated"], prop.scores > 0.5),
        "overlap": [float(v) for v in prop.overlap],
        "n_seen": prop.scaler.n_samples_seen_,  # truth: weights_only
        "clip": prop.clip,
    }, path)
    return path


def save_ate_estimates(tmpdir):
    exp = UpliftExperiment().fit()
    ci = exp.bootstrap()
    t = exp.df["treated"]
    naive = exp.df.loc[t == 1, "converted"].mean() - exp.df.loc[t == 0, "converted"].mean()
    ckpt = {"ate_naive": float(naive)}
    ckpt["ate_ipw"] = exp.ate_ipw  # truth: weights_only
    ckpt["ci95"] = ci  # truth: weights_only
    ckpt["ci95_bounds"] = tuple(float(b) for b in ci)
    ckpt["boot_ates"] = exp.boot_ates  # truth: weights_only
    ckpt["n_boot"] = len(exp.boot_ates)
    ckpt["treated_share"] = float(t.mean())
    ckpt["significant"] = ci[0] > 0  # truth: weights_only
    ckpt["rng_state"] = exp.rng.bit_generator.state
    path = os.path.join(tmpdir, "ate.pt")
    torch.save(ckpt, path)
    return path


def save_s_learner(tmpdir):
    exp = UpliftExperiment().fit()
    path = os.path.join(tmpdir, "s_learner.pt")
    torch.save({
        "model": exp.s_net.state_dict(),
        "optimizer": exp.s_optimizer.state_dict(),
        "loss_history": exp.loss_history,
        "final_loss": exp.loss_history[-1],
        "features": list(exp.cfg.features),
        "config": dataclasses.asdict(exp.cfg),
        "learner": Learner.S.value,
        "cate_mean": float(exp.df["cate_s"].mean()),
        "input_dim": exp.s_net.net[0].in_features,
    }, path)
    return path


def save_cohort_report(tmpdir):
    exp = UpliftExperiment().fit()
    table = exp.cohort_table()
    area, curve = exp.qini("cate_t")
    path = os.path.join(tmpdir, "cohorts.pt")
    torch.save({
        "cohort_uplift": table["uplift"].to_dict(),
        "cohort_sizes": exp.df["cohort"].value_counts(),  # truth: weights_only
        "largest_cohort": str(table["n"].idxmax()),
        "qini_t": area,  # truth: weights_only
        "qini_curve": torch.as_tensor(curve),
        "cohort_labels": list(exp.df["cohort"].cat.categories),
        "conversion_by_visits": exp.df.groupby("visits")["converted"].mean().to_dict(),
        "regions": exp.df["region"].unique(),  # truth: weights_only
        "generated": pd.Timestamp.now(),  # truth: weights_only
    }, path)
    return path


def save_t_learner(tmpdir):
    exp = UpliftExperiment().fit()
    tl = exp.t_learner
    path = os.path.join(tmpdir, "t_learner.pt")
    torch.save({
        "kind": Learner.T.value,
        "treated_coef": tl.treated.coef_.tolist(),
        "classes": tl.control.classes_.tolist(),
        "cate": torch.from_numpy(exp.df["cate_t"].to_numpy()),
        "top_decile": float(exp.df["cate_t"].quantile(0.9)),
        "regions": sorted(exp.df["region"].unique()),
        "n_features": tl.control.n_features_in_,
    }, path)
    return path
