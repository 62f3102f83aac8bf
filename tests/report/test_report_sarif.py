"""SARIF 2.1.0: the fields GitHub code scanning reads, checked structurally."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ckpt_lsp
import pytest
from ckpt_lsp.findings import FileError
from ckpt_lsp.report import render
from ckpt_lsp.report.sarif import FINGERPRINT_KEY
from ckpt_lsp.rules import RULES


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def sarif(findings, errors, root: Path) -> dict[str, Any]:
    out = render(findings, errors, "sarif", root=root)
    assert out.endswith("\n")
    return json.loads(out)


def test_log_and_driver(tmp_path: Path) -> None:
    log = sarif([], [], tmp_path)
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "ckpt-lsp"
    assert driver["version"] == ckpt_lsp.__version__
    assert driver["semanticVersion"] == ckpt_lsp.__version__
    assert driver["informationUri"].startswith("https://")
    assert [r["id"] for r in driver["rules"]] == list(RULES)
    assert run["results"] == []
    assert run["columnKind"] == "unicodeCodePoints"
    assert run["invocations"] == [{"executionSuccessful": True, "toolExecutionNotifications": []}]
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.as_uri() + "/"


def test_rule_descriptors(tmp_path: Path) -> None:
    rules = sarif([], [], tmp_path)["runs"][0]["tool"]["driver"]["rules"]
    for descriptor, rule in zip(rules, RULES.values()):
        assert descriptor["id"] == rule.code
        assert descriptor["name"] == rule.name
        assert descriptor["shortDescription"]["text"] == rule.summary
        assert descriptor["fullDescription"]["text"].startswith(rule.summary)
        assert descriptor["helpUri"] == rule.url
        assert rule.url in descriptor["help"]["text"]
        assert rule.url in descriptor["help"]["markdown"]
        assert descriptor["defaultConfiguration"]["level"] == rule.severity
        assert isinstance(descriptor["properties"]["tags"], list)
    levels = {d["id"]: d["defaultConfiguration"]["level"] for d in rules}
    assert levels["CKPT004"] == "warning" and levels["CKPT001"] == "error"


def test_results(tmp_path: Path, make_finding) -> None:
    findings = [
        make_finding(filename="src/m.py", row=4, column=9, end_row=4, end_column=22),
        make_finding(
            code="CKPT004", filename="src/m.py", row=9, column=1, end_row=11, end_column=2
        ),
    ]
    run = sarif(findings, [], tmp_path)["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    first, second = run["results"]
    assert first["ruleId"] == "CKPT001"
    assert rules[first["ruleIndex"]]["id"] == "CKPT001"
    assert rules[second["ruleIndex"]]["id"] == "CKPT004"
    assert first["level"] == "error" and second["level"] == "warning"
    assert first["message"]["text"] == findings[0].message
    (location,) = first["locations"]
    physical = location["physicalLocation"]
    assert physical["artifactLocation"] == {"uri": "src/m.py", "uriBaseId": "%SRCROOT%"}
    assert physical["region"] == {"startLine": 4, "startColumn": 9, "endLine": 4, "endColumn": 22}
    assert second["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 9,
        "startColumn": 1,
        "endLine": 11,
        "endColumn": 2,
    }
    fingerprint = first["partialFingerprints"][FINGERPRINT_KEY]
    assert isinstance(fingerprint, str) and len(fingerprint) == 32


def test_fingerprint_survives_line_moves_but_not_identity_changes(
    tmp_path: Path, make_finding
) -> None:
    def fp(**kwargs: Any) -> str:
        run = sarif([make_finding(**kwargs)], [], tmp_path)["runs"][0]
        return run["results"][0]["partialFingerprints"][FINGERPRINT_KEY]

    base = fp(row=10)
    assert fp(row=50, column=1) == base
    assert fp(attribute="other") != base
    assert fp(class_name="Other") != base
    assert fp(code="CKPT003") != base
    assert fp(filename="src/other.py") != base
    # the same file named two ways is the same artifact
    assert fp(filename=str(tmp_path / "src" / "model.py")) == base


def test_uris_relative_to_root_and_encoded(tmp_path: Path, make_finding) -> None:
    root = tmp_path / "proj"
    findings = [
        make_finding(filename="proj/pkg/my model.py"),
        make_finding(filename="outside/x.py"),
    ]
    run = sarif(findings, [], root)["runs"][0]
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"] for r in run["results"]]
    assert {"uri": "pkg/my%20model.py", "uriBaseId": "%SRCROOT%"} in uris
    assert {"uri": (tmp_path / "outside" / "x.py").as_uri()} in uris


def test_information_and_hint_are_notes(tmp_path: Path, make_finding) -> None:
    findings = [make_finding(severity="information"), make_finding(severity="hint", row=20)]
    results = sarif(findings, [], tmp_path)["runs"][0]["results"]
    assert [r["level"] for r in results] == ["note", "note"]


def test_file_errors_are_notifications(tmp_path: Path, make_finding) -> None:
    errors = [FileError("src/broken.py", "invalid UTF-8 at byte 12")]
    run = sarif([make_finding()], errors, tmp_path)["runs"][0]
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is False
    (note,) = invocation["toolExecutionNotifications"]
    assert note["level"] == "error"
    assert "invalid UTF-8 at byte 12" in note["message"]["text"]
    artifact = note["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": "src/broken.py", "uriBaseId": "%SRCROOT%"}
    assert len(run["results"]) == 1  # findings of the other files are still reported
