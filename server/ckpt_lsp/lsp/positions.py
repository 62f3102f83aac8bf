"""Convert between the analysis' positions and the client's.

Findings and fix edits count 1-based rows and 1-based columns in code points; a
client counts 0-based lines and columns in the negotiated encoding (UTF-16 code
units by default, UTF-8 bytes or code points when it offers them). The conversion
needs the text of the line, so it lives here, next to the document text. Lines
end only at `\\r\\n`, `\\n` or a lone `\\r` (as in the protocol and in Python's
tokenizer), never at form feeds or U+2028 as `str.splitlines` would have it.
"""

from __future__ import annotations

from lsprotocol import types
from pygls.workspace import PositionCodec

from ckpt_lsp.analysis.blocks import split_lines
from ckpt_lsp.findings import Position


class LineIndex:
    """The lines of one text state, with conversions in both directions."""

    def __init__(self, text: str, codec: PositionCodec) -> None:
        self.text = text
        self.codec = codec
        self.lines: list[str] = split_lines(text)

    def units(self, text: str) -> int:
        return count_units(text, self.codec.encoding or types.PositionEncodingKind.Utf16)

    def line_text(self, line: int) -> str:
        """The 0-based line without its line ending ("" past the end)."""
        if 0 <= line < len(self.lines):
            return self.lines[line].rstrip("\r\n")
        return ""

    def to_client(self, pos: Position) -> types.Position:
        """A 1-based code point position to a client position (clamped into the text)."""
        line = max(pos.row - 1, 0)
        if line >= len(self.lines):
            # Past the last line: the end of the text (an edit appending at the end).
            if self.lines and not self.lines[-1].endswith(("\n", "\r")):
                last = len(self.lines) - 1
                return types.Position(last, self.units(self.line_text(last)))
            return types.Position(len(self.lines), 0)
        text = self.line_text(line)
        column = min(max(pos.column - 1, 0), len(text))
        return types.Position(line, self.units(text[:column]))

    def range_to_client(self, start: Position, end: Position) -> types.Range:
        return types.Range(self.to_client(start), self.to_client(end))

    def from_client(self, pos: types.Position) -> Position:
        """A client position to a 1-based code point position (clamped into the text)."""
        line = max(pos.line, 0)
        if line >= len(self.lines):
            return Position(len(self.lines) + 1, 1)
        text = self.line_text(line)
        units = 0
        column = 0
        target = max(pos.character, 0)
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
