"""Soak the language server: a simulated editing session, printing the server's RSS.

An editor types into a few model files (characters in, characters out, a new attribute
with a hazard, a line that does not parse for a while, a class pasted and removed),
asks for hovers and code actions, saves, closes and reopens, at a steady rate, over
real stdio. Every `--interval` seconds it prints the server's resident memory; at the
end, the growth since the warm-up and whether the server still answers at once with
diagnostics that match the final text.

    .venv/bin/python benchmarks/soak_server.py                 # 60 s
    .venv/bin/python benchmarks/soak_server.py --duration 3600 # the hour-long session
    .venv/bin/python benchmarks/soak_server.py --duration 600 --rate 50 --json out.json

Exit code 0 when the server survived and answered, 1 otherwise (memory is reported,
not judged: tests/hostile/test_hostile_soak.py judges a short run).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "hostile"))

from hostile_rpc import RawServer  # noqa: E402

MODEL = """\
import threading
import torch.nn as nn


class Model{n}(nn.Module):
    def __init__(self, path):
        super().__init__()
        self.path = path
        self.log = open(path, "a")
        self.lock = threading.Lock()
        self.act = lambda x: x
        self.width = 3

    def forward(self, x):
        return self.act(x) * self.width
"""

HAZARDS = ["threading.Event()", "open('f')", "(i for i in range(3))", "lambda: 1", "3", "[]"]


@dataclass
class SoakResult:
    duration_s: float
    edits: int
    requests: int
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds, RSS KiB)
    warm_kb: int = 0
    final_kb: int = 0
    peak_kb: int = 0
    final_ok: bool = False
    alive: bool = False

    @property
    def growth_kb(self) -> int:
        return self.final_kb - self.warm_kb


class Editor:
    """The text of one open document and the edits a person makes to it."""

    def __init__(self, n: int, rng: random.Random) -> None:
        self.n = n
        self.rng = rng
        self.text = MODEL.format(n=n)
        self.version = 1
        self.extra = 0

    def restart(self) -> None:
        """Back to the first text (the version goes on: the server sees new versions)."""
        self.text = MODEL.format(n=self.n)
        self.extra = 0

    def edit(self) -> str:
        rng = self.rng
        lines = self.text.split("\n")
        kind = rng.random()
        at = lines.index("    def forward(self, x):") - 1
        if kind < 0.4:  # type a character into an attribute name, or take one out
            i = next(k for k, ln in enumerate(lines) if "self.width" in ln)
            lines[i] = lines[i].replace("self.width", f"self.width{rng.randint(0, 99)}", 1)
            if rng.random() < 0.5:
                lines[i] = "        self.width = 3"
        elif kind < 0.7 and self.text.count("self.a") < 12:  # add an attribute (a few)
            self.extra += 1
            lines.insert(at, f"        self.a{self.extra} = {rng.choice(HAZARDS)}")
        elif kind < 0.8:  # remove the newest added attribute
            for i in range(len(lines) - 1, -1, -1):
                if lines[i].startswith("        self.a"):
                    del lines[i]
                    break
        elif kind < 0.9:  # half-typed line: does not parse until the next edit
            lines.insert(at, "        self.broken = (")
        else:  # paste a class, or remove the pasted ones
            if "class Pasted" in self.text:
                self.text = self.text.split("\n\nclass Pasted")[0] + "\n"
                self.version += 1
                return self.text
            lines.append(f"\nclass Pasted{self.version}(nn.Module):")
            lines.append("    def __init__(self):")
            lines.append("        self.q = threading.Lock()\n")
        self.text = "\n".join(ln for ln in lines if ln != "        self.broken = (" or kind >= 0.8)
        self.version += 1
        return self.text


def _request_hover(server: RawServer, uri: str, line: int) -> int:
    return server.request_async(
        "textDocument/hover",
        {"textDocument": {"uri": uri}, "position": {"line": line, "character": 14}},
    )


def soak(
    duration_s: float = 60.0,
    rate: float = 20.0,
    interval_s: float = 5.0,
    files: int = 3,
    seed: int = 1,
    distinct: int = 0,
    out=sys.stdout,  # type: ignore[no-untyped-def]
) -> SoakResult:
    """Run the session; returns what it measured (RSS samples in KiB).

    `distinct` > 0 replays the same `distinct` edits over and over: the analysis caches
    fill once and stay full, so any growth left is state kept per edit (a leak)."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="ckpt-soak-") as tmp:
        root = Path(tmp)
        server = RawServer(root)
        result = SoakResult(duration_s, 0, 0)
        try:
            server.initialize(root)
            editors = [Editor(n, rng) for n in range(files)]
            uris = []
            for ed in editors:
                path = root / f"model{ed.n}.py"
                path.write_text(ed.text)
                uris.append(server.open(path, ed.text))
            started = time.monotonic()
            next_sample = started
            warm_at = started + min(max(duration_s * 0.25, 2.0), 60.0)
            pending: list[int] = []
            while True:
                now = time.monotonic()
                if now >= next_sample:
                    rss = server.rss_kb()
                    result.samples.append((round(now - started, 1), rss))
                    print(
                        f"t={now - started:7.1f} s  rss={rss / 1024:7.1f} MiB  "
                        f"edits={result.edits}",
                        file=out,
                        flush=True,
                    )
                    next_sample += interval_s
                if not result.warm_kb and now >= warm_at:
                    result.warm_kb = server.rss_kb()
                if now - started >= duration_s:
                    break
                if distinct and result.edits and result.edits % distinct == 0:
                    rng.seed(seed)
                    for ed in editors:
                        ed.restart()
                i = rng.randrange(files)
                ed, uri = editors[i], uris[i]
                server.change(uri, ed.edit(), ed.version)
                result.edits += 1
                roll = rng.random()
                if roll < 0.1:
                    pending.append(_request_hover(server, uri, rng.randint(0, 40)))
                    result.requests += 1
                elif roll < 0.12:
                    pending.append(
                        server.request_async(
                            "textDocument/codeAction",
                            {
                                "textDocument": {"uri": uri},
                                "range": {
                                    "start": {"line": 8, "character": 0},
                                    "end": {"line": 9, "character": 0},
                                },
                                "context": {"diagnostics": []},
                            },
                        )
                    )
                    result.requests += 1
                elif roll < 0.13:  # close and reopen (the index goes back to disk)
                    server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
                    ed.version += 1
                    server.notify(
                        "textDocument/didOpen",
                        {
                            "textDocument": {
                                "uri": uri,
                                "languageId": "python",
                                "version": ed.version,
                                "text": ed.text,
                            }
                        },
                    )
                if len(pending) > 50:
                    server.response(pending.pop(0), timeout=30)
                time.sleep(max(0.0, 1.0 / rate - (time.monotonic() - now)))
            for msg_id in pending:
                server.response(msg_id, timeout=30)
            # still quick, and the last diagnostics are those of the last text
            for ed, uri in zip(editors, uris):
                ed.version += 1
                ed.text = MODEL.format(n=ed.n)
                server.change(uri, ed.text, ed.version)
            ok = True
            for ed, uri in zip(editors, uris):
                params = server.published(uri, version=ed.version, timeout=30)
                codes = sorted(d["code"] for d in params["diagnostics"])
                ok &= codes == ["CKPT001", "CKPT003", "CKPT005"]
            result.final_ok = ok
            result.final_kb = server.rss_kb()
            result.peak_kb = max(kb for _, kb in result.samples)
            result.warm_kb = result.warm_kb or result.samples[0][1]
            result.alive = server.shutdown_and_exit(timeout=15) == 0
        finally:
            server.close()
    print(
        f"edits={result.edits} requests={result.requests} "
        f"warm={result.warm_kb / 1024:.1f} MiB final={result.final_kb / 1024:.1f} MiB "
        f"peak={result.peak_kb / 1024:.1f} MiB growth={result.growth_kb / 1024:+.1f} MiB "
        f"final_diagnostics={'ok' if result.final_ok else 'WRONG'} "
        f"clean_exit={result.alive}",
        file=out,
        flush=True,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--rate", type=float, default=20.0, help="edits per second (default 20)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--files", type=int, default=3, help="open documents (default 3)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--distinct", type=int, default=0, help="replay this many distinct edits (default: all new)"
    )
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args(argv)
    result = soak(args.duration, args.rate, args.interval, args.files, args.seed, args.distinct)
    if args.json:
        data = asdict(result) | {"growth_kb": result.growth_kb}
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0 if result.final_ok and result.alive else 1


if __name__ == "__main__":
    sys.exit(main())
