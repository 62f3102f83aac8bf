"""Fixes on hostile text: every corpus class and generated classes, in every line-ending
and indentation style; the fixed code parses, keeps the file's style, fixing twice is a
no-op, it round-trips through pickle; --fix writes atomically and never overwrites a file
changed on disk."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ckpt_lsp.config import Config
from ckpt_lsp.findings import Finding
from ckpt_lsp.fix import FixTarget, fix_source
from ckpt_lsp.runner import run_check
from hostile_inputs import MODEL, hostile_files
from hypothesis import given, settings
from hypothesis import strategies as st
from support import shared
from test_fixes import generated_classes, loaded, oracle_roundtrip_failures
from test_hostile_files import REPO, run_cli

CORPUS = shared.CORPUS
NEWLINES = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}


def restyle(text: str, newline: str, tabs: bool) -> str:
    """The same module with other line endings, and tabs for each 4-space indent."""
    lines = text.split("\n")
    if tabs:
        lines = [
            re.sub(r"^((?:    )+)", lambda m: "\t" * (len(m.group(1)) // 4), ln) for ln in lines
        ]
    return newline.join(lines)


def newline_style(text: str) -> set[str]:
    crlf = text.count("\r\n")
    styles = set()
    if crlf:
        styles.add("\r\n")
    if text.count("\r") > crlf:
        styles.add("\r")
    if text.count("\n") > crlf:
        styles.add("\n")
    return styles


def indent_chars(text: str) -> set[str]:
    """The characters that start indented logical lines (tokenize's INDENT tokens)."""
    import io
    import tokenize

    chars: set[str] = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.INDENT:
            chars |= set(tok.string)
    return chars


def assert_fixed_well(before: str, after: str, targets: list[FixTarget]) -> None:
    assert after != before
    compile(after, "<fixed>", "exec", dont_inherit=True)  # parses (and compiles)
    assert newline_style(after) == newline_style(before), "line endings changed"
    assert indent_chars(after) <= indent_chars(before) | ({" "} if not before.strip() else set())
    assert fix_source(after, targets) == after, "fixing twice changed the file"


def corpus_targets() -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    marks = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
    by_file: dict[str, dict[str, list[str]]] = {}
    for mark in marks:
        if mark["kind"] not in ("pickle", "portable"):
            continue  # marks on save calls, hparams and Keras classes: not attribute fixes
        by_file.setdefault(mark["path"], {}).setdefault(mark["class"], []).append(mark["attribute"])
    return {path: [(c, tuple(a)) for c, a in classes.items()] for path, classes in by_file.items()}


def class_row(source: str, name: str) -> int:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node.lineno
    raise AssertionError(name)


needs_corpus = shared.needs(CORPUS / "expected.json")


@needs_corpus
@pytest.mark.parametrize("tabs", [False, True], ids=["spaces", "tabs"])
@pytest.mark.parametrize("newline", sorted(NEWLINES))
def test_every_corpus_class_in_every_style(newline: str, tabs: bool) -> None:
    fixed_classes = 0
    for rel, classes in corpus_targets().items():
        original = (CORPUS / "cases" / rel).read_text(encoding="utf-8")
        source = restyle(original, NEWLINES[newline], tabs)
        compile(source, rel, "exec", dont_inherit=True)
        bases = ("torch.nn.Module",) if rel.startswith("zoo") else ()
        parsed_source = source.replace("\r\n", "\n").replace("\r", "\n")
        targets = [
            FixTarget(name, class_row(parsed_source, name), attrs, bases) for name, attrs in classes
        ]
        fixed = fix_source(source, targets)
        assert_fixed_well(source, fixed, targets)
        fixed_classes += len(targets)
    assert fixed_classes >= 15


# -- generated classes: the fix engine's own strategy, in the styles it does not draw ------


@settings(max_examples=150, derandomize=True, database=None, deadline=None)
@given(generated_classes(), st.sampled_from(["keep", "cr"]))
def test_generated_classes_keep_their_style(generated, style: str) -> None:  # type: ignore[no-untyped-def]
    source, target, attrs, _ = generated
    if style == "cr":
        source = source.replace("\r\n", "\n").replace("\n", "\r")
    fixed = fix_source(source, [target])
    assert_fixed_well(source, fixed, [target])
    if style == "cr":
        with loaded(fixed.replace("\r", "\n")) as module:
            cls = module
            for part in target.class_name.split("."):
                cls = getattr(cls, part)
            import pickle

            back = pickle.loads(pickle.dumps(cls()))
            assert all(attr in vars(back) for attr in attrs)


# -- the CLI: encodings, BOM, line endings on disk ----------------------------------------


def _compiles(data: bytes) -> bool:
    try:
        compile(data, "<hostile>", "exec", dont_inherit=True)
    except SyntaxError:
        return False  # a syntax error in code the check does not read stays after a fix
    return True


def test_cli_fix_keeps_encoding_bom_and_line_endings(tmp_path: Path) -> None:
    originals = {
        name: data
        for name, (data, want) in hostile_files(big=False).items()
        if want.finding is not None and not want.error and _compiles(data)
    }
    assert {"bom.py", "crlf.py", "lone_cr.py", "tabs.py", "latin1_cookie.py"} <= set(originals)
    for name, data in originals.items():
        (tmp_path / name).write_bytes(data)
    proc = run_cli("--check", "--fix", "--no-cache", ".", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name, data in originals.items():
        fixed = (tmp_path / name).read_bytes()
        assert fixed != data, name
        assert fixed.startswith(b"\xef\xbb\xbf") == data.startswith(b"\xef\xbb\xbf"), name
        compile(fixed, name, "exec", dont_inherit=True)  # honours the BOM and the cookie
        assert fixed.splitlines(keepends=True)[:2] == data.splitlines(keepends=True)[:2], name
        style = newline_style(data.decode("latin-1"))
        assert newline_style(fixed.decode("latin-1")) == style, name
    assert b"\xe9t\xe9" in (tmp_path / "latin1_cookie.py").read_bytes()
    snapshot = {name: (tmp_path / name).read_bytes() for name in originals}
    again = run_cli("--check", "--fix", "--no-cache", ".", cwd=tmp_path)
    assert again.returncode == 0
    assert {name: (tmp_path / name).read_bytes() for name in originals} == snapshot


# -- writing: atomic, and never over a file changed since it was read ----------------------


def test_an_interrupted_write_leaves_the_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "model.py").write_text(MODEL)

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_check([tmp_path], Config(root=tmp_path), fix=True)
    assert (tmp_path / "model.py").read_text() == MODEL
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ckpt-fix-")]  # no temp left


def test_a_killed_run_never_leaves_half_a_file(tmp_path: Path) -> None:
    """SIGKILL while the fixed bytes are being written: the file is the old one, whole."""
    (tmp_path / "model.py").write_text(MODEL * 50)
    ready = tmp_path / "READY"
    script = (
        "import os, sys, time\n"
        f"def slow_fsync(fd):\n    open({str(ready)!r}, 'w').close()\n    time.sleep(60)\n"
        "os.fsync = slow_fsync\n"
        "from ckpt_lsp.cli import main\n"
        "sys.exit(main(['--check', '--fix', '--no-cache', 'model.py']))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO / "server"))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=env)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "never reached the write"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (tmp_path / "model.py").read_text() == MODEL * 50
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("model.py", "READY")]
    assert all(name.startswith(".ckpt-fix-") for name in leftovers), leftovers


def test_a_file_changed_on_disk_during_the_run_is_not_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ckpt_lsp.fix as fixes

    path = tmp_path / "model.py"
    path.write_text(MODEL)
    users_edit = MODEL + "# typed in the editor meanwhile\n"
    real = fixes.fix_file_source  # what --fix writes: class and checkpoint-value fixes

    def fix_while_the_user_types(text: str, findings: list[Finding]) -> str:
        path.write_text(users_edit)
        return real(text, findings)

    monkeypatch.setattr(fixes, "fix_file_source", fix_while_the_user_types)
    result = run_check([tmp_path], Config(root=tmp_path), fix=True)
    assert path.read_text() == users_edit
    assert [e.message for e in result.errors] == [
        "not fixed: changed on disk while being fixed; not overwritten"
    ]
    assert result.fixed == 0 and len(result.findings) == 1


# -- round trip of a restyled corpus through the real runtime -------------------------------


@needs_corpus
def test_restyled_corpus_round_trips_after_cli_fix(tmp_path: Path) -> None:
    missing = [
        name
        for name in ("torch", "sklearn", "lightning", "keras", "h5py", "lmdb")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        pytest.skip(f"the oracle needs {', '.join(missing)}")
    cases = tmp_path / "cases"
    shutil.copytree(CORPUS / "cases", cases)
    (cases / "out_of_scope.py").unlink()  # see test_fixes.test_corpus_round_trips_after_fix
    before = oracle_roundtrip_failures(CORPUS / "oracle.py", cases)
    for path in cases.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        path.write_bytes(restyle(text, "\r\n", tabs=True).encode("utf-8"))
    proc = run_cli("--check", "--fix", "--no-cache", ".", cwd=cases)
    assert "Traceback" not in proc.stderr
    assert "fixed" in proc.stdout, proc.stdout + proc.stderr
    for path in cases.rglob("*.py"):
        data = path.read_bytes()
        assert newline_style(data.decode("utf-8")) == {"\r\n"}, path
        assert indent_chars(data.decode("utf-8")) <= {"\t", " "}
    after = oracle_roundtrip_failures(CORPUS / "oracle.py", cases)
    # every class the fix touched must round-trip; a class that failed before for a reason no
    # attribute fix touches (an unregistered Keras model cannot be loaded back) may still fail
    fixed = {(path, cls) for path, classes in corpus_targets().items() for cls, _ in classes}
    assert fixed & before, "the unfixed corpus should hold classes that fail to round-trip"
    assert after <= before - fixed, sorted(after - (before - fixed))
