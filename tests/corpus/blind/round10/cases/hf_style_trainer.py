"""An HF-style Trainer loop: TrainingArguments / TrainerState dataclasses, a config object with to_dict(),
a tokenizer, and checkpoint-N folders written with torch.save."""
import enum
import json
import os
import random
from dataclasses import asdict, dataclass, field
from typing import List, Optional

import numpy as np
import torch
from torch import nn


class SchedulerType(str, enum.Enum):
    LINEAR = "linear"
    COSINE = "cosine"


class IntervalStrategy(enum.Enum):
    NO = "no"
    STEPS = "steps"


@dataclass
class TrainingArguments:
    output_dir: str = "/tmp/hf_out"
    learning_rate: float = 5e-5
    per_device_train_batch_size: int = 8
    num_train_epochs: float = 1.0
    lr_scheduler_type: SchedulerType = SchedulerType.COSINE
    save_strategy: IntervalStrategy = IntervalStrategy.STEPS
    seed: int = 42

    def to_dict(self):
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, enum.Enum):
                d[k] = v.value
        return d


@dataclass
class TrainerState:
    epoch: Optional[float] = None
    global_step: int = 0
    max_steps: int = 0
    log_history: List[dict] = field(default_factory=list)
    best_metric: Optional[float] = None
    best_model_checkpoint: Optional[str] = None

    def to_json_string(self):
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


class TinyConfig:
    model_type = "tiny"

    def __init__(self, vocab_size=50, hidden_size=16, num_labels=2, id2label=None):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_labels = num_labels
        self.id2label = id2label or {i: f"LABEL_{i}" for i in range(num_labels)}

    def to_dict(self):
        return dict(self.__dict__, model_type=self.model_type)


class TinyTokenizer:
    def __init__(self, vocab=None):
        self.vocab = vocab or {"[PAD]": 0, "[UNK]": 1, "hello": 2, "world": 3}
        self.special_tokens = {"pad_token": "[PAD]", "unk_token": "[UNK]"}

    def __call__(self, text):
        return [self.vocab.get(t, 1) for t in text.split()]


class TinyForSequenceClassification(nn.Module):
    def __init__(self, config=None):
        super().__init__()
        self.config = config or TinyConfig()
        self.embed = nn.EmbeddingBag(self.config.vocab_size, self.config.hidden_size)
        self.classifier = nn.Linear(self.config.hidden_size, self.config.num_labels)

    def forward(self, input_ids, labels=None):
        logits = self.classifier(self.embed(input_ids))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return loss, logits


def _train_loop(args, steps=4):
    torch.manual_seed(args.seed)
    model = TinyForSequenceClassification()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 - s / max(1, steps))
    state = TrainerState(max_steps=steps)
    for step in range(steps):
        ids = torch.randint(0, 50, (args.per_device_train_batch_size, 6))
        labels = torch.randint(0, 2, (args.per_device_train_batch_size,))
        loss, _ = model(ids, labels)
        optimizer.zero_grad()
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        state.global_step = step + 1
        state.epoch = (step + 1) / steps
        state.log_history.append(
            {"loss": round(loss.item(), 4), "grad_norm": grad_norm.item(), "learning_rate": scheduler.get_last_lr()[0]}
        )
    return model, optimizer, scheduler, state


def _evaluate(model):
    losses = []
    with torch.no_grad():
        for _ in range(3):
            ids = torch.randint(0, 50, (4, 6))
            loss, _ = model(ids, torch.randint(0, 2, (4,)))
            losses.append(loss.item())
    return {"eval_loss": np.mean(losses), "eval_samples": 12}


def save_training_args_bin(tmpdir):
    args = TrainingArguments()
    out = os.path.join(tmpdir, "checkpoint-4")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "training_args.bin")
    torch.save(args, path)  # truth: weights_only
    return path


def save_optimizer_pt(tmpdir):
    args = TrainingArguments()
    _, optimizer, _, _ = _train_loop(args)
    path = os.path.join(tmpdir, "optimizer.pt")
    torch.save(optimizer.state_dict(), path)
    return path


def save_scheduler_pt(tmpdir):
    args = TrainingArguments()
    _, _, scheduler, _ = _train_loop(args)
    path = os.path.join(tmpdir, "scheduler.pt")
    torch.save(scheduler.state_dict(), path)
    return path


def save_rng_state_pth(tmpdir):
    args = TrainingArguments()
    _train_loop(args)
    rng_states = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # truth: weights_only
        "cpu": torch.random.get_rng_state(),
    }
    path = os.path.join(tmpdir, "rng_state.pth")
    torch.save(rng_states, path)
    return path


def save_single_file_checkpoint(tmpdir):
    args = TrainingArguments()
    model, optimizer, scheduler, state = _train_loop(args)
    metrics = _evaluate(model)
    state.best_metric = metrics["eval_loss"]
    ckpt = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "lr_scheduler": scheduler.state_dict(),
        "trainer_state": state,  # truth: weights_only
        "log_history_json": json.dumps(state.log_history),
        "args": args.to_dict(),
        "config": model.config,  # truth: weights_only
        "config_dict": model.config.to_dict(),
        "global_step": state.global_step,
        "epoch": state.epoch,
    }
    ckpt["best_metric"] = metrics["eval_loss"]  # truth: weights_only
    ckpt["eval_samples"] = metrics["eval_samples"]
    path = os.path.join(tmpdir, "pytorch_checkpoint.bin")
    torch.save(ckpt, path)
    return path


def save_args_fields(tmpdir):
    args = TrainingArguments()
    model, _, _, state = _train_loop(args)
    ckpt = dict(
        model=model.state_dict(),
        lr_scheduler_type=args.lr_scheduler_type,  # truth: weights_only
        lr_scheduler_name=args.lr_scheduler_type.value,
        save_strategy=args.save_strategy,  # truth: weights_only
        save_strategy_name=args.save_strategy.name,
        log_history=state.log_history,
        args_dict=args.to_dict(),
    )
    path = os.path.join(tmpdir, "args_fields.bin")
    torch.save(ckpt, path)
    return path


def save_tokenizer_bundle(tmpdir):
    args = TrainingArguments()
    model, _, _, _ = _train_loop(args)
    tokenizer = TinyTokenizer()
    bundle = {"model": model.state_dict()}
    bundle.update(
        tokenizer=tokenizer,  # truth: weights_only
        vocab=tokenizer.vocab,
        special_tokens_map=tokenizer.special_tokens,
        id2label=model.config.id2label,
    )
    path = os.path.join(tmpdir, "bundle.bin")
    torch.save(bundle, path)
    return path


def save_eval_metrics(tmpdir):
    args = TrainingArguments()
    model, _, _, state = _train_loop(args)
    metrics = _evaluate(model)
    logits = model(torch.randint(0, 50, (6, 6)))[1]
    probs = logits.softmax(-1)
    ckpt = {
        "model": model.state_dict(),
        "eval_loss": float(metrics["eval_loss"]),
        "eval_perplexity": np.exp(metrics["eval_loss"]),  # truth: weights_only
        "predictions": probs.argmax(-1),
        "predictions_np": probs.argmax(-1).numpy(),  # truth: weights_only
        "mean_confidence": probs.max(-1).values.mean().item(),
        "step": state.global_step,
    }
    path = os.path.join(tmpdir, "eval_results.bin")
    torch.save(ckpt, path)
    return path


def save_pretrained_bin(tmpdir):
    args = TrainingArguments()
    model, _, _, _ = _train_loop(args)
    out = os.path.join(tmpdir, "final")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as fh:
        json.dump(model.config.to_dict(), fh)
    path = os.path.join(out, "pytorch_model.bin")
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return path


NOT_BUILT = {
    "SchedulerType": "an Enum: its members are built from values, not by calling the class",
    "IntervalStrategy": "an Enum: its members are built from values, not by calling the class",
}
