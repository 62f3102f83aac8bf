"""Surgical phase recognition (Cholec80-style) with a multi-stage temporal convolutional network.

Frame features are precomputed by a CNN backbone at 1 fps; this stage trains MS-TCN on top of
them.  Configuration is YAML merged with dotlist overrides through OmegaConf, as the
experiment launcher does:

    python surgical_phase_tcn.py model.num_stages=3 optim.epochs=20
"""
import datetime
import enum
import os
import sys
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from omegaconf import OmegaConf
from torch.optim.swa_utils import AveragedModel


class Phase(enum.IntEnum):
    Preparation = 0
    CalotTriangleDissection = 1
    ClippingCutting = 2
    GallbladderDissection = 3
    GallbladderPackaging = 4
    CleaningCoagulation = 5
    GallbladderRetraction = 6


BASE_YAML = """
experiment: mstcn_cholec80
seed: 0
data:
  fps: 1
  feat_dim: 32
  phases: [Preparation, CalotTriangleDissection, ClippingCutting, GallbladderDissection,
           GallbladderPackaging, CleaningCoagulation, GallbladderRetraction]
  train_videos: [video01, video02, video03, video04]
  val_videos: [video41, video42]
  mean_phase_len: 40
model:
  num_stages: 2
  num_layers: 4
  num_f_maps: 24
  dropout: 0.2
optim:
  lr: 5e-4
  weight_decay: 1e-5
  epochs: 2
loss:
  smooth_weight: 0.15
  smooth_clamp: 16.0
  class_balance: median_freq
output_dir: runs/${experiment}
"""

SOURCES_YAML = """
videos:
  - id: video01
    site: Strasbourg
    recorded: 2014-03-12
    surgeon: A
  - id: video02
    site: Strasbourg
    recorded: 2014-04-02
    surgeon: B
license: CC-BY-NC-SA 4.0
"""


@dataclass
class EvalSchema:
    metric_phases: List[str] = field(default_factory=lambda: [p.name for p in Phase])
    ignore_phase: Optional[Phase] = None
    relaxed_boundary_s: int = 10
    bg_class: Phase = Phase.Preparation


def load_config(overrides=()):
    base = OmegaConf.create(BASE_YAML)
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


def synth_video(cfg, rng):
    """Phase-ordered labels with random durations; features = phase prototype + noise."""
    protos = np.random.default_rng(123).normal(0, 1, (len(Phase), cfg.data.feat_dim))
    lens = rng.poisson(cfg.data.mean_phase_len, len(Phase)).clip(5)
    labels = np.repeat(np.arange(len(Phase)), lens)
    feats = protos[labels] + rng.normal(0, 0.8, (len(labels), cfg.data.feat_dim))
    return feats.astype(np.float32), labels


def build_split(cfg, split):
    rng = np.random.default_rng(cfg.seed + (0 if split == "train" else 1))
    return {vid: synth_video(cfg, rng) for vid in cfg.data[f"{split}_videos"]}


class DilatedResidual(nn.Module):
    def __init__(self, dilation, ch, dropout):
        super().__init__()
        self.conv = nn.Conv1d(ch, ch, 3, padding=dilation, dilation=dilation)
        self.proj = nn.Conv1d(ch, ch, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return x + self.drop(self.proj(F.relu(self.conv(x))))


class Stage(nn.Module):
    def __init__(self, num_layers, ch, in_dim, n_classes, dropout):
        super().__init__()
        self.inp = nn.Conv1d(in_dim, ch, 1)
        self.layers = nn.ModuleList(DilatedResidual(2 ** i, ch, dropout) for i in range(num_layers))
        self.out = nn.Conv1d(ch, n_classes, 1)

    def forward(self, x):
        h = self.inp(x)
        for layer in self.layers:
            h = layer(h)
        return self.out(h)


class MultiStageTCN(nn.Module):
    def __init__(self, num_stages, num_layers, num_f_maps, feat_dim, n_classes, dropout=0.2):
        super().__init__()
        self.first = Stage(num_layers, num_f_maps, feat_dim, n_classes, dropout)
        self.refine = nn.ModuleList(Stage(num_layers, num_f_maps, n_classes, n_classes, dropout)
                                    for _ in range(num_stages - 1))

    def forward(self, x):
        outs = [self.first(x)]
        for stage in self.refine:
            outs.append(stage(F.softmax(outs[-1], 1)))
        return torch.stack(outs)


def build_model(cfg):
    m = cfg.model
    return MultiStageTCN(m.num_stages, m.num_layers, m.num_f_maps, cfg.data.feat_dim,
                         len(cfg.data.phases), m.dropout)


def median_frequency_weights(label_seqs, n_classes):
    counts = np.bincount(np.concatenate(label_seqs), minlength=n_classes).astype(np.float64)
    freq = counts / counts.sum()
    return np.median(freq) / np.maximum(freq, 1e-8)


def tmse(logits, clamp):
    diff = F.log_softmax(logits[:, :, 1:], 1) - F.log_softmax(logits.detach()[:, :, :-1], 1)
    return torch.clamp(diff ** 2, 0, clamp).mean()


def train(cfg, data, weights):
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    ce = nn.CrossEntropyLoss(weight=torch.as_tensor(weights, dtype=torch.float32))
    log = []
    for epoch in range(cfg.optim.epochs):
        total = 0.0
        for vid, (feats, labels) in data.items():
            x = torch.from_numpy(feats).T.unsqueeze(0)
            y = torch.from_numpy(labels)
            outs = model(x)
            loss = sum(ce(o[0].T, y) + cfg.loss.smooth_weight * tmse(o, cfg.loss.smooth_clamp) for o in outs)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        log.append({"epoch": epoch, "loss": total / len(data), "lr": opt.param_groups[0]["lr"]})
    return model, opt, log


@torch.no_grad()
def predict(model, feats):
    model.eval()
    return model(torch.from_numpy(feats).T.unsqueeze(0))[-1, 0].argmax(0).numpy()


def segments(labels):
    cuts = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(labels)]])
    return [(s, e, labels[s]) for s, e in zip(starts, ends)]


def edit_score(pred, gold):
    p = [seg[2] for seg in segments(pred)]
    g = [seg[2] for seg in segments(gold)]
    D = np.zeros((len(p) + 1, len(g) + 1))
    D[:, 0] = np.arange(len(p) + 1)
    D[0, :] = np.arange(len(g) + 1)
    for i in range(1, len(p) + 1):
        for j in range(1, len(g) + 1):
            D[i, j] = min(D[i - 1, j] + 1, D[i, j - 1] + 1, D[i - 1, j - 1] + (p[i - 1] != g[j - 1]))
    return (1 - D[-1, -1] / max(len(p), len(g))) * 100


def phase_jaccard(pred, gold, n_classes):
    jac = np.full(n_classes, np.nan)
    for c in range(n_classes):
        inter = np.logical_and(pred == c, gold == c).sum()
        union = np.logical_or(pred == c, gold == c).sum()
        if union:
            jac[c] = inter / union
    return jac


def evaluate(model, data, n_classes):
    per_video, jacs = {}, []
    for vid, (feats, labels) in data.items():
        pred = predict(model, feats)
        jac = phase_jaccard(pred, labels, n_classes)
        jacs.append(jac)
        per_video[vid] = {"acc": float((pred == labels).mean()), "jaccard": float(np.nanmean(jac))}
    return per_video, np.nanmean(np.stack(jacs), axis=0), pred, labels


def save_mstcn_checkpoint(tmpdir):
    cfg = load_config(["optim.epochs=2", f"output_dir={tmpdir}"])
    train_data, val_data = build_split(cfg, "train"), build_split(cfg, "val")
    weights = median_frequency_weights([l for _, l in train_data.values()], len(Phase))
    model, opt, log = train(cfg, train_data, weights)
    per_video, jac, pred, gold = evaluate(model, val_data, len(Phase))
    ckpt = {
        "cfg": cfg,  # truth: weights_only
        "cfg_resolved": OmegaConf.to_container(cfg, resolve=True),
        "model_cfg": cfg.model,  # truth: weights_only
        "phases": list(cfg.data.phases),
        "state_dict": model.state_dict(),
        "optimizer": opt.state_dict(),
        "log": log,
        "val": {
            "per_video": per_video,
            "mean_jaccard": float(np.nanmean(jac)),
            "accuracy": sum(v["acc"] for v in per_video.values()) / len(per_video),
            "edit": edit_score(pred, gold),  # truth: weights_only
        },
    }
    ckpt["epoch"] = log[-1]["epoch"]
    path = os.path.join(tmpdir, "mstcn_last.ckpt")
    torch.save(ckpt, path)
    return path


def save_phase_statistics(tmpdir):
    cfg = load_config()
    data = build_split(cfg, "train")
    seqs = [l for _, l in data.values()]
    n = len(Phase)
    weights = median_frequency_weights(seqs, n)
    trans = np.full((n, n), 1e-3)
    for seq in seqs:
        for a, b in zip(seq[:-1], seq[1:]):
            trans[a, b] += 1
    trans /= trans.sum(1, keepdims=True)
    feats = np.concatenate([f for f, _ in data.values()])
    step = datetime.timedelta(seconds=1 / cfg.data.fps)
    durations = {vid: len(l) * step for vid, l in data.items()}
    stats = {
        "class_weights": weights,  # truth: weights_only
        "class_weights_t": torch.as_tensor(weights, dtype=torch.float32),
        "transition": torch.from_numpy(trans).float(),
        "log_transition": np.log(trans).tolist(),
        "mean_phase_s": {p.name: float(np.mean([np.sum(s == p) for s in seqs])) / cfg.data.fps for p in Phase},
        "total_footage": sum(durations.values(), datetime.timedelta()),  # truth: weights_only
        "total_footage_h": sum(d.total_seconds() for d in durations.values()) / 3600,
        "longest_video": max(durations, key=durations.get),
        "feature_stats": (feats.mean(0).tolist(), feats.std(0).tolist()),
        "feature_mean": torch.from_numpy(feats.mean(0)),
        "n_frames": feats.shape[0],
    }
    path = os.path.join(tmpdir, "phase_stats.pt")
    torch.save(stats, path)
    return path


def save_eval_report(tmpdir):
    cfg = load_config(["optim.epochs=1"])
    train_data, val_data = build_split(cfg, "train"), build_split(cfg, "val")
    model, _, _ = train(cfg, train_data, np.ones(len(Phase)))
    per_video, jac, pred, gold = evaluate(model, val_data, len(Phase))
    worst = Phase(int(np.nanargmin(jac)))
    report = {"per_video": per_video}
    report["jaccard_per_phase"] = np.nan_to_num(jac).tolist()
    report["jaccard_by_name"] = {Phase(i).name: float(j) for i, j in enumerate(jac) if not np.isnan(j)}
    report["segments"] = segments(pred)  # truth: weights_only
    report["gold_segments"] = [(int(s), int(e), Phase(int(c)).name) for s, e, c in segments(gold)]
    report["worst_phase"] = worst  # truth: weights_only
    report["worst_phase_name"] = worst.name
    report["edit"] = round(float(edit_score(pred, gold)), 2)
    report["frames"] = int(gold.size)
    report["python"] = sys.version.split()[0]
    path = os.path.join(tmpdir, "eval_report.pt")
    torch.save(report, path)
    return path


def save_release_card(tmpdir):
    cfg = load_config(["data.fps=1"])
    schema = OmegaConf.structured(EvalSchema(ignore_phase=Phase.GallbladderRetraction))
    sources = yaml.safe_load(SOURCES_YAML)
    card = OmegaConf.create(SOURCES_YAML)
    release = {
        "experiment": cfg.experiment,
        "config_yaml": OmegaConf.to_yaml(cfg),
        "eval_schema": OmegaConf.to_container(schema, enum_to_str=True),
        "ignore_phase": schema.ignore_phase.name,
        "sources": sources["videos"],  # truth: weights_only
        "source_card": OmegaConf.to_container(card),
        "license": sources["license"],
        "optim": dict(cfg.optim),
        "num_stages": OmegaConf.select(cfg, "model.num_stages"),
        "phase_ids": {p.name: int(p) for p in Phase},
    }
    path = os.path.join(tmpdir, "release_card.pt")
    torch.save(release, path)
    return path


def save_swa_weights(tmpdir):
    cfg = load_config(["optim.epochs=1", "model.num_stages=1"])
    data = build_split(cfg, "train")
    model, opt, _ = train(cfg, data, np.ones(len(Phase)))
    swa = AveragedModel(model)
    swa.update_parameters(model)
    ckpt = dict(
        model=model.state_dict(),
        swa_state=swa.state_dict(),
        swa_model=swa,  # truth: weights_only
        n_averaged=int(swa.n_averaged),
        optimizer=opt.state_dict(),
        num_classes=len(cfg.data.phases),
    )
    path = os.path.join(tmpdir, "swa.pt")
    torch.save(ckpt, path)
    return path


def save_inference_export(tmpdir):
    cfg = load_config()
    model = build_model(cfg)
    weights = median_frequency_weights([l for _, l in build_split(cfg, "val").values()], len(Phase))
    export = {
        "state_dict": {k: v.half() for k, v in model.state_dict().items()},
        "phases": [str(p) for p in cfg.data.phases],
        "fps": cfg.data.fps,
        "feat_dim": cfg.data.feat_dim,
        "arch": OmegaConf.to_container(cfg.model),
        "class_weights": weights.astype(np.float32).tolist(),
        "smooth_weight": cfg.loss.smooth_weight,
        "input_shape": torch.Size([1, cfg.data.feat_dim, -1]),
        "phase_enum": [p.name for p in Phase],
    }
    path = os.path.join(tmpdir, "export_fp16.pt")
    torch.save(export, path)
    return path


FACTORIES = {
    "Phase": lambda: Phase.ClippingCutting,
    "EvalSchema": lambda: EvalSchema(ignore_phase=Phase.CleaningCoagulation),
    "DilatedResidual": lambda: DilatedResidual(2, 8, 0.1),
    "Stage": lambda: Stage(2, 8, 16, len(Phase), 0.1),
    "MultiStageTCN": lambda: build_model(load_config()),
}


if __name__ == "__main__":
    cfg = load_config(sys.argv[1:])
    os.makedirs(cfg.output_dir, exist_ok=True)
    print(save_mstcn_checkpoint(cfg.output_dir))
