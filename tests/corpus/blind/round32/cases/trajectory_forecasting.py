"""Multi-modal trajectory forecasting (Argoverse-style): agent histories, lane features, minADE/minFDE.

Track tables and lane tables are pandas frames, the forecaster is a GRU encoder with a
K-mode MLP head trained with a winner-takes-all loss.
"""
import argparse
import collections
import dataclasses
import datetime
import enum
import os
import time

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import mean_absolute_error


class AgentType(str, enum.Enum):
    VEHICLE = "vehicle"
    PEDESTRIAN = "pedestrian"
    CYCLIST = "cyclist"


@dataclasses.dataclass
class ForecastConfig:
    history_steps: int = 20
    future_steps: int = 30
    num_modes: int = 6
    hidden: int = 64
    map_radius: float = 50.0
    dt: float = 0.1
    miss_threshold: float = 2.0


def parse_args(argv=None):
    p = argparse.ArgumentParser("train_forecaster")
    p.add_argument("--data-root", default="data/av2/train")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--num-modes", type=int, default=6)
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args(argv)


def synthetic_tracks(n_scenarios=6, agents_per_scene=4, cfg=None, seed=0):
    cfg = cfg or ForecastConfig()
    rng = np.random.default_rng(seed)
    steps = cfg.history_steps + cfg.future_steps
    rows = []
    for s in range(n_scenarios):
        city = ["PIT", "MIA", "WDC"][s % 3]
        for a in range(agents_per_scene):
            kind = [t.value for t in AgentType][a % 3]
            xy0, v = rng.normal(0, 20, 2), rng.normal(0, 5, 2)
            for t in range(steps):
                x, y = xy0 + v * t * cfg.dt + rng.normal(0, 0.05, 2)
                rows.append((f"scn{s:04d}", f"{s}_{a}", t, x, y, np.arctan2(v[1], v[0]), kind, city))
    return pd.DataFrame(rows, columns=["scenario_id", "track_id", "timestep", "x", "y", "heading",
                                      "object_type", "city"])


def synthetic_lanes(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "lane_id": np.arange(n),
        "city": rng.choice(["PIT", "MIA", "WDC"], n),
        "length": rng.uniform(5.0, 80.0, n),
        "speed_limit": rng.choice([25.0, 35.0, 45.0], n),
        "is_intersection": rng.random(n) < 0.2,
        "cx": rng.normal(0, 50, n),
        "cy": rng.normal(0, 50, n),
    })


def build_map_features(lanes):
    return {
        "lane_length_by_city": lanes.groupby("city")["length"].mean(),
        "speed_limit_mean": lanes["speed_limit"].mean(),
        "intersection_ratio": lanes["is_intersection"].mean(),
        "n_lanes": len(lanes),
        "cities": lanes["city"].unique(),
    }


def normalize_agent(history_xy):
    """Translate to the last observed position and rotate so the agent heads along +x."""
    origin = history_xy[-1].copy()
    delta = history_xy[-1] - history_xy[-5]
    theta = np.arctan2(delta[1], delta[0])
    c, s = np.cos(-theta), np.sin(-theta)
    rot = np.array([[c, -s], [s, c]])
    return (history_xy - origin) @ rot.T, origin, theta, rot


def make_batches(tracks, cfg):
    hist, fut, types = [], [], []
    for _, g in tracks.sort_values("timestep").groupby("track_id", sort=True):
        xy = g[["x", "y"]].to_numpy()
        local, origin, theta, rot = normalize_agent(xy[: cfg.history_steps])
        future = (xy[cfg.history_steps:] - origin) @ rot.T
        hist.append(local)
        fut.append(future)
        types.append(g["object_type"].iloc[0])
    return (torch.tensor(np.stack(hist), dtype=torch.float32),
            torch.tensor(np.stack(fut), dtype=torch.float32), types)


class MotionForecaster(nn.Module):
    def __init__(self, cfg=None):
        super().__init__()
        cfg = cfg or ForecastConfig()
        self.future_steps = cfg.future_steps
        self.num_modes = cfg.num_modes
        self.encoder = nn.GRU(2, cfg.hidden, batch_first=True)
        self.traj_head = nn.Linear(cfg.hidden, cfg.num_modes * cfg.future_steps * 2)
        self.mode_head = nn.Linear(cfg.hidden, cfg.num_modes)

    def forward(self, hist):
        _, h = self.encoder(hist)
        h = h[-1]
        traj = self.traj_head(h).view(-1, self.num_modes, self.future_steps, 2)
        return traj, self.mode_head(h)


def wta_loss(traj, logits, fut):
    err = (traj - fut[:, None]).norm(dim=-1).mean(-1)  # B x K
    best = err.argmin(1)
    reg = err.gather(1, best[:, None]).mean()
    return reg + F.cross_entropy(logits, best)


@torch.no_grad()
def torch_min_ade_fde(traj, fut):
    dist = (traj - fut[:, None]).norm(dim=-1)  # B x K x T
    ade = dist.mean(-1).min(1).values
    fde = dist[..., -1].min(1).values
    return {"minADE": ade.mean().item(), "minFDE": fde.mean().item()}


def numpy_metrics(traj, fut, miss_threshold=2.0):
    pred, gt = traj.numpy(), fut.numpy()
    dist = np.linalg.norm(pred - gt[:, None], axis=-1)
    min_ade = dist.mean(-1).min(1)
    min_fde = dist[..., -1].min(1)
    return {
        "minADE": min_ade.mean(),
        "minFDE": min_fde.mean(),
        "miss_rate": (min_fde > miss_threshold).mean(),
        "n_agents": len(gt),
    }


class ForecastEarlyStopper:
    def __init__(self, patience=3):
        self.patience = patience
        self.best = float("inf")
        self.wait = 0
        self.scores = []

    def __call__(self, score):
        self.scores.append(score)
        if score < self.best:
            self.best, self.wait = score, 0
        else:
            self.wait += 1
        return self.wait >= self.patience


class ForecastTrainer:
    def __init__(self, args, cfg=None):
        self.args = args
        self.cfg = cfg or ForecastConfig(num_modes=args.num_modes)
        self.model = MotionForecaster(self.cfg)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=args.epochs)
        self.stopper = ForecastEarlyStopper()
        self.epoch = 0
        self.best_min_ade = float("inf")
        self.best_epoch = -1
        self.best_metrics = {}
        self.per_type_ade = {}
        self.seen_scenarios = set()
        self.elapsed = datetime.timedelta(0)

    def fit_epoch(self, tracks):
        t0 = time.perf_counter()
        hist, fut, _ = make_batches(tracks, self.cfg)
        self.model.train()
        for i in range(0, len(hist), self.args.batch_size):
            traj, logits = self.model(hist[i:i + self.args.batch_size])
            loss = wta_loss(traj, logits, fut[i:i + self.args.batch_size])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.scheduler.step()
        self.epoch += 1
        self.seen_scenarios.update(tracks["scenario_id"].unique().tolist())
        self.elapsed += datetime.timedelta(seconds=time.perf_counter() - t0)
        return loss.item()

    @torch.no_grad()
    def evaluate(self, tracks):
        self.model.eval()
        hist, fut, types = make_batches(tracks, self.cfg)
        traj, logits = self.model(hist)
        metrics = numpy_metrics(traj, fut, self.cfg.miss_threshold)
        metrics.update({f"torch_{k}": v for k, v in torch_min_ade_fde(traj, fut).items()})
        best_mode = logits.argmax(1)
        endpoint = traj[torch.arange(len(traj)), best_mode, -1]
        metrics["endpoint_mae"] = mean_absolute_error(fut[:, -1].numpy(), endpoint.numpy())
        ade = (traj - fut[:, None]).norm(dim=-1).mean(-1).min(1).values
        for t in set(types):
            idx = torch.tensor([i for i, tt in enumerate(types) if tt == t])
            self.per_type_ade[AgentType(t).name] = ade[idx].mean().item()
        if metrics["minADE"] < self.best_min_ade:
            self.best_min_ade = metrics["minADE"]
            self.best_epoch = self.epoch
            self.best_metrics = {k: float(v) for k, v in metrics.items()}
        self.stopper(metrics["torch_minADE"])
        return metrics


def _trained(epochs=2):
    args = parse_args([])
    torch.manual_seed(args.seed)
    trainer = ForecastTrainer(args)
    train, val = synthetic_tracks(seed=0), synthetic_tracks(n_scenarios=3, seed=1)
    for _ in range(epochs):
        trainer.fit_epoch(train)
        metrics = trainer.evaluate(val)
    return trainer, metrics, train, val


def save_forecaster_resume(tmpdir):
    trainer, m, _, _ = _trained()
    ckpt = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "epoch": trainer.epoch,
    }
    ckpt["best_min_ade"] = trainer.best_min_ade  # truth: weights_only
    ckpt["best_epoch"] = trainer.best_epoch
    ckpt["best_metrics"] = trainer.best_metrics
    ckpt["last"] = {
        "minADE": float(m["minADE"]),
        "minFDE": round(m["minFDE"], 3),  # truth: weights_only
        "miss_rate": m["miss_rate"].item(),
        "torch_minFDE": m["torch_minFDE"],
        "endpoint_mae": m["endpoint_mae"],
        "n_agents": m["n_agents"],
    }
    ckpt["per_type_ade"] = trainer.per_type_ade
    ckpt["seen_scenarios"] = trainer.seen_scenarios
    ckpt["train_time"] = trainer.elapsed  # truth: weights_only
    ckpt["train_seconds"] = trainer.elapsed.total_seconds()
    ckpt["stopper"] = vars(trainer.stopper)
    ckpt["config"] = dataclasses.asdict(trainer.cfg)
    path = os.path.join(tmpdir, f"forecaster_e{trainer.epoch:03d}.pt")
    torch.save(ckpt, path)
    return path


def save_forecaster_best(tmpdir):
    trainer, _, _, _ = _trained(epochs=1)
    path = os.path.join(tmpdir, "forecaster_best.pt")
    torch.save(dict(
        model=trainer.model.state_dict(),
        cfg=trainer.cfg,  # truth: weights_only
        agent_types=[t.value for t in AgentType],
        target_type=AgentType.VEHICLE,  # truth: weights_only
        args=vars(trainer.args),
        best_epoch=trainer.best_epoch,
        lr=trainer.scheduler.get_last_lr()[0],
    ), path)
    return path


def save_map_features(tmpdir):
    cfg = ForecastConfig()
    lanes = synthetic_lanes()
    feats = build_map_features(lanes)
    encoder = nn.Linear(4, 16)
    ckpt = {"lane_encoder": encoder.state_dict(), "map_radius": cfg.map_radius}
    ckpt["lane_length_by_city"] = feats["lane_length_by_city"]  # truth: weights_only
    ckpt["lane_length_dict"] = feats["lane_length_by_city"].to_dict()
    ckpt["speed_limit_mean"] = float(feats["speed_limit_mean"])
    ckpt["intersection_ratio"] = feats["intersection_ratio"]  # truth: weights_only
    ckpt["n_lanes"] = feats["n_lanes"]
    ckpt["cities"] = feats["cities"].tolist()
    ckpt["lane_centroids"] = torch.tensor(lanes[["cx", "cy"]].to_numpy(), dtype=torch.float32)
    ckpt["lane_table"] = lanes[["lane_id", "length"]].to_dict("list")
    path = os.path.join(tmpdir, "map_features.pt")
    torch.save(ckpt, path)
    return path


def save_agent_normalization(tmpdir):
    cfg = ForecastConfig()
    tracks = synthetic_tracks(cfg=cfg)
    g = tracks[tracks["track_id"] == "0_0"].sort_values("timestep")
    local, origin, theta, rot = normalize_agent(g[["x", "y"]].to_numpy()[: cfg.history_steps])
    scenarios = tracks["scenario_id"].unique().tolist()
    val_ids = scenarios[-2:]
    norm = {}
    norm["origin"] = torch.from_numpy(origin).float()
    norm["theta"] = theta  # truth: weights_only
    norm["rotation"] = rot.tolist()
    norm["local_history"] = torch.as_tensor(local, dtype=torch.float32)
    norm["train_ids"] = sorted(set(scenarios) - set(val_ids))
    norm["val_ids"] = frozenset(val_ids)  # truth: weights_only
    norm["history_steps"] = cfg.history_steps
    path = os.path.join(tmpdir, "agent_norm.pt")
    torch.save(norm, path)
    return path


def save_eval_report(tmpdir):
    """Clean: the report keeps Python numbers, lists and tensors only."""
    trainer, m, _, val = _trained(epochs=1)
    hist, fut, types = make_batches(val, trainer.cfg)
    with torch.no_grad():
        traj, _ = trainer.model(hist)
    fde = (traj[:, :, -1] - fut[:, None, -1]).norm(dim=-1).min(1).values
    report = dict(
        metrics=torch_min_ade_fde(traj, fut),
        miss_count=int((fde > trainer.cfg.miss_threshold).sum()),
        miss_rate=round(float(m["miss_rate"]), 4),
        endpoint_mae=m["endpoint_mae"],
        per_type=trainer.per_type_ade,
        type_counts=collections.Counter(types),
        agents_per_city=val.groupby("city")["track_id"].nunique().to_dict(),
        rows_per_type=val.groupby("object_type").size().to_dict(),
        fde_per_agent=fde.tolist(),
        mean_speed=float(np.hypot(val["x"].diff(), val["y"].diff()).mean() / trainer.cfg.dt),
        best_epoch=trainer.best_epoch,
        finished=datetime.datetime.now().isoformat(timespec="seconds"),
    )
    path = os.path.join(tmpdir, "eval_report.pt")
    torch.save(report, path)
    return path


FACTORIES = {
    "AgentType": lambda: AgentType.VEHICLE,
    "ForecastTrainer": lambda: ForecastTrainer(parse_args([])),
}
