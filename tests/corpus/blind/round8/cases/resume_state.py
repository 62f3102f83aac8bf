"""train.py-style resume checkpoints: arguments, configs, paths, RNG streams and training objects.

Each save_*(tmpdir) writes one checkpoint and returns its path; `--resume` reads it with a plain
torch.load(path).
"""
import argparse
import os
import random
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn


def get_parser():
    p = argparse.ArgumentParser(description="train a toy regressor")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out-dir", type=str, default="runs/exp")
    p.add_argument("--seed", type=int, default=0)
    return p


def parse_args(argv=None) -> argparse.Namespace:
    return get_parser().parse_args([] if argv is None else argv)


def load_config():
    return OmegaConf.create({"model": {"hidden": 32, "depth": 2}, "optim": {"lr": 1e-3, "betas": [0.9, 0.99]}})


def make_model(hidden=32):
    return nn.Sequential(nn.Linear(8, hidden), nn.GELU(), nn.Linear(hidden, 1))


def rng_snapshot():
    return {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
    }


def save_with_args(tmpdir):
    args = parse_args()
    model = make_model()
    ckpt = {
        "model": model.state_dict(),
        "args": args,  # truth: weights_only
        "epoch": args.epochs,
    }
    path = os.path.join(tmpdir, "args.pt")
    torch.save(ckpt, path)
    return path


def save_with_vars_args(tmpdir):
    args = get_parser().parse_args([])
    model = make_model()
    ckpt = {"model": model.state_dict(), "args": vars(args), "lr": args.lr}
    path = os.path.join(tmpdir, "vars_args.pt")
    torch.save(ckpt, path)
    return path


def save_namespace_alias(tmpdir):
    opts = parse_args(["--lr", "0.01"])
    hparams = opts
    model = make_model()
    path = os.path.join(tmpdir, "alias.pt")
    torch.save(dict(state_dict=model.state_dict(), hparams=hparams), path)  # truth: weights_only
    return path


def save_with_config(tmpdir):
    cfg = load_config()
    model = make_model(cfg.model.hidden)
    ckpt = {
        "model": model.state_dict(),
        "config": cfg,  # truth: weights_only
        "optim_cfg": cfg.optim,  # truth: weights_only
        "betas": cfg.optim.betas,  # truth: weights_only
        "hidden": cfg.model.hidden,
    }
    path = os.path.join(tmpdir, "cfg.pt")
    torch.save(ckpt, path)
    return path


def save_with_resolved_config(tmpdir):
    cfg = OmegaConf.merge(load_config(), OmegaConf.from_dotlist(["optim.lr=0.01"]))
    model = make_model(cfg.model.hidden)
    ckpt = {
        "model": model.state_dict(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "lr": cfg.optim.lr,
        "yaml": OmegaConf.to_yaml(cfg),
    }
    path = os.path.join(tmpdir, "cfg_plain.pt")
    torch.save(ckpt, path)
    return path


def save_with_paths(tmpdir):
    out_dir = Path(tmpdir) / "run"
    out_dir.mkdir(exist_ok=True)
    data_root = Path.home() / "datasets" / "toy"
    ckpt = {
        "model": make_model().state_dict(),
        "out_dir": out_dir,  # truth: weights_only
        "data_root": str(data_root),
        "log_file": os.fspath(out_dir / "train.log"),
        "best_path": out_dir / "best.pt",  # truth: weights_only
    }
    path = out_dir / "paths.pt"
    torch.save(ckpt, path)
    return str(path)


def save_rng_states(tmpdir):
    model = make_model()
    ckpt = {"model": model.state_dict()}
    ckpt["rng"] = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),  # truth: weights_only
    }
    path = os.path.join(tmpdir, "rng.pt")
    torch.save(ckpt, path)
    return path


def save_rng_from_helper(tmpdir):
    model = make_model()
    rng = rng_snapshot()
    rng["numpy"] = np.random.default_rng(0).bit_generator.state
    ckpt = {"model": model.state_dict(), "rng": rng}
    path = os.path.join(tmpdir, "rng_helper.pt")
    torch.save(ckpt, path)
    return path


def save_generators(tmpdir):
    sampler_gen = torch.Generator().manual_seed(1234)
    np_gen = np.random.default_rng(7)
    legacy = np.random.RandomState(7)
    ckpt = {
        "sampler_rng": sampler_gen.get_state(),
        "sampler_gen": sampler_gen,  # truth: weights_only
        "np_rng": np_gen,  # truth: weights_only
        "np_rng_state": np_gen.bit_generator.state,
        "legacy_rng": legacy,  # truth: weights_only
        "legacy_state": legacy.get_state(),  # truth: weights_only
    }
    path = os.path.join(tmpdir, "generators.pt")
    torch.save(ckpt, path)
    return path


def save_whole_model(tmpdir):
    model = make_model()
    path = os.path.join(tmpdir, "model_full.pt")
    torch.save(model, path)  # truth: weights_only
    return path


def save_training_objects(tmpdir):
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
    scaler = torch.amp.GradScaler("cpu")
    ckpt = {
        "model": model.state_dict(),
        "optimizer": optimizer,  # truth: weights_only
        "scheduler": scheduler.state_dict(),
        "scaler": scaler,  # truth: weights_only
    }
    ckpt["lr_scheduler"] = scheduler  # truth: weights_only
    path = os.path.join(tmpdir, "objects.pt")
    torch.save(ckpt, path)
    return path


def save_training_state_dicts(tmpdir):
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 0.95**e)
    scaler = torch.amp.GradScaler("cpu")
    ckpt = dict(
        model=model.state_dict(),
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict(),
        scaler=scaler.state_dict(),
        param_groups=optimizer.param_groups,
        dtype=torch.float32,
        device=torch.device("cpu"),
    )
    path = os.path.join(tmpdir, "state_dicts.pt")
    torch.save(ckpt, path)
    return path


def save_ema_and_model(tmpdir):
    model = make_model()
    ema = torch.optim.swa_utils.AveragedModel(model)
    ckpt = {"model": model.state_dict()}
    ckpt.update(ema=ema, n_averaged=int(ema.n_averaged))  # truth: weights_only
    path = os.path.join(tmpdir, "ema.pt")
    torch.save(ckpt, path)
    return path


def save_module_submodule(tmpdir):
    model = make_model()
    ckpt = {
        "backbone": model[0],  # truth: weights_only
        "head": model[2].state_dict(),
        "torch_version": torch.__version__,  # truth: weights_only
        "torch_version_str": str(torch.__version__),
    }
    path = os.path.join(tmpdir, "parts.pt")
    torch.save(ckpt, path)
    return path
