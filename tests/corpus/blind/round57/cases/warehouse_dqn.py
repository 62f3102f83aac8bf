"""Warehouse robot path planning with DQN on a grid world.

A single robot fetches from shelf cells to a pick station while avoiding racks. The config is
YAML loaded through OmegaConf (as with Hydra); policies are looked up in a registry.
"""
import collections
import enum
import math
import os
import random
from collections import ChainMap, deque
from functools import partial

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from omegaconf import OmegaConf

CONFIG_YAML = """
env:
  name: warehouse-8x8
  height: 8
  width: 8
  rack_density: 0.2
  max_steps: 40
  goals: [[7, 7], [0, 7], [7, 0]]
  seed: 3
reward:
  step: -0.01
  collision: -0.5
  goal: 1.0
agent:
  policy: dqn
  gamma: 0.97
  lr: 0.001
  hidden: [64, 64]
  buffer_size: 500
  batch_size: 16
  eps_start: 1.0
  eps_end: 0.05
  eps_decay_steps: 200
  target_update: 25
train:
  episodes: 4
  log_every: 2
"""


def load_config(overrides=()):
    base = OmegaConf.create(yaml.safe_load(CONFIG_YAML))
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


class Action(enum.IntEnum):
    STAY = 0
    UP = 1
    DOWN = 2
    LEFT = 3
    RIGHT = 4


MOVES = {Action.STAY: (0, 0), Action.UP: (-1, 0), Action.DOWN: (1, 0), Action.LEFT: (0, -1), Action.RIGHT: (0, 1)}

POLICIES = {}


def register_policy(name):
    def deco(cls):
        POLICIES[name] = cls
        return cls
    return deco


# ----------------------------------------------------------------------------- environment

class GridWarehouse:
    def __init__(self, env_cfg=None, reward_cfg=None):
        cfg = env_cfg if env_cfg is not None else load_config().env
        self.reward_cfg = dict(reward_cfg) if reward_cfg is not None else {"step": -0.01, "collision": -0.5, "goal": 1.0}
        self.height, self.width = int(cfg.height), int(cfg.width)
        rng = np.random.default_rng(int(cfg.seed))
        self.grid = (rng.random((self.height, self.width)) < float(cfg.rack_density)).astype(np.int8)
        self.goals = [tuple(g) for g in OmegaConf.to_container(cfg.goals)]
        for r, c in self.goals:
            self.grid[r, c] = 0
        self.grid[0, 0] = 0
        self.max_steps = int(cfg.max_steps)
        self.free_cells = np.argwhere(self.grid == 0)
        self.reset()

    def reset(self, goal_idx=0):
        self.robot = tuple(self.free_cells[0])
        self.goal = self.goals[goal_idx % len(self.goals)]
        self.t = 0
        self.collisions = 0
        return self.observe()

    def observe(self):
        obs = np.zeros((3, self.height, self.width), dtype=np.float32)
        obs[0] = self.grid
        obs[1][self.robot] = 1.0
        obs[2][self.goal] = 1.0
        return obs

    def step(self, action):
        dr, dc = MOVES[Action(action)]
        r, c = self.robot[0] + dr, self.robot[1] + dc
        reward = self.reward_cfg["step"]
        if not (0 <= r < self.height and 0 <= c < self.width) or self.grid[r, c]:
            reward += self.reward_cfg["collision"]
            self.collisions += 1
        else:
            self.robot = (r, c)
        self.t += 1
        done = self.robot == tuple(self.goal)
        if done:
            reward += self.reward_cfg["goal"]
        return self.observe(), reward, done or self.t >= self.max_steps, done

    def distance_to_goal(self):
        return np.linalg.norm(np.subtract(self.robot, self.goal))


def shaped_reward(env, scale=0.1):
    return -scale * env.distance_to_goal()


# ----------------------------------------------------------------------------- agent

class QNetwork(nn.Module):
    def __init__(self, in_ch=3, height=8, width=8, hidden=(64, 64), n_actions=5):
        super().__init__()
        layers, d = [nn.Flatten()], in_ch * height * width
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        layers.append(nn.Linear(d, n_actions))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


@register_policy("dqn")
class DQNAgent:
    def __init__(self, cfg=None, obs_shape=(3, 8, 8)):
        self.cfg = cfg if cfg is not None else load_config().agent
        hidden = tuple(self.cfg.hidden)
        self.q_net = QNetwork(obs_shape[0], obs_shape[1], obs_shape[2], hidden, len(Action))
        self.target_net = QNetwork(obs_shape[0], obs_shape[1], obs_shape[2], hidden, len(Action))
        self.target_net.load_state_dict(self.q_net.state_dict())
        self.optimizer = torch.optim.Adam(self.q_net.parameters(), lr=self.cfg.lr)
        self.buffer = deque(maxlen=int(self.cfg.buffer_size))
        self.rng = np.random.default_rng(0)
        self.steps = 0
        self.epsilon = float(self.cfg.eps_start)
        self.losses = []

    def act(self, obs):
        self.epsilon = np.interp(self.steps, [0, self.cfg.eps_decay_steps], [self.cfg.eps_start, self.cfg.eps_end])
        self.steps += 1
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(len(Action)))
        with torch.no_grad():
            return int(self.q_net(torch.from_numpy(obs)[None]).argmax())

    def remember(self, *transition):
        self.buffer.append(transition)

    def learn(self):
        if len(self.buffer) < self.cfg.batch_size:
            return None
        idx = self.rng.choice(len(self.buffer), size=self.cfg.batch_size, replace=False)
        obs, act, rew, nxt, done = zip(*(self.buffer[i] for i in idx))
        obs, nxt = torch.from_numpy(np.stack(obs)), torch.from_numpy(np.stack(nxt))
        act, rew = torch.tensor(act), torch.tensor(rew, dtype=torch.float32)
        done = torch.tensor(done, dtype=torch.float32)
        q = self.q_net(obs).gather(1, act[:, None]).squeeze(1)
        with torch.no_grad():
            target = rew + self.cfg.gamma * (1 - done) * self.target_net(nxt).max(1).values
        loss = F.smooth_l1_loss(q, target)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        if self.steps % self.cfg.target_update == 0:
            self.target_net.load_state_dict(self.q_net.state_dict())
        self.losses.append(loss.item())
        return loss.item()


def run_episodes(cfg, n_episodes=None, shaping=None):
    env = GridWarehouse(cfg.env, cfg.reward)
    agent = POLICIES[cfg.agent.policy](cfg.agent, env.observe().shape)
    stats = collections.defaultdict(list)
    for ep in range(n_episodes or cfg.train.episodes):
        obs, done, ret, reached = env.reset(ep), False, 0.0, False
        while not done:
            a = agent.act(obs)
            nxt, r, done, reached = env.step(a)
            if shaping is not None:
                r += shaping(env)
            agent.remember(obs, a, r, nxt, float(reached))
            agent.learn()
            obs, ret = nxt, ret + r
        stats["return"].append(ret)
        stats["success"].append(reached)
        stats["collisions"].append(env.collisions)
        stats["length"].append(env.t)
    return env, agent, stats


# ----------------------------------------------------------------------------- checkpoints

def save_dqn_checkpoint(tmpdir):
    cfg = load_config(["train.episodes=2"])
    env, agent, stats = run_episodes(cfg)
    ckpt = {
        "q_net": agent.q_net.state_dict(),
        "target_net": agent.target_net.state_dict(),
        "optimizer": agent.optimizer.state_dict(),
        "global_step": agent.steps,
        "epsilon": agent.epsilon,  # truth: weights_only
        "cfg_dict": OmegaConf.to_container(cfg, resolve=True),
        "mean_loss": sum(agent.losses) / max(1, len(agent.losses)),
    }
    path = os.path.join(tmpdir, "dqn.pt")
    torch.save(ckpt, path)
    return path


def save_env_snapshot(tmpdir):
    cfg = load_config()
    env = GridWarehouse(cfg.env, cfg.reward)
    env.reset(goal_idx=1)
    snap = {}
    snap["grid"] = env.grid  # truth: weights_only
    snap["grid_tensor"] = torch.from_numpy(env.grid.copy())
    snap["grid_shape"] = env.grid.shape
    snap["robot"] = env.robot  # truth: weights_only
    snap["goal"] = env.goal
    snap["goals"] = list(cfg.env.goals)  # truth: weights_only
    snap["goals_plain"] = OmegaConf.to_container(cfg.env.goals)
    snap["free_cells"] = env.free_cells.tolist()
    snap["n_racks"] = int(env.grid.sum())
    snap["reward"] = dict(cfg.reward)
    snap["agent_hidden"] = tuple(cfg.agent.hidden)
    path = os.path.join(tmpdir, "env_snapshot.pt")
    torch.save(snap, path)
    return path


def save_replay_checkpoint(tmpdir):
    cfg = load_config(["agent.buffer_size=64"])
    env, agent, stats = run_episodes(cfg, n_episodes=1)
    ckpt = dict(
        q_net=agent.q_net.state_dict(),
        replay=agent.buffer,  # truth: weights_only
        replay_len=len(agent.buffer),
        rng_state=agent.rng.bit_generator.state,
        rng=agent.rng,  # truth: weights_only
        env_cfg=cfg.env,  # truth: weights_only
        python_rng=random.getstate(),
    )
    ckpt["replay_sample"] = [
        (torch.from_numpy(o), int(a), float(r)) for o, a, r, _, _ in list(agent.buffer)[:4]
    ]
    path = os.path.join(tmpdir, "replay.pt")
    torch.save(ckpt, path)
    return path


def save_eval_summary(tmpdir):
    cfg = load_config(["train.episodes=3"])
    shaping = partial(shaped_reward, scale=0.05)
    env, agent, stats = run_episodes(cfg, shaping=shaping)
    summary = {"state_dict": agent.q_net.state_dict()}
    for key, values in stats.items():
        summary[f"mean_{key}"] = float(np.mean(values))
    returns = np.asarray(stats["return"])
    summary["best_return"] = returns.max()  # truth: weights_only
    summary["worst_return"] = min(stats["return"])  # truth: weights_only
    summary["median_return"] = float(np.median(returns))
    summary["success_rate"] = sum(stats["success"]) / len(stats["success"])
    summary["total_collisions"] = sum(stats["collisions"])
    summary["final_distance"] = env.distance_to_goal()  # truth: weights_only
    summary["final_distance_l1"] = math.dist(env.robot, env.goal)
    summary["episodes"] = len(stats["return"])
    path = os.path.join(tmpdir, "eval_summary.pt")
    torch.save(summary, path)
    return path


def save_policy_bundle(tmpdir):
    cfg = load_config()
    name = cfg.agent.policy
    policy_cls = POLICIES[name]
    agent = policy_cls(cfg.agent)
    overrides = ChainMap({"gamma": 0.99}, OmegaConf.to_container(cfg.agent))
    bundle = {
        "policy_name": name,
        "policy_cls": policy_cls,  # truth: weights_only
        "policy_qualname": policy_cls.__qualname__,
        "state_dict": agent.q_net.state_dict(),
        "action_space": range(len(Action)),  # truth: weights_only
        "action_names": [a.name for a in Action],
        "moves": {int(a): m for a, m in MOVES.items()},
        "agent_overrides": overrides,  # truth: weights_only
        "agent_overrides_flat": dict(overrides),
        "device": torch.device("cpu"),
    }
    path = os.path.join(tmpdir, "policy_bundle.pt")
    torch.save(bundle, path)
    return path


def save_deploy_export(tmpdir):
    """What the fleet controller loads: plain types only."""
    cfg = load_config(["train.episodes=1"])
    env, agent, stats = run_episodes(cfg)
    export = {
        "q_net": agent.q_net.state_dict(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "hidden": list(cfg.agent.hidden),
        "gamma": cfg.agent.gamma,
        "epsilon": float(agent.epsilon),
        "obs_shape": env.observe().shape,
        "grid": env.grid.tolist(),
        "robot": [int(v) for v in env.robot],
        "return": stats["return"][-1],
        "reached": bool(stats["success"][-1]),
        "collision_hist": dict(collections.Counter(stats["collisions"])),
        "eps_schedule": (cfg.agent.eps_start, cfg.agent.eps_end, cfg.agent.eps_decay_steps),
        "last_action": int(Action.RIGHT),
    }
    path = os.path.join(tmpdir, "deploy.pt")
    torch.save(export, path)
    return path


FACTORIES = {
    "Action": lambda: Action(1),
}
