"""Fuzzing the analyzer: mutated corpus files and random token soup, with a fixed seed.

The analyzer must never raise, report positions inside the text, give one-line errors,
and (when every block parses) say the same from its caches as a fresh analyzer does.
Where it finds hazards, the fix of the fuzzed text must parse and be idempotent.

CKPT_FUZZ_EXAMPLES sets the number of examples (default 2000, the CI run); the longer
job runs e.g. CKPT_FUZZ_EXAMPLES=50000 with CKPT_FUZZ_SEED set to vary the inputs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ckpt_lsp.analysis.analyzer import Analyzer, FileResult
from ckpt_lsp.analysis.blocks import split_lines
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from support.shared import CORPUS

EXAMPLES = int(os.environ.get("CKPT_FUZZ_EXAMPLES", "2000"))
SEED = int(os.environ.get("CKPT_FUZZ_SEED", "20240607"))

FALLBACK = """\
import threading
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, path):
        super().__init__()
        self.log = open(path, "a")
        self.lock = threading.Lock()
        self.act = lambda x: x
"""


def corpus_texts() -> list[str]:
    files = sorted((CORPUS / "cases").rglob("*.py")) if (CORPUS / "cases").exists() else []
    texts = [p.read_text(encoding="utf-8") for p in files]
    return texts or [FALLBACK]


TEXTS = corpus_texts()

TOKENS = [
    "class",
    "def",
    "self",
    "self.x",
    "self.y =",
    "=",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ":",
    ",",
    ".",
    "lambda",
    "lambda x: x",
    "yield",
    "return",
    "import",
    "from",
    "as",
    "with",
    "async",
    "await",
    "nn.Module",
    "threading.Lock()",
    "open('f')",
    "super().__init__()",
    "__getstate__",
    "__setstate__",
    "state",
    "pop",
    "'x'",
    '"""',
    "'''",
    "#",
    "\\",
    "not",
    "*",
    "**",
    "@",
    "->",
    "...",
    "None",
    "0",
    "1e9",
    "ü",
    "\u200b",
    "\x0c",
    "\t",
    "    ",
    "\n",
    "\r\n",
    "\r",
    "\x00",
    "# ckpt: ignore[CKPT005]",
    "# noqa",
    "class M(nn.Module):\n    def __init__(self):\n        ",
    "def __getstate__(self):\n        state = self.__dict__.copy()\n        ",
]

MUTATIONS = [
    "delete_lines",
    "duplicate_line",
    "swap_lines",
    "insert_token",
    "delete_chars",
    "reindent",
    "insert_text",
    "newlines",
]


@st.composite
def mutated_corpus(draw: st.DrawFn) -> tuple[str, str]:
    """(a corpus file, the same file mutated): an editor's before and after."""
    text = original = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        kind = draw(st.sampled_from(MUTATIONS))
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        j = draw(st.integers(i, min(i + 5, len(lines))))
        if kind == "delete_lines":
            del lines[i:j]
        elif kind == "duplicate_line" and lines:
            lines.insert(i, lines[i])
        elif kind == "swap_lines" and j < len(lines):
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "reindent" and lines:
            lines[i] = draw(st.sampled_from(["", " ", "\t", "        "])) + lines[i].lstrip()
        elif kind == "newlines":
            sep = draw(st.sampled_from(["\r\n", "\r", "\n\n"]))
            lines = [sep.join(lines)]
        else:
            pos = draw(st.integers(0, len(text)))
            if kind == "insert_token":
                piece = draw(st.sampled_from(TOKENS))
                lines = [text[:pos] + piece + text[pos:]]
            elif kind == "delete_chars":
                lines = [text[:pos] + text[pos + draw(st.integers(1, 30)) :]]
            else:
                lines = [text[:pos] + draw(st.text(max_size=12)) + text[pos:]]
        text = "\n".join(lines)
    return original, text


token_soup = st.lists(st.sampled_from(TOKENS), max_size=60).map(" ".join)

NAME = str(Path("fuzz") / "model.py")


def check_result(text: str, result: FileResult) -> None:
    if result.error is not None:
        assert result.error.message and "\n" not in result.error.message
        return
    rows = len(split_lines(text)) + 1
    for f in result.findings:
        assert 1 <= f.location.row <= f.end_location.row <= rows, f
        assert f.location.column >= 1 and f.end_location.column >= 1, f
        assert f.code.startswith("CKPT") and "\n" not in f.message


def analyze_both(before: str, text: str) -> None:
    """A fresh analysis, and one by an analyzer that saw `before` first (as in an editor,
    with its caches and its last good findings): never raising, and the same answer
    whenever every block parses."""
    fresh = Analyzer().analyze(NAME, text)
    check_result(text, fresh)
    session = Analyzer()
    session.analyze(NAME, before)
    cached = session.analyze(NAME, text)
    check_result(text, cached)
    if not fresh.broken and not cached.broken and fresh.error is None:
        assert cached.findings == fresh.findings, "the caches disagree with a fresh analysis"


fuzz_settings = settings(
    max_examples=EXAMPLES,
    derandomize=False,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@seed(SEED)
@fuzz_settings
@given(mutated_corpus())
def test_mutated_corpus_files(pair: tuple[str, str]) -> None:
    analyze_both(*pair)


@seed(SEED)
@settings(fuzz_settings, max_examples=max(EXAMPLES // 4, 10))
@given(token_soup)
def test_random_tokens(text: str) -> None:
    analyze_both(FALLBACK, text)


@seed(SEED)
@settings(fuzz_settings, max_examples=max(EXAMPLES // 10, 10))
@given(mutated_corpus())
def test_fixes_of_fuzzed_text_parse_and_are_idempotent(pair: tuple[str, str]) -> None:
    text = pair[1]
    from ckpt_lsp.fix import fix_source, fix_targets

    result = Analyzer().analyze(NAME, text)
    if result.error is not None or result.broken or not result.findings:
        return
    try:
        compile(text, NAME, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return  # the analyzer reads blocks; the fixer wants a module that compiles
    targets = fix_targets(result.findings)
    fixed = fix_source(text, targets)
    compile(fixed, NAME, "exec", dont_inherit=True)
    assert fix_source(fixed, targets) == fixed


@pytest.mark.parametrize("depth", [100, 1_000, 10_000, 100_000])
def test_deep_nesting_never_raises(depth: int) -> None:
    for text in (
        "x = " + "+".join(["1"] * depth) + "\n",
        "x = " + "(" * depth + ")" * depth + "\n",
        "x = " + "-" * depth + "1\n",
        "x = y" + ".a" * depth + "\n",
        "x = f" + "()" * depth + "\n",
        "".join(" " * i + "if x:\n" for i in range(min(depth, 500))) + " " * 500 + "pass\n",
        FALLBACK + "        self.deep = " + "[" * depth + "]" * depth + "\n",
        FALLBACK + "        self.deep = " + " if x else ".join(["1"] * depth) + "\n",
    ):
        check_result(text, Analyzer().analyze(NAME, text))


def test_recovered_findings_stay_inside_the_text() -> None:
    """Found by the fuzz: a class that stops parsing keeps its last good findings, shifted
    by the class row only; when lines inside it were deleted they point past the end."""
    before = FALLBACK
    after = FALLBACK.split("        self.lock")[0] + "        self.lock = (\n"
    analyzer = Analyzer()
    analyzer.analyze(NAME, before)
    result = analyzer.analyze(NAME, after)
    assert result.broken  # the recovery path
    rows = len(split_lines(after))
    assert {f.attribute for f in result.findings} == {"log", "lock"}  # `act` lay past the end
    assert all(f.end_location.row <= rows for f in result.findings), [
        (f.attribute, f.location.row, rows) for f in result.findings
    ]
    # a method that assigns nothing to self is not read: while it does not parse, the
    # findings are fresh, not the last good ones
    elsewhere = FALLBACK + "\n    def forward(self, x):\n        return f(x\n"
    result = analyzer.analyze(NAME, elsewhere)
    assert not result.broken and {f.attribute for f in result.findings} == {"log", "lock", "act"}
    # typing below the hazards keeps their last good findings while the class is broken
    typing = FALLBACK + "        self.extra = (\n"
    fresh = Analyzer()
    fresh.analyze(NAME, FALLBACK)
    kept = fresh.analyze(NAME, typing)
    assert kept.broken and {f.attribute for f in kept.findings} == {"log", "lock", "act"}
