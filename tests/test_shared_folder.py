"""tests/support/shared.py: a missing shared path skips with its place named, and fails under CI."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import shared


def test_the_folder_is_beside_the_checkout_unless_ckpt_shared_says_otherwise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(shared.ENV, raising=False)
    assert shared.shared_root() == shared.REPO.parent / "shared"
    monkeypatch.setenv(shared.ENV, str(tmp_path))
    assert shared.shared_root() == tmp_path.resolve()


@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_a_missing_path_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    missing = shared.SHARED / "no-such-folder" / "x.json"
    with pytest.raises(pytest.skip.Exception) as raised:
        shared.require(missing)
    assert shared.ENV in str(raised.value)
    assert str(shared.SHARED) in str(raised.value)


@pytest.mark.parametrize("value", ["true", "1"])
def test_a_missing_path_fails_under_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="CI must have it"):
        shared.require(shared.SHARED / "no-such-folder")


def test_present_paths_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    shared.require(Path(__file__))
