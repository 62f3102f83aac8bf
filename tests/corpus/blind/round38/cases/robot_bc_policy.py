# behavior cloning for a 7-dof arm + parallel gripper (pick_cube / stack / drawer)
# terse research script: norm stats -> BC MLP -> rollouts in a toy env -> ckpt
import argparse, dataclasses, enum, os, random, time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

OBS_DIM, ACT_DIM = 10, 8  # 7 joint deltas + gripper


class GripperState(enum.Enum):
    OPEN = 0
    CLOSING = 1
    CLOSED = 2


@dataclass
class EpisodeMeta:
    episode_id: int = 0
    task: str = "pick_cube"
    success: bool = False
    length: int = 0
    final_gripper: str = "OPEN"
    seed: int = 0


@dataclass
class BCConfig:
    hidden: int = 64
    lr: float = 1e-3
    epochs: int = 4
    eval_episodes: int = 6
    tasks: tuple = ("pick_cube", "stack", "drawer")
    action_clip: float = 3.0


def get_args(argv=()):
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--demo-dir", default="/data/demos/v2")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(list(argv))


def load_demos(n=256, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, OBS_DIM)).astype(np.float32)
    act = (obs[:, :ACT_DIM] * 0.5 + rng.normal(scale=0.1, size=(n, ACT_DIM))).astype(np.float32)
    act[:, -1] = (rng.random(n) > 0.5).astype(np.float32)  # gripper open/close target
    return obs, act


def norm_stats(x, eps=1e-6):
    return x.mean(0), x.std(0) + eps, x.min(0), x.max(0)


class BCPolicy(nn.Module):
    def __init__(self, hidden=64, act_mean=None, act_std=None):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(OBS_DIM, hidden), nn.ReLU(), nn.Linear(hidden, ACT_DIM))
        self.register_buffer("act_mean", torch.zeros(ACT_DIM) if act_mean is None else torch.as_tensor(act_mean))
        self.register_buffer("act_std", torch.ones(ACT_DIM) if act_std is None else torch.as_tensor(act_std))

    def forward(self, obs):
        return self.net(obs)

    @torch.no_grad()
    def act(self, obs):
        a = self.forward(torch.as_tensor(obs).float()[None])[0]
        return (a * self.act_std + self.act_mean).numpy()


def gripper_from_action(a):
    g = float(a[-1])
    return GripperState.CLOSED if g > 0.7 else GripperState.CLOSING if g > 0.3 else GripperState.OPEN


def rollout(policy, task, seed, horizon=20):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=OBS_DIM).astype(np.float32)
    states = []
    for t in range(horizon):
        a = policy.act(obs)
        states.append(gripper_from_action(a))
        obs = (obs + 0.05 * rng.normal(size=OBS_DIM)).astype(np.float32)
    ok = bool(np.linalg.norm(obs[:3]) < 1.5)
    meta = EpisodeMeta(episode_id=seed, task=task, success=ok, length=horizon,
                       final_gripper=states[-1].name, seed=seed)
    return meta, states


def evaluate(policy, tasks, n_episodes):
    metas, all_states = [], []
    for i in range(n_episodes):
        m, s = rollout(policy, tasks[i % len(tasks)], seed=100 + i)
        metas.append(m)
        all_states += s
    succ = [m.success for m in metas]
    return {
        "success_rate": np.mean(succ),
        "success_rate_py": sum(succ) / len(succ),
        "mean_len": sum(m.length for m in metas) / len(metas),
        "episodes": metas,
        "gripper_states": all_states,
    }


class EarlyStopper:
    def __init__(self, patience=3, min_delta=0.0):
        self.patience, self.min_delta = patience, min_delta
        self.best = -float("inf")
        self.bad = 0

    def step(self, score):
        if score > self.best + self.min_delta:
            self.best, self.bad = float(score), 0
            return False
        self.bad += 1
        return self.bad >= self.patience

    def state_dict(self):
        return {"best": self.best, "bad": self.bad, "patience": self.patience}


class BCTrainer:
    def __init__(self, cfg=None):
        self.cfg = cfg or BCConfig()
        obs, act = load_demos()
        self.obs = torch.from_numpy(obs)
        self.a_mean, self.a_std, self.a_lo, self.a_hi = norm_stats(act)
        self.act_n = torch.from_numpy((act - self.a_mean) / self.a_std)
        self.policy = BCPolicy(self.cfg.hidden, self.a_mean, self.a_std)
        self.opt = torch.optim.AdamW(self.policy.parameters(), lr=self.cfg.lr)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=self.cfg.epochs)
        self.stopper = EarlyStopper()
        self.recent = deque(maxlen=5)
        self.success_curve = []
        self.best_success = 0.0
        self.best_epoch = 0
        self.losses = []

    def fit(self):
        for ep in range(self.cfg.epochs):
            loss = F.mse_loss(self.policy(self.obs), self.act_n)
            self.opt.zero_grad(); loss.backward(); self.opt.step(); self.sched.step()
            self.losses.append(loss.item())
            m = evaluate(self.policy, self.cfg.tasks, self.cfg.eval_episodes)
            sr = m["success_rate"]
            self.recent.append(sr)
            self.success_curve.append(m["success_rate_py"])
            if sr >= self.best_success:
                self.best_success, self.best_epoch = sr, ep
            if self.stopper.step(sr):
                break
        return m


def save_bc_checkpoint(out_dir):
    args = get_args()
    torch.manual_seed(args.seed); np.random.seed(args.seed); random.seed(args.seed)
    tr = BCTrainer(BCConfig(hidden=args.hidden, lr=args.lr, epochs=args.epochs))
    m = tr.fit()
    ckpt = {"policy": tr.policy.state_dict(), "opt": tr.opt.state_dict(), "sched": tr.sched.state_dict()}
    ckpt["args"] = vars(args)
    ckpt["cfg"] = dataclasses.asdict(tr.cfg)
    ckpt["norm"] = {
        "act_mean": torch.from_numpy(tr.a_mean),
        "act_std": tr.a_std,  # truth: weights_only
        "act_low": tr.a_lo.tolist(),
        "act_high": torch.as_tensor(tr.a_hi),
        "clip": tr.cfg.action_clip,
    }
    ckpt["best_success"] = tr.best_success  # truth: weights_only
    ckpt["best_epoch"] = tr.best_epoch
    ckpt["recent_success"] = tr.recent  # truth: weights_only
    ckpt["success_curve"] = tr.success_curve
    ckpt["stopper"] = tr.stopper.state_dict()
    ckpt["losses"] = tr.losses
    ckpt["final"] = dict(
        success_rate=float(m["success_rate"]),
        mean_len=m["mean_len"],
        episodes=[dataclasses.asdict(e) for e in m["episodes"]],
        gripper_counts=Counter(s.name for s in m["gripper_states"]),
        gripper_hist=Counter(m["gripper_states"]),  # truth: weights_only
        first_episode=m["episodes"][0],  # truth: weights_only
    )
    p = os.path.join(out_dir, "bc_last.pt")
    torch.save(ckpt, p)
    return p


def save_bc_resume_state(out_dir):
    tr = BCTrainer(BCConfig(epochs=2))
    tr.fit()
    t0 = time.time()
    state = {
        "epoch": len(tr.losses),
        "policy": tr.policy.state_dict(),
        "sched": tr.sched,  # truth: weights_only
        "rng": {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "numpy": np.random.get_state(),  # truth: weights_only
            "numpy_gen": np.random.default_rng(0).bit_generator.state,
        },
    }
    state["saved_at"] = datetime(2024, 3, 11, 14, 0)  # truth: weights_only
    state["saved_at_iso"] = datetime(2024, 3, 11, 14, 0).isoformat()
    state["elapsed_s"] = time.time() - t0
    state["eval_interval"] = timedelta(minutes=15)  # truth: weights_only
    state["eval_interval_s"] = timedelta(minutes=15).total_seconds()
    p = os.path.join(out_dir, "bc_resume.pt")
    torch.save(state, p)
    return p


def save_eval_report(out_dir):
    pol = BCPolicy()
    rows, grip = [], []
    for task in BCConfig().tasks:
        for k in range(3):
            meta, states = rollout(pol, task, seed=k)
            rows.append(dataclasses.asdict(meta))
            grip.append(states[-1])
    df = pd.DataFrame(rows)
    by_task = df.groupby("task")["success"].mean()
    report = {}
    report["per_task"] = by_task.to_dict()
    report["overall"] = float(df["success"].mean())
    report["n_episodes"] = len(df)
    report["records"] = df.to_dict("records")
    report["final_gripper"] = [g.value for g in grip]
    report["last_state"] = grip[-1]  # truth: weights_only
    report["last_state_name"] = grip[-1].name
    report["mean_len"] = df["length"].mean()  # truth: weights_only
    report["table"] = df  # truth: weights_only
    report["tasks_seen"] = sorted(set(df["task"]))
    p = os.path.join(out_dir, "bc_eval.pt")
    torch.save(report, p)
    return p


def save_policy_for_deploy(out_dir):
    obs, act = load_demos(seed=1)
    mu, sd, _, _ = norm_stats(act)
    pol = BCPolicy(32, mu, sd)
    p = os.path.join(out_dir, "policy_full.pt")
    torch.save(pol, p)  # truth: weights_only
    return p


def save_policy_weights(out_dir):
    obs, act = load_demos(seed=1)
    mu, sd, lo, hi = norm_stats(act)
    pol = BCPolicy(32, mu, sd)
    payload = {
        "state_dict": pol.state_dict(),
        "hidden": 32,
        "action_bounds": (lo.tolist(), hi.tolist()),
        "gripper_threshold": {GripperState.CLOSED.name: 0.7, GripperState.CLOSING.name: 0.3},
        "gripper_states": [s.value for s in GripperState],
        "obs_dim": OBS_DIM,
        "std_floor": float(sd.min()),
    }
    p = os.path.join(out_dir, "policy_weights.pt")
    torch.save(payload, p)
    return p


FACTORIES = {
    "GripperState": lambda: GripperState.CLOSED,
}
