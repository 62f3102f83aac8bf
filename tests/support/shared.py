"""Where the shared research folder is, and what a test does when it is missing.

The shared folder (the truth corpus and its oracle, the truth table) is not part of the
repository: it is the folder `shared` beside the checkout, or wherever `CKPT_SHARED` points.
Every test that reads it finds it here, so one variable moves them all.

A test that needs it and does not find it skips with a reason naming the path. Under CI
(`CI=true`, as CI runs `.ci/run`) it fails instead: CI always has the folder,
so a missing one is a broken set-up, and skipping there would let hundreds of checks
pass unrun.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = "CKPT_SHARED"


def shared_root() -> Path:
    """`$CKPT_SHARED` when set, else the `shared` folder next to the checkout."""
    configured = os.environ.get(ENV)
    return Path(configured).expanduser().resolve() if configured else REPO.parent / "shared"


SHARED = shared_root()
CORPUS = SHARED / "corpus"
TRUTH_TABLE = SHARED / "research" / "TRUTH_TABLE_full.md"


def under_ci() -> bool:
    """CI sets `CI=true`; an empty value, `0` or `false` counts as unset."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_reason(path: Path) -> str:
    """Why a test cannot run: the folder itself when it is absent (so a clone without it
    shows one line in the skip summary), else the one file or folder it lacks."""
    if not SHARED.is_dir():
        return f"the shared folder is not at {SHARED} (set {ENV})"
    try:
        return f"the shared folder at {SHARED} has no {path.relative_to(SHARED)} (set {ENV})"
    except ValueError:  # not a path of the shared folder
        return f"{path} is missing (set {ENV})"


def require(*paths: Path) -> None:
    """Skip the running test (fail it under CI) unless every path exists."""
    for path in paths:
        if not path.exists():
            reason = missing_reason(path)
            if under_ci():
                pytest.fail(f"{reason}; CI must have it", pytrace=False)
            pytest.skip(reason)


def needs(*paths: Path) -> pytest.MarkDecorator:
    """A mark for a test (or a parameter) that reads these shared paths."""
    return pytest.mark.shared(*paths)
