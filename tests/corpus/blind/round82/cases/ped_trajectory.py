"""Pedestrian trajectory prediction (ETH/UCY protocol: 8 observed frames, 12 predicted, 2.5 fps).

Config-driven: a YAML experiment file loaded with OmegaConf, a model registry filled by a
decorator, world-coordinate tracks built from pixel tracks through a per-scene homography, and a
metric tracker that keeps the running ADE/FDE. Each `save_*` is one of the checkpoint writers.
"""
import datetime
import math
from collections import defaultdict, deque
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import yaml
from omegaconf import OmegaConf

CONFIG_YAML = """
experiment: eth_ucy_leave_one_out
data:
  scenes: [eth, hotel, univ, zara1, zara2]
  test_scene: eth
  obs_len: 8
  pred_len: 12
  fps: 2.5
  skip: 1
  min_peds: 1
model:
  name: social_lstm
  embed_dim: 32
  hidden: 48
  grid_size: 4
  neighborhood: 2.0
train:
  lr: 1.0e-3
  epochs: 2
  batch_size: 8
  best_of_k: 20
  seed: 3
"""

MODELS = {}


def register_model(name):
    def wrap(cls):
        MODELS[name] = cls
        return cls
    return wrap


def load_config(overrides=()):
    base = OmegaConf.create(yaml.safe_load(CONFIG_YAML))
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


class TrajBatch(NamedTuple):
    obs: torch.Tensor        # (B, obs_len, 2) absolute positions in metres
    obs_rel: torch.Tensor    # (B, obs_len, 2) displacements
    fut: torch.Tensor        # (B, pred_len, 2)
    scene_ids: list


def scene_homography(scene):
    """Pixel -> world homography; each scene has its own camera."""
    scale = {"eth": 0.0226, "hotel": 0.0196, "univ": 0.0236, "zara1": 0.0214, "zara2": 0.0214}[scene]
    return np.array([[scale, 0.0, -3.0], [0.0, scale, -2.0], [0.0, 0.0, 1.0]])


def to_world(pixels, H):
    pts = np.concatenate([pixels, np.ones((len(pixels), 1))], axis=1) @ H.T
    return pts[:, :2] / pts[:, 2:3]


def synth_tracks(scene, n_peds, length, seed):
    rng = np.random.default_rng(seed)
    start = rng.uniform(50, 550, size=(n_peds, 2))
    heading = rng.uniform(-math.pi, math.pi, size=n_peds)
    speed = rng.uniform(20, 45, size=n_peds)
    steps = np.arange(length)[None, :, None]
    vel = np.stack([np.cos(heading), np.sin(heading)], axis=-1)[:, None, :] * speed[:, None, None]
    pix = start[:, None, :] + steps * vel + rng.normal(0, 2.0, size=(n_peds, length, 2)).cumsum(1)
    H = scene_homography(scene)
    return np.stack([to_world(p, H) for p in pix]).astype("float32")


def make_batch(cfg, scene, seed=0):
    d = cfg.data
    tracks = torch.from_numpy(synth_tracks(scene, cfg.train.batch_size, d.obs_len + d.pred_len, seed))
    obs, fut = tracks[:, :d.obs_len], tracks[:, d.obs_len:]
    obs_rel = torch.zeros_like(obs)
    obs_rel[:, 1:] = obs[:, 1:] - obs[:, :-1]
    return TrajBatch(obs, obs_rel, fut, [scene] * len(tracks))


class SocialPooling(nn.Module):
    """Grid pooling of neighbour hidden states (Social LSTM)."""

    def __init__(self, hidden=48, grid_size=4, neighborhood=2.0):
        super().__init__()
        self.grid_size, self.neighborhood = grid_size, neighborhood
        self.proj = nn.Linear(grid_size * grid_size * hidden, hidden)

    def forward(self, pos, h):
        n, g = pos.shape[0], self.grid_size
        rel = pos[None, :, :] - pos[:, None, :]
        cell = ((rel + self.neighborhood / 2) / (self.neighborhood / g)).floor().long()
        inside = ((cell >= 0) & (cell < g)).all(-1) & ~torch.eye(n, dtype=torch.bool)
        flat = (cell[..., 0] * g + cell[..., 1]).clamp(0, g * g - 1)
        grid = torch.zeros(n, g * g, h.shape[-1])
        for i in range(n):
            idx = inside[i].nonzero().flatten()
            if len(idx):
                grid[i].index_add_(0, flat[i, idx], h[idx])
        return torch.relu(self.proj(grid.flatten(1)))


@register_model("social_lstm")
class SocialLSTM(nn.Module):
    def __init__(self, embed_dim=32, hidden=48, grid_size=4, neighborhood=2.0, pred_len=12):
        super().__init__()
        self.pred_len = pred_len
        self.embed = nn.Linear(2, embed_dim)
        self.cell = nn.LSTMCell(embed_dim + hidden, hidden)
        self.pool = SocialPooling(hidden, grid_size, neighborhood)
        self.out = nn.Linear(hidden, 2)

    def forward(self, obs, obs_rel, noise_scale=0.0):
        n = obs.shape[0]
        h = c = torch.zeros(n, self.cell.hidden_size)
        pos, step = obs[:, 0], obs_rel[:, 0]
        for t in range(obs.shape[1]):
            pos, step = obs[:, t], obs_rel[:, t]
            h, c = self.cell(torch.cat([self.embed(step), self.pool(pos, h)], -1), (h, c))
        preds = []
        for _ in range(self.pred_len):
            step = self.out(h) + noise_scale * torch.randn(n, 2)
            pos = pos + step
            preds.append(pos)
            h, c = self.cell(torch.cat([self.embed(step), self.pool(pos, h)], -1), (h, c))
        return torch.stack(preds, 1)


@register_model("vanilla_lstm")
class VanillaLSTM(nn.Module):
    def __init__(self, embed_dim=32, hidden=48, pred_len=12, **_unused):
        super().__init__()
        self.pred_len = pred_len
        self.enc = nn.LSTM(2, hidden, batch_first=True)
        self.dec = nn.Linear(hidden, 2 * pred_len)

    def forward(self, obs, obs_rel, noise_scale=0.0):
        _, (h, _) = self.enc(obs_rel)
        rel = self.dec(h[-1]).view(-1, self.pred_len, 2)
        return obs[:, -1:] + rel.cumsum(1) + noise_scale * torch.randn_like(rel)


def build_model(cfg):
    params = OmegaConf.to_container(cfg.model, resolve=True)
    cls = MODELS[params.pop("name")]
    return cls(pred_len=cfg.data.pred_len, **params)


def ade_fde(pred, gt):
    """numpy ADE/FDE in metres for one scene."""
    dist = np.linalg.norm(pred - gt, axis=-1)
    return dist.mean(), dist[:, -1].mean()


def min_ade_fde(samples, gt):
    """Best-of-K over (K, B, T, 2) samples, torch."""
    dist = (samples - gt[None]).norm(dim=-1)
    ade = dist.mean(-1).min(0).values.mean()
    fde = dist[..., -1].min(0).values.mean()
    return ade.item(), fde.item()


class MetricTracker:
    def __init__(self, window=5):
        self.recent = deque(maxlen=window)
        self.history = defaultdict(list)
        self.best = math.inf
        self.best_epoch = -1

    def update(self, epoch, ade, fde):
        self.recent.append(ade)
        self.history["ade"].append(float(ade))
        self.history["fde"].append(float(fde))
        if ade < self.best:
            self.best, self.best_epoch = float(ade), epoch

    def summary(self):
        return {"best_ade": self.best, "best_epoch": self.best_epoch,
                "smoothed_ade": float(np.mean(self.recent)) if self.recent else math.nan}


def train(cfg, scenes=None):
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    tracker = MetricTracker()
    for epoch in range(cfg.train.epochs):
        for i, scene in enumerate(scenes or cfg.data.scenes):
            if scene == cfg.data.test_scene:
                continue
            b = make_batch(cfg, scene, seed=epoch * 10 + i)
            loss = nn.functional.mse_loss(model(b.obs, b.obs_rel), b.fut)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            b = make_batch(cfg, cfg.data.test_scene, seed=99)
            ade, fde = ade_fde(model(b.obs, b.obs_rel).numpy(), b.fut.numpy())
        tracker.update(epoch, ade, fde)
    return model, opt, tracker


def save_from_config(tmpdir):
    cfg = load_config(["train.epochs=1", "data.scenes=[eth,hotel]"])
    model, opt, tracker = train(cfg)
    ckpt = {
        "state_dict": model.state_dict(),
        "optimizer": opt.state_dict(),
        "cfg": cfg,  # truth: weights_only
        "cfg_resolved": OmegaConf.to_container(cfg, resolve=True),
        "cfg_yaml": OmegaConf.to_yaml(cfg),
        "train_cfg": dict(cfg.train),
        "model_cls": MODELS[cfg.model.name],  # truth: weights_only
        "model_name": cfg.model.name,
        "obs_len": cfg.data.obs_len,
        "pred_len": cfg.data.pred_len,
    }
    ckpt.update(tracker.summary())
    path = f"{tmpdir}/social_lstm_from_cfg.pt"
    torch.save(ckpt, path)
    return path


def save_leave_one_out(tmpdir):
    cfg = load_config(["train.epochs=1", "data.scenes=[eth,hotel,zara1]"])
    results, weights = {}, {}
    for scene in cfg.data.scenes:
        fold = OmegaConf.merge(cfg, {"data": {"test_scene": scene}})
        model, _, tracker = train(fold, scenes=["hotel", scene])
        b = make_batch(fold, scene, seed=123)
        with torch.no_grad():
            pred = model(b.obs, b.obs_rel)
            samples = torch.stack([model(b.obs, b.obs_rel, noise_scale=0.05) for _ in range(5)])
        ade, fde = ade_fde(pred.numpy(), b.fut.numpy())
        min_ade, min_fde = min_ade_fde(samples, b.fut)
        weights[scene] = model.state_dict()
        results[scene] = {
            "ade": ade,  # truth: weights_only
            "fde": float(fde),
            "min_ade_k5": min_ade,
            "min_fde_k5": min_fde,
            "best_epoch": tracker.best_epoch,
        }
    avg = {"mean_ade": sum(float(r["ade"]) for r in results.values()) / len(results)}
    out = {
        "weights": weights,
        "results": results,
        "average": avg,
        "scenes": cfg.data.scenes,  # truth: weights_only
        "scene_list": list(cfg.data.scenes),
        "protocol": OmegaConf.to_container(cfg.data),
    }
    path = f"{tmpdir}/loo.pt"
    torch.save(out, path)
    return path


def save_scene_calibration(tmpdir):
    cfg = load_config()
    H = scene_homography(cfg.data.test_scene)
    frame_dt = datetime.timedelta(seconds=cfg.data.skip / cfg.data.fps)
    tracks = synth_tracks(cfg.data.test_scene, 6, 20, seed=1)
    speeds = np.linalg.norm(np.diff(tracks, axis=1), axis=-1) / frame_dt.total_seconds()
    calib = {}
    calib["homography"] = H  # truth: weights_only
    calib["homography_t"] = torch.as_tensor(H, dtype=torch.float32)
    calib["frame_dt"] = frame_dt  # truth: weights_only
    calib["frame_seconds"] = frame_dt.total_seconds()
    calib["obs_window"] = slice(0, cfg.data.obs_len)  # truth: weights_only
    calib["obs_frames"] = (0, cfg.data.obs_len)
    calib["speed_stats"] = {
        "mean": float(speeds.mean()),
        "p95": float(np.percentile(speeds, 95)),
        "n_tracks": int(speeds.shape[0]),
    }
    calib["ped_ids"] = set(range(tracks.shape[0]))
    path = f"{tmpdir}/calib_{cfg.data.test_scene}.pt"
    torch.save(calib, path)
    return path


def save_tracker_state(tmpdir):
    cfg = load_config(["train.epochs=2", "model.name=vanilla_lstm"])
    model, opt, tracker = train(cfg)
    sampler = np.random.default_rng(cfg.train.seed)
    state = dict(
        model=model.state_dict(),
        optimizer=opt.state_dict(),
        recent_ade=tracker.recent,  # truth: weights_only
        history=dict(tracker.history),
        best=tracker.best,
        best_epoch=tracker.best_epoch,
        sampler=sampler,  # truth: weights_only
        sampler_state=sampler.bit_generator.state,
        noise_seed=int(sampler.integers(1 << 31)),
    )
    path = f"{tmpdir}/tracker.pt"
    torch.save(state, path)
    return path


def save_debug_batch(tmpdir):
    cfg = load_config()
    batch = make_batch(cfg, "zara1", seed=5)
    path = f"{tmpdir}/batch.pt"
    torch.save(batch, path)  # truth: weights_only
    return path


def save_deploy_bundle(tmpdir):
    """For the robot: weights, a batch layout example and the resolved config, all plain."""
    cfg = load_config(["train.epochs=1", "data.scenes=[eth,univ]"])
    model, _, tracker = train(cfg)
    batch = make_batch(cfg, "univ", seed=7)
    with torch.no_grad():
        samples = torch.stack([model(batch.obs, batch.obs_rel, noise_scale=0.05) for _ in range(3)])
    min_ade, min_fde = min_ade_fde(samples, batch.fut)
    bundle = {
        "weights": model.state_dict(),
        "example": batch._asdict(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "model_name": type(model).__name__,
        "registry": sorted(MODELS),
        "min_ade": min_ade,
        "min_fde": min_fde,
        "tracker": tracker.summary(),
        "history": {k: list(v) for k, v in tracker.history.items()},
        "recent": list(tracker.recent),  # truth: weights_only
        "fps": cfg.data.fps,
        "frame_seconds": datetime.timedelta(seconds=1 / cfg.data.fps).total_seconds(),
        "homography": scene_homography("univ").tolist(),
        "built": datetime.date.today().isoformat(),
    }
    path = f"{tmpdir}/deploy.pt"
    torch.save(bundle, path)
    return path


FACTORIES = {
    "TrajBatch": lambda: make_batch(load_config(), "hotel"),
}
