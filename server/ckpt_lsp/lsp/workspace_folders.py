"""The workspace folders, each a project with its own settings and config.

A file belongs to the innermost folder that holds it; a file outside every folder
belongs to one shared "loose" project. Settings changes and pyproject.toml edits
reconfigure the projects they can affect and say whether anything changed, so the
caller can re-check the open files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.uris import to_fs_path

from ckpt_lsp.lsp.client_features import ClientFeatures
from ckpt_lsp.lsp.editor_settings import EditorSettings, pull_settings
from ckpt_lsp.lsp.file_paths import is_within, norm_path
from ckpt_lsp.lsp.folder_project import Project
from ckpt_lsp.lsp.logs import show_message

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

log = logging.getLogger("ckpt_lsp.lsp")


class WorkspaceFolders:
    """Folder path -> project, the loose project, and the editor settings they use."""

    def __init__(self, server: LanguageServer, client: ClientFeatures) -> None:
        self.server = server
        self.client = client
        self.settings = EditorSettings()
        self.projects: dict[str, Project] = {}  # folder path -> project
        self.loose: Project | None = None  # files outside every folder

    def project_for_path(self, path: str) -> Project:
        best: Project | None = None
        for project in self.projects.values():
            if project.contains(path) and (
                best is None or len(project.root or "") > len(best.root or "")
            ):
                best = project
        if best is not None:
            return best
        if self.loose is None:
            self.loose = Project.create(None)
            self.configure(self.loose)
        return self.loose

    def add_folder(self, uri: str) -> Project | None:
        path = to_fs_path(uri)
        if not path:
            return None
        root = norm_path(path)
        if root not in self.projects:
            project = Project.create(root)
            self.projects[root] = project
            self.configure(project)
        return self.projects[root]

    def remove_folder(self, uri: str) -> None:
        path = to_fs_path(uri)
        if path:
            self.projects.pop(norm_path(path), None)

    def all_projects(self) -> list[Project]:
        return list(self.projects.values()) + ([self.loose] if self.loose else [])

    def configure(self, project: Project) -> bool:
        """(Re)build a project's config; shows an error once. True when it changed."""
        before = (project.config, project.enabled)
        error = project.reconfigure(self.settings.for_folder(project.root))
        if error:
            log.error("%s", error)
            show_message(self.server, error, types.MessageType.Error)
        return (project.config, project.enabled) != before

    def apply_settings(self) -> bool:
        """Reconfigure every project from the current settings. True when any changed."""
        changed = False
        for project in self.all_projects():
            changed |= self.configure(project)
        return changed

    async def pull_settings(self) -> None:
        """Ask the client for the `ckpt-lsp` section, globally and per folder."""
        if not self.client.configuration:
            return
        await pull_settings(self.server, self.settings, list(self.projects))

    def config_file_changed(self, path: str) -> bool:
        """A pyproject.toml changed: re-read the configs of the projects it can affect.
        True when any changed."""
        directory = norm_path(Path(path).parent)
        changed = False
        for project in self.all_projects():
            root = project.root
            if root is None or is_within(root, directory) or is_within(directory, root):
                changed |= self.configure(project)
        return changed
