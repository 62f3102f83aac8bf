"""Masked protein language model (ESM-style, tiny) + early stopping and fitness-regression head."""
import collections
import dataclasses
import json
import math
import os
import random
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import r2_score
from sklearn.preprocessing import StandardScaler
from torch import nn

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
NOT_BUILT = {"SplitInfo": "a NamedTuple record, built from the split it describes"}
SPECIAL = ["<pad>", "<cls>", "<eos>", "<mask>", "<unk>"]


@dataclasses.dataclass
class PLMConfig:
    vocab_size: int = len(SPECIAL) + len(AMINO_ACIDS)
    d_model: int = 8
    n_heads: int = 2
    n_layers: int = 1
    mask_prob: float = 0.15
    max_len: int = 12


class SplitInfo(NamedTuple):
    n_train: int
    n_valid: int
    identity_cutoff: float


class TinyPLM(nn.Module):
    def __init__(self, cfg=None):
        super().__init__()
        cfg = cfg or PLMConfig()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, 16, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size)

    def forward(self, tokens):
        return self.lm_head(self.encoder(self.embed(tokens)))


class Alphabet:
    def __init__(self):
        self.all_toks = SPECIAL + list(AMINO_ACIDS)
        self.tok_to_idx = {t: i for i, t in enumerate(self.all_toks)}
        self.padding_idx = self.tok_to_idx["<pad>"]
        self.mask_idx = self.tok_to_idx["<mask>"]

    def encode(self, seq):
        return [self.tok_to_idx["<cls>"]] + [self.tok_to_idx.get(a, 4) for a in seq] + [self.tok_to_idx["<eos>"]]


class EarlyStopping:
    def __init__(self, patience=3, mode="min"):
        self.patience = patience
        self.mode = mode
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad = 0
        self.best_epoch = -1

    def step(self, value, epoch):
        better = value < self.best if self.mode == "min" else value > self.best
        if better:
            self.best, self.num_bad, self.best_epoch = value, 0, epoch
        else:
            self.num_bad += 1
        return self.num_bad >= self.patience

    def state_dict(self):
        return {"best": self.best, "num_bad": self.num_bad, "best_epoch": self.best_epoch}


def linear_warmup(step, warmup_steps=10):
    return min(1.0, (step + 1) / warmup_steps)


def mlm_step(model, alphabet, seqs, cfg):
    toks = torch.tensor([alphabet.encode(s) for s in seqs])
    mask = torch.rand(toks.shape) < cfg.mask_prob
    mask[:, 1] = True
    inp = toks.masked_fill(mask, alphabet.mask_idx)
    logits = model(inp)
    loss = nn.functional.cross_entropy(logits[mask], toks[mask])
    return loss


def perplexities(losses):
    arr = np.exp(np.asarray(losses))
    return arr


class PLMTrainer:
    def __init__(self, cfg=None, run_dir="runs/plm"):
        self.cfg = cfg or PLMConfig()
        self.alphabet = Alphabet()
        self.model = TinyPLM(self.cfg)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=3e-4, weight_decay=0.01)
        self.warmup = torch.optim.lr_scheduler.LambdaLR(self.optimizer, linear_warmup)
        self.stopper = EarlyStopping(patience=2)
        self.run_dir = Path(run_dir)
        self.epoch = 0
        self.history = collections.defaultdict(list)

    def fit(self, seqs, epochs=2):
        torch.manual_seed(0)
        for _ in range(epochs):
            loss = mlm_step(self.model, self.alphabet, seqs, self.cfg)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.warmup.step()
            self.history["train_loss"].append(loss.item())
            self.history["val_loss"].append(loss.detach())
            self.stopper.step(loss.item(), self.epoch)
            self.epoch += 1

    def checkpoint_state(self):
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.warmup.state_dict(),
            "epoch": self.epoch,
        }
        return state

    def save_checkpoint(self, ckpt):
        path = self.run_dir / f"epoch{self.epoch:03d}.pt"
        torch.save(ckpt, path)
        return str(path)


SEQS = ["MKTAYIAK", "MKVLAAGI", "GSHMLEDP"]


def save_plm_with_early_stopping(tmpdir):
    trainer = PLMTrainer(run_dir=tmpdir)
    trainer.fit(SEQS)
    ckpt = trainer.checkpoint_state()
    ckpt["early_stopping"] = trainer.stopper.state_dict()
    ckpt["history"] = trainer.history  # truth: weights_only
    ckpt["val_ppl"] = perplexities(trainer.history["train_loss"])  # truth: weights_only
    ckpt["best_ppl"] = math.exp(trainer.stopper.best)
    ckpt["alphabet"] = trainer.alphabet.all_toks
    return trainer.save_checkpoint(ckpt)


def save_plm_clean(tmpdir):
    trainer = PLMTrainer(run_dir=tmpdir)
    trainer.fit(SEQS, epochs=1)
    ckpt = trainer.checkpoint_state()
    ckpt.update(
        history=dict(trainer.history),
        cfg=dataclasses.asdict(trainer.cfg),
        ppl=perplexities(trainer.history["train_loss"]).tolist(),
        python_rng=random.getstate(),
        torch_rng=torch.get_rng_state(),
        wall=time.time(),
    )
    return trainer.save_checkpoint(ckpt)


def save_plm_run_metadata(tmpdir):
    trainer = PLMTrainer(run_dir=tmpdir)
    split = SplitInfo(n_train=len(SEQS) - 1, n_valid=1, identity_cutoff=0.3)
    ckpt = {"model": trainer.model.state_dict()}
    ckpt["meta"] = {
        "split": split,  # truth: weights_only
        "split_sizes": list(split),
        "run_dir": trainer.run_dir,  # truth: weights_only
        "numpy_rng": np.random.get_state(),  # truth: weights_only
        "lengths": collections.OrderedDict((s, len(s)) for s in SEQS),
    }
    path = os.path.join(tmpdir, "plm_meta.pt")
    torch.save(ckpt, path)
    return path


def load_fitness_table():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "mutant": ["A12G", "K3R", "L7P", "W20F", "T5S", "M1V"],
        "embedding_norm": rng.random(6),
        "fitness": rng.normal(size=6),
    })
    return df


def save_fitness_head(tmpdir):
    df = load_fitness_table()
    scaler = StandardScaler().fit(df[["embedding_norm"]].to_numpy())
    x = torch.tensor(scaler.transform(df[["embedding_norm"]].to_numpy()), dtype=torch.float32)
    y = torch.tensor(df["fitness"].to_numpy(), dtype=torch.float32)
    head = nn.Linear(1, 1)
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    for _ in range(3):
        loss = nn.functional.mse_loss(head(x).squeeze(-1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    preds = head(x).squeeze(-1).detach().numpy()
    metrics = {
        "r2": r2_score(df["fitness"], preds),
        "spearman": df["fitness"].corr(pd.Series(preds), method="spearman"),  # truth: weights_only
        "fitness_mean": df["fitness"].mean(),  # truth: weights_only
        "n_mutants": len(df),
    }
    ckpt = {
        "head": head.state_dict(),
        "scaler_mean": scaler.mean_,  # truth: weights_only
        "scaler_scale": scaler.scale_.tolist(),
        "metrics": metrics,
        "mutants": df["mutant"].tolist(),
        "top_mutant": df.loc[df["fitness"].idxmax(), "mutant"],
        "fitness_table": df.to_dict(orient="list"),
        "summary": df.describe(),  # truth: weights_only
    }
    path = os.path.join(tmpdir, "fitness_head.pt")
    torch.save(ckpt, path)
    return path


def save_plm_best_by_loop(tmpdir):
    trainer = PLMTrainer(run_dir=tmpdir)
    best = {"loss": None, "state": None, "epoch": None}
    for epoch in range(2):
        trainer.fit(SEQS, epochs=1)
        val = np.float64(trainer.history["train_loss"][-1])
        if best["loss"] is None or val < best["loss"]:
            best = {"loss": val, "state": trainer.model.state_dict(), "epoch": epoch}
    ckpt = {
        "model": best["state"],
        "best_epoch": best["epoch"],
        "best_loss": best["loss"],  # truth: weights_only
        "config_json": json.dumps(dataclasses.asdict(trainer.cfg)),
    }
    path = os.path.join(tmpdir, "plm_best.pt")
    torch.save(ckpt, path)
    return path
