"""Peptide-spectrum match scoring for database search rescoring.

A small spectrum/peptide dual encoder scores candidate peptides against binned MS/MS spectra, the
target-decoy approach estimates FDR, and a Percolator-like linear model rescores the PSMs.
Configs are dataclasses; training lives in a Trainer class whose helpers return dicts and tuples.
"""
import collections
import dataclasses
import enum
import hashlib
import os
import re
from dataclasses import asdict, dataclass, field
from typing import List, NamedTuple, Tuple

import numpy as np
import torch
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_score
from torch import nn

PROTON = 1.007276
H2O = 18.010565
AA_MASS = {
    "G": 57.02146, "A": 71.03711, "S": 87.03203, "P": 97.05276, "V": 99.06841, "T": 101.04768,
    "C": 103.00919, "L": 113.08406, "I": 113.08406, "N": 114.04293, "D": 115.02694, "Q": 128.05858,
    "K": 128.09496, "E": 129.04259, "M": 131.04049, "H": 137.05891, "F": 147.06841, "R": 156.10111,
    "Y": 163.06333, "W": 186.07931,
}
MODIFICATIONS = {"M[+15.995]": 15.994915, "C[+57.021]": 57.021464, "N[+0.984]": 0.984016}


class IonType(str, enum.Enum):
    B = "b"
    Y = "y"


class Fragmentation(enum.Enum):
    HCD = "hcd"
    CID = "cid"
    ETD = "etd"


class PSM(NamedTuple):
    spectrum_id: int
    peptide: str
    charge: int
    score: float
    is_decoy: bool


@dataclass
class ModelConfig:
    n_bins: int = 400
    bin_width: float = 5.0
    dim: int = 32
    max_peptide_len: int = 20
    max_charge: int = 4


@dataclass
class SearchConfig:
    precursor_tol_ppm: float = 10.0
    fragment_tol_da: float = 0.02
    ion_types: Tuple[IonType, ...] = (IonType.B, IonType.Y)
    fixed_mods: List[str] = field(default_factory=lambda: ["C[+57.021]"])
    variable_mods: List[str] = field(default_factory=lambda: ["M[+15.995]"])
    decoy_prefix: str = "DECOY_"
    fdr: float = 0.01
    lr: float = 1e-3
    epochs: int = 2


class Vocab:
    def __init__(self, alphabet="".join(AA_MASS)):
        self.itos = ["<pad>"] + list(alphabet)
        self.stoi = {a: i for i, a in enumerate(self.itos)}

    def encode(self, peptide, max_len):
        ids = [self.stoi[a] for a in peptide[:max_len]]
        return ids + [0] * (max_len - len(ids))


def peptide_mass(peptide):
    return sum(AA_MASS[a] for a in peptide) + H2O


def fragment_mz(peptide, ion_types=(IonType.B, IonType.Y)):
    masses = np.cumsum([AA_MASS[a] for a in peptide])
    out = []
    if IonType.B in ion_types:
        out.extend(masses[:-1] + PROTON)
    if IonType.Y in ion_types:
        out.extend(peptide_mass(peptide) - masses[:-1] + PROTON)
    return np.array(out)


def bin_spectrum(mz, intensity, cfg):
    vec = np.zeros(cfg.n_bins, dtype=np.float32)
    idx = np.clip((mz / cfg.bin_width).astype(int), 0, cfg.n_bins - 1)
    np.add.at(vec, idx, intensity)
    return vec / (vec.max() + 1e-8)


def synthetic_library(n=48, seed=3):
    rng = np.random.default_rng(seed)
    letters = np.array(list(AA_MASS))
    peptides = ["".join(rng.choice(letters, rng.integers(7, 16))) + rng.choice(["K", "R"]) for _ in range(n)]
    charges = rng.integers(2, 4, n).tolist()
    return peptides, charges


class SpectrumPeptideScorer(nn.Module):
    def __init__(self, cfg=ModelConfig(), vocab_size=21):
        super().__init__()
        self.spec = nn.Sequential(nn.Linear(cfg.n_bins, cfg.dim), nn.ReLU(), nn.Linear(cfg.dim, cfg.dim))
        self.emb = nn.Embedding(vocab_size, cfg.dim, padding_idx=0)
        self.gru = nn.GRU(cfg.dim, cfg.dim, batch_first=True)
        self.charge = nn.Embedding(cfg.max_charge + 1, cfg.dim)

    def forward(self, spectra, peptides, charges):
        s = self.spec(spectra) + self.charge(charges)
        _, h = self.gru(self.emb(peptides))
        return nn.functional.cosine_similarity(s, h[-1], dim=-1)


class Trainer:
    def __init__(self, model_cfg=None, search_cfg=None, vocab=None, seed=0):
        self.model_cfg = model_cfg or ModelConfig()
        self.search_cfg = search_cfg or SearchConfig()
        self.vocab = vocab or Vocab()
        torch.manual_seed(seed)
        self.model = SpectrumPeptideScorer(self.model_cfg, len(self.vocab.itos))
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.search_cfg.lr)
        self.peptides, self.charges = synthetic_library(seed=seed + 3)
        self.rng = np.random.default_rng(seed)
        self.epoch = 0

    def _batch(self, peptides, charges):
        spectra = []
        for p in peptides:
            mz = fragment_mz(p, self.search_cfg.ion_types)
            mz = mz + self.rng.normal(0, self.search_cfg.fragment_tol_da, mz.shape)
            spectra.append(bin_spectrum(mz, self.rng.uniform(0.2, 1.0, mz.shape), self.model_cfg))
        pep = torch.tensor([self.vocab.encode(p, self.model_cfg.max_peptide_len) for p in peptides])
        return torch.from_numpy(np.stack(spectra)), pep, torch.tensor(charges)

    def train_epoch(self):
        self.model.train()
        losses = []
        order = self.rng.permutation(len(self.peptides))
        for start in range(0, len(order), 16):
            idx = order[start:start + 16]
            spectra, pep, ch = self._batch([self.peptides[i] for i in idx], [self.charges[i] for i in idx])
            decoys = pep.flip(1)
            pos, neg = self.model(spectra, pep, ch), self.model(spectra, decoys, ch)
            loss = nn.functional.relu(0.2 - pos + neg).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        self.epoch += 1
        return np.mean(np.asarray(losses, dtype=np.float32)), len(losses)

    @torch.no_grad()
    def search(self):
        self.model.eval()
        spectra, pep, ch = self._batch(self.peptides, self.charges)
        target = self.model(spectra, pep, ch).tolist()
        decoy = self.model(spectra, pep.flip(1), ch).tolist()
        psms = [PSM(i, p, c, t, False) for i, (p, c, t) in enumerate(zip(self.peptides, self.charges, target))]
        psms += [PSM(i, self.search_cfg.decoy_prefix + p[::-1], c, d, True)
                 for i, (p, c, d) in enumerate(zip(self.peptides, self.charges, decoy))]
        return sorted(psms, key=lambda m: m.score, reverse=True)

    def fdr_summary(self, psms):
        scores = np.array([m.score for m in psms])
        decoy = np.array([m.is_decoy for m in psms])
        fdr = np.cumsum(decoy) / np.maximum(np.cumsum(~decoy), 1)
        q = np.minimum.accumulate(fdr[::-1])[::-1]
        ok = np.nonzero(q <= self.search_cfg.fdr)[0]
        cut = ok[-1] if len(ok) else 0
        return {
            "score_threshold": scores[cut],
            "n_accepted": int((~decoy[:cut + 1]).sum()),
            "q_values": torch.from_numpy(q.copy()).float(),
        }

    def state_dict(self):
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }


def save_scorer_checkpoint(tmpdir):
    trainer = Trainer()
    for _ in range(trainer.search_cfg.epochs):
        loss, n_batches = trainer.train_epoch()
    psms = trainer.search()
    fdr = trainer.fdr_summary(psms)
    ckpt = trainer.state_dict()
    ckpt["model_config"] = trainer.model_cfg  # truth: weights_only
    ckpt["model_config_dict"] = asdict(trainer.model_cfg)
    ckpt["search_config"] = asdict(trainer.search_cfg)
    ckpt["search_config"]["ion_types"] = [t.value for t in trainer.search_cfg.ion_types]
    ckpt["primary_ion"] = trainer.search_cfg.ion_types[0]  # truth: weights_only
    ckpt["vocab"] = trainer.vocab.stoi
    ckpt["itos"] = trainer.vocab.itos
    ckpt["score_threshold"] = fdr["score_threshold"]  # truth: weights_only
    ckpt["q_values"] = fdr["q_values"]
    ckpt["n_accepted_1pct"] = fdr["n_accepted"]
    ckpt["train_loss"] = loss  # truth: weights_only
    ckpt["n_batches"] = n_batches
    ckpt["top_psm"] = psms[0]  # truth: weights_only
    ckpt["top_peptide"] = psms[0].peptide
    ckpt["top_score"] = psms[0].score
    ckpt["decoy_rate"] = sum(m.is_decoy for m in psms[:20]) / 20
    path = os.path.join(tmpdir, f"scorer_e{trainer.epoch}.pt")
    torch.save(ckpt, path)
    return path


MOD_RE = re.compile(r"([A-Z])\[([+-]\d+\.\d+)\]")


def parse_modified(sequence):
    mods = [(m.start(), float(m.group(2))) for m in MOD_RE.finditer(sequence)]
    return MOD_RE.sub(r"\1", sequence), mods


def count_missed_cleavages(peptides):
    counts = collections.defaultdict(int)
    for p in peptides:
        counts[sum(1 for a, b in zip(p, p[1:]) if a in "KR" and b != "P")] += 1
    return counts


def save_finetune_state(tmpdir):
    cfg = SearchConfig(variable_mods=["M[+15.995]", "N[+0.984]"])
    trainer = Trainer(search_cfg=cfg, seed=1)
    trainer.train_epoch()
    peptides = trainer.peptides + ["PEPTM[+15.995]IDEK", "ACDC[+57.021]K"]
    stripped = [parse_modified(p)[0] for p in peptides]
    method = Fragmentation.HCD
    precursor = peptide_mass(stripped[0]) / 2 + PROTON
    state = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "fragmentation": method,  # truth: weights_only
        "fragmentation_name": method.value,
        "ion_types": [t.value for t in cfg.ion_types],
        "precursor_tol_da": precursor * cfg.precursor_tol_ppm * 1e-6,
        "fixed_mods": frozenset(cfg.fixed_mods),  # truth: weights_only
        "variable_mods": sorted(set(cfg.variable_mods)),
        "mod_masses": {m: MODIFICATIONS[m] for m in cfg.variable_mods},
        "mod_pattern": MOD_RE,  # truth: weights_only
        "mod_regex": MOD_RE.pattern,
        "aa_mass_table": torch.tensor([AA_MASS[a] for a in trainer.vocab.itos[1:]], dtype=torch.float64),
        "charge_counts": collections.Counter(trainer.charges),
        "missed_cleavages": count_missed_cleavages(stripped),  # truth: weights_only
        "length_range": (min(map(len, stripped)), max(map(len, stripped))),
        "library_digest": hashlib.sha256("\n".join(peptides).encode()).digest(),
    }
    path = os.path.join(tmpdir, "finetune.pt")
    torch.save(state, path)
    return path


def psm_features(psms):
    rows = []
    for m in psms:
        stripped, mods = parse_modified(m.peptide)
        rows.append([m.score, len(stripped), m.charge, peptide_mass(stripped.replace("DECOY_", "")) / 1000.0,
                     len(mods)])
    return np.array(rows, dtype=np.float64), np.array([not m.is_decoy for m in psms], dtype=int)


def save_rescoring_model(tmpdir):
    trainer = Trainer(seed=2)
    trainer.train_epoch()
    psms = trainer.search()
    X, y = psm_features(psms)
    clf = LogisticRegression(C=0.5, max_iter=200)
    cv = cross_val_score(clf, X, y, cv=3, scoring="roc_auc")
    clf.fit(X, y)
    margin = clf.decision_function(X)
    iso = IsotonicRegression(out_of_bounds="clip").fit(margin, y)
    ckpt = {"feature_names": ["score", "length", "charge", "mass_kda", "n_mods"]}
    ckpt["coef"] = torch.from_numpy(clf.coef_).float()
    ckpt["intercept"] = clf.intercept_  # truth: weights_only
    ckpt["classes"] = clf.classes_.tolist()
    ckpt["n_iter"] = int(clf.n_iter_[0])
    ckpt["cv_auc"] = cv  # truth: weights_only
    ckpt["cv_auc_mean"] = float(cv.mean())
    ckpt["train_auc"] = roc_auc_score(y, margin)
    ckpt["calibration"] = {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
    ckpt["params"] = clf.get_params()
    ckpt["feature_means"] = dict(zip(ckpt["feature_names"], X.mean(axis=0).tolist()))
    ckpt.update(scorer_state=trainer.model.state_dict(), scorer_epoch=trainer.epoch)
    path = os.path.join(tmpdir, "rescore.pt")
    torch.save(ckpt, path)
    return path


def save_search_engine_export(tmpdir):
    """Export read by the search engine process (default torch.load): everything converted."""
    trainer = Trainer(seed=4)
    loss, _ = trainer.train_epoch()
    psms = trainer.search()
    fdr = trainer.fdr_summary(psms)
    cfg = trainer.search_cfg
    masses = np.array([peptide_mass(p) for p in trainer.peptides])
    lo, hi = masses.min(), masses.max()
    export = {
        "model": trainer.model.state_dict(),
        "model_config": dataclasses.asdict(trainer.model_cfg),
        "ion_types": tuple(t.value for t in cfg.ion_types),
        "max_charge": trainer.model_cfg.max_charge,
        "precursor_window": (float(lo), float(hi)),
        "decoy_prefix": cfg.decoy_prefix,
        "train_loss": loss.item(),
        "score_threshold": float(fdr["score_threshold"]),
        "q_values": fdr["q_values"],
        "n_psms": len(psms),
        "n_targets": sum(not m.is_decoy for m in psms),
        "top_psms": [m._asdict() for m in psms[:5]],
        "charge_hist": dict(collections.Counter(trainer.charges).most_common()),
        "fragmentation": Fragmentation.HCD.name,
        "rng_state": torch.Generator().manual_seed(4).get_state(),
        "pad_index": trainer.vocab.stoi["<pad>"],
        "mass_bins": torch.arange(trainer.model_cfg.n_bins) * trainer.model_cfg.bin_width,
        "library_sha1": hashlib.sha1("".join(trainer.peptides).encode()).hexdigest(),
    }
    path = os.path.join(tmpdir, "search_engine_export.pt")
    torch.save(export, path)
    return path


FACTORIES = {
    "IonType": lambda: IonType.B,
    "Fragmentation": lambda: Fragmentation.HCD,
    "PSM": lambda: PSM(0, "PEPTIDEK", 2, 0.5, False),
}
