"""The language server under test: a real `python -m ckpt_lsp --stdio` process.

Each test gets a fresh server (pytest-lsp) and initializes it itself, because the
workspace folder, the client profile and the settings differ from test to test.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, LanguageClient
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

REPO = Path(__file__).resolve().parents[2]
SERVER_DIR = REPO / "server"


def _server_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(SERVER_DIR), env.get("PYTHONPATH", "")) if p
    )
    env.setdefault("PYTHONIOENCODING", "utf-8")
    return env


def _record_publish(client: LanguageClient, params: types.PublishDiagnosticsParams) -> None:
    """Keep every publication (with its version), not only the last per file."""
    client.diagnostics[params.uri] = params.diagnostics
    client.published.append(params)  # type: ignore[attr-defined]


def _record_refresh(client: LanguageClient, params: None) -> None:
    client.diagnostic_refresh_count += 1


def _record_registration(client: LanguageClient, params: types.RegistrationParams) -> None:
    client.registrations.extend(params.registrations)  # type: ignore[attr-defined]


def make_client() -> LanguageClient:
    client = LanguageClient(converter_factory=default_converter)
    client.published = []  # type: ignore[attr-defined]
    client.registrations = []  # type: ignore[attr-defined]
    features = dict(DEFAULT_CLIENT_FEATURES)
    features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = _record_publish
    features[types.WORKSPACE_DIAGNOSTIC_REFRESH] = _record_refresh
    features[types.CLIENT_REGISTER_CAPABILITY] = _record_registration
    register_lsp_features(client, features)
    return client


SERVER_CONFIG = ClientServerConfig(
    server_command=[sys.executable, "-m", "ckpt_lsp", "--stdio"],
    server_env=_server_env(),
    client_factory=make_client,
)


@pytest_lsp.fixture(config=SERVER_CONFIG)
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root
