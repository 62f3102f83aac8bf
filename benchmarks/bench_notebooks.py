"""`ckpt-lsp --check` on Jupyter notebooks: the time per notebook and what it finds.

Three sets, each copied into its own scratch folder (default /tmp/ckpt-bench-notebooks; kept
between runs, never committed), so a notebook's project is its own folder:

- `written`: the notebook corpus (tests/corpus/notebooks/cases), model code as notebooks hold it;
- `real`: the notebooks Cython ships in its sdist (`pip download --no-binary :all: cython`):
  real notebooks full of `%%cython` cell magics and outputs;
- `ml`: real ML modules of the benchmark corpus (benchmarks/bench_check.py installs it; skipped
  when it is missing) cut into cells at their top-level blocks, with a markdown cell and a
  120 KB image output every few cells, as a notebook that explores a model looks.

Each notebook is checked alone, in-process, with a fresh analyzer and no cache (the median of
`--runs`), then each set once as a user runs it (`python -m ckpt_lsp --check --no-cache DIR`,
a subprocess, start-up included).

    .venv/bin/python benchmarks/bench_notebooks.py [--runs 3] [--scratch DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "server"))

from ckpt_lsp.config import load_config  # noqa: E402
from ckpt_lsp.notebook.reader import read_notebook_bytes  # noqa: E402
from ckpt_lsp.runner import run_check  # noqa: E402
from ckpt_lsp.source import SourceError  # noqa: E402

CYTHON = "cython==3.1.4"
BENCH_CORPUS = Path("/tmp/ckpt-bench-corpus")
ML_MODULES = (
    "timm/models/resnet.py",
    "timm/models/vision_transformer.py",
    "transformers/models/bert/modeling_bert.py",
    "lightning/pytorch/callbacks/model_checkpoint.py",
    "keras/src/models/functional.py",
)


def written(dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted((REPO / "tests" / "corpus" / "notebooks" / "cases").glob("*.ipynb")):
        shutil.copy(path, dest / path.name)
    return sorted(dest.glob("*.ipynb"))


def real(dest: Path) -> list[Path]:
    """The notebooks of Cython's sdist (downloaded once with pip)."""
    if not any(dest.glob("*.ipynb")):
        dest.mkdir(parents=True, exist_ok=True)
        download = dest.parent / "sdist"
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        cmd += ["--no-binary", ":all:", "--dest", str(download), CYTHON]
        subprocess.run(cmd, check=True)
        (archive,) = download.glob("*.tar.gz")
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".ipynb") and member.isfile():
                    data = tar.extractfile(member)
                    if data is not None:
                        (dest / Path(member.name).name.replace(" ", "_")).write_bytes(data.read())
    return sorted(dest.glob("*.ipynb"))


def _cells_of(text: str) -> list[str]:
    """A module cut at its top-level statements: one cell per block of them."""
    cells: list[list[str]] = [[]]
    for line in text.splitlines():
        starts = line[:1] not in ("", " ", "\t", ")", "]", "}", "#")
        if starts and line.startswith(("class ", "def ", "@")) and cells[-1]:
            cells.append([])
        cells[-1].append(line)
    return ["\n".join(c).strip("\n") for c in cells if any(s.strip() for s in c)]


def ml(dest: Path) -> list[Path]:
    import nbformat

    dest.mkdir(parents=True, exist_ok=True)
    image = base64.b64encode(bytes(range(256)) * 360).decode()  # ~120 KB of PNG-like output
    for rel in ML_MODULES:
        source = BENCH_CORPUS / rel
        if not source.is_file():
            continue
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "P"}
        for i, cell in enumerate(_cells_of(source.read_text(encoding="utf-8"))):
            code = nbformat.v4.new_code_cell(cell)
            if i % 6 == 5:
                nb.cells.append(nbformat.v4.new_markdown_cell(f"## Part {i // 6}"))
                code.outputs = [nbformat.v4.new_output("display_data", data={"image/png": image})]
            nb.cells.append(code)
        nbformat.write(nb, str(dest / (source.stem + ".ipynb")))
    return sorted(dest.glob("*.ipynb"))


def time_one(path: Path, runs: int) -> tuple[float, list[str]]:
    """Median seconds of a cold, cache-less check of one notebook, and its finding codes."""
    config = load_config(path.parent)
    times, codes = [], []
    for _ in range(runs):
        started = time.perf_counter()
        result = run_check([path], config, use_cache=False, jobs=1)
        times.append(time.perf_counter() - started)
        codes = [f.code for f in result.findings] + [f"error: {e.message}" for e in result.errors]
    return statistics.median(times), codes


def describe(path: Path) -> dict[str, object]:
    data = path.read_bytes()
    kb = round(len(data) / 1024, 1)
    try:
        notebook = read_notebook_bytes(data)
    except SourceError:  # an nbformat 3 notebook: reported as a file error, not read
        return {"kb": kb, "cells": "-", "code_cells": "-", "lines": "-"}
    cells = len(json.loads(data)["cells"])
    return {
        "kb": kb,
        "cells": cells,
        "code_cells": len(notebook.cells),
        "lines": sum(notebook.joined.row_counts),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/ckpt-bench-notebooks"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sets = {
        "written": written(args.scratch / "written"),
        "real": real(args.scratch / "real" / "notebooks"),
        "ml": ml(args.scratch / "ml"),
    }
    rows = []
    print(f"{'set':8} {'notebook':34} {'KB':>7} {'cells':>9} {'lines':>6} {'ms':>7}  findings")
    for name, paths in sets.items():
        for path in paths:
            seconds, codes = time_one(path, args.runs)
            info = describe(path)
            found = ", ".join(f"{c} x{n}" for c, n in sorted(Counter(codes).items())) or "-"
            cells = f"{info['code_cells']}/{info['cells']}"
            print(
                f"{name:8} {path.name[:34]:34} {info['kb']:>7} {cells:>9} {info['lines']:>6} "
                f"{seconds * 1000:>7.1f}  {found}"
            )
            rows.append(
                {
                    "set": name,
                    "notebook": path.name,
                    **info,
                    "ms": seconds * 1000,
                    "findings": codes,
                }
            )
    for name, paths in sets.items():
        if not paths:
            continue
        folder = paths[0].parent
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "ckpt_lsp", "--check", "--no-cache", "--exit-zero", "."],
            cwd=folder,
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(REPO / "server")},
        )
        wall = time.perf_counter() - started
        print(
            f"{name}: {len(paths)} notebooks, one CLI run {wall:.2f} s "
            f"(exit {proc.returncode}): {proc.stdout.strip().splitlines()[-1]}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
