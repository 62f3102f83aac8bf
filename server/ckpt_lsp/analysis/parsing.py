"""Parsing source text, and what the analysis memoizes by text.

An editor's analyzer owns one `TextCaches` for its session: a keystroke changes one block
of many, and the parsed blocks, cut classes and block facts of the others come from it.
A batch run (`ckpt-lsp --check`) reads each text once: its analyzer's caches keep nothing
(hashing and keeping texts would be waste), and it ignores the warnings of the code it
reads once per file (`quiet`) instead of once per parse.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.blocks import Block
from ckpt_lsp.analysis.memo import BoundedCache

if TYPE_CHECKING:
    from ckpt_lsp.analysis.class_text import ClassText
    from ckpt_lsp.analysis.facts import _BlockFacts


class ParsedBlock:
    """A block parsed on its own: rows in `tree` are relative to the block's first row.

    A function or class block can be left unparsed until something asks for its tree
    (`loader`): most of them are never asked for."""

    __slots__ = ("block", "_tree", "_error", "_loader")

    def __init__(
        self,
        block: Block,
        tree: ast.Module | None = None,
        error: str = "",
        loader: Callable[[], tuple[ast.Module | None, str]] | None = None,
    ) -> None:
        self.block = block
        self._tree = tree
        self._error = error
        self._loader = loader

    def _load(self) -> None:
        loader, self._loader = self._loader, None
        if loader is not None:
            self._tree, self._error = loader()

    @property
    def tree(self) -> ast.Module | None:
        """The whole block's syntax tree; None when the block does not parse."""
        self._load()
        return self._tree

    @property
    def error(self) -> str:
        self._load()
        return self._error

    @property
    def pending(self) -> bool:
        """Not parsed yet."""
        return self._loader is not None

    @property
    def failed(self) -> bool:
        """Parsed, and it did not parse (a block not read yet has not failed)."""
        return self._loader is None and self._tree is None

    @property
    def row_offset(self) -> int:
        return self.block.start_row - 1

    @property
    def error_row(self) -> int:
        """Row (within the block) a syntax error points at, 0 when unknown."""
        m = re.search(r"\(line (\d+)\)$", self.error)
        return int(m.group(1)) if m else 0


# A syntax tree takes about 65 bytes per character of source: one million characters of
# cached blocks keep at most ~65 MB of trees alive, however long the editing session.
CACHED_ENTRIES = 2048
CACHED_CHARS = 1_000_000


class TextCaches:
    """Memos by source text: parsed blocks, cut classes, block facts (see the module).

    `memoize`: keep what was read (an editor does; a batch run does not)."""

    def __init__(self, memoize: bool = True) -> None:
        self.memoize = memoize
        self._quiet = 0  # inside `quiet`: warnings are already ignored
        self.parses: BoundedCache[str, tuple[ast.Module | None, str]] = BoundedCache(
            CACHED_ENTRIES, CACHED_CHARS
        )
        # cut classes by text; False for a class that is parsed whole (no cut, or a bad one)
        self.shapes: BoundedCache[str, ClassText | bool] = BoundedCache(
            CACHED_ENTRIES, CACHED_CHARS
        )
        self.block_facts: BoundedCache[tuple[str, str], _BlockFacts] = BoundedCache(
            CACHED_ENTRIES, CACHED_CHARS
        )
        # a batch run's method pieces by (row in the class, text): a library copies
        # methods between classes (transformers' "Copied from"), so the same piece recurs
        # at the same row of many classes; the trees are kept by their classes anyway.
        # None: not kept (an editor keeps whole cut classes by text instead)
        self.pieces: dict[tuple[int, str], ast.Module | None] | None = None
        # whether a block's text holds one of a rule's words, by (words, text): a keystroke
        # scans the one block it changed instead of the whole file, once per rule
        self.block_words: BoundedCache[tuple[tuple[str, ...], str], bool] = BoundedCache(
            CACHED_ENTRIES, CACHED_CHARS
        )

    @classmethod
    def for_batch(cls) -> TextCaches:
        """Keep no text's results, each text of a batch run being read once; only the
        parses of method pieces, which repeat."""
        caches = cls(memoize=False)
        caches.pieces = {}
        return caches

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """Ignore the warnings of the code read (a SyntaxWarning) once for every parse in
        the block, not once per parse: catch_warnings costs microseconds, and a batch run
        parses ~50k times. A parse outside the block (read lazily later) still catches its
        own. For one thread at a time, like catch_warnings itself."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._quiet += 1
            try:
                yield
            finally:
                self._quiet -= 1

    def parse(self, text: str) -> tuple[ast.Module | None, str]:
        """`parse_text`, memoized by the text when this cache memoizes."""
        if not self.memoize:
            return self.parse_text(text)
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        hit = self.parses.get(key)
        if hit is None:
            hit = self.parse_text(text)
            self.parses.put(key, hit, len(text))
        return hit

    def parse_text(self, text: str) -> tuple[ast.Module | None, str]:
        """The syntax tree of `text`, or None and why it does not parse; never raises."""
        try:
            if self._quiet:
                return ast.parse(text), ""
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return ast.parse(text), ""
        except SyntaxError as exc:
            return None, f"{exc.msg} (line {exc.lineno})"
        except (ValueError, RecursionError, MemoryError) as exc:
            return None, f"{type(exc).__name__}: {exc}"

    def parse_piece(self, row: int, text: str) -> ast.Module | None:
        """The tree of a method piece starting at `row` of its class (1-based), padded so
        that its rows are the class's; None when it does not parse."""
        key = (row, text)
        if self.pieces is not None and key in self.pieces:
            return self.pieces[key]
        tree, _ = self.parse_text("class _:\n" + "\n" * (row - 2) + text)
        if self.pieces is not None:
            self.pieces[key] = tree
        return tree

    def mentions(self, blocks: Sequence[ParsedBlock], text: str, words: tuple[str, ...]) -> bool:
        """Whether one of `words` occurs in the statements of a module (`blocks`, cut from
        `text`): its whole text searched once in a batch run; block by block, memoized, in
        an editor. Only the comments above the first statement are in no block, and no
        rule looks for its words there."""
        if not self.memoize:
            return any(word in text for word in words)
        for parsed in blocks:
            key = (words, parsed.block.text)
            hit = self.block_words.get(key)
            if hit is None:
                hit = any(word in key[1] for word in words)
                self.block_words.put(key, hit, len(key[1]))
            if hit:
                return True
        return False

    def parse_block(self, block: Block) -> ParsedBlock:
        """Parse one block (memoized by its text: a keystroke re-parses only its block)."""
        tree, error = self.parse(block.text)
        return ParsedBlock(block, tree, error)

    def deferred(self, block: Block) -> ParsedBlock:
        """A block parsed only when its tree is asked for."""
        return ParsedBlock(block, loader=lambda: self.parse(block.text))

    def clear(self) -> None:
        self.parses.clear()
        self.shapes.clear()
        self.block_facts.clear()
        self.block_words.clear()
        if self.pieces is not None:
            self.pieces.clear()


# For a caller that keeps nothing between calls (a fix reading one text).
UNCACHED = TextCaches(memoize=False)
