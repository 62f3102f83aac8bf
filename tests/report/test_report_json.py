"""The JSON contract: exact keys in a fixed order, 1-based positions, fixes, no file errors."""

from __future__ import annotations

import json
from pathlib import Path

from ckpt_lsp.report import render

KEYS = [
    "code",
    "message",
    "severity",
    "filename",
    "cell",
    "location",
    "end_location",
    "class",
    "attribute",
    "url",
    "fix",
    "related",
]


def test_contract_keys_and_values(tmp_path: Path, make_finding, file_error) -> None:
    finding = make_finding(
        code="CKPT004",
        filename="src/model.py",
        row=7,
        column=9,
        end_row=8,
        end_column=3,
        class_name="Net",
        attribute="table",
        message="`self.table` holds an object array",
    )
    out = render([finding], [file_error], "json", root=tmp_path)
    assert out.endswith("\n")
    data = json.loads(out)
    assert isinstance(data, list) and len(data) == 1  # the file error is not in the list
    (obj,) = data
    assert list(obj) == KEYS
    assert obj["cell"] is None  # a .py file; a notebook's finding names its cell
    assert obj == {
        "code": "CKPT004",
        "message": "`self.table` holds an object array",
        "severity": "warning",
        "filename": "src/model.py",
        "cell": None,
        "location": {"row": 7, "column": 9},
        "end_location": {"row": 8, "column": 3},
        "class": "Net",
        "attribute": "table",
        "url": finding.url,
        "fix": None,
        "related": [],
    }
    assert list(obj["location"]) == ["row", "column"]


def test_fix_shape(tmp_path: Path, make_finding, sample_fix) -> None:
    (obj,) = json.loads(render([make_finding(fix=sample_fix)], [], "json", root=tmp_path))
    assert list(obj["fix"]) == ["message", "edits"]
    assert obj["fix"]["message"] == sample_fix.message
    (edit,) = obj["fix"]["edits"]
    assert list(edit) == ["content", "location", "end_location"]
    assert edit == {
        "content": sample_fix.edits[0].content,
        "location": {"row": 20, "column": 1},
        "end_location": {"row": 20, "column": 1},
    }


def test_empty_list_and_order(tmp_path: Path, make_finding) -> None:
    assert json.loads(render([], [], "json", root=tmp_path)) == []
    findings = [make_finding(filename="b.py"), make_finding(filename="a.py", row=99)]
    data = json.loads(render(findings, [], "json", root=tmp_path))
    assert [d["filename"] for d in data] == ["a.py", "b.py"]


def test_filename_kept_as_given_and_unicode(tmp_path: Path, make_finding) -> None:
    finding = make_finding(filename="../other/ü.py", message="`self.ß` holds a lambda")
    out = render([finding], [], "json", root=tmp_path)
    assert "ü.py" in out and "\\u" not in out
    (obj,) = json.loads(out)
    assert obj["filename"] == "../other/ü.py"
