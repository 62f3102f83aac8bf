"""The project index: facts of every module checked, so names resolve across files.

A `Layer(nn.Module)` in `proj/base.py` makes `class Block(Layer)` in
`proj/blocks.py` a model; a factory in `proj/io.py` that returns `lmdb.open(...)`
makes `self.env = open_env()` a hazard. Modules are found by dotted name; every
dotted suffix of a file's path is registered, so `src/` layouts and namespace
packages resolve without configuration.

The text of every module stays; its facts (syntax trees, ~65 bytes per character) may
be bounded (`max_chars`): the least recently used are dropped and rebuilt from the kept
text when asked for again, so a language server over a 2,000-file workspace does not
hold a gigabyte of trees. What `dependents` needs (module name, import targets) is kept
for every module, so a change does not re-parse the workspace.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ckpt_lsp.analysis.facts import ModuleFacts, module_facts
from ckpt_lsp.analysis.memo import BoundedCache
from ckpt_lsp.analysis.parsing import UNCACHED, TextCaches
from ckpt_lsp.analysis.save_calls import TRIGGERS, SaveCall, has_trigger, module_save_calls
from ckpt_lsp.cache import WHOLE_PROJECT
from ckpt_lsp.source import SourceError, read_source_text


def module_name_for(path: Path, root: Path, real_dirs: dict[str, str] | None = None) -> str:
    """Dotted module name of `path` relative to `root`; outside it, the name Python gives it
    from the folder above its packages (`keras/src/layers/layer.py` with `__init__.py` in
    each folder is `keras.src.layers.layer`, wherever that folder is), so a folder checked
    from outside its project still knows its own package.

    `real_dirs` memoizes the symlink-free form of directories (and expects `root` already
    resolved): resolving a path walks every component with a system call, and a 3,000-file
    batch run spent a tenth of a second per process on resolving the same directories.
    A notebook runs as `__main__` and nothing can import it."""
    if path.name.endswith(".ipynb"):
        return "__main__"
    if real_dirs is not None and os.name == "posix":
        parts = _parts_by_text(path, str(root), real_dirs)
    else:
        try:
            real = _resolved(path, real_dirs) if real_dirs is not None else path.resolve()
            rel = real.relative_to(root if real_dirs is not None else root.resolve())
            parts = list(rel.with_suffix("").parts)
        except ValueError:
            parts = _package_parts(os.path.abspath(path))
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(p for p in parts if p.isidentifier())


def _parts_by_text(path: Path, root: str, real_dirs: dict[str, str]) -> list[str]:
    """The parts `_resolved(path).relative_to(root).with_suffix("")` has, by string
    operations (pathlib's parsing was half of indexing 3,354 files), for POSIX paths,
    which compare case-sensitively as strings do."""
    real = _real_path(path, real_dirs)
    prefix = root if root.endswith(os.sep) else root + os.sep
    if not real.startswith(prefix) or len(real) == len(prefix):
        return _package_parts(os.path.abspath(path))
    parts = real[len(prefix) :].split(os.sep)
    last = parts[-1]
    dot = last.rfind(".")
    if 0 < dot < len(last) - 1:  # what PurePath.suffix calls a suffix
        parts[-1] = last[:dot]
    return parts


def _package_parts(file: str) -> list[str]:
    """The dotted parts of `file` below the nearest folder above it that is not a package
    (holds no `__init__.py`): its stem alone for a file outside any package. The folders
    are those of the path as given, not resolved: Python imports a symlinked file under
    the package it sits in."""
    folder, name = os.path.split(file)
    parts = [os.path.splitext(name)[0]]
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        folder, package = os.path.split(folder)
        if not package:
            break
        parts.insert(0, package)
    return parts


def _resolved(path: Path, real_dirs: dict[str, str]) -> Path:
    return Path(_real_path(path, real_dirs))


def _real_path(path: Path, real_dirs: dict[str, str]) -> str:
    """`path.resolve()` as text, resolving each directory once (a symlinked file on its
    own)."""
    text = os.path.abspath(path)
    if os.path.islink(text):
        return os.path.realpath(text)
    directory, name = os.path.split(text)
    real = real_dirs.get(directory)
    if real is None:
        real = real_dirs[directory] = os.path.realpath(directory)
    return os.path.join(real, name)


def _norm(path: str | Path) -> str:
    return os.path.normpath(os.path.abspath(str(path)))


class ProjectIndex:
    """Module facts by path and by dotted name; cheap to update one file at a time.

    `max_chars` bounds the source characters whose facts are kept (None: all)."""

    def __init__(self, root: Path | None = None, max_chars: int | None = None) -> None:
        self.root = (root or Path.cwd()).resolve()
        self._facts: BoundedCache[str, ModuleFacts] = BoundedCache(
            1 << 62, max_chars if max_chars is not None else 1 << 62, keep_newest=True
        )
        # every module's text, or a loader for a file not even read yet
        self._sources: dict[str, str | Callable[[], str]] = {}
        # (module name, import targets) of every module loaded once, for `dependents`
        self._imports: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._names: dict[str, str] = {}  # path -> dotted module name
        self._by_name: dict[str, set[str]] = {}
        self.touched: set[str] | None = None  # when a set, paths whose facts were read
        self._generation = 0  # bumped by every change, so caches can tell
        self._changes: dict[str, int] = {}
        self._real_dirs: dict[str, str] = {}  # directory -> its symlink-free form
        # (word, excluded path) -> (generation, paths whose text holds the word)
        self._mentions: dict[tuple[str, str], tuple[int, list[str]]] = {}
        # what module facts are read through: the analyzer that uses the index sets its own
        self.text_caches: TextCaches = UNCACHED
        # the save calls of each module, with the text they were read from (see save_calls)
        self._save_calls: dict[str, tuple[str, bool, list[SaveCall] | None]] = {}

    @property
    def generation(self) -> int:
        """A number that changes whenever any module changes."""
        return self._generation

    def generation_without(self, path: str | Path) -> int:
        """A number that changes whenever a module other than `path` changes."""
        return self._generation - self._changes.get(_norm(path), 0)

    def __len__(self) -> int:
        return len(self._names)

    def _changed(self, key: str) -> None:
        """Count a change of `key`'s module, for generation_without."""
        self._generation += 1
        self._changes[key] = self._changes.get(key, 0) + 1

    # -- updating --------------------------------------------------------
    def add_source(self, path: str | Path, text: str) -> ModuleFacts:
        """Index a module's text; the same text again is a no-op (the CLI indexes every
        file first, then analyzes each, and the editor re-sends unchanged buffers)."""
        key = _norm(path)
        if key in self._names:
            source = self._sources.get(key)
            if source == text:
                return self._load(key)
            if callable(source):
                # registered with a loader and never loaded (the CLI registers every file,
                # then analyzes each): no facts to drop, and the module name stays
                self._sources[key] = text
                self._changed(key)
                return self._load(key)
        self.register(key, text)
        return self._load(key)

    def register(self, path: str | Path, text: str | Callable[[], str]) -> None:
        """Index a module lazily: its facts are made the first time something asks for them
        (a batch run then parses only the files it analyzes and those they depend on)."""
        key = _norm(path)
        self.remove(key)
        self._changed(key)
        name = module_name_for(Path(key), self.root, self._real_dirs)
        self._sources[key] = text
        self._names[key] = name
        for suffix in self._suffixes(name):
            self._by_name.setdefault(suffix, set()).add(key)

    def _load(self, key: str) -> ModuleFacts:
        facts = self._facts.get(key)
        if facts is None:
            source = self._sources[key]
            text = source if isinstance(source, str) else source()
            self._sources[key] = text  # read once: the facts are rebuilt from this text
            facts = module_facts(key, self._names[key], text, self.text_caches)
            self._facts.put(key, facts, len(text))
            targets = (*facts.imports.values(), *facts.star_imports)
            self._imports[key] = (facts.module, tuple(dict.fromkeys(targets)))
        if self.touched is not None:
            self.touched.add(key)
        return facts

    def remove(self, path: str | Path) -> None:
        key = _norm(path)
        self._facts.pop(key)
        self._sources.pop(key, None)
        self._save_calls.pop(key, None)
        self._imports.pop(key, None)
        name = self._names.pop(key, None)
        if name is None:
            return
        self._changed(key)
        for suffix in self._suffixes(name):
            paths = self._by_name.get(suffix)
            if paths is not None:
                paths.discard(key)
                if not paths:
                    del self._by_name[suffix]

    def scan(self, paths: Iterable[str | Path]) -> list[tuple[str, str]]:
        """Read and index files; returns (path, error) for those that could not be read."""
        errors: list[tuple[str, str]] = []
        for path in paths:
            try:
                text = read_source_text(path)
            except SourceError as exc:
                errors.append((str(path), str(exc)))
                continue
            self.add_source(path, text)
        return errors

    @staticmethod
    def _suffixes(name: str) -> list[str]:
        parts = name.split(".") if name else []
        return [".".join(parts[i:]) for i in range(len(parts))]

    # -- lookups ---------------------------------------------------------
    def facts(self, path: str | Path) -> ModuleFacts | None:
        key = _norm(path)
        return self._load(key) if key in self._names else None

    def texts(self) -> Iterator[tuple[str, str]]:
        """(path, text) of every indexed module (each text read once; no facts are made,
        so nothing is parsed and nothing counts as read). The same string comes back while
        the module is unchanged, so callers may key on its identity. The search covers
        the whole project, so the current analysis depends on all of it."""
        self.note_whole_project()
        for key, source in list(self._sources.items()):
            if callable(source):
                try:
                    source = source()
                except Exception:  # unreadable now: the analysis of that file says why
                    continue
                self._sources[key] = source
            yield key, source

    def paths_containing(self, words: tuple[str, ...]) -> list[str]:
        """Paths of indexed modules whose text holds one of `words`."""
        return [key for key, text in self.texts() if any(word in text for word in words)]

    def note_whole_project(self) -> None:
        """Count the whole project as read by the current analysis: it searched every
        module's text, so a module added, removed or changed anywhere may change its answer
        (the CLI cache keys such a result on all of them, WHOLE_PROJECT)."""
        if self.touched is not None:
            self.touched.add(WHOLE_PROJECT)

    def note_read(self, path: str | Path) -> None:
        """Count a module as read by the current analysis (a cache dependency) without
        making its facts: its text decided something (it holds no opted-out load)."""
        if self.touched is not None:
            self.touched.add(_norm(path))

    def all_facts(self) -> list[ModuleFacts]:
        return [self._load(key) for key in list(self._names)]

    def _text(self, key: str) -> str:
        source = self._sources[key]
        if callable(source):
            source = self._sources[key] = source()
        return source

    def _calls_entry(self, key: str) -> tuple[str, bool, list[SaveCall] | None]:
        """(text, whether it holds a trigger word, its save calls once read)."""
        text = self._text(key)
        hit = self._save_calls.get(key)
        if hit is None or not (hit[0] is text or hit[0] == text):
            facts = self._facts.get(key)
            if facts is not None and facts.text is text:  # the file being edited
                trigger = self.text_caches.mentions(facts.blocks, text, TRIGGERS)
            else:
                trigger = has_trigger(text)
            hit = (text, trigger, None)
            self._save_calls[key] = hit
        return hit

    def calling_texts(self) -> list[tuple[str, str]]:
        """(path, text) of the modules that may hold a save call (a trigger word in their
        text); none is parsed here."""
        out: list[tuple[str, str]] = []
        for key in list(self._names):
            text, trigger, _ = self._calls_entry(key)
            if trigger:
                out.append((key, text))
        return out

    def save_calls(self, path: str | Path, names: tuple[str, ...] = ()) -> list[SaveCall]:
        """The calls of a module that pickle or copy an object (module facts, by text);
        with `names`, only those in functions and classes whose text holds one of them."""
        key = _norm(path)
        if key not in self._names:
            return []
        text, trigger, calls = self._calls_entry(key)
        if not trigger:
            return []
        if names:
            return module_save_calls(self._load(key), names)
        if calls is None:
            calls = module_save_calls(self._load(key))
            self._save_calls[key] = (text, trigger, calls)
        return calls

    def find_module(self, dotted: str, near: str = "") -> ModuleFacts | None:
        """The indexed module named `dotted`; among several, the one nearest to `near`."""
        candidates = self._by_name.get(dotted)
        if not candidates:
            return None
        if len(candidates) == 1:
            return self._load(next(iter(candidates)))
        near_dir = os.path.dirname(_norm(near)) if near else ""

        def closeness(p: str) -> tuple[int, int, str]:
            common = os.path.commonpath([near_dir, p]) if near_dir else ""
            exact = self._names[p] == dotted
            return (-int(exact), -len(common), p)

        return self._load(min(candidates, key=closeness))

    def resolve_member(
        self, qualified: str, near: str = "", depth: int = 0
    ) -> tuple[ModuleFacts, str] | None:
        """Find the module that defines `pkg.mod.Name`, following re-exports a few levels."""
        if depth > 4 or "." not in qualified:
            return None
        module, _, member = qualified.rpartition(".")
        facts = self.find_module(module, near)
        if facts is None:
            return None
        if member in facts.classes or member in facts.functions or member in facts.assigns:
            return facts, member
        target = facts.imports.get(member)
        if target and target != qualified:
            return self.resolve_member(target, facts.path, depth + 1)
        for star in facts.star_imports:  # `from .feats import *` re-exports
            found = self.resolve_member(f"{star}.{member}", facts.path, depth + 1)
            if found is not None:
                return found
        return None

    def mentioning(self, word: str, exclude: str | Path = "") -> list[ModuleFacts]:
        """The modules other than `exclude` whose text holds `word` (who calls a class).

        The answer depends on every module's text, so every module counts as read: a
        cached result that used it is re-checked when any of them changes. Texts not read
        yet are read once here and kept, as loading them would."""
        skip = _norm(exclude) if exclude else ""
        memo_key = (word, skip)
        stamp = self.generation_without(skip) if skip else self._generation
        cached = self._mentions.get(memo_key)
        if cached is not None and cached[0] == stamp:
            hits = cached[1]
        else:
            hits = []
            for key in list(self._names):
                if key == skip:
                    continue
                source = self._sources.get(key, "")
                if callable(source):
                    source = self._sources[key] = source()
                if word in source:
                    hits.append(key)
            if len(self._mentions) > 256:
                self._mentions.clear()
            self._mentions[memo_key] = (stamp, hits)
        self.note_whole_project()
        return [self._load(key) for key in hits]

    def dependents(self, path: str | Path) -> set[str]:
        """Paths of modules whose analysis may change when `path` changes (transitively)."""
        start = self.facts(path)
        if start is None:
            return set()
        for key in list(self._names):
            if key not in self._imports:
                self._load(key)  # once per module: its imports are kept from then on
        result: set[str] = set()
        frontier = {start.module}
        while frontier:
            names = frontier
            frontier = set()
            for key, (module, targets) in self._imports.items():
                if key in result or key == start.path:
                    continue
                if any(self._imports_from(targets, name) for name in names):
                    result.add(key)
                    frontier.add(module)
        return result | self._built_here(start)

    def _built_here(self, start: ModuleFacts) -> set[str]:
        """The modules whose Lightning classes `start` may build: what a call passes is what
        their save_hyperparameters() stores (CKPT011), so a changed call re-checks them."""
        out: set[str] = set()
        for target in start.imports.values():
            found = self.resolve_member(target, start.path)
            facts = found[0] if found is not None else self.find_module(target, start.path)
            if (
                facts is not None
                and facts.path != start.path
                and "save_hyperparameters" in facts.text
            ):
                out.add(facts.path)
        return out

    @staticmethod
    def _imports_from(targets: tuple[str, ...], module: str) -> bool:
        if not module:
            return False
        tail = module.rsplit(".", 1)[-1]
        for target in targets:
            if target == module or target.startswith(module + "."):
                return True
            # suffix registration: `from core import X` may name `zoo.core`
            head = target.rsplit(".", 1)[0]
            if module.endswith("." + head) or head == tail or target == tail:
                return True
        return False
