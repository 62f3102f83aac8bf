"""PPO for job-shop scheduling (JSSP) as priority dispatching.

At every decision the agent picks the job whose next operation is dispatched next (earliest
feasible start); the reward is the negative increase of the makespan lower bound, so the return is
minus the final makespan. Configuration is YAML merged with dot-list overrides:

    python jssp_ppo.py env.num_jobs=10 env.num_machines=5 policy.name=attention train.iterations=500
"""
import os
import random
import sys
import time
from collections import deque, namedtuple
from enum import Enum

import networkx as nx
import numpy as np
import torch
import torch.nn as nn
import yaml
from omegaconf import OmegaConf

DEFAULT_CONFIG = """
env:
  num_jobs: 4
  num_machines: 3
  duration_low: 1
  duration_high: 20
  seed: 0
policy:
  name: mlp
  hidden_dims: [64, 64]
  activation: tanh
ppo:
  lr: 3.0e-4
  gamma: 1.0
  gae_lambda: 0.95
  clip_eps: 0.2
  epochs: 2
  minibatch: 32
  entropy_coef: 0.01
  value_coef: 0.5
  max_grad_norm: 0.5
train:
  iterations: 2
  episodes_per_iter: 4
  eval_instances: 3
  log_dir: runs/jssp_ppo
"""

Operation = namedtuple("Operation", ["job", "index", "machine", "duration"])


def load_config(overrides=()):
    base = OmegaConf.create(yaml.safe_load(DEFAULT_CONFIG))
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


def generate_instance(num_jobs, num_machines, low, high, rng):
    """Taillard-style random instance: uniform durations, a random machine order per job."""
    durations = rng.integers(low, high + 1, size=(num_jobs, num_machines))
    machines = np.stack([rng.permutation(num_machines) for _ in range(num_jobs)])
    return durations, machines


def lower_bound(durations, machines):
    job_lb = durations.sum(axis=1).max()
    machine_lb = max(durations[machines == m].sum() for m in range(machines.shape[1]))
    return max(job_lb, machine_lb)


class JobShopEnv:
    def __init__(self, num_jobs=4, num_machines=3, low=1, high=20, seed=0):
        self.num_jobs, self.num_machines = num_jobs, num_machines
        self.low, self.high = low, high
        self.rng = np.random.default_rng(seed)
        self.reset()

    @property
    def obs_dim(self):
        return 4 * self.num_jobs + self.num_machines

    def reset(self, instance=None):
        if instance is None:
            instance = generate_instance(self.num_jobs, self.num_machines, self.low, self.high, self.rng)
        self.durations, self.machines = instance
        self.next_op = np.zeros(self.num_jobs, dtype=np.int64)
        self.job_ready = np.zeros(self.num_jobs, dtype=np.int64)
        self.machine_ready = np.zeros(self.num_machines, dtype=np.int64)
        self.schedule = []          # (job, op index, machine, start, end)
        self.scale = float(self.durations.sum())
        return self.observation()

    def action_mask(self):
        return self.next_op < self.num_machines

    def observation(self):
        done = ~self.action_mask()
        idx = np.minimum(self.next_op, self.num_machines - 1)
        next_dur = np.where(done, 0, self.durations[np.arange(self.num_jobs), idx])
        remaining = np.array([self.durations[j, self.next_op[j]:].sum() for j in range(self.num_jobs)])
        feats = np.concatenate([next_dur, remaining, self.job_ready, self.next_op * self.high,
                                self.machine_ready]) / self.scale
        return torch.as_tensor(feats, dtype=torch.float32)

    def step(self, job):
        k = self.next_op[job]
        m, d = self.machines[job, k], self.durations[job, k]
        before = self.makespan()
        start = max(self.job_ready[job], self.machine_ready[m])
        self.job_ready[job] = self.machine_ready[m] = start + d
        self.schedule.append((job, k, m, start, start + d))
        self.next_op[job] += 1
        reward = -(self.makespan() - before) / self.scale
        return self.observation(), float(reward), not self.action_mask().any()

    def makespan(self):
        return self.machine_ready.max()

    def operations(self):
        return [Operation(j, k, self.machines[j, k], self.durations[j, k])
                for j in range(self.num_jobs) for k in range(self.num_machines)]

    def disjunctive_graph(self):
        """Precedence arcs inside each job plus the machine sequences that the schedule fixed."""
        g = nx.DiGraph()
        for j in range(self.num_jobs):
            for k in range(self.num_machines - 1):
                g.add_edge((j, k), (j, k + 1), weight=self.durations[j, k])
        per_machine = {}
        for job, k, m, start, _ in sorted(self.schedule, key=lambda op: op[3]):
            per_machine.setdefault(m, []).append((job, k))
        for ops in per_machine.values():
            for a, b in zip(ops, ops[1:]):
                g.add_edge(a, b, weight=self.durations[a])
        return g


POLICY_REGISTRY = {}
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}


def register_policy(name):
    def deco(cls):
        POLICY_REGISTRY[name] = cls
        return cls
    return deco


@register_policy("mlp")
class MLPActorCritic(nn.Module):
    def __init__(self, obs_dim=19, num_actions=4, hidden_dims=(64, 64), activation="tanh"):
        super().__init__()
        layers, prev = [], obs_dim
        for h in hidden_dims:
            layers += [nn.Linear(prev, h), ACTIVATIONS[activation]()]
            prev = h
        self.body = nn.Sequential(*layers)
        self.actor = nn.Linear(prev, num_actions)
        self.critic = nn.Linear(prev, 1)

    def forward(self, obs, mask):
        z = self.body(obs)
        logits = self.actor(z).masked_fill(~mask, -1e9)
        return torch.distributions.Categorical(logits=logits), self.critic(z).squeeze(-1)


@register_policy("attention")
class AttentionActorCritic(MLPActorCritic):
    def __init__(self, obs_dim=19, num_actions=4, hidden_dims=(64,), activation="relu"):
        super().__init__(obs_dim, num_actions, hidden_dims, activation)
        self.attn = nn.MultiheadAttention(hidden_dims[-1], num_heads=1, batch_first=True)

    def forward(self, obs, mask):
        z = self.body(obs).unsqueeze(1)
        z = z + self.attn(z, z, z, need_weights=False)[0]
        logits = self.actor(z.squeeze(1)).masked_fill(~mask, -1e9)
        return torch.distributions.Categorical(logits=logits), self.critic(z.squeeze(1)).squeeze(-1)


def build_policy(cfg, obs_dim, num_actions):
    cls = POLICY_REGISTRY[cfg.policy.name]
    return cls(obs_dim, num_actions, hidden_dims=tuple(cfg.policy.hidden_dims), activation=cfg.policy.activation)


class DispatchRule(Enum):
    SPT = "shortest_processing_time"
    MWKR = "most_work_remaining"
    FIFO = "first_in_first_out"


def run_rule(env, rule, instance):
    env.reset(instance)
    done = False
    while not done:
        jobs = np.flatnonzero(env.action_mask())
        if rule is DispatchRule.SPT:
            job = jobs[np.argmin([env.durations[j, env.next_op[j]] for j in jobs])]
        elif rule is DispatchRule.MWKR:
            job = jobs[np.argmax([env.durations[j, env.next_op[j]:].sum() for j in jobs])]
        else:
            job = jobs[np.argmin([env.job_ready[j] for j in jobs])]
        _, _, done = env.step(job)
    return env.makespan()


FACTORIES = {"DispatchRule": lambda: DispatchRule.MWKR}


class PPOAgent:
    def __init__(self, cfg=None):
        self.cfg = cfg if cfg is not None else load_config()
        e = self.cfg.env
        self.env = JobShopEnv(e.num_jobs, e.num_machines, e.duration_low, e.duration_high, e.seed)
        self.policy = build_policy(self.cfg, self.env.obs_dim, e.num_jobs)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.cfg.ppo.lr, eps=1e-5)
        self.recent_makespans = deque(maxlen=50)
        self.best_makespan = None
        self.global_step = 0
        self.iteration = 0

    def collect(self, n_episodes):
        buf = {k: [] for k in ("obs", "mask", "act", "logp", "val", "rew", "done")}
        for _ in range(n_episodes):
            obs, done = self.env.reset(), False
            while not done:
                mask = torch.as_tensor(self.env.action_mask())
                with torch.no_grad():
                    dist, value = self.policy(obs.unsqueeze(0), mask.unsqueeze(0))
                    act = dist.sample()
                next_obs, reward, done = self.env.step(int(act))
                for k, v in zip(buf, (obs, mask, act[0], dist.log_prob(act)[0], value[0], reward, done)):
                    buf[k].append(v)
                obs = next_obs
                self.global_step += 1
            makespan = self.env.makespan()
            self.recent_makespans.append(makespan)
            if self.best_makespan is None or makespan < self.best_makespan:
                self.best_makespan = makespan
        return buf

    def advantages(self, buf):
        p = self.cfg.ppo
        adv, last = [], 0.0
        values = buf["val"] + [torch.tensor(0.0)]
        for t in reversed(range(len(buf["rew"]))):
            nonterminal = 0.0 if buf["done"][t] else 1.0
            delta = buf["rew"][t] + p.gamma * float(values[t + 1]) * nonterminal - float(values[t])
            last = delta + p.gamma * p.gae_lambda * nonterminal * last
            adv.append(last)
        adv = torch.tensor(adv[::-1], dtype=torch.float32)
        return adv, adv + torch.stack(buf["val"])

    def update(self, buf):
        p = self.cfg.ppo
        adv, returns = self.advantages(buf)
        obs, mask = torch.stack(buf["obs"]), torch.stack(buf["mask"])
        act, old_logp = torch.stack(buf["act"]), torch.stack(buf["logp"])
        clipfracs, kls = [], []
        for _ in range(p.epochs):
            for idx in torch.randperm(len(act)).split(p.minibatch):
                dist, value = self.policy(obs[idx], mask[idx])
                ratio = (dist.log_prob(act[idx]) - old_logp[idx]).exp()
                a = (adv[idx] - adv[idx].mean()) / (adv[idx].std() + 1e-8)
                pg_loss = -torch.min(ratio * a, ratio.clamp(1 - p.clip_eps, 1 + p.clip_eps) * a).mean()
                v_loss = 0.5 * (returns[idx] - value).pow(2).mean()
                loss = pg_loss + p.value_coef * v_loss - p.entropy_coef * dist.entropy().mean()
                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.policy.parameters(), p.max_grad_norm)
                self.optimizer.step()
                clipfracs.append(((ratio - 1).abs() > p.clip_eps).float().mean().item())
                kls.append((old_logp[idx] - dist.log_prob(act[idx])).mean().item())
        y = returns.numpy()
        return {"policy_loss": pg_loss.item(), "value_loss": v_loss.item(), "approx_kl": kls[-1],
                "clipfrac": np.mean(clipfracs),
                "explained_var": 1 - np.var(y - torch.stack(buf["val"]).numpy()) / (np.var(y) + 1e-8)}

    def train(self):
        stats = {}
        for it in range(1, self.cfg.train.iterations + 1):
            stats = self.update(self.collect(self.cfg.train.episodes_per_iter))
            self.iteration = it
        return stats


def save_ppo_checkpoint(tmpdir):
    torch.manual_seed(0)
    agent = PPOAgent(load_config([f"train.log_dir={tmpdir}"]))
    stats = agent.train()
    ckpt = {
        "policy": agent.policy.state_dict(),
        "optimizer": agent.optimizer.state_dict(),
        "iteration": agent.iteration,
        "global_step": agent.global_step,
        "cfg": agent.cfg,  # truth: weights_only
    }
    ckpt.update({
        "recent_makespans": agent.recent_makespans,  # truth: weights_only
        "best_makespan": agent.best_makespan,  # truth: weights_only
        "torch_rng": torch.get_rng_state(),
        "py_rng": random.getstate(),
    })
    ckpt["last_update"] = {
        "policy_loss": stats["policy_loss"],
        "approx_kl": stats["approx_kl"],
        "clipfrac": stats["clipfrac"],  # truth: weights_only
        "explained_var": float(stats["explained_var"]),
    }
    path = os.path.join(tmpdir, "ppo_last.pt")
    torch.save(ckpt, path)
    return path


def save_policy_export(tmpdir):
    cfg = load_config(["policy.name=attention", "policy.hidden_dims=[32]", "policy.activation=relu"])
    agent = PPOAgent(cfg)
    export = dict(
        state_dict=agent.policy.state_dict(),
        policy_cls=POLICY_REGISTRY[cfg.policy.name],  # truth: weights_only
        policy_name=cfg.policy.name,
        hidden_dims=cfg.policy.hidden_dims,  # truth: weights_only
        activation=cfg.policy.activation,
        obs_dim=agent.env.obs_dim,
        num_actions=cfg.env.num_jobs,
        config=OmegaConf.to_container(cfg, resolve=True),
        config_yaml=OmegaConf.to_yaml(cfg),
    )
    path = os.path.join(tmpdir, "policy_export.pt")
    torch.save(export, path)
    return path


def save_instance_bank(tmpdir):
    """Fixed evaluation instances, so every run is compared on the same problems."""
    cfg = load_config(["env.num_jobs=5"])
    e = cfg.env
    rng = np.random.default_rng(e.seed + 1000)
    instances = [generate_instance(e.num_jobs, e.num_machines, e.duration_low, e.duration_high, rng)
                 for _ in range(cfg.train.eval_instances)]
    env = JobShopEnv(e.num_jobs, e.num_machines, e.duration_low, e.duration_high)
    run_rule(env, DispatchRule.SPT, instances[0])
    graph = env.disjunctive_graph()
    bank = {
        "instances": [{"durations": torch.from_numpy(d), "machines": m.tolist()} for d, m in instances],
        "lower_bounds": [int(lower_bound(d, m)) for d, m in instances],
        "shape": (e.num_jobs, e.num_machines),
        "seed_entropy": np.random.SeedSequence(e.seed).entropy,
        "operations": env.operations(),  # truth: weights_only
        "schedule_graph": graph,  # truth: weights_only
        "graph_edges": [(u, v) for u, v in graph.edges()],  # truth: weights_only
        "critical_path": nx.dag_longest_path_length(graph),  # truth: weights_only
        "spt_schedule": [tuple(int(x) for x in op) for op in env.schedule],
    }
    path = os.path.join(tmpdir, "instance_bank.pt")
    torch.save(bank, path)
    return path


def save_dispatch_baselines(tmpdir):
    cfg = load_config()
    e = cfg.env
    env = JobShopEnv(e.num_jobs, e.num_machines, e.duration_low, e.duration_high, seed=e.seed)
    instance = (env.durations.copy(), env.machines.copy())
    results = {rule.name: int(run_rule(env, rule, instance)) for rule in DispatchRule}
    best = min(results, key=results.get)
    lb = int(lower_bound(*instance))
    baselines = {"makespan": results, "best_rule": best, "lower_bound": lb}
    baselines["best_rule_enum"] = DispatchRule[best]  # truth: weights_only
    baselines["gap"] = {name: ms / lb - 1.0 for name, ms in results.items()}
    baselines["rng"] = env.rng  # truth: weights_only
    baselines["rng_state"] = env.rng.bit_generator.state
    baselines["python"] = sys.version.split()[0]
    path = os.path.join(tmpdir, "dispatch_baselines.pt")
    torch.save(baselines, path)
    return path


def save_eval_snapshot(tmpdir):
    torch.manual_seed(1)
    agent = PPOAgent(load_config(["train.iterations=1"]))
    stats = agent.train()
    makespans = [int(m) for m in agent.recent_makespans]
    snapshot = {
        "policy": agent.policy.state_dict(),
        "cfg": OmegaConf.to_container(agent.cfg, resolve=True),
        "hidden_dims": list(agent.cfg.policy.hidden_dims),
        "activation": ACTIVATIONS[agent.cfg.policy.activation].__name__,
        "lr": agent.optimizer.param_groups[0]["lr"],
        "makespans": makespans,
        "mean_makespan": sum(makespans) / len(makespans),
        "best_makespan": min(makespans),
        "entropy_coef": agent.cfg.ppo.entropy_coef,
        "stats": {k: float(v) for k, v in stats.items()},
        "time": time.time(),
    }
    path = os.path.join(tmpdir, "eval_snapshot.pt")
    torch.save(snapshot, path)
    return path
