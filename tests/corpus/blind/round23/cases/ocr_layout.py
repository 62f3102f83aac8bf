"""CRNN text recognizer + layout detector training utilities (OCR / document layout)."""
import argparse
import collections
import dataclasses
import datetime
import enum
import os
import pathlib
import statistics
import string
import time

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
import torch
from torch import nn


NOT_BUILT = {"LayoutClass": "an Enum; its members are its instances"}

CHARSET = string.digits + string.ascii_lowercase + " -.,"


class LayoutClass(enum.Enum):
    TEXT = 0
    TITLE = 1
    LIST = 2
    TABLE = 3
    FIGURE = 4


@dataclasses.dataclass
class RecognizerConfig:
    img_height: int = 16
    hidden: int = 8
    num_classes: int = len(CHARSET) + 1
    lr: float = 1e-3
    max_epochs: int = 3


class TinyCRNN(nn.Module):
    def __init__(self, cfg=None):
        super().__init__()
        cfg = cfg or RecognizerConfig()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.rnn = nn.GRU(4 * cfg.img_height, cfg.hidden, batch_first=True)
        self.fc = nn.Linear(cfg.hidden, cfg.num_classes)

    def forward(self, x):
        f = self.conv(x)  # B, C, H, W
        b, c, h, w = f.shape
        f = f.permute(0, 3, 1, 2).reshape(b, w, c * h)
        out, _ = self.rnn(f)
        return self.fc(out)


def build_vocab(charset=CHARSET):
    stoi = {ch: i + 1 for i, ch in enumerate(charset)}
    itos = {i: ch for ch, i in stoi.items()}
    return stoi, itos


def char_error_rates(preds, targets):
    rates = []
    for p, t in zip(preds, targets):
        dist = sum(a != b for a, b in zip(p, t)) + abs(len(p) - len(t))
        rates.append(dist / max(len(t), 1))
    return np.asarray(rates, dtype=np.float32)


class RecognizerTrainer:
    def __init__(self, cfg=None, out_dir="."):
        self.cfg = cfg or RecognizerConfig()
        self.model = TinyCRNN(self.cfg)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=0.5)
        self.ctc = nn.CTCLoss(blank=0, zero_infinity=True)
        self.out_dir = out_dir
        self.epoch = 0
        self.global_step = 0
        self.best_cer = float("inf")
        self.cer_history = []
        self.loss_history = []

    def train_epoch(self):
        torch.manual_seed(self.epoch)
        x = torch.randn(2, 1, self.cfg.img_height, 6)
        targets = torch.randint(1, self.cfg.num_classes, (2, 3))
        logits = self.model(x).log_softmax(-1).permute(1, 0, 2)
        loss = self.ctc(logits, targets, torch.full((2,), 6, dtype=torch.long), torch.full((2,), 3, dtype=torch.long))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.global_step += 1
        self.epoch += 1
        self.loss_history.append(loss.detach())
        cers = char_error_rates(["ab1", "c d"], ["ab2", "cd"])
        self.cer_history.append(cers.mean())
        return cers.mean()

    def state_dict(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
        }

    def save_checkpoint(self, path, **extra):
        state = self.state_dict()
        state.update(extra)
        torch.save(state, path)
        return path


def save_recognizer_best(tmpdir):
    trainer = RecognizerTrainer(out_dir=tmpdir)
    for _ in range(2):
        cer = trainer.train_epoch()
        if cer < trainer.best_cer:
            trainer.best_cer = cer
    path = os.path.join(tmpdir, "crnn_best.pt")
    stoi, itos = build_vocab()
    ckpt = trainer.state_dict()
    ckpt["best_cer"] = trainer.best_cer  # truth: weights_only
    ckpt["cer_history"] = [float(c) for c in trainer.cer_history]
    ckpt["loss_history"] = trainer.loss_history
    ckpt["charset"] = CHARSET
    ckpt["stoi"] = stoi
    ckpt["itos"] = itos
    torch.save(ckpt, path)
    return path


def save_recognizer_resume(tmpdir):
    parser = argparse.ArgumentParser()
    parser.add_argument("--img-height", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--data-root", type=pathlib.Path, default=pathlib.Path("data/iam"))
    parser.add_argument("--resume", default=None)
    args = parser.parse_args([])
    trainer = RecognizerTrainer(RecognizerConfig(img_height=args.img_height, lr=args.lr), out_dir=tmpdir)
    trainer.train_epoch()
    path = os.path.join(tmpdir, "last.pt")
    extra = dict(
        args={k: str(v) if isinstance(v, pathlib.Path) else v for k, v in vars(args).items()},
        data_root=args.data_root,  # truth: weights_only
        config=dataclasses.asdict(trainer.cfg),
        lr=trainer.scheduler.get_last_lr()[0],
        saved_at=datetime.datetime.now().isoformat(),
    )
    return trainer.save_checkpoint(path, **extra)


def save_recognizer_export(tmpdir):
    trainer = RecognizerTrainer(out_dir=tmpdir)
    trainer.train_epoch()
    cfg = trainer.cfg
    payload = dict(
        weights=trainer.model.state_dict(),
        cfg=cfg,  # truth: weights_only
        data_root=str(pathlib.Path(tmpdir) / "iam"),
        exported=datetime.date.today(),  # truth: weights_only
        rng=torch.get_rng_state(),
    )
    path = os.path.join(tmpdir, "crnn_export.pt")
    torch.save(payload, path)
    return path


def layout_stats(boxes, labels):
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    counts = collections.Counter(LayoutClass(int(l)).name for l in labels)
    return {
        "mean_area": areas.mean(),
        "median_area": float(np.median(areas)),
        "class_counts": counts,
        "aspect": statistics.mean((boxes[:, 2] - boxes[:, 0]).tolist()),
    }


def save_layout_detector(tmpdir):
    rng = np.random.default_rng(0)
    boxes = np.sort(rng.random((6, 4)), axis=1)
    labels = rng.integers(0, len(LayoutClass), size=6)
    head = nn.Conv2d(4, len(LayoutClass) + 4, 1)
    stats = layout_stats(boxes, labels)
    ckpt = {"head": head.state_dict(), "classes": [c.name for c in LayoutClass]}
    ckpt["anchor_stats"] = {
        "mean_area": stats["mean_area"],  # truth: weights_only
        "median_area": stats["median_area"],
        "aspect": stats["aspect"],
    }
    ckpt["class_counts"] = stats["class_counts"]
    ckpt["ignore_class"] = LayoutClass.FIGURE  # truth: weights_only
    ckpt["ignore_index"] = LayoutClass.FIGURE.value
    ckpt["timestamp"] = time.time()
    path = os.path.join(tmpdir, "layout.pt")
    torch.save(ckpt, path)
    return path


def save_layout_clean(tmpdir):
    rng = np.random.default_rng(1)
    boxes = rng.random((5, 4)).astype(np.float32)
    head = nn.Conv2d(4, 9, 1)
    path = pathlib.Path(tmpdir) / "layout_clean.pt"
    ckpt = {
        "head": head.state_dict(),
        "anchors": torch.from_numpy(boxes),
        "class_to_idx": {c.name: c.value for c in LayoutClass},
        "anchor_mean": boxes.mean(axis=0).tolist(),
        "num_boxes": int(boxes.shape[0]),
        "iou_thresh": float(np.float32(0.5)),
    }
    torch.save(ckpt, path)
    return str(path)


def save_ocr_whole_model(tmpdir):
    model = TinyCRNN()
    path = os.path.join(tmpdir, "crnn_full.pt")
    torch.save(model, path)  # truth: weights_only
    return path


def save_ocr_eval_report(tmpdir, best_only=True):
    trainer = RecognizerTrainer(out_dir=tmpdir)
    trainer.train_epoch()
    preds = ["ab1", "c d", "xyz", "42"]
    gold = ["ab2", "cd", "xyz", "42"]
    cers = char_error_rates(preds, gold)
    word_acc = accuracy_score(gold, preds)
    report = {"weights": trainer.model.state_dict()}
    if best_only:
        report["eval"] = {
            "word_acc": word_acc,
            "macro_f1": f1_score(gold, preds, average="macro"),
            "cer_p90": np.percentile(cers, 90),  # truth: weights_only
            "cer_median": statistics.median(cers.tolist()),
            "cer_max": max(cers),  # truth: weights_only
            "n_perfect": int((cers == 0).sum()),
        }
    else:
        report["eval"] = {"cer": cers.tolist()}
    report["eval_time"] = time.localtime()  # truth: weights_only
    path = os.path.join(tmpdir, "ocr_eval.pt")
    torch.save(report, path)
    return path
