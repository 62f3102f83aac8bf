"""Neural PDE surrogate for 1-D heat/Burgers: finite-difference reference solver, adaptive time steps."""
import enum
import os
import time
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class BoundaryCondition(enum.Enum):
    PERIODIC = "periodic"
    DIRICHLET = "dirichlet"


@dataclass(frozen=True)
class GridSpec:
    nx: int = 32
    length: float = 1.0

    def coords(self):
        return np.linspace(0.0, self.length, self.nx, endpoint=False)


class PIDStepController:
    """Adaptive time-step control (Hairer/Wanner PI controller)."""

    def __init__(self, dt0=1e-3, tol=1e-4, safety=0.9, kp=0.075, ki=0.175):
        self.dt = dt0
        self.tol = tol
        self.safety = safety
        self.kp, self.ki = kp, ki
        self.prev_err = 1.0
        self.accepted = 0
        self.rejected = 0
        self.dt_history = []

    def propose(self, err):
        err = max(err, 1e-12)
        factor = self.safety * (self.tol / err) ** self.ki * (self.prev_err / err) ** self.kp
        factor = np.clip(factor, 0.2, 5.0)
        if err <= self.tol:
            self.accepted += 1
            self.prev_err = err
            self.dt_history.append(self.dt)
        else:
            self.rejected += 1
        self.dt = self.dt * factor
        return err <= self.tol

    def state_dict(self):
        return {"dt": float(self.dt), "prev_err": float(self.prev_err),
                "accepted": self.accepted, "rejected": self.rejected}


def laplacian(u, dx):
    return (np.roll(u, -1) - 2 * u + np.roll(u, 1)) / dx ** 2


def solve_heat(grid, nu=0.01, t_end=0.01, controller=None):
    x = grid.coords()
    dx = x[1] - x[0]
    u = np.sin(2 * np.pi * x)
    ctrl = controller or PIDStepController(dt0=0.2 * dx ** 2 / nu)
    t, snapshots = 0.0, [u.copy()]
    while t < t_end:
        dt = min(ctrl.dt, t_end - t)
        full = u + dt * nu * laplacian(u, dx)
        half = u + 0.5 * dt * nu * laplacian(u, dx)
        half = half + 0.5 * dt * nu * laplacian(half, dx)
        err = float(np.abs(full - half).max())
        if ctrl.propose(err):
            u = half
            t += dt
            snapshots.append(u.copy())
    return np.stack(snapshots), dx, ctrl


class FNOBlock(nn.Module):
    def __init__(self, width=8, modes=4):
        super().__init__()
        self.modes = modes
        self.weight = nn.Parameter(torch.randn(width, width, modes, dtype=torch.cfloat) * 0.1)
        self.pointwise = nn.Conv1d(width, width, 1)

    def forward(self, x):
        xf = torch.fft.rfft(x)
        out = torch.zeros_like(xf)
        out[..., : self.modes] = torch.einsum("bim,iom->bom", xf[..., : self.modes], self.weight)
        return F.gelu(torch.fft.irfft(out, n=x.size(-1)) + self.pointwise(x))


class Surrogate(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.lift = nn.Conv1d(1, width, 1)
        self.block = FNOBlock(width)
        self.proj = nn.Conv1d(width, 1, 1)

    def forward(self, u):
        return self.proj(self.block(self.lift(u)))


def normalisation(data):
    return {"mean": data.mean(), "std": data.std() + 1e-8}


class SurrogateTrainer:
    def __init__(self, grid=GridSpec(), bc=BoundaryCondition.PERIODIC):
        self.grid = grid
        self.bc = bc
        self.model = Surrogate()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.ema = torch.optim.swa_utils.AveragedModel(self.model)
        self.residuals = []

    def prepare(self):
        traj, self.dx, self.controller = solve_heat(self.grid)
        self.norm = normalisation(traj)
        self.traj = (traj - self.norm["mean"]) / self.norm["std"]

    def fit(self, steps=3):
        data = torch.tensor(self.traj, dtype=torch.float32).unsqueeze(1)
        t0 = time.perf_counter()
        for _ in range(steps):
            pred = self.model(data[:-1])
            loss = F.mse_loss(pred, data[1:])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.ema.update_parameters(self.model)
            self.residuals.append(loss.detach())
        self.wall = time.perf_counter() - t0
        self.final_residual = torch.stack(self.residuals)[-1]
        self.rel_l2 = np.linalg.norm(pred.detach().numpy() - data[1:].numpy()) / np.linalg.norm(data[1:].numpy())


NOT_BUILT = {"BoundaryCondition": "an Enum, not built by calling it"}


def _trained():
    trainer = SurrogateTrainer()
    trainer.prepare()
    trainer.fit()
    return trainer


def save_surrogate(tmpdir):
    tr = _trained()
    ckpt = {"model": tr.model.state_dict(), "ema": tr.ema.state_dict(), "optimizer": tr.opt.state_dict()}
    ckpt["grid"] = tr.grid  # truth: weights_only
    ckpt["dx"] = tr.dx  # truth: weights_only
    ckpt["normalisation"] = {
        "mean": tr.norm["mean"],  # truth: weights_only
        "std": float(tr.norm["std"]),
    }
    ckpt["boundary"] = tr.bc.value
    ckpt["controller"] = tr.controller.state_dict()
    ckpt["final_residual"] = tr.final_residual
    ckpt["rel_l2"] = tr.rel_l2  # truth: weights_only
    path = os.path.join(tmpdir, "surrogate.pt")
    torch.save(ckpt, path)
    return path


def save_controller_state(tmpdir):
    tr = _trained()
    ctrl = tr.controller
    state = {
        "dt": ctrl.dt,  # truth: weights_only
        "tol": ctrl.tol,
        "accepted": ctrl.accepted,
        "dt_history": ctrl.dt_history,  # truth: weights_only
        "dt_history_f": [float(d) for d in ctrl.dt_history],
        "dt_min": min(ctrl.dt_history),  # truth: weights_only
        "dt_mean": np.mean(ctrl.dt_history),  # truth: weights_only
        "controller": ctrl,  # truth: weights_only
        "bc": tr.bc,  # truth: weights_only
    }
    path = os.path.join(tmpdir, "controller.pt")
    torch.save(state, path)
    return path


def save_clean_surrogate(tmpdir):
    tr = _trained()
    meta = SimpleNamespace(nx=tr.grid.nx, length=tr.grid.length, nu=0.01)
    residuals = [r.item() for r in tr.residuals]
    ckpt = dict(
        model=tr.ema.module.state_dict(),
        grid=vars(meta),
        dx=float(tr.dx),
        x=torch.from_numpy(tr.grid.coords()),
        residuals=residuals,
        best_residual=min(residuals),
        wall_seconds=tr.wall,
        norm={k: v.item() for k, v in tr.norm.items()},
        rng=torch.random.get_rng_state(),
        boundary=str(tr.bc.name),
    )
    path = os.path.join(tmpdir, "surrogate_clean.pt")
    torch.save(ckpt, path)
    return path


def save_ema_model(tmpdir):
    tr = _trained()
    path = os.path.join(tmpdir, "ema.pt")
    torch.save(tr.ema, path)  # truth: weights_only
    return path
