"""The command line: `ckpt-lsp --check`, `--explain`, `--version`, or the language server.

With no arguments (or `--stdio`, which vscode-languageclient passes) it runs the
language server over stdio. Exit codes: 0 clean, 1 findings remain, 2 usage,
configuration or internal errors, or a file that could not be checked.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ckpt_lsp import __version__
from ckpt_lsp.rules import RULES, rule_for, rule_page

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse that exits with 2 and one line, as ruff does, instead of a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"ckpt-lsp: error: {message}\n")
        sys.exit(EXIT_ERROR)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ckpt-lsp",
        description="Find model attributes that break checkpointing (pickle, torch.save, "
        "spawn workers, deepcopy). With no arguments, run the language server over stdio.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="check files and print findings")
    mode.add_argument("--explain", metavar="CODE", help="print the documentation of a rule")
    mode.add_argument("--stdio", action="store_true", help="run the language server over stdio")
    mode.add_argument("--version", action="store_true", help="print the version")
    parser.add_argument("paths", nargs="*", type=Path, help="files or directories (default: .)")
    parser.add_argument(
        "--format",
        choices=("text", "json", "sarif", "github"),
        default="text",
        help="output format (default: text)",
    )
    parser.add_argument("--select", action="append", metavar="CODES", help="only these rules")
    parser.add_argument("--ignore", action="append", metavar="CODES", help="skip these rules")
    parser.add_argument("--fix", action="store_true", help="apply fixes, then report the rest")
    parser.add_argument("--diff", action="store_true", help="print fixes as a diff; change nothing")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    parser.add_argument(
        "-j", "--jobs", type=int, metavar="N", help="worker processes (default: all cores)"
    )
    parser.add_argument("--cache-dir", type=Path, help="cache directory (default: .ckpt_cache)")
    parser.add_argument("--config", type=Path, help="pyproject.toml to use")
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 even with findings")
    return parser


def explain(code: str) -> int:
    rule = rule_for(code)
    if rule is None:
        known = ", ".join(RULES)
        sys.stderr.write(f"ckpt-lsp: error: unknown rule '{code}' (known: {known})\n")
        return EXIT_ERROR
    page = rule_page(rule.code)
    if page is None:
        page = f"# {rule.code}: {rule.name}\n\n{rule.summary}.\n\n{rule.url}\n"
    sys.stdout.write(page)
    return EXIT_CLEAN


def check(args: argparse.Namespace) -> int:
    from ckpt_lsp.config import ConfigError, load_config
    from ckpt_lsp.report import render
    from ckpt_lsp.report.text import render_errors
    from ckpt_lsp.runner import run_check

    paths: list[Path] = args.paths or [Path(".")]
    try:
        config = load_config(paths[0], pyproject=args.config)
        if args.select or args.ignore or args.cache_dir:
            config = config.with_overrides(
                select=",".join(args.select) if args.select else None,
                ignore=",".join(args.ignore) if args.ignore else None,
                cache_dir=args.cache_dir,
            )
    except ConfigError as exc:
        sys.stderr.write(f"ckpt-lsp: error: {exc}\n")
        return EXIT_ERROR
    result = run_check(
        paths,
        config,
        fix=args.fix,
        diff=args.diff,
        with_fixes=args.format in ("json",) and not args.diff,
        use_cache=not args.no_cache,
        jobs=args.jobs,
        keep=_until_exit,
    )
    if args.diff:
        sys.stdout.write("".join(result.diffs))
        if result.errors:
            sys.stderr.write(render_errors(result.errors, root=Path.cwd()))
        if result.errors:
            return EXIT_ERROR
        return EXIT_FINDINGS if result.diffs and not args.exit_zero else EXIT_CLEAN
    output = render(
        result.findings, result.errors, args.format, root=Path.cwd(), fixed=result.fixed
    )
    sys.stdout.write(output)
    if args.format in ("text", "json") and result.errors:
        sys.stderr.write(render_errors(result.errors, root=Path.cwd()))
    if result.errors:
        return EXIT_ERROR
    if result.findings and not args.exit_zero:
        return EXIT_FINDINGS
    return EXIT_CLEAN


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.version:
        sys.stdout.write(f"ckpt-lsp {__version__}\n")
        return EXIT_CLEAN
    if args.explain:
        return explain(args.explain)
    if args.check:
        try:
            return check(args)
        except KeyboardInterrupt:
            return 130
        except Exception as exc:  # a bug of ours: one line, exit 2, never a traceback
            sys.stderr.write(f"ckpt-lsp: internal error: {type(exc).__name__}: {exc}\n")
            return EXIT_ERROR
    if args.paths or args.fix or args.diff:
        sys.stderr.write("ckpt-lsp: error: paths and fix options need --check\n")
        return EXIT_ERROR
    from ckpt_lsp.lsp.server import run_stdio

    run_stdio()
    return EXIT_CLEAN


# Set by run(), which leaves with os._exit: what the check built is never freed piecemeal.
_until_exit: list[object] | None = None


def run() -> None:
    """The console entry point: like main(), but a check exits without tearing down the
    heap (a final garbage collection over every syntax tree costs more than the check)."""
    global _until_exit
    if len(sys.argv) > 1 and "--check" in sys.argv[1:]:
        _until_exit = []
        gc.disable()  # the kept trees would make every later collection a long one
    code = main()
    if len(sys.argv) > 1 and "--check" in sys.argv[1:]:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
