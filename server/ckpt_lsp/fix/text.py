"""Line tables and text edits.

Only `\\r\\n`, `\\r` and `\\n` end a line: that is what the Python tokenizer, libcst and the
LSP agree on (str.splitlines would also split on form feeds and U+2028, which
would shift every row after them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ckpt_lsp.analysis.blocks import split_lines as analysis_split_lines
from ckpt_lsp.findings import Edit, Position


def split_lines(source: str) -> list[str]:
    """Lines with their endings kept (the analysis's split), and a last one that may be
    empty: a source ending in a newline has a row after it, where an insertion can go."""
    lines = analysis_split_lines(source)
    if not lines or lines[-1] != strip_newline(lines[-1]):
        lines.append("")
    return lines


def strip_newline(line: str) -> str:
    return line.rstrip("\r\n")


def leading_ws(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t\f"))]


@dataclass(frozen=True)
class Span:
    """A replacement on character offsets of a text (end exclusive)."""

    start: int
    end: int
    text: str
    order: int = 0  # ties between insertions at one offset: lower goes first


class LineTable:
    """Converts between 1-based rows, code-point columns, UTF-8 columns and offsets."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines = split_lines(source)
        self.starts: list[int] = []
        offset = 0
        for line in self.lines:
            self.starts.append(offset)
            offset += len(line)

    @property
    def row_count(self) -> int:
        return len(self.lines)

    def line(self, row: int) -> str:
        """Text of a 1-based row without its ending ('' past the end)."""
        if 1 <= row <= len(self.lines):
            return strip_newline(self.lines[row - 1])
        return ""

    def row_start(self, row: int) -> int:
        """Offset of the start of a row; rows past the end map to the end of the source."""
        if row > len(self.lines):
            return len(self.source)
        return self.starts[row - 1]

    def row_end(self, row: int) -> int:
        """Offset just after the row's line ending."""
        return self.row_start(row) + len(self.lines[row - 1])

    def has_newline(self, row: int) -> bool:
        return self.lines[row - 1] != strip_newline(self.lines[row - 1])

    def offset_of_utf8(self, row: int, byte_col: int) -> int:
        """ast columns are UTF-8 byte offsets; turn one into a source offset."""
        text = self.line(row)
        prefix = text.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore")
        return self.row_start(row) + len(prefix)

    def position(self, offset: int) -> Position:
        """The 1-based row and code-point column of an offset."""
        lo, hi = 0, len(self.starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return Position(lo + 1, offset - self.starts[lo] + 1)


def apply_spans(source: str, spans: Iterable[Span]) -> str:
    """Apply non-overlapping spans (insertions at one offset keep their `order`)."""
    out: list[str] = []
    cursor = 0
    for span in sorted(spans, key=lambda s: (s.start, s.end, s.order)):
        if span.start < cursor:
            raise ValueError("overlapping edits")
        out.append(source[cursor : span.start])
        out.append(span.text)
        cursor = span.end
    out.append(source[cursor:])
    return "".join(out)


def spans_overlap(a: Iterable[Span], b: Iterable[Span]) -> bool:
    """True when a replacement of one set touches the other (shared insertion points are fine)."""
    for x in a:
        for y in b:
            if x.start < y.end and y.start < x.end:
                return True
            if x.start == x.end and y.start < x.start < y.end:
                return True
            if y.start == y.end and x.start < y.start < x.end:
                return True
    return False


def spans_to_edits(table: LineTable, spans: Iterable[Span]) -> list[Edit]:
    """Spans as LSP-style edits; insertions at one point are merged so their order is kept."""
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, s.end, s.order)):
        last = merged[-1] if merged else None
        if last and last.start == last.end == span.start == span.end:
            merged[-1] = Span(last.start, last.end, last.text + span.text, last.order)
        else:
            merged.append(span)
    return [
        Edit(content=s.text, location=table.position(s.start), end_location=table.position(s.end))
        for s in merged
    ]


def apply_edits(source: str, edits: Iterable[Edit]) -> str:
    """Apply edits given in 1-based rows and code-point columns (end exclusive)."""
    table = LineTable(source)

    def offset(pos: Position) -> int:
        return table.row_start(pos.row) + pos.column - 1

    spans = [
        Span(offset(e.location), offset(e.end_location), e.content, order=i)
        for i, e in enumerate(edits)
    ]
    return apply_spans(source, spans)
