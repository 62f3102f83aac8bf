"""Run the shared oracle's round trip on several case trees in one process.

`oracle.py CASES --roundtrip` imports torch, Lightning and the rest anew on every call (about
five seconds); the corpus test needs the round trip of an unfixed and a fixed copy of each
corpus, so one process for both halves that cost. Each tree is imported on its own: its
directory alone is on `sys.path` and its modules leave `sys.modules` before the next tree,
since trees hold modules of the same names.

Usage: python roundtrip_trees.py ORACLE TREE [TREE ...]; prints `TREE<TAB>line` for each line
the oracle would print for that tree (`FAIL path: Class ...` and its summary).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType


def load_oracle(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("ckpt_shared_oracle", path)
    assert spec is not None and spec.loader is not None, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # the oracle lists a rebuilt object's attributes with `vars`, which raises for a
    # NamedTuple instance (no `__dict__`): such an object has no attributes to lose
    module.vars = _attributes  # type: ignore[attr-defined]
    return module


def _attributes(obj: object) -> dict[str, object]:
    return vars(obj) if hasattr(obj, "__dict__") else {}


def forget_modules_under(tree: str) -> None:
    """Drop the tree's modules, so the next tree's `lit_modules` is its own."""
    prefix = tree.rstrip(os.sep) + os.sep
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None) or ""
        if file.startswith(prefix):
            del sys.modules[name]


def roundtrip_tree(oracle: ModuleType, tree: str) -> list[str]:
    """The oracle's `--roundtrip` output lines for one tree."""
    sys.path.insert(0, tree)
    importlib.invalidate_caches()
    problems: list[str] = []
    kept = rebuilt = 0
    try:
        for root, _, files in sorted(os.walk(tree)):
            for name in sorted(files):
                if name.endswith(".py") and not name.startswith("_"):
                    rel = os.path.relpath(os.path.join(root, name), tree)
                    found, k, r = oracle.roundtrip(tree, rel)
                    problems += found
                    kept += k
                    rebuilt += r
    finally:
        sys.path.remove(tree)
        forget_modules_under(tree)
    lines = [f"FAIL {p}" for p in problems]
    lines.append(f"{len(problems)} classes fail to round-trip; {rebuilt}/{kept} come back non-None")
    return lines


def main(argv: list[str]) -> int:
    os.environ.setdefault("KERAS_BACKEND", "torch")  # before the oracle can import Keras
    oracle = load_oracle(Path(argv[0]))
    os.chdir(tempfile.mkdtemp(prefix="oracle-"))
    for tree in argv[1:]:
        tree = os.path.abspath(tree)
        for line in roundtrip_tree(oracle, tree):
            print(f"{tree}\t{line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
