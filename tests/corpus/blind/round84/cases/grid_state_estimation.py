"""DC state estimation for a small transmission grid.

Classic weighted-least-squares (WLS) estimation with chi-square / largest-normalized-residual
bad-data detection, plus a learned estimator (an MLP that maps a measurement snapshot to bus
voltage angles) trained on simulated SCADA snapshots.

    python grid_state_estimation.py --epochs 40 --hidden 64 --out-dir runs/se
"""
import argparse
import enum
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.stats as st
import torch
import torch.nn as nn
from sklearn.preprocessing import StandardScaler


class BusType(enum.Enum):
    PQ = "pq"
    PV = "pv"
    SLACK = "slack"


@dataclass
class GridConfig:
    n_bus: int = 8
    base_mva: float = 100.0
    slack_bus: int = 0
    slack_type: BusType = BusType.SLACK
    noise_std: float = 0.01
    branches: list = field(default_factory=lambda: [
        (0, 1, 0.06), (0, 2, 0.24), (1, 2, 0.18), (1, 3, 0.18), (1, 4, 0.12),
        (2, 3, 0.03), (3, 4, 0.24), (4, 5, 0.10), (5, 6, 0.15), (6, 7, 0.08), (3, 7, 0.20),
    ])


def build_parser():
    p = argparse.ArgumentParser(description="learned DC state estimator")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--noise-std", type=float, default=0.01)
    p.add_argument("--n-snapshots", type=int, default=512)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--meas-types", nargs="+", default=["flow", "injection"])
    p.add_argument("--out-dir", type=Path, default=Path("runs/se"))
    return p


# ----------------------------------------------------------------------------- grid model

def bus_table(cfg: GridConfig, rng) -> pd.DataFrame:
    types = [BusType.SLACK.value if i == cfg.slack_bus else (BusType.PV.value if i % 3 == 1 else BusType.PQ.value)
             for i in range(cfg.n_bus)]
    return pd.DataFrame({
        "bus": np.arange(cfg.n_bus),
        "type": types,
        "base_kv": rng.choice([138.0, 230.0, 345.0], size=cfg.n_bus),
        "load_mw": np.round(rng.uniform(10, 120, size=cfg.n_bus), 1),
    })


def incidence(cfg: GridConfig) -> sp.csr_matrix:
    rows, cols, vals = [], [], []
    for k, (i, j, _x) in enumerate(cfg.branches):
        rows += [k, k]
        cols += [i, j]
        vals += [1.0, -1.0]
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(cfg.branches), cfg.n_bus))


def measurement_matrix(cfg: GridConfig, meas_types=("flow", "injection")):
    """H (dense) of the linear DC model z = H theta + e, slack column removed."""
    A = incidence(cfg).toarray()
    b = np.array([1.0 / x for (_, _, x) in cfg.branches])
    H_flow = b[:, None] * A
    Bbus = A.T @ (b[:, None] * A)
    blocks = []
    if "flow" in meas_types:
        blocks.append(H_flow)
    if "injection" in meas_types:
        blocks.append(Bbus)
    H = np.vstack(blocks)
    keep = [c for c in range(cfg.n_bus) if c != cfg.slack_bus]
    return H[:, keep], Bbus


def simulate(cfg: GridConfig, H, n, rng, noise_std=None):
    sigma = cfg.noise_std if noise_std is None else noise_std
    theta = rng.normal(0.0, 0.08, size=(n, H.shape[1]))
    z_true = theta @ H.T
    z = z_true + rng.normal(0.0, sigma, size=z_true.shape)
    return theta.astype(np.float32), z.astype(np.float32)


def wls_estimate(z, H, sigma):
    W = np.diag(np.full(H.shape[0], 1.0 / sigma ** 2))
    G = H.T @ W @ H
    x_hat = np.linalg.solve(G, H.T @ W @ z)
    r = z - H @ x_hat
    J = r @ W @ r
    return x_hat, r, J, G


def chi2_test(J, n_meas, n_state, alpha=0.01):
    dof = n_meas - n_state
    threshold = st.chi2.ppf(1.0 - alpha, dof)
    return J > threshold, threshold, dof


def normalized_residuals(r, H, G, sigma):
    R = np.eye(H.shape[0]) * sigma ** 2
    Omega = R - H @ np.linalg.solve(G, H.T)
    rn = np.abs(r) / np.sqrt(np.clip(np.diag(Omega), 1e-12, None))
    return rn, int(np.argmax(rn)), float(rn.max())


def residual_report(r, rn, threshold=3.0) -> pd.DataFrame:
    df = pd.DataFrame({"meas_id": np.arange(len(r)), "r": r, "rn": rn})
    df["flag"] = df["rn"] > threshold
    df["kind"] = np.where(df["meas_id"] < len(r) // 2, "flow", "injection")
    return df


# ----------------------------------------------------------------------------- learned estimator

class StateEstimatorNet(nn.Module):
    def __init__(self, n_meas=30, n_state=7, hidden=64):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_meas, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                  nn.Linear(hidden, n_state))

    def forward(self, z):
        return self.body(z)


class SETrainer:
    def __init__(self, net, lr=3e-3, batch_size=64):
        self.net = net
        self.batch_size = batch_size
        self.optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=10, gamma=0.5)
        self.scaler = StandardScaler()
        self.history = {"train_mse": [], "val_mae_deg": []}
        self.best_val = math.inf
        self.best_epoch = -1
        self.epoch = 0

    def _standardize(self, z, fit=False):
        z2 = self.scaler.fit_transform(z) if fit else self.scaler.transform(z)
        return torch.from_numpy(z2.astype(np.float32))

    def fit(self, theta_tr, z_tr, theta_va, z_va, epochs):
        X = self._standardize(z_tr, fit=True)
        Y = torch.from_numpy(theta_tr)
        g = torch.Generator().manual_seed(0)
        for _ in range(epochs):
            self.net.train()
            perm = torch.randperm(len(X), generator=g)
            losses = []
            for s in range(0, len(X), self.batch_size):
                idx = perm[s:s + self.batch_size]
                loss = nn.functional.mse_loss(self.net(X[idx]), Y[idx])
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                losses.append(loss.item())
            self.scheduler.step()
            val = self.evaluate(theta_va, z_va)
            self.history["train_mse"].append(sum(losses) / len(losses))
            self.history["val_mae_deg"].append(val["mae_deg"])
            if val["mae_deg"] < self.best_val:
                self.best_val, self.best_epoch = val["mae_deg"], self.epoch
            self.epoch += 1
        return self.history

    @torch.no_grad()
    def predict(self, z):
        self.net.eval()
        return self.net(self._standardize(z)).numpy()

    def evaluate(self, theta, z):
        err_deg = np.degrees(np.abs(self.predict(z) - theta))
        return {
            "mae_deg": float(err_deg.mean()),
            "p95_deg": float(np.percentile(err_deg, 95)),
            "worst_bus": int(err_deg.mean(axis=0).argmax()),
            "rmse_rad": math.sqrt(float(((self.predict(z) - theta) ** 2).mean())),
        }

    def checkpoint_state(self):
        return {
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "best_val": self.best_val,
            "history": {k: list(v) for k, v in self.history.items()},
        }


def train_from_args(args):
    cfg = GridConfig(noise_std=args.noise_std)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    H, _ = measurement_matrix(cfg, args.meas_types)
    theta, z = simulate(cfg, H, args.n_snapshots, rng)
    n_tr = int(0.8 * len(z))
    trainer = SETrainer(StateEstimatorNet(H.shape[0], H.shape[1], args.hidden), lr=args.lr, batch_size=args.batch_size)
    trainer.fit(theta[:n_tr], z[:n_tr], theta[n_tr:], z[n_tr:], args.epochs)
    return trainer, cfg, H, (theta[n_tr:], z[n_tr:])


# ----------------------------------------------------------------------------- checkpoints

def save_wls_snapshot(tmpdir):
    """One SCADA snapshot with a gross error, its WLS estimate and the PMU phasors aligned to it."""
    cfg = GridConfig()
    np.random.seed(21)
    rng = np.random.default_rng(3)
    H, _ = measurement_matrix(cfg)
    theta, Z = simulate(cfg, H, 16, rng)
    z = Z[0].astype(np.float64)
    z[4] += 0.4  # a gross error on one flow measurement
    x_hat, r, J, G = wls_estimate(z, H, cfg.noise_std)
    suspicious, threshold, dof = chi2_test(J, H.shape[0], H.shape[1])
    rn, worst, worst_rn = normalized_residuals(r, H, G, cfg.noise_std)
    snapshot = {
        "theta_hat": torch.from_numpy(x_hat),
        "theta_true": torch.tensor(theta[0]),
        "objective": J,  # truth: weights_only
        "chi2_threshold": float(threshold),
        "dof": dof,
        "bad_data": suspicious,  # truth: weights_only
        "worst_meas": worst,
        "worst_rn": worst_rn,
        "scada_time": pd.Timestamp("2024-03-18 14:05:00").isoformat(),
        "n_meas": H.shape[0],
    }
    # PMU phasors over the 16 reporting frames, referenced to the slack bus angle
    vm = 1.0 + 0.02 * rng.standard_normal(theta.shape)
    phasors = vm * np.exp(1j * theta)
    offset = np.angle(phasors.mean(axis=0))
    ref = phasors[:, 0].mean()
    snapshot["pmu"] = {
        "ref_phasor": complex(ref),
        "ref_phasor_raw": ref,  # truth: weights_only
        "offsets_deg": np.degrees(offset).tolist(),
        "offsets_rad": torch.from_numpy(offset),
        "phasors": torch.from_numpy(phasors),
        "tve_pct": 100.0 * float(np.abs(phasors - phasors.mean(axis=0)).mean()),
    }
    snapshot["rng"] = {
        "np": rng.bit_generator.state,
        "np_global": np.random.get_state(),  # truth: weights_only
        "torch": torch.get_rng_state(),
        "seeded_at": time.time(),
    }
    path = str(Path(tmpdir) / "wls_snapshot.pt")
    torch.save(snapshot, path)
    return path


def save_learned_estimator(tmpdir):
    args = build_parser().parse_args(["--epochs", "4", "--n-snapshots", "192", "--out-dir", "runs/se-small"])
    trainer, cfg, H, (theta_va, z_va) = train_from_args(args)
    metrics = trainer.evaluate(theta_va, z_va)
    ckpt = trainer.checkpoint_state()
    ckpt["args"] = args  # truth: weights_only
    ckpt["hparams"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    ckpt["metrics"] = metrics
    ckpt["lr_now"] = trainer.scheduler.get_last_lr()[0]
    ckpt["scaler_mean"] = torch.from_numpy(trainer.scaler.mean_)
    ckpt["scaler_scale"] = trainer.scaler.scale_.tolist()
    ckpt["scaler_n_seen"] = trainer.scaler.n_samples_seen_  # truth: weights_only
    ckpt["scaler_n_features"] = trainer.scaler.n_features_in_
    ckpt["export_dir"] = args.out_dir  # truth: weights_only
    out = Path(tmpdir) / args.out_dir.name
    out.mkdir(parents=True, exist_ok=True)
    path = out / "last.pt"
    torch.save(ckpt, path)
    return str(path)


def save_bad_data_report(tmpdir):
    cfg = GridConfig(noise_std=0.02)
    rng = np.random.default_rng(11)
    H, _ = measurement_matrix(cfg)
    _, Z = simulate(cfg, H, 3, rng)
    t0 = datetime(2024, 3, 18, 14, 0, 0)
    reports, flagged_total = [], 0
    for k, z in enumerate(Z.astype(np.float64)):
        if k == 1:
            z[7] -= 0.5
        x_hat, r, J, G = wls_estimate(z, H, cfg.noise_std)
        rn, worst, _ = normalized_residuals(r, H, G, cfg.noise_std)
        df = residual_report(r, rn)
        df["snapshot"] = k
        flagged_total += int(df["flag"].sum())
        reports.append(df)
    report = pd.concat(reports, ignore_index=True)
    per_kind = report.groupby("kind")["rn"].mean().to_dict()
    ckpt = dict(
        report=report.to_dict("records"),
        flagged_ids=report.loc[report["flag"], "meas_id"].tolist(),
        n_flagged=flagged_total,
        n_flagged_pd=report["flag"].sum(),  # truth: weights_only
        rn_summary=report["rn"].describe(),  # truth: weights_only
        rn_quantiles=report["rn"].quantile([0.5, 0.9, 0.99]).to_dict(),
        mean_rn_by_kind=per_kind,
        max_rn=float(report["rn"].max()),
        worst_row=int(report["rn"].idxmax()),
        window_start=t0.isoformat(),
        window=timedelta(minutes=5) * len(Z),  # truth: weights_only
        window_s=(timedelta(minutes=5) * len(Z)).total_seconds(),
    )
    path = str(Path(tmpdir) / "bad_data_report.pt")
    torch.save(ckpt, path)
    return path


def save_topology(tmpdir):
    cfg = GridConfig()
    rng = np.random.default_rng(5)
    buses = bus_table(cfg, rng)
    A = incidence(cfg)
    coo = A.tocoo()
    H, Bbus = measurement_matrix(cfg)
    theta, _ = simulate(cfg, H, 1, rng)
    full = np.insert(theta[0].astype(np.float64), cfg.slack_bus, 0.0)
    flows = (A @ full) / np.array([x for (_, _, x) in cfg.branches])
    topo = {"n_bus": cfg.n_bus, "n_branch": len(cfg.branches)}
    topo.update(
        config=cfg,  # truth: weights_only
        config_dict={**asdict(cfg), "slack_type": cfg.slack_type.value},
        incidence=torch.sparse_coo_tensor(np.vstack([coo.row, coo.col]), coo.data, coo.shape),
        incidence_csr=A,  # truth: weights_only
        bbus=torch.from_numpy(Bbus),
        bus_types=buses["type"].value_counts().to_dict(),
        base_kv=buses["base_kv"].tolist(),
        rank=int(np.linalg.matrix_rank(H)),
        observable=bool(np.linalg.matrix_rank(H) == H.shape[1]),
        max_flow_pu=float(np.abs(flows).max()),
        loaded_buses={int(b) for b in buses.loc[buses["load_mw"] > 60, "bus"]},
    )
    topo["slack_kind"] = cfg.slack_type  # truth: weights_only
    path = str(Path(tmpdir) / "topology.pt")
    torch.save(topo, path)
    return path


def save_estimator_eval(tmpdir):
    args = build_parser().parse_args(["--epochs", "4", "--n-snapshots", "192", "--hidden", "32"])
    trainer, cfg, H, (theta_va, z_va) = train_from_args(args)
    metrics = trainer.evaluate(theta_va, z_va)
    x_wls = np.stack([wls_estimate(z.astype(np.float64), H, cfg.noise_std)[0] for z in z_va])
    wls_mae = float(np.degrees(np.abs(x_wls - theta_va)).mean())
    state = trainer.checkpoint_state()
    ckpt = {
        "model": state["model"],
        "epoch": trainer.epoch,
        "best_epoch": trainer.best_epoch,
        "best_val_mae_deg": trainer.best_val,
        "history": state["history"],
        "metrics": metrics,
        "wls_mae_deg": wls_mae,
        "gain_vs_wls": wls_mae - metrics["mae_deg"],
        "meas_types": tuple(args.meas_types),
        "hparams": {**vars(args), "out_dir": str(args.out_dir)},
        "torch_version": str(torch.__version__),
        "dtype": torch.float32,
        "input_shape": torch.Size([1, H.shape[0]]),
    }
    path = str(Path(tmpdir) / "se_eval.pt")
    torch.save(ckpt, path)
    return path


def save_estimator_module(tmpdir):
    torch.manual_seed(0)
    cfg = GridConfig()
    H, _ = measurement_matrix(cfg)
    net = StateEstimatorNet(H.shape[0], H.shape[1], hidden=32)
    path = str(Path(tmpdir) / "se_module.pt")
    torch.save(net, path)  # truth: weights_only
    return path


FACTORIES = {
    "BusType": lambda: BusType.PQ,
    "StateEstimatorNet": lambda: StateEstimatorNet(30, 7, 16),
    "SETrainer": lambda: SETrainer(StateEstimatorNet(30, 7, 16)),
}


if __name__ == "__main__":
    a = build_parser().parse_args()
    tr, *_ = train_from_args(a)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(tr.checkpoint_state(), a.out_dir / "last.pt")
