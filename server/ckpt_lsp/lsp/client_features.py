"""What the client said it can do, read once at initialize.

Every choice that depends on the editor (pull or push diagnostics, resolve or
complete code actions, markdown or plain hovers) reads these flags, not the raw
capabilities."""

from __future__ import annotations

from dataclasses import dataclass

from lsprotocol import types


@dataclass
class ClientFeatures:
    """The client's capabilities that change what the server does."""

    pull: bool = False
    refresh: bool = False
    watch_dynamic: bool = False
    relative_patterns: bool = False
    configuration: bool = False
    work_done: bool = False
    document_changes: bool = False
    resolve_edit: bool = False  # codeAction/resolve may fill in `edit`
    markdown: bool = True
    show_message: bool = True

    @classmethod
    def from_capabilities(cls, caps: types.ClientCapabilities | None) -> ClientFeatures:
        if caps is None:
            return cls()
        td = caps.text_document
        ws = caps.workspace
        window = caps.window
        pull_cap = td.diagnostic if td is not None else None
        refresh = bool(ws and ws.diagnostics and ws.diagnostics.refresh_support)
        watched = ws.did_change_watched_files if ws is not None else None
        hover = td.hover if td is not None else None
        action = td.code_action if td is not None else None
        resolvable = action.resolve_support.properties if action and action.resolve_support else []
        markdown = True
        if hover is not None and hover.content_format:
            markdown = types.MarkupKind.Markdown in hover.content_format
        return cls(
            pull=pull_cap is not None and refresh,
            refresh=refresh,
            watch_dynamic=bool(watched and watched.dynamic_registration),
            relative_patterns=bool(watched and watched.relative_pattern_support),
            configuration=bool(ws and ws.configuration),
            work_done=bool(window and window.work_done_progress),
            document_changes=bool(ws and ws.workspace_edit and ws.workspace_edit.document_changes),
            resolve_edit="edit" in (resolvable or []),
            markdown=markdown,
        )
