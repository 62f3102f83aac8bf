"""CKPT010 weights-only of model compression: torch.ao.quantization (a quantized, fused or
converted model is a whole module; a QConfig or QConfigMapping is refused; observers, fake-quant
modules and stubs are modules) and torch.nn.utils.prune (a pruning method is refused; a prune
function returns the module it pruned). Their state_dicts, dtypes and settings load. VALID and
INVALID."""

from __future__ import annotations

import pytest
from support.ckpt010 import weights_only_findings, weights_only_rows

HEADER = """\
import torch
import torch.ao.quantization as tq
import torch.nn.utils.prune as prune
from torch import nn
from torch.ao.quantization import QConfig, get_default_qconfig, quantize_dynamic
from torch.ao.quantization.observer import MinMaxObserver
from torch.nn.utils.prune import L1Unstructured


def build():
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


"""

INVALID = [
    (
        "a dynamically quantized model saved whole",
        "def save(p):\n"
        "    q = quantize_dynamic(build().eval(), {nn.Linear}, dtype=torch.qint8)\n"
        "    torch.save(q, p)\n",
        [(3, None)],
    ),
    (
        "the older torch.quantization alias",
        'def save(p):\n    torch.save({"m": torch.quantization.quantize_dynamic(build())}, p)\n',
        [(2, "m")],
    ),
    (
        "a converted model",
        "def save(p):\n    m = tq.convert(build().eval())\n    torch.save(m, p)\n",
        [(3, None)],
    ),
    (
        "a fused model",
        "def save(p):\n"
        '    m = tq.fuse_modules(build().eval(), [["0", "1"]])\n'
        '    torch.save({"fused": m}, p)\n',
        [(3, "fused")],
    ),
    (
        "a default qconfig",
        'def save(p):\n    qconfig = get_default_qconfig("fbgemm")\n'
        "    torch.save(dict(qconfig=qconfig, n=1), p)\n",
        [(3, "qconfig")],
    ),
    (
        "a QConfig built from observers",
        "def save(p):\n"
        "    qc = QConfig(activation=MinMaxObserver, weight=tq.default_weight_observer)\n"
        '    torch.save({"qconfig": qc}, p)\n',
        [(3, "qconfig")],
    ),
    (
        "a library default qconfig",
        'def save(p):\n    torch.save({"qconfig": tq.default_dynamic_qconfig}, p)\n',
        [(2, "qconfig")],
    ),
    (
        "a qconfig mapping and its setter",
        "def save(p):\n"
        "    mapping = tq.QConfigMapping().set_global(tq.default_qconfig)\n"
        '    torch.save({"mapping": mapping, "fx": tq.get_default_qconfig_mapping()}, p)\n',
        [(3, "mapping"), (3, "fx")],
    ),
    (
        "an observer",
        'def save(p):\n    obs = MinMaxObserver()\n    torch.save({"observer": obs}, p)\n',
        [(3, "observer")],
    ),
    (
        "a pruning method stored by key",
        "def save(p):\n"
        "    method = prune.L1Unstructured(amount=0.4)\n"
        '    ckpt = {"model": build().state_dict()}\n'
        '    ckpt["pruning_method"] = method\n'
        "    torch.save(ckpt, p)\n",
        [(4, "pruning_method")],
    ),
    (
        "a pruning method imported by name",
        'def save(p):\n    torch.save({"method": L1Unstructured(0.5)}, p)\n',
        [(2, "method")],
    ),
    (
        "what a method's apply returns",
        "def save(p):\n"
        '    hook = prune.RandomUnstructured.apply(build()[0], "weight", amount=0.2)\n'
        '    torch.save({"hook": hook}, p)\n',
        [(3, "hook")],
    ),
    (
        "the module a prune function returns",
        "def save(p):\n"
        '    layer = prune.l1_unstructured(nn.Linear(2, 2), "weight", amount=0.5)\n'
        '    torch.save({"layer": layer, "kept": prune.remove(layer, "weight")}, p)\n',
        [(3, "layer"), (3, "kept")],
    ),
]

VALID = [
    (
        "a quantized model's state_dict, its dtype and the engine",
        "def save(p):\n"
        "    q = quantize_dynamic(build().eval(), {nn.Linear}, dtype=torch.qint8)\n"
        "    w = q[0].weight()\n"
        "    torch.save({\n"
        '        "state_dict": q.state_dict(),\n'
        '        "dtype": torch.qint8,\n'
        '        "backend": torch.backends.quantized.engine,\n'
        '        "scale": w.q_scale(),\n'
        '        "zero_point": w.q_zero_point(),\n'
        '        "int_repr": w.int_repr(),\n'
        "    }, p)\n",
    ),
    (
        "the backend name instead of its qconfig",
        'def save(p):\n    backend = "fbgemm"\n    qconfig = get_default_qconfig(backend)\n'
        '    torch.save({"backend": backend, "per_channel": qconfig is not None}, p)\n',
    ),
    (
        "a pruned model's state_dict and a method's amount",
        "def save(p):\n"
        "    model = build()\n"
        "    method = prune.L1Unstructured(amount=0.4)\n"
        '    prune.l1_unstructured(model[0], "weight", amount=0.5)\n'
        "    mask = method.compute_mask(model[0].weight, default_mask=torch.ones(16, 8))\n"
        '    torch.save({"model": model.state_dict(), "mask": mask, "amount": method.amount}, p)\n',
    ),
    (
        "a global prune returns None",
        "def save(p):\n"
        "    model = build()\n"
        "    out = prune.global_unstructured(\n"
        '        [(model[0], "weight")], pruning_method=prune.L1Unstructured, amount=0.2\n'
        "    )\n"
        '    torch.save({"out": out, "model": model.state_dict()}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID)
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    found = weights_only_rows(HEADER, source)
    assert sorted(found, key=str) == sorted(expected, key=str), name


@pytest.mark.parametrize(("name", "source"), VALID)
def test_valid(name: str, source: str) -> None:
    assert weights_only_findings(HEADER, source) == [], name
