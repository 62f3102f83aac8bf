"""Pairwise reward model + DPO on a toy preference set.

Port of the alignment team's notebook: a Bradley-Terry reward model trained on
(chosen, rejected) pairs, then DPO against a frozen copy of the SFT policy, with
the adaptive KL controller from the PPO runs kept around for the sanity plots.
"""
import argparse
import copy
import dataclasses
import datetime
import enum
import os
import random
import statistics
import time
from collections import Counter, defaultdict, deque
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 64
PAD = 0


class DPOLoss(enum.Enum):
    SIGMOID = "sigmoid"
    HINGE = "hinge"
    IPO = "ipo"


@dataclasses.dataclass
class DPOConfig:
    beta: float = 0.1
    loss: str = "sigmoid"
    label_smoothing: float = 0.0
    lr: float = 1e-3
    max_len: int = 12
    reference_free: bool = False


def get_args(argv=None):
    p = argparse.ArgumentParser("reward-model")
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--margin", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--output-dir", type=Path, default=Path("runs/rm"))
    p.add_argument("--run-name", default="rm-pairwise")
    return p.parse_args([] if argv is None else argv)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class TinyPolicy(nn.Module):
    def __init__(self, vocab=VOCAB, dim=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=PAD)
        self.rnn = nn.GRU(dim, dim, batch_first=True)
        self.lm_head = nn.Linear(dim, vocab)

    def forward(self, ids):
        h, _ = self.rnn(self.embed(ids))
        return self.lm_head(h)


class RewardModel(nn.Module):
    """SFT body + scalar head read at the last non-pad token."""

    def __init__(self, vocab=VOCAB, dim=16):
        super().__init__()
        self.body = TinyPolicy(vocab, dim)
        self.v_head = nn.Linear(vocab, 1)

    def forward(self, ids):
        logits = self.body(ids)
        last = (ids != PAD).sum(1).clamp(min=1) - 1
        return self.v_head(logits[torch.arange(ids.size(0)), last]).squeeze(-1)


def preference_pairs(n=32, length=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    chosen = torch.randint(1, VOCAB, (n, length), generator=g)
    rejected = torch.randint(1, VOCAB, (n, length), generator=g)
    # rejected answers are shorter on average: the usual length bias of the raters
    cut = torch.randint(length // 2, length, (n,), generator=g)
    for i, c in enumerate(cut.tolist()):
        rejected[i, c:] = PAD
    return {"chosen": chosen, "rejected": rejected, "prompt_id": torch.randint(0, 10, (n,), generator=g)}


def iterate(batch, bs=8):
    n = batch["chosen"].size(0)
    for i in range(0, n, bs):
        yield {k: v[i:i + bs] for k, v in batch.items()}


def sequence_logps(model, ids):
    logp = F.log_softmax(model(ids[:, :-1]), -1)
    tok = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    return (tok * (ids[:, 1:] != PAD)).sum(-1)


class PairwiseRMTrainer:
    def __init__(self, model=None, lr=1e-3, margin=0.0):
        self.model = model if model is not None else RewardModel()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=0.0)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=10, gamma=0.5)
        self.margin = margin
        self.global_step = 0
        self.best_acc = 0.0
        self.best_step = -1
        self.history = defaultdict(list)
        self.acc_window = deque(maxlen=16)

    def train_step(self, batch):
        self.model.train()
        r_c, r_r = self.model(batch["chosen"]), self.model(batch["rejected"])
        loss = -F.logsigmoid(r_c - r_r - self.margin).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.global_step += 1
        acc = ((r_c - r_r).detach().numpy() > 0).mean()
        self.history["loss"].append(loss.item())
        self.history["acc"].append(acc)
        self.acc_window.append(float(acc))
        return loss.item(), acc

    @torch.no_grad()
    def evaluate(self, data):
        self.model.eval()
        m = np.concatenate([(self.model(b["chosen"]) - self.model(b["rejected"])).numpy() for b in iterate(data)])
        return {
            "accuracy": float((m > 0).mean()),
            "mean_margin": m.mean(),
            "margin_std": float(m.std()),
            "margin_p10": np.percentile(m, 10),
        }

    def fit(self, train, val, epochs=2):
        metrics = {}
        for _ in range(epochs):
            for b in iterate(train):
                self.train_step(b)
            metrics = self.evaluate(val)
            if metrics["accuracy"] > self.best_acc:
                self.best_acc = metrics["accuracy"]
                self.best_step = self.global_step
        return metrics


class AdaptiveKLController:
    """Adaptive KL controller (Ziegler et al. 2019), as in the PPO trainer."""

    def __init__(self, init_kl_coef=0.2, target=6.0, horizon=10000):
        self.value = init_kl_coef
        self.target = target
        self.horizon = horizon

    def update(self, current, n_steps):
        proportional_error = np.clip(current / self.target - 1, -0.2, 0.2)
        mult = 1 + proportional_error * n_steps / self.horizon
        self.value *= mult


class FixedKLController:
    def __init__(self, kl_coef=0.05):
        self.value = kl_coef

    def update(self, current, n_steps):
        pass


def dpo_loss(pi_c, pi_r, ref_c, ref_r, beta, loss_type):
    logits = (pi_c - pi_r) - (ref_c - ref_r)
    if loss_type is DPOLoss.SIGMOID:
        losses = -F.logsigmoid(beta * logits)
    elif loss_type is DPOLoss.HINGE:
        losses = torch.relu(1 - beta * logits)
    else:
        losses = (logits - 1 / (2 * beta)) ** 2
    chosen_rewards = beta * (pi_c - ref_c).detach()
    rejected_rewards = beta * (pi_r - ref_r).detach()
    return losses.mean(), chosen_rewards, rejected_rewards


class DPOTrainer:
    def __init__(self, cfg=None, policy=None):
        self.cfg = cfg or DPOConfig()
        self.loss_type = DPOLoss(self.cfg.loss)
        self.policy = policy or TinyPolicy()
        self.ref = copy.deepcopy(self.policy).eval()
        for p in self.ref.parameters():
            p.requires_grad_(False)
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=self.cfg.lr)
        self.kl_ctl = AdaptiveKLController()
        self.fixed_kl = FixedKLController()
        self.stats = {"rewards/margins": [], "rewards/accuracies": [], "kl": []}
        self.steps = 0
        self.started = datetime.datetime.now()

    def step(self, batch):
        pi_c, pi_r = sequence_logps(self.policy, batch["chosen"]), sequence_logps(self.policy, batch["rejected"])
        with torch.no_grad():
            ref_c, ref_r = sequence_logps(self.ref, batch["chosen"]), sequence_logps(self.ref, batch["rejected"])
        loss, cr, rr = dpo_loss(pi_c, pi_r, ref_c, ref_r, self.cfg.beta, self.loss_type)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.steps += 1
        kl = (pi_c.detach() - ref_c).mean().item()
        self.kl_ctl.update(kl, n_steps=batch["chosen"].size(0))
        self.fixed_kl.update(kl, n_steps=batch["chosen"].size(0))
        self.stats["rewards/margins"].append((cr - rr).mean().item())
        self.stats["rewards/accuracies"].append((cr > rr).float().mean().item())
        self.stats["kl"].append(kl)
        return loss.item()


@torch.no_grad()
def judge_win_rate(policy, ref, data):
    """Pairwise 'judge': the policy wins a prompt when it prefers the chosen answer more than ref does."""
    wins = []
    for b in iterate(data):
        d_pi = sequence_logps(policy, b["chosen"]) - sequence_logps(policy, b["rejected"])
        d_ref = sequence_logps(ref, b["chosen"]) - sequence_logps(ref, b["rejected"])
        wins.extend((d_pi > d_ref).tolist())
    return np.mean(wins), int(sum(wins)), len(wins)


def reward_normalizer_stats(model, data):
    with torch.no_grad():
        r = torch.cat([model(b["chosen"]) for b in iterate(data)]).numpy()
    return r.mean(), r.std(), len(r)


# ----------------------------------------------------------------------------- checkpoints

def save_reward_model(tmpdir):
    args = get_args()
    seed_everything(args.seed)
    trainer = PairwiseRMTrainer(lr=args.lr, margin=args.margin)
    metrics = trainer.fit(preference_pairs(48, seed=args.seed), preference_pairs(16, seed=args.seed + 1))
    out = Path(tmpdir) / args.run_name
    out.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "global_step": trainer.global_step,
        "best_acc": trainer.best_acc,
        "best_step": trainer.best_step,
        "history": trainer.history,  # truth: weights_only
        "recent_acc": list(trainer.acc_window),
        "val_accuracy": metrics["accuracy"],
        "val_margin": metrics["mean_margin"].item(),
        "val_margin_std": metrics["margin_std"],
        "val_margin_p10": float(metrics["margin_p10"]),
        "hparams": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "output_dir": str(out),
    }
    path = out / "reward_model.pt"
    torch.save(ckpt, path)
    return str(path)


def save_dpo_policy(tmpdir):
    cfg = DPOConfig(beta=0.2, loss="ipo")
    trainer = DPOTrainer(cfg)
    data = preference_pairs(24, seed=3)
    for b in iterate(data):
        trainer.step(b)
    win_rate, n_wins, n_total = judge_win_rate(trainer.policy, trainer.ref, data)
    ckpt = dict(
        policy=trainer.policy.state_dict(),
        optimizer=trainer.opt.state_dict(),
        reference=trainer.ref,  # truth: weights_only
        config=dataclasses.asdict(cfg),
        loss_type=trainer.loss_type,  # truth: weights_only
        loss_name=trainer.loss_type.value,
        kl_coef=trainer.kl_ctl.value,  # truth: weights_only
        fixed_kl_coef=trainer.fixed_kl.value,
        kl_target=trainer.kl_ctl.target,
        mean_kl=sum(trainer.stats["kl"]) / len(trainer.stats["kl"]),
        reward_margin=statistics.fmean(trainer.stats["rewards/margins"]),
        reward_acc=max(trainer.stats["rewards/accuracies"]),
        win_rate=win_rate,  # truth: weights_only
        wins=n_wins,
        win_rate_py=n_wins / n_total,
        steps=trainer.steps,
        started=trainer.started.isoformat(),
        wall=time.time(),
    )
    path = os.path.join(tmpdir, "dpo_policy.pt")
    torch.save(ckpt, path)
    return path


def save_rm_resume(tmpdir):
    """What the preemptible job writes every N steps so it can resume bit-for-bit."""
    seed_everything(7)
    trainer = PairwiseRMTrainer()
    for b in iterate(preference_pairs(16, seed=7)):
        trainer.train_step(b)
    state = {"epoch": 1, "global_step": trainer.global_step}
    state["model"] = trainer.model.state_dict()
    state["optimizer"] = trainer.optimizer.state_dict()
    state["lr"] = trainer.scheduler.get_last_lr()[0]
    state["rng"] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # truth: weights_only
        "torch": torch.get_rng_state(),
    }
    state["args"] = get_args(["--beta", "0.05"])  # truth: weights_only
    state["saved_at"] = datetime.datetime.now()  # truth: weights_only
    state["saved_at_unix"] = datetime.datetime.now().timestamp()
    state["last_losses"] = trainer.history["loss"][-4:]
    path = os.path.join(tmpdir, "last.pt")
    torch.save(state, path)
    return path


def save_reward_calibration(tmpdir):
    seed_everything(11)
    model = RewardModel()
    data = preference_pairs(40, seed=11)
    mu, sigma, n = reward_normalizer_stats(model, data)
    lengths = (data["chosen"] != PAD).sum(1)
    payload = {"model": model.state_dict(), "n_scored": n}
    payload.update(
        reward_mean=mu,  # truth: weights_only
        reward_std=float(sigma),
        length_hist=Counter(lengths.tolist()),
        mean_len=lengths.float().mean().item(),
    )
    payload.update({
        "prompts_seen": set(np.unique(data["prompt_id"].numpy())),  # truth: weights_only
        "prompt_ids": sorted(set(data["prompt_id"].tolist())),
        "n_prompts": int(data["prompt_id"].unique().numel()),
    })
    path = os.path.join(tmpdir, "reward_calibration.pt")
    torch.save(payload, path)
    return path


def save_rm_export(tmpdir):
    """Slim export for the PPO job: weights + plain numbers only."""
    trainer = PairwiseRMTrainer(lr=5e-4)
    metrics = trainer.fit(preference_pairs(16, seed=5), preference_pairs(8, seed=6), epochs=1)
    export = {
        "state_dict": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
        "metrics": {k: float(v) for k, v in metrics.items()},
        "acc_curve": [float(a) for a in trainer.history["acc"]],
        "vocab_size": VOCAB,
        "pad_id": PAD,
        "loss_names": [m.value for m in DPOLoss],
        "torch_version": str(torch.__version__),
    }
    path = os.path.join(tmpdir, "rm_export.pt")
    torch.save(export, path)
    return path


FACTORIES = {
    "DPOLoss": lambda: DPOLoss.SIGMOID,
    "DPOTrainer": lambda: DPOTrainer(DPOConfig(loss="hinge")),
}
