"""Sweep public constructors of modules ML code uses and list what does not pickle.

Each public class (and factory function) of each module is called with the first argument
list from CANDIDATE_ARGS that it accepts; the result is pickled (dumps + loads) and
deep-copied. A line is printed for every result that fails, with its qualified name and
whether the hazard catalog already lists it, so new catalog entries come from a sweep
rather than from bug reports. Run: python scripts/sweep_constructors.py [module ...]
"""

from __future__ import annotations

import copy
import importlib
import inspect
import io
import os
import pickle
import sys
import tempfile
import warnings
from pathlib import Path

MODULES = [
    "io",
    "logging",
    "logging.handlers",
    "threading",
    "queue",
    "socket",
    "selectors",
    "sched",
    "struct",
    "hashlib",
    "zlib",
    "bz2",
    "lzma",
    "json",
    "csv",
    "tempfile",
    "contextlib",
    "decimal",
    "argparse",
    "warnings",
    "weakref",
    "mmap",
    "sqlite3",
    "codecs",
    "itertools",
    "functools",
    "collections",
    "random",
    "string",
    "textwrap",
    "re",
    "datetime",
    "fractions",
    "array",
    "numpy",
    "numpy.random",
    "torch",
    "torch.random",
    "torch.func",
    "torch.utils.data",
]

SCRATCH = tempfile.mkdtemp(prefix="sweep-")
# Simple argument lists tried in order; the first one a constructor accepts is used.
CANDIDATE_ARGS: tuple[tuple[object, ...], ...] = (
    (),
    ("x",),
    (999,),  # a number that is no open file descriptor
    (io.BytesIO(b"abc"),),
    ([1, 2],),
    ("<i",),
    (len,),
    (len, [1]),
    (os.path.join(SCRATCH, "f.txt"), "w"),
)
# Never called: they only print.
SKIP = {"numpy.info", "numpy.show_config", "numpy.show_runtime", "torch.FileCheck"}


def _catalog_names() -> set[str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    data = tomllib.loads(
        (Path(__file__).parents[1] / "server/ckpt_lsp/data/hazards.toml").read_text()
    )
    return {e["name"] for key in ("hazard", "conditional_hazard") for e in data.get(key, [])}


def _fails(action) -> str:  # type: ignore[no-untyped-def]
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return type(exc).__name__
    return ""


def _build(obj: object) -> object:
    for args in CANDIDATE_ARGS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return obj(*args)  # type: ignore[operator]
        except Exception:  # noqa: BLE001, S112 - try the next argument list
            continue
    raise LookupError


def sweep(module_name: str, known: set[str]) -> None:
    module = importlib.import_module(module_name)
    for name in sorted(dir(module)):
        obj = getattr(module, name)
        qualified = f"{module_name}.{name}"
        if name.startswith("_") or qualified in SKIP or not callable(obj):
            continue
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            continue
        if not (inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj)):
            continue
        try:
            value = _build(obj)
        except LookupError:
            continue
        if value is None or isinstance(value, (int, float, str, bytes, bool, tuple, list, dict)):
            continue
        pickle_error = _fails(lambda v=value: pickle.loads(pickle.dumps(v)))
        copy_error = _fails(lambda v=value: copy.deepcopy(v))
        if pickle_error:
            mark = "listed" if qualified in known else "NEW"
            kind = type(value).__qualname__
            print(
                f"{mark:6s} {qualified:45s} -> {kind:28s} pickle: {pickle_error:14s} "
                f"deepcopy: {copy_error or 'ok'}"
            )
        for method in ("close", "shutdown", "cancel"):
            if callable(getattr(type(value), method, None)):
                _fails(getattr(value, method))


def main(argv: list[str]) -> None:
    known = _catalog_names()
    for module_name in argv or MODULES:
        try:
            sweep(module_name, known)
        except ImportError as exc:
            print(f"skip   {module_name}: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])
