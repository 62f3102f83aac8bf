"""One switch for a whole batch run: warnings of the code being read are ignored.

Apart from the parser (facts.py) so that a run starting up, which may end as a cache
hit for every file, need not import the analysis to say so.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

active = False  # while a batch run ignores warnings (see warnings_ignored)


@contextlib.contextmanager
def warnings_ignored() -> Iterator[None]:
    """Ignore warnings (a SyntaxWarning of the code read) for a whole batch run: one
    catch_warnings instead of one per parse, which cost 1.9 us each, ~50k times a run.
    Single-threaded callers only, like catch_warnings itself."""
    global active
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        previous, active = active, True
        try:
            yield
        finally:
            active = previous
