"""30-day hospital readmission from EHR encounter tables.

Cohort: adult inpatient encounters discharged alive, split in time on the
discharge date (train < 2021-07 <= valid < 2022-01 <= test). Features go
through a sklearn ColumnTransformer; the model is a small MLP in torch with a
logistic-regression baseline, temperature scaling and a subgroup audit.

`make_encounters` stands in for the warehouse extract (admissions joined to
labs, meds and Charlson comorbidities).
"""
import dataclasses
import datetime
import enum
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from scipy import stats
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (average_precision_score, brier_score_loss, classification_report,
                             precision_recall_fscore_support, roc_auc_score, roc_curve)
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


torch.set_num_threads(1)  # shared analytics VM: one core per job


class Split(enum.Enum):
    TRAIN = "train"
    VALID = "valid"
    TEST = "test"


@dataclass
class CohortConfig:
    valid_start: str = "2021-07-01"
    test_start: str = "2022-01-01"
    readmit_window_days: int = 30
    min_age: int = 18
    exclude_dispositions: tuple = ("expired", "hospice")
    numeric: tuple = ("age", "los_days", "n_prior_adm", "n_meds", "hba1c", "creatinine", "charlson")
    categorical: tuple = ("admission_type", "insurance", "discharge_to", "sex")
    export_dir: Path = Path("artifacts/readmit")


@dataclass
class TrainConfig:
    hidden: tuple = (64, 32)
    dropout: float = 0.2
    lr: float = 2e-3
    weight_decay: float = 1e-4
    epochs: int = 4
    batch_size: int = 128
    seed: int = 7
    use_pos_weight: bool = True


def make_encounters(n=1200, seed=0):
    rng = np.random.default_rng(seed)
    admit = pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 4 * 365, n), unit="D")
    los = rng.gamma(2.0, 2.5, n).round(1) + 0.5
    df = pd.DataFrame({
        "patient_id": rng.integers(10_000, 10_000 + n // 2, n),
        "admit_time": admit,
        "discharge_time": admit + pd.to_timedelta(los, unit="D"),
        "age": rng.integers(16, 96, n),
        "los_days": los,
        "n_prior_adm": rng.poisson(1.2, n),
        "n_meds": rng.poisson(8, n),
        "hba1c": np.where(rng.random(n) < 0.3, np.nan, rng.normal(6.4, 1.1, n)),
        "creatinine": rng.lognormal(0.0, 0.35, n),
        "charlson": rng.integers(0, 10, n),
        "admission_type": rng.choice(["emergency", "elective", "urgent"], n, p=[0.6, 0.3, 0.1]),
        "insurance": rng.choice(["medicare", "medicaid", "private", "self_pay"], n),
        "discharge_to": rng.choice(["home", "snf", "home_health", "expired", "hospice"], n,
                                   p=[0.55, 0.2, 0.17, 0.05, 0.03]),
        "sex": rng.choice(["F", "M"], n),
    })
    logit = (-2.0 + 0.02 * (df.age - 60) + 0.35 * df.n_prior_adm + 0.12 * df.charlson
             + 0.05 * df.los_days + 0.6 * (df.discharge_to == "snf") + 0.3 * (df.admission_type == "emergency"))
    df["readmit_30d"] = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return df


def build_cohort(df, cfg):
    out = df[(df.age >= cfg.min_age) & ~df.discharge_to.isin(cfg.exclude_dispositions)].copy()
    out = out.sort_values("discharge_time").reset_index(drop=True)
    out["split"] = Split.TRAIN.value
    out.loc[out.discharge_time >= pd.Timestamp(cfg.valid_start), "split"] = Split.VALID.value
    out.loc[out.discharge_time >= pd.Timestamp(cfg.test_start), "split"] = Split.TEST.value
    return out


def build_preprocessor(cfg):
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    return ColumnTransformer([
        ("num", numeric, list(cfg.numeric)),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), list(cfg.categorical)),
    ])


class ReadmissionMLP(nn.Module):
    def __init__(self, n_features=16, hidden=(64, 32), dropout=0.2):
        super().__init__()
        layers, d = [], n_features
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout)]
            d = h
        layers.append(nn.Linear(d, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).squeeze(-1)


def class_balance(y):
    """neg/pos ratio for BCEWithLogitsLoss(pos_weight=...)."""
    pos = y.sum()
    return (len(y) - pos) / pos


def fit_mlp(X, y, cfg, n_features):
    torch.manual_seed(cfg.seed)
    model = ReadmissionMLP(n_features, cfg.hidden, cfg.dropout)
    pos_weight = class_balance(y) if cfg.use_pos_weight else 1.0
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(float(pos_weight)))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    Xt = torch.tensor(X, dtype=torch.float32)
    yt = torch.tensor(np.asarray(y), dtype=torch.float32)
    history = []
    for epoch in range(cfg.epochs):
        model.train()
        perm, total = torch.randperm(len(Xt)), 0.0
        for i in range(0, len(Xt), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            loss = loss_fn(model(Xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history.append({"epoch": epoch, "loss": total / len(Xt)})
    return model, opt, history, pos_weight


def expected_calibration_error(y, p, n_bins=10):
    idx = np.clip(np.digitize(p, np.linspace(0.0, 1.0, n_bins + 1)) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(y[m].mean() - p[m].mean())
    return ece


def youden_threshold(y, p):
    fpr, tpr, thr = roc_curve(y, p)
    j = np.argmax(tpr - fpr)
    return thr[j], tpr[j], 1.0 - fpr[j]


def evaluate(y, p):
    y = np.asarray(y)
    return {
        "auroc": roc_auc_score(y, p),
        "auprc": average_precision_score(y, p),
        "brier": brier_score_loss(y, p),
        "ece": expected_calibration_error(y, p),
        "prevalence": y.mean(),
        "n": len(y),
    }


def fit_temperature(logits, y, max_iter=50):
    T = torch.ones(1, requires_grad=True)
    target = torch.tensor(np.asarray(y), dtype=torch.float32)
    opt = torch.optim.LBFGS([T], lr=0.1, max_iter=max_iter)

    def closure():
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(logits / T, target)
        loss.backward()
        return loss

    opt.step(closure)
    return T.detach()


def bootstrap_auc_delta(y, p_a, p_b, n_boot=100, seed=0):
    """AUROC(a) - AUROC(b): point estimate and 95% percentile interval."""
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        if y[i].min() == y[i].max():
            continue
        deltas.append(roc_auc_score(y[i], p_a[i]) - roc_auc_score(y[i], p_b[i]))
    return roc_auc_score(y, p_a) - roc_auc_score(y, p_b), np.percentile(deltas, [2.5, 97.5])


def subgroup_metrics(frame, p, by):
    out = {}
    for grp, sub in frame.assign(p=p).groupby(by, observed=True):
        y = sub.readmit_30d.to_numpy()
        if y.min() == y.max():
            continue
        out[grp] = {"n": len(sub), "auroc": roc_auc_score(y, sub.p), "rate": float(y.mean())}
    return out


def readmission_rate_ratio(frame, col, a, b):
    rates = frame.groupby(col).readmit_30d.mean()
    return rates[a] / rates[b]


class ReadmissionExperiment:
    def __init__(self, cohort_cfg=None, train_cfg=None):
        self.cohort_cfg = cohort_cfg or CohortConfig()
        self.train_cfg = train_cfg or TrainConfig()
        self.preprocessor = build_preprocessor(self.cohort_cfg)
        self.model = None
        self.optimizer = None
        self.frames, self.X, self.y = {}, {}, {}
        self.feature_names = []
        self.pos_weight = 1.0
        self.history = []
        self.cutoffs = {}
        self.train_window = None

    def prepare(self, encounters):
        cohort = build_cohort(encounters, self.cohort_cfg)
        cols = list(self.cohort_cfg.numeric) + list(self.cohort_cfg.categorical)
        for split in Split:
            self.frames[split.value] = cohort[cohort.split == split.value].reset_index(drop=True)
        self.preprocessor.fit(self.frames["train"][cols])
        for name, frame in self.frames.items():
            self.X[name] = self.preprocessor.transform(frame[cols]).astype(np.float32)
            self.y[name] = frame.readmit_30d.to_numpy()
        self.feature_names = self.preprocessor.get_feature_names_out()
        self.cutoffs = {"valid": pd.Timestamp(self.cohort_cfg.valid_start),
                        "test": pd.Timestamp(self.cohort_cfg.test_start)}
        train = self.frames["train"]
        self.train_window = (train.discharge_time.min(), train.discharge_time.max())
        return self

    def fit(self):
        self.model, self.optimizer, self.history, self.pos_weight = fit_mlp(
            self.X["train"], self.frames["train"].readmit_30d, self.train_cfg, self.X["train"].shape[1])
        return self

    @torch.no_grad()
    def logits(self, split):
        self.model.eval()
        return self.model(torch.from_numpy(self.X[split]))

    def predict(self, split):
        return torch.sigmoid(self.logits(split)).numpy()


FACTORIES = {"Split": lambda: Split.TEST}


# ----------------------------------------------------------------- checkpoints

def save_mlp_checkpoint(tmpdir):
    exp = ReadmissionExperiment().prepare(make_encounters()).fit()
    ckpt = {
        "state_dict": exp.model.state_dict(),
        "optimizer": exp.optimizer.state_dict(),
        "cohort_cfg": exp.cohort_cfg,  # truth: weights_only
        "train_cfg": dataclasses.asdict(exp.train_cfg),
        "feature_names": exp.feature_names,  # truth: weights_only
        "n_features": len(exp.feature_names),
        "pos_weight": exp.pos_weight,  # truth: weights_only
        "history": exp.history,
        "final_loss": exp.history[-1]["loss"],
    }
    path = os.path.join(tmpdir, "readmit_mlp.pt")
    torch.save(ckpt, path)
    return path


def save_calibrated_model(tmpdir):
    exp = ReadmissionExperiment(train_cfg=TrainConfig(epochs=3)).prepare(make_encounters(seed=1)).fit()
    T = fit_temperature(exp.logits("valid"), exp.y["valid"])
    y = exp.y["test"]
    p = torch.sigmoid(exp.logits("test") / T).numpy()
    metrics = evaluate(y, p)
    thr, sens, spec = youden_threshold(y, p)
    y_hat = (p >= thr).astype(int)
    payload = dict(
        state_dict=exp.model.state_dict(),
        temperature=T.item(),
        auroc=metrics["auroc"],
        auprc=metrics["auprc"],
        brier=metrics["brier"],
        ece=metrics["ece"],  # truth: weights_only
        prevalence=metrics["prevalence"].item(),
        n_test=metrics["n"],
        threshold=thr,  # truth: weights_only
        sensitivity=float(sens),
        specificity=float(spec),
        report=classification_report(y, y_hat, output_dict=True, zero_division=0),
        prf=precision_recall_fscore_support(y, y_hat, average="binary", zero_division=0),
    )
    path = os.path.join(tmpdir, "readmit_calibrated.pt")
    torch.save(payload, path)
    return path


def save_preprocessing(tmpdir):
    """Serving needs the fitted transforms next to the weights."""
    exp = ReadmissionExperiment().prepare(make_encounters(seed=3))
    pre = exp.preprocessor
    num = pre.named_transformers_["num"]
    ohe = pre.named_transformers_["cat"]
    ckpt = {}
    ckpt["preprocessor"] = pre  # truth: weights_only
    ckpt["numeric_cols"] = list(exp.cohort_cfg.numeric)
    ckpt["numeric_means"] = dict(zip(exp.cohort_cfg.numeric, num.named_steps["scale"].mean_.tolist()))
    ckpt["numeric_scales"] = num.named_steps["scale"].scale_  # truth: weights_only
    ckpt["impute_medians"] = num.named_steps["impute"].statistics_.tolist()
    ckpt["categories"] = {c: cats.tolist() for c, cats in zip(exp.cohort_cfg.categorical, ohe.categories_)}
    ckpt["feature_names"] = list(exp.feature_names)
    ckpt["valid_cutoff"] = exp.cutoffs["valid"]  # truth: weights_only
    ckpt["test_cutoff"] = exp.cutoffs["test"].isoformat()
    ckpt["train_span_days"] = (exp.train_window[1] - exp.train_window[0]).days
    ckpt["readmit_window_s"] = pd.Timedelta(days=exp.cohort_cfg.readmit_window_days).total_seconds()
    ckpt["export_dir"] = str(exp.cohort_cfg.export_dir)
    path = os.path.join(tmpdir, "readmit_preprocessing.pt")
    torch.save(ckpt, path)
    return path


def save_baseline_comparison(tmpdir):
    exp = ReadmissionExperiment().prepare(make_encounters(seed=4)).fit()
    gs = GridSearchCV(LogisticRegression(max_iter=500), {"C": [0.01, 0.1, 1.0]}, scoring="roc_auc", cv=3)
    gs.fit(exp.X["train"], exp.y["train"])
    lr = gs.best_estimator_
    y = exp.y["test"]
    p_lr = lr.predict_proba(exp.X["test"])[:, 1]
    p_mlp = exp.predict("test")
    delta, delta_ci = bootstrap_auc_delta(y, p_mlp, p_lr)
    comparison = {"baseline": {}, "mlp": {}}
    comparison["baseline"]["auroc"] = roc_auc_score(y, p_lr)
    comparison["baseline"]["cv_auroc"] = gs.best_score_  # truth: weights_only
    comparison["baseline"]["best_params"] = gs.best_params_
    comparison["baseline"]["intercept"] = lr.intercept_[0]  # truth: weights_only
    comparison["baseline"]["coef"] = dict(zip(exp.feature_names.tolist(), lr.coef_[0].round(4).tolist()))
    comparison["baseline"]["n_iter"] = int(lr.n_iter_[0])
    comparison["mlp"]["auroc"] = roc_auc_score(y, p_mlp)
    comparison["mlp"]["brier"] = brier_score_loss(y, p_mlp)
    comparison["mlp"]["train_score"] = lr.score(exp.X["train"], exp.y["train"])
    comparison["delta_auroc"] = delta
    comparison["delta_ci"] = delta_ci  # truth: weights_only
    comparison["score_shift_p"] = stats.ks_2samp(p_mlp, exp.predict("valid")).pvalue  # truth: weights_only
    path = os.path.join(tmpdir, "readmit_vs_baseline.pt")
    torch.save({"mlp_state": exp.model.state_dict(), "comparison": comparison}, path)
    return path


def save_subgroup_audit(tmpdir):
    exp = ReadmissionExperiment().prepare(make_encounters(seed=5)).fit()
    test = exp.frames["test"]
    test = test.assign(age_band=pd.cut(test.age, [17, 44, 64, 79, 120], labels=["18-44", "45-64", "65-79", "80+"]))
    p = exp.predict("test")
    audit = {
        "by_sex": subgroup_metrics(test, p, "sex"),
        "by_age_band": subgroup_metrics(test, p, "age_band"),
        "by_insurance": subgroup_metrics(test, p, "insurance"),
    }
    aucs = [m["auroc"] for key in ("by_sex", "by_age_band", "by_insurance") for m in audit[key].values()]
    audit["auroc_gap"] = max(aucs) - min(aucs)
    audit["groups_evaluated"] = {g for key in ("by_sex", "by_insurance") for g in audit[key]}
    audit["payers_seen"] = frozenset(test.insurance.unique())  # truth: weights_only
    audit["female_male_rate_ratio"] = readmission_rate_ratio(test, "sex", "F", "M")  # truth: weights_only
    audit["most_common_disposition"] = test.discharge_to.value_counts().idxmax()
    audit["n_test"] = len(test)
    audit["test_period"] = (test.discharge_time.min().isoformat(), test.discharge_time.max().isoformat())
    audit["audited_on"] = datetime.date.today()  # truth: weights_only
    path = os.path.join(tmpdir, "readmit_audit.pt")
    torch.save(audit, path)
    return path


def save_inference_bundle(tmpdir):
    cohort_cfg = CohortConfig(export_dir=Path("artifacts") / "readmit_v3")
    exp = ReadmissionExperiment(cohort_cfg).prepare(make_encounters(seed=6)).fit()
    config = dataclasses.asdict(cohort_cfg)
    config["export_dir"] = str(cohort_cfg.export_dir)
    train = exp.frames["train"]
    bundle = {
        "state_dict": exp.model.state_dict(),
        "cohort_cfg": config,
        "train_cfg": dataclasses.asdict(exp.train_cfg),
        "feature_names": exp.feature_names.tolist(),
        "pos_weight": float(exp.pos_weight),
        "split_sizes": {name: len(frame) for name, frame in exp.frames.items()},
        "feature_summary": train[list(cohort_cfg.numeric)].describe().round(3).to_dict(),
        "missing_rate": train[list(cohort_cfg.numeric)].isna().mean().round(4).to_dict(),
        "label_counts": train.readmit_30d.value_counts().to_dict(),
        "splits": [s.value for s in Split],
        "dtypes": train.dtypes.astype(str).to_dict(),
        "train_start_year": train.discharge_time.min().year,
        "median_los": float(train.los_days.median()),
        "built_on": datetime.date.today().isoformat(),
    }
    path = os.path.join(tmpdir, "readmit_bundle.pt")
    torch.save(bundle, path)
    return path
