"""Text caches: owned by an analyzer; a batch analyzer keeps only repeated method pieces."""

from __future__ import annotations

import warnings

from ckpt_lsp.analysis import facts
from ckpt_lsp.analysis.analyzer import Analyzer
from ckpt_lsp.analysis.parsing import TextCaches

TEXT = (
    "import torch\n"
    "\n"
    "LOCK = None\n"
    "\n"
    "class Model(torch.nn.Module):\n"
    "    def __init__(self):\n"
    "        self.pattern = '\\d+'\n"
    "        self.f = lambda x: x\n"
    "\n"
    "    def forward(self, x):\n"
    "        return x\n"
    "\n"
    "def helper():\n"
    "    return 1\n"
)


def _cached(caches: TextCaches) -> tuple[int, int, int]:
    return len(caches.parses), len(caches.shapes), len(caches.block_facts)


def _summary(found: facts.ModuleFacts) -> tuple[object, ...]:
    model = found.classes["Model"]
    return (
        sorted(found.classes),
        sorted(found.functions),
        dict(found.imports),
        sorted(found.assigns),
        model.bases,
        [m.name for m in model.assigning_methods()],
        not found.broken,
    )


def test_a_batch_run_bypasses_the_text_caches_and_reads_the_same_facts() -> None:
    """Each text of a batch run is read once: caching it only costs hashing."""
    batch = TextCaches.for_batch()
    with batch.quiet():  # what a batch analyzer does around each file
        in_batch = facts.module_facts("m.py", "m", TEXT, batch)
    assert _cached(batch) == (0, 0, 0)
    editor = TextCaches()
    outside = facts.module_facts("m.py", "m", TEXT, editor)
    assert all(n > 0 for n in _cached(editor))  # the editor's path keeps them
    assert _summary(in_batch) == _summary(outside)


def test_a_batch_run_parses_a_method_copied_into_another_class_once() -> None:
    """Method pieces repeat across a library's classes: a batch run parses the same text
    at the same row of its class once, and the rows of its tree stay the class's."""
    copied = TEXT.replace("class Model", "class Copy")
    batch = TextCaches.for_batch()
    with batch.quiet():
        first = facts.module_facts("a.py", "a", TEXT, batch).classes["Model"]
        second = facts.module_facts("b.py", "b", copied, batch).classes["Copy"]
        moved = facts.module_facts("c.py", "c", "\n" + copied, batch).classes["Copy"]
    init, again = first.assigning_methods()[0], second.assigning_methods()[0]
    assert init is again and init.lineno == 2  # row 2 of the class block
    # a class moved down a file is the same block text: its rows are the block's
    assert moved.assigning_methods()[0] is init
    batch.clear()
    assert batch.pieces == {}
    editor = TextCaches()
    facts.module_facts("a.py", "a", TEXT, editor)
    assert editor.pieces is None  # the editor keeps whole cut classes by text instead


def test_an_editor_finds_a_rule_s_words_block_by_block_as_a_batch_run_does() -> None:
    """`mentions`: the whole text in a batch run, the blocks memoized by text in an
    editor; the same answers, and a keystroke scans only the block it changed."""
    words = ("save", "ckpt")
    editor, batch = TextCaches(), TextCaches.for_batch()
    saving = TEXT + "\ndef write(m):\n    torch.save(m.state_dict(), 'w.pt')\n"
    for text, expected in ((TEXT, False), (saving, True), (saving.replace("save", "dump"), False)):
        module = facts.module_facts("m.py", "m", text, editor)
        assert editor.mentions(module.blocks, text, words) is expected
        assert batch.mentions(module.blocks, text, words) is expected
    assert len(batch.block_words) == 0
    scanned = len(editor.block_words)
    typed = TEXT.replace("return x", "return x + 1")  # a keystroke in one class
    module = facts.module_facts("m.py", "m", typed, editor)
    assert editor.mentions(module.blocks, typed, words) is False
    assert len(editor.block_words) == scanned + 1


def test_each_analyzer_owns_its_caches() -> None:
    """No module-level cache: two analyzers (two projects of one server) share nothing,
    and the index an analyzer uses reads through that analyzer's caches."""
    first, second = Analyzer(), Analyzer()
    assert first.text_caches is not second.text_caches
    first.analyze("m.py", TEXT)
    assert _cached(first.text_caches) != (0, 0, 0)
    assert _cached(second.text_caches) == (0, 0, 0)
    batch = Analyzer(batch=True)
    assert not batch.text_caches.memoize and not batch.memoize_classes


def test_a_batch_run_ignores_the_warnings_of_the_code_it_reads() -> None:
    """`'\\d+'` warns (an invalid escape); where warnings are errors it must still parse."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        editor = Analyzer().analyze("m.py", TEXT).findings
        batch = Analyzer(batch=True).analyze("m.py", TEXT).findings
    assert [f.attribute for f in batch] == ["f"]
    assert batch == editor


def test_a_lazy_parse_after_a_quiet_stretch_still_ignores_warnings() -> None:
    """A batch run's class pieces are parsed when first asked for, which may be after the
    file's quiet stretch: such a parse catches its own warnings."""
    batch = TextCaches.for_batch()
    with batch.quiet():
        found = facts.module_facts("m.py", "m", TEXT, batch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [m.name for m in found.classes["Model"].assigning_methods()] == ["__init__"]
