"""A least-recently-used map bounded by entry count and by weight.

The analysis memoizes by source text (a keystroke re-parses one class block). Counting
entries alone does not bound memory: an editor session on one 150 KB class makes a new
9 MB syntax tree per keystroke, so 2,048 entries could hold gigabytes. Each entry here
weighs what it keeps alive (the characters of its source text), and the oldest entries
go once either bound is passed. An entry read since it was stored gets a second chance
(it moves to the young end once) before it goes: one pass over many files, each used
once, then does not push out the modules every one of them reads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """Thread-safe LRU map: the server analyzes on one thread and builds fixes on another.

    `keep_newest`: the entry just stored stays even when it alone is over the weight
    (what is being worked on now is needed again at once); otherwise it is not kept."""

    def __init__(self, max_entries: int, max_weight: int, keep_newest: bool = False) -> None:
        self.max_entries = max_entries
        self.max_weight = max_weight
        self.keep_newest = keep_newest
        self._items: OrderedDict[K, list[Any]] = OrderedDict()  # [value, weight, read]
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
            hit[2] = True
            return hit[0]

    def put(self, key: K, value: V, weight: int) -> None:
        """Store `value`, dropping the least recently used entries over the bounds."""
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._weight -= old[1]
            if weight > self.max_weight and not self.keep_newest:
                return
            self._items[key] = [value, weight, False]
            self._weight += weight
            chances = len(self._items)
            while len(self._items) > 1 and (
                len(self._items) > self.max_entries or self._weight > self.max_weight
            ):
                oldest, entry = self._items.popitem(last=False)
                if oldest == key or (entry[2] and chances > 0):
                    if oldest != key:
                        chances -= 1
                        entry[2] = False
                    self._items[oldest] = entry  # to the young end
                    continue
                self._weight -= entry[1]

    def pop(self, key: K) -> V | None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is None:
                return None
            self._weight -= old[1]
            return old[0]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._weight = 0

    @property
    def weight(self) -> int:
        return self._weight

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items
