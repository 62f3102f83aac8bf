"""Editor settings: the payload shapes clients send, and folder settings over global ones."""

from __future__ import annotations

import pytest
from ckpt_lsp.lsp.editor_settings import EditorSettings, settings_from_payload


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"ckpt-lsp": {"select": ["CKPT001"]}}, {"select": ["CKPT001"]}),
        ({"settings": {"ignore": ["CKPT002"]}}, {"ignore": ["CKPT002"]}),
        ({"settings": {"ckpt-lsp": {"enable": False}}}, {"enable": False}),
        ({"severity": {"CKPT001": "hint"}}, {"severity": {"CKPT001": "hint"}}),
        ({"python": {"analysis": 1}}, None),
        (None, None),
        ([1, 2], None),
    ],
)
def test_settings_payloads(payload: object, expected: object) -> None:
    assert settings_from_payload(payload) == expected


def test_a_folders_settings_override_the_global_ones() -> None:
    settings = EditorSettings(
        global_={"select": ["CKPT001"], "enable": True},
        folders={"/work/a": {"enable": False}},
    )
    assert settings.for_folder("/work/a") == {"select": ["CKPT001"], "enable": False}
    assert settings.for_folder("/work/b") == {"select": ["CKPT001"], "enable": True}
    assert settings.for_folder(None) == {"select": ["CKPT001"], "enable": True}
