"""Graph traffic-speed forecasting (METR-LA style), small enough to run on a laptop.

* sensor graph from a pairwise road-distance table (thresholded Gaussian kernel)
* z-score scaler fitted on the *training windows only*
* masked MAE / MAPE / RMSE per horizon (0 = missing reading)
"""
from __future__ import annotations

import enum
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from omegaconf import OmegaConf
from sklearn.preprocessing import StandardScaler

HORIZONS = (3, 6, 12)


class HorizonMode(enum.IntEnum):
    SINGLE = 1
    MULTI = 2


DEFAULT_CFG = OmegaConf.create({
    "data": {"num_sensors": 8, "steps": 400, "in_len": 12, "out_len": 12, "missing_rate": 0.05},
    "graph": {"kernel_threshold": 0.1, "normalized_k": 0.1},
    "model": {"hidden": 16, "k_hops": 2, "dropout": 0.1},
    "optim": {"lr": 3e-3, "epochs": 3, "patience": 2, "grad_clip": 5.0},
    "eval": {"horizons": list(HORIZONS), "mode": "MULTI"},
})


# ----------------------------------------------------------------------------- data

def synth_distance_table(num_sensors, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 10, size=(num_sensors, 2))
    ids = [f"7{1000 + i}" for i in range(num_sensors)]
    rows = []
    for i in range(num_sensors):
        for j in range(num_sensors):
            if i != j and rng.random() < 0.6:
                rows.append((ids[i], ids[j], float(np.linalg.norm(xy[i] - xy[j]) * 1000)))
    return ids, pd.DataFrame(rows, columns=["from", "to", "cost"])


def adjacency_from_distances(ids, dist_df, normalized_k=0.1):
    """DCRNN's get_adjacency_matrix: exp(-(d/sigma)^2), entries below normalized_k zeroed."""
    index = {sid: i for i, sid in enumerate(ids)}
    dist = np.full((len(ids), len(ids)), np.inf, dtype=np.float32)
    for row in dist_df.itertuples(index=False):
        dist[index[row[0]], index[row[1]]] = row[2]
    finite = dist[~np.isinf(dist)].flatten()
    sigma = finite.std()
    adj = np.exp(-np.square(dist / sigma))
    adj[adj < normalized_k] = 0.0
    return adj, index, sigma


def synth_speeds(num_sensors, steps, missing_rate, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    base = 60 + 8 * np.sin(2 * np.pi * t / 288)[:, None] + rng.normal(0, 2, (steps, num_sensors))
    base[rng.random(base.shape) < missing_rate] = 0.0
    return base.astype(np.float32)


def make_windows(series, in_len, out_len):
    xs, ys = [], []
    for s in range(len(series) - in_len - out_len + 1):
        xs.append(series[s:s + in_len])
        ys.append(series[s + in_len:s + in_len + out_len])
    return np.stack(xs), np.stack(ys)


def fit_scaler(train_x):
    valid = train_x[train_x > 0].reshape(-1, 1)
    return StandardScaler().fit(valid)


# ----------------------------------------------------------------------------- metrics

def masked_mae(pred, true, null_val=0.0):
    mask = (true != null_val).float()
    mask = mask / mask.mean().clamp_min(1e-8)
    return (torch.abs(pred - true) * mask).mean()


def masked_rmse(pred, true, null_val=0.0):
    mask = (true != null_val).float()
    mask = mask / mask.mean().clamp_min(1e-8)
    return torch.sqrt(((pred - true) ** 2 * mask).mean())


def masked_mape_np(pred, true, null_val=0.0):
    mask = true != null_val
    return np.mean(np.abs(pred[mask] - true[mask]) / np.abs(true[mask]))


def horizon_report(pred, true, horizons=HORIZONS):
    out = {}
    for h in horizons:
        p, t = pred[:, h - 1], true[:, h - 1]
        out[f"mae@{h}"] = masked_mae(p, t).item()
        out[f"rmse@{h}"] = masked_rmse(p, t).item()
        out[f"mape@{h}"] = float(masked_mape_np(p.numpy(), t.numpy()))
    return out


# ----------------------------------------------------------------------------- model

class DiffusionGraphConv(nn.Module):
    def __init__(self, adj=None, in_dim=1, out_dim=16, k_hops=2):
        super().__init__()
        adj = np.eye(4, dtype=np.float32) if adj is None else adj
        a = torch.from_numpy(adj) + torch.eye(adj.shape[0])
        self.register_buffer("p_fwd", a / a.sum(1, keepdim=True))
        self.register_buffer("p_bwd", a.T / a.T.sum(1, keepdim=True))
        self.k_hops = k_hops
        self.lin = nn.Linear(in_dim * (2 * k_hops + 1), out_dim)

    def forward(self, x):  # x: (B, N, C)
        feats, xf, xb = [x], x, x
        for _ in range(self.k_hops):
            xf = torch.einsum("nm,bmc->bnc", self.p_fwd, xf)
            xb = torch.einsum("nm,bmc->bnc", self.p_bwd, xb)
            feats += [xf, xb]
        return self.lin(torch.cat(feats, -1))


class GraphGRUForecaster(nn.Module):
    def __init__(self, adj=None, hidden=16, k_hops=2, out_len=12, dropout=0.1):
        super().__init__()
        self.gconv = DiffusionGraphConv(adj, 1, hidden, k_hops)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, out_len)

    def forward(self, x):  # (B, T, N)
        B, T, N = x.shape
        h = self.gconv(x.reshape(B * T, N, 1)).reshape(B, T, N, -1)
        h = h.permute(0, 2, 1, 3).reshape(B * N, T, -1)
        _, last = self.gru(h)
        y = self.head(self.drop(last[-1])).reshape(B, N, -1)
        return y.permute(0, 2, 1)  # (B, out_len, N)


# ----------------------------------------------------------------------------- callbacks

class Callback:
    def on_epoch_end(self, trainer, epoch, logs):
        pass


class EarlyStopping(Callback):
    def __init__(self, monitor="val_mae", patience=2):
        self.monitor, self.patience = monitor, patience
        self.scores = []
        self.best = np.inf
        self.best_epoch = -1
        self.stop = False

    def on_epoch_end(self, trainer, epoch, logs):
        self.scores.append(logs[self.monitor])
        self.best_epoch = np.argmin(self.scores)
        self.best = self.scores[self.best_epoch]
        self.stop = len(self.scores) - 1 - self.best_epoch > self.patience


class MetricLogger(Callback):
    def __init__(self):
        self.log = defaultdict(list)

    def on_epoch_end(self, trainer, epoch, logs):
        for k, v in logs.items():
            self.log[k].append(v)


@dataclass
class ForecastState:
    epoch: int = 0
    best_val: float = float("inf")
    lr_trace: list = field(default_factory=list)


class ForecastTrainer:
    def __init__(self, cfg=None, seed=0):
        self.cfg = cfg if cfg is not None else DEFAULT_CFG
        d = self.cfg.data
        torch.manual_seed(seed)
        self.sensor_ids, self.dist_df = synth_distance_table(d.num_sensors, seed)
        self.adj, self.sensor_index, self.sigma = adjacency_from_distances(
            self.sensor_ids, self.dist_df, self.cfg.graph.normalized_k)
        speeds = synth_speeds(d.num_sensors, d.steps, d.missing_rate, seed)
        x, y = make_windows(speeds, d.in_len, d.out_len)
        n_train = int(0.7 * len(x))
        self.scaler = fit_scaler(x[:n_train])
        self.mean, self.std = float(self.scaler.mean_[0]), float(self.scaler.scale_[0])
        norm = lambda a: np.where(a > 0, (a - self.mean) / self.std, 0.0).astype(np.float32)
        self.train_xy = (torch.from_numpy(norm(x[:n_train])), torch.from_numpy(y[:n_train]))
        self.val_xy = (torch.from_numpy(norm(x[n_train:])), torch.from_numpy(y[n_train:]))
        m = self.cfg.model
        self.model = GraphGRUForecaster(self.adj, m.hidden, m.k_hops, d.out_len, m.dropout)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.optim.lr)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=[2, 4], gamma=0.3)
        self.stopper = EarlyStopping(patience=self.cfg.optim.patience)
        self.logger = MetricLogger()
        self.callbacks = [self.stopper, self.logger]
        self.state = ForecastState()
        self.started = datetime.now()

    def predict(self, x):
        return self.model(x) * self.std + self.mean

    def validate(self):
        self.model.eval()
        with torch.no_grad():
            pred = self.predict(self.val_xy[0])
        report = horizon_report(pred, self.val_xy[1])
        report["val_mae"] = masked_mae(pred, self.val_xy[1]).item()
        return report, pred

    def fit(self, epochs=None):
        epochs = epochs or self.cfg.optim.epochs
        x, y = self.train_xy
        for epoch in range(epochs):
            self.model.train()
            perm = torch.randperm(len(x))
            for i in range(0, len(x), 32):
                b = perm[i:i + 32]
                loss = masked_mae(self.predict(x[b]), y[b])
                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
                self.optimizer.step()
            self.scheduler.step()
            logs, _ = self.validate()
            logs["lr"] = self.scheduler.get_last_lr()[0]
            for cb in self.callbacks:
                cb.on_epoch_end(self, epoch, logs)
            self.state.epoch = epoch + 1
            self.state.lr_trace.append(logs["lr"])
            self.state.best_val = min(self.state.best_val, logs["val_mae"])
            if self.stopper.stop:
                break
        return self

    def state_dict(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.state.epoch,
            "best_val": self.state.best_val,
        }


NOT_BUILT = {}
FACTORIES = {
    "HorizonMode": lambda: HorizonMode.MULTI,
    "ForecastTrainer": lambda: ForecastTrainer(),
    "GraphGRUForecaster": lambda: GraphGRUForecaster(np.ones((4, 4), np.float32)),
}


# ----------------------------------------------------------------------------- checkpoints

def save_forecaster(tmpdir):
    trainer = ForecastTrainer().fit()
    ckpt = trainer.state_dict()
    ckpt.update(
        best_epoch=trainer.stopper.best_epoch,  # truth: weights_only
        stopped_early=bool(trainer.stopper.stop),
        scaler=trainer.scaler,  # truth: weights_only
        scaler_stats={"mean": trainer.scaler.mean_.tolist(), "scale": trainer.scaler.scale_.tolist()},
        horizons=list(HORIZONS),
        lr_trace=trainer.state.lr_trace,
    )
    path = os.path.join(tmpdir, "dcrnn_best.pt")
    torch.save(ckpt, path)
    return path


def save_graph_meta(tmpdir):
    ids, dist_df = synth_distance_table(10, seed=4)
    adj, index, sigma = adjacency_from_distances(ids, dist_df, normalized_k=0.1)
    in_deg = (adj > 0).sum(0)
    meta = {}
    meta["adj"] = torch.from_numpy(adj).float().to_sparse()
    meta["adj_raw"] = adj  # truth: weights_only
    meta["sensor_ids"] = ids
    meta["sensor_index"] = index
    meta["sigma"] = float(sigma)
    meta["isolated"] = set(np.flatnonzero(in_deg == 0))  # truth: weights_only
    meta["isolated_ids"] = sorted(ids[i] for i in np.flatnonzero(in_deg == 0))
    meta["num_edges"] = int((adj > 0).sum())
    meta["density"] = float(1.0 - (adj == 0).mean())
    meta["max_in_degree"] = in_deg.max().item()
    meta["cost_quantiles"] = dist_df["cost"].quantile([0.1, 0.5, 0.9]).round(2).tolist()
    meta["pairs"] = len(dist_df)
    path = os.path.join(tmpdir, "graph_meta.pt")
    torch.save(meta, path)
    return path


def save_eval_report(tmpdir):
    trainer = ForecastTrainer().fit(epochs=1)
    report, pred = trainer.validate()
    true = trainer.val_xy[1]
    mode = HorizonMode[trainer.cfg.eval.mode]
    horizon_steps = range(1, trainer.cfg.data.out_len + 1)
    mae_curve = [masked_mae(pred[:, h - 1], true[:, h - 1]).item() for h in horizon_steps]
    mape_curve = [masked_mape_np(pred[:, h - 1].numpy(), true[:, h - 1].numpy()) for h in horizon_steps]
    rmse_by_h = {h: masked_rmse(pred[:, h - 1], true[:, h - 1]).item() for h in HORIZONS}
    summary = {"val_mae": report["val_mae"], "by_horizon": report, "rmse_by_h": rmse_by_h}
    summary["mae_curve"] = mae_curve
    summary["mape_curve"] = mape_curve  # truth: weights_only
    summary["steps"] = horizon_steps  # truth: weights_only
    summary["steps_list"] = list(horizon_steps)
    summary["mode"] = int(mode)
    summary["mode_member"] = mode  # truth: weights_only
    summary["mode_name"] = mode.name
    summary["worst_h"] = max(rmse_by_h, key=rmse_by_h.get)
    path = os.path.join(tmpdir, "eval_report.pt")
    torch.save(summary, path)
    return path


def save_trainer_resume(tmpdir):
    cfg = OmegaConf.merge(DEFAULT_CFG, {"optim": {"epochs": 2}})
    trainer = ForecastTrainer(cfg).fit()
    ckpt = trainer.state_dict()
    ckpt["metric_log"] = dict(trainer.logger.log)
    ckpt["train_state"] = asdict(trainer.state)
    ckpt["started"] = trainer.started  # truth: weights_only
    ckpt["started_iso"] = trainer.started.isoformat()
    ckpt["cfg"] = cfg.optim  # truth: weights_only
    ckpt["cfg_plain"] = OmegaConf.to_container(cfg, resolve=True)
    ckpt["rng"] = torch.get_rng_state()
    path = os.path.join(tmpdir, "resume.pt")
    torch.save(ckpt, path)
    return path


def save_inference_bundle(tmpdir):
    trainer = ForecastTrainer().fit(epochs=1)
    scores = trainer.logger.log["val_mae"]
    bundle = {
        "state_dict": trainer.model.state_dict(),
        "adj": torch.tensor(trainer.adj),
        "sensor_ids": list(trainer.sensor_ids),
        "scaler": {"mean": trainer.mean, "std": trainer.std},
        "null_val": 0.0,
        "in_len": int(trainer.cfg.data.in_len),
        "horizons": tuple(HORIZONS),
        "best_val_mae": min(scores),
        "best_epoch": int(np.argmin(scores)),
        "mode": HorizonMode.MULTI.value,
        "cfg": OmegaConf.to_container(trainer.cfg.model),
        "trained_at": trainer.started.strftime("%Y-%m-%d %H:%M"),
    }
    path = os.path.join(tmpdir, "bundle.pt")
    torch.save(bundle, path)
    return path
