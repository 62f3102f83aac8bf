"""Traffic-flow forecasting on a road-sensor graph (METR-LA / PEMS-BAY style).

YAML config through OmegaConf, a model registry, a diffusion-conv GRU-free
baseline (graph conv + temporal conv), masked metrics and a trainer class
whose helpers return metric dicts.
"""
import math
import os
import time
from collections import OrderedDict, deque
from datetime import timedelta

import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn as nn
from omegaconf import OmegaConf

CONFIG_YAML = """
data:
  num_sensors: 12
  steps_per_day: 288
  interval_minutes: 5
  in_steps: 12
  out_steps: 12
  sigma_km: 1.5
  adj_threshold: 0.1
model:
  name: gconv_tcn
  hidden: 32
  cheb_k: 2
  dropout: 0.1
  horizons: [3, 6, 12]
train:
  lr: 0.002
  epochs: 2
  batch_size: 8
  patience: 5
  null_value: 0.0
  clip_grad: 5.0
"""

MODEL_REGISTRY = {}


def register(name):
    def deco(cls):
        MODEL_REGISTRY[name] = cls
        return cls
    return deco


def load_config(overrides=None):
    cfg = OmegaConf.create(CONFIG_YAML)
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    return cfg


# ----------------------------------------------------------------- graph + data

def sensor_graph(num_sensors, seed=0):
    rng = np.random.default_rng(seed)
    coords = rng.uniform(0, 5, size=(num_sensors, 2))
    g = nx.Graph()
    for i in range(num_sensors):
        g.add_node(f"7{i:05d}", pos=tuple(coords[i]))
    ids = list(g.nodes)
    for i in range(num_sensors):
        for j in range(i + 1, num_sensors):
            d = float(np.linalg.norm(coords[i] - coords[j]))
            if d < 2.0:
                g.add_edge(ids[i], ids[j], km=d)
    return g


def gaussian_adjacency(g, sigma, threshold):
    ids = list(g.nodes)
    dist = np.full((len(ids), len(ids)), np.inf)
    np.fill_diagonal(dist, 0.0)
    for u, v, km in g.edges(data="km"):
        i, j = ids.index(u), ids.index(v)
        dist[i, j] = dist[j, i] = km
    adj = np.exp(-np.square(dist / sigma))
    adj[adj < threshold] = 0.0
    return adj


def scaled_laplacian(adj):
    a = sp.coo_matrix(adj)
    d = np.asarray(a.sum(1)).flatten()
    d_inv_sqrt = np.power(d, -0.5, where=d > 0, out=np.zeros_like(d))
    lap = sp.eye(adj.shape[0]) - sp.diags(d_inv_sqrt) @ a @ sp.diags(d_inv_sqrt)
    return lap.tocoo()


def to_torch_sparse(m):
    m = m.tocoo()
    idx = torch.tensor(np.vstack([m.row, m.col]), dtype=torch.long)
    return torch.sparse_coo_tensor(idx, torch.tensor(m.data, dtype=torch.float32), m.shape).coalesce()


def synthetic_speeds(cfg, days=3, seed=0):
    rng = np.random.default_rng(seed)
    n_steps = days * cfg.data.steps_per_day
    index = pd.date_range("2012-03-01", periods=n_steps, freq=f"{cfg.data.interval_minutes}min")
    tod = (index.hour * 60 + index.minute).to_numpy() / 1440.0
    base = 60 - 25 * np.exp(-((tod - 0.33) ** 2) / 0.004) - 20 * np.exp(-((tod - 0.73) ** 2) / 0.006)
    speeds = base[:, None] + rng.normal(0, 3, size=(n_steps, cfg.data.num_sensors))
    speeds[rng.random(speeds.shape) < 0.02] = 0.0  # dropped readings
    return pd.DataFrame(speeds, index=index, columns=[f"7{i:05d}" for i in range(cfg.data.num_sensors)])


class ZScore:
    """The scaler most traffic repos ship (fit on train, non-null entries only)."""

    def __init__(self, mean=0.0, std=1.0):
        self.mean = mean
        self.std = std

    @classmethod
    def fit(cls, x, null_value=0.0):
        valid = x[x != null_value]
        return cls(valid.mean(), valid.std())

    def transform(self, x):
        return (x - self.mean) / self.std

    def inverse(self, x):
        return x * self.std + self.mean


def windows(values, in_steps, out_steps):
    xs, ys = [], []
    for t in range(in_steps, len(values) - out_steps + 1, out_steps):
        xs.append(values[t - in_steps:t])
        ys.append(values[t:t + out_steps])
    return np.stack(xs), np.stack(ys)


# ----------------------------------------------------------------- model

class GraphConv(nn.Module):
    def __init__(self, c_in=1, c_out=8, k=2):
        super().__init__()
        self.k = k
        self.lin = nn.Linear(c_in * k, c_out)

    def forward(self, x, lap):  # x: (B, T, N, C)
        outs, h = [x], x
        for _ in range(1, self.k):
            h = torch.einsum("nm,btmc->btnc", lap, h)
            outs.append(h)
        return self.lin(torch.cat(outs, dim=-1))


@register("gconv_tcn")
class GConvTCN(nn.Module):
    def __init__(self, in_steps=12, out_steps=12, hidden=32, cheb_k=2, dropout=0.1):
        super().__init__()
        self.gconv = GraphConv(1, hidden, cheb_k)
        self.tconv = nn.Conv2d(hidden, hidden, kernel_size=(3, 1), padding=(1, 0))
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(in_steps * hidden, out_steps)

    def forward(self, x, lap):
        h = torch.relu(self.gconv(x, lap))  # B T N H
        h = torch.relu(self.tconv(h.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)  # B T N H
        b, t, n, c = h.shape
        return self.head(self.drop(h.permute(0, 2, 1, 3).reshape(b, n, t * c))).transpose(1, 2)


def masked_mae(pred, target, null_value=0.0):
    mask = (target != null_value).float()
    mask = mask / mask.mean().clamp_min(1e-6)
    return (torch.abs(pred - target) * mask).mean()


def horizon_metrics(pred, target, horizons, null_value=0.0):
    out = {}
    for h in horizons:
        p, t = pred[:, h - 1], target[:, h - 1]
        valid = t != null_value
        err = (p - t)[valid]
        out[h] = (err.abs().mean(), torch.sqrt((err ** 2).mean()), (err.abs() / t[valid]).mean())
    return out


class ForecastTrainer:
    def __init__(self, cfg=None):
        self.cfg = cfg or load_config()
        torch.manual_seed(0)
        df = synthetic_speeds(self.cfg)
        self.sensor_ids = list(df.columns)
        self.graph = sensor_graph(self.cfg.data.num_sensors)
        self.adj = gaussian_adjacency(self.graph, self.cfg.data.sigma_km, self.cfg.data.adj_threshold)
        self.lap = to_torch_sparse(scaled_laplacian(self.adj)).to_dense()
        n_train = int(len(df) * 0.7)
        self.split_time = df.index[n_train]
        self.scaler = ZScore.fit(df.iloc[:n_train].to_numpy(), self.cfg.train.null_value)
        x, y = windows(df.to_numpy(), self.cfg.data.in_steps, self.cfg.data.out_steps)
        self.x = torch.from_numpy(self.scaler.transform(x)).float().unsqueeze(-1)
        self.y = torch.from_numpy(y).float()
        model_cls = MODEL_REGISTRY[self.cfg.model.name]
        self.model = model_cls(self.cfg.data.in_steps, self.cfg.data.out_steps, self.cfg.model.hidden,
                               self.cfg.model.cheb_k, self.cfg.model.dropout)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.train.lr)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=[20, 30], gamma=0.1)
        self.best_val = math.inf
        self.bad_epochs = 0
        self.recent = deque(maxlen=3)

    def run_epoch(self):
        self.model.train()
        losses = []
        for i in range(0, len(self.x), self.cfg.train.batch_size):
            xb, yb = self.x[i:i + self.cfg.train.batch_size], self.y[i:i + self.cfg.train.batch_size]
            pred = torch.as_tensor(self.scaler.inverse(self.model(xb, self.lap)))
            loss = masked_mae(pred, yb, self.cfg.train.null_value)
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.clip_grad)
            self.optimizer.step()
            losses.append(loss.detach().numpy())
        self.scheduler.step()
        epoch_loss = np.mean(losses)
        self.recent.append(epoch_loss)
        if epoch_loss < self.best_val:
            self.best_val, self.bad_epochs = epoch_loss, 0
        else:
            self.bad_epochs += 1
        return epoch_loss

    @torch.no_grad()
    def validate(self):
        self.model.eval()
        pred = torch.as_tensor(self.scaler.inverse(self.model(self.x, self.lap)))
        per_h = horizon_metrics(pred, self.y, list(self.cfg.model.horizons), self.cfg.train.null_value)
        return {f"mae@{h}": v[0].item() for h, v in per_h.items()}, per_h


def _trained(epochs=1):
    tr = ForecastTrainer()
    for _ in range(epochs):
        tr.run_epoch()
    return tr


def save_dcrnn_style(tmpdir):
    tr = _trained()
    scores, per_h = tr.validate()
    ckpt = {
        "model_state_dict": tr.model.state_dict(),
        "optimizer_state_dict": tr.optimizer.state_dict(),
        "config": tr.cfg,  # truth: weights_only
        "config_dict": OmegaConf.to_container(tr.cfg, resolve=True),
        "val": scores,
        "val_mape@12": per_h[12][2],
        "val_rmse@12": per_h[12][1].item(),
    }
    path = os.path.join(tmpdir, "dcrnn_epoch.tar")
    torch.save(ckpt, path)
    return path


def save_graph_artifacts(tmpdir):
    tr = _trained()
    lap_sparse = scaled_laplacian(tr.adj)
    ckpt = {"model": tr.model.state_dict()}
    ckpt["sensor_ids"] = tr.sensor_ids
    ckpt["sensor_index"] = {sid: i for i, sid in enumerate(tr.sensor_ids)}
    ckpt["adj_mx"] = tr.adj  # truth: weights_only
    ckpt["adj_tensor"] = torch.from_numpy(tr.adj).float()
    ckpt["laplacian"] = lap_sparse  # truth: weights_only
    ckpt["laplacian_t"] = to_torch_sparse(lap_sparse)
    ckpt["edge_list"] = [(u, v, round(d, 3)) for u, v, d in tr.graph.edges(data="km")]
    ckpt["road_graph"] = tr.graph  # truth: weights_only
    ckpt["n_edges"] = tr.graph.number_of_edges()
    ckpt["density"] = nx.density(tr.graph)
    path = os.path.join(tmpdir, "graph.pt")
    torch.save(ckpt, path)
    return path


def save_scaler_and_split(tmpdir):
    tr = _trained()
    payload = {
        "state_dict": tr.model.state_dict(),
        "scaler": tr.scaler,  # truth: weights_only
        "scaler_params": {"mean": tr.scaler.mean, "std": float(tr.scaler.std)},  # truth: weights_only
        "split_time": tr.split_time,  # truth: weights_only
        "split_time_str": str(tr.split_time),
        "interval": timedelta(minutes=tr.cfg.data.interval_minutes),  # truth: weights_only
        "interval_s": timedelta(minutes=tr.cfg.data.interval_minutes).total_seconds(),
        "horizons": tr.cfg.model.horizons,  # truth: weights_only
        "horizons_list": list(tr.cfg.model.horizons),
    }
    path = os.path.join(tmpdir, "scaler_split.pt")
    torch.save(payload, path)
    return path


def save_early_stopping_state(tmpdir):
    tr = _trained(epochs=2)
    state = OrderedDict(model=tr.model.state_dict(), optimizer=tr.optimizer.state_dict())
    state["scheduler"] = tr.scheduler.state_dict()
    state["early_stop"] = {
        "best_val": tr.best_val,  # truth: weights_only
        "bad_epochs": tr.bad_epochs,
        "patience": tr.cfg.train.patience,
        "recent": tr.recent,  # truth: weights_only
    }
    state["milestones"] = sorted(tr.scheduler.milestones)
    path = os.path.join(tmpdir, "early_stop.pt")
    torch.save(state, path)
    return path


def save_clean_release(tmpdir):
    tr = _trained()
    scores, per_h = tr.validate()
    cfg_plain = OmegaConf.to_container(tr.cfg, resolve=True)
    release = {
        "model": tr.model.state_dict(),
        "model_name": tr.cfg.model.name,
        "config": cfg_plain,
        "metrics": {k: round(v, 4) for k, v in scores.items()},
        "rmse": {int(h): v[1].item() for h, v in per_h.items()},
        "scaler": {"mean": float(tr.scaler.mean), "std": float(tr.scaler.std)},
        "best_val": float(tr.best_val),
        "recent": [float(v) for v in tr.recent],
        "num_nodes": int(tr.adj.shape[0]),
        "lap": tr.lap.to_sparse(),
        "split_time": tr.split_time.isoformat(),
        "dtype": torch.float32,
        "built": time.strftime("%Y-%m-%d"),
        "registry": sorted(MODEL_REGISTRY),
    }
    path = os.path.join(tmpdir, "release.pt")
    torch.save(release, path)
    return path


def save_rng_state(tmpdir):
    tr = _trained()
    rng = np.random.default_rng(1)
    ckpt = {
        "model": tr.model.state_dict(),
        "np_bitgen": rng.bit_generator.state,
        "np_generator": rng,  # truth: weights_only
        "torch_rng": torch.get_rng_state(),
        "epoch_time": time.perf_counter(),
    }
    path = os.path.join(tmpdir, "rng.pt")
    torch.save(ckpt, path)
    return path


FACTORIES = {
    "ZScore": lambda: ZScore.fit(np.array([[55.0, 0.0, 61.0], [48.0, 52.0, 0.0]])),
}
