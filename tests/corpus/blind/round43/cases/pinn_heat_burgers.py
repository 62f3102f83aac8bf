"""Physics-informed neural networks for the 1-D viscous Burgers and heat equations.

    u_t + u u_x = nu u_xx      (Burgers, x in [-1, 1], u(x, 0) = -sin(pi x), u(+-1, t) = 0)
    u_t = alpha u_xx           (heat,    x in [0, 1],  u(x, 0) = sin(pi x),  u(0, t) = u(1, t) = 0)

Collocation points come from a scrambled Sobol engine, Latin hypercube or plain uniform sampling;
residual-based adaptive refinement (RAR) adds the worst points of a candidate pool.  The PDE term is
ramped in by a schedule and the boundary weight follows the learning-rate-annealing rule of Wang,
Teng & Perdikaris (2021).  Adam first, L-BFGS to polish.  Config is OmegaConf, overridden by dotlists.
"""
import collections
import datetime
import functools
import math
import os
from enum import Enum

import numpy as np
import torch
from omegaconf import OmegaConf
from scipy.stats import qmc
from torch import nn

BASE_CFG = OmegaConf.create({
    "pde": {"kind": "burgers", "nu": 0.01 / math.pi, "alpha": 0.1},
    "domain": {"x": [-1.0, 1.0], "t": [0.0, 1.0]},
    "net": {"width": 20, "depth": 4, "activation": "tanh", "fourier_features": 0, "fourier_scale": 1.0},
    "sampling": {"n_interior": 512, "n_boundary": 64, "n_initial": 64, "method": "sobol", "seed": 0},
    "loss": {"w_pde": 1.0, "w_ic": 10.0, "w_bc": 10.0, "schedule": "linear", "warmup": 50,
             "adaptive": True, "alpha_ema": 0.9},
    "optim": {"adam_steps": 40, "lr": 1e-3, "lbfgs_iters": 8},
    "rar": {"rounds": 2, "pool": 2048, "add": 32, "tol": 1e-3},
})


class PDEKind(Enum):
    BURGERS = "burgers"
    HEAT = "heat"


def load_cfg(*overrides):
    return OmegaConf.merge(BASE_CFG, OmegaConf.from_dotlist(list(overrides)))


def _box(domain):
    lo = torch.tensor([domain.x[0], domain.t[0]], dtype=torch.float32)
    hi = torch.tensor([domain.x[1], domain.t[1]], dtype=torch.float32)
    return lo, hi


def sample_interior(n, domain, method="sobol", seed=0):
    lo, hi = _box(domain)
    if method == "sobol":
        unit = torch.quasirandom.SobolEngine(2, scramble=True, seed=seed).draw(n)
    elif method == "lhs":
        unit = torch.from_numpy(qmc.LatinHypercube(d=2, seed=seed).random(n)).float()
    else:
        unit = torch.rand(n, 2, generator=torch.Generator().manual_seed(seed))
    return lo + (hi - lo) * unit


def initial_points(n, domain, kind):
    x = torch.linspace(domain.x[0], domain.x[1], n).unsqueeze(1)
    u0 = -torch.sin(math.pi * x) if kind is PDEKind.BURGERS else torch.sin(math.pi * x)
    return torch.cat([x, torch.zeros_like(x)], 1), u0


def boundary_points(n, domain, seed=0):
    t = domain.t[0] + (domain.t[1] - domain.t[0]) * torch.rand(n, 1, generator=torch.Generator().manual_seed(seed))
    side = torch.where(torch.arange(n).unsqueeze(1) % 2 == 0, domain.x[0], domain.x[1]).float()
    return torch.cat([side, t], 1), torch.zeros(n, 1)


class Sine(nn.Module):
    def forward(self, x):
        return torch.sin(x)


ACTIVATIONS = {"tanh": nn.Tanh, "sin": Sine, "gelu": nn.GELU}


class MLP(nn.Module):
    def __init__(self, width=20, depth=4, activation="tanh", fourier_features=0, fourier_scale=1.0):
        super().__init__()
        in_dim = 2
        if fourier_features:
            self.register_buffer("B", fourier_scale * torch.randn(2, fourier_features))
            in_dim = 2 * fourier_features
        else:
            self.B = None
        layers = []
        for i in range(depth):
            layers += [nn.Linear(in_dim if i == 0 else width, width), ACTIVATIONS[activation]()]
        self.body = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, xt):
        if self.B is not None:
            proj = 2 * math.pi * xt @ self.B
            xt = torch.cat([proj.sin(), proj.cos()], 1)
        return self.body(xt)


def pde_residual(net, xt, kind, coef):
    xt = xt.clone().requires_grad_(True)
    u = net(xt)
    du = torch.autograd.grad(u.sum(), xt, create_graph=True)[0]
    u_x, u_t = du[:, :1], du[:, 1:]
    u_xx = torch.autograd.grad(u_x.sum(), xt, create_graph=True)[0][:, :1]
    if kind is PDEKind.BURGERS:
        return u_t + u * u_x - coef * u_xx
    return u_t - coef * u_xx


def linear_ramp(step, warmup, start=0.0, end=1.0):
    return end if step >= warmup else start + (end - start) * step / warmup


def cosine_ramp(step, warmup, start=0.0, end=1.0):
    if step >= warmup:
        return end
    return end + 0.5 * (start - end) * (1 + math.cos(math.pi * step / warmup))


SCHEDULES = {"linear": linear_ramp, "cosine": cosine_ramp}
FACTORIES = {"PDEKind": lambda: PDEKind.HEAT}


class PINNSolver:
    def __init__(self, cfg=None, kind=PDEKind.BURGERS):
        cfg = cfg if cfg is not None else BASE_CFG
        self.cfg, self.kind = cfg, kind
        self.coef = cfg.pde.nu if kind is PDEKind.BURGERS else cfg.pde.alpha
        torch.manual_seed(cfg.sampling.seed)
        self.net = MLP(**cfg.net)
        s = cfg.sampling
        self.x_f = sample_interior(s.n_interior, cfg.domain, s.method, s.seed)
        self.x_i, self.u_i = initial_points(s.n_initial, cfg.domain, kind)
        self.x_b, self.u_b = boundary_points(s.n_boundary, cfg.domain, s.seed)
        self.w = {"pde": cfg.loss.w_pde, "ic": cfg.loss.w_ic, "bc": cfg.loss.w_bc}
        self.ramp = functools.partial(SCHEDULES[cfg.loss.schedule], warmup=cfg.loss.warmup)
        self.adam = torch.optim.Adam(self.net.parameters(), lr=cfg.optim.lr)
        self.lbfgs = None
        self.history = collections.defaultdict(list)
        self.lambda_trace = []
        self.step = 0

    def loss_terms(self):
        r = pde_residual(self.net, self.x_f, self.kind, self.coef)
        return {
            "pde": r.pow(2).mean(),
            "ic": (self.net(self.x_i) - self.u_i).pow(2).mean(),
            "bc": (self.net(self.x_b) - self.u_b).pow(2).mean(),
        }

    def _flat_grad(self, term):
        grads = torch.autograd.grad(term, list(self.net.parameters()), retain_graph=True, allow_unused=True)
        return torch.cat([g.flatten() for g in grads if g is not None]).detach().numpy()

    def update_weights(self, terms):
        g_res = self._flat_grad(terms["pde"])
        g_bc = self._flat_grad(terms["bc"])
        lam_hat = np.max(np.abs(g_res)) / (np.mean(np.abs(g_bc)) + 1e-12)
        a = self.cfg.loss.alpha_ema
        self.w["bc"] = a * self.w["bc"] + (1 - a) * lam_hat
        self.lambda_trace.append(self.w["bc"])

    def total_loss(self, terms):
        return (self.ramp(self.step) * self.w["pde"] * terms["pde"]
                + self.w["ic"] * terms["ic"] + self.w["bc"] * terms["bc"])

    def train_adam(self, steps):
        for _ in range(steps):
            terms = self.loss_terms()
            if self.cfg.loss.adaptive and self.step % 10 == 0:
                self.update_weights(terms)
            loss = self.total_loss(terms)
            self.adam.zero_grad()
            loss.backward()
            self.adam.step()
            self.step += 1
            for k, v in terms.items():
                self.history[k].append(v.item())
            self.history["total"].append(loss.item())
        return {k: v[-1] for k, v in self.history.items()}

    def train_lbfgs(self, iters):
        self.lbfgs = torch.optim.LBFGS(self.net.parameters(), lr=1.0, max_iter=iters, line_search_fn="strong_wolfe")

        def closure():
            self.lbfgs.zero_grad()
            loss = self.total_loss(self.loss_terms())
            loss.backward()
            return loss

        return self.lbfgs.step(closure).item()

    @torch.no_grad()
    def relative_l2(self, xt, u_ref):
        u = self.net(xt).numpy().reshape(u_ref.shape)
        return np.linalg.norm(u - u_ref) / np.linalg.norm(u_ref)


def burgers_reference(nu, nx=129, nt=101, t_end=1.0, substeps=16):
    """Upwind / central finite differences, fine enough to score a PINN."""
    x = np.linspace(-1.0, 1.0, nx)
    ts = np.linspace(0.0, t_end, nt)
    dx, dt = x[1] - x[0], (ts[1] - ts[0]) / substeps
    u = -np.sin(np.pi * x)
    frames = [u.copy()]
    for _ in range(nt - 1):
        for _ in range(substeps):
            back, fwd = (u - np.roll(u, 1)) / dx, (np.roll(u, -1) - u) / dx
            u_x = np.where(u > 0, back, fwd)
            u_xx = (np.roll(u, -1) - 2 * u + np.roll(u, 1)) / dx ** 2
            u = u + dt * (-u * u_x + nu * u_xx)
            u[0] = u[-1] = 0.0
        frames.append(u.copy())
    return x, ts, np.stack(frames)


def heat_exact(x, t, alpha):
    return np.sin(np.pi * x) * np.exp(-alpha * np.pi ** 2 * t)


def grid_points(x, ts):
    X, T = np.meshgrid(x, ts)
    return torch.from_numpy(np.stack([X.ravel(), T.ravel()], 1)).float(), X, T


def residual_refine(solver, pool, add, seed):
    cand = sample_interior(pool, solver.cfg.domain, "uniform", seed=1000 + seed)
    res = pde_residual(solver.net, cand, solver.kind, solver.coef).abs().detach().numpy().ravel()
    top = np.argsort(res)[-add:]
    solver.x_f = torch.cat([solver.x_f, cand[torch.from_numpy(top)]])
    return top, res


def save_burgers_pinn(out_dir):
    cfg = load_cfg("optim.adam_steps=30")
    solver = PINNSolver(cfg, PDEKind(cfg.pde.kind))
    last = solver.train_adam(cfg.optim.adam_steps)
    final_loss = solver.train_lbfgs(cfg.optim.lbfgs_iters)
    x, ts, U = burgers_reference(cfg.pde.nu)
    xt, _, _ = grid_points(x, ts)
    ckpt = {
        "model": solver.net.state_dict(),
        "adam": solver.adam.state_dict(),
        "lbfgs": solver.lbfgs.state_dict(),
        "cfg": cfg,  # truth: weights_only
        "nu": cfg.pde.nu,
        "weights": {k: float(v) for k, v in solver.w.items()},
        "lambda_trace": solver.lambda_trace,  # truth: weights_only
        "last_terms": last,
        "final_loss": final_loss,
        "rel_l2": solver.relative_l2(xt, U),  # truth: weights_only
        "history": dict(solver.history),
        "collocation": solver.x_f,
        "step": solver.step,
    }
    ckpt.update(kind=solver.kind.value, torch=str(torch.__version__))
    path = os.path.join(out_dir, f"burgers_nu{cfg.pde.nu:.4f}.pt")
    torch.save(ckpt, path)
    return path


def save_heat_pinn(out_dir):
    cfg = load_cfg("pde.kind=heat", "domain.x=[0.0,1.0]", "sampling.method=lhs",
                   "net.fourier_features=8", "loss.adaptive=false")
    solver = PINNSolver(cfg, PDEKind(cfg.pde.kind))
    solver.train_adam(25)
    engine = torch.quasirandom.SobolEngine(2, scramble=True, seed=cfg.sampling.seed + 1)
    x_val = engine.draw(256)
    ckpt = dict(
        net=solver.net.state_dict(),
        optimizer=solver.adam.state_dict(),
        pde=solver.kind,  # truth: weights_only
        pde_name=solver.kind.name,
        alpha=solver.coef,
        domain={"x": tuple(cfg.domain.x), "t": tuple(cfg.domain.t)},
        weight_schedule=solver.ramp,  # truth: weights_only
        schedule_spec={"kind": cfg.loss.schedule, "warmup": cfg.loss.warmup},
        val_sampler=engine,  # truth: weights_only
        val_points=x_val,
        fourier_B=solver.net.B,
        sampling=OmegaConf.to_container(cfg.sampling),
    )
    path = os.path.join(out_dir, "heat_pinn.pt")
    torch.save(ckpt, path)
    return path


def save_rar_refined(out_dir):
    cfg = load_cfg("rar.rounds=2", "sampling.n_interior=256")
    solver = PINNSolver(cfg)
    solver.train_adam(20)
    added, worst = [], []
    for r in range(cfg.rar.rounds):
        top, res = residual_refine(solver, cfg.rar.pool, cfg.rar.add, seed=r)
        added.append(top)
        worst.append(res.max())
        solver.train_adam(10)
    ckpt = {}
    ckpt["model"] = solver.net.state_dict()
    ckpt["added_idx"] = np.concatenate(added)  # truth: weights_only
    ckpt["residual_max"] = worst  # truth: weights_only
    ckpt["residual_mean"] = float(res.mean())
    ckpt["n_points"] = solver.x_f.shape[0]
    ckpt["points"] = solver.x_f
    ckpt["rar"] = dict(rounds=cfg.rar.rounds, pool=cfg.rar.pool, add=cfg.rar.add, tol=cfg.rar.tol)
    ckpt["converged"] = bool(res.max() < cfg.rar.tol)
    torch.save(ckpt, os.path.join(out_dir, "rar.pt"))
    return os.path.join(out_dir, "rar.pt")


def save_full_model(out_dir):
    solver = PINNSolver(load_cfg("net.width=16", "net.activation=sin"))
    solver.train_adam(10)
    net = solver.net.eval()
    path = os.path.join(out_dir, "burgers_net_full.pt")
    torch.save(net, path)  # truth: weights_only
    return path


def save_weight_history(out_dir):
    cfg = load_cfg("loss.schedule=cosine", "loss.adaptive=false", "loss.warmup=20")
    solver = PINNSolver(cfg)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(solver.adam, T_max=4)
    gen = torch.Generator().manual_seed(cfg.sampling.seed)
    for _ in range(4):
        solver.train_adam(5)
        sched.step()
    terms = solver.loss_terms()
    solver.total_loss(terms).backward()
    ckpt = {
        "model": solver.net.state_dict(),
        "scheduler": sched.state_dict(),
        "loss_terms": {k: v.item() for k, v in terms.items()},
        "weights": dict(solver.w),
        "ramp_values": [solver.ramp(s) for s in range(0, 30, 5)],
        "nu": 0.01 / np.pi,
        "pi": np.pi,
        "generator": gen.get_state(),
        "grad_norm": nn.utils.clip_grad_norm_(solver.net.parameters(), 1.0).item(),
        "cfg": OmegaConf.to_container(cfg, resolve=True),
        "ic_weight": solver.w["ic"],
        "num_params": sum(p.numel() for p in solver.net.parameters()),
    }
    out = os.path.join(out_dir, "weights_history.pt")
    torch.save(ckpt, out)
    return out


def save_exact_compare(out_dir):
    cfg = load_cfg("pde.kind=heat", "domain.x=[0.0,1.0]", "loss.adaptive=false")
    solver = PINNSolver(cfg, PDEKind.HEAT)
    solver.train_adam(20)
    xs, ts = np.linspace(0.0, 1.0, 41), np.linspace(0.0, 1.0, 21)
    xt, X, T = grid_points(xs, ts)
    u_exact = heat_exact(X, T, cfg.pde.alpha)
    with torch.no_grad():
        u_pred = solver.net(xt).numpy().reshape(X.shape)
    err = np.abs(u_pred - u_exact)
    diff = torch.from_numpy(u_pred - u_exact)
    summary = {
        "max_abs_err": err.max(),  # truth: weights_only
        "mean_abs_err": float(err.mean()),
        "rel_l2": (torch.linalg.norm(diff) / torch.linalg.norm(torch.from_numpy(u_exact))).item(),
        "worst_time": float(ts[err.max(1).argmax()]),
    }
    ckpt = {
        "model": solver.net.state_dict(),
        "summary": summary,
        "grid_shape": X.shape,
        "u_exact": torch.from_numpy(u_exact).float(),
        "evaluated_at": datetime.datetime.now().isoformat(timespec="seconds"),
        "alpha": cfg.pde.alpha,
    }
    torch.save(ckpt, os.path.join(out_dir, "heat_vs_exact.pt"))
    return os.path.join(out_dir, "heat_vs_exact.pt")
