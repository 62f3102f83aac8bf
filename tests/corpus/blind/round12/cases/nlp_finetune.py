"""Fine-tuning a small text classifier / LM with a hand-written Trainer (HF-style, plain torch)."""
import argparse
import collections
import dataclasses
import enum
import functools
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn


class Vocab:
    """Word-level vocabulary, like torchtext's old Vocab."""

    def __init__(self, tokens, specials=("<pad>", "<unk>", "<bos>", "<eos>")):
        counts = collections.Counter(tokens)
        self.itos = list(specials) + [w for w, _ in counts.most_common()]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.freqs = counts

    def __len__(self):
        return len(self.itos)

    def encode(self, words):
        return [self.stoi.get(w, 1) for w in words]


class SchedulerType(enum.Enum):
    LINEAR = "linear"
    COSINE = "cosine"
    CONSTANT = "constant"


@dataclasses.dataclass
class TrainingArguments:
    output_dir: str = "runs/sst2"
    learning_rate: float = 5e-4
    num_train_epochs: int = 3
    warmup_ratio: float = 0.1
    lr_scheduler_type: str = "linear"
    early_stopping_patience: int = 2
    metric_for_best_model: str = "eval_loss"
    greater_is_better: bool = False
    seed: int = 42


class TinyLM(nn.Module):
    def __init__(self, vocab_size, dim=16):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, dim)
        self.out = nn.Linear(dim, vocab_size)

    def forward(self, ids):
        return self.out(self.emb(ids))


CORPUS = "the cat sat on the mat the dog sat on the log a cat and a dog".split()


def _linear_warmup_lambda(step, *, num_warmup_steps, num_training_steps):
    if step < num_warmup_steps:
        return float(step) / float(max(1, num_warmup_steps))
    return max(0.0, float(num_training_steps - step) / float(max(1, num_training_steps - num_warmup_steps)))


def get_linear_schedule_with_warmup(optimizer, num_warmup_steps, num_training_steps):
    lr_lambda = functools.partial(_linear_warmup_lambda, num_warmup_steps=num_warmup_steps,
                                  num_training_steps=num_training_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)


def evaluate(model, vocab):
    ids = torch.tensor([vocab.encode(CORPUS)])
    with torch.no_grad():
        logits = model(ids[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1))
    losses = np.array([loss.item(), loss.item() * 1.01])
    return {"eval_loss": losses.mean(), "eval_ppl": math.exp(loss.item()), "eval_tokens": ids.numel()}


class Trainer:
    def __init__(self, args: TrainingArguments):
        self.args = args
        self.vocab = Vocab(CORPUS)
        torch.manual_seed(args.seed)
        self.model = TinyLM(len(self.vocab))
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=args.learning_rate)
        self.lr_scheduler = get_linear_schedule_with_warmup(self.optimizer, 2, 10)
        self.global_step = 0
        self.best_metric = None
        self.best_model_checkpoint = None
        self.patience_counter = 0
        self.log_history = []

    def train_steps(self, n=3):
        ids = torch.tensor([self.vocab.encode(CORPUS)])
        for _ in range(n):
            logits = self.model(ids[:, :-1])
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1))
            loss.backward()
            self.optimizer.step()
            self.lr_scheduler.step()
            self.optimizer.zero_grad()
            self.global_step += 1
            self.log_history.append({"step": self.global_step, "loss": loss.item(),
                                     "learning_rate": self.lr_scheduler.get_last_lr()[0]})

    def _update_best(self, metrics, ckpt_dir):
        value = metrics[self.args.metric_for_best_model]
        better = np.greater if self.args.greater_is_better else np.less
        if self.best_metric is None or better(value, self.best_metric):
            self.best_metric = value
            self.best_model_checkpoint = Path(ckpt_dir)
            self.patience_counter = 0
        else:
            self.patience_counter += 1

    def trainer_state(self):
        return {
            "global_step": self.global_step,
            "best_metric": float(self.best_metric),
            "best_model_checkpoint": str(self.best_model_checkpoint),
            "log_history": self.log_history,
            "patience_counter": self.patience_counter,
        }

    def save_checkpoint(self, output_dir, metrics=None):
        path = os.path.join(output_dir, f"checkpoint-{self.global_step}.pt")
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.lr_scheduler.state_dict(),
            "trainer_state": self.trainer_state(),
            "args": dataclasses.asdict(self.args),
            "rng_state": torch.get_rng_state(),
        }
        if metrics is not None:
            state["metrics"] = {k: float(v) for k, v in metrics.items()}
        torch.save(state, path)
        return path

    def resume(self, path):
        state = torch.load(path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["scheduler"])
        self.global_step = state["trainer_state"]["global_step"]


def save_trainer_checkpoint(tmpdir):
    trainer = Trainer(TrainingArguments())
    trainer.train_steps()
    metrics = evaluate(trainer.model, trainer.vocab)
    trainer._update_best(metrics, tmpdir)
    return trainer.save_checkpoint(tmpdir, metrics)


def save_with_vocab(tmpdir):
    trainer = Trainer(TrainingArguments())
    trainer.train_steps(2)
    ckpt = {
        "model": trainer.model.state_dict(),
        "vocab": trainer.vocab,  # truth: weights_only
        "itos": trainer.vocab.itos,
        "vocab_size": len(trainer.vocab),
        "token_freqs": trainer.vocab.freqs,
        "args": trainer.args,  # truth: weights_only
    }
    path = os.path.join(tmpdir, "lm_vocab.pt")
    torch.save(ckpt, path)
    return path


def save_best_model(tmpdir):
    trainer = Trainer(TrainingArguments(metric_for_best_model="eval_ppl"))
    trainer.train_steps(2)
    metrics = evaluate(trainer.model, trainer.vocab)
    trainer._update_best(metrics, tmpdir)
    state = {"model": trainer.model.state_dict()}
    state["best_metric"] = trainer.best_metric
    state["best_model_checkpoint"] = trainer.best_model_checkpoint  # truth: weights_only
    state["eval_loss"] = metrics["eval_loss"]  # truth: weights_only
    state["perplexity"] = metrics["eval_ppl"]
    path = os.path.join(tmpdir, "best.pt")
    torch.save(state, path)
    return path


def compute_perplexities(losses):
    losses = np.asarray(losses)
    return np.exp(losses), float(np.exp(losses.mean()))


def save_eval_summary(tmpdir):
    model = TinyLM(20)
    ppl_per_batch, ppl = compute_perplexities([2.1, 2.3, 1.9])
    summary = dict(
        model=model.state_dict(),
        perplexity=ppl,
        ppl_per_batch=ppl_per_batch,  # truth: weights_only
        ppl_per_batch_list=ppl_per_batch.tolist(),
        worst_batch=np.argmax(ppl_per_batch),  # truth: weights_only
        worst_batch_idx=int(np.argmax(ppl_per_batch)),
        bits_per_token=math.log2(ppl),
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    path = os.path.join(tmpdir, "eval_summary.pt")
    torch.save(summary, path)
    return path


class EarlyStopping:
    def __init__(self, patience=2, min_delta=0.0, mode="min"):
        self.patience = patience
        self.min_delta = min_delta
        self.mode = mode
        self.best = np.inf if mode == "min" else -np.inf
        self.num_bad_epochs = 0
        self.history = collections.deque(maxlen=5)

    def step(self, value):
        self.history.append(value)
        if (self.mode == "min" and value < self.best - self.min_delta) or \
                (self.mode == "max" and value > self.best + self.min_delta):
            self.best = value
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        return self.num_bad_epochs >= self.patience

    def state_dict(self):
        return {"best": self.best, "num_bad_epochs": self.num_bad_epochs, "history": self.history}


def save_early_stopping_state(tmpdir):
    stopper = EarlyStopping(patience=3)
    for loss in [2.0, 1.5, 1.6]:
        stopper.step(loss)
    model = TinyLM(12)
    ckpt = {"model": model.state_dict(), "epoch": 3}
    ckpt["early_stopping"] = stopper.state_dict()
    ckpt["early_stopping"]["history"] = list(stopper.history)
    ckpt["scheduler_type"] = SchedulerType.COSINE.value
    path = os.path.join(tmpdir, "es.pt")
    torch.save(ckpt, path)
    return path


def save_early_stopping_numpy(tmpdir):
    stopper = EarlyStopping(patience=3, mode="min")
    val_losses = np.array([2.0, 1.7, 1.8])
    for loss in val_losses:
        stopper.step(loss)
    model = TinyLM(12)
    ckpt = {
        "model": model.state_dict(),
        "early_stopping": {
            "best": stopper.best,  # truth: weights_only
            "num_bad_epochs": stopper.num_bad_epochs,
            "history": stopper.history,  # truth: weights_only
        },
        "scheduler_type": SchedulerType.COSINE,  # truth: weights_only
    }
    path = os.path.join(tmpdir, "es_np.pt")
    torch.save(ckpt, path)
    return path


def parse_args(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--warmup_steps", type=int, default=100)
    p.add_argument("--max_steps", type=int, default=1000)
    p.add_argument("--output_dir", type=Path, default=Path("out"))
    return p.parse_args(argv or [])


def save_from_script(tmpdir):
    args = parse_args([])
    model = TinyLM(16)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.max_steps)
    hparams = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict()}
    ckpt["lr_scheduler"] = sched  # truth: weights_only
    ckpt["hparams"] = hparams
    ckpt["output_dir"] = args.output_dir  # truth: weights_only
    path = os.path.join(tmpdir, "script.pt")
    torch.save(ckpt, path)
    return path


def save_resumable(tmpdir):
    args = parse_args([])
    model = TinyLM(16)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    sched = get_linear_schedule_with_warmup(opt, args.warmup_steps, args.max_steps)
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(), "lr_scheduler": sched.state_dict()}
    ckpt.update(step=0, lr=sched.get_last_lr()[0], args={"lr": args.lr, "warmup_steps": args.warmup_steps},
                output_dir=os.fspath(args.output_dir))
    path = os.path.join(tmpdir, "resumable.pt")
    torch.save(ckpt, path)
    return path


FACTORIES = {
    "Vocab": lambda: Vocab(CORPUS),
    "SchedulerType": lambda: SchedulerType.COSINE,
    "TinyLM": lambda: TinyLM(20),
    "Trainer": lambda: Trainer(TrainingArguments()),
}
