"""Measure the weights-only truth table: each kind of value x how torch.load is called.

For every kind of the weights-only catalog (server/ckpt_lsp/data/weights_only.toml), and for the
values that are believed to fail but load, the value is torch.save'd into a dict and loaded
three ways: the default `torch.load(path)` (weights_only=True since torch 2.6),
`torch.load(path, weights_only=False)`, and the default load after registering the globals
`torch.serialization.get_unsafe_globals_in_checkpoint` names (and each one the load still
refuses) with `torch.serialization.add_safe_globals`. The table is written as markdown with
the versions it was measured on.

    python scripts/weights_only_table.py > docs/weights-only-table.md
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "server"), str(ROOT / "tests")]

import torch  # noqa: E402
from ckpt_lsp.weights_only import DATA_FILE  # noqa: E402
from torch.serialization import (  # noqa: E402
    add_safe_globals,
    clear_safe_globals,
    get_unsafe_globals_in_checkpoint,  # noqa: E402
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# values people expect to fail that load (measured: they stay out of the catalog)
LOADS = [
    ("`collections.OrderedDict`", "collections.OrderedDict(a=1)", ["collections"]),
    ("`collections.Counter`", "collections.Counter('aab')", ["collections"]),
    ("`set`", "{1, 2}", []),
    ("`random.getstate()`", "random.getstate()", ["random"]),
    ("`torch.get_rng_state()`", "torch.get_rng_state()", []),
    ("`torch.Generator().get_state()`", "torch.Generator().get_state()", []),
    (
        "`np.random.default_rng().bit_generator.state`",
        "numpy.random.default_rng(0).bit_generator.state",
        ["numpy"],
    ),
    ("`torch.dtype`, `torch.device`", "(torch.float32, torch.device('cpu'))", []),
    ("`nn.Parameter`", "torch.nn.Parameter(torch.zeros(2))", []),
    ("a `state_dict()`", "torch.nn.Linear(2, 2).state_dict()", []),
]


def _value(expr: str, requires: list[str], tmp: str) -> object:
    names: dict[str, object] = {"torch": torch, "tmp": tmp}
    for module in requires:
        importlib.import_module(module)
        names[module.split(".")[0]] = sys.modules[module.split(".")[0]]
    return eval(expr, names)  # noqa: S307 - our own catalog's probes


def _resolve(name: str) -> object | None:
    module, _, attr = name.rpartition(".")
    try:
        obj: object = importlib.import_module(module)
    except ImportError:
        return None
    for part in attr.split("."):
        obj = getattr(obj, part, None)
    return obj


def _loads(path: str, **kwargs: object) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.load(path, **kwargs)  # type: ignore[arg-type]
        return "loads"
    except Exception as exc:  # noqa: BLE001
        text = str(exc)
        marker = "Unsupported global: GLOBAL "
        if marker in text:
            return "refused: `" + text.split(marker, 1)[1].split(" ", 1)[0] + "`"
        built = "but got <class '"
        if "Can only build" in text and built in text:  # reached through a registered class
            return "refused: `" + text.split(built, 1)[1].split("'", 1)[0] + "`"
        why = next((line for line in text.splitlines() if line.startswith("Can only")), "")
        return f"fails: {why or type(exc).__name__}"


def measure(expr: str, requires: list[str], tmp: str) -> tuple[str, str, str]:
    path = os.path.join(tmp, "ckpt.pt")
    try:
        torch.save({"value": _value(expr, requires, tmp)}, path)
    except Exception as exc:  # noqa: BLE001
        saved = f"torch.save raises {type(exc).__name__}"
        return saved, saved, saved
    default = _loads(path)
    unsafe = _loads(path, weights_only=False)
    if default == "loads":
        return default, unsafe, "loads"
    names = list(get_unsafe_globals_in_checkpoint(path))
    registered = default
    try:
        # a refused global can hide the next one (a numpy scalar's dtype class): register
        # each one the load names, as a user following the error message would
        for _ in range(6):
            clear_safe_globals()
            add_safe_globals([g for g in map(_resolve, names) if g is not None])
            registered = _loads(path)
            if not registered.startswith("refused: `"):
                break
            names.append(registered.split("`")[1])
    finally:
        clear_safe_globals()
    if registered == "loads" and len(names) > 1:
        # sorted: get_unsafe_globals_in_checkpoint returns a set, whose order varies per run
        registered = f"loads ({', '.join(f'`{n}`' for n in sorted(set(names)))})"
    return default, unsafe, registered


def main() -> None:
    data = tomllib.loads(DATA_FILE.read_text(encoding="utf-8"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in data["kind"]:
            requires = list(kind.get("requires", []))
            cells = measure(kind["probe"], requires, tmp)
            loadable = measure(kind["loadable_probe"], requires, tmp)[0]
            rows.append((kind["what"], f"`{kind['probe']}`", *cells, kind["loadable"], loadable))
        for what, expr, requires in LOADS:
            rows.append((what, f"`{expr}`", *measure(expr, requires, tmp), "", ""))
    import numpy

    print("# Weights-only truth table")
    print()
    print(
        f"Measured by `scripts/weights_only_table.py` on Python {platform.python_version()}, "
        f"torch {torch.__version__}, numpy {numpy.__version__}, {platform.system()} "
        f'{platform.machine()}. Each value is saved as `torch.save({{"value": v}}, path)` and '
        "loaded three ways: the default `torch.load(path)` (weights_only=True since torch "
        "2.6), `torch.load(path, weights_only=False)`, and the default load after "
        "`torch.serialization.add_safe_globals` of the globals "
        "`get_unsafe_globals_in_checkpoint(path)` names and then each one the load still "
        "refuses (listed when there are several). The catalog behind CKPT010 is "
        "`server/ckpt_lsp/data/weights_only.toml`; `tests/test_weights_only_truth.py` checks it."
    )
    print()
    print(
        "| value | probe | default `torch.load` | `weights_only=False` | after `add_safe_globals` "
        "| what loads instead | that, default load |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")


if __name__ == "__main__":
    main()
