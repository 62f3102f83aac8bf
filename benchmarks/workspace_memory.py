"""The language server's resident memory over a big workspace (goal: < 300 MB at 2,000 files).

Copies the first `--files` Python files of transformers (from the corpus bench_check.py
installs, `pip install --no-deps --target`; nothing is imported) into a scratch folder,
starts `python -m ckpt_lsp --stdio` over real stdio with that folder as the workspace,
waits until the start-up scan has indexed it, then runs the `ckpt-lsp.checkWorkspace`
command, and prints the time and the server's RSS after each step, with the versions.

    .venv/bin/python benchmarks/workspace_memory.py [--files 2000] [--corpus DIR]

Exit code 0 when the server answered; the RSS is reported, not judged.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "hostile"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_check import DEFAULT_CORPUS, PACKAGES, ensure_corpus  # noqa: E402
from hostile_rpc import RawServer  # noqa: E402


def make_workspace(corpus: Path, files: int, into: Path) -> tuple[int, int]:
    """Copy the first `files` .py files of transformers (sorted by path); (files, lines)."""
    source = corpus / "transformers"
    chosen = sorted(source.rglob("*.py"))[:files]
    lines = 0
    for path in chosen:
        target = into / path.relative_to(corpus)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        lines += path.read_bytes().count(b"\n")
    (into / "pyproject.toml").write_text("[project]\nname = 'ws'\n")
    return len(chosen), lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args(argv)
    ensure_corpus(args.corpus, PACKAGES)
    with tempfile.TemporaryDirectory(prefix="ckpt-ws-") as tmp:
        root = Path(tmp)
        count, lines = make_workspace(args.corpus, args.files, root)
        print(f"workspace: {count:,} files, {lines:,} lines (transformers, sorted by path)")
        server = RawServer(root)
        try:
            started = time.monotonic()
            server.initialize(root)
            print(f"after initialize: {server.rss_kb() / 1024:.0f} MiB", flush=True)
            while not any("indexed" in line for line in server.stderr_lines):
                if time.monotonic() - started > 900 or server.proc.poll() is not None:
                    print("the start-up scan did not finish")
                    return 1
                time.sleep(0.2)
            scanned = time.monotonic() - started
            print(f"indexed in {scanned:.1f} s: {server.rss_kb() / 1024:.0f} MiB", flush=True)
            started = time.monotonic()
            answer = server.request(
                "workspace/executeCommand",
                {"command": "ckpt-lsp.checkWorkspace", "arguments": []},
                timeout=1800,
            )
            took = time.monotonic() - started
            summary = answer.get("result")
            print(f"checkWorkspace in {took:.1f} s ({summary}): {server.rss_kb() / 1024:.0f} MiB")
            time.sleep(2)
            print(f"2 s later: {server.rss_kb() / 1024:.0f} MiB")
        finally:
            server.close()
    versions = [f"python {platform.python_version()}"]
    try:
        from importlib.metadata import version

        versions += [f"pygls {version('pygls')}", f"ckpt-lsp {version('ckpt-lsp')}"]
    except Exception:
        pass
    print(", ".join(versions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
