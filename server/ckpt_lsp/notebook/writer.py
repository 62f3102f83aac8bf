"""Writing changed cell sources back into a notebook's JSON, and nothing else.

Only the `source` values of the changed cells are replaced, in the text: outputs,
metadata, key order, indentation and the final newline stay byte for byte. A source
written as a list of lines stays a list laid out like the original (nbformat's one line
per item, indented as it was); a string stays a string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")
_LINE = re.compile(r"[^\n]*\n|[^\n]+")

Span = tuple[int, int]


def _skip(text: str, at: int) -> int:
    match = _WS.match(text, at)
    return match.end() if match else at


def _value_end(text: str, at: int) -> int:
    return _DECODER.raw_decode(text, at)[1]


def _object_members(text: str, at: int) -> dict[str, Span]:
    """Each key of the object starting at `at` and the span of its value."""
    members: dict[str, Span] = {}
    at = _skip(text, at + 1)
    while text[at] != "}":
        key, at = _DECODER.raw_decode(text, at)
        at = _skip(text, _skip(text, at) + 1)  # past ':'
        end = _value_end(text, at)
        members[key] = (at, end)
        at = _skip(text, end)
        if text[at] == ",":
            at = _skip(text, at + 1)
    return members


def array_items(text: str, at: int) -> list[Span]:
    items: list[Span] = []
    at = _skip(text, at + 1)
    while text[at] != "]":
        end = _value_end(text, at)
        items.append((at, end))
        at = _skip(text, end)
        if text[at] == ",":
            at = _skip(text, at + 1)
    return items


def source_spans(text: str) -> list[Span]:
    """The span of every cell's `source` value, by index among all cells ((0, 0): none)."""
    top = _object_members(text, _skip(text, 0))
    cells = array_items(text, top["cells"][0])
    out: list[Span] = []
    for start, _ in cells:
        out.append(_object_members(text, start).get("source", (0, 0)))
    return out


def _line_indent(text: str, at: int) -> str:
    line_start = text.rfind("\n", 0, at) + 1
    line = text[line_start:at]
    return line[: len(line) - len(line.lstrip(" \t"))]


def _render_list(text: str, span: Span, lines: list[str], ascii_only: bool) -> str:
    if not lines:
        return "[]"
    old = array_items(text, span[0])
    if old:
        opening = text[span[0] + 1 : old[0][0]]
        closing = text[old[-1][1] : span[1] - 1]
        separator = text[old[0][1] : old[1][0]] if len(old) > 1 else "," + opening
    else:
        indent = _line_indent(text, span[0])
        opening, closing = "\n" + indent + " ", "\n" + indent
        separator = "," + opening
    items = [json.dumps(line, ensure_ascii=ascii_only) for line in lines]
    return "[" + opening + separator.join(items) + closing + "]"


def _ascii_only(text: str) -> bool:
    """Whether the file escapes non-ASCII characters (nbformat itself writes them as is)."""
    return text.isascii() and "\\u" in text


def replace_sources(text: str, sources: Mapping[int, str]) -> str:
    """The notebook text with the cells at these indexes (among all cells) given new sources."""
    spans = source_spans(text)
    ascii_only = _ascii_only(text)
    out: list[str] = []
    done = 0
    for index in sorted(sources):
        start, end = spans[index]
        if start == end:
            raise ValueError(f"cell {index + 1} has no source to replace")
        if text[start] == "[":
            value = _render_list(text, (start, end), _LINE.findall(sources[index]), ascii_only)
        else:
            value = json.dumps(sources[index], ensure_ascii=ascii_only)
        out.append(text[done:start])
        out.append(value)
        done = end
    out.append(text[done:])
    return "".join(out)
