"""Memory over an editing session (benchmarks/soak_server.py, a short run).

The run replays the same 100 edits of one document at 30 edits/s for 20 s. After the
first replay every cache of the analysis (parsed blocks, block facts, class findings,
diagnostics JSON) holds every text it will see, so what RSS still gains after the
warm-up is state kept per edit. Measured here: 1-3 MiB over the 15 s after warm-up (the
allocator settling). Keeping anything proportional to a version, e.g. the ~25 KiB syntax
tree of this 1 KiB file, would add 10+ MiB over those ~450 edits: the bound is 6 MiB.
The growth with ever-new texts is bounded by the caches' sizes, not by the session's
length; benchmarks/README.md gives the figures of long runs.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from soak_server import soak  # noqa: E402

BOUND_KIB = 6 * 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
def test_rss_stays_flat_over_a_replayed_session() -> None:
    out = io.StringIO()
    result = soak(duration_s=20, rate=30, interval_s=2, files=1, seed=3, distinct=100, out=out)
    report = out.getvalue()
    assert result.alive and result.final_ok, report
    assert result.edits > 300, report
    assert result.growth_kb < BOUND_KIB, report
