"""Tiny CLIP-style image-text contrastive training + retrieval eval.

Layout follows open_clip's train.py loosely: an OmegaConf config, a learnable
logit_scale initialised at log(1/0.07) and clamped at 100, symmetric InfoNCE,
recall@k in both directions over a held-out caption bank, EMA weights for eval.
"""
import copy
import functools
import math
import os
import re
import time
from collections import Counter, defaultdict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf

CFG = OmegaConf.create({
    "model": {"embed_dim": 32, "width": 32, "context_length": 16, "init_temperature": 0.07, "max_logit_scale": 100.0},
    "data": {"image_size": 32, "mean": [0.481, 0.458, 0.408], "std": [0.269, 0.261, 0.276], "captions_per_image": 2},
    "train": {"lr": 5e-4, "wd": 0.1, "epochs": 2, "batch_size": 16, "ema_decay": 0.99, "precision": "fp32"},
})

COLORS = ["red", "green", "blue", "yellow", "black", "white"]
SHAPES = ["circle", "square", "triangle", "star"]


class SimpleTokenizer:
    def __init__(self, context_length=16):
        self.context_length = context_length
        self.vocab = {"<pad>": 0, "<sot>": 1, "<eot>": 2, "<unk>": 3}
        self.counts = Counter()

    def fit(self, captions):
        for c in captions:
            for w in re.findall(r"[a-z]+", c.lower()):
                self.counts[w] += 1
                self.vocab.setdefault(w, len(self.vocab))
        return self

    def __call__(self, texts):
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = [1] + [self.vocab.get(w, 3) for w in re.findall(r"[a-z]+", t.lower())] + [2]
            ids = ids[: self.context_length]
            out[i, : len(ids)] = torch.tensor(ids)
        return out


class TinyCLIP(nn.Module):
    def __init__(self, embed_dim=32, vocab_size=64, width=32, context_length=16, init_temperature=0.07):
        super().__init__()
        self.visual = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.GELU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, embed_dim),
        )
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.randn(context_length, width) * 0.01)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Linear(width, embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / init_temperature))

    def encode_image(self, images):
        return F.normalize(self.visual(images), dim=-1)

    def encode_text(self, tokens):
        x = self.token_embedding(tokens) + self.positional_embedding
        eot = (tokens == 2).int().argmax(-1)
        x = self.ln_final(x)[torch.arange(tokens.size(0)), eot]
        return F.normalize(self.text_projection(x), dim=-1)

    def forward(self, images, tokens):
        return self.encode_image(images), self.encode_text(tokens), self.logit_scale.exp()


def clip_loss(img, txt, logit_scale):
    logits = logit_scale * img @ txt.t()
    labels = torch.arange(img.size(0))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def random_resized_crop(img, size, scale=(0.6, 1.0)):
    s = np.random.uniform(*scale)
    h = max(4, int(img.shape[-1] * math.sqrt(s)))
    top, left = np.random.randint(0, img.shape[-1] - h + 1, 2)
    crop = img[..., top:top + h, left:left + h]
    return F.interpolate(crop[None], size=(size, size), mode="bilinear", align_corners=False)[0]


def synth_pairs(n=64, size=32, seed=0):
    rng = np.random.default_rng(seed)
    images, captions = [], []
    for _ in range(n):
        c, s = rng.integers(len(COLORS)), rng.integers(len(SHAPES))
        img = torch.zeros(3, size, size)
        img[c % 3] += 0.5 + 0.1 * s
        img += torch.from_numpy(rng.normal(0, 0.1, (3, size, size)).astype(np.float32))
        images.append(img)
        captions.append(f"a photo of a {COLORS[c]} {SHAPES[s]}")
    return torch.stack(images), captions


class ModelEMA:
    def __init__(self, model=None, decay=0.999):
        self.module = copy.deepcopy(model if model is not None else TinyCLIP()).eval()
        self.decay = decay
        self.updates = 0
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / 200))
        for e, m in zip(self.module.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(d).add_(m.detach(), alpha=1 - d)


class EmbeddingBank:
    """Ring buffer of text embeddings for hard-negative mining and retrieval eval."""

    def __init__(self, dim=32, size=128):
        self.feats = torch.zeros(size, dim)
        self.caption_ids = np.full(size, -1, dtype=np.int64)
        self.ptr = 0
        self.full = False

    def enqueue(self, feats, ids):
        n = feats.size(0)
        idx = (self.ptr + np.arange(n)) % len(self.caption_ids)
        self.feats[idx] = feats.detach()
        self.caption_ids[idx] = ids
        self.full = self.full or self.ptr + n >= len(self.caption_ids)
        self.ptr = int((self.ptr + n) % len(self.caption_ids))


@torch.no_grad()
def retrieval_metrics(img, txt, ks=(1, 5, 10)):
    sims = (img @ txt.t()).numpy()
    gt = np.arange(len(sims))
    i2t_rank = (sims > sims[gt, gt][:, None]).sum(1)
    t2i_rank = (sims.T > sims[gt, gt][:, None]).sum(1)
    out = {}
    for k in ks:
        out[f"image_to_text_R@{k}"] = (i2t_rank < k).mean()
        out[f"text_to_image_R@{k}"] = (t2i_rank < k).mean()
    out["image_to_text_median_rank"] = np.median(i2t_rank) + 1
    out["text_to_image_mean_rank"] = float(t2i_rank.mean() + 1)
    return out


class ClipTrainer:
    def __init__(self, cfg=CFG, captions=None):
        self.cfg = cfg
        self.tokenizer = SimpleTokenizer(cfg.model.context_length).fit(captions or ["a photo of a red circle"])
        self.model = TinyCLIP(cfg.model.embed_dim, vocab_size=64, width=cfg.model.width,
                              context_length=cfg.model.context_length,
                              init_temperature=cfg.model.init_temperature)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.wd)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=100)
        self.scaler = torch.amp.GradScaler("cpu", enabled=cfg.train.precision == "amp")
        self.ema = ModelEMA(self.model, decay=cfg.train.ema_decay)
        self.bank = EmbeddingBank(cfg.model.embed_dim)
        self.mean = torch.tensor(list(cfg.data.mean)).view(3, 1, 1)
        self.std = torch.tensor(list(cfg.data.std)).view(3, 1, 1)
        self.step = 0
        self.best_r1 = 0.0
        self.loss_log = []

    def train_epoch(self, images, captions):
        self.model.train()
        tokens = self.tokenizer(captions)
        bs = self.cfg.train.batch_size
        for i in range(0, len(images), bs):
            x = torch.stack([random_resized_crop(im, self.cfg.data.image_size) for im in images[i:i + bs]])
            x = (x - self.mean) / self.std
            img, txt, scale = self.model(x, tokens[i:i + bs])
            loss = clip_loss(img, txt, scale)
            self.optimizer.zero_grad()
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            with torch.no_grad():  # open_clip clamps to ln(100)
                self.model.logit_scale.clamp_(0, math.log(self.cfg.model.max_logit_scale))
            self.ema.update(self.model)
            self.bank.enqueue(txt, np.arange(i, i + txt.size(0)))
            self.step += 1
            self.loss_log.append(loss.item())

    @torch.no_grad()
    def evaluate(self, images, captions, use_ema=True):
        model = self.ema.module if use_ema else self.model
        img = model.encode_image((images - self.mean) / self.std)
        txt = model.encode_text(self.tokenizer(captions))
        metrics = retrieval_metrics(img, txt)
        if metrics["image_to_text_R@1"] > self.best_r1:
            self.best_r1 = metrics["image_to_text_R@1"]
        return metrics


def caption_stats(tokenizer, captions):
    lens = np.array([len(re.findall(r"[a-z]+", c)) for c in captions])
    doc_freq = defaultdict(int)
    oov = total = 0
    for c in captions:
        words = re.findall(r"[a-z]+", c.lower())
        for w in set(words):
            doc_freq[w] += 1
        oov += sum(w not in tokenizer.vocab for w in words)
        total += len(words)
    return lens, doc_freq, oov / max(total, 1)


# --------------------------------------------------------------------------- checkpoints

def save_clip_epoch(tmpdir):
    torch.manual_seed(0)
    np.random.seed(0)
    images, captions = synth_pairs(48)
    trainer = ClipTrainer(captions=captions)
    for completed_epoch in range(1, CFG.train.epochs + 1):
        trainer.train_epoch(images, captions)
    checkpoint_dict = {
        "epoch": completed_epoch,
        "name": "tinyclip-rn",
        "state_dict": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
    }
    if trainer.scaler is not None:
        checkpoint_dict["scaler"] = trainer.scaler.state_dict()
    checkpoint_dict["lr_scheduler"] = trainer.scheduler.state_dict()
    checkpoint_dict["ema_state_dict"] = trainer.ema.module.state_dict()
    checkpoint_dict["ema_updates"] = trainer.ema.updates
    checkpoint_dict["logit_scale"] = trainer.model.logit_scale.exp().item()
    checkpoint_dict["temperature"] = 1.0 / trainer.model.logit_scale.exp().item()
    checkpoint_dict["config"] = CFG  # truth: weights_only
    checkpoint_dict["config_dict"] = OmegaConf.to_container(CFG, resolve=True)
    checkpoint_dict["image_size"] = CFG.data.image_size
    checkpoint_dict["image_mean"] = CFG.data.mean  # truth: weights_only
    checkpoint_dict["image_std"] = list(CFG.data.std)
    checkpoint_dict["train_transform"] = functools.partial(random_resized_crop, size=CFG.data.image_size)  # truth: weights_only
    checkpoint_dict["final_loss"] = trainer.loss_log[-1]
    path = os.path.join(tmpdir, f"epoch_{completed_epoch}.pt")
    torch.save(checkpoint_dict, path)
    return path


def save_clip_best(tmpdir):
    torch.manual_seed(1)
    np.random.seed(1)
    images, captions = synth_pairs(40, seed=1)
    val_images, val_captions = synth_pairs(24, seed=2)
    trainer = ClipTrainer(captions=captions)
    trainer.train_epoch(images, captions)
    metrics = trainer.evaluate(val_images, val_captions)
    raw = trainer.evaluate(val_images, val_captions, use_ema=False)
    best = {
        "state_dict": trainer.ema.module.state_dict(),
        "step": trainer.step,
        "recall": {k: float(v) for k, v in metrics.items()},
        "i2t_r1": metrics["image_to_text_R@1"],  # truth: weights_only
        "t2i_r5": float(metrics["text_to_image_R@5"]),
        "median_rank": int(metrics["image_to_text_median_rank"]),
        "mean_rank": raw["text_to_image_mean_rank"],
        "best_r1": trainer.best_r1,  # truth: weights_only
        "ema_gain_r1": float(metrics["image_to_text_R@1"] - raw["image_to_text_R@1"]),
        "ema": trainer.ema,  # truth: weights_only
        "ema_decay": trainer.ema.decay,
    }
    best["text_bank"] = trainer.bank.feats.clone()
    best["bank_caption_ids"] = trainer.bank.caption_ids  # truth: weights_only
    best["bank_ptr"] = trainer.bank.ptr
    best["bank_full"] = trainer.bank.full
    path = os.path.join(tmpdir, "best_recall.pt")
    torch.save(best, path)
    return path


def save_tokenizer_stats(tmpdir):
    _, captions = synth_pairs(80, seed=3)
    tok = SimpleTokenizer(CFG.model.context_length).fit(captions[:60])
    lens, doc_freq, oov_rate = caption_stats(tok, captions[60:])
    stats = dict(
        vocab=tok.vocab,
        vocab_size=len(tok.vocab),
        token_counts=tok.counts,
        top_tokens=tok.counts.most_common(5),
        doc_freq=doc_freq,  # truth: weights_only
        doc_freq_plain=dict(doc_freq),
        caption_len_mean=lens.mean().item(),
        caption_len_p95=float(np.percentile(lens, 95)),
        caption_len_max=int(lens.max()),
        oov_rate=oov_rate,
        colors=sorted(set(COLORS)),
        context_length=tok.context_length,
    )
    path = os.path.join(tmpdir, "tokenizer_stats.pt")
    torch.save(stats, path)
    return path


def save_clip_for_zero_shot(tmpdir):
    """The old demo notebook pickles the whole model; kept for the eval scripts that still torch.load it."""
    torch.manual_seed(4)
    model = TinyCLIP(vocab_size=64)
    model.eval()
    path = os.path.join(tmpdir, "tinyclip_full.pt")
    torch.save(model, path)  # truth: weights_only
    return path


def save_clip_zero_shot_head(tmpdir):
    """Zero-shot classifier weights: one averaged text embedding per class name."""
    torch.manual_seed(5)
    _, captions = synth_pairs(40, seed=5)
    tok = SimpleTokenizer().fit(captions)
    model = TinyCLIP(vocab_size=64)
    templates = ["a photo of a {}", "a drawing of a {}", "a {} shape"]
    with torch.no_grad():
        weights = torch.stack([
            model.encode_text(tok([t.format(s) for t in templates])).mean(0) for s in SHAPES
        ])
    head = {
        "classnames": list(SHAPES),
        "templates": templates,
        "zeroshot_weights": F.normalize(weights, dim=-1),
        "logit_scale": float(model.logit_scale.exp()),
        "vocab": dict(tok.vocab),
        "embed_dim": weights.shape[1],
        "created": time.strftime("%Y-%m-%d"),
    }
    path = os.path.join(tmpdir, "zeroshot_head.pt")
    torch.save(head, path)
    return path


FACTORIES = {}
