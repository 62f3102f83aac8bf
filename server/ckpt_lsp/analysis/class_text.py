"""A class block cut at its methods (see layout.py): its pieces parsed one at a time, as
they are asked for, so a keystroke in one method re-reads nothing of the others.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from typing import Union

from ckpt_lsp.analysis.layout import Layout
from ckpt_lsp.analysis.parsing import TextCaches

FunctionNode = Union[ast.FunctionDef, ast.AsyncFunctionDef]


class ClassText:
    """What a cut class block's text alone determines: its layout, its header, and the
    pieces parsed so far. Shared by every ClassFacts made from the same text (cached by
    text, like parsed blocks), so a keystroke elsewhere re-reads nothing of the class."""

    def __init__(
        self,
        text: str,
        name: str,
        layout: Layout,
        header: ast.ClassDef,
        bases: tuple[str, ...],
        caches: TextCaches,
    ) -> None:
        self.text = text
        self.caches = caches
        self.name = name
        self.layout: Layout | None = layout  # None once the class was read whole
        self.header = header  # the header alone, or the whole class once read whole
        self.bases = bases  # worked out once per text, not per keystroke
        self._pieces: dict[int, list[ast.stmt] | None] = {}  # piece index -> statements
        self._read: tuple[list[FunctionNode], list[ast.stmt]] | None = None
        self._methods: dict[str, FunctionNode | None] = {}  # method lookups by name
        self._piece_names: dict[str, list[int]] | None = None  # piece indexes by def name
        self.failure = ""  # why the parts that matter do not parse

    def whole(self) -> ast.ClassDef:
        """The whole class; when it does not parse as a whole, its pieces that do."""
        self.read()  # whether the parts that matter parse, whatever was asked first
        layout = self.layout
        if layout is None:
            return self.header
        whole = class_named(self.caches.parse(self.text)[0], self.name)
        if whole is None:
            header = self.header
            whole = ast.ClassDef(
                name=header.name,
                bases=header.bases,
                keywords=header.keywords,
                body=header.body[:-1]
                + [stmt for i in range(len(layout.pieces)) for stmt in self.piece(i) or ()],
                decorator_list=header.decorator_list,
                lineno=header.lineno,
                col_offset=header.col_offset,
            )
        self._use_whole(whole)
        return whole

    def _use_whole(self, whole: ast.ClassDef) -> None:
        self.header, self.layout = whole, None
        self._methods.clear()  # from now on methods come from the whole tree

    def read(self) -> tuple[list[FunctionNode], list[ast.stmt]]:
        """The methods that may assign self, and the class-level statements."""
        if self._read is not None:
            return self._read
        layout = self.layout
        statements: list[ast.stmt] = []
        if layout is not None:
            statements = self.header.body[:-1]  # the header's own body, without its `pass`
            for i, piece in enumerate(layout.pieces):
                if not piece.must_read:
                    continue
                parsed = self.piece(i)
                if parsed is None:  # a wrong cut, or a syntax error: read it whole
                    tree, error = self.caches.parse(self.text)
                    whole = class_named(tree, self.name)
                    if whole is None:  # nothing of it is analyzed (the pieces that parse
                        # still serve `whole()` and `method()`)
                        self.failure = error or "invalid syntax"
                        self._read = ([], [])
                        return self._read
                    self._use_whole(whole)
                    break
                statements.extend(parsed)
        if self.layout is None:
            statements = list(self.header.body)
        self._read = split_body(statements)
        return self._read

    def method(self, name: str) -> FunctionNode | None:
        """The method `name` from its piece, memoized: the protocol asks every analyzed
        class for __reduce__, __reduce_ex__ and __getstate__ on every keystroke."""
        if name in self._methods:
            return self._methods[name]
        found: FunctionNode | None = None
        if self.layout is not None:
            pieces = self.layout.pieces
            if self._piece_names is None:
                self._piece_names = {}
                for i, piece in enumerate(pieces):
                    self._piece_names.setdefault(piece.name, []).append(i)
            named = self._piece_names.get(name, [])
            if not named and name in self.text:  # a piece joined over a string
                header = re.compile(rf"def\s+{re.escape(name)}\b")  # may hold a second def
                named = [i for i, piece in enumerate(pieces) if header.search(piece.text)]
            for i in named:
                found = function_named(self.piece(i) or (), name)
                if found is not None:
                    break
        else:
            found = function_named(self.whole().body, name)
        self._methods[name] = found
        return found

    def piece(self, index: int) -> list[ast.stmt] | None:
        if index in self._pieces:
            return self._pieces[index]
        assert self.layout is not None
        piece = self.layout.pieces[index]
        tree = self.caches.parse_piece(piece.start_row, piece.text)
        found: list[ast.stmt] | None = None
        if tree is not None and len(tree.body) == 1 and isinstance(tree.body[0], ast.ClassDef):
            found = tree.body[0].body
        self._pieces[index] = found
        return found


def split_body(body: Iterable[ast.stmt]) -> tuple[list[FunctionNode], list[ast.stmt]]:
    """A class body's methods, and its other statements, each in order."""
    methods: list[FunctionNode] = []
    others: list[ast.stmt] = []
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            methods.append(stmt)
        else:
            others.append(stmt)
    return methods, others


def function_named(body: Iterable[ast.stmt], name: str) -> FunctionNode | None:
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
            return stmt
    return None


def class_named(tree: ast.Module | None, name: str) -> ast.ClassDef | None:
    if tree is None:
        return None
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef) and stmt.name == name:
            return stmt
    return None
