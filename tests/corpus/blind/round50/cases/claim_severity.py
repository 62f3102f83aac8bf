"""Insurance claim severity (Allstate style): predict the loss amount of a closed claim.

Categorical policy fields go through entity embeddings, continuous fields through a StandardScaler;
the target is log(loss + shift). Models are picked from a registry, trained with K-fold CV and
the fair loss (robust to the heavy right tail), and scored by MAE on the original scale.
"""
import dataclasses
import decimal
import os
import time

import numpy as np
import pandas as pd
import scipy.stats as stats
import sklearn
import torch
import torch.nn as nn
import yaml
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import KFold
from sklearn.preprocessing import LabelEncoder, StandardScaler

SHIFT = 200
CAT_COLS = ["cat1", "cat2", "cat3", "cat4"]
CONT_COLS = ["cont1", "cont2", "cont3"]

PORTFOLIO_YAML = """
line_of_business: personal_auto
valuation_date: 2016-12-31
currency: USD
deductible: "500.00"
policy_limit: 250000
large_loss_quantile: 0.99
model: entity_mlp
folds: 3
epochs: 2
lr: 0.003
fair_c: 0.7
"""

MODELS = {}


def register(name):
    def deco(cls):
        MODELS[name] = cls
        return cls
    return deco


@dataclasses.dataclass
class SeverityConfig:
    model: str = "entity_mlp"
    folds: int = 3
    epochs: int = 2
    lr: float = 3e-3
    fair_c: float = 0.7
    batch_size: int = 64

    @classmethod
    def from_yaml(cls, text):
        raw = yaml.safe_load(text)
        return cls(**{f.name: raw[f.name] for f in dataclasses.fields(cls) if f.name in raw}), raw


def make_claims(n=240, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"id": np.arange(1, n + 1)})
    for i, col in enumerate(CAT_COLS):
        df[col] = rng.choice(list("ABCDE"[: 2 + i]), size=n)
    for col in CONT_COLS:
        df[col] = rng.beta(2, 5, size=n)
    base = 7.5 + 0.6 * (df["cat1"] == "B") + 1.2 * df["cont1"] - 0.4 * df["cont2"]
    df["loss"] = np.round(np.exp(base + rng.normal(0, 0.6, size=n)), 2)
    return df


def fit_encoders(df):
    encoders = {c: LabelEncoder().fit(df[c]) for c in CAT_COLS}
    scaler = StandardScaler().fit(df[CONT_COLS].to_numpy())
    return encoders, scaler


def transform(df, encoders, scaler):
    x_cat = np.stack([encoders[c].transform(df[c]) for c in CAT_COLS], axis=1)
    x_cont = scaler.transform(df[CONT_COLS].to_numpy()).astype(np.float32)
    y = np.log(df["loss"].to_numpy() + SHIFT).astype(np.float32)
    return torch.from_numpy(x_cat).long(), torch.from_numpy(x_cont), torch.from_numpy(y)


class FairLoss(nn.Module):
    def __init__(self, c=0.7):
        super().__init__()
        self.c = c

    def forward(self, pred, target):
        x = (pred - target).abs()
        return (self.c ** 2 * (x / self.c - torch.log1p(x / self.c))).mean()


@register("entity_mlp")
class EntityMLP(nn.Module):
    def __init__(self, cardinalities=(2, 3, 4, 5), n_cont=3, hidden=32, dropout=0.1):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(n, min(8, (n + 1) // 2)) for n in cardinalities)
        width = sum(e.embedding_dim for e in self.embeddings) + n_cont
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, x_cat, x_cont):
        parts = [emb(x_cat[:, i]) for i, emb in enumerate(self.embeddings)] + [x_cont]
        return self.mlp(torch.cat(parts, dim=1)).squeeze(1)


@register("linear")
class OneHotLinear(nn.Module):
    def __init__(self, cardinalities=(2, 3, 4, 5), n_cont=3):
        super().__init__()
        self.cardinalities = list(cardinalities)
        self.linear = nn.Linear(sum(cardinalities) + n_cont, 1)

    def forward(self, x_cat, x_cont):
        onehots = [nn.functional.one_hot(x_cat[:, i], n).float() for i, n in enumerate(self.cardinalities)]
        return self.linear(torch.cat(onehots + [x_cont], dim=1)).squeeze(1)


class SeverityTrainer:
    def __init__(self, cfg, cardinalities):
        self.cfg = cfg
        self.model = MODELS[cfg.model](cardinalities=cardinalities, n_cont=len(CONT_COLS))
        self.loss_fn = FairLoss(cfg.fair_c)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, factor=0.5, patience=1)
        self.epoch = 0
        self.best_val = float("inf")
        self.train_curve = []

    def fit(self, train, val):
        x_cat, x_cont, y = train
        for _ in range(self.cfg.epochs):
            self.model.train()
            perm = torch.randperm(len(y))
            for idx in perm.split(self.cfg.batch_size):
                loss = self.loss_fn(self.model(x_cat[idx], x_cont[idx]), y[idx])
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
            val_mae = self.score(val)
            self.scheduler.step(val_mae)
            self.train_curve.append(loss.item())
            self.best_val = min(self.best_val, val_mae)
            self.epoch += 1
        return self

    @torch.no_grad()
    def predict(self, data):
        self.model.eval()
        x_cat, x_cont, _ = data
        return np.exp(self.model(x_cat, x_cont).numpy().astype(np.float64)) - SHIFT

    def score(self, data):
        return mean_absolute_error(np.exp(data[2].numpy().astype(np.float64)) - SHIFT, self.predict(data))

    def state_dict(self):
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "epoch": self.epoch, "best_val": self.best_val,
                "train_curve": list(self.train_curve)}


def run_cv(df, cfg):
    encoders, scaler = fit_encoders(df)
    cards = [len(encoders[c].classes_) for c in CAT_COLS]
    x_cat, x_cont, y = transform(df, encoders, scaler)
    oof = np.zeros(len(df))
    fold_id = np.full(len(df), -1)
    fold_scores, trainers = [], []
    for k, (tr, va) in enumerate(KFold(cfg.folds, shuffle=True, random_state=42).split(df)):
        tr, va = torch.from_numpy(tr), torch.from_numpy(va)
        trainer = SeverityTrainer(cfg, cards).fit((x_cat[tr], x_cont[tr], y[tr]), (x_cat[va], x_cont[va], y[va]))
        oof[va.numpy()] = trainer.predict((x_cat[va], x_cont[va], y[va]))
        fold_id[va.numpy()] = k
        fold_scores.append(trainer.score((x_cat[va], x_cont[va], y[va])))
        trainers.append(trainer)
    return {"oof": oof, "fold_id": fold_id, "fold_scores": fold_scores, "trainers": trainers,
            "encoders": encoders, "scaler": scaler, "cards": cards}


def save_cv_checkpoint(tmpdir):
    torch.manual_seed(0)
    cfg, _ = SeverityConfig.from_yaml(PORTFOLIO_YAML)
    df = make_claims()
    cv = run_cv(df, cfg)
    scores = cv["fold_scores"]
    best = int(np.argmin(scores))
    ckpt = {
        "config": dataclasses.asdict(cfg),
        "fold_states": [t.state_dict() for t in cv["trainers"]],
        "fold_mae": scores,
        "cv_mae": np.mean(scores),  # truth: weights_only
        "cv_std": float(np.std(scores)),
        "best_fold": best,
        "best_fold_mae": scores[best],
        "oof_mae": mean_absolute_error(df["loss"], cv["oof"]),
        "oof_pred": torch.from_numpy(cv["oof"]),
        "fold_id": cv["fold_id"],  # truth: weights_only
        "fold_sizes": np.bincount(cv["fold_id"]).tolist(),
        "cardinalities": cv["cards"],
    }
    path = os.path.join(tmpdir, "cv_folds.pt")
    torch.save(ckpt, path)
    return path


def save_preprocessor(tmpdir):
    df = make_claims(seed=1)
    encoders, scaler = fit_encoders(df)
    _, lmbda = stats.boxcox(df["loss"] + SHIFT)
    artifact = {"cat_levels": {c: enc.classes_.tolist() for c, enc in encoders.items()}}
    artifact.update(
        cont_scaler=scaler,  # truth: weights_only
        cont_mean=scaler.mean_.tolist(),
        cont_scale=torch.tensor(scaler.scale_, dtype=torch.float32),
        n_features=scaler.n_features_in_,
        target_shift=SHIFT,
        boxcox_lambda=lmbda,  # truth: weights_only
        target_skew=df["loss"].skew(),  # truth: weights_only
        log_target_skew=float(stats.skew(np.log(df["loss"] + SHIFT))),
        n_policies=df["id"].count(),  # truth: weights_only
        n_rows=len(df),
        cardinalities={c: df[c].nunique() for c in CAT_COLS},
        level_counts={c: df[c].value_counts().to_dict() for c in CAT_COLS},
        target_dtype=str(df["loss"].dtype),
        cat_dtype=df["cat1"].dtype,  # truth: weights_only
        feature_types=df.dtypes.astype(str).to_dict(),
        columns=df.columns.tolist(),
        describe=df[CONT_COLS].describe().to_dict(),
    )
    path = os.path.join(tmpdir, "preprocessor.pt")
    torch.save(artifact, path)
    return path


def save_portfolio_bundle(tmpdir):
    cfg, raw = SeverityConfig.from_yaml(PORTFOLIO_YAML)
    df = make_claims(seed=2)
    losses = df["loss"].to_numpy()
    q = raw["large_loss_quantile"]
    threshold = df["loss"].quantile(q)
    bundle = {
        "line_of_business": raw["line_of_business"],
        "currency": raw["currency"],
        "valuation_date": raw["valuation_date"],  # truth: weights_only
        "valuation_date_iso": str(raw["valuation_date"]),
        "deductible": decimal.Decimal(raw["deductible"]),  # truth: weights_only
        "deductible_cents": int(decimal.Decimal(raw["deductible"]) * 100),
        "policy_limit": float(raw["policy_limit"]),
        "loss_quantile_list": np.percentile(losses, [50, 90, 99]).tolist(),
        "large_loss_threshold": float(threshold),
        "n_large": int((df["loss"] > threshold).sum()),
        "large_share": (df["loss"] > threshold).mean(),  # truth: weights_only
        "capped_mean": df["loss"].clip(upper=raw["policy_limit"]).mean().item(),
        "by_cat1": df.groupby("cat1")["loss"].mean().round(2).to_dict(),
    }
    path = os.path.join(tmpdir, "portfolio.pt")
    torch.save(bundle, path)
    return path


def save_trainer_state(tmpdir):
    torch.manual_seed(1)
    cfg = SeverityConfig(model="linear", epochs=1)
    df = make_claims(n=120, seed=3)
    encoders, scaler = fit_encoders(df)
    data = transform(df, encoders, scaler)
    trainer = SeverityTrainer(cfg, [len(encoders[c].classes_) for c in CAT_COLS]).fit(data, data)
    ckpt = trainer.state_dict()
    ckpt["model_name"] = cfg.model
    ckpt["model_cls"] = MODELS[cfg.model]  # truth: weights_only
    ckpt["model_kwargs"] = {"cardinalities": trainer.model.cardinalities, "n_cont": len(CONT_COLS)}
    ckpt["train_mae"] = trainer.score(data)
    ckpt.update(
        loss_fn=trainer.loss_fn,  # truth: weights_only
        loss_name=type(trainer.loss_fn).__name__,
        fair_c=trainer.loss_fn.c,
        lr=trainer.optimizer.param_groups[0]["lr"],
    )
    path = os.path.join(tmpdir, "trainer_state.pt")
    torch.save(ckpt, path)
    return path


def save_serving_artifact(tmpdir):
    torch.manual_seed(2)
    df = make_claims(n=80, seed=4)
    encoders, scaler = fit_encoders(df)
    cards = [len(encoders[c].classes_) for c in CAT_COLS]
    model = EntityMLP(cardinalities=cards, n_cont=len(CONT_COLS))
    artifact = {
        "state_dict": model.state_dict(),
        "model": {"name": "entity_mlp", "cardinalities": cards, "n_cont": len(CONT_COLS)},
        "cat_levels": {c: list(map(str, encoders[c].classes_)) for c in CAT_COLS},
        "cont_mean": torch.from_numpy(scaler.mean_).float(),
        "cont_std": [float(v) for v in scaler.scale_],
        "target": {"shift": SHIFT, "transform": "log"},
        "versions": {"torch": str(torch.__version__), "sklearn": sklearn.__version__, "pandas": pd.__version__},
        "mean_loss": float(df["loss"].mean()),
        "trained_on": int(df.shape[0]),
        "created_unix": int(time.time()),
    }
    path = os.path.join(tmpdir, "serving.pt")
    torch.save(artifact, path)
    return path


FACTORIES = {
    "SeverityTrainer": lambda: SeverityTrainer(SeverityConfig(), [2, 3, 4, 5]),
}
