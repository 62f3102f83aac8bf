"""A workspace folder's project: the index size setting."""

from __future__ import annotations

import pytest
from ckpt_lsp.lsp.folder_project import DEFAULT_INDEX_CHARS, index_chars


def test_index_chars_setting_falls_back_on_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for raw, expected in [
        ("500000", 500_000),
        ("lots", DEFAULT_INDEX_CHARS),
        ("0", DEFAULT_INDEX_CHARS),
        ("-5", DEFAULT_INDEX_CHARS),
        ("", DEFAULT_INDEX_CHARS),
    ]:
        monkeypatch.setenv("CKPT_INDEX_CHARS", raw)
        assert index_chars() == expected
