"""Where `ckpt-lsp --check` spends its time on a corpus, and what a cheap prefilter could skip.

Replays the steps of a check run through the package's public functions, timing each
phase on its own (discovery, reading, block splitting, stdlib ast.parse of every block,
building the project index, the analysis, the JSON fixes, rendering), then measures
with regexes only, per file and per top-level class block:

- model-like: a `class X(...)` whose bases text names a model-like base (Module, Dataset,
  Lightning..., PreTrained..., Estimator, ...) or, transitively, a class of the corpus that
  is model-like by that same rule;
- hazard tokens: the last name of every catalog entry (`open(`, `Lock(`, `tqdm(` ...) plus
  `lambda`, `yield`, a nested `def`, dict views and generator expressions;

and how many files and lines would remain to parse if only blocks that are both had to be.
`--sample N` prints N findings (file:line and the code line) for judging false alarms.
`--cprofile FILE` also writes a cProfile of the whole replay.

    .venv/bin/python benchmarks/profile_check.py [DIR] [--sample 30] [--cprofile out.prof]

Nothing here changes the engine; it only calls it.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import cProfile
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from ckpt_lsp.analysis.analyzer import Analyzer
from ckpt_lsp.analysis.blocks import split_blocks
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.catalog import default_catalog
from ckpt_lsp.config import load_config
from ckpt_lsp.discovery import discover
from ckpt_lsp.report import render
from ckpt_lsp.runner import attach_fixes
from ckpt_lsp.source import SourceError, read_source_text

T = TypeVar("T")
DEFAULT_CORPUS = Path("/tmp/ckpt-bench-corpus")

_CLASS = re.compile(r"^class\s+([A-Za-z_]\w*)\s*(?:\(([^)]*)\))?\s*:", re.MULTILINE)
_MODEL_WORDS = re.compile(
    r"Module|Dataset|Sampler|DataLoader|Lightning|Callback|Estimator|PreTrained|Pretrained"
    r"|Model|Layer|Tokenizer|Processor|Mixin|Classifier|Regressor|Transformer"
)
_EXTRA_TOKENS = (
    r"\blambda\b",
    r"\byield\b",
    r"^[ \t]{8,}(?:async[ \t]+)?def\s",  # a function nested in a method
    r"\.(?:keys|values|items)\(\)",  # dict views
    r"\b(?:iter|map|filter|zip|enumerate|reversed|staticmethod|classmethod)\(",
    r"=\s*\(.*\bfor\b",  # a generator expression assigned
    r"\bself\.\w+\s*=\s*[A-Za-z_][\w.]*\s*$",  # `self.x = name`: a module, a nested def ...
)


def timed(label: str, phases: list[tuple[str, float]], fn: Callable[[], T]) -> T:
    start = time.perf_counter()
    value = fn()
    phases.append((label, time.perf_counter() - start))
    return value


def hazard_regex(extra: tuple[str, ...] = _EXTRA_TOKENS) -> re.Pattern[str]:
    """Catalog calls as `Name(` and values as `Name`, for a method entry its type's name
    (`h5py.File.get` -> `File(`: the receiver had to be made somewhere), plus the tokens of
    the structural hazards (lambdas, generators, nested functions, module objects ...)."""
    catalog = default_catalog()
    calls = set()
    for name in (*catalog.calls, *catalog.function_arg):
        parts = name.split(".")
        typed = len(parts) >= 3 and parts[-2][:1].isupper()
        calls.add(parts[-2] if typed else parts[-1])
    values = {n.rsplit(".", 1)[-1] for n in catalog.values}
    call_alt = "|".join(sorted(map(re.escape, calls), key=len, reverse=True))
    value_alt = "|".join(sorted(map(re.escape, values), key=len, reverse=True))
    parts = [rf"\b(?:{call_alt})\s*\(", rf"\b(?:{value_alt})\b", *extra]
    return re.compile("|".join(parts), re.MULTILINE)


def model_like_classes(texts: dict[str, str]) -> set[str]:
    """Class names that look model-like from text alone, closed over bases within the corpus."""
    bases_of: dict[str, list[str]] = {}
    for text in texts.values():
        for name, bases in _CLASS.findall(text):
            bases_of.setdefault(name, []).extend(
                b.strip().rsplit(".", 1)[-1] for b in bases.split(",") if b.strip()
            )
    model = {n for n, bases in bases_of.items() if any(_MODEL_WORDS.search(b) for b in bases)}
    changed = True
    while changed:
        changed = False
        for name, bases in bases_of.items():
            if name not in model and any(b in model for b in bases):
                model.add(name)
                changed = True
    return model


def prefilter_stats(texts: dict[str, str]) -> list[str]:
    hazard = hazard_regex()
    model = model_like_classes(texts)
    total_lines = sum(t.count("\n") for t in texts.values())
    start = time.perf_counter()
    n_class = n_model = n_hazard = n_both = lines_both_files = 0
    blocks_total = blocks_kept = lines_kept = 0
    for text in texts.values():
        classes = _CLASS.findall(text)
        is_model = any(name in model for name, _ in classes)
        has_hazard = hazard.search(text) is not None
        n_class += bool(classes)
        n_model += is_model
        n_hazard += has_hazard
        if is_model and has_hazard:
            n_both += 1
            lines_both_files += text.count("\n")
    scan = time.perf_counter() - start
    for text in texts.values():
        for block in split_blocks(text):
            blocks_total += 1
            if block.kind == "class" and block.name in model and hazard.search(block.text):
                blocks_kept += 1
                lines_kept += block.row_count
    narrow = hazard_regex(_EXTRA_TOKENS[:3])
    narrow_blocks = narrow_lines = 0
    for text in texts.values():
        for block in split_blocks(text):
            if block.kind == "class" and block.name in model and narrow.search(block.text):
                narrow_blocks += 1
                narrow_lines += block.row_count
    n = len(texts)
    return [
        f"prefilter over {n:,} files, {total_lines:,} lines (regex scan {scan:.2f} s):",
        f"  files with any top-level class          {n_class:6,}",
        f"  files with a model-like class (textual) {n_model:6,}  ({len(model):,} class names)",
        f"  files with a hazard token               {n_hazard:6,}",
        f"  files with both                         {n_both:6,}  ({lines_both_files:,} lines, "
        f"{lines_both_files / max(total_lines, 1):.0%})",
        f"  top-level blocks {blocks_total:,}; model-like class blocks with a hazard token "
        f"{blocks_kept:,} ({lines_kept:,} lines, {lines_kept / max(total_lines, 1):.0%})",
        f"  ... with only catalog names, lambda, yield, nested def {narrow_blocks:,} "
        f"({narrow_lines:,} lines, {narrow_lines / max(total_lines, 1):.0%})",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    p.add_argument("--sample", type=int, default=0, help="print N random findings")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cprofile", type=Path, help="write a cProfile of the replay here")
    p.add_argument("--prefilter-only", action="store_true", help="only the regex figures")
    args = p.parse_args(argv)
    if not args.corpus.is_dir():
        sys.stderr.write(f"profile_check: error: {args.corpus} is not a folder\n")
        return 2
    if args.prefilter_only:
        files, _ = discover([args.corpus], load_config(args.corpus))
        texts = {str(f): read_source_text(f) for f in files}
        print("\n".join(prefilter_stats(texts)))
        return 0
    profiler = cProfile.Profile() if args.cprofile else None
    if profiler:
        profiler.enable()
    phases: list[tuple[str, float]] = []
    config = timed("config", phases, lambda: load_config(args.corpus))
    files, _ = timed("discovery", phases, lambda: discover([args.corpus], config))

    def read_all() -> dict[str, str]:
        texts = {}
        for path in files:
            with contextlib.suppress(SourceError):
                texts[str(path)] = read_source_text(path)
        return texts

    texts = timed("reading", phases, read_all)
    blocks = timed("block splitting", phases, lambda: [split_blocks(t) for t in texts.values()])
    timed("ast.parse of every block", phases, lambda: [_parse(b.text) for bs in blocks for b in bs])
    timed("ast.parse of every whole file", phases, lambda: [_parse(t) for t in texts.values()])
    index = ProjectIndex(config.root)

    def build_index() -> None:
        for name, text in texts.items():
            index.add_source(name, text)

    timed("index (split + parse + facts)", phases, build_index)
    analyzer = Analyzer(config, index)
    results = timed(
        "analysis (re-indexes each file)",
        phases,
        lambda: {name: analyzer.analyze(name, text) for name, text in texts.items()},
    )
    reindex_only = ProjectIndex(config.root)
    timed(
        "  of which re-indexing",
        phases,
        lambda: [reindex_only.add_source(n, t) for n, t in texts.items()],
    )
    findings = [f for r in results.values() for f in r.findings]
    broken = sum(len(r.broken) for r in results.values())
    with_fixes = timed(
        "fixes for JSON (attach_fixes)",
        phases,
        lambda: [
            f for n, r in results.items() if r.findings for f in attach_fixes(texts[n], r.findings)
        ],
    )
    timed("render json", phases, lambda: render(with_fixes, [], "json", root=Path.cwd()))
    if profiler:
        profiler.disable()
        profiler.dump_stats(str(args.cprofile))
    print(f"{len(texts):,} files; {len(findings)} findings; {broken} blocks that do not parse")
    for label, seconds in phases:
        print(f"  {label:<34}{seconds:8.2f} s")
    for line in prefilter_stats(texts):
        print(line)
    if args.sample:
        _print_sample(findings, texts, args.sample, args.seed)
    return 0


def _parse(text: str) -> ast.AST | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return None


def _print_sample(findings: list, texts: dict[str, str], n: int, seed: int) -> None:
    chosen = findings if len(findings) <= n else random.Random(seed).sample(findings, n)
    print(f"sample of {len(chosen)} findings:")
    for f in sorted(chosen, key=lambda f: (f.filename, f.location.row)):
        line = texts[f.filename].splitlines()[f.location.row - 1].strip()
        print(f"  {f.filename}:{f.location.row} {f.code} {f.class_name}.{f.attribute}: {line}")


if __name__ == "__main__":
    sys.exit(main())
