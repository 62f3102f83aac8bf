"""Post-training quantization and magnitude pruning experiments: calibrate, quantize, prune
layer by layer, measure sparsity/accuracy trade-offs, and save what a compression run keeps."""
import enum
import os
import time
from dataclasses import asdict, dataclass, field

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.utils.prune as prune
from torch import nn
from torch.ao.quantization import get_default_qconfig, quantize_dynamic


class CompressionMethod(enum.Enum):
    DYNAMIC_INT8 = "dynamic_int8"
    L1_UNSTRUCTURED = "l1_unstructured"
    LN_STRUCTURED = "ln_structured"


@dataclass
class PruneConfig:
    amount: float = 0.5
    method: str = "l1_unstructured"
    layers: list = field(default_factory=lambda: ["0", "2"])
    iterative_steps: int = 2


def build_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def eval_batch():
    g = torch.Generator().manual_seed(3)
    return torch.randn(32, 8, generator=g), torch.randint(0, 4, (32,), generator=g)


def accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(-1) == y).float().mean().item()


def layer_sparsity(module):
    w = module.weight.detach().numpy()
    return (w == 0).mean()


def global_sparsity(model):
    zeros = sum(int((m.weight == 0).sum()) for m in model.modules() if isinstance(m, nn.Linear))
    total = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    return zeros / total


def save_quantized_model(tmpdir):
    model = build_mlp().eval()
    qmodel = quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    path = os.path.join(tmpdir, "model_int8.pt")
    torch.save(qmodel, path)  # truth: weights_only
    return path


def save_quantized_state(tmpdir):
    model = build_mlp().eval()
    x, y = eval_batch()
    fp32_acc = accuracy(model, x, y)
    qmodel = quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    int8_acc = accuracy(qmodel, x, y)
    w = qmodel[0].weight()
    ckpt = {
        "state_dict": qmodel.state_dict(),
        "dtype": torch.qint8,
        "method": CompressionMethod.DYNAMIC_INT8.value,
        "fp32_acc": fp32_acc,
        "int8_acc": int8_acc,
        "acc_drop": fp32_acc - int8_acc,
        "scale": w.q_scale(),
        "zero_point": w.q_zero_point(),
        "int_repr": w.int_repr(),
    }
    path = os.path.join(tmpdir, "model_int8_state.pt")
    torch.save(ckpt, path)
    return path


class Calibrator:
    def __init__(self, percentile=99.9):
        self.percentile = percentile
        self.samples = []

    def observe(self, x):
        self.samples.append(x.detach().abs().flatten().numpy())

    def compute_range(self):
        data = np.concatenate(self.samples)
        return np.percentile(data, self.percentile), data.max()


def save_calibration(tmpdir):
    model = build_mlp().eval()
    calib = Calibrator(percentile=99.0)
    x, _ = eval_batch()
    for chunk in x.split(8):
        calib.observe(model[0](chunk))
    clip_val, abs_max = calib.compute_range()
    qconfig = get_default_qconfig("fbgemm")
    ckpt = dict(
        percentile=calib.percentile,
        clip_value=clip_val,  # truth: weights_only
        clip_value_f=float(clip_val),
        abs_max=abs_max,  # truth: weights_only
        scale=float(clip_val) / 127.0,
        qconfig=qconfig,  # truth: weights_only
        backend=torch.backends.quantized.engine,
        n_batches=len(calib.samples),
    )
    path = os.path.join(tmpdir, "calibration.pt")
    torch.save(ckpt, path)
    return path


class PruningExperiment:
    def __init__(self, cfg: PruneConfig):
        self.cfg = cfg
        self.model = build_mlp()
        self.method = CompressionMethod(cfg.method)
        self.history = []
        self.started = time.perf_counter()

    def run(self):
        x, y = eval_batch()
        per_step = 1 - (1 - self.cfg.amount) ** (1 / self.cfg.iterative_steps)
        for step in range(self.cfg.iterative_steps):
            for name in self.cfg.layers:
                prune.l1_unstructured(self.model[int(name)], "weight", amount=per_step)
            self.history.append(
                {
                    "step": step,
                    "sparsity": global_sparsity(self.model),
                    "layer0_sparsity": layer_sparsity(self.model[0]),
                    "acc": accuracy(self.model, x, y),
                }
            )

    def state_dict(self):
        return {
            "model": self.model.state_dict(),
            "config": asdict(self.cfg),
            "final_sparsity": self.history[-1]["sparsity"],
            "history_acc": [h["acc"] for h in self.history],
            "elapsed": time.perf_counter() - self.started,
        }


def save_pruning_run(tmpdir):
    exp = PruningExperiment(PruneConfig(amount=0.5))
    exp.run()
    ckpt = exp.state_dict()
    ckpt["method"] = exp.method  # truth: weights_only
    last = exp.history[-1]
    ckpt["layer0_sparsity"] = last["layer0_sparsity"]  # truth: weights_only
    ckpt["step"] = last["step"]
    path = os.path.join(tmpdir, "pruned.pt")
    torch.save(ckpt, path)
    return path


def save_pruned_permanent(tmpdir):
    exp = PruningExperiment(PruneConfig(amount=0.3, iterative_steps=1))
    exp.run()
    for name in exp.cfg.layers:
        prune.remove(exp.model[int(name)], "weight")
    masks = {name: (exp.model[int(name)].weight != 0) for name in exp.cfg.layers}
    ckpt = {
        "model": exp.model.state_dict(),
        "masks": masks,
        "nnz": {name: int(m.sum()) for name, m in masks.items()},
        "sparsity": float(layer_sparsity(exp.model[0])),
        "method": exp.method.name,
        "config": asdict(exp.cfg),
    }
    path = os.path.join(tmpdir, "pruned_permanent.pt")
    torch.save(ckpt, path)
    return path


def sensitivity_scan(amounts=(0.25, 0.5, 0.75)):
    x, y = eval_batch()
    rows = []
    for layer in ("0", "2"):
        for amount in amounts:
            model = build_mlp()
            prune.l1_unstructured(model[int(layer)], "weight", amount=amount)
            rows.append({"layer": layer, "amount": amount, "acc": accuracy(model, x, y)})
    return pd.DataFrame(rows)


def save_sensitivity(tmpdir):
    df = sensitivity_scan()
    per_layer = df.groupby("layer")["acc"].mean()
    ckpt = {
        "scan": df,  # truth: weights_only
        "scan_records": df.to_dict("records"),
        "worst_layer": str(per_layer.idxmin()),
        "worst_acc": per_layer.min(),  # truth: weights_only
        "amounts": sorted(df["amount"].unique()),  # truth: weights_only
        "n_runs": len(df),
    }
    path = os.path.join(tmpdir, "sensitivity.pt")
    torch.save(ckpt, path)
    return path


def save_prune_method(tmpdir):
    model = build_mlp()
    method = prune.L1Unstructured(amount=0.4)
    mask = method.compute_mask(model[0].weight, default_mask=torch.ones_like(model[0].weight))
    ckpt = {"model": model.state_dict(), "mask": mask}
    ckpt["pruning_method"] = method  # truth: weights_only
    ckpt["amount"] = method.amount
    path = os.path.join(tmpdir, "prune_method.pt")
    torch.save(ckpt, path)
    return path


class LitQAT(L.LightningModule):
    def __init__(
        self,
        in_dim: int = 8,
        num_classes: int = 4,
        backend: str = "fbgemm",
        qconfig=None,  # truth: hparam
        quant_dtype=torch.qint8,
        freeze_bn_epoch: int = 3,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(in_dim, 16), nn.ReLU(), nn.Linear(16, num_classes))

    def forward(self, x):
        return self.net(x)


class LitPrunable(L.LightningModule):
    def __init__(
        self,
        cfg: PruneConfig,  # truth: hparam
        target_sparsity: float = 0.5,  # truth: hparam
        schedule=None,  # truth: hparam
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = build_mlp()

    def forward(self, x):
        return self.net(x)


class LitDistilledStudent(L.LightningModule):
    def __init__(
        self,
        teacher: nn.Module,
        temperature: float = 4.0,
        alpha: float = 0.7,
        sparsity: float = 0.5,
        teacher_acc: float = 0.0,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["teacher"])
        self.teacher = teacher.eval()
        self.student = nn.Sequential(nn.Linear(8, 4))

    def forward(self, x):
        return self.student(x)


class LitCompressed(L.LightningModule):
    def __init__(
        self,
        method=CompressionMethod.L1_UNSTRUCTURED,  # truth: hparam
        amount: float = 0.5,
        layer_amounts=None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = build_mlp()

    def forward(self, x):
        return self.net(x)


FACTORIES = {
    "LitQAT": lambda: LitQAT(qconfig=get_default_qconfig("fbgemm")),
    "LitPrunable": lambda: LitPrunable(
        PruneConfig(amount=0.6),
        target_sparsity=np.linspace(0.0, 0.6, 4)[-1],
        schedule=lambda epoch: min(1.0, epoch / 10),
    ),
    "LitDistilledStudent": lambda: LitDistilledStudent(
        build_mlp(),
        sparsity=global_sparsity(build_mlp()),
        teacher_acc=accuracy(build_mlp(), *eval_batch()),
    ),
    "LitCompressed": lambda: LitCompressed(
        amount=0.5,
        layer_amounts={"0": 0.3, "2": float(np.float32(0.7))},
    ),
    "PruningExperiment": lambda: PruningExperiment(PruneConfig()),
}
NOT_BUILT = {"CompressionMethod": "an Enum; its members are built with the class"}
