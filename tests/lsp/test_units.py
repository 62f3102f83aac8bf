"""The server's pure parts, in process: positions, ignore edits, diagnostics, hover."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from ckpt_lsp.findings import Finding, Position
from ckpt_lsp.fix import ignore_edit
from ckpt_lsp.lsp.diagnostics import DiagnosticCache, publish_body
from ckpt_lsp.lsp.hover import code_in_suppression, finding_at
from ckpt_lsp.lsp.positions import LineIndex
from lsprotocol import types
from pygls.workspace import PositionCodec

UTF8, UTF16, UTF32 = (
    types.PositionEncodingKind.Utf8,
    types.PositionEncodingKind.Utf16,
    types.PositionEncodingKind.Utf32,
)


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [(UTF16, 2 + 1 + 1), (UTF8, 4 + 3 + 1), (UTF32, 1 + 1 + 1)],
)
def test_columns_count_the_client_units(encoding: str, expected: int) -> None:
    index = LineIndex("x\n😀漢=1\n", PositionCodec(encoding))
    # the `1` after "😀漢=" is code point column 4 (1-based) on row 2
    assert index.to_client(Position(2, 4)) == types.Position(1, expected)
    assert index.from_client(types.Position(1, expected)) == Position(2, 4)


def test_lines_end_at_crlf_cr_and_lf_only() -> None:
    index = LineIndex("a\r\nb\rc\x0cd\ne\u2028f", PositionCodec(UTF16))
    assert index.lines == ["a", "b", "c\x0cd", "e\u2028f"]
    assert index.to_client(Position(3, 4)) == types.Position(2, 3)


def test_positions_are_clamped_into_the_text() -> None:
    index = LineIndex("ab\ncd\n", PositionCodec(UTF16))
    assert index.to_client(Position(2, 99)) == types.Position(1, 2)
    assert index.to_client(Position(50, 1)) == types.Position(2, 0)  # the empty last line
    assert index.from_client(types.Position(99, 5)) == Position(3, 1)
    assert index.from_client(types.Position(0, 99)) == Position(1, 3)


def _finding(row: int, code: str = "CKPT001", rows: tuple[int, int] = (0, 0)) -> Finding:
    return Finding(
        code=code,
        message="m",
        severity="error",
        filename="f.py",
        location=Position(row, 9),
        end_location=Position(row, 17),
        class_name="Model",
        attribute="log",
        what="an open file",
        breaks=("pickle",),
        fine=("deepcopy",),
        url="https://example.invalid/CKPT001.md",
        class_line=1,
        statement_rows=rows or (row, row),
    )


def _lines(text: str) -> Callable[[int], str]:
    """The fix's view of a text: 1-based row -> the line without its ending."""
    index = LineIndex(text, PositionCodec(UTF16))
    return lambda row: index.line_text(row - 1)


@pytest.mark.parametrize(
    ("line", "code", "expected"),
    [
        ("x = 1", "CKPT001", "x = 1  # ckpt: ignore[CKPT001]"),
        ("x = 1   ", "CKPT001", "x = 1  # ckpt: ignore[CKPT001]"),
        ("x = 1  # note", "CKPT001", "x = 1  # note  # ckpt: ignore[CKPT001]"),
        ("x = 1  # ckpt: ignore[CKPT005]", "CKPT001", "x = 1  # ckpt: ignore[CKPT005, CKPT001]"),
        (
            "x = 1  # ckpt: ignore[ CKPT005 ]",
            "CKPT001",
            "x = 1  # ckpt: ignore[ CKPT005, CKPT001 ]",
        ),
        ("x = 1  # ckpt: ignore[]", "CKPT001", "x = 1  # ckpt: ignore[CKPT001]"),
        ("x = '😀'", "CKPT003", "x = '😀'  # ckpt: ignore[CKPT003]"),
    ],
)
def test_ignore_edit(line: str, code: str, expected: str) -> None:
    text = f"a = 0\n{line}\nb = 2\n"
    edit = ignore_edit(_finding(2, code), _lines(text))
    assert edit is not None
    lines = text.split("\n")
    target = lines[1]
    start, end = edit.location.column - 1, edit.end_location.column - 1
    assert edit.location.row == edit.end_location.row == 2
    assert target[:start] + edit.content + target[end:] == expected


def test_ignore_edit_when_already_listed_and_on_the_last_statement_line() -> None:
    text = "x = f(\n    1,\n)  # ckpt: ignore[CKPT001]\n"
    assert ignore_edit(_finding(1, rows=(1, 3)), _lines(text)) is None
    text = "x = f(\n    1,\n)\n"
    edit = ignore_edit(_finding(1, rows=(1, 3)), _lines(text))
    assert edit is not None and edit.location.row == 3


def test_code_in_suppression() -> None:
    line = "self.x = 1  # ckpt: ignore[CKPT001, CKPT005]  # noqa: CKPT009"
    assert code_in_suppression(line, line.index("CKPT001") + 2) == "CKPT001"
    assert code_in_suppression(line, line.index("CKPT005")) == "CKPT005"
    assert code_in_suppression(line, line.index("CKPT009") + 7) == "CKPT009"
    assert code_in_suppression(line, 3) is None


def test_finding_at_takes_the_range() -> None:
    f = _finding(3)
    assert finding_at([f], Position(3, 9)) is f
    assert finding_at([f], Position(3, 17)) is f
    assert finding_at([f], Position(3, 18)) is None
    assert finding_at([f], Position(2, 10)) is None


def test_cached_diagnostics_follow_the_line_text() -> None:
    cache = DiagnosticCache()
    f = _finding(1)
    plain = cache.convert([f], LineIndex("        self.log = 1\n", PositionCodec(UTF16)))
    wide = cache.convert([f], LineIndex("😀😀      self.log = 1\n", PositionCodec(UTF16)))
    assert plain[0]["range"]["start"] == {"line": 0, "character": 8}
    assert wide[0]["range"]["start"] == {"line": 0, "character": 10}
    again = cache.convert([f], LineIndex("        self.log = 1\n", PositionCodec(UTF16)))
    assert again[0] is plain[0]
    body = json.loads(publish_body("file:///f.py", 4, wide))
    assert body["params"]["version"] == 4
    assert body["params"]["diagnostics"] == list(wide)
    assert body["params"]["diagnostics"][0]["codeDescription"]["href"].endswith("CKPT001.md")


def test_hover_text_comes_from_the_rule_pages() -> None:
    from ckpt_lsp.lsp.hover import doc_paragraph, rule_markdown

    summary = doc_paragraph("CKPT001")
    assert summary.startswith("An attribute of a checkpointed class holds an open file")
    why = doc_paragraph("CKPT005", "Why it breaks")
    assert why and not why.endswith(":")
    assert doc_paragraph("CKPT999") == ""
    text = rule_markdown("ckpt003")
    assert text is not None and "local-callable" in text and summary not in text
