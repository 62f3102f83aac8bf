"""Workspace folders: which project a file belongs to, and when a config change matters."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from ckpt_lsp.lsp.client_features import ClientFeatures
from ckpt_lsp.lsp.workspace_folders import WorkspaceFolders


def _folders() -> WorkspaceFolders:
    server = SimpleNamespace(window_show_message=lambda params: None)
    return WorkspaceFolders(server, ClientFeatures())  # type: ignore[arg-type]


def test_a_file_belongs_to_the_innermost_folder(tmp_path: Path) -> None:
    inner = tmp_path / "pkg"
    inner.mkdir()
    folders = _folders()
    outer_project = folders.add_folder(tmp_path.as_uri())
    inner_project = folders.add_folder(inner.as_uri())
    assert folders.project_for_path(str(inner / "m.py")) is inner_project
    assert folders.project_for_path(str(tmp_path / "m.py")) is outer_project
    loose = folders.project_for_path("/elsewhere/m.py")
    assert loose.root is None and folders.all_projects()[-1] is loose
    folders.remove_folder(inner.as_uri())
    assert folders.project_for_path(str(inner / "m.py")) is outer_project


def test_settings_and_pyproject_changes_say_whether_anything_changed(tmp_path: Path) -> None:
    folders = _folders()
    project = folders.add_folder(tmp_path.as_uri())
    assert project is not None
    assert not folders.apply_settings()
    folders.settings.global_ = {"enable": False}
    assert folders.apply_settings() and not project.enabled
    assert not folders.config_file_changed(str(tmp_path / "pyproject.toml"))
    (tmp_path / "pyproject.toml").write_text(
        '[tool.ckpt-lsp]\nignore = ["CKPT001"]\n', encoding="utf-8"
    )
    assert folders.config_file_changed(str(tmp_path / "pyproject.toml"))
    assert not folders.config_file_changed(str(tmp_path.parent / "other" / "pyproject.toml"))
