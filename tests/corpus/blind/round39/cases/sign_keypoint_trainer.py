"""Isolated and continuous sign recognition from MediaPipe Holistic keypoints.

Clips are (T, J, 3) arrays of upper-body pose + both hands (48 joints). Models come from a small
registry (`stgcn_lite`, `pose_transformer`); the config is an OmegaConf tree merged with CLI-style
dotlist overrides. `SignTrainer` wraps the loops and returns plain tuples from its helpers.
"""
import math
import os
import time
from collections import Counter, namedtuple
from fractions import Fraction

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf

BASE_CFG = """
data:
  frames: 16
  joints: 48
  num_glosses: 6
  signers: 8
  fps: 30
model:
  name: stgcn_lite
  hidden: 32
  dropout: 0.2
optim:
  lr: 0.002
  weight_decay: 0.0001
  epochs: 3
  batch_size: 16
augment:
  mirror: true
  rotation: [-15, 15]
  scale: [0.9, 1.1]
pretrain:
  mask_ratio: 0.4
  base_lr: 0.0005
  warmup_steps: 4
"""

# upper-body pose (6) + left hand (21) + right hand (21)
LANDMARK_SLICES = {"pose": slice(0, 6), "lhand": slice(6, 27), "rhand": slice(27, 48)}
HAND_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11),
              (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20)]
POSE_EDGES = [(0, 1), (0, 2), (2, 4), (1, 3), (3, 5)]
DecodeSettings = namedtuple("DecodeSettings", ["beam_width", "blank", "lm_weight"])

MODEL_REGISTRY = {}


def register(name):
    def deco(cls):
        MODEL_REGISTRY[name] = cls
        return cls
    return deco


def load_config(overrides=()):
    return OmegaConf.merge(OmegaConf.create(BASE_CFG), OmegaConf.from_dotlist(list(overrides)))


def skeleton_adjacency(joints=48):
    a = np.eye(joints, dtype=np.float32)
    edges = list(POSE_EDGES)
    edges += [(i + 6, j + 6) for i, j in HAND_EDGES] + [(i + 27, j + 27) for i, j in HAND_EDGES]
    edges += [(4, 6), (5, 27)]  # wrists of the pose connect to the hand roots
    for i, j in edges:
        a[i, j] = a[j, i] = 1.0
    d = a.sum(1) ** -0.5
    return d[:, None] * a * d[None, :]


@register("stgcn_lite")
class STGCNLite(nn.Module):
    def __init__(self, num_classes=6, joints=48, hidden=32, dropout=0.2):
        super().__init__()
        self.register_buffer("adj", torch.from_numpy(skeleton_adjacency(joints)))
        self.embed = nn.Linear(3, hidden)
        self.temporal = nn.Conv1d(hidden, hidden, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.ModuleList([self.embed, self.temporal])
        self.head = nn.Linear(hidden, num_classes)

    def features(self, x):  # x: (B, T, J, 3)
        h = torch.einsum("ij,btjc->btic", self.adj, self.embed(x)).relu()
        b, t, j, c = h.shape
        h = self.temporal(h.permute(0, 2, 3, 1).reshape(b * j, c, t)).relu()
        return h.reshape(b, j, c, t).mean(dim=(1, 3))

    def forward(self, x):
        return self.head(self.drop(self.features(x)))


@register("pose_transformer")
class PoseTransformer(nn.Module):
    def __init__(self, num_classes=6, joints=48, hidden=32, dropout=0.2):
        super().__init__()
        self.embed = nn.Linear(joints * 3, hidden)
        layer = nn.TransformerEncoderLayer(hidden, 4, hidden * 2, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        h = self.encoder(self.embed(x.flatten(2)))
        return self.head(h.mean(1))


def build_model(cfg, num_classes):
    return MODEL_REGISTRY[cfg.model.name](num_classes, cfg.data.joints, cfg.model.hidden, cfg.model.dropout)


# ------------------------------------------------------------------ data

def synth_annotations(cfg, n=64, seed=0):
    rng = np.random.default_rng(seed)
    glosses = ["HELLO", "THANK-YOU", "PLEASE", "SORRY", "HELP", "WATER"][: cfg.data.num_glosses]
    return pd.DataFrame({
        "video_id": [f"v{i:05d}" for i in range(n)],
        "gloss": rng.choice(glosses, n),
        "signer_id": rng.integers(1, cfg.data.signers + 1, n),
        "frame_start": rng.integers(0, 10, n),
    })


def synth_keypoints(labels, cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(labels), cfg.data.frames, cfg.data.joints, 3, generator=g) * 0.1
    phase = torch.linspace(0, math.pi, cfg.data.frames)
    x[..., 0] += torch.as_tensor(labels, dtype=torch.float32)[:, None, None] * torch.sin(phase)[None, :, None] * 0.2
    return x.numpy()


class GlossVocab:
    def __init__(self, glosses=("HELLO", "HELP")):
        self.itos = ["<blank>"] + sorted(set(glosses))
        self.stoi = {g: i for i, g in enumerate(self.itos)}
        self.blank = 0

    def encode(self, glosses):
        return np.array([self.stoi[g] for g in glosses])

    def __len__(self):
        return len(self.itos)


class KeypointNormalizer:
    """Shoulder-centred, shoulder-width-scaled, then per-joint z-scored on the training split."""

    def __init__(self):
        self.mean = None
        self.std = None

    @staticmethod
    def centre(x):
        mid = (x[:, :, 0:1] + x[:, :, 1:2]) / 2
        width = np.linalg.norm(x[:, :, 0] - x[:, :, 1], axis=-1)[..., None, None] + 1e-6
        return (x - mid) / width

    def fit(self, x):
        c = self.centre(x)
        self.mean = c.mean(axis=(0, 1))
        self.std = c.std(axis=(0, 1)) + 1e-6
        return self

    def __call__(self, x):
        return ((self.centre(x) - self.mean) / self.std).astype(np.float32)


class SignTrainer:
    def __init__(self, model=None, lr=1e-3, weight_decay=0.0, batch_size=16):
        self.model = model or STGCNLite()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=weight_decay)
        self.batch_size = batch_size
        self.epoch = 0

    def train_epoch(self, x, y):
        self.model.train()
        losses = []
        for i in range(0, len(y), self.batch_size):
            loss = F.cross_entropy(self.model(x[i:i + self.batch_size]), y[i:i + self.batch_size])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        self.epoch += 1
        return sum(losses) / len(losses)

    @torch.no_grad()
    def evaluate(self, x, y, k=5):
        self.model.eval()
        logits = self.model(x)
        pred = logits.argmax(1).numpy()
        topk = logits.topk(min(k, logits.size(1)), dim=1).indices
        top5 = (topk == y[:, None]).any(1).float().mean().item()
        n = logits.size(1)
        conf = np.zeros((n, n), dtype=np.int64)
        np.add.at(conf, (y.numpy(), pred), 1)
        return (pred == y.numpy()).mean(), top5, conf

    @staticmethod
    def per_class_accuracy(conf):
        return np.diag(conf) / np.maximum(conf.sum(1), 1)


def prepare(cfg, seed=0):
    ann = synth_annotations(cfg, seed=seed)
    vocab = GlossVocab(ann.gloss)
    y = vocab.encode(ann.gloss) - 1  # classifier ids skip the CTC blank
    x = synth_keypoints(y, cfg, seed)
    cut = int(0.75 * len(y))
    norm = KeypointNormalizer().fit(x[:cut])
    return ann, vocab, norm, (torch.from_numpy(norm(x[:cut])), torch.from_numpy(y[:cut])), \
        (torch.from_numpy(norm(x[cut:])), torch.from_numpy(y[cut:])), y[:cut]


FACTORIES = {"GlossVocab": lambda: GlossVocab(["HELLO", "PLEASE", "WATER"])}


# ------------------------------------------------------------------ checkpoints

def save_isolated_sign_model(tmpdir):
    cfg = load_config(["model.name=stgcn_lite", "optim.epochs=2"])
    ann, vocab, norm, train, val, y_train = prepare(cfg)
    trainer = SignTrainer(build_model(cfg, len(vocab) - 1), cfg.optim.lr, cfg.optim.weight_decay)
    for _ in range(cfg.optim.epochs):
        trainer.train_epoch(*train)
    top1, top5, conf = trainer.evaluate(*val)
    torch.save({
        "model_name": cfg.model.name,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "epoch": trainer.epoch,
        "cfg": cfg,  # truth: weights_only
        "vocab": vocab.itos[1:],
        "gloss_to_id": vocab.stoi,
        "class_counts": Counter(y_train),  # truth: weights_only
        "normalizer": {
            "mean": torch.from_numpy(norm.mean),
            "std": norm.std,  # truth: weights_only
        },
        "top1": top1,  # truth: weights_only
        "top5": float(top5),
        "per_class_acc": trainer.per_class_accuracy(conf).tolist(),
        "confusion": torch.from_numpy(conf),
    }, os.path.join(tmpdir, "islr.pt"))
    return os.path.join(tmpdir, "islr.pt")


class CTCRecognizer(nn.Module):
    def __init__(self, joints=48, hidden=32, vocab_size=7):
        super().__init__()
        self.proj = nn.Linear(joints * 3, hidden)
        self.rnn = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, vocab_size)

    def forward(self, x):
        h, _ = self.rnn(self.proj(x.flatten(2)))
        return self.out(h).log_softmax(-1)


def edit_distance(a, b):
    d = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, cb in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (ca != cb))
    return d[-1]


def greedy_decode(log_probs, blank=0):
    out = []
    for seq in log_probs.argmax(-1).tolist():
        toks = [t for i, t in enumerate(seq) if t != blank and (i == 0 or t != seq[i - 1])]
        out.append(toks)
    return out


def save_ctc_recognizer(tmpdir):
    cfg = load_config(["data.frames=24"])
    ann, vocab, norm, train, val, _ = prepare(cfg, seed=1)
    x = train[0]
    targets = torch.randint(1, len(vocab), (len(x), 3))
    model = CTCRecognizer(cfg.data.joints, cfg.model.hidden, len(vocab))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    ctc = nn.CTCLoss(blank=vocab.blank, zero_infinity=True)
    for _ in range(2):
        lp = model(x).transpose(0, 1)
        loss = ctc(lp, targets, torch.full((len(x),), lp.size(0)), torch.full((len(x),), 3))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        hyps = greedy_decode(model(x))
    errors = sum(edit_distance(h, t) for h, t in zip(hyps, targets.tolist()))
    wer = errors / targets.numel()
    settings = DecodeSettings(beam_width=5, blank=vocab.blank, lm_weight=0.3)
    ckpt = dict(
        model=model.state_dict(),
        optimizer=opt.state_dict(),
        vocab=vocab.itos,
        blank=vocab.blank,
        wer=wer,
        ctc_loss=loss.item(),
        decoder=settings,  # truth: weights_only
        decoder_kwargs=settings._asdict(),
        frame_rate=Fraction(30000, 1001),  # truth: weights_only
        fps=round(30000 / 1001, 3),
        hand_slice=LANDMARK_SLICES["rhand"],  # truth: weights_only
        landmark_slices={k: (s.start, s.stop) for k, s in LANDMARK_SLICES.items()},
    )
    path = os.path.join(tmpdir, "cslr_ctc.pt")
    torch.save(ckpt, path)
    return path


def save_signer_independent_split(tmpdir):
    cfg = load_config()
    ann = synth_annotations(cfg, n=96, seed=2)
    signers = sorted(set(ann.signer_id))
    val_ids = signers[-2:]
    val_df = ann[ann.signer_id.isin(val_ids)]
    train_df = ann[~ann.signer_id.isin(val_ids)]
    split = {
        "train_signers": sorted(set(train_df.signer_id)),
        "val_signers": frozenset(val_df.signer_id),  # truth: weights_only
        "train_videos": train_df.video_id.tolist(),
        "val_videos": list(val_df.video_id),
        "clips_per_signer": ann.groupby("signer_id").size().to_dict(),
        "gloss_hist": Counter(train_df.gloss),
    }
    aug = {
        "mirror": cfg.augment.mirror,
        "rotation_deg": cfg.augment.rotation,  # truth: weights_only
        "scale": list(cfg.augment.scale),
        "swap_pairs": [(i + 6, i + 27) for i in range(21)],
    }
    path = os.path.join(tmpdir, "split.pt")
    torch.save({"split": split, "augment": aug, "cfg": OmegaConf.to_container(cfg, resolve=True)}, path)
    return path


def cosine_scheduler(base, final, steps, warmup):
    warm = np.linspace(0, base, warmup)
    iters = np.arange(steps - warmup)
    return np.concatenate([warm, final + 0.5 * (base - final) * (1 + np.cos(np.pi * iters / len(iters)))])


def save_pretrained_encoder(tmpdir):
    """Masked keypoint modelling: hide joints, regress them back, keep the encoder."""
    cfg = load_config(["model.name=pose_transformer"])
    ann, vocab, norm, train, _, _ = prepare(cfg, seed=3)
    model = build_model(cfg, len(vocab) - 1)
    recon = nn.Linear(cfg.model.hidden, cfg.data.joints * 3)
    params = list(model.embed.parameters()) + list(model.encoder.parameters()) + list(recon.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg.pretrain.base_lr)
    x = train[0]
    steps = 8
    lr_schedule = cosine_scheduler(cfg.pretrain.base_lr, 1e-6, steps, cfg.pretrain.warmup_steps)
    momentum_schedule = cosine_scheduler(0.996, 1.0, steps, 0)
    t0 = time.time()
    for it in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_schedule[it]
        mask = torch.rand(x.shape[:3]) < cfg.pretrain.mask_ratio
        h = model.encoder(model.embed(x.masked_fill(mask[..., None], 0.0).flatten(2)))
        target = x.flatten(2)
        loss = F.mse_loss(recon(h), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    encoder_ckpt = {
        "embed": model.embed.state_dict(),
        "encoder": model.encoder.state_dict(),
        "step": it + 1,
        "lr_at_save": optimizer.param_groups[0]["lr"],  # truth: weights_only
        "final_momentum": float(momentum_schedule[-1]),
        "mask_ratio": cfg.pretrain.mask_ratio,
        "recon_loss": loss.detach(),
        "minutes": (time.time() - t0) / 60,
    }
    path = os.path.join(tmpdir, "mkm_encoder.pt")
    torch.save(encoder_ckpt, path)
    return path


def save_app_export(tmpdir):
    cfg = load_config(["model.name=pose_transformer", "model.hidden=16"])
    ann, vocab, norm, train, val, _ = prepare(cfg, seed=4)
    trainer = SignTrainer(build_model(cfg, len(vocab) - 1), lr=cfg.optim.lr)
    trainer.train_epoch(*train)
    top1, _, _ = trainer.evaluate(*val)
    export = {
        "state_dict": {k: v.half() for k, v in trainer.model.state_dict().items()},
        "labels": vocab.itos[1:],
        "mean": torch.tensor(norm.mean, dtype=torch.float32),
        "std": torch.tensor(norm.std.tolist()),
        "input_spec": {"frames": cfg.data.frames, "joints": cfg.data.joints, "dims": 3},
        "dtype": torch.float16,
        "device": torch.device("cpu"),
        "val_top1": top1.item(),
        "mirror_hands": bool(cfg.augment.mirror),
        "exported": time.strftime("%Y-%m-%d"),
    }
    path = os.path.join(tmpdir, "app_export.pt")
    torch.save(export, path)
    return path
