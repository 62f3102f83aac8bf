"""The CKPT011 fix: keep parameters out of what `self.save_hyperparameters(...)` stores.

- `save_hyperparameters()` / `(logger=False)`: add `ignore=["x"]`;
- `ignore="a"`: becomes `ignore=["a", "x"]`; `ignore=[...]` / `(...)` / `{...}`: `"x"` is
  appended; `ignore=None`: becomes `ignore=["x"]`;
- `save_hyperparameters("a", "x")`: the name is removed (Lightning raises KeyError for a name
  that is both given and ignored); the last name is never removed, as no name means all.
Edits are spans of the class's block text; edits.py checks that the block still parses.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

from ckpt_lsp.analysis.hparams import first_save_call, ignored_names
from ckpt_lsp.fix.text import LineTable, Span

FunctionNode = (ast.FunctionDef, ast.AsyncFunctionDef)


def _start(table: LineTable, node: ast.AST) -> int:
    return table.offset_of_utf8(node.lineno, node.col_offset)  # type: ignore[attr-defined]


def _end(table: LineTable, node: ast.AST) -> int:
    return table.offset_of_utf8(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def ignore_spans(block_text: str, cls: ast.ClassDef, names: Sequence[str]) -> list[Span] | str:
    """The spans that leave `names` out of the class's stored hyperparameters, or why not."""
    init = next(
        (s for s in reversed(cls.body) if isinstance(s, FunctionNode) and s.name == "__init__"),
        None,
    )
    call = first_save_call(init) if init is not None else None
    if call is None:
        return "the class's __init__ calls no save_hyperparameters()"
    ignore = ignored_names(call)
    if ignore is None:
        return "its ignore= is not a literal list of names"
    wanted = [n for n in dict.fromkeys(names) if n not in ignore]
    if not wanted:
        return []
    table = LineTable(block_text)
    given = [a for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    if call.args:
        if len(given) != len(call.args):
            return "save_hyperparameters stores an object, not named parameters"
        return _unname(table, given, wanted)
    kw = next((k for k in call.keywords if k.arg == "ignore"), None)
    if kw is None:
        return [_add_keyword(table, call, wanted)]
    return [_extend(table, kw.value, wanted)]


def _add_keyword(table: LineTable, call: ast.Call, wanted: Sequence[str]) -> Span:
    text = f"ignore=[{_quoted(wanted)}]"
    if not call.keywords:
        at = _end(table, call) - 1  # before the closing parenthesis
        return Span(at, at, text)
    at = _end(table, call.keywords[-1])
    return Span(at, at, f", {text}")


def _extend(table: LineTable, value: ast.expr, wanted: Sequence[str]) -> Span:
    start, end = _start(table, value), _end(table, value)
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return Span(start, end, f"[{table.source[start:end]}, {_quoted(wanted)}]")
    if isinstance(value, (ast.List, ast.Tuple, ast.Set)) and value.elts:
        at = _end(table, value.elts[-1])
        return Span(at, at, f", {_quoted(wanted)}")
    if isinstance(value, ast.Tuple) and table.source[end - 1 : end] == ")":
        return Span(end - 1, end - 1, f"{_quoted(wanted)},")
    if isinstance(value, ast.List):
        return Span(end - 1, end - 1, _quoted(wanted))
    return Span(start, end, f"[{_quoted(wanted)}]")  # ignore=None, or set()


def _unname(table: LineTable, given: list[ast.Constant], wanted: Sequence[str]) -> list[Span] | str:
    kept = [a for a in given if a.value not in wanted]
    if not kept:
        return "it would leave save_hyperparameters without a name, which stores every parameter"
    spans: list[Span] = []
    for i, arg in enumerate(given):
        if arg in kept:
            continue
        if i + 1 < len(given):  # up to the next argument, its comma included
            spans.append(Span(_start(table, arg), _start(table, given[i + 1]), ""))
        else:  # from the end of the argument before it
            spans.append(Span(_end(table, given[i - 1]), _end(table, arg), ""))
    return _merged(spans)


def _merged(spans: list[Span]) -> list[Span]:
    """Removals of neighbouring names touch: one span each run, so none overlap."""
    out: list[Span] = []
    for span in sorted(spans, key=lambda s: s.start):
        if out and span.start <= out[-1].end:
            last = out.pop()
            span = Span(last.start, max(last.end, span.end), "")
        out.append(span)
    return out
