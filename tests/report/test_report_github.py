"""GitHub workflow commands: annotation lines and the toolkit's escaping rules."""

from __future__ import annotations

from pathlib import Path

from ckpt_lsp.findings import FileError
from ckpt_lsp.report import render
from ckpt_lsp.report.github import escape_data, escape_property


def test_error_annotation(tmp_path: Path, make_finding) -> None:
    finding = make_finding(
        filename="src/model.py", row=4, column=9, end_row=5, end_column=2, message="bad"
    )
    assert render([finding], [], "github", root=tmp_path) == (
        "::error file=src/model.py,line=4,col=9,endLine=5,endColumn=2,"
        "title=CKPT001 (open-file)::bad\n"
    )


def test_warning_and_notice(tmp_path: Path, make_finding) -> None:
    lines = render(
        [
            make_finding(code="CKPT004", row=1),
            make_finding(severity="information", row=2),
            make_finding(severity="hint", row=3),
        ],
        [],
        "github",
        root=tmp_path,
    ).splitlines()
    assert lines[0].startswith("::warning file=src/model.py,line=1,")
    assert "title=CKPT004 (object-array)::" in lines[0]
    assert lines[1].startswith("::notice ") and lines[2].startswith("::notice ")


def test_message_escaping(tmp_path: Path, make_finding) -> None:
    finding = make_finding(message="100% bad:\r\nsee, here")
    line = render([finding], [], "github", root=tmp_path)
    assert line.count("\n") == 1
    assert line.endswith("::100%25 bad:%0D%0Asee, here\n")  # : and , stay in the message


def test_property_escaping(tmp_path: Path, make_finding) -> None:
    finding = make_finding(filename="dir,with:odd%name/m.py")
    line = render([finding], [], "github", root=tmp_path)
    assert "file=dir%2Cwith%3Aodd%25name/m.py," in line


def test_escape_functions() -> None:
    assert escape_data("a%b\rc\nd:e,f") == "a%25b%0Dc%0Ad:e,f"
    assert escape_property("a%b\rc\nd:e,f") == "a%25b%0Dc%0Ad%3Ae%2Cf"
    # % first: an escape sequence in the input must not be decoded by GitHub
    assert escape_data("%0A") == "%250A"


def test_file_errors(tmp_path: Path) -> None:
    out = render([], [FileError("src/b.py", "line one\nline two")], "github", root=tmp_path)
    assert out == "::error file=src/b.py,title=ckpt-lsp::line one%0Aline two\n"


def test_nothing_to_say(tmp_path: Path) -> None:
    assert render([], [], "github", root=tmp_path) == ""
