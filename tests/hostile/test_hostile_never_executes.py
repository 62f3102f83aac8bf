"""Nothing the checker reads is executed: not the analyzed modules, not the installed
packages it reads bases from (pure Python or C extensions), in the CLI or the server.
Every module here leaves a marker file behind when it is imported."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from hostile_rpc import RawServer
from test_hostile_files import run_cli

C_SOURCE = r"""
#include <Python.h>
#include <stdio.h>
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "cext_models", NULL, -1, NULL};
PyMODINIT_FUNC PyInit_cext_models(void) {
    FILE *f = fopen(MARKER, "w");
    if (f) fclose(f);
    return PyModule_Create(&def);
}
"""

TOUCH = "open({marker!r}, 'a').close()\n"


def build_extension(site: Path, marker: Path) -> bool:
    """A C extension whose import writes `marker`; False when no compiler is at hand."""
    cc = shutil.which("cc") or shutil.which("gcc")
    include = sysconfig.get_paths().get("include")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    if not cc or not include or not suffix or not (Path(include) / "Python.h").exists():
        return False
    source = site / "cext_models.c"
    source.write_text(C_SOURCE)
    result = subprocess.run(
        [
            cc,
            "-shared",
            "-fPIC",
            f"-I{include}",
            f'-DMARKER="{marker}"',
            str(source),
            "-o",
            str(site / f"cext_models{suffix}"),
        ],
        capture_output=True,
        timeout=120,
    )
    return result.returncode == 0


@pytest.fixture
def booby_trapped(tmp_path: Path) -> tuple[Path, Path, dict[str, str], bool]:
    """A project and an installed site whose every module marks its import."""
    marker = tmp_path / "EXECUTED"
    project, site = tmp_path / "proj", tmp_path / "site"
    (site / "evil_pkg" / "nn").mkdir(parents=True)
    project.mkdir()
    touch = TOUCH.format(marker=str(marker))
    (site / "evil_pkg" / "__init__.py").write_text(touch)
    (site / "evil_pkg" / "nn" / "__init__.py").write_text(touch + "from .layers import Layer\n")
    (site / "evil_pkg" / "nn" / "layers.py").write_text(
        touch + "import torch\n\n\nclass Layer(torch.nn.Module):\n    pass\n"
    )
    (site / "evil_pkg" / "nn" / "layers.pth").write_text(touch)
    compiled = build_extension(site, marker)
    (project / "helpers.py").write_text(
        touch + "import threading\n\n\ndef make_lock():\n    return threading.Lock()\n"
    )
    (project / "conftest.py").write_text(touch)
    (project / "model.py").write_text(
        touch
        + "import cext_models\n"
        + "from evil_pkg.nn import Layer\n"
        + "from helpers import make_lock\n\n\n"
        + "class Net(Layer):\n"
        + "    def __init__(self):\n"
        + "        super().__init__()\n"
        + "        self.lock = make_lock()\n\n\n"
        + "class Native(cext_models.Base):\n"
        + "    def __init__(self):\n"
        + "        self.fh = open('x')\n\n\n"
        + "class FromNative(cext_models.Layer):  # astroid is asked about a C extension\n"
        + "    def __init__(self):\n"
        + "        self.gen = (i for i in range(3))\n"
    )
    (project / "pyproject.toml").write_text(
        '[tool.ckpt-lsp]\nextend-model-bases = ["cext_models.Base"]\n'
    )
    env = {"PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "server"), str(site)])}
    return project, marker, env, compiled


def test_the_cli_never_imports_what_it_checks(booby_trapped) -> None:  # type: ignore[no-untyped-def]
    project, marker, env, compiled = booby_trapped
    for args in (
        ["--check", "--no-cache", "."],
        ["--check", "--no-cache", "--format", "json", "."],
        ["--check", "--no-cache", "--diff", "."],
        ["--check", "--no-cache", "--fix", "."],
    ):
        proc = run_cli(*args, cwd=project, env=env)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert not marker.exists(), f"{args} executed analyzed code"
    # the proof can fail: importing the modules does leave the marker
    probe = [
        sys.executable,
        "-c",
        "import evil_pkg.nn" + ("; import cext_models" if compiled else ""),
    ]
    # without torch installed the import fails, but only after the marker is left
    subprocess.run(probe, cwd=project, env={**os.environ, **env}, check=False, timeout=60)
    assert marker.exists()


def test_the_cli_flags_what_it_read_without_importing(booby_trapped) -> None:  # type: ignore[no-untyped-def]
    project, marker, env, _ = booby_trapped
    proc = run_cli("--check", "--no-cache", ".", cwd=project, env=env)
    assert "model.py:10:9: CKPT005" in proc.stdout, proc.stdout + proc.stderr
    assert "model.py:15:9: CKPT001" in proc.stdout  # the base named in the config
    assert "FromNative" not in proc.stdout  # an unreadable native base: not a model
    assert not marker.exists()


def test_the_server_never_imports_what_it_checks(booby_trapped) -> None:  # type: ignore[no-untyped-def]
    project, marker, env, _ = booby_trapped
    server = RawServer(project, env=env)
    try:
        server.initialize(project)
        path = project / "model.py"
        uri = server.open(path, path.read_text())
        params = server.wait_for(  # once the workspace is indexed, helpers.py counts
            lambda m: (
                m.get("method") == "textDocument/publishDiagnostics"
                and any(d["code"] == "CKPT005" for d in m["params"]["diagnostics"])
            ),
            timeout=60,
            what="the factory's lock",
        )["params"]
        actions = server.request(
            "textDocument/codeAction",
            {
                "textDocument": {"uri": uri},
                "range": {
                    "start": {"line": 10, "character": 0},
                    "end": {"line": 11, "character": 0},
                },
                "context": {"diagnostics": params["diagnostics"]},
            },
        )
        assert "result" in actions
        server.request("workspace/executeCommand", {"command": "ckpt-lsp.checkWorkspace"}, 60)
        assert server.shutdown_and_exit() == 0
    finally:
        server.close()
    assert not marker.exists()
