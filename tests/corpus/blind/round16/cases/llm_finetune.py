"""Minimal LoRA fine-tuning loop without Hugging Face: adapter config, trainer, resumable checkpoints."""
import argparse
import enum
import math
import os
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Precision(str, enum.Enum):
    FP32 = "fp32"
    BF16 = "bf16"


@dataclass
class LoraConfig:
    r: int = 4
    alpha: float = 8.0
    dropout: float = 0.0
    target_modules: list = field(default_factory=lambda: ["q_proj", "v_proj"])

    @property
    def scaling(self):
        return self.alpha / self.r


class LoraLinear(nn.Module):
    def __init__(self, base: nn.Linear, cfg: LoraConfig):
        super().__init__()
        self.base = base
        self.lora_a = nn.Parameter(torch.randn(cfg.r, base.in_features) * 0.01)
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, cfg.r))
        self.scaling = cfg.scaling

    def forward(self, x):
        return self.base(x) + (x @ self.lora_a.t() @ self.lora_b.t()) * self.scaling


class TinyLM(nn.Module):
    def __init__(self, vocab=32, dim=8, cfg=None):
        super().__init__()
        cfg = cfg or LoraConfig()
        self.emb = nn.Embedding(vocab, dim)
        self.q_proj = LoraLinear(nn.Linear(dim, dim), cfg)
        self.v_proj = LoraLinear(nn.Linear(dim, dim), cfg)
        self.head = nn.Linear(dim, vocab)

    def forward(self, ids):
        h = self.emb(ids)
        return self.head(self.v_proj(torch.tanh(self.q_proj(h))))


def linear_warmup(step, warmup_steps=10):
    return min(1.0, (step + 1) / warmup_steps)


def lora_state_dict(model):
    return {k: v for k, v in model.state_dict().items() if "lora_" in k}


def mixture_weights(sizes, temperature=0.7):
    sizes = np.asarray(sizes, dtype=np.float64)
    w = sizes ** temperature
    return w / w.sum()


def grad_norm_stats(norms):
    arr = np.asarray(norms)
    return {"mean": float(arr.mean()), "max": float(arr.max()), "clipped_frac": float((arr > 1.0).mean())}


def make_batches(rng, n, seq_len=6, vocab=32):
    lengths = rng.integers(3, seq_len + 1, size=n)
    return [torch.randint(0, vocab, (2, int(L))) for L in lengths], lengths


class LoraTrainer:
    def __init__(self, model, cfg, lr=1e-3, precision=Precision.FP32):
        self.model = model
        self.cfg = cfg
        self.precision = precision
        self.optimizer = torch.optim.AdamW([p for n, p in model.named_parameters() if "lora_" in n], lr=lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, linear_warmup)
        self.global_step = 0
        self.tokens_seen = 0
        self.losses = []
        self.grad_norms = []
        self.best_loss = math.inf
        self.throughput = 0.0

    def train(self, batches):
        t0 = time.perf_counter()
        for ids in batches:
            logits = self.model(ids[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1))
            self.optimizer.zero_grad()
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            self.scheduler.step()
            self.global_step += 1
            self.tokens_seen += ids.numel()
            self.losses.append(loss.item())
            self.grad_norms.append(gn.item())
        elapsed = time.perf_counter() - t0
        self.throughput = self.tokens_seen / max(elapsed, 1e-9)
        self.best_loss = np.min(self.losses)
        self.smoothed = np.convolve(self.losses, np.ones(2) / 2, mode="valid")
        self.median_loss = statistics.median(self.losses)


NOT_BUILT = {
    "LoraTrainer": "plain trainer object; checkpoints take its state, never the trainer itself",
    "Precision": "an Enum, not built by calling it",
}
FACTORIES = {"LoraLinear": lambda: LoraLinear(nn.Linear(4, 4), LoraConfig())}


def _trained(n=4, seed=0):
    rng = np.random.default_rng(seed)
    cfg = LoraConfig()
    model = TinyLM(cfg=cfg)
    trainer = LoraTrainer(model, cfg)
    batches, lengths = make_batches(rng, n)
    trainer.train(batches)
    return trainer, lengths


def save_adapter_checkpoint(tmpdir):
    trainer, lengths = _trained()
    ckpt = {
        "adapter": lora_state_dict(trainer.model),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "lora_config": trainer.cfg,  # truth: weights_only
        "step": trainer.global_step,
        "tokens_seen": trainer.tokens_seen,
        "best_loss": trainer.best_loss,  # truth: weights_only
        "median_loss": trainer.median_loss,
        "throughput": trainer.throughput,
    }
    path = os.path.join(tmpdir, "adapter.pt")
    torch.save(ckpt, path)
    return path


def save_adapter_clean(tmpdir):
    trainer, lengths = _trained(seed=1)
    ckpt = dict(
        adapter=lora_state_dict(trainer.model),
        lora_config=asdict(trainer.cfg),
        precision=trainer.precision.value,
        best_loss=float(trainer.best_loss),
        loss_curve=list(trainer.losses),
        grad_norm=grad_norm_stats(trainer.grad_norms),
        tokens_per_sec=trainer.throughput,
        n_tokens=int(lengths.sum()),
        torch_rng=torch.get_rng_state(),
    )
    path = os.path.join(tmpdir, "adapter_clean.pt")
    torch.save(ckpt, path)
    return path


def save_loss_curves(tmpdir):
    trainer, lengths = _trained(seed=2)
    state = {"step": trainer.global_step}
    state["smoothed_loss"] = trainer.smoothed  # truth: weights_only
    state["smoothed_last"] = trainer.smoothed[-1].item()
    state["grad_norm_p95"] = np.percentile(trainer.grad_norms, 95)  # truth: weights_only
    state["grad_norm_hist"] = torch.tensor(trainer.grad_norms)
    state["precision"] = trainer.precision  # truth: weights_only
    state["scheduler"] = trainer.scheduler  # truth: weights_only
    state["n_tokens"] = lengths.sum()  # truth: weights_only
    path = os.path.join(tmpdir, "curves.pt")
    torch.save(state, path)
    return path


def save_data_mixture(tmpdir):
    sources = ["web", "code", "books"]
    sizes = [1200, 300, 150]
    weights = mixture_weights(sizes)
    counts = Counter({s: n for s, n in zip(sources, sizes)})
    ckpt = {}
    ckpt["mixture"] = {s: float(w) for s, w in zip(sources, weights)}
    ckpt["mixture_weights"] = weights  # truth: weights_only
    ckpt["web_share"] = weights[sources.index("web")]  # truth: weights_only
    ckpt["mixture_list"] = weights.tolist()
    ckpt["source_counts"] = counts
    ckpt["source_counts_plain"] = dict(counts)
    ckpt["sampling"] = {"temperature": 0.7, "weights": torch.from_numpy(weights)}
    ckpt["rng"] = np.random.default_rng(0).bit_generator.state
    budget = np.array(sizes) * 4
    total_tokens = 0
    for n in budget:
        total_tokens += n
    ckpt["total_tokens"] = total_tokens  # truth: weights_only
    ckpt["total_tokens_int"] = int(budget.sum())
    path = os.path.join(tmpdir, "mixture.pt")
    torch.save(ckpt, path)
    return path


def save_from_cli(tmpdir):
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--lora-r", type=int, default=4)
    parser.add_argument("--precision", type=Precision, default=Precision.BF16)
    args = parser.parse_args([])
    trainer, _ = _trained(seed=3)
    ckpt = {"adapter": lora_state_dict(trainer.model)}
    if args.precision is Precision.BF16:
        loss_scale = 1.0
    else:
        loss_scale = np.float32(2 ** 16)
    ckpt["loss_scale"] = loss_scale
    ckpt.update(
        args=args,  # truth: weights_only
        lr=args.lr,
        hparams={k: v for k, v in vars(args).items() if not isinstance(v, enum.Enum)},
    )
    path = os.path.join(tmpdir, "cli.pt")
    torch.save(ckpt, path)
    return path
