"""AlphaZero-style self-play for Connect Four.

PUCT tree search guided by a small residual policy/value net, a replay buffer of
(planes, visit distribution, outcome) triples, and an arena that gates new generations
and keeps an Elo ladder. Kept tiny so a full iteration runs in a few seconds on a CPU.
"""
from __future__ import annotations

import copy
import math
import random
import time
from collections import Counter, defaultdict, deque
from dataclasses import asdict, dataclass
from enum import Enum

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROWS, COLS = 6, 7


class GameOutcome(Enum):
    """Result of a finished game, seen from the player who moved first."""
    WIN = 1
    DRAW = 0
    LOSS = -1


@dataclass
class AZConfig:
    num_simulations: int = 8
    c_puct: float = 1.5
    dirichlet_alpha: float = 1.0
    dirichlet_eps: float = 0.25
    temp_moves: int = 8
    buffer_size: int = 5000
    batch_size: int = 32
    train_steps: int = 4
    lr: float = 2e-3
    weight_decay: float = 1e-4
    channels: int = 32
    games_per_iter: int = 2
    arena_games: int = 2
    gate_threshold: float = 0.55
    elo_k: float = 32.0
    seed: int = 0


class ConnectFour:
    def __init__(self):
        self.board = np.zeros((ROWS, COLS), dtype=np.int8)
        self.player = 1
        self.moves = 0
        self.last = None

    def clone(self):
        g = ConnectFour.__new__(ConnectFour)
        g.board, g.player, g.moves, g.last = self.board.copy(), self.player, self.moves, self.last
        return g

    def legal_mask(self):
        return self.board[0] == 0

    def play(self, col):
        row = np.flatnonzero(self.board[:, col] == 0)[-1]
        self.board[row, col] = self.player
        self.last = (int(row), int(col))
        self.player = -self.player
        self.moves += 1

    def winner(self):
        """+1 / -1 for the side that connected four, 0 for a full board, None while playing."""
        if self.last is None:
            return None
        r, c = self.last
        p = self.board[r, c]
        for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
            run = 1
            for sign in (1, -1):
                rr, cc = r + sign * dr, c + sign * dc
                while 0 <= rr < ROWS and 0 <= cc < COLS and self.board[rr, cc] == p:
                    run += 1
                    rr, cc = rr + sign * dr, cc + sign * dc
            if run >= 4:
                return int(p)
        return 0 if self.moves == ROWS * COLS else None

    def encode(self):
        me = self.board == self.player
        them = self.board == -self.player
        turn = np.full((ROWS, COLS), self.player == 1)
        return np.stack([me, them, turn]).astype(np.float32)

    def key(self):
        return self.board.tobytes() + (b"x" if self.player == 1 else b"o")


class ResBlock(nn.Module):
    def __init__(self, ch=32):
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(ch)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(ch)

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        return F.relu(x + self.b2(self.c2(y)))


class PolicyValueNet(nn.Module):
    def __init__(self, channels=32, blocks=2):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU())
        self.tower = nn.Sequential(*[ResBlock(channels) for _ in range(blocks)])
        self.policy_head = nn.Sequential(nn.Conv2d(channels, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * ROWS * COLS, COLS))
        self.value_head = nn.Sequential(nn.Conv2d(channels, 1, 1), nn.ReLU(), nn.Flatten(),
                                        nn.Linear(ROWS * COLS, 32), nn.ReLU(), nn.Linear(32, 1), nn.Tanh())

    def forward(self, x):
        h = self.tower(self.stem(x))
        return self.policy_head(h), self.value_head(h)

    @torch.no_grad()
    def predict(self, planes):
        self.eval()
        logits, v = self(torch.from_numpy(planes).unsqueeze(0))
        return F.softmax(logits, -1)[0].numpy(), v.item()


class MCTS:
    def __init__(self, net, cfg, rng):
        self.net, self.cfg, self.rng = net, cfg, rng
        self.Qsa, self.Nsa, self.Ns, self.Ps, self.Vs = {}, {}, {}, {}, {}
        self.expanded = 0
        self.last_noise = None

    def search(self, game):
        w = game.winner()
        if w is not None:
            return -1.0 if w != 0 else 0.0  # the side to move has just lost (or drawn)
        s = game.key()
        if s not in self.Ps:
            probs, v = self.net.predict(game.encode())
            mask = game.legal_mask()
            probs = probs * mask
            total = probs.sum()
            self.Ps[s] = probs / total if total > 0 else mask / mask.sum()
            self.Vs[s], self.Ns[s] = mask, 0
            self.expanded += 1
            return v
        prior, best, best_a = self.Ps[s], -math.inf, -1
        for a in np.flatnonzero(self.Vs[s]):
            a = int(a)
            if (s, a) in self.Qsa:
                u = self.Qsa[(s, a)] + self.cfg.c_puct * prior[a] * math.sqrt(self.Ns[s]) / (1 + self.Nsa[(s, a)])
            else:
                u = self.cfg.c_puct * prior[a] * math.sqrt(self.Ns[s] + 1e-8)
            if u > best:
                best, best_a = u, a
        child = game.clone()
        child.play(best_a)
        v = -self.search(child)
        if (s, best_a) in self.Qsa:
            n = self.Nsa[(s, best_a)]
            self.Qsa[(s, best_a)] = (n * self.Qsa[(s, best_a)] + v) / (n + 1)
            self.Nsa[(s, best_a)] = n + 1
        else:
            self.Qsa[(s, best_a)], self.Nsa[(s, best_a)] = v, 1
        self.Ns[s] += 1
        return v

    def add_root_noise(self, game):
        s = game.key()
        if s not in self.Ps:
            self.search(game.clone())
        legal = np.flatnonzero(self.Vs[s])
        noise = self.rng.dirichlet([self.cfg.dirichlet_alpha] * len(legal))
        eps = self.cfg.dirichlet_eps
        self.Ps[s][legal] = (1 - eps) * self.Ps[s][legal] + eps * noise
        self.last_noise = noise
        return noise

    def visit_counts(self, game):
        s = game.key()
        return np.array([self.Nsa.get((s, a), 0) for a in range(COLS)], dtype=np.float64)

    def root_value(self, game):
        s = game.key()
        weighted = [self.Qsa[(s, a)] * self.Nsa[(s, a)] for a in range(COLS) if (s, a) in self.Nsa]
        return np.sum(weighted) / max(self.Ns.get(s, 0), 1)

    def policy(self, game, temperature=1.0):
        for _ in range(self.cfg.num_simulations):
            self.search(game.clone())
        counts = self.visit_counts(game)
        if temperature == 0 or counts.sum() == 0:
            pi = np.zeros(COLS)
            pi[int(np.argmax(counts + 1e-6 * game.legal_mask()))] = 1.0
            return pi
        counts = counts ** (1.0 / temperature)
        return counts / counts.sum()


class ReplayBuffer:
    def __init__(self, capacity=5000, seed=0):
        self.data = deque(maxlen=capacity)
        self._rng = random.Random(seed)

    def __len__(self):
        return len(self.data)

    def extend(self, examples, augment=True):
        for planes, pi, z in examples:
            self.data.append((planes, pi, z))
            if augment:  # Connect Four is mirror-symmetric
                self.data.append((planes[:, :, ::-1].copy(), pi[::-1].copy(), z))

    def sample(self, batch_size):
        batch = self._rng.sample(list(self.data), min(batch_size, len(self.data)))
        planes, pis, zs = zip(*batch)
        return (torch.from_numpy(np.stack(planes)), torch.from_numpy(np.stack(pis)).float(),
                torch.tensor(zs, dtype=torch.float32))


class EloTracker:
    def __init__(self, k=32.0, base=1500.0):
        self.k = k
        self.ratings = {"gen0": base}
        self.history = []
        self.games = Counter()

    def expected(self, a, b):
        return 1.0 / (1.0 + 10 ** ((self.ratings[b] - self.ratings[a]) / 400.0))

    def add_player(self, name, like):
        self.ratings[name] = self.ratings[like]

    def update(self, a, b, score, n_games):
        delta = self.k * n_games * (score - self.expected(a, b))
        self.ratings[a] += delta
        self.ratings[b] -= delta
        self.games[a] += n_games
        self.games[b] += n_games
        self.history.append(round(self.ratings[a], 1))

    def state_dict(self):
        return {"k": self.k, "ratings": dict(self.ratings), "history": list(self.history), "games": dict(self.games)}


class SelfPlayTrainer:
    def __init__(self, cfg=None):
        self.cfg = cfg or AZConfig()
        torch.manual_seed(self.cfg.seed)
        self.rng = np.random.default_rng(self.cfg.seed)
        self.net = PolicyValueNet(self.cfg.channels)
        self.best_net = copy.deepcopy(self.net)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.buffer = ReplayBuffer(self.cfg.buffer_size, self.cfg.seed)
        self.elo = EloTracker(self.cfg.elo_k)
        self.iteration = 0
        self.generation = 0
        self.game_lengths = []
        self.outcomes = defaultdict(int)
        self.first_moves = Counter()
        self.last_outcome = None
        self.last_mcts = None

    def play_game(self):
        game, mcts, trajectory = ConnectFour(), MCTS(self.net, self.cfg, self.rng), []
        while (w := game.winner()) is None:
            mcts.add_root_noise(game)
            pi = mcts.policy(game, 1.0 if game.moves < self.cfg.temp_moves else 0.0)
            trajectory.append((game.encode(), pi, game.player))
            a = int(self.rng.choice(COLS, p=pi))
            if game.moves == 0:
                self.first_moves[a] += 1
            game.play(a)
        self.outcomes[GameOutcome(w)] += 1
        self.last_outcome = GameOutcome(w)
        self.game_lengths.append(game.moves)
        self.last_mcts = (mcts, game)
        return [(planes, pi.astype(np.float32), float(w * mover)) for planes, pi, mover in trajectory]

    def train_epoch(self):
        self.net.train()
        losses = defaultdict(list)
        for _ in range(self.cfg.train_steps):
            planes, pis, zs = self.buffer.sample(self.cfg.batch_size)
            logits, v = self.net(planes)
            policy_loss = -(pis * F.log_softmax(logits, -1)).sum(-1).mean()
            value_loss = F.mse_loss(v.squeeze(-1), zs)
            self.opt.zero_grad()
            (policy_loss + value_loss).backward()
            self.opt.step()
            losses["policy"].append(policy_loss.item())
            losses["value"].append(value_loss.item())
        return {name: sum(vals) / len(vals) for name, vals in losses.items()}

    def arena(self):
        """Candidate (self.net) against the current best, colours alternating, greedy search."""
        scores = []
        for g in range(self.cfg.arena_games):
            players = {1: self.net, -1: self.best_net} if g % 2 == 0 else {1: self.best_net, -1: self.net}
            trees = {p: MCTS(net, self.cfg, self.rng) for p, net in players.items()}
            game = ConnectFour()
            while (w := game.winner()) is None:
                pi = trees[game.player].policy(game, temperature=0.0)
                game.play(int(np.argmax(pi)))
            cand_side = 1 if g % 2 == 0 else -1
            scores.append(0.5 if w == 0 else float(w == cand_side))
        return np.asarray(scores), len(scores)

    def run_iteration(self):
        t0 = time.perf_counter()
        for _ in range(self.cfg.games_per_iter):
            self.buffer.extend(self.play_game())
        losses = self.train_epoch()
        self.iteration += 1
        return losses, time.perf_counter() - t0


def _trainer(**overrides):
    return SelfPlayTrainer(AZConfig(**overrides))


def save_training_state(tmpdir):
    trainer = _trainer(seed=1)
    losses, wall = trainer.run_iteration()
    ckpt = {
        "iteration": trainer.iteration,
        "model": trainer.net.state_dict(),
        "optimizer": trainer.opt.state_dict(),
        "config": trainer.cfg,  # truth: weights_only
        "config_dict": asdict(trainer.cfg),
        "replay_buffer": trainer.buffer.data,  # truth: weights_only
        "buffer_len": len(trainer.buffer),
        "losses": losses,
        "iter_seconds": wall,
        "np_rng": trainer.rng,  # truth: weights_only
        "np_rng_state": trainer.rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "py_rng": trainer.buffer._rng.getstate(),
    }
    path = f"{tmpdir}/az_iter{trainer.iteration:04d}.pt"
    torch.save(ckpt, path)
    return path


def save_gated_generation(tmpdir):
    trainer = _trainer(seed=2)
    trainer.run_iteration()
    scores, n = trainer.arena()
    win_rate = np.mean(scores == 1.0)
    score = scores.mean()
    name = f"gen{trainer.generation + 1}"
    trainer.elo.add_player(name, "gen0")
    trainer.elo.update(name, "gen0", float(score), n)
    promoted = bool(score >= trainer.cfg.gate_threshold)
    ckpt = dict(
        generation=trainer.generation + int(promoted),
        model=trainer.net.state_dict(),
        win_rate=win_rate,  # truth: weights_only
        draw_rate=float(np.mean(scores == 0.5)),
        arena_games=n,
        promoted=promoted,
        elo=trainer.elo.ratings[name],
        elo_expected=trainer.elo.expected(name, "gen0"),
    )
    if promoted:
        trainer.best_net.load_state_dict(trainer.net.state_dict())
        trainer.generation += 1
    ckpt["best_net"] = copy.deepcopy(trainer.best_net)  # truth: weights_only
    ckpt["best_net_state"] = trainer.best_net.state_dict()
    path = f"{tmpdir}/{name}.pt"
    torch.save(ckpt, path)
    return path


def save_search_snapshot(tmpdir):
    trainer = _trainer(seed=3, num_simulations=16)
    game = ConnectFour()
    for col in (3, 3, 2):
        game.play(col)
    mcts = MCTS(trainer.net, trainer.cfg, trainer.rng)
    noise = mcts.add_root_noise(game)
    t0 = time.perf_counter()
    pi = mcts.policy(game, temperature=1.0)
    visits = mcts.visit_counts(game)
    snapshot = {
        "board": torch.from_numpy(game.board.copy()),
        "to_move": game.player,
        "visit_counts": visits,  # truth: weights_only
        "visit_counts_t": torch.from_numpy(visits),
        "policy_target": pi.tolist(),
        "root_value": mcts.root_value(game),  # truth: weights_only
        "dirichlet_noise": noise.tolist(),
        "legal_moves": np.flatnonzero(game.legal_mask()).tolist(),
        "nodes_expanded": mcts.expanded,
        "search_seconds": time.perf_counter() - t0,
        "c_puct": trainer.cfg.c_puct,
    }
    snapshot["best_move"] = int(np.argmax(visits))
    snapshot["prior_entropy"] = float(-(pi[pi > 0] * np.log(pi[pi > 0])).sum())
    path = f"{tmpdir}/search_snapshot.pt"
    torch.save(snapshot, path)
    return path


def save_elo_ladder(tmpdir):
    trainer = _trainer(seed=4)
    gen_elos = []
    for gen in range(1, 3):
        trainer.run_iteration()
        scores, n = trainer.arena()
        name = f"gen{gen}"
        trainer.elo.add_player(name, f"gen{gen - 1}")
        trainer.elo.update(name, f"gen{gen - 1}", float(scores.mean()), n)
        gen_elos.append(trainer.elo.ratings[name])
    ckpt = {"ladder": trainer.elo.state_dict(), "model": trainer.net.state_dict()}
    ckpt["best_generation"] = int(np.argmax(gen_elos)) + 1
    ckpt["peak_elo"] = max(gen_elos)
    ckpt["elo_spread"] = np.std(gen_elos)  # truth: weights_only
    ckpt["outcomes"] = trainer.outcomes  # truth: weights_only
    ckpt["outcome_names"] = {o.name: c for o, c in trainer.outcomes.items()}
    ckpt["first_moves"] = trainer.first_moves
    ckpt["last_outcome"] = trainer.last_outcome  # truth: weights_only
    ckpt["last_outcome_value"] = trainer.last_outcome.value
    ckpt["mean_game_length"] = sum(trainer.game_lengths) / len(trainer.game_lengths)
    path = f"{tmpdir}/elo_ladder.pt"
    torch.save(ckpt, path)
    return path


def save_inference_export(tmpdir):
    trainer = _trainer(seed=5)
    net = trainer.best_net.eval()
    export = {
        "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "board_shape": (ROWS, COLS),
        "input_planes": 3,
        "action_size": COLS,
        "channels": trainer.cfg.channels,
        "torch_version": str(torch.__version__),
        "numpy_version": np.__version__,
        "value_range": (-1.0, 1.0),
        "search_defaults": {"num_simulations": trainer.cfg.num_simulations, "c_puct": trainer.cfg.c_puct},
    }
    path = f"{tmpdir}/policy_value_export.pt"
    torch.save(export, path)
    return path


FACTORIES = {
    "GameOutcome": lambda: GameOutcome.DRAW,
    "MCTS": lambda: MCTS(PolicyValueNet(), AZConfig(), np.random.default_rng(0)),
}
