"""BoundedCache: LRU by entry count and by weight (characters of source kept alive)."""

from __future__ import annotations

from ckpt_lsp.analysis.memo import BoundedCache


def test_evicts_least_recently_used_by_count() -> None:
    cache: BoundedCache[str, int] = BoundedCache(max_entries=2, max_weight=100)
    cache.put("a", 1, 1)
    cache.put("b", 2, 1)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3, 1)
    assert "b" not in cache
    assert cache.get("a") == 1 and cache.get("c") == 3


def test_evicts_by_weight() -> None:
    cache: BoundedCache[str, str] = BoundedCache(max_entries=100, max_weight=10)
    for key in "abcd":
        cache.put(key, key, 4)
    assert len(cache) == 2 and cache.weight == 8
    assert "c" in cache and "d" in cache


def test_an_entry_heavier_than_the_budget_is_not_kept() -> None:
    cache: BoundedCache[str, str] = BoundedCache(max_entries=10, max_weight=10)
    cache.put("small", "s", 3)
    cache.put("huge", "h", 11)
    assert "huge" not in cache and cache.get("small") == "s" and cache.weight == 3


def test_replacing_a_key_keeps_the_weight_right() -> None:
    cache: BoundedCache[str, str] = BoundedCache(max_entries=10, max_weight=10)
    cache.put("a", "1", 6)
    cache.put("a", "2", 2)
    assert cache.weight == 2 and cache.get("a") == "2"
    cache.clear()
    assert len(cache) == 0 and cache.weight == 0


def test_editing_one_huge_class_keeps_the_caches_within_their_bounds() -> None:
    """Each keystroke in a 60 KB class makes a new 4 MB syntax tree; counting entries
    alone would keep 2,048 of them."""
    from ckpt_lsp.analysis.analyzer import Analyzer
    from ckpt_lsp.analysis.parsing import CACHED_CHARS

    body = "".join(f"        self.w{i} = {i}\n" for i in range(3000))
    analyzer = Analyzer()
    caches = analyzer.text_caches
    for version in range(40):
        text = f"import torch\n\nclass Big(torch.nn.Module):\n    def __init__(self):\n{body}        self.v = {version}\n"
        analyzer.analyze("big.py", text)
    assert len(body) * 20 > CACHED_CHARS  # the versions would not fit
    assert caches.parses.weight <= CACHED_CHARS
    assert caches.shapes.weight <= CACHED_CHARS  # cut classes and their pieces
    assert analyzer._class_cache.weight <= Analyzer._CACHE_CHARS
    assert len(caches.shapes) < 40


def test_an_entry_read_again_outlives_entries_used_once() -> None:
    """One pass over many files must not push out the module each of them reads."""
    cache: BoundedCache[str, str] = BoundedCache(max_entries=3, max_weight=100)
    cache.put("common", "c", 1)
    assert cache.get("common") == "c"
    for n in range(3):  # plain LRU would drop `common` at the third file
        cache.put(f"file{n}", "f", 1)
    assert "common" in cache and "file0" not in cache


def test_keep_newest_keeps_an_oversized_entry_until_the_next() -> None:
    cache: BoundedCache[str, str] = BoundedCache(max_entries=10, max_weight=10, keep_newest=True)
    cache.put("a", "a", 4)
    cache.put("huge", "h", 50)
    assert "huge" in cache and "a" not in cache
    cache.put("b", "b", 4)
    assert "huge" not in cache and "b" in cache
