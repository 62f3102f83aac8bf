"""Hostile files, each with what a check run must say about it.

`make_tree(root)` writes them all into one directory, so a single run proves that every
other file is still checked and that the exit code is 2. `Expect.finding` is the
"row:col: code" a correctly checked file must report; `Expect.error` the words of the
one-line diagnosis of a file that cannot be checked; `Expect.silent` a path the walk
skips without a word (a directory named x.py, symlinks that lead nowhere).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MODEL = (
    "import threading\n"
    "import torch.nn as nn\n"
    "\n"
    "\n"
    "class Model(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.lock = threading.Lock()\n"
)
FINDING = "8:9: CKPT005"
BIG_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Expect:
    finding: str | None = None  # "row:col: CODE" that must be reported
    error: tuple[str, ...] = ()  # words of the one-line error (lower case)
    silent: bool = False  # neither a finding nor an error


def _generated(size: int) -> bytes:
    """A valid module of about `size` bytes: many small classes."""
    chunk = "class C{i}:\n    x = [{i}, {i} + 1, 'padding padding padding']\n\n\n"
    out: list[str] = [MODEL, "\n\n"]
    total = len(MODEL)
    i = 0
    while total < size:
        piece = chunk.format(i=i)
        out.append(piece)
        total += len(piece)
        i += 1
    return "".join(out).encode("utf-8")


def deep_expression(depth: int = 10_000) -> str:
    """A model whose attribute is an expression nested `depth` deep (a + a + ... chain)."""
    return MODEL + "        self.total = " + " + ".join(["1"] * depth) + "\n"


def hostile_files(big: bool = True) -> dict[str, tuple[bytes, Expect]]:
    lf = MODEL.encode()
    files: dict[str, tuple[bytes, Expect]] = {
        "good.py": (lf, Expect(FINDING)),
        "non_utf8.py": (b"s = '\xff\xfe'\n" + lf, Expect(error=("utf-8",))),
        "latin1_cookie.py": (
            b"# -*- coding: latin-1 -*-\ns = '\xe9t\xe9'\n" + lf,
            Expect("10:9: CKPT005"),
        ),
        "bad_cookie.py": (b"# coding: klingon\n" + lf, Expect(error=("klingon",))),
        "bom.py": (b"\xef\xbb\xbf" + lf, Expect(FINDING)),
        "nul_bytes.py": (lf + b"x = '\x00'\n", Expect(error=("binary",))),
        "binary.py": (bytes(range(256)) * 64, Expect(error=("binary",))),
        "empty.py": (b"", Expect(silent=True)),
        "crlf.py": (lf.replace(b"\n", b"\r\n"), Expect(FINDING)),
        "lone_cr.py": (lf.replace(b"\n", b"\r"), Expect(FINDING)),
        "tabs.py": (
            lf.replace(b"        ", b"\t\t").replace(b"    ", b"\t"),
            Expect("8:3: CKPT005"),
        ),
        "deep.py": (deep_expression().encode(), Expect(error=("line",))),
        "deep_parens.py": (
            ("x = " + "(" * 10_000 + "1" + ")" * 10_000 + "\n").encode(),
            Expect(error=("line 1",)),
        ),
        # a model whose attributes cannot be read is reported as not checked ...
        "syntax_error.py": (
            lf + b"\n\nclass Broken(nn.Module):\n    def __init__(self):\n        self.x = (\n",
            Expect(FINDING, error=("syntax error",)),
        ),
        # ... while code that cannot hold a finding is not read, so it is not judged
        "syntax_error_unread.py": (lf + b"\ndef broken(:\n", Expect(FINDING)),
    }
    if big:
        files["huge.py"] = (_generated(BIG_BYTES), Expect(error=("too large",)))
    return files


def make_tree(root: Path, big: bool = True) -> dict[str, Expect]:
    """Write every hostile file (and the odd paths) under `root`; what each must give."""
    root.mkdir(parents=True, exist_ok=True)
    expect: dict[str, Expect] = {}
    for name, (data, want) in hostile_files(big).items():
        (root / name).write_bytes(data)
        expect[name] = want
    (root / "dir.py").mkdir()  # a directory with a module's name: walked, holds nothing
    expect["dir.py"] = Expect(silent=True)
    os.symlink("loop_b.py", root / "loop_a.py")  # a symlink loop
    os.symlink("loop_a.py", root / "loop_b.py")
    expect["loop_a.py"] = expect["loop_b.py"] = Expect(silent=True)
    os.symlink("nowhere.py", root / "dangling.py")
    expect["dangling.py"] = Expect(silent=True)
    (root / "sub").mkdir()
    os.symlink("..", root / "sub" / "up")  # a directory loop: not followed
    (root / "sub" / "inner.py").write_bytes(MODEL.encode())
    expect[os.path.join("sub", "inner.py")] = Expect(FINDING)
    return expect
