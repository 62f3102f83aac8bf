"""`ckpt-lsp --check` on real notebooks: findings per cell in every format, cross-cell bases,
magics, --fix changing only the fixed cell, malformed notebooks, discovery and the cache."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from ckpt_lsp.cli import main
from ckpt_lsp.notebook.writer import source_spans

from .conftest import nbformat

NotebookMaker = Callable[..., Path]


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--check", "--no-cache", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_text_names_the_cell_and_resolves_a_base_from_an_earlier_cell(
    notebook: NotebookMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook()
    code, out, err = check(capsys, "nb.ipynb")
    assert code == 1 and err == ""
    lines = out.splitlines()
    # cell 3 (markdown counts) row 5: the lock; its base Layer is in cell 1
    assert lines[0].startswith("nb.ipynb:cell 3:5:9: CKPT005 ")
    # cell 4 row 4: the model, defined in this notebook (__main__), saved whole
    assert lines[1].startswith("nb.ipynb:cell 4:4:1: CKPT014 ")
    assert len(lines) == 3


def test_json_has_the_cell_and_cell_relative_positions(
    notebook: NotebookMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    path = notebook()
    ids = [cell["id"] for cell in json.loads(path.read_text())["cells"]]
    code, out, _ = check(capsys, "--format", "json", "nb.ipynb")
    lock, save = json.loads(out)
    assert lock["cell"] == {"index": 3, "id": ids[2]}
    assert lock["location"] == {"row": 5, "column": 9}
    assert lock["end_location"] == {"row": 5, "column": 18}
    (edit,) = lock["fix"]["edits"]
    assert edit["cell"] == {"index": 3, "id": ids[2]}
    assert save["cell"]["index"] == 4 and save["code"] == "CKPT014"
    assert save["related"][0]["message"].startswith("cell 3: ")


def _json_row(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_sarif_points_at_the_notebook_json_and_names_the_cell(
    notebook: NotebookMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    path = notebook()
    _, out, _ = check(capsys, "--format", "sarif", "nb.ipynb")
    log = json.loads(out)
    assert log["version"] == "2.1.0"
    result = log["runs"][0]["results"][0]
    location = result["locations"][0]
    row = _json_row(path, "self.lock = threading.Lock()")
    assert location["physicalLocation"]["region"] == {"startLine": row, "endLine": row}
    assert location["physicalLocation"]["artifactLocation"]["uri"] == "nb.ipynb"
    assert {"name": "cell 3", "kind": "module"} in location["logicalLocations"]
    assert result["properties"]["cell"]["index"] == 3
    assert result["properties"]["cellRegion"]["startLine"] == 5


def test_github_annotation_on_the_json_row_with_the_cell_in_the_message(
    notebook: NotebookMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    path = notebook()
    _, out, _ = check(capsys, "--format", "github", "nb.ipynb")
    row = _json_row(path, "self.lock = threading.Lock()")
    first = out.splitlines()[0]
    assert first.startswith(f"::error file=nb.ipynb,line={row},endLine={row},title=CKPT005")
    assert "::cell 3:5:9: `self.lock`" in first


def test_magics_keep_rows_and_do_not_break_the_analysis(
    notebook: NotebookMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    cells = [
        ("code", "%%bash\necho 'class X: pass'\n"),
        ("code", "!pip install torch\nx = !ls\n?x\n%timeit 1\n" + "import threading"),
        (
            "code",
            "%%time\nfrom torch import nn\nclass M(nn.Module):\n    def __init__(self):\n"
            "        self.lock = threading.Lock()",
        ),
    ]
    notebook(cells)
    code, out, _ = check(capsys, "nb.ipynb")
    assert out.splitlines()[0].startswith("nb.ipynb:cell 3:5:9: CKPT005 ")


def _outside_sources(text: str, skip: int) -> list[str]:
    """The JSON text cut at every cell source but `skip`'s: all that must stay as it was."""
    spans = source_spans(text)
    pieces, done = [], 0
    for index, (start, end) in enumerate(spans):
        if index == skip:
            pieces.append(text[done:start])
            done = end
    pieces.append(text[done:])
    return pieces


def test_fix_changes_only_the_fixed_cell(
    notebook: NotebookMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    path = notebook()
    before = path.read_bytes()
    code, out, _ = check(capsys, "--diff", "nb.ipynb")
    assert path.read_bytes() == before
    assert "--- a/nb.ipynb:cell 3\n+++ b/nb.ipynb:cell 3\n" in out
    assert "+    def __getstate__(self):" in out
    code, out, _ = check(capsys, "--fix", "nb.ipynb")
    after = path.read_bytes()
    assert "1 fixed" in out
    # byte for byte: everything but cell 3's source (outputs, metadata, ids, layout, newline)
    assert _outside_sources(after.decode(), 2) == _outside_sources(before.decode(), 2)
    fixed = nbformat.reads(after.decode(), as_version=4)
    nbformat.validate(fixed)
    assert "__getstate__" in fixed.cells[2].source
    assert fixed.cells[2].outputs == nbformat.reads(before.decode(), as_version=4).cells[2].outputs
    code, out, _ = check(capsys, "nb.ipynb")
    assert "CKPT005" not in out  # the fix holds: only CKPT014 (no fix) remains
    assert "CKPT014" in out


def test_fix_keeps_a_string_source_a_string(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": "import threading\nfrom torch import nn\nclass M(nn.Module):\n"
                "    def __init__(self):\n        self.lock = threading.Lock()\n",
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 2,
    }
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps(nb, indent=2))
    code, _, _ = check(capsys, "--fix", "old.ipynb")
    data = json.loads(path.read_text())
    assert isinstance(data["cells"][0]["source"], str)
    assert "__setstate__" in data["cells"][0]["source"]
    assert path.read_text().startswith('{\n  "cells": [\n    {\n      "cell_type"')


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "nb.ipynb: not a notebook: invalid JSON"),
        ('{"nbformat": 3, "worksheets": []}', "nb.ipynb: nbformat 3 is not supported"),
        ("[1, 2]", "nb.ipynb: not a notebook: no `nbformat` version"),
        ('{"nbformat": 4, "cells": {}}', "nb.ipynb: not a notebook: `cells` is not a list"),
        (
            '{"nbformat": 4, "cells": [{"cell_type": "code", "source": 7}]}',
            "nb.ipynb: cell 1: source is neither a string nor a list of strings",
        ),
        (
            '{"nbformat": 4, "cells": [{"cell_type": "code", "source": ["a", 1]}]}',
            "nb.ipynb: cell 1: source is neither a string nor a list of strings",
        ),
        ('{"nbformat": 4, "cells": [3]}', "nb.ipynb: cell 1 is not an object"),
        ("\udcff", "nb.ipynb: not a notebook: not UTF-8 JSON"),
    ],
)
def test_malformed_notebooks_are_one_line_and_exit_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    (tmp_path / "nb.ipynb").write_bytes(text.encode("utf-8", "surrogateescape"))
    code, out, err = check(capsys, "nb.ipynb")
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {message}")
    assert "Traceback" not in err


def test_malformed_notebook_in_a_subprocess_has_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "bad.ipynb").write_text('{"nbformat": 4, "cells": [{"source": null}]}')
    proc = subprocess.run(
        [sys.executable, "-m", "ckpt_lsp", "--check", "--no-cache", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "error: bad.ipynb: cell 1: source is neither a string nor a list of strings\n"
    )


def test_discovery_takes_notebooks_and_honours_excludes(
    tmp_path: Path, notebook: NotebookMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook()
    (tmp_path / "drafts").mkdir()
    notebook(name="drafts/old.ipynb")
    (tmp_path / "pyproject.toml").write_text('[tool.ckpt-lsp]\nextend-exclude = ["drafts"]\n')
    _, out, _ = check(capsys, ".")
    assert "nb.ipynb:cell 3:5:9" in out and "drafts" not in out


def test_other_languages_and_cells_are_not_read(
    notebook: NotebookMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    cells = [("code", "library(ggplot2)\nx <- 1")]
    notebook(cells, language_info={"name": "R"})
    code, out, _ = check(capsys, "nb.ipynb")
    assert code == 0 and "All checks passed!" in out


def test_the_cache_answers_for_a_notebook_and_notices_a_change(
    notebook: NotebookMaker, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = notebook()
    first = main(["--check", "--format", "json", "nb.ipynb"])
    cold = capsys.readouterr().out
    assert first == 1 and (tmp_path / ".ckpt_cache").is_dir()
    assert main(["--check", "--format", "json", "nb.ipynb"]) == 1
    assert capsys.readouterr().out == cold  # cell positions come back from the cache too
    data = json.loads(path.read_text())
    data["cells"][2]["source"] = ["x = 1\n"]
    path.write_text(json.dumps(data, indent=1) + "\n")
    main(["--check", "nb.ipynb"])
    assert "CKPT005" not in capsys.readouterr().out


def test_a_syntax_error_names_its_cell(
    notebook: NotebookMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    cells = [
        ("markdown", "# x"),
        ("code", "from torch import nn"),
        ("code", "x = 1\nclass M(nn.Module):\n    def __init__(self:\n        self.f = open(x)"),
    ]
    notebook(cells)
    code, _, err = check(capsys, "nb.ipynb")
    assert code == 2
    assert err.startswith("error: nb.ipynb: syntax error at cell 3, line 2 ")
