"""IPython syntax in a code cell, blanked without moving anything.

A notebook's code cells are Python plus IPython's escapes: line magics (`%timeit x`),
shell escapes (`!pip install x`, `x = !ls`), help (`?obj`, `obj??`) and cell magics
(`%%bash`). The analysis reads Python only, so each escape is replaced by text of the
same length on the same line: `...` (a statement that keeps an indented block valid)
followed by a comment. Rows and columns of every other character stay where they were,
so a finding maps back to its cell by arithmetic alone.

Only the start of a logical line can hold an escape (as in IPython's own transformer):
a line inside brackets, a string or after a backslash continues Python code, where
`% b` is the modulo operator.
"""

from __future__ import annotations

import re

# Cell magics whose body is Python that IPython runs in the notebook's namespace; the
# body is kept for the analysis. Every other cell magic (%%bash, %%writefile, %%html,
# ...) holds text that is not run as the notebook's Python: the whole cell is blanked.
_PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug"})

_ESCAPES = ("%", "!", "?", ",", ";", "/")
_ASSIGN_ESCAPE = re.compile(r"^([ \t]*[A-Za-z_][\w.,\[\]() \t*]*?[ \t]*=[ \t]*)([%!])")
_HELP_END = re.compile(r"^[ \t]*%{0,2}[A-Za-z_*][\w*]*(?:\.[A-Za-z_*][\w*]*)*\?\??[ \t]*$")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# IPython's automagic: magics people type without `%` (`pip install x`, `cd ..`); blanked
# only when the line is not Python (`pip = 3` stays). As in IPython's assignment check, a
# word followed by `=` or `,` starts an assignment, never a magic, even when the statement
# goes on over more lines (`env = Env(` then its arguments).
_AUTOMAGICS = "pip|conda|mamba|cd|load_ext|reload_ext|autoreload|matplotlib|env|pwd|ls"
_AUTOMAGIC = re.compile(rf"^[ \t\f]*(?:{_AUTOMAGICS})[ \t]+(?![=,])")
# a line that starts with an escape or an automagic, ends with `?`, or assigns an escape:
# only a cell holding one is scanned
_MAYBE_IPYTHON = re.compile(
    rf"^[ \t\f]*[%!?,;/]|\?[ \t]*$|=[ \t]*[%!]|^[ \t\f]*(?:{_AUTOMAGICS})[ \t]", re.MULTILINE
)


def blank(segment: str) -> str:
    """A valid statement of exactly len(segment) characters: `...` or `0`, then a comment."""
    statement = "..." if len(segment) >= 3 else "0"
    if len(segment) <= len(statement):
        return statement[: len(segment)]
    return statement + "#" + segment[len(statement) + 1 :]


def _comment_out(line: str) -> str:
    """The line as a comment at its own indentation (a comment never needs a block)."""
    body = line.lstrip(" \t\f")
    if not body:
        return line
    return line[: len(line) - len(body)] + "#" + body[1:]


def _escape_line(line: str) -> str | None:
    """The blanked line when it is an IPython escape at the start of a logical line."""
    body = line.lstrip(" \t\f")
    indent = line[: len(line) - len(body)]
    if body.startswith(_ESCAPES) or _HELP_END.match(line):
        return indent + blank(body)
    assign = _ASSIGN_ESCAPE.match(line)
    if assign:
        head = assign.group(1)
        return head + blank(line[len(head) :])
    if _AUTOMAGIC.match(line) and not _is_python(body):
        return indent + blank(body)
    return None


def _is_python(statement: str) -> bool:
    try:
        compile(statement, "<cell>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def _cell_magic(lines: list[str]) -> int | None:
    """Index of the `%%magic` line when the cell is a cell magic (blank lines may precede it)."""
    for index, line in enumerate(lines):
        if line.strip():
            return index if line.lstrip(" \t\f").startswith("%%") else None
    return None


def neutralise_lines(lines: list[str]) -> list[str]:
    """The cell's lines (no line endings) with IPython syntax blanked, same lengths."""
    if not _MAYBE_IPYTHON.search("\n".join(lines)):
        return list(lines)  # most cells: nothing can be IPython syntax, nothing to scan
    out = list(lines)
    magic = _cell_magic(out)
    if magic is not None:
        name = out[magic].lstrip(" \t\f")[2:].split(maxsplit=1)
        python_body = bool(name) and name[0] in _PYTHON_CELL_MAGICS
        out[magic] = _escape_line(out[magic]) or out[magic]
        if not python_body:
            return [*out[: magic + 1], *(_comment_out(line) for line in out[magic + 1 :])]
    scanner = _LogicalLines()
    escaped_continues = False
    for index, line in enumerate(out):
        if escaped_continues:
            out[index] = _comment_out(line)
            escaped_continues = line.endswith("\\")
            continue
        if scanner.at_start and index != magic:
            replaced = _escape_line(line)
            if replaced is not None:
                out[index] = replaced
                escaped_continues = line.endswith("\\")
                continue
        scanner.feed(line)
    return out


def neutralise(source: str) -> str:
    """The cell's source with IPython syntax blanked: same lines, same line endings,
    same length per line."""
    pieces = _LINE_BREAK.split(source)
    breaks = _LINE_BREAK.findall(source)
    lines = neutralise_lines(pieces)
    return "".join(line + brk for line, brk in zip(lines, [*breaks, ""], strict=True))


class _LogicalLines:
    """Just enough of a tokenizer to know whether the next line starts a logical line:
    open brackets, open strings and backslash continuations carry a line on."""

    def __init__(self) -> None:
        self.depth = 0
        self.quote: str | None = None
        self.continued = False

    @property
    def at_start(self) -> bool:
        return self.depth == 0 and self.quote is None and not self.continued

    def feed(self, line: str) -> None:
        index, commented = 0, False
        while True:
            if self.quote is not None:
                index = self._string_end(line, index)
                if self.quote is not None:
                    break  # the string goes on past this line
                continue
            found = _CODE_SPECIAL.search(line, index)
            if found is None:
                break
            char, index = found.group(), found.end()
            if char == "#":
                commented = True
                break
            if char in "([{":
                self.depth += 1
            elif char in ")]}":
                self.depth = max(0, self.depth - 1)
            elif char in "'\"":
                triple = line[found.start() : found.start() + 3]
                self.quote = triple if triple in ('"""', "'''") else char
                index = found.start() + len(self.quote)
        ends_in_backslash = not commented and line.endswith("\\")
        if self.quote is not None and len(self.quote) == 1 and not ends_in_backslash:
            self.quote = None  # an unterminated one-line string ends with its line
        self.continued = ends_in_backslash and self.quote is None

    def _string_end(self, line: str, index: int) -> int:
        """Past the end of the open string in `line` (quote cleared), or the line's end."""
        quote = self.quote or ""
        closer = _CLOSERS[quote]
        while True:
            found = closer.search(line, index)
            if found is None:
                return len(line)
            index = found.end()
            if found.group() == quote:
                self.quote = None
                return index


_CODE_SPECIAL = re.compile(r"""[#'"()\[\]{}]""")
# an escape (skipped whole) or the quote that closes the string
_CLOSERS = {q: re.compile(r"\\.|" + re.escape(q)) for q in ("'", '"', "'''", '"""')}
