"""MoCo-v2 style pretraining with a momentum key encoder, a feature queue and a kNN monitor."""
import math
import os
import time
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.neighbors import KNeighborsClassifier
from torch import nn


def small_encoder(dim=16):
    return nn.Sequential(nn.Linear(12, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, dim))


class MoCo(nn.Module):
    def __init__(self, dim=16, queue_size=64, momentum=0.99, temperature=0.2):
        super().__init__()
        self.encoder_q = small_encoder(dim)
        self.encoder_k = small_encoder(dim)
        for p_q, p_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            p_k.data.copy_(p_q.data)
            p_k.requires_grad = False
        self.momentum = momentum
        self.temperature = temperature
        self.register_buffer("queue", F.normalize(torch.randn(dim, queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def momentum_update(self):
        for p_q, p_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            p_k.data.mul_(self.momentum).add_(p_q.data, alpha=1 - self.momentum)

    @torch.no_grad()
    def enqueue(self, keys):
        ptr = int(self.queue_ptr)
        n = keys.shape[0]
        self.queue[:, ptr:ptr + n] = keys.T
        self.queue_ptr[0] = (ptr + n) % self.queue.shape[1]

    def forward(self, x_q, x_k):
        q = F.normalize(self.encoder_q(x_q), dim=1)
        with torch.no_grad():
            self.momentum_update()
            k = F.normalize(self.encoder_k(x_k), dim=1)
        l_pos = (q * k).sum(1, keepdim=True)
        l_neg = q @ self.queue.clone().detach()
        logits = torch.cat([l_pos, l_neg], dim=1) / self.temperature
        labels = torch.zeros(logits.shape[0], dtype=torch.long)
        self.enqueue(k)
        return F.cross_entropy(logits, labels)


def temperature_schedule(t_start=0.2, t_end=0.07, epochs=10):
    return np.linspace(t_start, t_end, epochs)


def cosine_momentum(base, epoch, epochs):
    return 1 - (1 - base) * (math.cos(math.pi * epoch / epochs) + 1) / 2


@torch.no_grad()
def knn_accuracy(encoder, k=3):
    g = torch.Generator().manual_seed(0)
    x_bank, y_bank = torch.randn(30, 12, generator=g), torch.randint(0, 3, (30,), generator=g)
    x_test, y_test = torch.randn(12, 12, generator=g), torch.randint(0, 3, (12,), generator=g)
    encoder.eval()
    bank = F.normalize(encoder(x_bank), dim=1)
    feats = F.normalize(encoder(x_test), dim=1)
    sim = feats @ bank.T
    idx = sim.topk(k, dim=1).indices
    votes = y_bank[idx]
    pred = torch.mode(votes, dim=1).values
    encoder.train()
    return (pred == y_test).float().mean() * 100


def sklearn_knn_accuracy(encoder, k=3):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        encoder.eval()
        bank = encoder(torch.randn(30, 12, generator=g)).numpy()
        test = encoder(torch.randn(12, 12, generator=g)).numpy()
        encoder.train()
    y_bank = np.arange(30) % 3
    y_test = np.arange(12) % 3
    knn = KNeighborsClassifier(n_neighbors=k, metric="cosine").fit(bank, y_bank)
    return knn, knn.score(test, y_test)


def train_steps(model, optimizer, steps=2):
    g = torch.Generator().manual_seed(3)
    losses = []
    for _ in range(steps):
        x = torch.randn(8, 12, generator=g)
        loss = model(x + 0.1 * torch.randn(8, 12, generator=g), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses)


def save_moco_checkpoint(tmpdir):
    model = MoCo()
    optimizer = torch.optim.SGD(model.encoder_q.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
    temps = temperature_schedule()
    epoch = 3
    model.temperature = temps[epoch]
    losses = train_steps(model, optimizer)
    ckpt = {
        "epoch": epoch + 1,
        "arch": "mlp-moco",
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "queue": model.queue.clone(),
        "queue_ptr": int(model.queue_ptr),
        "temperature": model.temperature,  # truth: weights_only
        "temperature_schedule": temps,  # truth: weights_only
        "loss": losses.mean(),
        "knn_acc": knn_accuracy(model.encoder_q).item(),
    }
    path = os.path.join(tmpdir, "checkpoint_0004.pth.tar")
    torch.save(ckpt, path)
    return path


def save_key_encoder(tmpdir):
    model = MoCo(queue_size=32)
    optimizer = torch.optim.SGD(model.encoder_q.parameters(), lr=0.03)
    train_steps(model, optimizer, steps=1)
    model.momentum = cosine_momentum(0.99, 1, 10)
    path = os.path.join(tmpdir, "key_encoder.pt")
    torch.save(model.encoder_k, path)  # truth: weights_only
    return path


def save_ssl_trainer_state(tmpdir):
    cfg = SimpleNamespace(epochs=10, base_momentum=0.99, queue_size=32, warmup_epochs=2)
    model = MoCo(queue_size=cfg.queue_size)
    optimizer = torch.optim.SGD(model.encoder_q.parameters(), lr=0.03)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    losses = train_steps(model, optimizer)
    scheduler.step()
    knn, skl_acc = sklearn_knn_accuracy(model.encoder_q)
    bank_feats = model.queue.T.numpy()
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    state["scheduler"] = scheduler  # truth: weights_only
    state["cfg"] = vars(cfg)
    state["momentum"] = cosine_momentum(cfg.base_momentum, 1, cfg.epochs)
    state["metrics"] = {
        "knn_top1": skl_acc,
        "knn_top1_torch": float(knn_accuracy(model.encoder_q)),
        "feature_std": bank_feats.std(axis=0).mean(),  # truth: weights_only
        "loss_curve": losses.tolist(),
    }
    state["knn_classes"] = knn.classes_  # truth: weights_only
    state["wall_time"] = time.monotonic()
    torch.save(state, os.path.join(tmpdir, "ssl_state.pt"))
    return os.path.join(tmpdir, "ssl_state.pt")


def save_linear_probe(tmpdir):
    model = MoCo(queue_size=16)
    probe = nn.Linear(16, 3)
    temps = temperature_schedule(epochs=4)
    best = {"acc": 0.0, "epoch": -1}
    for epoch in range(2):
        acc = knn_accuracy(model.encoder_q)
        if acc.item() > best["acc"]:
            best = {"acc": acc.item(), "epoch": epoch}
    path = os.path.join(tmpdir, "linear_probe.pt")
    torch.save({
        "backbone": model.encoder_q.state_dict(),
        "probe": probe.state_dict(),
        "best": best,
        "temperatures": torch.as_tensor(temps),
        "final_temperature": float(temps[-1]),
        "queue_ptr": model.queue_ptr,
    }, path)
    return path
