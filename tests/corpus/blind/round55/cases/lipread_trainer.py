"""Sentence-level lip reading (GRID-style) with a 3D-conv front end, a BiGRU and CTC.

The trainer owns the model, the optimiser and the running statistics; `state_dict()` gives what
`resume()` needs, the `save_*` helpers below write the artifacts the evaluation scripts read.
"""
import math
import os
import time
from collections import Counter, OrderedDict, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import Enum

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

GRID_WORDS = {
    "command": ["bin", "lay", "place", "set"],
    "color": ["blue", "green", "red", "white"],
    "preposition": ["at", "by", "in", "with"],
    "letter": list("abcdefgh"),
    "digit": ["zero", "one", "two", "three", "four"],
    "adverb": ["again", "now", "please", "soon"],
}


class DecodeMode(Enum):
    GREEDY = "greedy"
    PREFIX_BEAM = "prefix_beam"


@dataclass
class DataConfig:
    n_speakers: int = 4
    clips_per_speaker: int = 6
    frames: int = 40
    frame_size: int = 32
    crop_size: int = 24
    val_speakers: int = 1


@dataclass
class ModelConfig:
    frontend_channels: tuple = (8, 16)
    hidden: int = 32
    layers: int = 1
    dropout: float = 0.1


@dataclass
class TrainConfig:
    epochs: int = 2
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-2
    grad_clip: float = 5.0
    ema_decay: float = 0.99
    decode: DecodeMode = DecodeMode.GREEDY
    seed: int = 0
    tags: list = field(default_factory=lambda: ["grid", "ctc"])


class CharTokenizer:
    """Characters of the transcripts; index 0 is the CTC blank."""

    def __init__(self, texts=("bin blue at a zero now",)):
        chars = sorted(set("".join(texts)))
        self.blank = 0
        self.itos = ["<blank>"] + chars
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    def encode(self, text):
        return [self.stoi[c] for c in text]

    def decode(self, ids):
        return "".join(self.itos[i] for i in ids if i != self.blank)


def grid_sentence(rng):
    return " ".join(rng.choice(GRID_WORDS[k]) for k in GRID_WORDS)


def synthetic_corpus(cfg, seed=0):
    """Grey-scale mouth-region clips (speaker, video, text); stands in for the preprocessed GRID npz files."""
    rng = np.random.default_rng(seed)
    clips = []
    for spk in range(cfg.n_speakers):
        for _ in range(cfg.clips_per_speaker):
            video = rng.normal(0.4 + 0.05 * spk, 0.2, (cfg.frames, cfg.frame_size, cfg.frame_size))
            clips.append({"speaker": f"s{spk + 1}", "video": video.astype(np.float32), "text": grid_sentence(rng)})
    return clips


def edit_distance(ref, hyp):
    d = np.zeros((len(ref) + 1, len(hyp) + 1), dtype=np.int64)
    d[:, 0] = np.arange(len(ref) + 1)
    d[0, :] = np.arange(len(hyp) + 1)
    for i in range(1, len(ref) + 1):
        for j in range(1, len(hyp) + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    return d[-1, -1]


class Conv3dFrontend(nn.Module):
    def __init__(self, channels=(8, 16)):
        super().__init__()
        c1, c2 = channels
        self.net = nn.Sequential(
            nn.Conv3d(1, c1, kernel_size=(3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2)), nn.BatchNorm3d(c1), nn.ReLU(),
            nn.MaxPool3d((1, 2, 2)),
            nn.Conv3d(c1, c2, kernel_size=3, padding=1), nn.BatchNorm3d(c2), nn.ReLU(),
            nn.AdaptiveAvgPool3d((None, 1, 1)),
        )
        self.out_dim = c2

    def forward(self, x):                        # (B, T, H, W)
        y = self.net(x.unsqueeze(1))             # (B, C, T, 1, 1)
        return y.flatten(2).transpose(1, 2)      # (B, T, C)


class LipReader(nn.Module):
    def __init__(self, vocab_size=30, channels=(8, 16), hidden=32, layers=1, dropout=0.1):
        super().__init__()
        self.frontend = Conv3dFrontend(channels)
        self.rnn = nn.GRU(self.frontend.out_dim, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * hidden, vocab_size)

    def forward(self, x):
        y, _ = self.rnn(self.frontend(x))
        return self.classifier(self.dropout(y)).log_softmax(-1)


class LipReadingTrainer:
    def __init__(self, data_cfg=None, model_cfg=None, train_cfg=None):
        self.data_cfg = data_cfg or DataConfig()
        self.model_cfg = model_cfg or ModelConfig()
        self.train_cfg = train_cfg or TrainConfig()
        torch.manual_seed(self.train_cfg.seed)
        clips = synthetic_corpus(self.data_cfg, self.train_cfg.seed)
        speakers = sorted({c["speaker"] for c in clips})
        self.val_speakers = speakers[-self.data_cfg.val_speakers:]
        self.seen_speakers = frozenset(speakers[:-self.data_cfg.val_speakers])
        self.train_clips = [c for c in clips if c["speaker"] in self.seen_speakers]
        self.val_clips = [c for c in clips if c["speaker"] not in self.seen_speakers]
        self.tokenizer = CharTokenizer([c["text"] for c in clips])
        off = (self.data_cfg.frame_size - self.data_cfg.crop_size) // 2
        self.crop = (slice(off, off + self.data_cfg.crop_size), slice(off, off + self.data_cfg.crop_size))
        self.frame_stats = self._frame_statistics()
        self.model = LipReader(len(self.tokenizer.itos), self.model_cfg.frontend_channels,
                               self.model_cfg.hidden, self.model_cfg.layers, self.model_cfg.dropout)
        self.ema = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.train_cfg.lr,
                                           weight_decay=self.train_cfg.weight_decay)
        self.ctc = nn.CTCLoss(blank=self.tokenizer.blank, zero_infinity=True)
        self.history = defaultdict(list)
        self.epoch = 0
        self.step = 0
        self.best_cer = math.inf
        self.best_epoch = None
        self.start_time = datetime.now()

    def _frame_statistics(self):
        frames = np.stack([c["video"][:, self.crop[0], self.crop[1]] for c in self.train_clips])
        return {"mean": frames.mean(axis=(0, 1)), "std": frames.std(axis=(0, 1)) + 1e-6}

    def _batch(self, clips):
        video = np.stack([(c["video"][:, self.crop[0], self.crop[1]] - self.frame_stats["mean"])
                          / self.frame_stats["std"] for c in clips])
        targets = [torch.tensor(self.tokenizer.encode(c["text"])) for c in clips]
        return (torch.from_numpy(video).float(), torch.cat(targets),
                torch.full((len(clips),), video.shape[1], dtype=torch.long),
                torch.tensor([len(t) for t in targets]))

    def _update_ema(self):
        decay = self.train_cfg.ema_decay
        with torch.no_grad():
            for k, v in self.model.state_dict().items():
                if v.dtype.is_floating_point:
                    self.ema[k].mul_(decay).add_(v.detach(), alpha=1 - decay)
                else:
                    self.ema[k].copy_(v)

    def train_epoch(self):
        self.model.train()
        order = np.random.default_rng(self.epoch).permutation(len(self.train_clips))
        losses = []
        for s in range(0, len(order), self.train_cfg.batch_size):
            x, y, in_len, out_len = self._batch([self.train_clips[i] for i in order[s:s + self.train_cfg.batch_size]])
            log_probs = self.model(x).transpose(0, 1)
            loss = self.ctc(log_probs, y, in_len, out_len)
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), self.train_cfg.grad_clip)
            self.optimizer.step()
            self._update_ema()
            self.step += 1
            losses.append(loss.item())
        return np.mean(losses), len(losses)

    def greedy_decode(self, log_probs):
        out = []
        for seq in log_probs.argmax(-1).tolist():
            collapsed = [t for i, t in enumerate(seq) if i == 0 or t != seq[i - 1]]
            out.append(self.tokenizer.decode(collapsed))
        return out

    @torch.no_grad()
    def validate(self):
        self.model.eval()
        x, _, _, _ = self._batch(self.val_clips)
        hyps = self.greedy_decode(self.model(x))
        refs = [c["text"] for c in self.val_clips]
        char_err = sum(edit_distance(r, h) for r, h in zip(refs, hyps))
        word_err = sum(int(edit_distance(r.split(), h.split())) for r, h in zip(refs, hyps))
        return {
            "cer": char_err / sum(len(r) for r in refs),
            "wer": word_err / sum(len(r.split()) for r in refs),
            "word_acc": np.mean([rw == hw for r, h in zip(refs, hyps) for rw, hw in zip(r.split(), h.split())] or [0.0]),
            "examples": list(zip(refs, hyps))[:3],
        }

    def fit(self, epochs=None):
        for _ in range(epochs or self.train_cfg.epochs):
            loss, n = self.train_epoch()
            metrics = self.validate()
            self.history["train_loss"].append(loss)
            self.history["val_cer"].append(metrics["cer"])
            if metrics["cer"] < self.best_cer:
                self.best_cer, self.best_epoch = metrics["cer"], self.epoch
            self.epoch += 1
        return metrics

    def state_dict(self):
        return OrderedDict(
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            epoch=self.epoch,
            step=self.step,
            rng=torch.get_rng_state(),
        )


FACTORIES = {
    "DecodeMode": lambda: DecodeMode.PREFIX_BEAM,
    "LipReadingTrainer": lambda: LipReadingTrainer(DataConfig(clips_per_speaker=2), train_cfg=TrainConfig(epochs=1)),
}


def save_training_state(tmpdir):
    trainer = LipReadingTrainer()
    trainer.fit()
    ckpt = trainer.state_dict()
    ckpt["history"] = trainer.history  # truth: weights_only
    ckpt["best_cer"] = trainer.best_cer  # truth: weights_only
    ckpt["best_epoch"] = trainer.best_epoch
    ckpt["model_config"] = trainer.model_cfg  # truth: weights_only
    ckpt["data_config"] = asdict(trainer.data_cfg)
    ckpt["decode"] = trainer.train_cfg.decode  # truth: weights_only
    ckpt["decode_name"] = trainer.train_cfg.decode.value
    ckpt["ema"] = trainer.ema
    path = os.path.join(tmpdir, "lipreader_last.pt")
    torch.save(ckpt, path)
    return path


def save_frontend_pretrain(tmpdir):
    """The 3D front end alone, reused by the word-level (LRW) fine-tuning script."""
    trainer = LipReadingTrainer(model_cfg=ModelConfig(frontend_channels=(4, 8)), train_cfg=TrainConfig(epochs=1))
    trainer.fit()
    frontend = trainer.model.frontend
    payload = {
        "frontend": frontend.state_dict(),
        "out_dim": frontend.out_dim,
        "channels": list(trainer.model_cfg.frontend_channels),
        "mouth_crop": trainer.crop,  # truth: weights_only
        "crop_box": [trainer.crop[0].start, trainer.crop[0].stop, trainer.crop[1].start, trainer.crop[1].stop],
        "frame_mean": trainer.frame_stats["mean"],  # truth: weights_only
        "frame_std": trainer.frame_stats["std"].tolist(),
        "input_frames": trainer.data_cfg.frames,
        "dtype": next(frontend.parameters()).dtype,
    }
    path = os.path.join(tmpdir, "frontend3d.pt")
    torch.save(payload, path)
    return path


def save_vocab_export(tmpdir):
    trainer = LipReadingTrainer(DataConfig(n_speakers=3))
    tok = trainer.tokenizer
    texts = [c["text"] for c in trainer.train_clips + trainer.val_clips]
    lengths = np.array([len(t) for t in texts])
    chars = np.array(list("".join(texts)))
    export = {"itos": tok.itos, "stoi": tok.stoi, "blank": tok.blank}
    export.update(
        charset=sorted(np.unique(chars)),  # truth: weights_only
        char_freq=dict(Counter("".join(texts)).most_common()),
        speakers=trainer.seen_speakers,  # truth: weights_only
        val_speakers=list(trainer.val_speakers),
        max_label_len=int(lengths.max()),
        label_len_p95=float(np.percentile(lengths, 95)),
        vocabulary=sorted({w for t in texts for w in t.split()}),
    )
    path = os.path.join(tmpdir, "vocab.pt")
    torch.save(export, path)
    return path


def save_eval_report(tmpdir):
    trainer = LipReadingTrainer(train_cfg=TrainConfig(epochs=1, decode=DecodeMode.PREFIX_BEAM))
    metrics = trainer.fit()
    loss, n_batches = trainer.train_epoch()
    elapsed = datetime.now() - trainer.start_time
    report = {
        "cer": metrics["cer"],  # truth: weights_only
        "wer": metrics["wer"],
        "word_acc": metrics["word_acc"],  # truth: weights_only
        "examples": [{"ref": r, "hyp": h} for r, h in metrics["examples"]],
        "extra_epoch_loss": float(loss),
        "batches": n_batches,
        "elapsed": elapsed,  # truth: weights_only
        "elapsed_s": elapsed.total_seconds(),
        "finished": datetime.now().isoformat(timespec="seconds"),
        "decode": trainer.train_cfg.decode.name,
        "config": {"data": asdict(trainer.data_cfg), "model": asdict(trainer.model_cfg)},
    }
    path = os.path.join(tmpdir, "eval_report.pt")
    torch.save(report, path)
    return path


def save_ema_weights(tmpdir):
    trainer = LipReadingTrainer(train_cfg=TrainConfig(epochs=1, ema_decay=0.9))
    trainer.fit()
    weights = OrderedDict((k, v.half() if v.is_floating_point() else v) for k, v in trainer.ema.items())
    meta = {
        "ema_decay": trainer.train_cfg.ema_decay,
        "steps": trainer.step,
        "vocab_size": len(trainer.tokenizer.itos),
        "hidden": trainer.model_cfg.hidden,
        "frame_stats": [float(trainer.frame_stats["mean"].mean()), float(trainer.frame_stats["std"].mean())],
        "tags": list(trainer.train_cfg.tags),
        "wallclock": time.time(),
        "best_epoch": trainer.best_epoch,
    }
    path = os.path.join(tmpdir, "lipreader_ema.pt")
    torch.save({"weights": weights, "meta": meta}, path)
    return path
