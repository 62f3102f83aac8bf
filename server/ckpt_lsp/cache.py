"""The persistent result cache: a file's findings, reused while nothing they depend on changed.

Keyed by ckpt-lsp's version and the configuration's fingerprint (one file per key);
an entry holds the file's content hash and the hashes of every other module its
analysis read (a base class or a factory in another file), so editing `base.py`
re-checks `blocks.py`. A result that searched every module's text (who builds a class,
who loads with `weights_only=False`, who hands a Keras class over as a custom object)
holds one hash of the whole project instead, so a file added anywhere re-checks it. The
directory gets a CACHEDIR.TAG (backup tools skip it) and
a `.gitignore`. A missing, stale or corrupt cache is an empty one, never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ckpt_lsp import __version__
from ckpt_lsp.findings import FileError, Finding, Fix

_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by ckpt-lsp.\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)


# A dependency meaning every file of the project (which files there are and what each
# holds): a result that searched every module's text, such as who builds a class. No path
# is this key.
WHOLE_PROJECT = "\0project"


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass
class Entry:
    digest: str  # hash of the file's bytes
    deps: dict[str, str]  # other modules the analysis read: path -> hash
    findings: list[Finding] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    # each finding's fix, once a JSON run has built them (libcst is slow to load and run)
    fixes: list[Fix | None] | None = None
    # the modules whose classes the file's save calls reach (their related locations name
    # these calls): when the file changes, their cached results are stale too
    reaches: list[str] = field(default_factory=list)


# Where the file's (mtime_ns, size, hash) records live in the pickled dict (no path is
# this key: paths are absolute).
_STATS_KEY = "\0stats"
# A file modified less than this before it was hashed may change again within the same
# timestamp tick (coarse file systems): its stat is not trusted later (git's "racy" rule).
_RACY_NS = 2_000_000_000


class ResultCache:
    def __init__(self, directory: Path, config_key: str) -> None:
        self.directory = directory
        self.path = directory / f"results-{__version__}-{config_key[:16]}.pickle"
        self.entries: dict[str, Entry] = {}
        self.stats: dict[str, tuple[int, int, str]] = {}  # path -> (mtime_ns, size, hash)
        self._dirty = False
        with contextlib.suppress(Exception):  # no cache, an old format, a torn file
            with self.path.open("rb") as fh:
                loaded = pickle.load(fh)
            if isinstance(loaded, dict):
                stats = loaded.pop(_STATS_KEY, {})
                self.entries = loaded
                self.stats = stats if isinstance(stats, dict) else {}

    def known_digest(self, path: str, mtime_ns: int, size: int) -> str | None:
        """The hash recorded for `path` when it had this modification time and size."""
        record = self.stats.get(path)
        if record is not None and record[0] == mtime_ns and record[1] == size:
            return record[2]
        return None

    def note_digest(self, path: str, mtime_ns: int, size: int, digest: str, now_ns: int) -> None:
        """Record a hash with the stat it was read under, unless the file is so recent that
        a second change could keep the same modification time."""
        if mtime_ns < now_ns - _RACY_NS:
            if self.stats.get(path) != (mtime_ns, size, digest):
                self.stats[path] = (mtime_ns, size, digest)
                self._dirty = True
        elif self.stats.pop(path, None) is not None:
            self._dirty = True

    def get(self, path: str, digest: str, digests: Mapping[str, str]) -> Entry | None:
        """The entry for `path` if the file and everything it read are unchanged
        (`digests[dep]` may hash a file that was not checked, on demand)."""
        entry = self.entries.get(path)
        if entry is None or entry.digest != digest:
            return None
        for dep, dep_digest in entry.deps.items():
            try:
                current = digests[dep]
            except KeyError:
                return None
            if current != dep_digest:
                return None
        return entry

    def put(self, path: str, entry: Entry) -> None:
        self.entries[path] = entry
        self._dirty = True

    def save(self) -> None:
        """Write atomically; a cache that cannot be written is silently skipped."""
        if not self._dirty:
            return
        with contextlib.suppress(OSError):
            self.directory.mkdir(parents=True, exist_ok=True)
            tag = self.directory / "CACHEDIR.TAG"
            if not tag.exists():
                tag.write_text(_TAG)
                (self.directory / ".gitignore").write_text("# created by ckpt-lsp\n*\n")
            import tempfile  # not at start-up: a warm run that changed nothing never writes

            fd, tmp = tempfile.mkstemp(prefix=".results-", dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as fh:
                    stored: dict[str, object] = {**self.entries, _STATS_KEY: self.stats}
                    pickle.dump(stored, fh, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(tmp, self.path)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
