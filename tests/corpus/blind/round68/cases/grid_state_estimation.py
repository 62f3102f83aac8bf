"""AC power-system state estimation: WLS Gauss-Newton, chi-square bad-data test, and a
learned (MLP) estimator that maps SCADA measurements to bus voltages for warm starts.

Configs are dataclasses (one per stage), the network is a small 6-bus test case
(Wood & Wollenberg), measurements are V magnitudes, P/Q injections and P flows.
"""
import os
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn as nn
from scipy.stats import chi2
from sklearn.metrics import mean_absolute_error
from sklearn.preprocessing import StandardScaler


class BusType(Enum):
    PQ = 1
    PV = 2
    SLACK = 3


@dataclass
class GridConfig:
    case: str = "case6ww"
    base_mva: float = 100.0
    slack_bus: int = 0
    sigma: dict = field(default_factory=lambda: {"vm": 0.004, "pinj": 0.01, "qinj": 0.01, "pflow": 0.008})


@dataclass
class SolverConfig:
    tol: float = 1e-6
    max_iter: int = 15
    alpha: float = 0.01
    flat_start: bool = True


@dataclass
class TrainConfig:
    hidden: tuple = (64, 64)
    lr: float = 2e-3
    epochs: int = 3
    n_samples: int = 192
    batch_size: int = 32
    load_spread: float = 0.25
    seed: int = 3


@dataclass
class Measurement:
    kind: str
    bus: int
    to: int = -1
    sigma: float = 0.01

    @property
    def label(self):
        return f"{self.kind}[{self.bus}]" if self.to < 0 else f"{self.kind}[{self.bus}-{self.to}]"


BUSES = pd.DataFrame({"bus": range(6), "type": ["SLACK", "PV", "PV", "PQ", "PQ", "PQ"],
                      "pd": [0.0, 0.0, 0.0, 0.7, 0.7, 0.7], "qd": [0.0, 0.0, 0.0, 0.7, 0.7, 0.7]}).set_index("bus")
LINES = pd.DataFrame({
    "f": [0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 4],
    "t": [1, 3, 4, 2, 3, 4, 5, 4, 5, 4, 5],
    "r": [0.10, 0.05, 0.08, 0.05, 0.05, 0.10, 0.07, 0.12, 0.02, 0.20, 0.10],
    "x": [0.20, 0.20, 0.30, 0.25, 0.10, 0.30, 0.20, 0.26, 0.10, 0.40, 0.30],
    "b": [0.04, 0.04, 0.06, 0.06, 0.02, 0.04, 0.05, 0.05, 0.02, 0.08, 0.06],
})


class GridModel:
    def __init__(self, cfg=None):
        self.cfg = cfg or GridConfig()
        self.buses = BUSES.copy()
        self.lines = LINES.copy()
        self.n_bus = len(self.buses)
        self.ybus = self._build_ybus()
        self.graph = nx.from_pandas_edgelist(self.lines, "f", "t", edge_attr=["r", "x"])

    def _build_ybus(self):
        y = 1.0 / (self.lines["r"].to_numpy() + 1j * self.lines["x"].to_numpy())
        f, t, bsh = self.lines["f"].to_numpy(), self.lines["t"].to_numpy(), self.lines["b"].to_numpy()
        rows = np.concatenate([f, t, f, t])
        cols = np.concatenate([t, f, f, t])
        vals = np.concatenate([-y, -y, y + 0.5j * bsh, y + 0.5j * bsh])
        return sp.csr_matrix((vals, (rows, cols)), shape=(self.n_bus, self.n_bus))

    def bus_type(self, bus):
        return BusType[self.buses.loc[bus, "type"]]

    def measurement_plan(self):
        s = self.cfg.sigma
        plan = [Measurement("vm", b, sigma=s["vm"]) for b in range(self.n_bus)]
        plan += [Measurement("pinj", b, sigma=s["pinj"]) for b in range(self.n_bus)]
        plan += [Measurement("qinj", b, sigma=s["qinj"]) for b in range(self.n_bus)]
        plan += [Measurement("pflow", int(r.f), int(r.t), s["pflow"]) for r in self.lines.itertuples()]
        return plan

    def h(self, va, vm, plan):
        V = vm * np.exp(1j * va)
        S = V * np.conj(self.ybus @ V)
        out = []
        for m in plan:
            if m.kind == "vm":
                out.append(vm[m.bus])
            elif m.kind == "pinj":
                out.append(S[m.bus].real)
            elif m.kind == "qinj":
                out.append(S[m.bus].imag)
            else:
                yft = -self.ybus[m.bus, m.to]
                out.append((V[m.bus] * np.conj(yft * (V[m.bus] - V[m.to]))).real)
        return np.array(out)


class MeasurementSimulator:
    def __init__(self, grid=None, seed=0):
        self.grid = grid or GridModel()
        self.rng = np.random.default_rng(seed)

    def true_state(self, spread=0.1):
        n = self.grid.n_bus
        va = np.r_[0.0, self.rng.normal(-0.08, spread * 0.2, n - 1)]
        vm = 1.0 + self.rng.normal(0.0, spread * 0.1, n)
        return va, vm

    def sample(self, spread=0.1):
        plan = self.grid.measurement_plan()
        va, vm = self.true_state(spread)
        sigma = np.array([m.sigma for m in plan])
        z = self.grid.h(va, vm, plan) + self.rng.normal(0.0, sigma)
        return z, plan, (va, vm)


class WLSEstimator:
    def __init__(self, grid=None, cfg=None):
        self.grid = grid or GridModel()
        self.cfg = cfg or SolverConfig()

    def jacobian(self, x, plan, eps=1e-6):
        base = self._h(x, plan)
        J = np.empty((len(base), len(x)))
        for k in range(len(x)):
            dx = np.zeros_like(x)
            dx[k] = eps
            J[:, k] = (self._h(x + dx, plan) - base) / eps
        return J

    def _h(self, x, plan):
        n = self.grid.n_bus
        va = np.r_[0.0, x[: n - 1]]
        return self.grid.h(va, x[n - 1:], plan)

    def solve(self, z, plan):
        n = self.grid.n_bus
        W = np.diag([1.0 / m.sigma ** 2 for m in plan])
        x = np.r_[np.zeros(n - 1), np.ones(n)]
        mismatch, converged, it = [], False, 0
        for it in range(1, self.cfg.max_iter + 1):
            r = z - self._h(x, plan)
            H = self.jacobian(x, plan)
            G = H.T @ W @ H
            dx = np.linalg.solve(G, H.T @ W @ r)
            x = x + dx
            mismatch.append(float(np.abs(dx).max()))
            converged = np.abs(dx).max() < self.cfg.tol
            if converged:
                break
        r = z - self._h(x, plan)
        return {"va": np.r_[0.0, x[: n - 1]], "vm": x[n - 1:], "residuals": r, "J": r @ W @ r,
                "iterations": it, "converged": converged, "mismatch": mismatch, "gain_cond": np.linalg.cond(G)}


class NeuralSE(nn.Module):
    def __init__(self, n_meas=29, n_bus=6, hidden=(64, 64)):
        super().__init__()
        layers, d = [], n_meas
        for h in hidden:
            layers += [nn.Linear(d, h), nn.Tanh()]
            d = h
        layers.append(nn.Linear(d, 2 * n_bus - 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)


class SETrainer:
    def __init__(self, grid=None, cfg=None):
        self.grid = grid or GridModel()
        self.cfg = cfg or TrainConfig()
        self.plan = self.grid.measurement_plan()
        self.model = NeuralSE(len(self.plan), self.grid.n_bus, self.cfg.hidden)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=2, gamma=0.5)
        self.x_scaler = StandardScaler()
        self.history = {"train_mse": [], "val_mae": []}
        self.best_val_mae = float("inf")
        self.last_angle_err = None
        self.epoch = 0
        self.snapshot_time = pd.Timestamp("2024-03-01 14:15", tz="UTC")

    def build_dataset(self, n):
        sim = MeasurementSimulator(self.grid, seed=self.cfg.seed)
        Z, Y = [], []
        for _ in range(n):
            z, _, (va, vm) = sim.sample(self.cfg.load_spread)
            Z.append(z)
            Y.append(np.r_[va[1:], vm])
        return np.stack(Z), np.stack(Y)

    def validate(self, Z, Y):
        with torch.no_grad():
            pred = self.model(torch.as_tensor(self.x_scaler.transform(Z), dtype=torch.float32)).numpy()
        n = self.grid.n_bus
        mae = mean_absolute_error(Y, pred)
        angle_err_deg = np.degrees(np.abs(pred[:, : n - 1] - Y[:, : n - 1])).max()
        return mae, angle_err_deg

    def fit(self):
        torch.manual_seed(self.cfg.seed)
        Z, Y = self.build_dataset(self.cfg.n_samples)
        split = int(0.8 * len(Z))
        Zt = torch.as_tensor(self.x_scaler.fit_transform(Z[:split]), dtype=torch.float32)
        Yt = torch.as_tensor(Y[:split], dtype=torch.float32)
        for epoch in range(self.cfg.epochs):
            self.epoch = epoch
            perm = torch.randperm(len(Zt))
            total = 0.0
            for i in range(0, len(Zt), self.cfg.batch_size):
                idx = perm[i:i + self.cfg.batch_size]
                loss = nn.functional.mse_loss(self.model(Zt[idx]), Yt[idx])
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                total += loss.item() * len(idx)
            self.scheduler.step()
            mae, self.last_angle_err = self.validate(Z[split:], Y[split:])
            self.history["train_mse"].append(total / len(Zt))
            self.history["val_mae"].append(mae)
            self.best_val_mae = min(self.best_val_mae, mae)
        return self


FACTORIES = {"BusType": lambda: BusType.PQ, "Measurement": lambda: Measurement("vm", 0, sigma=0.004)}


def _solve_snapshot(seed=1):
    grid = GridModel(GridConfig())
    z, plan, truth = MeasurementSimulator(grid, seed=seed).sample()
    est = WLSEstimator(grid, SolverConfig())
    return grid, est, z, plan, truth, est.solve(z, plan)


# ------------------------------------------------------------------------ checkpoints

def save_wls_solution(tmpdir):
    grid, est, z, plan, truth, result = _solve_snapshot()
    V = result["vm"] * np.exp(1j * result["va"])
    ckpt = {
        "grid_config": grid.cfg,  # truth: weights_only
        "solver": asdict(est.cfg),
        "ybus": grid.ybus,  # truth: weights_only
        "ybus_dense": torch.from_numpy(grid.ybus.toarray()),
        "z": torch.from_numpy(z),
        "vm": torch.from_numpy(result["vm"]),
        "va_deg": np.degrees(result["va"]).round(4).tolist(),
        "v_phasors": [complex(v) for v in V],
        "slack_phasor": V[grid.cfg.slack_bus],  # truth: weights_only
        "iterations": result["iterations"],
        "converged": result["converged"],  # truth: weights_only
        "objective": float(result["J"]),
        "mismatch_history": result["mismatch"],
        "vm_error_max": float(np.abs(result["vm"] - truth[1]).max()),
    }
    path = os.path.join(tmpdir, "wls_snapshot.pt")
    torch.save(ckpt, path)
    return path


def save_bad_data_report(tmpdir):
    grid, est, z, plan, _, result = _solve_snapshot(seed=5)
    z_bad = z.copy()
    z_bad[7] += 0.25
    result = est.solve(z_bad, plan)
    sigma = np.array([m.sigma for m in plan])
    rn = np.abs(result["residuals"]) / sigma
    worst = int(np.argmax(rn))
    dof = len(z) - (2 * grid.n_bus - 1)
    threshold = chi2.ppf(1 - est.cfg.alpha, dof)
    report = {
        "dof": dof,
        "alpha": est.cfg.alpha,
        "chi2_threshold": threshold,  # truth: weights_only
        "objective": float(result["J"]),
        "bad_data_detected": bool(result["J"] > threshold),
        "largest_residual": (plan[worst].label, rn.max()),  # truth: weights_only
        "largest_residual_idx": worst,
        "suspects": [m.label for m, r in zip(plan, rn) if r > 3.0],
        "normalized_residuals": torch.from_numpy(rn),
        "bus_types": [grid.bus_type(b) for b in grid.buses.index],  # truth: weights_only
        "bus_type_names": {int(b): grid.bus_type(b).name for b in grid.buses.index},
        "measurement_counts": Counter(m.kind for m in plan),
        "measurement_plan": [asdict(m) for m in plan],
        "gain_condition": float(result["gain_cond"]),
    }
    path = os.path.join(tmpdir, "bad_data.pt")
    torch.save(report, path)
    return path


def save_neural_estimator(tmpdir):
    grid = GridModel()
    trainer = SETrainer(grid, TrainConfig(epochs=2)).fit()
    ckpt = {"model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict(), "epoch": trainer.epoch}
    ckpt["input_scaler"] = trainer.x_scaler  # truth: weights_only
    ckpt["input_stats"] = {"mean": torch.as_tensor(trainer.x_scaler.mean_), "scale": trainer.x_scaler.scale_.tolist()}
    ckpt["topology"] = grid.graph  # truth: weights_only
    ckpt["edges"] = sorted(grid.graph.edges())
    ckpt["degree"] = dict(grid.graph.degree())
    ckpt["snapshot_time"] = trainer.snapshot_time  # truth: weights_only
    ckpt["snapshot_ns"] = trainer.snapshot_time.value
    ckpt["train_cfg"] = asdict(trainer.cfg)
    ckpt["history"] = trainer.history
    ckpt["val_mae"] = trainer.best_val_mae
    ckpt["val_max_angle_err_deg"] = trainer.last_angle_err  # truth: weights_only
    ckpt["measurement_labels"] = [m.label for m in trainer.plan]
    path = os.path.join(tmpdir, "neural_se.pt")
    torch.save(ckpt, path)
    return path


def save_resume(tmpdir):
    grid = GridModel()
    trainer = SETrainer(grid, TrainConfig(epochs=1)).fit()
    out = Path(tmpdir) / "runs" / "se"
    out.mkdir(parents=True, exist_ok=True)
    state = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "epoch": trainer.epoch + 1,
        "grid": {**asdict(grid.cfg), "n_bus": grid.n_bus, "n_lines": len(grid.lines)},
        "slack_type": BusType.SLACK.value,
        "pv_buses": grid.buses.index[grid.buses["type"] == "PV"].tolist(),
        "line_table": grid.lines.to_dict("list"),
        "rng": {"python": random.getstate(), "torch": torch.get_rng_state(),
                "numpy": np.random.default_rng(3).bit_generator.state},
        "run_dir": str(out),
        "scaler_mean": trainer.x_scaler.mean_.tolist(),
    }
    path = out / "resume.pt"
    torch.save(state, path)
    return str(path)
