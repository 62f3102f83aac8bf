"""FixMatch / pseudo-labelling: confidence thresholds, EMA teacher, per-class thresholds
(FlexMatch-style), and the resume checkpoints a semi-supervised trainer writes."""
import copy
import os
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.metrics import accuracy_score, confusion_matrix
from torch import nn


@dataclass
class FixMatchConfig:
    num_classes: int = 3
    threshold: float = 0.95
    lambda_u: float = 1.0
    mu: int = 2
    ema_decay: float = 0.999
    T: float = 1.0


def build_net(num_classes=3):
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, num_classes))


class ModelEMA:
    def __init__(self, model, decay):
        self.ema = copy.deepcopy(model)
        self.decay = decay
        for p in self.ema.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        for e, m in zip(self.ema.parameters(), model.parameters()):
            e.mul_(self.decay).add_(m.detach(), alpha=1 - self.decay)


class FixMatchTrainer:
    def __init__(self, cfg: FixMatchConfig):
        torch.manual_seed(0)
        self.cfg = cfg
        self.model = build_net(cfg.num_classes)
        self.ema = ModelEMA(self.model, cfg.ema_decay)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.03, momentum=0.9, nesterov=True)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=1024)
        self.step = 0
        self.mask_ratios = []
        self.pseudo_counts = Counter()
        self.best_acc = 0.0

    def train_step(self, x_l, y_l, x_weak, x_strong):
        logits_l = self.model(x_l)
        loss_x = F.cross_entropy(logits_l, y_l)
        with torch.no_grad():
            probs = torch.softmax(self.ema.ema(x_weak) / self.cfg.T, dim=-1)
            max_probs, targets_u = probs.max(dim=-1)
            mask = max_probs.ge(self.cfg.threshold).float()
        loss_u = (F.cross_entropy(self.model(x_strong), targets_u, reduction="none") * mask).mean()
        loss = loss_x + self.cfg.lambda_u * loss_u
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.ema.update(self.model)
        self.step += 1
        self.mask_ratios.append(mask.mean().item())
        self.pseudo_counts.update(targets_u[mask.bool()].tolist())
        return loss.detach()

    def fit(self, steps=3):
        g = torch.Generator().manual_seed(1)
        for _ in range(steps):
            x_l = torch.randn(4, 6, generator=g)
            y_l = torch.randint(0, self.cfg.num_classes, (4,), generator=g)
            x_u = torch.randn(4 * self.cfg.mu, 6, generator=g)
            self.train_step(x_l, y_l, x_u, x_u + 0.1 * torch.randn_like(x_u))

    def evaluate(self):
        rng = np.random.default_rng(0)
        x = torch.as_tensor(rng.normal(size=(12, 6)), dtype=torch.float32)
        y = rng.integers(0, self.cfg.num_classes, size=12)
        preds = self.ema.ema(x).argmax(-1).numpy()
        return y, preds

    def save_checkpoint(self, path, acc):
        is_best = acc > self.best_acc
        self.best_acc = max(acc, self.best_acc)
        torch.save(
            {
                "step": self.step,
                "state_dict": self.model.state_dict(),
                "ema_state_dict": self.ema.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "best_acc": self.best_acc,
                "is_best": is_best,
                "config": asdict(self.cfg),
                "mask_ratio": float(np.mean(self.mask_ratios)),
                "pseudo_counts": self.pseudo_counts,
            },
            path,
        )


def save_fixmatch_resume(tmpdir):
    trainer = FixMatchTrainer(FixMatchConfig())
    trainer.fit(steps=2)
    y, preds = trainer.evaluate()
    path = os.path.join(tmpdir, "fixmatch_last.pth.tar")
    trainer.save_checkpoint(path, accuracy_score(y, preds))
    return path


def save_fixmatch_eval(tmpdir):
    trainer = FixMatchTrainer(FixMatchConfig(threshold=0.5))
    trainer.fit(steps=2)
    y, preds = trainer.evaluate()
    cm = confusion_matrix(y, preds, labels=list(range(trainer.cfg.num_classes)))
    per_class_acc = cm.diagonal() / np.maximum(cm.sum(axis=1), 1)
    ckpt = {"ema_state_dict": trainer.ema.ema.state_dict()}
    ckpt["confusion"] = torch.from_numpy(cm)
    ckpt["per_class_acc"] = per_class_acc  # truth: weights_only
    ckpt["mean_acc"] = per_class_acc.mean()  # truth: weights_only
    ckpt["top1"] = accuracy_score(y, preds)
    ckpt["mask_ratio"] = np.mean(trainer.mask_ratios)  # truth: weights_only
    ckpt["ema"] = trainer.ema  # truth: weights_only
    if trainer.cfg.threshold < 0.9:
        ckpt["relaxed_threshold"] = np.float32(trainer.cfg.threshold)  # truth: weights_only
    path = os.path.join(tmpdir, "fixmatch_eval.pt")
    torch.save(ckpt, path)
    return path


def flexmatch_thresholds(counts, num_classes, tau):
    learning = np.array([counts.get(c, 0) for c in range(num_classes)], dtype=np.float64)
    beta = learning / max(learning.max(), 1.0)
    return tau * (beta / (2 - beta))


def save_flexmatch_state(tmpdir):
    trainer = FixMatchTrainer(FixMatchConfig(threshold=0.0))
    trainer.fit(steps=2)
    thresholds = flexmatch_thresholds(trainer.pseudo_counts, trainer.cfg.num_classes, 0.95)
    state = dict(
        model=trainer.model.state_dict(),
        class_thresholds=thresholds,  # truth: weights_only
        class_thresholds_list=thresholds.tolist(),
        selected_per_class=defaultdict(int, trainer.pseudo_counts),  # truth: weights_only
        selected_total=sum(trainer.pseudo_counts.values()),
        warmup_done=bool(thresholds.min() > 0),
        threshold_max=thresholds.max(),  # truth: weights_only
    )
    path = os.path.join(tmpdir, "flexmatch.pt")
    torch.save(state, path)
    return path


def save_pseudo_labels(tmpdir):
    trainer = FixMatchTrainer(FixMatchConfig())
    x_u = torch.randn(8, 6)
    with torch.no_grad():
        probs = torch.softmax(trainer.ema.ema(x_u), dim=-1)
    conf, labels = probs.max(-1)
    keep = conf > 0.4
    ckpt = {
        "indices": torch.nonzero(keep).flatten(),
        "labels": labels[keep],
        "confidence": conf[keep],
        "threshold": 0.4,
        "coverage": keep.float().mean().item(),
        "label_hist": torch.bincount(labels, minlength=3).tolist(),
    }
    if keep.any():
        ckpt["mean_confidence"] = conf[keep].mean().item()
    else:
        ckpt["mean_confidence"] = 0.0
    path = os.path.join(tmpdir, "pseudo_labels.pt")
    torch.save(ckpt, path)
    return path


class LitFixMatch(L.LightningModule):
    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int = 3,
        threshold: float = 0.95,  # truth: hparam
        lambda_u: float = 1.0,
        class_prior=None,  # truth: hparam
        unsup_loss=nn.CrossEntropyLoss(reduction="none"),  # truth: hparam
        lr: float = 0.03,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.head(self.backbone(x))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class LitMeanTeacher(L.LightningModule):
    def __init__(
        self,
        cfg,  # truth: hparam
        ema_decay: float = 0.99,
        consistency_weight: float = 1.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.student = build_net(cfg.model.num_classes)
        self.teacher = copy.deepcopy(self.student)

    def forward(self, x):
        return self.student(x)


class LitPseudoLabel(L.LightningModule):
    def __init__(
        self,
        num_classes: int = 3,
        threshold: float = 0.9,
        warmup_epochs: int = 2,
        label_smoothing: float = 0.0,
        class_weights=None,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = build_net(num_classes)
        self.criterion = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)

    def forward(self, x):
        return self.net(x)


def _label_stats():
    y = np.array([0, 0, 1, 2, 2, 2])
    freq = np.bincount(y, minlength=3) / len(y)
    return freq


FACTORIES = {
    "LitFixMatch": lambda: LitFixMatch(
        nn.Sequential(nn.Linear(6, 16), nn.ReLU()),
        threshold=np.float32(0.95),
        class_prior=_label_stats(),
    ),
    "LitMeanTeacher": lambda: LitMeanTeacher(
        OmegaConf.create({"model": {"num_classes": 3}, "optim": {"lr": 0.01}}),
        ema_decay=float(np.float32(0.99)),
    ),
    "LitPseudoLabel": lambda: LitPseudoLabel(
        threshold=0.9,
        class_weights=torch.as_tensor(1.0 / np.maximum(_label_stats(), 1e-3), dtype=torch.float32),
        label_smoothing=float(np.round(0.05, 2)),
    ),
    "FixMatchTrainer": lambda: FixMatchTrainer(FixMatchConfig()),
    "ModelEMA": lambda: ModelEMA(build_net(), 0.999),
}
