"""The editor's settings for ckpt-lsp: global ones and one set per workspace folder.

Global settings come from initializationOptions and didChangeConfiguration; a
client that supports workspace/configuration is asked for the `ckpt-lsp` section,
globally and for each folder. A folder's settings override the global ones."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.uris import from_fs_path

from ckpt_lsp.lsp.folder_project import SETTINGS_KEYS

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

log = logging.getLogger("ckpt_lsp.lsp")

SETTINGS_SECTION = "ckpt-lsp"


@dataclass
class EditorSettings:
    """Editor settings: global ones (initializationOptions, didChangeConfiguration)
    and per-folder ones pulled with workspace/configuration."""

    global_: dict[str, Any] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_folder(self, root: str | None) -> dict[str, Any]:
        merged = dict(self.global_)
        if root is not None:
            merged.update(self.folders.get(root, {}))
        return merged


def settings_from_payload(payload: Any) -> dict[str, Any] | None:
    """The ckpt-lsp settings in a didChangeConfiguration or initializationOptions payload.

    Accepts {"ckpt-lsp": {...}}, {"settings": {...}} (the extension's initialization
    options) and a bare settings object. None when the payload has none."""
    if not isinstance(payload, Mapping):
        return None
    for key in (SETTINGS_SECTION, "ckptLsp", "settings"):
        inner = payload.get(key)
        if isinstance(inner, Mapping):
            nested = settings_from_payload(inner) if key == "settings" else None
            return dict(nested if nested is not None else inner)
    if any(key in payload for key in SETTINGS_KEYS):
        return dict(payload)
    return None


async def pull_settings(
    server: LanguageServer, settings: EditorSettings, roots: Sequence[str]
) -> None:
    """Ask the client for the `ckpt-lsp` section, globally and for each folder root."""
    roots = list(roots)
    items = [types.ConfigurationItem(section=SETTINGS_SECTION)]
    items += [
        types.ConfigurationItem(scope_uri=from_fs_path(root), section=SETTINGS_SECTION)
        for root in roots
    ]
    try:
        values = await server.workspace_configuration_async(types.ConfigurationParams(items=items))
    except Exception as exc:
        log.warning("workspace/configuration failed: %s", exc)
        return
    values = list(values or [])
    if values and isinstance(values[0], Mapping):
        settings.global_.update(values[0])
    for root, value in zip(roots, values[1:]):
        if isinstance(value, Mapping):
            settings.folders[root] = dict(value)
