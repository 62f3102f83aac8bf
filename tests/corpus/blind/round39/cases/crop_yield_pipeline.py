"""County-level crop-yield regression from MODIS composites and gridMET weather.

Follows the histogram approach of You et al. (2017): each county-year becomes a stack of per-band
reflectance histograms over the season's 8-day composites, plus monthly weather aggregates. An LSTM
over mean band values and a histogram CNN are trained per crop; a GP on county centroids corrects
the spatially correlated residuals. Config comes from YAML into dataclasses.
"""
import math
import os
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from enum import Enum

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import yaml
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, WhiteKernel
from sklearn.metrics import mean_absolute_percentage_error, mean_squared_error, r2_score
from sklearn.preprocessing import LabelEncoder, StandardScaler

CONFIG_YAML = """
data:
  crop: soybean
  bands: [red, nir, swir1, lst_day]
  n_composites: 6
  weather: [tmax, tmin, prcp, vpd]
  train_years: [2012, 2013, 2014, 2015]
  val_year: 2016
  n_bins: 8
model:
  hidden: 16
  dropout: 0.1
train:
  lr: 0.003
  epochs: 3
  batch_size: 32
  seed: 17
"""


class Crop(Enum):
    CORN = "corn"
    SOYBEAN = "soybean"
    WINTER_WHEAT = "winter_wheat"


@dataclass
class DataConfig:
    crop: str = "soybean"
    bands: list = field(default_factory=lambda: ["red", "nir"])
    n_composites: int = 6
    weather: list = field(default_factory=lambda: ["tmax", "prcp"])
    train_years: list = field(default_factory=lambda: [2012, 2013, 2014])
    val_year: int = 2015
    n_bins: int = 8
    target: str = "yield_bu_ac"


@dataclass
class ModelConfig:
    hidden: int = 16
    dropout: float = 0.1


@dataclass
class TrainConfig:
    lr: float = 1e-3
    epochs: int = 3
    batch_size: int = 32
    seed: int = 0


@dataclass
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_yaml(cls, text):
        raw = yaml.safe_load(text)
        return cls(DataConfig(**raw["data"]), ModelConfig(**raw["model"]), TrainConfig(**raw["train"]))


# ------------------------------------------------------------------ data

def synth_county_panel(dcfg, n_counties=24, seed=0):
    rng = np.random.default_rng(seed)
    years = sorted(set(dcfg.train_years) | {dcfg.val_year})
    rows = []
    for c in range(n_counties):
        state = ["IA", "IL", "NE", "MN"][c % 4]
        lat, lon = 40 + rng.uniform(0, 5), -96 + rng.uniform(0, 8)
        for year in years:
            row = {"fips": f"{19 + c % 4:02d}{c:03d}", "state": state, "year": year, "lat": lat, "lon": lon}
            vigor = rng.normal(1.0, 0.15)
            for b, band in enumerate(dcfg.bands):
                for t in range(dcfg.n_composites):
                    row[f"{band}_c{t}"] = 0.2 + 0.1 * b + vigor * math.sin(math.pi * t / dcfg.n_composites) * 0.3
            for w in dcfg.weather:
                row[w] = rng.normal(20 if w.startswith("t") else 3, 2)
            row["planting_date"] = pd.Timestamp(year, 5, 1) + pd.Timedelta(days=int(rng.integers(0, 30)))
            row["harvest_date"] = pd.Timestamp(year, 10, 1) + pd.Timedelta(days=int(rng.integers(0, 25)))
            row[dcfg.target] = 45 + 12 * vigor + 0.4 * row[dcfg.weather[0]] + rng.normal(0, 2)
            rows.append(row)
    return pd.DataFrame(rows)


class YieldPreprocessor:
    def __init__(self, dcfg=None):
        self.dcfg = dcfg or DataConfig()
        self.scaler = StandardScaler()
        self.state_encoder = LabelEncoder()
        self.bin_edges = None

    def band_cols(self, band):
        return [f"{band}_c{t}" for t in range(self.dcfg.n_composites)]

    def fit(self, df):
        self.scaler.fit(df[self.dcfg.weather])
        self.state_encoder.fit(df["state"])
        values = np.concatenate([df[self.band_cols(b)].to_numpy().ravel() for b in self.dcfg.bands])
        self.bin_edges = np.linspace(values.min(), values.max(), self.dcfg.n_bins + 1)
        return self

    def sequences(self, df):
        seq = np.stack([df[self.band_cols(b)].to_numpy() for b in self.dcfg.bands], axis=-1)
        return torch.tensor(seq, dtype=torch.float32)  # (N, T, bands)

    def histograms(self, df, rng):
        n, T, B = len(df), self.dcfg.n_composites, len(self.dcfg.bands)
        out = np.zeros((n, B, T, self.dcfg.n_bins), np.float32)
        for i, (_, row) in enumerate(df.iterrows()):
            for b, band in enumerate(self.dcfg.bands):
                for t in range(T):
                    pixels = rng.normal(row[f"{band}_c{t}"], 0.05, 32)
                    out[i, b, t] = np.histogram(pixels, bins=self.bin_edges)[0] / 32.0
        return torch.from_numpy(out)

    def transform(self, df):
        w = torch.tensor(self.scaler.transform(df[self.dcfg.weather]), dtype=torch.float32)
        y = torch.tensor(df[self.dcfg.target].to_numpy(), dtype=torch.float32)
        return self.sequences(df), w, y


# ------------------------------------------------------------------ models

class YieldLSTM(nn.Module):
    def __init__(self, n_bands=4, n_weather=4, hidden=16, dropout=0.1):
        super().__init__()
        self.lstm = nn.LSTM(n_bands, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden + n_weather, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, 1))

    def forward(self, seq, weather):
        _, (h, _) = self.lstm(seq)
        return self.head(torch.cat([h[-1], weather], dim=1)).squeeze(1)


class HistogramCNN(nn.Module):
    def __init__(self, n_bands=4, n_weather=4, channels=8):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(n_bands, channels, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(channels + n_weather, 1)

    def forward(self, hist, weather):
        return self.head(torch.cat([self.conv(hist).flatten(1), weather], dim=1)).squeeze(1)


class YieldTrainer:
    def __init__(self, cfg=None, model=None):
        self.cfg = cfg or ExperimentConfig()
        self.model = model or YieldLSTM(len(self.cfg.data.bands), len(self.cfg.data.weather), self.cfg.model.hidden)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.train.lr)
        self.history = defaultdict(list)
        self.epoch = 0
        self.best_val = float("inf")
        self.best_epoch = -1

    def train_epoch(self, x, w, y):
        self.model.train()
        perm = torch.randperm(len(y))
        total = 0.0
        for i in range(0, len(y), self.cfg.train.batch_size):
            idx = perm[i:i + self.cfg.train.batch_size]
            loss = nn.functional.mse_loss(self.model(x[idx], w[idx]), y[idx])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            total += loss.item() * len(idx)
        return total / len(y)

    @torch.no_grad()
    def validate(self, x, w, y):
        self.model.eval()
        pred = self.model(x, w).numpy()
        rmse = math.sqrt(mean_squared_error(y.numpy(), pred))
        return rmse, r2_score(y.numpy(), pred), pred

    def fit(self, train, val):
        for epoch in range(self.cfg.train.epochs):
            self.history["train_mse"].append(self.train_epoch(*train))
            rmse, r2, _ = self.validate(*val)
            self.history["val_rmse"].append(rmse)
            self.history["val_r2"].append(r2)
            if rmse < self.best_val:
                self.best_val, self.best_epoch = rmse, epoch
            self.epoch = epoch + 1
        return self

    def state_dict(self):
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "epoch": self.epoch}

    def save_checkpoint(self, path, extra=None):
        state = self.state_dict()
        state.update(extra or {})
        torch.save(state, path)
        return path


def prepare(cfg, seed=0):
    torch.manual_seed(cfg.train.seed)
    df = synth_county_panel(cfg.data, seed=seed)
    df_train = df[df.year.isin(cfg.data.train_years)]
    df_val = df[df.year == cfg.data.val_year]
    prep = YieldPreprocessor(cfg.data).fit(df_train)
    return df, df_train, df_val, prep


FACTORIES = {
    "Crop": lambda: Crop("soybean"),
    "ExperimentConfig": lambda: ExperimentConfig.from_yaml(CONFIG_YAML),
    "YieldTrainer": lambda: YieldTrainer(ExperimentConfig.from_yaml(CONFIG_YAML)),
}


# ------------------------------------------------------------------ checkpoints

def save_yield_lstm(tmpdir):
    cfg = ExperimentConfig.from_yaml(CONFIG_YAML)
    df, df_train, df_val, prep = prepare(cfg)
    trainer = YieldTrainer(cfg).fit(prep.transform(df_train), prep.transform(df_val))
    rmse, r2, pred = trainer.validate(*prep.transform(df_val))
    y_val = df_val[cfg.data.target].to_numpy()
    extra = {
        "config": cfg,  # truth: weights_only
        "config_dict": asdict(cfg),
        "weather_mean": prep.scaler.mean_,  # truth: weights_only
        "weather_scale": torch.tensor(prep.scaler.scale_, dtype=torch.float32),
        "weather_columns": list(prep.scaler.feature_names_in_),
        "states": prep.state_encoder.classes_,  # truth: weights_only
        "val_rmse": rmse,
        "val_r2": r2,
        "val_mape": mean_absolute_percentage_error(y_val, pred),
        "ndvi_yield_corr": df_train["nir_c3"].corr(df_train[cfg.data.target]),  # truth: weights_only
        "train_years": sorted(df_train.year.unique()),  # truth: weights_only
        "target_mean": float(df_train[cfg.data.target].mean()),
        "n_counties": df.fips.nunique(),
    }
    return trainer.save_checkpoint(os.path.join(tmpdir, "yield_lstm.pt"), extra)


def save_histogram_cnn(tmpdir):
    cfg = ExperimentConfig.from_yaml(CONFIG_YAML)
    df, df_train, df_val, prep = prepare(cfg, seed=1)
    rng = np.random.default_rng(cfg.train.seed)
    train = (prep.histograms(df_train, rng), *prep.transform(df_train)[1:])
    val = (prep.histograms(df_val, rng), *prep.transform(df_val)[1:])
    model = HistogramCNN(len(cfg.data.bands), len(cfg.data.weather))
    trainer = YieldTrainer(cfg, model=model).fit(train, val)
    ckpt = trainer.state_dict()
    ckpt["bin_edges"] = torch.from_numpy(prep.bin_edges)
    ckpt["bin_range"] = (float(prep.bin_edges[0]), float(prep.bin_edges[-1]))
    ckpt["history"] = trainer.history  # truth: weights_only
    ckpt["best_val_rmse"] = trainer.best_val
    ckpt["best_epoch"] = trainer.best_epoch
    ckpt["crop"] = Crop(cfg.data.crop)  # truth: weights_only
    ckpt["crop_name"] = Crop(cfg.data.crop).value
    ckpt["composite_doy"] = [97 + 8 * t for t in range(cfg.data.n_composites)]
    ckpt["input_shape"] = tuple(train[0].shape[1:])
    path = os.path.join(tmpdir, f"hist_cnn_{cfg.data.crop}.pt")
    torch.save(ckpt, path)
    return path


def save_gp_residual_model(tmpdir):
    cfg = ExperimentConfig.from_yaml(CONFIG_YAML)
    df, df_train, df_val, prep = prepare(cfg, seed=2)
    trainer = YieldTrainer(cfg).fit(prep.transform(df_train), prep.transform(df_val))
    _, _, pred = trainer.validate(*prep.transform(df_train))
    resid = df_train[cfg.data.target].to_numpy() - pred
    locs = df_train[["lat", "lon"]].to_numpy()
    gp = GaussianProcessRegressor(kernel=RBF(length_scale=1.0) + WhiteKernel(0.5), normalize_y=True)
    gp.fit(locs, resid)
    corrected = pred + gp.predict(locs)
    payload = {
        "lstm": trainer.model.state_dict(),
        "gp": gp,  # truth: weights_only
        "gp_kernel": str(gp.kernel_),
        "gp_theta": gp.kernel_.theta.tolist(),
        "gp_log_marginal_likelihood": gp.log_marginal_likelihood_value_,  # truth: weights_only
        "gp_alpha": torch.from_numpy(gp.alpha_),
        "gp_X_train": torch.as_tensor(gp.X_train_),
        "rmse_before": math.sqrt(mean_squared_error(df_train[cfg.data.target], pred)),
        "rmse_after": math.sqrt(mean_squared_error(df_train[cfg.data.target], corrected)),
    }
    path = os.path.join(tmpdir, "deep_gp.pt")
    torch.save(payload, path)
    return path


def save_split_manifest(tmpdir):
    cfg = ExperimentConfig.from_yaml(CONFIG_YAML)
    df, df_train, df_val, prep = prepare(cfg, seed=3)
    weather = cfg.data.weather
    manifest = {
        "config": asdict(cfg),
        "rows": len(df),
        "columns": list(df.columns),
        "dtypes": df.dtypes.astype(str).to_dict(),
        "fips_train": df_train.fips.unique().tolist(),
        "fips_val": sorted(set(df_val.fips)),
        "rows_per_state": df.state.value_counts().to_dict(),
        "state_counter": Counter(df_train.state),
        "state_index": {s: i for i, s in enumerate(prep.state_encoder.classes_.tolist())},
        "weather_describe": df_train[weather].describe().round(3).to_dict(),
        "weather_corr": df_train[weather].corr().round(3).to_dict(),
        "yield_quantiles": df_train[cfg.data.target].quantile([0.1, 0.5, 0.9]).tolist(),
        "yield_by_year": df.groupby("year")[cfg.data.target].mean().round(2).to_dict(),
        "planting_window": (df.planting_date.min().isoformat(), df.planting_date.max().isoformat()),
        "best_county": df.loc[df[cfg.data.target].idxmax(), "fips"],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "versions": {"pandas": pd.__version__, "numpy": np.__version__},
    }
    path = os.path.join(tmpdir, "split_manifest.pt")
    torch.save(manifest, path)
    return path


def save_leave_one_year_out(tmpdir):
    cfg = ExperimentConfig.from_yaml(CONFIG_YAML)
    cfg.train.epochs = 2
    df = synth_county_panel(cfg.data, seed=4)
    fold_metrics, fold_states, rmses = {}, [], []
    for year in df.year.unique():
        tr, te = df[df.year != year], df[df.year == year]
        prep = YieldPreprocessor(cfg.data).fit(tr)
        trainer = YieldTrainer(cfg).fit(prep.transform(tr), prep.transform(te))
        rmse, r2, _ = trainer.validate(*prep.transform(te))
        fold_metrics[int(year)] = {"rmse": rmse, "r2": r2, "n": len(te)}
        fold_states.append(trainer.model.state_dict())
        rmses.append(rmse)
    ckpt = {"fold_models": fold_states, "fold_metrics": fold_metrics}
    ckpt.update({
        "cv_rmse_mean": np.mean(rmses),  # truth: weights_only
        "cv_rmse_std": float(np.std(rmses)),
        "held_out_years": df.year.unique().tolist(),
        "worst_year": max(fold_metrics, key=lambda y: fold_metrics[y]["rmse"]),
        "harvest_cutoff": df.harvest_date.max(),  # truth: weights_only
        "harvest_cutoff_doy": df.harvest_date.max().dayofyear,
    })
    path = os.path.join(tmpdir, "loyo.pt")
    torch.save(ckpt, path)
    return path
