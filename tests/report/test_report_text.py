"""The text reporter: ruff-concise lines, paths relative to the root, ruff's summary."""

from __future__ import annotations

from pathlib import Path

import pytest
from ckpt_lsp.findings import FileError
from ckpt_lsp.report import render, text


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_lines_sorted_and_summary(tmp_path: Path, make_finding) -> None:
    findings = [
        make_finding(filename="src/b.py", row=3, column=5, code="CKPT003", message="lambda"),
        make_finding(filename="src/a.py", row=12, column=9, message="file"),
        make_finding(filename="src/a.py", row=2, column=9, code="CKPT004", message="array"),
    ]
    out = render(findings, [], "text", root=tmp_path)
    assert out == (
        "src/a.py:2:9: CKPT004 array\n"
        "src/a.py:12:9: CKPT001 file\n"
        "src/b.py:3:5: CKPT003 lambda\n"
        "Found 3 errors.\n"
    )


def test_paths_relative_to_root_when_below_it(tmp_path: Path, make_finding) -> None:
    inside = make_finding(filename="src/pkg/m.py")
    absolute = make_finding(filename=str(tmp_path / "src" / "x.py"))
    outside = make_finding(filename="../elsewhere/o.py")
    out = render([inside, absolute, outside], [], "text", root=tmp_path / "src")
    lines = out.splitlines()
    assert lines[0].startswith("../elsewhere/o.py:10:9: CKPT001 ")
    assert any(line.startswith("pkg/m.py:10:9: ") for line in lines)
    assert any(line.startswith("x.py:10:9: ") for line in lines)


def test_all_checks_passed(tmp_path: Path) -> None:
    assert render([], [], "text", root=tmp_path) == "All checks passed!\n"


def test_singular_and_fixed_counts(tmp_path: Path, make_finding) -> None:
    one = [make_finding()]
    assert render(one, [], "text", root=tmp_path).endswith("Found 1 error.\n")
    assert render(one, [], "text", root=tmp_path, fixed=2).endswith(
        "Found 3 errors (2 fixed, 1 remaining).\n"
    )
    assert render([], [], "text", root=tmp_path, fixed=1) == (
        "Found 1 error (1 fixed, 0 remaining).\n"
    )


def test_fixable_hint(tmp_path: Path, make_finding, sample_fix) -> None:
    out = render([make_finding(fix=sample_fix), make_finding(row=30)], [], "text", root=tmp_path)
    assert out.endswith("Found 2 errors.\n[*] 1 fixable with the `--fix` option.\n")


def test_file_errors_only_in_summary(tmp_path: Path, make_finding, file_error) -> None:
    out = render([make_finding()], [file_error], "text", root=tmp_path)
    assert "broken" not in out
    assert out.endswith("Found 1 error. 1 file could not be checked.\n")
    assert render([], [file_error, file_error], "text", root=tmp_path) == (
        "No findings. 2 files could not be checked.\n"
    )


def test_render_errors(tmp_path: Path) -> None:
    errors = [
        FileError("src/z.py", "No such file or directory"),
        FileError(str(tmp_path / "src" / "a.py"), "invalid UTF-8\nat byte 3"),
    ]
    assert text.render_errors(errors, root=tmp_path) == (
        "error: src/a.py: invalid UTF-8 at byte 3\nerror: src/z.py: No such file or directory\n"
    )
    assert text.render_errors([], root=tmp_path) == ""


def test_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown output format 'xml'"):
        render([], [], "xml", root=tmp_path)
