"""Multi-agent RL for traffic-signal control on a small grid (one agent per intersection).

Independent DQN agents with parameter sharing option, a toy queue-based grid simulator,
and a YAML/OmegaConf config like the CityFlow / SUMO-RL baselines.  Agents come from a
registry; the runner fills per-episode metric dicts in its loop and writes checkpoints.
"""
import enum
import os
import random
import statistics
from collections import deque

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn as nn
import yaml
from omegaconf import OmegaConf

CONFIG_YAML = """
env:
  rows: 2
  cols: 2
  phases: [NS_green, EW_green, NS_left, EW_left]
  max_queue: 20
  arrival_rate: 0.3
  episode_len: 40
agent:
  name: dqn
  hidden: 64
  gamma: 0.95
  lr: 0.001
  buffer_size: 2000
  batch_size: 32
  target_every: 50
explore:
  eps_start: 1.0
  eps_end: 0.05
  decay_steps: 400
train:
  episodes: 3
  seed: 3
  share_params: false
run_dir: runs/${agent.name}_${env.rows}x${env.cols}
"""


class PhaseMode(enum.IntEnum):
    FIXED = 0
    CYCLIC = 1
    ACYCLIC = 2


def load_config(overrides=()):
    base = OmegaConf.create(yaml.safe_load(CONFIG_YAML))
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


class GridTrafficEnv:
    """Each intersection has 4 incoming queues; the chosen phase discharges two of them."""

    def __init__(self, rows=2, cols=2, n_phases=4, max_queue=20, arrival_rate=0.3, episode_len=40, seed=0):
        self.rows, self.cols, self.n_phases = rows, cols, n_phases
        self.max_queue, self.arrival_rate, self.episode_len = max_queue, arrival_rate, episode_len
        self.agent_ids = [f"tl_{r}_{c}" for r in range(rows) for c in range(cols)]
        self.rng = np.random.default_rng(seed)
        self.queues = np.zeros((len(self.agent_ids), 4), dtype=np.int64)
        self.t = np.int64(0)
        self.vehicles_out = 0

    def adjacency(self):
        n = len(self.agent_ids)
        rows, cols = [], []
        for i in range(n):
            r, c = divmod(i, self.cols)
            for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
                rr, cc = r + dr, c + dc
                if 0 <= rr < self.rows and 0 <= cc < self.cols:
                    rows.append(i)
                    cols.append(rr * self.cols + cc)
        return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, n))

    def reset(self):
        self.queues[:] = self.rng.integers(0, 5, size=self.queues.shape)
        self.t = np.int64(0)
        self.vehicles_out = 0
        return {aid: self._obs(i) for i, aid in enumerate(self.agent_ids)}

    def _obs(self, i):
        return (self.queues[i] / self.max_queue).astype(np.float32)

    def step(self, actions):
        rewards = {}
        for i, aid in enumerate(self.agent_ids):
            lanes = (0, 1) if actions[aid] % 2 == 0 else (2, 3)
            served = np.minimum(self.queues[i, list(lanes)], 3)
            self.queues[i, list(lanes)] -= served
            self.vehicles_out += int(served.sum())
            self.queues[i] += self.rng.random(4) < self.arrival_rate
            np.clip(self.queues[i], 0, self.max_queue, out=self.queues[i])
            rewards[aid] = -float(self.queues[i].sum())
        self.t += 1
        obs = {aid: self._obs(i) for i, aid in enumerate(self.agent_ids)}
        return obs, rewards, bool(self.t >= self.episode_len)


class QNet(nn.Module):
    def __init__(self, obs_dim=4, n_actions=4, hidden=64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_actions))

    def forward(self, x):
        return self.net(x)


AGENTS = {}


def register_agent(name):
    def deco(cls):
        AGENTS[name] = cls
        return cls
    return deco


@register_agent("dqn")
class DQNAgent:
    def __init__(self, obs_dim=4, n_actions=4, hidden=64, gamma=0.95, lr=1e-3, buffer_size=2000, batch_size=32):
        self.q = QNet(obs_dim, n_actions, hidden)
        self.target = QNet(obs_dim, n_actions, hidden)
        self.target.load_state_dict(self.q.state_dict())
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=lr)
        self.buffer = deque(maxlen=buffer_size)
        self.gamma, self.batch_size, self.n_actions = gamma, batch_size, n_actions
        self.updates = 0

    def act(self, obs, eps):
        if random.random() < eps:
            return random.randrange(self.n_actions)
        with torch.no_grad():
            return int(self.q(torch.from_numpy(obs)).argmax())

    def learn(self):
        if len(self.buffer) < self.batch_size:
            return None
        batch = random.sample(list(self.buffer), self.batch_size)
        o, a, r, o2, d = (torch.as_tensor(np.array(x)) for x in zip(*batch))
        q = self.q(o).gather(1, a.long().unsqueeze(1)).squeeze(1)
        with torch.no_grad():
            target = r.float() + self.gamma * (1 - d.float()) * self.target(o2).max(1).values
        loss = nn.functional.smooth_l1_loss(q, target)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.updates += 1
        return loss.item()

    def sync(self):
        self.target.load_state_dict(self.q.state_dict())


def build_agents(cfg, agent_ids):
    cls = AGENTS[cfg.agent.name]
    kwargs = dict(hidden=cfg.agent.hidden, gamma=cfg.agent.gamma, lr=cfg.agent.lr,
                  buffer_size=cfg.agent.buffer_size, batch_size=cfg.agent.batch_size,
                  n_actions=len(cfg.env.phases))
    if cfg.train.share_params:
        shared = cls(**kwargs)
        return {aid: shared for aid in agent_ids}
    return {aid: cls(**kwargs) for aid in agent_ids}


class MARLRunner:
    def __init__(self, cfg=None):
        self.cfg = cfg if cfg is not None else load_config()
        random.seed(self.cfg.train.seed)
        torch.manual_seed(self.cfg.train.seed)
        e = self.cfg.env
        self.env = GridTrafficEnv(e.rows, e.cols, len(e.phases), e.max_queue, e.arrival_rate,
                                  e.episode_len, seed=self.cfg.train.seed)
        self.agents = build_agents(self.cfg, self.env.agent_ids)
        self.global_step = 0
        self.episode_returns = []
        self.metrics = {"mean_queue": [], "throughput": [], "loss": []}

    def epsilon(self):
        x = self.cfg.explore
        return np.interp(self.global_step, [0, x.decay_steps], [x.eps_start, x.eps_end])

    def epsilon_linear(self):
        x = self.cfg.explore
        return max(x.eps_end, x.eps_start - self.global_step * (x.eps_start - x.eps_end) / x.decay_steps)

    def run_episode(self):
        obs = self.env.reset()
        done, ep_ret, queues, losses = False, np.zeros(len(self.env.agent_ids)), [], []
        while not done:
            eps = self.epsilon_linear()
            actions = {aid: self.agents[aid].act(obs[aid], eps) for aid in self.env.agent_ids}
            nxt, rewards, done = self.env.step(actions)
            for i, aid in enumerate(self.env.agent_ids):
                self.agents[aid].buffer.append((obs[aid], actions[aid], rewards[aid], nxt[aid], done))
                ep_ret[i] += rewards[aid]
                loss = self.agents[aid].learn()
                if loss is not None:
                    losses.append(loss)
            queues.append(float(self.env.queues.mean()))
            self.global_step += 1
            if self.global_step % self.cfg.agent.target_every == 0:
                for agent in self.agents.values():
                    agent.sync()
            obs = nxt
        self.episode_returns.append(ep_ret)
        self.metrics["mean_queue"].append(statistics.mean(queues))
        self.metrics["throughput"].append(self.env.vehicles_out / max(int(self.env.t), 1))
        self.metrics["loss"].append(statistics.fmean(losses) if losses else float("nan"))
        return ep_ret

    def train(self, episodes=None):
        for _ in range(episodes or self.cfg.train.episodes):
            self.run_episode()
        return self.metrics

    def agent_states(self):
        return {aid: {"q": a.q.state_dict(), "target": a.target.state_dict(), "optim": a.optimizer.state_dict()}
                for aid, a in self.agents.items()}


FACTORIES = {
    "PhaseMode": lambda: PhaseMode.CYCLIC,
    "MARLRunner": lambda: MARLRunner(load_config(["train.episodes=1"])),
}


def save_marl_checkpoint(tmpdir):
    cfg = load_config(["train.episodes=2"])
    runner = MARLRunner(cfg)
    metrics = runner.train()
    ckpt = {
        "agents": runner.agent_states(),
        "global_step": runner.global_step,
        "config": cfg,  # truth: weights_only
        "config_dict": OmegaConf.to_container(cfg, resolve=True),
        "agent_cfg": cfg.agent,  # truth: weights_only
        "phases": cfg.env.phases,  # truth: weights_only
        "phase_names": list(cfg.env.phases),
        "run_dir": cfg.run_dir,
        "gamma": cfg.agent.gamma,
        "metrics": {k: [float(v) for v in vals] for k, vals in metrics.items()},
    }
    path = os.path.join(tmpdir, "marl.pt")
    torch.save(ckpt, path)
    return path


def save_exploration_state(tmpdir):
    runner = MARLRunner(load_config(["train.episodes=1"]))
    runner.train()
    state = {"global_step": runner.global_step}
    state["epsilon"] = runner.epsilon()  # truth: weights_only
    state["epsilon_linear"] = runner.epsilon_linear()
    state["env_rng"] = runner.env.rng  # truth: weights_only
    state["env_rng_state"] = runner.env.rng.bit_generator.state
    state["py_rng"] = random.getstate()
    state["torch_rng"] = torch.get_rng_state()
    state["sample_seed"] = np.random.randint(1 << 30)
    state["replay"] = {
        "tl_0_0": runner.agents["tl_0_0"].buffer,  # truth: weights_only
        "size": len(runner.agents["tl_0_0"].buffer),
        "maxlen": runner.agents["tl_0_0"].buffer.maxlen,
    }
    path = os.path.join(tmpdir, "explore.pt")
    torch.save(state, path)
    return path


def save_eval_report(tmpdir):
    runner = MARLRunner(load_config(["train.episodes=2"]))
    runner.train()
    returns = np.stack(runner.episode_returns)
    report = {}
    for name, values in runner.metrics.items():
        report[name] = [round(v, 3) for v in values]
    report["final"] = {"queue": runner.metrics["mean_queue"][-1], "throughput": runner.metrics["throughput"][-1]}
    report["per_agent_return"] = returns.sum(axis=0)  # truth: weights_only
    report["per_agent_return_list"] = returns.sum(axis=0).tolist()
    report["mean_return"] = np.mean(returns)  # truth: weights_only
    report["best_agent"] = runner.env.agent_ids[int(returns.sum(axis=0).argmax())]
    report["throughput_rate"] = runner.env.vehicles_out / runner.env.t  # truth: weights_only
    report["throughput_py"] = runner.env.vehicles_out / int(runner.env.t)
    report["queue_median"] = statistics.median(runner.metrics["mean_queue"])
    report["n_updates"] = sum(a.updates for a in runner.agents.values())
    path = os.path.join(tmpdir, "eval.pt")
    torch.save(report, path)
    return path


def save_graph_policy(tmpdir):
    cfg = load_config(["train.share_params=true", "train.episodes=1"])
    runner = MARLRunner(cfg)
    runner.train()
    adj = runner.env.adjacency()
    coo = adj.tocoo()
    boundary = {aid for i, aid in enumerate(runner.env.agent_ids) if adj[i].nnz < 4}
    shared = runner.agents[runner.env.agent_ids[0]]
    ckpt = dict(
        policy=shared.q.state_dict(),
        agent_ids=runner.env.agent_ids,
        adjacency=adj,  # truth: weights_only
        adjacency_t=torch.sparse_coo_tensor(np.vstack([coo.row, coo.col]), coo.data, size=coo.shape),
        degree=np.asarray(adj.sum(axis=1)).ravel().tolist(),
        boundary=frozenset(boundary),  # truth: weights_only
        boundary_sorted=sorted(boundary),
        phase_mode=PhaseMode.CYCLIC,  # truth: weights_only
        phase_mode_id=int(PhaseMode.CYCLIC),
        edges=list(zip(coo.row.tolist(), coo.col.tolist())),
        grid=(cfg.env.rows, cfg.env.cols),
    )
    path = os.path.join(tmpdir, "graph_policy.pt")
    torch.save(ckpt, path)
    return path


def save_policy_export_clean(tmpdir):
    cfg = load_config(["train.episodes=1"])
    runner = MARLRunner(cfg)
    metrics = runner.train()
    raw = yaml.safe_load(CONFIG_YAML)
    export = {
        "policies": {aid: a.q.state_dict() for aid, a in runner.agents.items()},
        "obs_dim": 4,
        "n_actions": len(cfg.env.phases),
        "phases": OmegaConf.to_container(cfg.env.phases),
        "env": OmegaConf.to_container(cfg.env),
        "raw_yaml": raw,
        "yaml_text": OmegaConf.to_yaml(cfg),
        "mean_queue": metrics["mean_queue"][-1],
        "loss": metrics["loss"][-1],
        "steps": runner.global_step,
        "phase_mode": PhaseMode.ACYCLIC.value,
        "device": torch.device("cpu"),
        "dtype": torch.float32,
    }
    path = os.path.join(tmpdir, "policy_export.pt")
    torch.save(export, path)
    return path
