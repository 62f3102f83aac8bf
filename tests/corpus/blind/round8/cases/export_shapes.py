"""Exporting checkpoints for the model hub: the shapes people build the saved object in.

Each save_*(tmpdir) writes one file with torch.save and returns its path; the hub loader calls
plain torch.load(path).
"""
import os
from collections import OrderedDict
from pathlib import Path
from typing import Dict

import numpy as np
import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self, in_dim=8, out_dim=2):
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)

    def forward(self, x):
        return self.fc(x)


def checkpoint_dir(root) -> Path:
    return Path(root) / "hub"


def best_threshold(scores: np.ndarray) -> float:
    return float(np.quantile(scores, 0.9))


def raw_threshold(scores):
    return np.quantile(scores, 0.9)


def base_checkpoint(model: nn.Module, epoch: int) -> Dict[str, object]:
    return {"model": model.state_dict(), "epoch": epoch, "arch": type(model).__name__}


SCORES = np.linspace(0.0, 1.0, 11)


def save_updated_checkpoint(tmpdir):
    model = TinyNet()
    ckpt = base_checkpoint(model, epoch=5)
    ckpt.update({
        "threshold": raw_threshold(SCORES),  # truth: weights_only
        "threshold_f": best_threshold(SCORES),
    })
    ckpt.update(n_params=sum(p.numel() for p in model.parameters()))
    path = os.path.join(tmpdir, "updated.pt")
    torch.save(ckpt, path)
    return path


def save_nested_assignment(tmpdir):
    model = TinyNet()
    ckpt = {"model": model.state_dict(), "meta": {}, "metrics": {}}
    ckpt["meta"]["export_dir"] = checkpoint_dir(tmpdir)  # truth: weights_only
    ckpt["meta"]["export_dir_str"] = str(checkpoint_dir(tmpdir))
    ckpt["metrics"]["auc"] = np.trapezoid(SCORES, dx=0.1)  # truth: weights_only
    ckpt["metrics"]["auc_f"] = float(np.trapezoid(SCORES, dx=0.1))
    path = os.path.join(tmpdir, "nested.pt")
    torch.save(ckpt, path)
    return path


def save_splat_merge(tmpdir):
    model = TinyNet()
    extra = {"quantiles": np.quantile(SCORES, [0.1, 0.5, 0.9]).tolist()}
    ckpt = {**base_checkpoint(model, 7), **extra, "scores_mean": SCORES.mean()}  # truth: weights_only
    path = os.path.join(tmpdir, "merged.pt")
    torch.save(ckpt, path)
    return path


def save_ordered(tmpdir):
    model = TinyNet()
    ckpt = OrderedDict(
        state_dict=model.state_dict(),
        step=np.int32(100),  # truth: weights_only
        best_step=100,
    )
    path = os.path.join(tmpdir, "ordered.pt")
    torch.save(ckpt, path)
    return path


def save_keyword_call(tmpdir):
    model = TinyNet()
    path = os.path.join(tmpdir, "kw.pt")
    torch.save(obj={"model": model.state_dict(), "scale": torch.tensor(np.float32(0.5))}, f=path)
    return path


def save_list_of_states(tmpdir):
    ensemble = [TinyNet() for _ in range(3)]
    path = os.path.join(tmpdir, "ensemble.pt")
    torch.save([m.state_dict() for m in ensemble], path)
    return path


def save_ensemble_modules(tmpdir):
    ensemble = nn.ModuleList(TinyNet() for _ in range(3))
    path = os.path.join(tmpdir, "ensemble_full.pt")
    torch.save(ensemble, path)  # truth: weights_only
    return path


def save_tuple_with_numpy(tmpdir):
    model = TinyNet()
    path = os.path.join(tmpdir, "pair.pt")
    torch.save((model.state_dict(), SCORES.max()), path)  # truth: weights_only
    return path


def save_tensor_only(tmpdir):
    emb = torch.from_numpy(np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32))
    path = os.path.join(tmpdir, "emb.pt")
    torch.save(emb, path)
    return path


def save_half_precision(tmpdir):
    model = TinyNet().to(torch.bfloat16)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    path = os.path.join(tmpdir, "bf16.pt")
    torch.save({"model": sd, "dtype": str(torch.bfloat16).split(".")[-1], "shape": list(sd["fc.weight"].shape)}, path)
    return path


def save_project_object(tmpdir):
    model = TinyNet(out_dim=3)
    ckpt = {
        "model": model,  # truth: weights_only
        "fc": model.fc.state_dict(),
        "class": TinyNet,  # truth: weights_only
        "class_name": TinyNet.__qualname__,
    }
    path = os.path.join(tmpdir, "project.pt")
    torch.save(ckpt, path)
    return path


def save_model_with_buffers(tmpdir):
    model = TinyNet()
    model.register_buffer("running_mean", torch.from_numpy(np.zeros(8)))
    ckpt = {"model": model.state_dict(), "buffers": dict(model.named_buffers())}
    path = os.path.join(tmpdir, "buffers.pt")
    torch.save(ckpt, path)
    return path
