"""30-day hospital readmission risk: EHR encounter table -> calibrated MLP risk score.

Pipeline functions in the style of a small hospital analytics repo: YAML cohort definition,
temporal split on discharge date, sklearn ColumnTransformer for tabular preprocessing, a torch
MLP, isotonic calibration, Youden threshold and subgroup AUROC for the fairness appendix.
Encounters are synthesised (no PHI leaves the warehouse).
"""
import os
import uuid
from collections import defaultdict, namedtuple

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

CONFIG_YAML = """
cohort:
  index_start: 2016-01-01
  index_end: 2019-06-30
  lookback_days: 365
  readmit_window_days: 30
  exclude_dispositions: [expired, hospice]
features:
  numeric: [age, los_days, n_prior_admits, n_meds, hba1c, creatinine]
  categorical: [sex, admission_type, discharge_disposition, dx_group]
model:
  hidden: [32, 16]
  dropout: 0.2
train:
  lr: 1e-3
  epochs: 3
  batch_size: 64
  seed: 11
"""

DX_GROUPS = {"I50": "heart_failure", "J44": "copd", "E11": "diabetes", "N18": "ckd",
             "J18": "pneumonia", "I21": "ami", "A41": "sepsis"}
ReadmissionArtifacts = namedtuple("ReadmissionArtifacts", "state_dict feature_names threshold config")


def load_config(text=CONFIG_YAML):
    return yaml.safe_load(text)


def synth_encounters(n=900, seed=11):
    rng = np.random.default_rng(seed)
    admit = pd.Timestamp("2015-06-01") + pd.to_timedelta(rng.integers(0, 5 * 365, n), unit="D")
    los = rng.gamma(2.0, 2.5, n).round(1) + 0.5
    dx = rng.choice(list(DX_GROUPS), n)
    df = pd.DataFrame({
        "encounter_id": np.arange(n),
        "patient_id": rng.integers(0, n // 3, n),
        "admit_date": admit,
        "discharge_date": admit + pd.to_timedelta(np.ceil(los), unit="D"),
        "age": rng.integers(18, 95, n),
        "sex": rng.choice(["F", "M"], n),
        "admission_type": rng.choice(["emergency", "elective", "urgent"], n, p=[.6, .25, .15]),
        "discharge_disposition": rng.choice(["home", "snf", "home_health", "expired", "hospice"], n,
                                            p=[.55, .2, .17, .05, .03]),
        "primary_dx": dx,
        "los_days": los,
        "n_prior_admits": rng.poisson(1.2, n),
        "n_meds": rng.poisson(9, n),
        "hba1c": np.where(rng.random(n) < 0.3, np.nan, rng.normal(7.0, 1.2, n)),
        "creatinine": rng.lognormal(0.0, 0.35, n),
    })
    df["dx_group"] = df["primary_dx"].map(DX_GROUPS)
    logit = -2.2 + 0.35 * df.n_prior_admits + 0.02 * (df.age - 60) + 0.6 * (df.dx_group == "heart_failure")
    df["readmit_30d"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


def apply_cohort(df, cohort):
    start, end = pd.Timestamp(cohort["index_start"]), pd.Timestamp(cohort["index_end"])
    keep = df.discharge_date.between(start, end) & ~df.discharge_disposition.isin(cohort["exclude_dispositions"])
    return df.loc[keep].reset_index(drop=True)


def temporal_split(df, test_frac=0.25):
    cutoff = df.discharge_date.quantile(1 - test_frac)
    return df[df.discharge_date < cutoff], df[df.discharge_date >= cutoff], cutoff


def build_preprocessor(fcfg):
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    return ColumnTransformer([("num", numeric, fcfg["numeric"]), ("cat", categorical, fcfg["categorical"])])


class ReadmissionMLP(nn.Module):
    def __init__(self, n_features=20, hidden=(32, 16), dropout=0.2):
        super().__init__()
        layers, d = [], n_features
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout)]
            d = h
        layers.append(nn.Linear(d, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).squeeze(-1)


def train_mlp(X, y, cfg, pos_weight):
    torch.manual_seed(cfg["train"]["seed"])
    model = ReadmissionMLP(X.shape[1], tuple(cfg["model"]["hidden"]), cfg["model"]["dropout"])
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg["train"]["lr"]))
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([pos_weight], dtype=torch.float32))
    xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    history = defaultdict(list)
    bs = cfg["train"]["batch_size"]
    for epoch in range(cfg["train"]["epochs"]):
        model.train()
        perm = torch.randperm(len(xt))
        running = 0.0
        for idx in perm.split(bs):
            loss = loss_fn(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            running += loss.item() * len(idx)
        history["loss"].append(running / len(xt))
        history["epoch"].append(epoch)
    return model, opt, history


@torch.no_grad()
def predict_proba(model, X):
    model.eval()
    return torch.sigmoid(model(torch.tensor(X, dtype=torch.float32))).numpy()


def evaluate(y, p):
    return {
        "auroc": roc_auc_score(y, p),
        "auprc": average_precision_score(y, p),
        "brier": brier_score_loss(y, p),
        "n": len(y),
        "n_pos": int(np.sum(y)),
    }


def youden_threshold(y, p):
    fpr, tpr, thr = roc_curve(y, p)
    return thr[np.argmax(tpr - fpr)]


def expected_calibration_error(y, p, bins=10):
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (p >= lo) & (p < hi)
        if m.any():
            ece += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(ece)


def subgroup_auroc(frame, y, p, col):
    out = {}
    for value, idx in frame.groupby(col).indices.items():
        if len(set(y[idx])) == 2:
            out[str(value)] = roc_auc_score(y[idx], p[idx])
    return out


def fit_pipeline(cfg=None):
    cfg = cfg or load_config()
    df = apply_cohort(synth_encounters(seed=cfg["train"]["seed"]), cfg["cohort"])
    train_df, test_df, cutoff = temporal_split(df)
    pre = build_preprocessor(cfg["features"])
    X_train = pre.fit_transform(train_df)
    X_test = pre.transform(test_df)
    y_train, y_test = train_df["readmit_30d"], test_df["readmit_30d"]
    pos_weight = (y_train == 0).sum() / (y_train == 1).sum()
    model, opt, history = train_mlp(X_train, y_train.to_numpy(), cfg, float(pos_weight))
    p_test = predict_proba(model, X_test)
    return dict(cfg=cfg, df=df, train_df=train_df, test_df=test_df, cutoff=cutoff, pre=pre,
                model=model, opt=opt, history=history, y_train=y_train, y_test=y_test.to_numpy(),
                p_test=p_test, pos_weight=pos_weight)


def save_readmission_model(tmpdir):
    run = fit_pipeline()
    cfg, pre, y_train = run["cfg"], run["pre"], run["y_train"]
    metrics = evaluate(run["y_test"], run["p_test"])
    scaler = pre.named_transformers_["num"].named_steps["scale"]
    ckpt = {
        "model_state": run["model"].state_dict(),
        "optimizer_state": run["opt"].state_dict(),
        "architecture": {"n_features": len(pre.get_feature_names_out()), "hidden": cfg["model"]["hidden"],
                         "dropout": cfg["model"]["dropout"]},
        "feature_names": pre.get_feature_names_out(),  # truth: weights_only
        "numeric_features": list(cfg["features"]["numeric"]),
        "scaler_mean": scaler.mean_.tolist(),
        "scaler_scale": torch.from_numpy(scaler.scale_),
        "prevalence": y_train.mean(),  # truth: weights_only
        "pos_weight": run["pos_weight"],  # truth: weights_only
        "n_pos_train": int((y_train == 1).sum()),
        "history": run["history"],  # truth: weights_only
        "train_cfg": cfg["train"],
        "split_cutoff": run["cutoff"].isoformat(),
    }
    ckpt.update(metrics)
    path = os.path.join(tmpdir, "readmit_mlp.pt")
    torch.save(ckpt, path)
    return path


def save_calibration_bundle(tmpdir):
    run = fit_pipeline()
    y, p = run["y_test"], run["p_test"]
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(p, y)
    p_cal = iso.predict(p)
    test_df = run["test_df"]
    fairness = {col: subgroup_auroc(test_df, y, p_cal, col) for col in ("sex", "admission_type")}
    bundle = {
        "model_state": run["model"].state_dict(),
        "calibrator": iso,  # truth: weights_only
        "calibration_x": iso.X_thresholds_.tolist(),
        "calibration_y": iso.y_thresholds_.tolist(),
        "threshold": youden_threshold(y, p_cal),  # truth: weights_only
        "ece_raw": expected_calibration_error(y, p),
        "ece_calibrated": expected_calibration_error(y, p_cal),
        "brier_calibrated": brier_score_loss(y, p_cal),
        "fairness": fairness,
        "flagged_rate": float((p_cal >= 0.5).mean()),
    }
    path = os.path.join(tmpdir, "readmit_calibration.pt")
    torch.save(bundle, path)
    return path


def save_cohort_snapshot(tmpdir):
    """Cohort definition and descriptive table that the IRB appendix is generated from."""
    cfg = load_config()
    df = apply_cohort(synth_encounters(seed=cfg["train"]["seed"]), cfg["cohort"])
    _, age_bins = pd.cut(df["age"], bins=[18, 45, 65, 80, 95], include_lowest=True, retbins=True)
    table1 = df.groupby("readmit_30d")[["age", "los_days", "n_meds"]].mean().round(2).to_dict()
    snapshot = {}
    snapshot["index_start"] = str(cfg["cohort"]["index_start"])
    snapshot["index_end"] = cfg["cohort"]["index_end"]  # truth: weights_only
    snapshot["lookback_days"] = cfg["cohort"]["lookback_days"]
    snapshot["exclusions"] = cfg["cohort"]["exclude_dispositions"]
    snapshot["n_encounters"] = len(df)
    snapshot["n_patients"] = df["patient_id"].nunique()
    snapshot["readmit_rate"] = float(df["readmit_30d"].mean())
    snapshot["age_bins"] = age_bins  # truth: weights_only
    snapshot["disposition_counts"] = df["discharge_disposition"].value_counts()  # truth: weights_only
    snapshot["dx_counts"] = df["dx_group"].value_counts().to_dict()
    snapshot["icd_vocab"] = dict(zip(df["primary_dx"].unique(), range(df["primary_dx"].nunique())))
    snapshot["missing_rate"] = df.isna().mean().round(4).to_dict()
    snapshot["table1"] = table1
    snapshot["dtypes"] = df.dtypes.astype(str).to_dict()
    snapshot["first_discharge"] = df["discharge_date"].min().isoformat()
    snapshot["snapshot_id"] = uuid.uuid4().hex
    path = os.path.join(tmpdir, "cohort_snapshot.pt")
    torch.save(snapshot, path)
    return path


def save_artifacts_tuple(tmpdir):
    run = fit_pipeline()
    arts = ReadmissionArtifacts(
        state_dict=run["model"].state_dict(),
        feature_names=run["pre"].get_feature_names_out().tolist(),
        threshold=float(youden_threshold(run["y_test"], run["p_test"])),
        config=run["cfg"]["model"],
    )
    path = os.path.join(tmpdir, "readmit_artifacts.pt")
    torch.save(arts, path)  # truth: weights_only
    return path


def save_scoring_package(tmpdir):
    """What the nightly scoring job in the EHR loads: weights, feature order, threshold."""
    run = fit_pipeline()
    pre, y, p = run["pre"], run["y_test"], run["p_test"]
    scaler = pre.named_transformers_["num"].named_steps["scale"]
    imputer = pre.named_transformers_["num"].named_steps["impute"]
    onehot = pre.named_transformers_["cat"]
    threshold = youden_threshold(y, p)
    package = {
        "weights": run["model"].state_dict(),
        "hidden": tuple(run["cfg"]["model"]["hidden"]),
        "feature_order": pre.get_feature_names_out().tolist(),
        "impute_medians": dict(zip(run["cfg"]["features"]["numeric"], imputer.statistics_.tolist())),
        "scale_mean": scaler.mean_.tolist(),
        "scale_std": scaler.scale_.tolist(),
        "categories": {c: cats.tolist() for c, cats in zip(run["cfg"]["features"]["categorical"], onehot.categories_)},
        "threshold": float(threshold),
        "threshold_pct": round(float(threshold) * 100, 1),
        "lr": run["cfg"]["train"]["lr"],
        "auroc": roc_auc_score(y, p),
        "readmit_window_days": run["cfg"]["cohort"]["readmit_window_days"],
        "trained_through": str(run["cutoff"].date()),
    }
    path = os.path.join(tmpdir, "scoring_package.pt")
    torch.save(package, path)
    return path
