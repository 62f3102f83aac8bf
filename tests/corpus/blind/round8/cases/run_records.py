"""Bookkeeping that rides along in checkpoints: run metadata, vocabularies, preprocessing.

Each save_*(tmpdir) writes one checkpoint and returns its path; the evaluation job reads it back
with a plain torch.load(path).
"""
import collections
import dataclasses
import datetime
import enum
import os
import uuid
from collections import Counter, OrderedDict, defaultdict
from dataclasses import asdict, dataclass, field
from decimal import Decimal

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.preprocessing import LabelEncoder, StandardScaler
from torch import nn


class Stage(enum.Enum):
    WARMUP = "warmup"
    TRAIN = "train"
    FINETUNE = "finetune"


class Precision(enum.IntEnum):
    FP32 = 32
    BF16 = 16


@dataclass
class TrainConfig:
    lr: float = 1e-3
    batch_size: int = 64
    layers: list = field(default_factory=lambda: [64, 64])


@dataclass(frozen=True)
class DataSpec:
    name: str = "toy"
    n_features: int = 8


NOT_BUILT = {
    "Stage": "an Enum: its members are the values",
    "Precision": "an IntEnum: its members are the values",
}


def tokenize(texts):
    return [w for t in texts for w in t.lower().split()]


def build_vocab(texts, min_freq=1):
    counts = Counter(tokenize(texts))
    itos = ["<unk>", "<pad>"] + sorted(w for w, c in counts.items() if c >= min_freq)
    stoi = defaultdict(int, {w: i for i, w in enumerate(itos)})  # unknown words map to 0
    return counts, itos, stoi


def fitted_scaler():
    x = np.random.default_rng(0).normal(size=(32, 8))
    return StandardScaler().fit(x)


def make_model():
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))


CORPUS = ["The cat sat", "the dog sat", "a cat ran"]


def save_vocab_checkpoint(tmpdir):
    counts, itos, stoi = build_vocab(CORPUS)
    ckpt = {
        "model": make_model().state_dict(),
        "itos": itos,
        "stoi": stoi,  # truth: weights_only
        "stoi_plain": dict(stoi),
        "counts": counts,
        "ordered": OrderedDict((w, i) for i, w in enumerate(itos)),
    }
    path = os.path.join(tmpdir, "vocab.pt")
    torch.save(ckpt, path)
    return path


def save_bucketed_stats(tmpdir):
    by_label = collections.defaultdict(list)
    for i, label in enumerate([0, 1, 1, 2, 0]):
        by_label[label].append(i)
    recent = collections.deque([0.3, 0.2, 0.1], maxlen=3)
    ckpt = {}
    ckpt["by_label"] = by_label  # truth: weights_only
    ckpt["recent_losses"] = recent  # truth: weights_only
    ckpt["recent_list"] = list(recent)
    ckpt["seen_labels"] = set(by_label)
    ckpt["frozen_labels"] = frozenset(by_label)  # truth: weights_only
    ckpt["label_tuple"] = tuple(sorted(by_label))
    path = os.path.join(tmpdir, "buckets.pt")
    torch.save(ckpt, path)
    return path


def save_whole_defaultdict(tmpdir):
    state = defaultdict(dict)
    state["model"] = make_model().state_dict()
    state["meta"]["epoch"] = 4
    path = os.path.join(tmpdir, "dd.pt")
    torch.save(state, path)  # truth: weights_only
    return path


def save_timestamps(tmpdir):
    started = datetime.datetime(2024, 5, 1, 12, 30)
    finished = started + datetime.timedelta(hours=3)
    ckpt = {
        "model": make_model().state_dict(),
        "started": started,  # truth: weights_only
        "finished_iso": finished.isoformat(),
        "duration": finished - started,  # truth: weights_only
        "duration_s": (finished - started).total_seconds(),
        "day": datetime.date(2024, 5, 1),  # truth: weights_only
        "timestamp": started.timestamp(),
    }
    path = os.path.join(tmpdir, "times.pt")
    torch.save(ckpt, path)
    return path


def save_stage_enum(tmpdir):
    stage = Stage.FINETUNE
    precision = Precision.BF16
    ckpt = {
        "model": make_model().state_dict(),
        "stage": stage,  # truth: weights_only
        "stage_name": stage.value,
        "precision": precision,  # truth: weights_only
        "precision_bits": int(precision),
        "stage_key": Stage.TRAIN.name,
    }
    path = os.path.join(tmpdir, "stage.pt")
    torch.save(ckpt, path)
    return path


def save_dataclass_config(tmpdir):
    cfg = TrainConfig(lr=3e-4)
    spec = DataSpec()
    ckpt = {
        "model": make_model().state_dict(),
        "train_cfg": cfg,  # truth: weights_only
        "train_cfg_dict": asdict(cfg),
        "data_spec": dataclasses.asdict(spec),
        "spec_obj": spec,  # truth: weights_only
        "fields": [f.name for f in dataclasses.fields(cfg)],
    }
    path = os.path.join(tmpdir, "dc.pt")
    torch.save(ckpt, path)
    return path


def save_run_identity(tmpdir):
    run_id = uuid.uuid4()
    budget = Decimal("12.50")
    ckpt = {"model": make_model().state_dict()}
    ckpt["meta"] = {
        "run_id": run_id,  # truth: weights_only
        "run_hex": run_id.hex,
        "run_str": str(uuid.uuid5(uuid.NAMESPACE_DNS, "toy")),
        "budget": budget,  # truth: weights_only
        "budget_f": float(budget),
    }
    path = os.path.join(tmpdir, "identity.pt")
    torch.save(ckpt, path)
    return path


def save_preprocessing(tmpdir):
    scaler = fitted_scaler()
    encoder = LabelEncoder().fit(["cat", "dog", "bird"])
    pca = PCA(n_components=2).fit(np.random.default_rng(1).normal(size=(16, 8)))
    ckpt = {
        "model": make_model().state_dict(),
        "scaler": scaler,  # truth: weights_only
        "scaler_mean": torch.from_numpy(scaler.mean_),
        "scaler_scale": scaler.scale_.tolist(),
        "classes": encoder.classes_,  # truth: weights_only
        "class_list": list(map(str, encoder.classes_)),
        "first_class": encoder.classes_[0],  # truth: weights_only
        "pca": pca,  # truth: weights_only
        "explained": pca.explained_variance_ratio_.sum().item(),
    }
    path = os.path.join(tmpdir, "prep.pt")
    torch.save(ckpt, path)
    return path


def save_plain_metadata(tmpdir):
    counts, itos, _ = build_vocab(CORPUS)
    ckpt = dict(
        model=make_model().state_dict(),
        vocab=itos,
        counts=dict(counts.most_common()),
        shape=tuple(torch.zeros(2, 3).shape),
        size=torch.zeros(2, 3).shape,
        flags={"amp": False, "compile": None},
        mixed=[1, 2.5, "x", None, (3, 4)],
        raw=b"\x00\x01",
        complex_gain=1 + 2j,
    )
    path = os.path.join(tmpdir, "meta.pt")
    torch.save(ckpt, path)
    return path
