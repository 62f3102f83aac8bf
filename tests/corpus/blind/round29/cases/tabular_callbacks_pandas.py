"""House-price regressor on a pandas frame, trained by a small Keras-like Trainer that drives
callback objects (history, checkpoint-on-best with restore, early stopping, timer, CSV experiment
logger) and a CheckpointManager that builds and rotates the checkpoint files."""
import copy
import csv
import datetime
import math
import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.preprocessing import StandardScaler
from torch import nn

NUMERIC = ["area", "rooms", "age"]
CATEGORICAL = "city"
TARGET = "price"


def make_frame(n=120, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "area": rng.normal(80, 20, n).round(1),
        "rooms": rng.integers(1, 6, n),
        "age": rng.integers(0, 60, n).astype(float),
        "city": rng.choice(["lyon", "nantes", "paris"], n),
    })
    df.loc[::17, "age"] = np.nan
    df["price"] = 2.5 * df["area"] + 10 * df["rooms"] - 0.3 * df["age"].fillna(30) + rng.normal(0, 5, n)
    return df


class TabularPreprocessor:
    def __init__(self, numeric=None, categorical=CATEGORICAL, target=TARGET):
        self.numeric = list(numeric or NUMERIC)
        self.categorical = categorical
        self.target = target
        self.scaler = StandardScaler()
        self.medians = {}
        self.cat_index = None
        self.cat_levels = []
        self.target_mean = 0.0
        self.target_std = 1.0
        self.n_missing = 0
        self.dtypes = {}
        self.fitted_at = None

    def fit(self, df):
        self.n_missing = df.isna().sum().sum()
        self.medians = df[self.numeric].median().to_dict()
        filled = df[self.numeric].fillna(self.medians)
        self.scaler.fit(filled)
        self.cat_index = df[self.categorical].astype("category").cat.categories
        self.cat_levels = self.cat_index.tolist()
        self.target_mean = df[self.target].mean()
        self.target_std = float(df[self.target].std())
        self.dtypes = df.dtypes.astype(str).to_dict()
        self.fitted_at = pd.Timestamp.now()
        return self

    def transform(self, df):
        x = self.scaler.transform(df[self.numeric].fillna(self.medians))
        cats = pd.Categorical(df[self.categorical], categories=self.cat_levels).codes
        y = (df[self.target].to_numpy() - self.target_mean) / self.target_std
        return (torch.tensor(x, dtype=torch.float32), torch.tensor(cats, dtype=torch.long),
                torch.tensor(y, dtype=torch.float32))


class PriceMLP(nn.Module):
    def __init__(self, n_numeric=3, n_cities=3, emb=4, hidden=16):
        super().__init__()
        self.city = nn.Embedding(n_cities, emb)
        self.net = nn.Sequential(nn.Linear(n_numeric + emb, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x, c):
        return self.net(torch.cat([x, self.city(c)], dim=1)).squeeze(1)


class Callback:
    def on_train_begin(self, trainer):
        pass

    def on_epoch_end(self, trainer, epoch, logs):
        pass

    def on_train_end(self, trainer):
        pass


class History(Callback):
    def __init__(self):
        self.rows = []

    def on_epoch_end(self, trainer, epoch, logs):
        self.rows.append({"epoch": epoch, **logs})

    @property
    def frame(self):
        return pd.DataFrame(self.rows).set_index("epoch")


class BestWeights(Callback):
    """Keeps the best weights in memory and the path the manager will write them to."""

    def __init__(self, monitor="val_rmse", dirpath="checkpoints"):
        self.monitor = monitor
        self.dirpath = dirpath
        self.best = np.inf
        self.best_epoch = None
        self.best_path = None
        self.best_state = None

    def on_epoch_end(self, trainer, epoch, logs):
        current = logs[self.monitor]
        if current < self.best:
            self.best = current
            self.best_epoch = epoch
            self.best_path = Path(self.dirpath) / f"epoch={epoch:02d}-{self.monitor}={current:.3f}.pt"
            self.best_state = copy.deepcopy(trainer.model.state_dict())


class EarlyStopping(Callback):
    def __init__(self, monitor="loss", patience=3, min_delta=0.0):
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.best = None
        self.wait = 0
        self.stopped_epoch = 0

    def on_epoch_end(self, trainer, epoch, logs):
        current = logs[self.monitor]
        if self.best is None or current < self.best - self.min_delta:
            self.best = current
            self.wait = 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                trainer.stop_training = True


class Timer(Callback):
    def __init__(self):
        self.start = None
        self.elapsed = datetime.timedelta(0)

    def on_train_begin(self, trainer):
        self.start = datetime.datetime.now()

    def on_train_end(self, trainer):
        self.elapsed = datetime.datetime.now() - self.start


class ExperimentLogger(Callback):
    """Appends one CSV row per epoch; keeps the run's metadata for the checkpoint."""

    def __init__(self, log_dir="logs", params=None):
        self.run_id = uuid.uuid4()
        self.log_dir = log_dir
        self.log_path = Path(log_dir) / f"{self.run_id.hex[:8]}" / "metrics.csv"
        self.params = dict(params or {})
        self.start_time = None
        self.n_rows = 0

    def on_train_begin(self, trainer):
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.start_time = pd.Timestamp.now()

    def on_epoch_end(self, trainer, epoch, logs):
        new = not self.log_path.exists()
        with open(self.log_path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["epoch", *logs])
            if new:
                writer.writeheader()
            writer.writerow({"epoch": epoch, **logs})
        self.n_rows += 1


class CheckpointManager:
    def __init__(self, dirpath="checkpoints", keep_last=2):
        self.dirpath = Path(dirpath)
        self.keep_last = keep_last
        self.saved = []

    def path_for(self, name):
        self.dirpath.mkdir(parents=True, exist_ok=True)
        return self.dirpath / name

    def build_state(self, trainer):
        return {
            "epoch": trainer.epoch,
            "model": trainer.model.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict(),
        }

    def save(self, state, name):
        path = self.path_for(name)
        torch.save(state, path)
        self.saved.append(path)
        while len(self.saved) > self.keep_last:
            old = self.saved.pop(0)
            if old.exists() and old != path:
                old.unlink()
        return str(path)


class Trainer:
    def __init__(self, model=None, callbacks=(), lr=1e-2, epochs=6, batch_size=32):
        self.model = model if model is not None else PriceMLP()
        self.callbacks = list(callbacks)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, factor=0.5, patience=1)
        self.epochs = epochs
        self.batch_size = batch_size
        self.epoch = 0
        self.stop_training = False
        self.last_logs = {}

    def _call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def fit(self, train, val):
        x, c, y = train
        xv, cv, yv = val
        self._call("on_train_begin")
        for epoch in range(self.epochs):
            self.epoch = epoch
            self.model.train()
            losses = []
            for i in range(0, len(y), self.batch_size):
                pred = self.model(x[i:i + self.batch_size], c[i:i + self.batch_size])
                loss = F.mse_loss(pred, y[i:i + self.batch_size])
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                losses.append(loss.item())
            self.model.eval()
            with torch.no_grad():
                pv = self.model(xv, cv).numpy()
            logs = {
                "loss": np.mean(losses),
                "val_rmse": math.sqrt(mean_squared_error(yv.numpy(), pv)),
                "val_mae": mean_absolute_error(yv.numpy(), pv),
                "val_r2": r2_score(yv.numpy(), pv),
                "lr": self.optimizer.param_groups[0]["lr"],
            }
            self.scheduler.step(logs["loss"])
            self.last_logs = logs
            self._call("on_epoch_end", epoch, logs)
            if self.stop_training:
                break
        self._call("on_train_end")
        return self


def _experiment(tmpdir, epochs=6):
    torch.manual_seed(0)
    df = make_frame()
    train_df, val_df = df.iloc[:90], df.iloc[90:]
    prep = TabularPreprocessor().fit(train_df)
    callbacks = {
        "history": History(),
        "best": BestWeights(dirpath=os.path.join(tmpdir, "best")),
        "early": EarlyStopping(monitor="loss", patience=2),
        "timer": Timer(),
        "logger": ExperimentLogger(os.path.join(tmpdir, "logs"), params={"lr": 1e-2, "epochs": epochs}),
    }
    trainer = Trainer(PriceMLP(len(prep.numeric), len(prep.cat_levels)), callbacks.values(), epochs=epochs)
    trainer.fit(prep.transform(train_df), prep.transform(val_df))
    manager = CheckpointManager(os.path.join(tmpdir, "ckpts"), keep_last=2)
    return df, prep, trainer, callbacks, manager


def save_on_best(tmpdir):
    df, prep, trainer, cbs, manager = _experiment(tmpdir)
    ckpt = manager.build_state(trainer)
    ckpt["best_score"] = cbs["best"].best
    ckpt["best_epoch"] = cbs["best"].best_epoch
    ckpt["best_path"] = cbs["best"].best_path  # truth: weights_only
    ckpt["best_loss"] = cbs["early"].best  # truth: weights_only
    ckpt["stopped_epoch"] = cbs["early"].stopped_epoch
    return manager.save(ckpt, "best.pt")


def save_history(tmpdir):
    df, prep, trainer, cbs, manager = _experiment(tmpdir)
    history = cbs["history"]
    ckpt = {
        "model": trainer.model.state_dict(),
        "history": history.frame,  # truth: weights_only
        "history_dict": history.frame.to_dict("list"),
        "epoch_rows": [{k: float(v) for k, v in row.items()} for row in history.rows],
        "last_val_rmse": history.frame["val_rmse"].iloc[-1],  # truth: weights_only
        "last_lr": trainer.last_logs["lr"],
    }
    path = os.path.join(tmpdir, "history.pt")
    torch.save(ckpt, path)
    return path


def save_preprocessing(tmpdir):
    df, prep, trainer, cbs, manager = _experiment(tmpdir, epochs=2)
    ckpt = {
        "model": trainer.model.state_dict(),
        "scaler": prep.scaler,  # truth: weights_only
        "scaler_mean": prep.scaler.mean_.tolist(),
        "scaler_scale": torch.from_numpy(prep.scaler.scale_),
        "feature_names": prep.scaler.feature_names_in_,  # truth: weights_only
        "medians": prep.medians,
        "categories": prep.cat_index,  # truth: weights_only
        "category_levels": prep.cat_levels,
        "target_mean": prep.target_mean,  # truth: weights_only
        "target_std": prep.target_std,
        "dtypes": prep.dtypes,
    }
    path = os.path.join(tmpdir, "preprocessing.pt")
    torch.save(ckpt, path)
    return path


def save_experiment_meta(tmpdir):
    df, prep, trainer, cbs, manager = _experiment(tmpdir, epochs=2)
    logger, timer = cbs["logger"], cbs["timer"]
    meta = dict(
        run_id=str(logger.run_id),
        log_dir=str(logger.log_path.parent),
        log_file=logger.log_path,  # truth: weights_only
        started=logger.start_time,  # truth: weights_only
        fitted_at=prep.fitted_at.isoformat(),
        elapsed=timer.elapsed,  # truth: weights_only
        elapsed_s=timer.elapsed.total_seconds(),
        params=logger.params,
        logged_rows=logger.n_rows,
    )
    path = os.path.join(tmpdir, "experiment.pt")
    torch.save(meta, path)
    return path


def save_final(tmpdir):
    df, prep, trainer, cbs, manager = _experiment(tmpdir)
    manager.save(manager.build_state(trainer), "epoch_last.pt")
    final = {
        "model": cbs["best"].best_state,
        "plateau": trainer.scheduler.state_dict(),
        "best_rmse": cbs["best"].best,
        "val_r2": trainer.last_logs["val_r2"],
        "val_mae": trainer.last_logs["val_mae"],
        "n_rows": len(df),
        "columns": list(df.columns),
        "n_missing": int(prep.n_missing),
        "kept": [p.name for p in manager.saved],
        "city_counts": df[CATEGORICAL].value_counts().to_dict(),
        "medians": prep.medians,
    }
    path = os.path.join(tmpdir, "final.pt")
    torch.save(final, path)
    return path


def save_rotation_state(tmpdir):
    df, prep, trainer, cbs, manager = _experiment(tmpdir, epochs=3)
    for epoch in range(3):
        manager.save({"epoch": epoch, "model": trainer.model.state_dict()}, f"epoch{epoch}.pt")
    state = manager.build_state(trainer)
    state.update(
        kept=manager.saved,  # truth: weights_only
        keep_last=manager.keep_last,
        n_missing=prep.n_missing,  # truth: weights_only
    )
    path = os.path.join(tmpdir, "rotation.pt")
    torch.save(state, path)
    return path
