"""Tiny UNet-style forecaster on a regular lat/lon grid (WeatherBench-like).

Inputs are (channels, lat, lon) numpy fields; targets are the same fields `lead` steps ahead.
"""
import copy
import enum
import os
import random
from collections import Counter, OrderedDict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import numpy as np
import torch
import torch.nn as nn
from omegaconf import OmegaConf

N_LAT, N_LON = 8, 16


class Variable(enum.Enum):
    T2M = "2m_temperature"
    Z500 = "geopotential_500"
    U10 = "10m_u_component_of_wind"


@dataclass
class GridSpec:
    n_lat: int = N_LAT
    n_lon: int = N_LON
    resolution_deg: float = 22.5
    variables: tuple = ("2m_temperature", "geopotential_500", "10m_u_component_of_wind")


@dataclass
class TrainState:
    step: int = 0
    best_val_rmse: float = float("inf")
    lead_hours: list = field(default_factory=lambda: [6, 24, 72])


class Forecaster(nn.Module):
    def __init__(self, channels=3, width=8):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, channels, 3, padding=1),
        )

    def forward(self, x):
        return x + self.net(x)


def latitude_grid(n_lat=N_LAT):
    return np.linspace(-90 + 90 / n_lat, 90 - 90 / n_lat, n_lat)


def lat_weights(lats):
    w = np.cos(np.deg2rad(lats))
    return w / w.mean()


def synthetic_fields(n_time=6, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n_time, channels, N_LAT, N_LON)).astype("float32")
    return np.cumsum(base, axis=0) * 0.1


def channel_stats(data):
    """Per-channel climatology over (time, lat, lon)."""
    return data.mean(axis=(0, 2, 3)), data.std(axis=(0, 2, 3))


def weighted_rmse(pred, target, weights):
    err = (pred - target) ** 2 * weights[None, :, None]
    return np.sqrt(err.mean())


def weighted_rmse_torch(pred, target, weights):
    w = torch.as_tensor(weights, dtype=pred.dtype)[None, None, :, None]
    return torch.sqrt(((pred - target) ** 2 * w).mean())


class ModelEMA:
    def __init__(self, model, decay=0.999):
        self.module = copy.deepcopy(model).eval()
        self.decay = decay

    @torch.no_grad()
    def update(self, model):
        for e, p in zip(self.module.parameters(), model.parameters()):
            e.mul_(self.decay).add_(p, alpha=1 - self.decay)


def train_steps(model, data, steps=2, lr=1e-3):
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    x = torch.from_numpy(data[:-1])
    y = torch.from_numpy(data[1:])
    for _ in range(steps):
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
    return opt, sched, scaler, loss


def save_forecaster(tmpdir):
    torch.manual_seed(0)
    data = synthetic_fields()
    model = Forecaster()
    opt, sched, scaler, loss = train_steps(model, data)
    mean, std = channel_stats(data)
    lats = latitude_grid()
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "lr_scheduler": sched.state_dict(),
        "grad_scaler": scaler.state_dict(),
        "loss": loss.item(),
        "norm": {
            "mean": mean,  # truth: weights_only
            "std": torch.from_numpy(std),
        },
        "lats": lats.tolist(),
        "grid": asdict(GridSpec()),
        "grid_shape": tuple(data.shape[-2:]),
    }
    path = os.path.join(tmpdir, "forecaster.pt")
    torch.save(ckpt, path)
    return path


def save_validation_scores(tmpdir):
    data = synthetic_fields()
    model = Forecaster()
    w = lat_weights(latitude_grid())
    with torch.no_grad():
        pred = model(torch.from_numpy(data[:-1])).numpy()
    rmse_by_lead = {h: weighted_rmse(pred[: i + 1], data[1: i + 2], w) for i, h in enumerate([6, 24, 72])}
    rmse_by_lead_f = {f"t+{h}h": float(v) for h, v in rmse_by_lead.items()}
    val_losses = [0.9, 0.7, 0.75, 0.8]
    ckpt = dict(
        model=model.state_dict(),
        rmse_24h=rmse_by_lead[24],  # truth: weights_only
        rmse_float=rmse_by_lead_f,
        rmse_torch=weighted_rmse_torch(torch.from_numpy(pred), torch.from_numpy(data[1:]), w),
        best_epoch=np.argmin(val_losses),  # truth: weights_only
        best_epoch_int=int(np.argmin(val_losses)),
        acc=np.corrcoef(pred.ravel(), data[1:].ravel())[0, 1],  # truth: weights_only
        lat_weights=torch.tensor(w),
    )
    path = os.path.join(tmpdir, "val_scores.pt")
    torch.save(ckpt, path)
    return path


def save_ema_model(tmpdir):
    torch.manual_seed(0)
    model = Forecaster()
    ema = ModelEMA(model, decay=0.99)
    train_steps(model, synthetic_fields(), steps=1)
    ema.update(model)
    path = os.path.join(tmpdir, "ema_full.pt")
    torch.save(ema.module, path)  # truth: weights_only
    return path


def save_ema_state(tmpdir):
    """Same EMA, saved the way the loader expects: state dicts and plain numbers."""
    torch.manual_seed(0)
    model = Forecaster()
    ema = ModelEMA(model, decay=0.99)
    opt, sched, scaler, loss = train_steps(model, synthetic_fields(), steps=1)
    ema.update(model)
    state = OrderedDict()
    state["model"] = model.state_dict()
    state["ema"] = ema.module.state_dict()
    state["ema_decay"] = ema.decay
    state["optimizer"] = opt.state_dict()
    state["last_lr"] = sched.get_last_lr()[0]
    state["torch_rng"] = torch.get_rng_state()
    state["py_rng"] = random.getstate()
    path = os.path.join(tmpdir, "ema_state.pt")
    torch.save(state, path)
    return path


def save_run_metadata(tmpdir):
    cfg = OmegaConf.create({
        "data": {"variables": [v.value for v in Variable], "lead_hours": 6},
        "optim": {"lr": 1e-3, "weight_decay": 0.05},
    })
    init_time = datetime(2020, 1, 1, 0) + timedelta(hours=6)
    ts = TrainState(step=2, best_val_rmse=0.8)
    target = Variable.Z500
    meta = {}
    meta["config"] = cfg  # truth: weights_only
    meta["config_dict"] = OmegaConf.to_container(cfg, resolve=True)
    meta["target"] = target  # truth: weights_only
    meta["target_name"] = target.value
    meta["init_time"] = init_time  # truth: weights_only
    meta["init_time_iso"] = init_time.isoformat()
    meta["valid_time"] = np.datetime64("2020-01-01T06")  # truth: weights_only
    meta["train_state"] = ts  # truth: weights_only
    meta["train_state_dict"] = asdict(ts)
    meta["np_rng"] = np.random.get_state()  # truth: weights_only
    meta["np_rng_seed"] = int(np.random.default_rng(0).integers(1 << 30))
    path = os.path.join(tmpdir, "run_meta.pt")
    torch.save(meta, path)
    return path


def save_station_counts(tmpdir):
    stations = ["LHR", "CDG", "LHR", "FRA", "CDG", "LHR"]
    counts = Counter(stations)
    grid = synthetic_fields(n_time=2)
    ckpt = {"counts_dict": dict(counts), "n_stations": len(counts)}
    ckpt.update(
        counts=counts,
        most_common=counts.most_common(1)[0][0],
        field_max=grid.max(),  # truth: weights_only
        field_max_t=torch.from_numpy(grid).amax(),
        land_sea=torch.from_numpy(grid[0, 0] > 0),
    )
    path = os.path.join(tmpdir, "stations.pt")
    torch.save(ckpt, path)
    return path


def save_inference_bundle(tmpdir):
    """No mark: everything here is tensors, builtins and containers of those."""
    data = synthetic_fields()
    model = Forecaster()
    mean, std = channel_stats(data)
    bundle = {
        "state_dict": model.state_dict(),
        "mean": torch.as_tensor(mean),
        "std": std.tolist(),
        "variables": [v.value for v in Variable],
        "lead_hours": [6, 24, 72],
        "grid": {"n_lat": N_LAT, "n_lon": N_LON, "lats": latitude_grid().tolist()},
        "created": datetime.now().strftime("%Y-%m-%dT%H:%M"),
        "dtype": torch.float32,
    }
    path = os.path.join(tmpdir, "bundle.pt")
    torch.save(bundle, path)
    return path


NOT_BUILT = {"Variable": "an Enum: its members exist already, calling the class needs a value"}
FACTORIES = {"ModelEMA": lambda: ModelEMA(Forecaster(), decay=0.99)}
