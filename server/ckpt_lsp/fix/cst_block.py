"""The class's top-level block under libcst: where things are, how new code looks there.

Only that block is parsed (libcst takes ~370 ms on a 5,000-line file, ~0.08 ms a
line), and positions come from libcst's PositionProvider on it. New
statements are libcst nodes parsed with the block's own config, so they take its
indentation and line ending; they are rendered with `code_for_node` inside a block
indented like the place they go to, so an expression copied from `__init__` keeps
its continuation lines right. Nothing that exists is re-printed: the edits insert
lines (and may replace one `return`), and the edited block is parsed again before
it is offered.

The stdlib `ast` (the analysis's cached block trees) says what things mean; libcst
says where they are. The two meet at statement starts: an ast statement and the
libcst statement at the same row and column are the same statement.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping, Sequence
from typing import Union

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from ckpt_lsp.fix.text import LineTable, leading_ws

Statement = Union[cst.BaseSmallStatement, cst.BaseCompoundStatement]
# The line a small statement sits on (or the one-line body of a compound statement), or
# the compound statement itself.
BodyItem = Union[cst.SimpleStatementLine, cst.SimpleStatementSuite, cst.BaseCompoundStatement]


class BlockSyntax:
    """One top-level block, parsed by libcst, with positions (rows relative to the block)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.table = LineTable(text)
        self.module = cst.parse_module(text)
        self.newline = self.module.default_newline
        self.config = self.module.config_for_parsing
        self.positions: Mapping[cst.CSTNode, CodeRange] = {}
        self._located_to: float = 0  # positions cover statements that start up to this row
        self._statements: dict[tuple[int, int], tuple[Statement, BodyItem]] | None = None

    def locate(self, tree: ast.Module, row: int) -> None:
        """Have positions for every statement that starts up to `row` (ast `tree` is the
        same block's): PositionProvider prints the whole module to measure it, which costs
        ~0.15 ms a line, so a class's body is cut after the last item that is needed."""
        if self._located_to >= row:
            return
        module, covered = self._cut(tree, row)
        wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        self.positions = wrapper.resolve(PositionProvider)
        self._located_to = covered
        self._statements = None

    def _cut(self, tree: ast.Module, row: int) -> tuple[cst.Module, float]:
        """The module with its class's body items after `row` left out (the positions of
        the others do not change), and the rows it covers."""
        whole = (self.module, math.inf)
        if len(tree.body) != 1 or len(self.module.body) != 1:
            return whole
        cls, node = self.module.body[0], tree.body[0]
        if not isinstance(cls, cst.ClassDef) or not isinstance(node, ast.ClassDef):
            return whole
        if not isinstance(cls.body, cst.IndentedBlock):
            return whole
        statements = iter(node.body)  # the same statements, a `;` line flattened
        kept: list[cst.BaseStatement] = []
        for item in cls.body.body:
            first = next(statements, None)
            if first is None or first.lineno > row:
                break
            kept.append(item)
            for _ in range(len(item.body) - 1 if isinstance(item, cst.SimpleStatementLine) else 0):
                next(statements, None)
        if not kept or len(kept) == len(cls.body.body):
            return whole
        cut = cls.with_changes(body=cls.body.with_changes(body=kept))
        return self.module.with_changes(body=[cut]), row

    @classmethod
    def parse(cls, text: str) -> BlockSyntax | str:
        """The block's syntax, or why libcst cannot give it."""
        try:
            return cls(text)
        except cst.ParserSyntaxError:
            return "libcst cannot parse the class"
        except (RecursionError, MemoryError, ValueError):
            return "the class is too deeply nested to edit"

    # -- where things are -------------------------------------------------------------
    def start(self, node: cst.CSTNode) -> int:
        """Offset of the node's first character (whitespace it owns excluded)."""
        pos = self.positions[node].start
        return self.table.row_start(pos.line) + pos.column

    def end(self, node: cst.CSTNode) -> int:
        pos = self.positions[node].end
        return self.table.row_start(pos.line) + pos.column

    def first_row(self, node: cst.CSTNode) -> int:
        return self.positions[node].start.line

    def last_row(self, node: cst.CSTNode) -> int:
        return self.positions[node].end.line

    def statement(self, node: ast.stmt) -> tuple[Statement, BodyItem] | None:
        """The libcst statement an ast statement is, and the body item that holds it
        (None when it was not located)."""
        row = node.lineno
        column = self.table.offset_of_utf8(row, node.col_offset) - self.table.row_start(row)
        return self._index().get((row, column))

    def _index(self) -> dict[tuple[int, int], tuple[Statement, BodyItem]]:
        if self._statements is None:
            found: dict[tuple[int, int], tuple[Statement, BodyItem]] = {}
            for node, where in self.positions.items():
                if isinstance(node, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
                    for small in node.body:
                        start = self.positions[small].start
                        found[(start.line, start.column)] = (small, node)
                elif isinstance(node, cst.BaseCompoundStatement):
                    found[(where.start.line, where.start.column)] = (node, node)
            self._statements = found
        return self._statements

    def indent_of(self, block: cst.IndentedBlock) -> str:
        """The whole indentation of a block's statements (all its enclosing levels)."""
        return leading_ws(self.table.line(self.first_row(block.body[0])))

    def unit_of(self, block: cst.IndentedBlock) -> str:
        """What this block adds to the indentation of its parent."""
        return block.indent if block.indent is not None else self.module.default_indent

    # -- new code ---------------------------------------------------------------------
    def statement_node(self, code: str) -> cst.BaseStatement:
        """One statement from code written with the block's newline and indent unit."""
        return cst.parse_statement(code + self.newline, self.config)

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)

    def render(self, nodes: Sequence[cst.BaseStatement], indent: str, blank_after: bool) -> str:
        """Statements as they read in a body indented by `indent` (every level), each line
        ended by the block's newline; and a blank line after them when asked."""
        footer = [cst.EmptyLine(indent=False)] if blank_after else []
        body = cst.IndentedBlock(body=list(nodes), indent=indent, footer=footer)
        return self.code(body)[len(self.newline) :]  # the block's header is a bare newline


def parses(text: str) -> bool:
    """An edited block still parses, for libcst and for Python's own parser."""
    try:
        cst.parse_module(text)
        ast.parse(text)
    except (cst.ParserSyntaxError, SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True
