"""The runner: a bug of ours on one file costs that file's findings, not the whole check."""

from __future__ import annotations

from pathlib import Path

import pytest
from ckpt_lsp.analysis.analyzer import Analyzer
from ckpt_lsp.config import Config
from ckpt_lsp.runner import run_check

LOCKED = (
    "import threading\nfrom torch import nn\n\n\nclass Counter(nn.Module):\n"
    "    def __init__(self):\n        super().__init__()\n        self.lock = threading.Lock()\n"
)


def test_an_internal_error_on_one_file_is_one_line_and_the_others_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "model.py").write_text(LOCKED)
    (tmp_path / "bad.py").write_text(LOCKED.replace("Counter", "Other"))
    analyze = Analyzer.analyze

    def failing(self: Analyzer, filename: str, text: str, **kwargs: object) -> object:
        if Path(filename).name == "bad.py":
            raise KeyError("model.pool.images")
        return analyze(self, filename, text, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Analyzer, "analyze", failing)
    result = run_check([tmp_path], Config(root=tmp_path), use_cache=False, jobs=1)
    assert [Path(f.filename).name for f in result.findings] == ["model.py"]
    assert len(result.errors) == 1
    error = result.errors[0]
    assert Path(error.filename).name == "bad.py"
    assert error.message == "internal error, not checked: KeyError: 'model.pool.images'"


def test_a_package_checked_from_outside_its_project_resolves_its_own_imports(
    tmp_path: Path,
) -> None:
    """The working directory's project is elsewhere (the config root): the checked
    package's absolute imports still resolve, so a base class in a sibling module makes
    the subclass a model, as when the package is checked from its own folder."""
    here = tmp_path / "here"
    here.mkdir()
    (here / "pyproject.toml").write_text("")
    lib = tmp_path / "away" / "lib"
    lib.mkdir(parents=True)
    (lib / "__init__.py").write_text("")
    (lib / "base.py").write_text("from torch import nn\n\n\nclass Base(nn.Module):\n    pass\n")
    (lib / "model.py").write_text(
        "import threading\nfrom lib.base import Base\n\n\nclass Counter(Base):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.lock = threading.Lock()\n"
    )
    outside = run_check([lib], Config(root=here), use_cache=False, jobs=1)
    inside = run_check([lib], Config(root=tmp_path / "away"), use_cache=False, jobs=1)
    assert [(Path(f.filename).name, f.attribute) for f in outside.findings] == [
        ("model.py", "lock")
    ]
    assert [(f.code, f.location) for f in outside.findings] == [
        (f.code, f.location) for f in inside.findings
    ]
