"""Pick-path optimisation in a rectangular warehouse with DQN.

A picker starts at the depot, walks the aisles and has to collect every item of the current
order (one SKU per slot). Reward: +pick_reward per pick, step_penalty per move, a bonus for
returning to the depot with the full order. The agent is chosen from AGENT_REGISTRY by the
`agent.name` key of the YAML config; the nearest-neighbour heuristic is the baseline.
"""
import os
import random
import statistics
from collections import Counter, deque

import numpy as np
import torch
import torch.nn as nn
from omegaconf import OmegaConf

CONFIG_YAML = """
env:
  rows: 7
  cols: 9
  aisle_every: 3
  items_per_order: 3
  max_steps: 60
  step_penalty: -0.05
  pick_reward: 1.0
  return_bonus: 2.0
  seed: 3
agent:
  name: dqn
  hidden: 64
  gamma: 0.97
  lr: 0.001
  eps_start: 1.0
  eps_end: 0.05
  eps_decay_steps: 300
  buffer_size: 2000
  batch_size: 32
  target_sync: 50
train:
  episodes: 6
  eval_episodes: 3
  run_dir: ${oc.env:PICKPATH_RUN_DIR,runs/pickpath}
"""

MOVES = {0: (-1, 0), 1: (1, 0), 2: (0, -1), 3: (0, 1)}
PICK = 4
ACTION_NAMES = ["up", "down", "left", "right", "pick"]

AGENT_REGISTRY = {}


def register_agent(name):
    def deco(cls):
        AGENT_REGISTRY[name] = cls
        return cls
    return deco


def load_config(overrides=()):
    base = OmegaConf.create(CONFIG_YAML)
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


class WarehouseEnv:
    """Shelves fill the grid; every `aisle_every`-th column and the first/last rows are walkable."""

    def __init__(self, rows=7, cols=9, aisle_every=3, items_per_order=3, max_steps=60,
                 step_penalty=-0.05, pick_reward=1.0, return_bonus=2.0, seed=0):
        self.rows, self.cols = rows, cols
        self.items_per_order = items_per_order
        self.max_steps = max_steps
        self.step_penalty, self.pick_reward, self.return_bonus = step_penalty, pick_reward, return_bonus
        self.rng = np.random.default_rng(seed)
        grid = np.ones((rows, cols), dtype=np.int8)
        grid[:, ::aisle_every] = 0
        grid[0, :] = 0
        grid[-1, :] = 0
        self.grid = grid
        self.depot = (rows - 1, 0)
        walk = np.argwhere(grid == 0)
        self.slots = [tuple(p) for p in walk if self._next_to_shelf(p)]
        self.slot_of = {f"SKU-{i:04d}": p for i, p in enumerate(self.slots)}
        self.reset()

    def _next_to_shelf(self, p):
        r, c = p
        return any(0 <= c + d < self.cols and self.grid[r, c + d] == 1 for d in (-1, 1))

    @property
    def obs_dim(self):
        return self.rows * self.cols * 2

    def reset(self):
        idx = self.rng.choice(len(self.slots), size=self.items_per_order, replace=False)
        self.order = {self.slots[i] for i in idx}
        self.pos = self.depot
        self.t = 0
        return self.observe()

    def observe(self):
        obs = np.zeros((2, self.rows, self.cols), dtype=np.float32)
        obs[0][self.pos] = 1.0
        for p in self.order:
            obs[1][p] = 1.0
        return obs.ravel()

    def step(self, action):
        self.t += 1
        reward = self.step_penalty
        if action == PICK:
            if self.pos in self.order:
                self.order.discard(self.pos)
                reward += self.pick_reward
        else:
            dr, dc = MOVES[action]
            r, c = self.pos[0] + dr, self.pos[1] + dc
            if 0 <= r < self.rows and 0 <= c < self.cols and self.grid[r, c] == 0:
                self.pos = (r, c)
        done = (not self.order and self.pos == self.depot) or self.t >= self.max_steps
        if not self.order and self.pos == self.depot:
            reward += self.return_bonus
        return self.observe(), reward, done


def make_env(env_cfg):
    return WarehouseEnv(**OmegaConf.to_container(env_cfg, resolve=True))


class QNet(nn.Module):
    def __init__(self, obs_dim, n_actions, hidden=64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, n_actions))

    def forward(self, x):
        return self.net(x)


@register_agent("dqn")
class DQNAgent:
    def __init__(self, obs_dim, n_actions, cfg):
        self.cfg = cfg
        self.n_actions = n_actions
        self.q_net = QNet(obs_dim, n_actions, cfg.hidden)
        self.target_net = QNet(obs_dim, n_actions, cfg.hidden)
        self.target_net.load_state_dict(self.q_net.state_dict())
        self.optimizer = torch.optim.Adam(self.q_net.parameters(), lr=cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=0.999)
        self.buffer = deque(maxlen=cfg.buffer_size)
        self.global_step = 0
        self.updates = 0
        self.rng = np.random.default_rng(0)

    def epsilon(self):
        frac = min(1.0, self.global_step / self.cfg.eps_decay_steps)
        return self.cfg.eps_start + frac * (self.cfg.eps_end - self.cfg.eps_start)

    def act(self, obs, greedy=False):
        if not greedy and self.rng.random() < self.epsilon():
            return int(self.rng.integers(self.n_actions))
        with torch.no_grad():
            return int(self.q_net(torch.from_numpy(obs)).argmax())

    def remember(self, *transition):
        self.buffer.append(transition)
        self.global_step += 1

    def update(self):
        if len(self.buffer) < self.cfg.batch_size:
            return None
        idx = self.rng.choice(len(self.buffer), size=self.cfg.batch_size, replace=False)
        obs, act, rew, nxt, done = map(np.asarray, zip(*[self.buffer[i] for i in idx]))
        obs, nxt = torch.from_numpy(obs), torch.from_numpy(nxt)
        q = self.q_net(obs).gather(1, torch.from_numpy(act).long().unsqueeze(1)).squeeze(1)
        with torch.no_grad():
            target = torch.from_numpy(rew).float() + self.cfg.gamma * (1 - torch.from_numpy(done).float()) \
                * self.target_net(nxt).max(1).values
        loss = nn.functional.smooth_l1_loss(q, target)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.updates += 1
        if self.updates % self.cfg.target_sync == 0:
            self.target_net.load_state_dict(self.q_net.state_dict())
        return loss.item()


@register_agent("nearest")
class NearestPickHeuristic:
    """Walk to the closest remaining item (Manhattan distance through the aisles ignored)."""

    def __init__(self, env):
        self.env = env

    def act(self, obs, greedy=True):
        env = self.env
        if env.pos in env.order:
            return PICK
        target = min(env.order, key=lambda p: abs(p[0] - env.pos[0]) + abs(p[1] - env.pos[1])) \
            if env.order else env.depot
        dr, dc = target[0] - env.pos[0], target[1] - env.pos[1]
        if dc and env.grid[env.pos[0], env.pos[1] + (1 if dc > 0 else -1)] == 0:
            return 3 if dc > 0 else 2
        if dr:
            return 1 if dr > 0 else 0
        return int(self.env.rng.integers(4))


def run_episode(env, agent, learn=False, greedy=False):
    obs, total, actions, losses = env.reset(), 0.0, [], []
    done = False
    while not done:
        a = agent.act(obs, greedy=greedy)
        nxt, r, done = env.step(a)
        if learn:
            agent.remember(obs, a, r, nxt, float(done))
            loss = agent.update()
            if loss is not None:
                losses.append(loss)
        obs, total = nxt, total + r
        actions.append(a)
    return total, env.t, actions, losses


def train_dqn(cfg):
    random.seed(cfg.env.seed)
    np.random.seed(cfg.env.seed)
    torch.manual_seed(cfg.env.seed)
    env = make_env(cfg.env)
    agent = AGENT_REGISTRY[cfg.agent.name](env.obs_dim, len(ACTION_NAMES), cfg.agent)
    returns, lengths, all_actions = [], [], []
    for _ in range(cfg.train.episodes):
        ret, steps, actions, _ = run_episode(env, agent, learn=True)
        returns.append(ret)
        lengths.append(steps)
        all_actions.extend(actions)
    return env, agent, returns, lengths, np.asarray(all_actions)


def save_dqn_checkpoint(tmpdir):
    cfg = load_config([f"train.run_dir={tmpdir}"])
    env, agent, returns, lengths, _ = train_dqn(cfg)
    ckpt = {}
    ckpt["q_net"] = agent.q_net.state_dict()
    ckpt["target_net"] = agent.target_net  # truth: weights_only
    ckpt["optimizer"] = agent.optimizer.state_dict()
    ckpt["scheduler"] = agent.scheduler.state_dict()
    ckpt["global_step"] = agent.global_step
    ckpt["epsilon"] = agent.epsilon()
    ckpt["cfg"] = cfg  # truth: weights_only
    ckpt["agent_cfg"] = OmegaConf.to_container(cfg.agent, resolve=True)
    ckpt["returns"] = returns
    ckpt["best_return"] = max(returns)
    ckpt["mean_return"] = float(np.mean(returns))
    ckpt["episode_len"] = statistics.mean(lengths)
    path = os.path.join(cfg.train.run_dir, f"dqn_{agent.global_step:06d}.pt")
    torch.save(ckpt, path)
    return path


def save_replay_buffer(tmpdir):
    cfg = load_config(["train.episodes=3"])
    _, agent, _, _, _ = train_dqn(cfg)
    obs, act, rew, nxt, done = zip(*agent.buffer)
    replay = {
        "obs": torch.from_numpy(np.stack(obs)),
        "actions": torch.tensor(act, dtype=torch.long),
        "rewards": torch.tensor(rew, dtype=torch.float32),
        "next_obs": torch.from_numpy(np.stack(nxt)),
        "dones": torch.tensor(done),
    }
    state = {"replay": replay, "capacity": agent.buffer.maxlen, "size": len(agent.buffer)}
    state.update({
        "np_rng": np.random.get_state(),  # truth: weights_only
        "py_rng": random.getstate(),
        "torch_rng": torch.get_rng_state(),
        "agent_rng": agent.rng.bit_generator.state,
        "last_transition": agent.buffer[-1],  # truth: weights_only
    })
    path = os.path.join(tmpdir, "replay.pt")
    torch.save(state, path)
    return path


def save_layout(tmpdir):
    cfg = load_config()
    env = make_env(cfg.env)
    aisles = np.flatnonzero((env.grid == 0).all(axis=0))
    layout = {
        "grid": torch.from_numpy(env.grid),
        "shape": env.grid.shape,
        "depot": env.depot,
        "aisle_cols": aisles,  # truth: weights_only
        "aisle_cols_list": aisles.tolist(),
        "slots": env.slots,  # truth: weights_only
        "slot_of_py": {sku: (int(r), int(c)) for sku, (r, c) in env.slot_of.items()},
        "n_slots": len(env.slots),
        "walkable_frac": float((env.grid == 0).mean()),
        "grid_dtype": env.grid.dtype,  # truth: weights_only
        "env_cfg": OmegaConf.to_container(cfg.env),
    }
    torch.save(layout, os.path.join(tmpdir, "layout.pt"))
    return os.path.join(tmpdir, "layout.pt")


def evaluate_agents(cfg, agents, env):
    metrics = {}
    for name, agent in agents.items():
        rets, lens = [], []
        for _ in range(cfg.train.eval_episodes):
            ret, steps, _, _ = run_episode(env, agent, greedy=True)
            rets.append(ret)
            lens.append(steps)
        metrics[f"{name}/return"] = float(np.mean(rets))
        metrics[f"{name}/path_len"] = float(np.mean(lens))
        metrics[f"{name}/completed"] = sum(s < cfg.env.max_steps for s in lens)
    return metrics


def save_eval_report(tmpdir):
    cfg = load_config(["train.episodes=4"])
    env, agent, returns, lengths, actions = train_dqn(cfg)
    agents = {"dqn": agent, "nearest": AGENT_REGISTRY["nearest"](env)}
    metrics = evaluate_agents(cfg, agents, env)
    dqn_len = np.array(lengths, dtype=np.float64)
    gap = metrics["dqn/path_len"] - metrics["nearest/path_len"]
    report = {
        "metrics": metrics,
        "gap_vs_heuristic": gap,
        "relative_gap": gap / max(1.0, metrics["nearest/path_len"]),
        "train_len_std": dqn_len.std(),  # truth: weights_only
        "improving": dqn_len[-1] < dqn_len[0],  # truth: weights_only
        "action_hist": torch.bincount(torch.from_numpy(actions), minlength=len(ACTION_NAMES)),
        "action_counts": dict(Counter(ACTION_NAMES[a] for a in actions.tolist())),
        "agent_cls": AGENT_REGISTRY[cfg.agent.name],  # truth: weights_only
        "agent_name": cfg.agent.name,
        "best_episode": int(np.argmax(returns)),
    }
    path = os.path.join(tmpdir, "eval_report.pt")
    torch.save(report, path)
    return path


def save_policy_export(tmpdir):
    cfg = load_config(["train.episodes=2"])
    env, agent, returns, _, _ = train_dqn(cfg)
    plain = OmegaConf.to_container(cfg, resolve=True)
    export = dict(
        state_dict=agent.q_net.state_dict(),
        obs_dim=env.obs_dim,
        n_actions=len(ACTION_NAMES),
        action_names=ACTION_NAMES,
        hidden=cfg.agent.hidden,
        gamma=cfg.agent.gamma,
        config=plain,
        device=torch.device("cpu"),
        dtype=torch.float32,
        obs_shape=torch.Size([2, env.rows, env.cols]),
        last_return=returns[-1],
        eps_final=round(agent.epsilon(), 4),
    )
    path = os.path.join(tmpdir, "policy.pt")
    torch.save(export, path)
    return path


FACTORIES = {
    "WarehouseEnv": lambda: make_env(load_config().env),
    "QNet": lambda: QNet(126, 5),
    "DQNAgent": lambda: DQNAgent(126, 5, load_config().agent),
    "NearestPickHeuristic": lambda: NearestPickHeuristic(make_env(load_config().env)),
}


if __name__ == "__main__":
    cfg = OmegaConf.merge(load_config(), OmegaConf.from_cli())
    os.makedirs(cfg.train.run_dir, exist_ok=True)
    env, agent, returns, lengths, actions = train_dqn(cfg)
    print(f"mean return {np.mean(returns):.2f}, mean length {np.mean(lengths):.1f}")
