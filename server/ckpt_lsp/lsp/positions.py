"""Convert between the analysis' positions and the client's.

Findings and fix edits count 1-based rows and 1-based columns in code points; a
client counts 0-based lines and columns in the negotiated encoding (UTF-16 code
units by default, UTF-8 bytes or code points when it offers them). The conversion
needs the text of the line, so it lives here, next to the document text. Lines
end only at `\\r\\n`, `\\n` or a lone `\\r` (as in the protocol and in Python's
tokenizer), never at form feeds or U+2028 as `str.splitlines` would have it.
"""

from __future__ import annotations

import re

from lsprotocol import types
from pygls.workspace import PositionCodec

from ckpt_lsp.findings import Position

_BREAK = re.compile(r"\r\n|\r|\n")


class LineIndex:
    """The lines of one text state, with conversions in both directions."""

    def __init__(self, text: str, codec: PositionCodec) -> None:
        self.text = text
        self.codec = codec
        self.encoding = codec.encoding or types.PositionEncodingKind.Utf16
        # Lines without their endings; a text ending in a newline has a last, empty line,
        # as in the protocol (the position after the final newline is on it).
        if "\r" in text:
            self.lines: list[str] = _BREAK.split(text)
        else:
            self.lines = text.split("\n")

    def units(self, text: str) -> int:
        return count_units(text, self.encoding)

    def line_text(self, line: int) -> str:
        """The 0-based line without its line ending ("" past the end)."""
        if 0 <= line < len(self.lines):
            return self.lines[line]
        return ""

    def to_client(self, pos: Position) -> types.Position:
        """A 1-based code point position to a client position (clamped into the text)."""
        line = max(pos.row - 1, 0)
        if line >= len(self.lines):
            last = len(self.lines) - 1
            return types.Position(last, self.units(self.lines[last]))
        text = self.lines[line]
        column = min(max(pos.column - 1, 0), len(text))
        return types.Position(line, self.units(text[:column]))

    def range_to_client(self, start: Position, end: Position) -> types.Range:
        return types.Range(self.to_client(start), self.to_client(end))

    def from_client(self, pos: types.Position) -> Position:
        """A client position to a 1-based code point position (clamped into the text)."""
        line = max(pos.line, 0)
        if line >= len(self.lines):
            last = len(self.lines) - 1
            return Position(last + 1, len(self.lines[last]) + 1)
        text = self.lines[line]
        target = max(pos.character, 0)
        if text.isascii():
            return Position(line + 1, min(target, len(text)) + 1)
        units = 0
        column = 0
        for ch in text:
            if units >= target:
                break
            units += self.codec.impl.code_units_for_char(ch)
            column += 1
        return Position(line + 1, column + 1)

    def end_of_line(self, row: int) -> Position:
        """The position after the last character of 1-based `row` (before its line ending)."""
        return Position(row, len(self.line_text(row - 1)) + 1)


def count_units(text: str, encoding: str) -> int:
    """Length of `text` in the client's code units (fast for the usual ASCII prefix)."""
    if text.isascii():
        return len(text)
    if encoding == types.PositionEncodingKind.Utf8:
        return len(text.encode("utf-8", "surrogatepass"))
    if encoding == types.PositionEncodingKind.Utf32:
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2
