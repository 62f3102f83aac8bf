"""One switch for a whole batch run (`ckpt-lsp --check`), which reads each text once.

- Warnings of the code being read are ignored once for the run, not once per parse.
- The analysis's caches by text (parsed blocks, cut classes, block facts) are bypassed:
  they serve an editor, where a keystroke changes one block of many, while in a batch
  run they only hash texts and keep trees that are never asked for again.

Apart from the parser (facts.py) so that a run starting up, which may end as a cache
hit for every file, need not import the analysis to say so.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

active = False  # while a batch run is on (see batch_run)


@contextlib.contextmanager
def batch_run() -> Iterator[None]:
    """Ignore warnings (a SyntaxWarning of the code read) and bypass the text caches for
    a whole batch run: one catch_warnings instead of one per parse, which cost 1.9 us
    each, ~50k times a run. Single-threaded callers only, like catch_warnings itself."""
    global active
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        previous, active = active, True
        try:
            yield
        finally:
            active = previous
