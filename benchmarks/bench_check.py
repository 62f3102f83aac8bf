"""Whole-corpus speed of `ckpt-lsp --check` next to `ruff check`, on real ML code.

Installs the sources of real ML packages (transformers, lightning, timm, keras, pinned)
with `pip install --no-deps --target` into a scratch folder (default
/tmp/ckpt-bench-corpus; kept between runs, never committed), counts files and lines,
then times, alternately and in the same run,

    ruff check --isolated --no-cache --output-format concise DIR >/dev/null
    ckpt-lsp --check --no-cache DIR --format json >FILE

and prints the medians, their ratio (goal <= 1.0), peak RSS and CPU time of each child
(from os.wait4, per process), the number of findings and file errors, and the versions.
`--warm` also times a second run with the cache on (goal <= 0.3 of ruff's cold median);
when `ckpt-lsp --help` offers `-j/--jobs`, `--jobs` times one worker and all cores.
`--per-package` times each package's folder alone (is the cost linear in lines?).

    .venv/bin/python benchmarks/bench_check.py [--runs 5] [--corpus DIR] [--warm]
        [--jobs] [--per-package] [--json results.json]

ckpt-lsp runs with its bytecode cached, as a pip install leaves it: one untimed run
writes it first, even where the environment sets PYTHONDONTWRITEBYTECODE.

Why ckpt-lsp's stdout goes to a file and not /dev/null: the findings are counted from it
(the JSON is a few KB, so writing it costs nothing measurable).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = Path("/tmp/ckpt-bench-corpus")
PACKAGES = ("transformers==4.57.1", "lightning==2.6.0", "timm==1.0.22", "keras==3.12.0")


@dataclass
class Sample:
    """One timed child process."""

    wall: float  # seconds
    cpu: float  # user + system seconds of the child
    max_rss_mb: float  # peak resident set size of the child
    returncode: int


@dataclass
class Series:
    label: str
    argv: list[str]
    samples: list[Sample] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in self.samples)


# -- the corpus ----------------------------------------------------------------------------
def _dist_name(spec: str) -> tuple[str, str]:
    name, _, version = spec.partition("==")
    return name, version


def missing_packages(corpus: Path, specs: Sequence[str]) -> list[str]:
    """The pinned packages whose dist-info is not in the corpus yet."""
    missing = []
    for spec in specs:
        name, version = _dist_name(spec)
        if not (corpus / f"{name}-{version}.dist-info").is_dir():
            missing.append(spec)
    return missing


def ensure_corpus(corpus: Path, specs: Sequence[str]) -> None:
    """Install the missing packages' sources (no dependencies, nothing imported)."""
    missing = missing_packages(corpus, specs)
    if not missing:
        return
    corpus.mkdir(parents=True, exist_ok=True)
    print(f"installing into {corpus}: {' '.join(missing)}", file=sys.stderr)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target"]
    cmd += [str(corpus), *missing]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or missing_packages(corpus, specs):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["unknown error"]
        raise SystemExit(f"bench_check: error: pip install failed: {tail[0]}")


def count_corpus(corpus: Path) -> tuple[int, int, int]:
    """(files, lines, bytes) of the *.py files a check walks (hidden folders skipped)."""
    files = lines = size = 0
    for dirpath, dirnames, filenames in os.walk(corpus):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.endswith(".py"):
                data = Path(dirpath, name).read_bytes()
                files += 1
                size += len(data)
                lines += data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    return files, lines, size


# -- timing --------------------------------------------------------------------------------
def run_once(argv: Sequence[str], stdout_path: str | None, stderr_path: str) -> Sample:
    """Run one child; wall time from perf_counter, CPU and peak RSS from its own rusage."""
    out = open(stdout_path, "wb") if stdout_path else open(os.devnull, "wb")  # noqa: SIM115
    with out, open(stderr_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=CHILD_ENV
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Sample(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,  # KB on Linux
        returncode=proc.returncode,
    )


# ckpt-lsp runs as a pip install leaves it, with its bytecode cached: where the
# environment forbids writing bytecode (PYTHONDONTWRITEBYTECODE, as some sandboxes set),
# an editable install would otherwise compile every module of the analysis on every run
# (~40 ms cold, a fifth of a warm run). prime_bytecode writes it before anything is timed.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
_PRIME_SOURCE = (
    "import torch\n\n\nclass Model(torch.nn.Module):\n"
    "    def __init__(self, path):\n        self.log = open(path)\n"
)


def prime_bytecode(ckpt: str, scratch: str) -> None:
    """One untimed run on a one-file project with a finding (the analysis, the report
    and the fix modules are all imported), so that every timed run reads cached bytecode."""
    project = Path(scratch, "prime-bytecode")
    project.mkdir(exist_ok=True)
    (project / "model.py").write_text(_PRIME_SOURCE, encoding="utf-8")
    argv = [ckpt, "--check", "--no-cache", "--format", "json", str(project)]
    run_once(argv, None, os.path.join(scratch, "prime-bytecode.err"))


def tool_help(ckpt: str) -> str:
    try:
        return subprocess.run([ckpt, "--help"], capture_output=True, text=True).stdout
    except OSError as exc:
        raise SystemExit(f"bench_check: error: cannot run {ckpt}: {exc}") from None


def version_of(argv: Sequence[str]) -> str:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True)
    except OSError:
        return "not found"
    return (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 else "?"


def count_output(stdout_path: str, stderr_path: str) -> tuple[int, int, dict[str, int]]:
    """(findings, file errors, findings per rule) of a ckpt-lsp JSON run."""
    try:
        with open(stdout_path, encoding="utf-8") as fh:
            findings = json.load(fh)
    except (OSError, ValueError):
        findings = []
    by_rule: dict[str, int] = {}
    for item in findings:
        by_rule[item.get("code", "?")] = by_rule.get(item.get("code", "?"), 0) + 1
    with open(stderr_path, encoding="utf-8", errors="replace") as fh:
        errors = sum(1 for line in fh if line.startswith("error:"))
    return len(findings), errors, dict(sorted(by_rule.items()))


def alternate(series: Sequence[Series], runs: int, scratch: str) -> None:
    """Run the series in turn, `runs` rounds, flipping the order each round (no warm-up bias)."""
    for rnd in range(runs):
        order = series if rnd % 2 == 0 else list(reversed(series))
        for s in order:
            out = os.path.join(scratch, f"{s.label}.out") if "ckpt" in s.label else None
            sample = run_once(s.argv, out, os.path.join(scratch, f"{s.label}.err"))
            s.samples.append(sample)
            print(
                f"  round {rnd + 1}/{runs} {s.label:<22} {sample.wall:8.2f} s  "
                f"cpu {sample.cpu:7.2f} s  rss {sample.max_rss_mb:7.0f} MB  rc {sample.returncode}",
                file=sys.stderr,
                flush=True,
            )


# -- main ----------------------------------------------------------------------------------
def default_tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    return shutil.which(name) or name


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="scratch folder")
    p.add_argument("--runs", type=int, default=5, help="timed runs of each tool (default 5)")
    p.add_argument("--ckpt", default=default_tool("ckpt-lsp"), help="ckpt-lsp executable")
    p.add_argument("--ruff", default=default_tool("ruff"), help="ruff executable")
    p.add_argument("--warm", action="store_true", help="also time warm runs (cache on)")
    p.add_argument("--jobs", action="store_true", help="also time -j1 and -jN, if supported")
    p.add_argument("--per-package", action="store_true", help="time each package folder once")
    p.add_argument("--json", type=Path, help="write the results here as JSON")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be >= 1")
    return args


def cores() -> tuple[int, int]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    return os.cpu_count() or 0, usable or (os.cpu_count() or 0)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    corpus: Path = args.corpus.resolve()
    ensure_corpus(corpus, PACKAGES)
    files, lines, size = count_corpus(corpus)
    help_text = tool_help(args.ckpt)
    has_jobs = "--jobs" in help_text
    n_cpu, n_usable = cores()
    ruff_argv = [args.ruff, "check", "--isolated", "--no-cache", "--output-format", "concise"]
    ckpt_argv = [args.ckpt, "--check", "--no-cache", "--format", "json"]
    results: dict[str, object] = {
        "corpus": str(corpus),
        "packages": list(PACKAGES),
        "files": files,
        "lines": lines,
        "bytes": size,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "ckpt_lsp": version_of([args.ckpt, "--version"]),
        "ruff": version_of([args.ruff, "--version"]),
        "cores": n_cpu,
        "usable_cores": n_usable,
        "loadavg_start": os.getloadavg(),
        "runs": args.runs,
    }
    print(
        f"corpus {corpus}: {files:,} files, {lines:,} lines, {size / 1e6:.1f} MB",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="ckpt-bench-") as scratch:
        prime_bytecode(args.ckpt, scratch)
        cold = [
            Series("ruff", [*ruff_argv, str(corpus)]),
            Series("ckpt-lsp cold", [*ckpt_argv, str(corpus)]),
        ]
        if args.jobs and has_jobs:
            cold.append(Series("ckpt-lsp cold -j1", [*ckpt_argv, "-j", "1", str(corpus)]))
            all_cores = [*ckpt_argv, "-j", str(n_usable), str(corpus)]
            cold.append(Series(f"ckpt-lsp cold -j{n_usable}", all_cores))
        alternate(cold, args.runs, scratch)
        n_findings, n_errors, by_rule = count_output(
            os.path.join(scratch, "ckpt-lsp cold.out"), os.path.join(scratch, "ckpt-lsp cold.err")
        )
        results.update(findings=n_findings, file_errors=n_errors, findings_by_rule=by_rule)
        all_series = list(cold)
        warm_note = ""
        if args.warm:
            warm_note = _warm(args.ckpt, corpus, scratch, args.runs, all_series)
        if args.per_package:
            results["per_package"] = _per_package(corpus, ruff_argv, ckpt_argv, scratch)
    ruff_median = cold[0].median("wall")
    results["series"] = {
        s.label: {
            "argv": s.argv,
            "median_wall": s.median("wall"),
            "median_cpu": s.median("cpu"),
            "max_rss_mb": max(x.max_rss_mb for x in s.samples),
            "ratio_vs_ruff_cold": s.median("wall") / ruff_median if ruff_median else None,
            "samples": [asdict(x) for x in s.samples],
        }
        for s in all_series
    }
    results["loadavg_end"] = os.getloadavg()
    print(_table(results, has_jobs, args.jobs, warm_note))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


def _warm(ckpt: str, corpus: Path, scratch: str, runs: int, all_series: list[Series]) -> str:
    """Prime a fresh cache once, then time runs that can use it."""
    cache = os.path.join(scratch, "cache")
    argv = [ckpt, "--check", "--cache-dir", cache, "--format", "json", str(corpus)]
    prime = run_once(argv, os.path.join(scratch, "prime.out"), os.path.join(scratch, "prime.err"))
    print(f"  priming the cache: {prime.wall:.2f} s", file=sys.stderr)
    written = sum(len(f) for _, _, f in os.walk(cache)) if os.path.isdir(cache) else 0
    warm = Series("ckpt-lsp warm", argv)
    alternate([warm], runs, scratch)
    all_series.append(warm)
    if not written:
        return "the priming run wrote no cache files: the cache is not implemented yet"
    return f"cache: {written} files after priming ({prime.wall:.2f} s)"


def _per_package(
    corpus: Path, ruff_argv: list[str], ckpt_argv: list[str], scratch: str
) -> list[dict[str, object]]:
    """One run of each tool per top-level package: lines/s should not depend on size."""
    rows = []
    for spec in PACKAGES:
        name, _ = _dist_name(spec)
        folder = corpus / name
        files, lines, _ = count_corpus(folder)
        err = os.path.join(scratch, "pp.err")
        ruff = run_once([*ruff_argv, str(folder)], None, err)
        ckpt = run_once([*ckpt_argv, str(folder)], os.path.join(scratch, "pp.out"), err)
        rows.append(
            {
                "package": name,
                "files": files,
                "lines": lines,
                "ruff_s": ruff.wall,
                "ckpt_s": ckpt.wall,
                "ckpt_lines_per_s": lines / ckpt.wall,
                "ckpt_rss_mb": ckpt.max_rss_mb,
            }
        )
        print(f"  {name}: ruff {ruff.wall:.2f} s, ckpt-lsp {ckpt.wall:.2f} s", file=sys.stderr)
    return rows


def _table(r: dict, has_jobs: bool, asked_jobs: bool, warm_note: str) -> str:
    out = [
        "",
        f"corpus   {r['corpus']}  ({', '.join(r['packages'])})",
        f"size     {r['files']:,} files, {r['lines']:,} lines, {r['bytes'] / 1e6:.1f} MB",
        f"versions {r['python']}; {r['ckpt_lsp']}; {r['ruff']}",
        f"machine  {r['cores']} cores ({r['usable_cores']} usable), load "
        f"{r['loadavg_start'][0]:.2f} -> {r['loadavg_end'][0]:.2f}",
        f"runs     {r['runs']} of each, alternating; ckpt-lsp's bytecode cached (as installed)",
        "",
        f"{'':<24}{'median s':>10}{'cpu s':>9}{'peak MB':>9}{'ratio':>8}{'klines/s':>10}"
        f"{'exit':>7}",
    ]
    for label, s in r["series"].items():
        out.append(
            f"{label:<24}{s['median_wall']:>10.2f}{s['median_cpu']:>9.2f}"
            f"{s['max_rss_mb']:>9.0f}{s['ratio_vs_ruff_cold']:>8.2f}"
            f"{r['lines'] / s['median_wall'] / 1000:>10.0f}"
            f"{','.join(sorted({str(x['returncode']) for x in s['samples']})):>7}"
        )
        if any(x["returncode"] not in (0, 1) for x in s["samples"]):
            out.append(f"  WARNING: {label} exited with an error; its times are not a check run")
    out.append("")
    out.append(
        f"ckpt-lsp: {r['findings']} findings {r['findings_by_rule']}, "
        f"{r['file_errors']} file errors (stderr lines)"
    )
    out.append("goals: cold ratio <= 1.0; warm ratio (vs ruff cold) <= 0.3")
    if warm_note:
        out.append(warm_note)
    if asked_jobs and not has_jobs:
        out.append("-j/--jobs: not offered by this ckpt-lsp (only the default was timed)")
    for row in r.get("per_package", []):
        out.append(
            f"  {row['package']:<14}{row['files']:>6} files{row['lines']:>9,} lines  "
            f"ruff {row['ruff_s']:6.2f} s  ckpt-lsp {row['ckpt_s']:7.2f} s  "
            f"{row['ckpt_lines_per_s'] / 1000:6.1f} klines/s  {row['ckpt_rss_mb']:5.0f} MB"
        )
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
