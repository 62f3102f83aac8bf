"""One file of a big project, as pre-commit checks it: `ckpt-lsp --check FILE`.

A file checked alone sees its whole project (the nearest folder with a project marker), so
that a base class in an unchanged file still resolves. This times what that costs: a copy of
the benchmark corpus (bench_check.py installs it) gets a `pyproject.toml` at its root, then

- cold: `--check FILE` with an empty cache (the project is discovered and indexed lazily);
- warm: the same command again, nothing changed (the cached result is reused);
- ruff: `ruff check --isolated FILE`, for scale;

each several times, alternately, printing medians, files and lines of the project, and the
versions. The goal for the warm run is 150 ms.

    .venv/bin/python benchmarks/bench_single_file.py [--corpus DIR] [--runs 7]
        [--file transformers/models/bert/modeling_bert.py]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_CORPUS = Path(tempfile.gettempdir()) / "ckpt-bench-corpus"
DEFAULT_FILE = "transformers/models/bert/modeling_bert.py"


# Timed as a pip install leaves ckpt-lsp: with its bytecode written (the first, untimed run
# writes it), even where the environment asks Python not to write bytecode.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, check=False, env=CHILD_ENV
    )
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} exited {proc.returncode}: {proc.stderr[-500:]}")
    return elapsed


def version(command: list[str]) -> str:
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    return (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--file", default=DEFAULT_FILE)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if not (args.corpus / args.file).is_file():
        raise SystemExit(f"{args.corpus / args.file} is missing: run bench_check.py first")
    ckpt = [sys.executable, "-m", "ckpt_lsp", "--check", args.file]
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    with tempfile.TemporaryDirectory(prefix="ckpt-single-") as scratch:
        project = Path(scratch) / "project"
        shutil.copytree(args.corpus, project, ignore=shutil.ignore_patterns("*.dist-info"))
        (project / "pyproject.toml").write_text("[project]\nname = 'bench'\n")
        sources = list(project.rglob("*.py"))
        lines = sum(len(p.read_bytes().splitlines()) for p in sources)
        timed(ckpt + ["--no-cache"], project)  # writes ckpt-lsp's own bytecode once
        cold, warm, lint = [], [], []
        for _ in range(args.runs):
            shutil.rmtree(project / ".ckpt_cache", ignore_errors=True)
            cold.append(timed(ckpt, project))
            warm.append(timed(ckpt, project))
            lint.append(timed([ruff, "check", "--isolated", args.file], project))
    print(f"project: {len(sources):,} files, {lines:,} lines; file: {args.file}")
    for label, series in (("cold", cold), ("warm", warm), ("ruff", lint)):
        print(f"{label:5} median {statistics.median(series) * 1000:7.1f} ms  (runs: {len(series)})")
    print(f"goal: warm <= 150 ms; load average {os.getloadavg()[0]:.1f}")
    ours = version([sys.executable, "-m", "ckpt_lsp", "--version"])
    theirs = version([ruff, "--version"])
    cores = os.cpu_count()
    print(f"versions: CPython {platform.python_version()}, {ours}, {theirs}; {cores} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
