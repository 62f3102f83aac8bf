"""Traffic-sign recognition on an embedded board: distil a wide CNN teacher into a tiny student.

Hinton-style distillation (soft targets at temperature T, weighted by alpha, plus hard-label CE),
post-hoc temperature scaling of the student, and a per-class report for the long tail of rare signs.
Configuration is a dataclass; the training loop lives in `Distiller`.
"""
import copy
import enum
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.optimize import minimize_scalar
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, top_k_accuracy_score
from torch.utils.data import DataLoader, TensorDataset

SIGN_NAMES = [
    "speed_20", "speed_30", "speed_50", "speed_60", "speed_70", "speed_80",
    "no_passing", "priority_road", "yield", "stop", "no_entry", "roundabout",
]
MEAN = (0.3403, 0.3121, 0.3214)
STD = (0.2724, 0.2608, 0.2669)


class AugPolicy(enum.Enum):
    NONE = "none"
    TRIVIAL = "trivialaugment"
    RANDAUG = "randaugment"


@dataclass
class KDConfig:
    num_classes: int = len(SIGN_NAMES)
    image_size: int = 16
    temperature: float = 4.0
    alpha: float = 0.7  # weight of the soft (distillation) term
    lr: float = 0.05
    epochs: int = 1
    teacher_epochs: int = 1
    batch_size: int = 64
    n_train: int = 480
    n_val: int = 160
    teacher_width: int = 24
    student_width: int = 8
    policy: AugPolicy = AugPolicy.TRIVIAL
    output_dir: Path = Path("runs/kd")
    seed: int = 0
    tags: list = field(default_factory=lambda: ["gtsrb", "kd"])


# ----------------------------------------------------------------------------- data

def make_synthetic_signs(cfg, n, seed):
    """Long-tailed synthetic 'signs': a class-specific colour blob and stripe pattern plus noise."""
    g = torch.Generator().manual_seed(seed)
    freq = 1.0 / np.arange(1, cfg.num_classes + 1) ** 0.8
    rng = np.random.default_rng(seed)
    y = rng.choice(cfg.num_classes, size=n, p=freq / freq.sum())
    s = cfg.image_size
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, s), torch.linspace(-1, 1, s), indexing="ij")
    base = []
    for c in range(cfg.num_classes):
        colour = torch.tensor([(c * 37 % 255) / 255, (c * 91 % 255) / 255, (c * 53 % 255) / 255])
        stripes = torch.sin((c + 1) * 2.0 * xx + c * yy)
        disc = ((xx ** 2 + yy ** 2) < 0.6).float()
        base.append(colour[:, None, None] * disc + 0.3 * stripes)
    base = torch.stack(base)
    x = base[torch.from_numpy(y)] + 0.35 * torch.randn(n, 3, s, s, generator=g)
    x = (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    return TensorDataset(x.float(), torch.from_numpy(y).long()), y


# ----------------------------------------------------------------------------- models

def conv_bn(cin, cout, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class TeacherNet(nn.Module):
    def __init__(self, num_classes=len(SIGN_NAMES), width=24):
        super().__init__()
        self.features = nn.Sequential(conv_bn(3, width), conv_bn(width, width), nn.MaxPool2d(2),
                                      conv_bn(width, 2 * width), conv_bn(2 * width, 2 * width), nn.MaxPool2d(2),
                                      conv_bn(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * width, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class StudentNet(nn.Module):
    """Depthwise-separable student that fits the board's 256 KB budget."""

    def __init__(self, num_classes=len(SIGN_NAMES), width=8):
        super().__init__()
        self.width = width
        self.stem = conv_bn(3, width, stride=2)
        self.dw = conv_bn(width, width, groups=width)
        self.pw = nn.Sequential(nn.Conv2d(width, 2 * width, 1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.pw(self.dw(self.stem(x)))).flatten(1))


# ----------------------------------------------------------------------------- metrics

def expected_calibration_error(probs, labels, n_bins=10):
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    bin_acc = np.zeros(n_bins)
    bin_conf = np.zeros(n_bins)
    for b in range(n_bins):
        if counts[b]:
            bin_acc[b] = correct[which == b].mean()
            bin_conf[b] = conf[which == b].mean()
    ece = np.sum(counts / counts.sum() * np.abs(bin_acc - bin_conf))
    return ece, bin_acc, bin_conf, counts


def fit_temperature(logits, labels):
    """Temperature scaling (Guo et al. 2017): one scalar T minimising the validation NLL."""
    def nll(t):
        return F.cross_entropy(logits / t, labels).item()
    return minimize_scalar(nll, bounds=(0.05, 10.0), method="bounded")


def confusable_pairs(cm, names, k=5):
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(off, axis=None)[::-1][:k]
    return [(names[i], names[j], off[i, j]) for i, j in zip(*np.unravel_index(flat, off.shape))]


# ----------------------------------------------------------------------------- training

def pretrain_teacher(teacher, loader, epochs, lr=0.05):
    opt = torch.optim.SGD(teacher.parameters(), lr=lr, momentum=0.9)
    teacher.train()
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            F.cross_entropy(teacher(xb), yb, label_smoothing=0.1).backward()
            opt.step()
    return teacher.eval()


class Distiller:
    def __init__(self, teacher, student, cfg):
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.student = student
        self.cfg = cfg
        self.optimizer = torch.optim.SGD(student.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(cfg.epochs, 1))
        self.criterion = nn.KLDivLoss(reduction="batchmean")
        self.epoch = 0
        self.log = []
        self.best_top1 = 0.0
        self.best_epoch = -1
        self.best_state = None
        self.last_kd = None

    def distill_loss(self, s_logits, t_logits, y):
        T = self.cfg.temperature
        soft = self.criterion(F.log_softmax(s_logits / T, -1), F.softmax(t_logits / T, -1)) * T * T
        hard = F.cross_entropy(s_logits, y)
        return self.cfg.alpha * soft + (1 - self.cfg.alpha) * hard, soft.detach(), hard.detach()

    def train_epoch(self, loader):
        self.student.train()
        kd_losses, ce_losses = [], []
        for xb, yb in loader:
            with torch.no_grad():
                t_logits = self.teacher(xb)
            loss, soft, hard = self.distill_loss(self.student(xb), t_logits, yb)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            kd_losses.append(soft.item())
            ce_losses.append(hard.item())
        self.scheduler.step()
        return np.mean(kd_losses), np.mean(ce_losses)

    @torch.no_grad()
    def predict(self, loader, net=None):
        net = (net or self.student).eval()
        logits, ys = zip(*[(net(xb), yb) for xb, yb in loader])
        return torch.cat(logits), torch.cat(ys)

    def evaluate(self, loader, net=None):
        logits, y = self.predict(loader, net)
        probs = logits.softmax(-1).numpy()
        top1 = accuracy_score(y.numpy(), probs.argmax(1))
        top5 = top_k_accuracy_score(y.numpy(), probs, k=5, labels=np.arange(self.cfg.num_classes))
        return top1, top5, logits, y

    def agreement(self, loader):
        s_logits, _ = self.predict(loader)
        t_logits, _ = self.predict(loader, self.teacher)
        return (s_logits.argmax(1) == t_logits.argmax(1)).float().mean().item()

    def fit(self, train_loader, val_loader):
        for epoch in range(self.cfg.epochs):
            kd, ce = self.train_epoch(train_loader)
            top1, top5, _, _ = self.evaluate(val_loader)
            self.log.append({"epoch": epoch, "kd": float(kd), "ce": float(ce), "top1": top1, "top5": top5,
                             "lr": self.scheduler.get_last_lr()[0]})
            self.last_kd = kd
            if top1 >= self.best_top1:
                self.best_top1, self.best_epoch = top1, epoch
                self.best_state = copy.deepcopy(self.student.state_dict())
            self.epoch = epoch + 1
        return self

    def state_dict(self):
        return {
            "student": self.student.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "log": self.log,
            "best_top1": self.best_top1,
        }


def run_distillation(cfg):
    torch.manual_seed(cfg.seed)
    train_ds, train_y = make_synthetic_signs(cfg, cfg.n_train, cfg.seed)
    val_ds, _ = make_synthetic_signs(cfg, cfg.n_val, cfg.seed + 1)
    train_loader = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True,
                              generator=torch.Generator().manual_seed(cfg.seed))
    val_loader = DataLoader(val_ds, batch_size=256)
    teacher = pretrain_teacher(TeacherNet(cfg.num_classes, cfg.teacher_width), train_loader, cfg.teacher_epochs)
    distiller = Distiller(teacher, StudentNet(cfg.num_classes, cfg.student_width), cfg)
    distiller.fit(train_loader, val_loader)
    return distiller, train_loader, val_loader, train_y


FACTORIES = {
    "AugPolicy": lambda: AugPolicy.RANDAUG,
    "Distiller": lambda: Distiller(TeacherNet(width=4), StudentNet(width=4), KDConfig()),
}


# ----------------------------------------------------------------------------- checkpoints

def save_student_checkpoint(tmpdir):
    cfg = KDConfig(temperature=3.0, alpha=0.8)
    distiller, _, val_loader, _ = run_distillation(cfg)
    top1, top5, logits, y = distiller.evaluate(val_loader)
    ece, _, _, _ = expected_calibration_error(logits.softmax(-1).numpy(), y.numpy())
    ckpt = {
        "student": distiller.best_state,
        "config": cfg,  # truth: weights_only
        "temperature": cfg.temperature,
        "top1": top1,
        "top5": top5,
        "ece": ece,  # truth: weights_only
        "best_epoch": distiller.best_epoch,
        "log": distiller.log,
    }
    path = os.path.join(tmpdir, "student_best.pt")
    torch.save(ckpt, path)
    return path


def save_distillation_state(tmpdir):
    cfg = KDConfig(policy=AugPolicy.RANDAUG, output_dir=Path("runs") / "kd_randaug")
    distiller, _, val_loader, _ = run_distillation(cfg)
    ckpt = distiller.state_dict()
    ckpt["teacher"] = distiller.teacher  # truth: weights_only
    ckpt["policy"] = cfg.policy  # truth: weights_only
    ckpt["policy_name"] = cfg.policy.value
    ckpt["output_dir"] = str(cfg.output_dir)
    ckpt["agreement"] = distiller.agreement(val_loader)
    ckpt["last_kd_loss"] = float(distiller.last_kd)
    ckpt["teacher_params"] = sum(p.numel() for p in distiller.teacher.parameters())
    ckpt["torch"] = torch.__version__  # truth: weights_only
    ckpt["tags"] = cfg.tags
    path = os.path.join(tmpdir, "distill_state.pt")
    torch.save(ckpt, path)
    return path


def save_calibration(tmpdir):
    cfg = KDConfig()
    distiller, _, val_loader, _ = run_distillation(cfg)
    logits, y = distiller.predict(val_loader)
    res = fit_temperature(logits, y)
    ece_before, _, _, _ = expected_calibration_error(logits.softmax(-1).numpy(), y.numpy())
    ece_after, bin_acc, bin_conf, counts = expected_calibration_error((logits / res.x).softmax(-1).numpy(), y.numpy())
    calib = {
        "temperature": res.x,  # truth: weights_only
        "nll_after": res.fun,  # truth: weights_only
        "n_evals": res.nfev,
        "converged": bool(res.success),
        "ece_before": float(ece_before),
        "ece_after": round(float(ece_after), 5),
        "reliability": {
            "bin_acc": bin_acc.tolist(),
            "bin_conf": bin_conf,  # truth: weights_only
            "count": counts.tolist(),
        },
        "fitted_at": datetime.now(timezone.utc),  # truth: weights_only
    }
    path = os.path.join(tmpdir, "calibration.pt")
    torch.save(calib, path)
    return path


def save_per_class_report(tmpdir):
    cfg = KDConfig(n_val=240)
    distiller, _, val_loader, train_y = run_distillation(cfg)
    logits, y = distiller.predict(val_loader)
    y_true, y_pred = y.numpy(), logits.argmax(1).numpy()
    labels = list(range(cfg.num_classes))
    f1s = f1_score(y_true, y_pred, average=None, labels=labels, zero_division=0)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    per_class = {}
    for i, name in enumerate(SIGN_NAMES):
        support = cm[i].sum()
        per_class[name] = {
            "support": int(support),
            "recall": cm[i, i] / support if support else 0.0,  # truth: weights_only
            "f1": float(f1s[i]),
        }
    report = {
        "per_class": per_class,
        "confusable": confusable_pairs(cm, SIGN_NAMES),  # truth: weights_only
        "worst_class": SIGN_NAMES[int(np.argmin(f1s))],
        "macro_f1": f1_score(y_true, y_pred, average="macro", zero_division=0),
        "class_counts": Counter(train_y.tolist()),
        "class_prior": np.bincount(train_y, minlength=cfg.num_classes) / len(train_y),  # truth: weights_only
        "rare_classes": sorted(SIGN_NAMES[c] for c in set(train_y.tolist()) if (train_y == c).sum() < 20),
    }
    path = os.path.join(tmpdir, "per_class.pt")
    torch.save(report, path)
    return path


def save_deploy_student(tmpdir):
    cfg = KDConfig(student_width=6)
    distiller, _, _, _ = run_distillation(cfg)
    student = copy.deepcopy(distiller.student).eval()
    student.load_state_dict(distiller.best_state)
    path = os.path.join(tmpdir, "student_deploy.pt")
    torch.save(student, path)  # truth: weights_only
    return path


def save_export_bundle(tmpdir):
    cfg = KDConfig()
    distiller, _, val_loader, _ = run_distillation(cfg)
    teacher_top1, _, _, _ = distiller.evaluate(val_loader, distiller.teacher)
    student = distiller.student
    bundle = {
        "state_dict": student.state_dict(),
        "arch": type(student).__name__,
        "width": student.width,
        "input_size": (3, cfg.image_size, cfg.image_size),
        "normalize": {"mean": MEAN, "std": STD},
        "class_names": list(SIGN_NAMES),
        "class_to_idx": {name: i for i, name in enumerate(SIGN_NAMES)},
        "config": {**asdict(cfg), "policy": cfg.policy.value, "output_dir": str(cfg.output_dir)},
        "dtype": torch.float32,
        "torch_version": str(torch.__version__),
        "teacher_top1": teacher_top1,
        "student_top1": distiller.best_top1,
        "size_kb": sum(t.numel() * t.element_size() for t in student.state_dict().values()) / 1024,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path = os.path.join(tmpdir, "student_export.pt")
    torch.save(bundle, path)
    return path
