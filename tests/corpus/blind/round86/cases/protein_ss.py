"""Protein secondary-structure prediction (DSSP Q8 reduced to Q3) with a CNN + BiGRU.

Input per residue: one-hot amino acid (20) + a PSSM-like profile (20).  Configuration lives in
nested dataclasses; `SSTrainer` owns the model, the optimiser and the logs and writes checkpoints
with `save(path, **extra)`.
"""
import collections
import dataclasses
import enum
import re
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from sklearn.metrics import precision_recall_fscore_support
from torch import nn
from torch.utils.data import DataLoader, Dataset

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
Q8_STATES = "HGIEBTSC"
Q3_STATES = "HEC"
Q8_TO_Q3 = {"H": "H", "G": "H", "I": "H", "E": "E", "B": "E", "T": "C", "S": "C", "C": "C"}
VALID_SEQ = re.compile(rf"^[{AMINO_ACIDS}X]+$")
# residue propensities per Q3 state (Chou-Fasman flavoured, unnormalised)
PROPENSITY = {
    "H": np.array([1.4, .7, 1., 1.5, 1.1, .6, 1., 1., 1.2, 1.2, 1.4, .7, .6, 1.1, 1., .8, .8, 1., 1.1, .7]),
    "E": np.array([.8, 1.2, .5, .4, 1.4, .8, .9, 1.6, .7, 1.3, 1.1, .9, .6, 1.1, .9, .8, 1.2, 1.7, 1.4, 1.5]),
    "C": np.array([.7, 1.2, 1.5, 1., .6, 1.6, 1., .5, 1.1, .6, .6, 1.5, 1.6, .9, 1., 1.4, 1.1, .5, .9, 1.1]),
}
PAD_LABEL = -100
torch.set_num_threads(1)  # batches are tiny; the GRU is faster single-threaded on CPU


class LabelScheme(enum.Enum):
    Q3 = "q3"
    Q8 = "q8"


@dataclass
class DataConfig:
    n_train: int = 16
    n_val: int = 8
    min_len: int = 30
    max_len: int = 64
    profile_noise: float = 0.3
    scheme: str = "q3"
    seed: int = 11


@dataclass
class ModelConfig:
    conv_kernels: tuple = (3, 7, 11)
    conv_channels: int = 16
    gru_hidden: int = 16
    dropout: float = 0.1


@dataclass
class TrainConfig:
    epochs: int = 2
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    label_smoothing: float = 0.05


@dataclass
class ExperimentConfig:
    name: str = "cnn_bigru_q3"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def n_classes(self):
        return len(Q3_STATES) if self.data.scheme == "q3" else len(Q8_STATES)


class ProteinRecord(NamedTuple):
    name: str
    sequence: str
    q8: str

    @property
    def q3(self):
        return "".join(Q8_TO_Q3[s] for s in self.q8)


class Batch(NamedTuple):
    features: torch.Tensor
    labels: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor


# ----------------------------------------------------------------------------- data

def synth_proteins(n, min_len, max_len, seed):
    """Sequences drawn from a segment model: helices 6-15, strands 3-8, coils 2-6 residues."""
    rng = np.random.default_rng(seed)
    seg_len = {"H": (6, 15), "E": (3, 8), "C": (2, 6)}
    q8_split = {"H": ("H", "G", "I"), "E": ("E", "B"), "C": ("C", "T", "S")}
    q8_p = {"H": (0.8, 0.15, 0.05), "E": (0.9, 0.1), "C": (0.5, 0.3, 0.2)}
    records = []
    for i in range(n):
        length = int(rng.integers(min_len, max_len + 1))
        seq, q8, state = [], [], "C"
        while len(seq) < length:
            state = rng.choice([s for s in "HEC" if s != state] if state != "C" else list("HE"))
            lo, hi = seg_len[state]
            for _ in range(int(rng.integers(lo, hi + 1))):
                p = PROPENSITY[state] / PROPENSITY[state].sum()
                seq.append(AMINO_ACIDS[rng.choice(20, p=p)])
                q8.append(rng.choice(q8_split[state], p=q8_p[state]))
        records.append(ProteinRecord(f"P{i:05d}", "".join(seq[:length]), "".join(q8[:length])))
    return records


class ProteinSSDataset(Dataset):
    def __init__(self, records=None, scheme="q3", profile_noise=0.3, seed=0):
        self.records = records if records is not None else synth_proteins(4, 20, 30, seed)
        self.scheme = LabelScheme(scheme)
        self.states = Q3_STATES if self.scheme is LabelScheme.Q3 else Q8_STATES
        self.profile_noise = profile_noise
        self.seed = seed
        self.aa_index = {aa: i for i, aa in enumerate(AMINO_ACIDS)}

    def __len__(self):
        return len(self.records)

    def encode(self, rec, idx):
        rng = np.random.default_rng(self.seed + idx)
        onehot = np.eye(20, dtype=np.float32)[[self.aa_index[a] for a in rec.sequence]]
        profile = 0.6 * onehot + self.profile_noise * rng.dirichlet(np.ones(20), len(rec.sequence))
        labels = rec.q3 if self.scheme is LabelScheme.Q3 else rec.q8
        y = np.array([self.states.index(s) for s in labels], dtype=np.int64)
        return np.concatenate([onehot, profile.astype(np.float32)], axis=1), y

    def __getitem__(self, idx):
        x, y = self.encode(self.records[idx], idx)
        return torch.from_numpy(x), torch.from_numpy(y)


def pad_collate(items):
    lengths = torch.tensor([len(y) for _, y in items])
    T = int(lengths.max())
    feats = torch.zeros(len(items), T, items[0][0].shape[1])
    labels = torch.full((len(items), T), PAD_LABEL, dtype=torch.long)
    for i, (x, y) in enumerate(items):
        feats[i, : len(y)] = x
        labels[i, : len(y)] = y
    return Batch(feats, labels, labels != PAD_LABEL, lengths)


# ----------------------------------------------------------------------------- model

class CNNBiGRU(nn.Module):
    def __init__(self, cfg=None, n_features=40, n_classes=3):
        super().__init__()
        cfg = cfg or ModelConfig()
        self.convs = nn.ModuleList(
            nn.Conv1d(n_features, cfg.conv_channels, k, padding=k // 2) for k in cfg.conv_kernels)
        conv_out = cfg.conv_channels * len(cfg.conv_kernels)
        self.gru = nn.GRU(conv_out + n_features, cfg.gru_hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(2 * cfg.gru_hidden, n_classes)

    def forward(self, x):
        h = torch.cat([torch.relu(c(x.transpose(1, 2))) for c in self.convs], dim=1).transpose(1, 2)
        h, _ = self.gru(torch.cat([h, x], dim=-1))
        return self.out(self.dropout(h))


# ----------------------------------------------------------------------------- metrics

def per_protein_accuracy(preds, labels):
    return [(p == t).mean() for p, t in zip(preds, labels)]


def segments(states, target):
    out, start = [], None
    for i, s in enumerate(list(states) + [None]):
        if s == target and start is None:
            start = i
        elif s != target and start is not None:
            out.append((start, i - 1))
            start = None
    return out


def sov_score(pred, true, state):
    """Simplified SOV (Zemla 1999) for one state, in percent."""
    total, norm = 0.0, 0
    pred_segs = segments(pred, state)
    for s1 in segments(true, state):
        overlapping = [s2 for s2 in pred_segs if s2[0] <= s1[1] and s2[1] >= s1[0]]
        len1 = s1[1] - s1[0] + 1
        if not overlapping:
            norm += len1
        for s2 in overlapping:
            minov = min(s1[1], s2[1]) - max(s1[0], s2[0]) + 1
            maxov = max(s1[1], s2[1]) - min(s1[0], s2[0]) + 1
            delta = min(maxov - minov, minov, len1 // 2, (s2[1] - s2[0] + 1) // 2)
            total += (minov + delta) / maxov * len1
            norm += len1
    return 100.0 * total / norm if norm else 0.0


def confusion(preds, labels, k):
    cm = np.zeros((k, k), dtype=np.int64)
    for p, t in zip(preds, labels):
        np.add.at(cm, (t, p), 1)
    return cm


# ----------------------------------------------------------------------------- training

class SSTrainer:
    def __init__(self, cfg=None):
        self.cfg = cfg or ExperimentConfig()
        torch.manual_seed(self.cfg.data.seed)
        self.scheme = LabelScheme(self.cfg.data.scheme)
        self.model = CNNBiGRU(self.cfg.model, n_classes=self.cfg.n_classes)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.train.lr,
                                           weight_decay=self.cfg.train.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.cfg.train.epochs)
        self.criterion = nn.CrossEntropyLoss(ignore_index=PAD_LABEL,
                                             label_smoothing=self.cfg.train.label_smoothing)
        self.global_step = 0
        self.epoch_log = []
        self.best_q3 = 0.0
        self.length_buckets = collections.defaultdict(list)

    def loaders(self):
        d = self.cfg.data
        train = synth_proteins(d.n_train, d.min_len, d.max_len, d.seed)
        val = synth_proteins(d.n_val, d.min_len, d.max_len, d.seed + 1)
        mk = lambda recs, shuffle: DataLoader(ProteinSSDataset(recs, d.scheme, d.profile_noise, d.seed),
                                              batch_size=self.cfg.train.batch_size, shuffle=shuffle,
                                              collate_fn=pad_collate)
        return mk(train, True), mk(val, False)

    def train_epoch(self, loader):
        self.model.train()
        total = 0.0
        for batch in loader:
            logits = self.model(batch.features)
            loss = self.criterion(logits.reshape(-1, logits.shape[-1]), batch.labels.reshape(-1))
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
            self.optimizer.step()
            self.global_step += 1
            total += loss.item()
        self.scheduler.step()
        return total / max(len(loader), 1)

    @torch.no_grad()
    def evaluate(self, loader):
        self.model.eval()
        preds, labels = [], []
        for batch in loader:
            out = self.model(batch.features).argmax(-1)
            for i, n in enumerate(batch.lengths.tolist()):
                preds.append(out[i, :n].numpy())
                labels.append(batch.labels[i, :n].numpy())
        correct = sum(int((p == t).sum()) for p, t in zip(preds, labels))
        n_res = sum(len(t) for t in labels)
        for p, t in zip(preds, labels):
            bucket = "short" if len(t) < 48 else "long"
            self.length_buckets[bucket].append(float((p == t).mean()))
        return {"q3": correct / n_res, "n_residues": n_res, "preds": preds, "labels": labels}

    def fit(self):
        train_loader, val_loader = self.loaders()
        for epoch in range(self.cfg.train.epochs):
            loss = self.train_epoch(train_loader)
            val = self.evaluate(val_loader)
            self.best_q3 = max(self.best_q3, val["q3"])
            self.epoch_log.append({"epoch": epoch, "train_loss": loss, "val_q3": val["q3"],
                                   "lr": self.scheduler.get_last_lr()[0]})
        return val_loader, val

    def state(self):
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "global_step": self.global_step,
                "epoch_log": self.epoch_log, "best_q3": self.best_q3}

    def save(self, path, **extra):
        torch.save({**self.state(), **extra}, path)
        return str(path)


FACTORIES = {
    "ProteinRecord": lambda: ProteinRecord("P00000", "MKTAYIAK", "CHHHHHCC"),
    "Batch": lambda: pad_collate([ProteinSSDataset()[0]]),
    "LabelScheme": lambda: LabelScheme.Q3,
}


# ----------------------------------------------------------------------------- checkpoints

def save_q3_model(tmpdir):
    cfg = ExperimentConfig()
    trainer = SSTrainer(cfg)
    _, val = trainer.fit()
    sov_h = statistics.fmean(sov_score(p, t, 0) for p, t in zip(val["preds"], val["labels"]))
    extra = dict(
        config=cfg,  # truth: weights_only
        config_dict=asdict(cfg),
        label_scheme=trainer.scheme,  # truth: weights_only
        label_scheme_name=trainer.scheme.value,
        q3=val["q3"],
        sov_helix=sov_h,
        alphabet=AMINO_ACIDS,
        vocab=set(AMINO_ACIDS),
        q8_to_q3=Q8_TO_Q3,
        n_parameters=sum(p.numel() for p in trainer.model.parameters()),
    )
    return trainer.save(Path(tmpdir) / f"{cfg.name}.pt", **extra)


def save_evaluation_report(tmpdir):
    trainer = SSTrainer(ExperimentConfig(name="eval"))
    _, val = trainer.fit()
    y_true = np.concatenate(val["labels"])
    y_pred = np.concatenate(val["preds"])
    prec, rec, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=[0, 1, 2], zero_division=0)
    per_protein = per_protein_accuracy(val["preds"], val["labels"])
    report = {"per_class": {}, "overall": {}}
    for i, state in enumerate(Q3_STATES):
        report["per_class"][state] = {
            "precision": prec[i],  # truth: weights_only
            "recall": float(rec[i]),
            "f1": round(float(f1[i]), 4),
            "support": int(support[i]),
        }
    report["overall"]["q3"] = val["q3"]
    report["overall"]["q3_per_protein_mean"] = statistics.mean(per_protein)  # truth: weights_only
    report["overall"]["q3_per_protein_fmean"] = statistics.fmean(per_protein)
    report["overall"]["sov"] = {s: sov_score(y_pred, y_true, i) for i, s in enumerate(Q3_STATES)}
    cm = confusion(val["preds"], val["labels"], 3)
    report["confusion"] = cm  # truth: weights_only
    report["confusion_normalized"] = torch.from_numpy(cm / cm.sum(axis=1, keepdims=True))
    report["evaluated_on"] = len(val["labels"])
    path = Path(tmpdir) / "ss_eval_report.pt"
    torch.save(report, path)
    return str(path)


def save_dataset_cache(tmpdir):
    d = DataConfig(n_train=12, max_len=96)
    records = synth_proteins(d.n_train, d.min_len, d.max_len, d.seed)
    assert all(VALID_SEQ.match(r.sequence) for r in records)
    ds = ProteinSSDataset(records, d.scheme, d.profile_noise, d.seed)
    loader = DataLoader(ds, batch_size=4, collate_fn=pad_collate)
    all_labels = np.concatenate([ds.encode(r, i)[1] for i, r in enumerate(records)])
    composition = collections.Counter("".join(r.sequence for r in records))
    cache = {
        "names": [r.name for r in records],
        "sequences": [r.sequence for r in records],
        "q3_labels": [r.q3 for r in records],
        "records": [r._asdict() for r in records],
        "example_batch": next(iter(loader)),  # truth: weights_only
        "example_batch_tensors": next(iter(loader))._asdict(),
        "residue_index": ds.aa_index,
        "valid_pattern": VALID_SEQ,  # truth: weights_only
        "valid_pattern_str": VALID_SEQ.pattern,
        "residue_set": frozenset(AMINO_ACIDS),  # truth: weights_only
        "composition": composition,
        "max_len": max(len(r.sequence) for r in records),
        "label_counts": np.bincount(all_labels, minlength=3),  # truth: weights_only
        "label_counts_list": torch.bincount(torch.from_numpy(all_labels), minlength=3).tolist(),
    }
    path = Path(tmpdir) / "ss_dataset_cache.pt"
    torch.save(cache, path)
    return str(path)


def save_length_bucket_stats(tmpdir):
    t0 = time.perf_counter()
    trainer = SSTrainer(ExperimentConfig(train=TrainConfig(epochs=1)))
    _, val = trainer.fit()
    lengths = [len(t) for t in val["labels"]]
    labels = np.concatenate(val["labels"])
    helix_frac = (labels == Q3_STATES.index("H")).mean()
    stats = {}
    stats["acc_by_length"] = trainer.length_buckets  # truth: weights_only
    stats["acc_by_length_mean"] = {k: statistics.fmean(v) for k, v in trainer.length_buckets.items()}
    stats["global_step"] = trainer.global_step
    stats["epoch_log"] = trainer.epoch_log
    stats["wall_time_s"] = time.perf_counter() - t0
    stats["helix_fraction"] = helix_frac  # truth: weights_only
    stats["coil_fraction"] = float((labels == Q3_STATES.index("C")).mean())
    stats["mean_len"] = statistics.fmean(lengths)
    stats["len_quantiles"] = np.quantile(lengths, [0.1, 0.5, 0.9]).tolist()
    path = Path(tmpdir) / "ss_length_stats.pt"
    torch.save(stats, path)
    return str(path)


def save_swa_model(tmpdir):
    cfg = ExperimentConfig(name="swa", train=TrainConfig(epochs=1))
    trainer = SSTrainer(cfg)
    train_loader, val_loader = trainer.loaders()
    swa_model = torch.optim.swa_utils.AveragedModel(trainer.model)
    swa_sched = torch.optim.swa_utils.SWALR(trainer.optimizer, swa_lr=5e-4, anneal_epochs=1)
    for _ in range(2):
        trainer.train_epoch(train_loader)
        swa_model.update_parameters(trainer.model)
        swa_sched.step()
    val = trainer.evaluate(val_loader)
    extra = dict(
        swa_state=swa_model.state_dict(),
        n_averaged=swa_model.n_averaged,
        swa_scheduler=swa_sched,  # truth: weights_only
        swa_lr=swa_sched.get_last_lr()[0],
        swa_start_epoch=0,
        swa_q3=val["q3"],
    )
    return trainer.save(Path(tmpdir) / "ss_swa.pt", **extra)


def save_ensemble_for_inference(tmpdir):
    cfg = ExperimentConfig(name="ens", train=TrainConfig(epochs=1))
    members = []
    for seed in (1, 2):
        trainer = SSTrainer(dataclasses.replace(cfg, data=DataConfig(seed=seed)))
        trainer.fit()
        members.append(trainer.model.state_dict())
    export = {
        "state_dicts": members,
        "model_config": asdict(cfg.model),
        "n_classes": cfg.n_classes,
        "states": Q3_STATES,
        "input_dim": 2 * len(AMINO_ACIDS),
        "dtype": torch.float32,
        "pad_label": PAD_LABEL,
    }
    path = Path(tmpdir) / "ss_ensemble.pt"
    torch.save(export, path)
    return str(path)
