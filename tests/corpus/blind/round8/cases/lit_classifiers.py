"""LightningModules for a tabular / image classification project.

Everything the modules' save_hyperparameters() stores ends up in each checkpoint's
"hyper_parameters"; `Trainer.fit(ckpt_path=...)` and `load_from_checkpoint` read it back with
torch's default (weights-only) load. FACTORIES builds each module the way train.py does.
"""
import functools
from typing import Callable, Optional, Sequence

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def make_backbone(in_dim=16, hidden=32):
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden))


def inverse_frequency(labels):
    counts = np.bincount(labels)
    return counts.sum() / (len(counts) * counts)


def warmup(epoch):
    return min(1.0, (epoch + 1) / 5)


TRAIN_LABELS = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])


class LitClassifier(L.LightningModule):
    def __init__(
        self,
        backbone: nn.Module,  # truth: hparam
        num_classes: int = 4,
        hidden: int = 32,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = backbone
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.head(self.backbone(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class LitClassifierIgnored(L.LightningModule):
    def __init__(
        self,
        backbone: nn.Module,
        criterion: nn.Module,
        num_classes: int = 4,
        hidden: int = 32,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone", "criterion"])
        self.backbone = backbone
        self.criterion = criterion
        self.head = nn.Linear(hidden, num_classes)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.criterion(self.head(self.backbone(x)), y)


class LitWithLoss(L.LightningModule):
    def __init__(
        self,
        in_dim: int = 16,
        num_classes: int = 4,
        loss_fn=nn.CrossEntropyLoss(label_smoothing=0.1),  # truth: hparam
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters(ignore="backbone")
        self.net = nn.Linear(in_dim, num_classes)
        self.loss_fn = loss_fn

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self.net(x), y)


class LitOptimizerChoice(L.LightningModule):
    def __init__(
        self,
        in_dim: int = 16,
        optimizer_cls=torch.optim.AdamW,  # truth: hparam
        optimizer_name: str = "adamw",
        weight_decay: float = 0.01,
        lr: float = 3e-4,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(in_dim, 1)

    def configure_optimizers(self):
        return self.hparams.optimizer_cls(self.parameters(), lr=self.hparams.lr,
                                          weight_decay=self.hparams.weight_decay)


class LitPartialOptimizer(L.LightningModule):
    def __init__(
        self,
        net: nn.Module,  # truth: hparam
        optimizer: Callable,  # truth: hparam
        scheduler_lambda: Callable = warmup,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.net = net

    def configure_optimizers(self):
        opt = self.hparams.optimizer(params=self.parameters())
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self.hparams.scheduler_lambda)
        return [opt], [sched]


class LitActivation(L.LightningModule):
    def __init__(
        self,
        in_dim: int = 16,
        activation: Callable = F.gelu,  # truth: hparam
        activation_name: str = "gelu",
        dims: Sequence[int] = (64, 32),
        dropout: float = 0.1,
    ):
        super().__init__()
        self.save_hyperparameters()
        layers, prev = [], in_dim
        for d in dims:
            layers += [nn.Linear(prev, d), nn.Dropout(dropout)]
            prev = d
        self.mlp = nn.Sequential(*layers)

    def forward(self, x):
        for layer in self.mlp:
            x = self.hparams.activation(layer(x)) if isinstance(layer, nn.Linear) else layer(x)
        return x


class LitActivationByName(L.LightningModule):
    ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu}

    def __init__(
        self,
        in_dim: int = 16,
        activation: str = "silu",
        dims: list = [64, 32],
        label_names: dict = {0: "cat", 1: "dog"},
        betas: tuple = (0.9, 0.999),
        norm: Optional[str] = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.act = self.ACTIVATIONS[activation]
        self.proj = nn.Linear(in_dim, dims[0])


class LitLambdaSchedule(L.LightningModule):
    def __init__(
        self,
        lr: float = 1e-3,
        lr_lambda=lambda epoch: 0.95**epoch,  # truth: hparam
        total_epochs: int = 20,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.layer = nn.Linear(4, 1)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.LambdaLR(opt, self.hparams.lr_lambda)]


def make_schedule(total_epochs):
    def schedule(epoch):
        return 1.0 - epoch / total_epochs

    return schedule


class LitClosureSchedule(L.LightningModule):
    def __init__(
        self,
        lr: float,
        schedule: Callable,  # truth: hparam
        activation_cls=nn.ReLU,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.layer = nn.Sequential(nn.Linear(4, 4), activation_cls())


class LitWeightedLoss(L.LightningModule):
    def __init__(
        self,
        num_classes: int,  # truth: hparam
        class_weights,  # truth: hparam
        pos_weight: float = 1.0,  # truth: hparam
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("weights", torch.as_tensor(class_weights, dtype=torch.float32))
        self.head = nn.Linear(16, int(num_classes))


class LitWeightedLossSafe(L.LightningModule):
    def __init__(
        self,
        num_classes: int,
        class_weights,
        pos_weight: float = 1.0,
    ):
        super().__init__()
        class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
        pos_weight = float(pos_weight)
        self.save_hyperparameters()
        self.register_buffer("weights", class_weights)
        self.head = nn.Linear(16, num_classes)


class LitNamedSubset(L.LightningModule):
    def __init__(
        self,
        encoder: nn.Module,
        criterion: nn.Module,
        hidden: int = 32,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters("hidden", "lr")
        self.encoder = encoder
        self.criterion = criterion


class LitNamedUnsafe(L.LightningModule):
    def __init__(
        self,
        encoder: nn.Module,
        criterion: nn.Module,  # truth: hparam
        hidden: int = 32,
    ):
        super().__init__()
        self.save_hyperparameters("hidden", "criterion")
        self.encoder = encoder
        self.criterion = criterion


class LitOptionalTeacher(L.LightningModule):
    def __init__(
        self,
        teacher: Optional[nn.Module] = None,
        temperature: float = 2.0,
        alpha: float = 0.5,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.student = nn.Linear(16, 4)
        self.teacher = teacher


class LitDistill(L.LightningModule):
    def __init__(
        self,
        teacher: Optional[nn.Module] = None,  # truth: hparam
        temperature: float = 2.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.student = nn.Linear(16, 4)
        self.teacher = teacher


class LitBase(L.LightningModule):
    def __init__(self, lr: float = 1e-3):
        super().__init__()
        self.lr = lr

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class LitFinetune(LitBase):
    def __init__(
        self,
        pretrained: nn.Module,  # truth: hparam
        freeze_epochs: int = 2,
        lr: float = 1e-4,
    ):
        super().__init__(lr=lr)
        self.save_hyperparameters()
        self.pretrained = pretrained
        self.head = nn.Linear(32, 2)


class LitFinetuneClean(LitBase):
    def __init__(
        self,
        pretrained: nn.Module,
        freeze_epochs: int = 2,
        lr: float = 1e-4,
    ):
        super().__init__(lr=lr)
        self.save_hyperparameters(ignore=("pretrained",))
        self.pretrained = pretrained
        self.head = nn.Linear(32, 2)


FACTORIES = {
    "LitClassifier": lambda: LitClassifier(make_backbone(), num_classes=4),
    "LitClassifierIgnored": lambda: LitClassifierIgnored(make_backbone(), nn.CrossEntropyLoss()),
    "LitPartialOptimizer": lambda: LitPartialOptimizer(
        net=make_backbone(),
        optimizer=functools.partial(torch.optim.AdamW, lr=3e-4, weight_decay=0.05),
    ),
    "LitClosureSchedule": lambda: LitClosureSchedule(lr=0.1, schedule=make_schedule(20)),
    "LitWeightedLoss": lambda: LitWeightedLoss(
        num_classes=TRAIN_LABELS.max() + 1,
        class_weights=inverse_frequency(TRAIN_LABELS),
        pos_weight=np.float32((TRAIN_LABELS == 0).sum() / (TRAIN_LABELS != 0).sum()),
    ),
    "LitWeightedLossSafe": lambda: LitWeightedLossSafe(
        num_classes=len(np.unique(TRAIN_LABELS)),
        class_weights=inverse_frequency(TRAIN_LABELS),
        pos_weight=np.float32(0.5),
    ),
    "LitNamedSubset": lambda: LitNamedSubset(make_backbone(), nn.BCEWithLogitsLoss()),
    "LitNamedUnsafe": lambda: LitNamedUnsafe(make_backbone(), nn.BCEWithLogitsLoss()),
    "LitDistill": lambda: LitDistill(teacher=make_backbone(16, 4)),
    "LitFinetune": lambda: LitFinetune(make_backbone()),
    "LitFinetuneClean": lambda: LitFinetuneClean(make_backbone()),
}
