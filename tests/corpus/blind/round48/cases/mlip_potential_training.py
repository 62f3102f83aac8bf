"""Machine-learned interatomic potential (SchNet-like) trained on energies and forces.

Config comes from YAML through OmegaConf; models and cutoffs are looked up in registries;
dataset statistics (E0s, average neighbour count, scale/shift) are computed MACE-style
before training and stored next to the weights.
"""
import hashlib
import math
import os
import statistics
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
import scipy.constants as const
import torch
import torch.nn as nn
import yaml
from omegaconf import OmegaConf

CONFIG_YAML = """
model:
  name: schnet_lite
  r_max: 4.0
  num_radial: 6
  hidden: 16
  interactions: 2
  cutoff: cosine
data:
  elements: [1, 6, 8]
  n_structures: 6
  seed: 0
  valid_fraction: 0.34
training:
  lr: 5.0e-3
  max_epochs: 2
  energy_weight: 1.0
  forces_weight: 10.0
  swa_start: 1
  swa_energy_weight: 100.0
  ema_decay: 0.99
  r_max_check: ${model.r_max}
"""

DATASET_CARD = """
name: toy-organics
version: 2024-05-17
level_of_theory: PBE-D3
license: CC-BY-4.0
energy_unit: eV
"""

MODELS = {}


def register_model(name):
    def deco(cls):
        MODELS[name] = cls
        return cls
    return deco


def cosine_cutoff(d, r_max):
    return 0.5 * (torch.cos(math.pi * d / r_max) + 1.0) * (d < r_max)


def polynomial_cutoff(d, r_max, p=6):
    x = d / r_max
    return (1 - 0.5 * (p + 1) * (p + 2) * x ** p + p * (p + 2) * x ** (p + 1)
            - 0.5 * p * (p + 1) * x ** (p + 2)) * (d < r_max)


CUTOFFS = {"cosine": cosine_cutoff, "polynomial": polynomial_cutoff}


@dataclass
class TrainingConfig:
    lr: float = 1e-3
    max_epochs: int = 10
    energy_weight: float = 1.0
    forces_weight: float = 100.0
    swa_start: int = 5
    swa_energy_weight: float = 1000.0
    ema_decay: float = 0.99
    r_max_check: float = 5.0
    loss_keys: list = field(default_factory=lambda: ["energy", "forces"])


class AtomicNumberTable:
    def __init__(self, zs):
        self.zs = sorted(int(z) for z in zs)

    def __len__(self):
        return len(self.zs)

    def index(self, z):
        return self.zs.index(int(z))

    def to_index(self, numbers):
        return torch.tensor([self.index(z) for z in numbers], dtype=torch.long)


@register_model("schnet_lite")
class SchNetLite(nn.Module):
    def __init__(self, num_elements=3, r_max=4.0, num_radial=6, hidden=16, interactions=2, cutoff="cosine",
                 avg_num_neighbors=1.0):
        super().__init__()
        self.r_max = float(r_max)
        self.cutoff_fn = CUTOFFS[cutoff]
        self.avg_num_neighbors = float(avg_num_neighbors)
        self.embedding = nn.Embedding(num_elements, hidden)
        self.register_buffer("freqs", torch.arange(1, num_radial + 1, dtype=torch.float64) * math.pi / r_max)
        self.filters = nn.ModuleList(
            nn.Sequential(nn.Linear(num_radial, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
            for _ in range(interactions))
        self.updates = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(interactions))
        self.readout = nn.Sequential(nn.Linear(hidden, hidden // 2), nn.SiLU(), nn.Linear(hidden // 2, 1))
        self.register_buffer("atomic_energies", torch.zeros(num_elements, dtype=torch.float64))
        self.register_buffer("scale", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("shift", torch.tensor(0.0, dtype=torch.float64))
        self.double()

    def forward(self, species, pos):
        n = pos.shape[0]
        dist = ((pos[:, None, :] - pos[None, :, :]).pow(2).sum(-1) + 1e-9).sqrt()
        env = self.cutoff_fn(dist, self.r_max) * (~torch.eye(n, dtype=torch.bool))
        rbf = torch.sin(self.freqs * dist[..., None]) / dist[..., None]
        h = self.embedding(species)
        for filt, upd in zip(self.filters, self.updates):
            msg = (filt(rbf) * env[..., None] * h[None, :, :]).sum(1) / self.avg_num_neighbors
            h = h + upd(msg)
        e_atom = self.readout(h).squeeze(-1) * self.scale + self.shift + self.atomic_energies[species]
        return e_atom.sum()


def make_structures(n, elements, seed=0):
    rng = np.random.default_rng(seed)
    true_e0 = {1: -13.6, 6: -1029.8, 8: -2041.3}
    out = []
    for _ in range(n):
        numbers = rng.choice(elements, size=int(rng.integers(3, 6)))
        pos = rng.normal(scale=1.1, size=(len(numbers), 3))
        energy = sum(true_e0[int(z)] for z in numbers) + rng.normal(scale=0.3)
        out.append({"numbers": numbers, "positions": pos, "energy": energy,
                    "forces": rng.normal(scale=0.2, size=pos.shape)})
    return out


def compute_average_E0s(structures, z_table):
    A = np.zeros((len(structures), len(z_table)))
    b = np.array([s["energy"] for s in structures])
    for i, s in enumerate(structures):
        for z in s["numbers"]:
            A[i, z_table.index(z)] += 1
    e0s, *_ = np.linalg.lstsq(A, b, rcond=None)
    return e0s


def compute_avg_num_neighbors(structures, r_max):
    counts = []
    for s in structures:
        d = np.linalg.norm(s["positions"][:, None] - s["positions"][None], axis=-1)
        counts.extend(((d < r_max) & (d > 0)).sum(axis=1))
    return np.mean(counts), np.bincount(counts)


def compute_mean_rms_energy_forces(structures, e0s, z_table):
    per_atom = [(s["energy"] - sum(e0s[z_table.index(z)] for z in s["numbers"])) / len(s["numbers"])
                for s in structures]
    forces = np.concatenate([s["forces"] for s in structures])
    return float(np.mean(per_atom)), np.sqrt(np.mean(forces ** 2))


def load_config(overrides=()):
    cfg = OmegaConf.create(CONFIG_YAML)
    cfg.training = OmegaConf.merge(OmegaConf.structured(TrainingConfig), cfg.training)
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))


def build_from_config(cfg):
    z_table = AtomicNumberTable(cfg.data.elements)
    structures = make_structures(cfg.data.n_structures, list(cfg.data.elements), cfg.data.seed)
    e0s = compute_average_E0s(structures, z_table)
    avg_nn, nn_hist = compute_avg_num_neighbors(structures, cfg.model.r_max)
    shift, scale = compute_mean_rms_energy_forces(structures, e0s, z_table)
    kwargs = {k: v for k, v in OmegaConf.to_container(cfg.model).items() if k != "name"}
    model = MODELS[cfg.model.name](num_elements=len(z_table), avg_num_neighbors=avg_nn, **kwargs)
    model.atomic_energies.copy_(torch.from_numpy(e0s))
    model.scale.fill_(float(scale))
    model.shift.fill_(shift)
    stats = {"e0s": e0s, "avg_num_neighbors": avg_nn, "nn_hist": nn_hist, "shift": shift, "scale": scale}
    return model, z_table, structures, stats


def energy_forces(model, z_table, s, training=False):
    pos = torch.tensor(s["positions"], requires_grad=True)
    energy = model(z_table.to_index(s["numbers"]), pos)
    forces = -torch.autograd.grad(energy, pos, create_graph=training)[0]
    return energy, forces


def train_epoch(model, optimizer, z_table, structures, w_energy, w_forces):
    losses = []
    for s in structures:
        energy, forces = energy_forces(model, z_table, s, training=True)
        n = len(s["numbers"])
        loss = w_energy * ((energy - s["energy"]) / n) ** 2 + \
            w_forces * (forces - torch.from_numpy(s["forces"])).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return {"loss": statistics.fmean(losses), "n_steps": len(losses)}


def evaluate(model, z_table, structures):
    e_err, f_err = [], []
    for s in structures:
        energy, forces = energy_forces(model, z_table, s)
        e_err.append((energy.item() - s["energy"]) / len(s["numbers"]))
        f_err.append((forces.detach() - torch.from_numpy(s["forces"])).abs().mean().item())
    return {"rmse_e_per_atom": math.sqrt(statistics.fmean([e * e for e in e_err])),
            "mae_f": statistics.fmean(f_err)}


def save_mace_style_checkpoint(tmpdir):
    cfg = load_config(["training.max_epochs=1"])
    model, z_table, structures, stats = build_from_config(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.training.lr, amsgrad=True)
    for epoch in range(cfg.training.max_epochs):
        train_epoch(model, optimizer, z_table, structures, cfg.training.energy_weight, cfg.training.forces_weight)
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epochs": epoch + 1,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "model_config": cfg.model,  # truth: weights_only
        "model_name": cfg.model.name,
        "r_max": cfg.model.r_max,
        "z_table": z_table,  # truth: weights_only
        "atomic_numbers": z_table.zs,
        "E0s": {z: float(e) for z, e in zip(z_table.zs, stats["e0s"])},
        "default_dtype": torch.get_default_dtype(),
    }
    path = os.path.join(tmpdir, "schnet_lite_run-0_epoch-1.pt")
    torch.save(checkpoint, path)
    return path


def save_dataset_statistics(tmpdir):
    cfg = load_config()
    _, z_table, structures, stats = build_from_config(cfg)
    hartree, unit, _ = const.physical_constants["Hartree energy in eV"]
    statistics_blob = {
        "atomic_energies": stats["e0s"],  # truth: weights_only
        "atomic_energies_tensor": torch.as_tensor(stats["e0s"]),
        "avg_num_neighbors": stats["avg_num_neighbors"],  # truth: weights_only
        "neighbor_histogram": stats["nn_hist"].tolist(),
        "scale_shift": (stats["shift"], stats["scale"]),  # truth: weights_only
        "shift": stats["shift"],
        "n_structures": len(structures),
        "n_atoms": sum(len(s["numbers"]) for s in structures),
        "max_force": max(float(np.abs(s["forces"]).max()) for s in structures),
        "elements": list(cfg.data.elements),
        "units": {"energy": "eV", "length": "Angstrom", "hartree": hartree, "hartree_unit": unit},
        "bohr_in_angstrom": const.value("Bohr radius") * 1e10,
        "model_kwargs": dict(cfg.model),
    }
    path = os.path.join(tmpdir, "statistics.pt")
    torch.save(statistics_blob, path)
    return path


def save_swa_stage(tmpdir):
    cfg = load_config(["training.max_epochs=2", "training.swa_start=1"])
    tcfg = cfg.training
    model, z_table, structures, stats = build_from_config(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=tcfg.lr)
    ema = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(tcfg.ema_decay))
    history, stage = [], "stage_one"
    for epoch in range(tcfg.max_epochs):
        swa = epoch >= tcfg.swa_start
        w_e = tcfg.swa_energy_weight if swa else tcfg.energy_weight
        metrics = train_epoch(model, optimizer, z_table, structures, w_e, tcfg.forces_weight)
        ema.update_parameters(model)
        metrics.update(epoch=epoch, energy_weight=w_e, stage="stage_two" if swa else "stage_one")
        history.append(metrics)
        stage = metrics["stage"]
    ckpt = {"model": model.state_dict(), "ema": ema.state_dict(), "history": history}
    ckpt.update(
        stage=stage,
        swa_start=tcfg.swa_start,
        training_config=OmegaConf.to_object(tcfg),  # truth: weights_only
        training_config_dict=OmegaConf.to_container(tcfg, resolve=True),
        loss_keys=list(tcfg.loss_keys),
        eval=evaluate(ema.module, z_table, structures),
    )
    path = os.path.join(tmpdir, "swa_stage_two.pt")
    torch.save(ckpt, path)
    return path


def save_active_learning_round(tmpdir):
    cfg = load_config()
    card = yaml.safe_load(DATASET_CARD)
    committee = []
    for seed in range(2):
        torch.manual_seed(seed)
        model, z_table, structures, _ = build_from_config(cfg)
        committee.append(model)
    pool = make_structures(4, list(cfg.data.elements), seed=7)
    disagreement = []
    for s in pool:
        f = torch.stack([energy_forces(m, z_table, s)[1].detach() for m in committee])
        disagreement.append(f.std(dim=0).norm(dim=-1).max().item())
    threshold = float(np.percentile(disagreement, 75))
    selected = [i for i, d in enumerate(disagreement) if d >= threshold]
    digest = hashlib.sha256(b"".join(s["positions"].tobytes() for s in pool)).hexdigest()
    round_state = {
        "committee": [m.state_dict() for m in committee],
        "disagreement": torch.tensor(disagreement),
        "threshold": threshold,
        "selected": selected,
        "pool_hash": digest,
        "run_id": str(uuid.uuid4()),
        "dataset_name": card["name"],
        "dataset_version": card["version"],  # truth: weights_only
        "level_of_theory": card["level_of_theory"],
        "wall_clock": time.time(),
    }
    path = os.path.join(tmpdir, "al_round_03.pt")
    torch.save(round_state, path)
    return path


def save_eval_report(tmpdir):
    cfg = load_config()
    model, z_table, structures, _ = build_from_config(cfg)
    n_valid = max(1, int(cfg.data.valid_fraction * len(structures)))
    t0 = time.perf_counter()
    valid = evaluate(model, z_table, structures[:n_valid])
    per_element = {}
    for z in z_table.zs:
        errs = [abs(float(e)) for s in structures for zz, e in zip(s["numbers"], s["forces"][:, 0]) if zz == z]
        per_element[z] = statistics.fmean(errs) if errs else None
    report = {
        "valid": valid,
        "rmse_e_per_atom_meV": 1000.0 * valid["rmse_e_per_atom"],
        "per_element_force_mae": per_element,
        "eval_seconds": time.perf_counter() - t0,
        "device": torch.device("cpu"),
        "dtype": torch.float64,
        "num_params": sum(p.numel() for p in model.parameters()),
        "cutoff_name": cfg.model.cutoff,
        "r_max": float(cfg.model.r_max),
    }
    path = os.path.join(tmpdir, "eval_report.pt")
    torch.save(report, path)
    return path


FACTORIES = {
    "AtomicNumberTable": lambda: AtomicNumberTable([8, 1, 6]),
}
