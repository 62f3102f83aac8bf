"""FedAvg simulation: a server aggregates client updates each round and checkpoints on rank 0."""
import argparse
import copy
import datetime
import enum
import os
import random
from collections import Counter, OrderedDict, defaultdict

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

import _dist_utils as utils


class Aggregation(enum.Enum):
    FEDAVG = "fedavg"
    FEDPROX = "fedprox"


class ClientStatus(enum.IntEnum):
    IDLE = 0
    TRAINING = 1
    DROPPED = 2


NOT_BUILT = {"Aggregation": "an Enum", "ClientStatus": "an Enum"}


def get_args(argv=None):
    parser = argparse.ArgumentParser(description="FedAvg simulation")
    parser.add_argument("--num-clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--local-epochs", type=int, default=1)
    parser.add_argument("--mu", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output-dir", default="checkpoints/fedavg")
    return parser.parse_args(argv)


def tiny_net():
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def local_update(model, seed, steps=2):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        x = torch.randn(4, 6, generator=g)
        y = torch.randint(0, 3, (4,), generator=g)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.state_dict(), loss.item()


def aggregation_weights(num_samples):
    sizes = np.asarray(num_samples, dtype=np.float64)
    return sizes / sizes.sum()


def fedavg(states, weights):
    avg = OrderedDict()
    for key in states[0]:
        avg[key] = sum(w * s[key] for w, s in zip(weights, states))
    return avg


def run_round(global_model, client_ids, num_samples, round_seed):
    states, losses = [], {}
    for cid in client_ids:
        local = copy.deepcopy(global_model)
        state, loss = local_update(local, round_seed + cid)
        states.append(state)
        losses[cid] = loss
    weights = aggregation_weights([num_samples[c] for c in client_ids])
    global_model.load_state_dict(fedavg(states, weights.tolist()))
    return states, losses, weights


def save_server_round(tmpdir):
    args = get_args([])
    seed_seq = np.random.SeedSequence(args.seed)
    client_seeds = seed_seq.spawn(args.num_clients)
    num_samples = {cid: 10 + 5 * cid for cid in range(args.num_clients)}
    model = tiny_net()
    history = defaultdict(list)
    weights = None
    for rnd in range(args.rounds):
        _, losses, weights = run_round(model, list(range(args.num_clients)), num_samples, args.seed + rnd)
        for cid, loss in losses.items():
            history[cid].append(loss)
    ckpt = {
        "round": args.rounds,
        "global_model": model.state_dict(),
        "args": vars(args),
        "aggregation_weights": weights,  # truth: weights_only
        "client_seeds": client_seeds,  # truth: weights_only
        "base_entropy": seed_seq.entropy,
        "loss_history": history,  # truth: weights_only
        "num_samples": num_samples,
    }
    if args.mu > 0:
        ckpt["fedprox"] = {
            "mu": np.float32(args.mu),  # truth: weights_only
            "local_epochs": args.local_epochs,
        }
    path = os.path.join(tmpdir, f"round_{args.rounds:03d}.pt")
    if utils.is_main_process():
        torch.save(ckpt, path)
    return path


def save_client_states(tmpdir):
    args = get_args(["--num-clients", "3"])
    model = tiny_net()
    client_ids = list(range(args.num_clients))
    num_samples = {c: 8 * (c + 1) for c in client_ids}
    states, losses, weights = run_round(model, client_ids, num_samples, args.seed)
    ckpt = {
        "global_model": model.state_dict(),
        "client_states": {f"client_{c}": s for c, s in zip(client_ids, states)},
        "client_loss": {str(c): l for c, l in losses.items()},
        "aggregation_weights": weights.tolist(),
        "status": {c: int(ClientStatus.TRAINING) for c in client_ids},
        "strategy": Aggregation.FEDAVG.value,
        "sampled_per_round": dict(Counter(client_ids)),
        "py_rng": random.getstate(),
        "torch_rng": torch.get_rng_state(),
    }
    path = os.path.join(tmpdir, "clients.pt")
    utils.save_on_master(ckpt, path)
    return path


class FedServer:
    def __init__(self, num_clients=4, strategy=Aggregation.FEDPROX, mu=0.01, seed=0):
        self.global_model = tiny_net()
        self.num_clients = num_clients
        self.strategy = strategy
        self.mu = mu
        self.rng = np.random.default_rng(seed)
        self.round = 0
        self.client_status = {c: ClientStatus.IDLE for c in range(num_clients)}
        self.participation = Counter()
        self.best_acc = 0.0
        self.round_started = None

    def sample_clients(self, frac=0.5):
        k = max(1, int(frac * self.num_clients))
        chosen = self.rng.choice(self.num_clients, size=k, replace=False)
        for c in chosen:
            self.client_status[int(c)] = ClientStatus.TRAINING
            self.participation[int(c)] += 1
        return chosen

    def step(self):
        self.round_started = datetime.datetime.now(datetime.timezone.utc)
        chosen = self.sample_clients()
        num_samples = {int(c): 10 for c in chosen}
        _, losses, weights = run_round(self.global_model, [int(c) for c in chosen], num_samples, self.round)
        acc = np.exp(-np.mean(list(losses.values())))
        self.best_acc = max(self.best_acc, acc)
        self.round += 1
        return chosen, weights


def save_fed_server(tmpdir):
    server = FedServer()
    chosen, weights = server.step()
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    ckpt = dict(
        round=server.round,
        model=server.global_model.state_dict(),
        strategy=server.strategy,  # truth: weights_only
        mu=server.mu,
        participation=server.participation,
        client_status={c: int(s) for c, s in server.client_status.items()},
        last_selected=chosen,  # truth: weights_only
        best_acc=server.best_acc,  # truth: weights_only
        round_started=server.round_started,  # truth: weights_only
        round_started_iso=server.round_started.isoformat(),
        sampler_state=server.rng.bit_generator.state,
        world_size=utils.get_world_size(),
    )
    path = os.path.join(tmpdir, "server.pt")
    if rank == 0:
        torch.save(ckpt, path)
    return path


def save_round_summary(tmpdir):
    server = FedServer(num_clients=6, strategy=Aggregation.FEDAVG)
    summaries = []
    for _ in range(2):
        chosen, weights = server.step()
        summaries.append({
            "round": server.round,
            "selected": [int(c) for c in chosen],
            "weights": [round(float(w), 4) for w in weights],
            "top_weight": float(weights.max()),
        })
    path = os.path.join(tmpdir, "summary.pt")
    payload = {
        "rounds": summaries,
        "strategy": server.strategy.name,
        "participation": OrderedDict(sorted(server.participation.items())),
        "best_acc": server.best_acc.item(),
        "finished": datetime.datetime.now().strftime("%Y-%m-%dT%H:%M:%S"),
    }
    utils.save_on_master(payload, path)
    return path
