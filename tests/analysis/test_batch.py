"""batch_run: what a whole `--check` run switches on once, for every file it reads."""

from __future__ import annotations

import warnings

from ckpt_lsp.analysis import batch, facts
from ckpt_lsp.analysis.batch import batch_run

TEXT = (
    "import torch\n"
    "\n"
    "LOCK = None\n"
    "\n"
    "class Model(torch.nn.Module):\n"
    "    def __init__(self):\n"
    "        self.pattern = '\\d+'\n"
    "\n"
    "    def forward(self, x):\n"
    "        return x\n"
    "\n"
    "def helper():\n"
    "    return 1\n"
)


def _clear() -> None:
    facts._PARSE_CACHE.clear()
    facts._SHAPES.clear()
    facts._FACTS_CACHE.clear()


def _cached() -> tuple[int, int, int]:
    return len(facts._PARSE_CACHE), len(facts._SHAPES), len(facts._FACTS_CACHE)


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
    _clear()
    with batch_run():
        in_batch = facts.module_facts("m.py", "m", TEXT)
    assert _cached() == (0, 0, 0)
    assert not batch.active
    outside = facts.module_facts("m.py", "m", TEXT)
    assert all(n > 0 for n in _cached())  # the editor's path keeps them
    assert _summary(in_batch) == _summary(outside)


def test_a_batch_run_ignores_the_warnings_of_the_code_it_reads() -> None:
    """`'\\d+'` warns (an invalid escape); where warnings are errors it must still parse."""
    _clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with batch_run():
            found = facts.module_facts("m.py", "m", TEXT)
            assert found.classes["Model"].failure == ""
    assert not found.broken
