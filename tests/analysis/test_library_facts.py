"""The `[library]` facts of the catalog: loaded, and refused when malformed."""

from __future__ import annotations

import copy
import sys
from typing import Any

import pytest
from ckpt_lsp.catalog import DATA_FILE, CatalogError, library_facts, parse_library_facts

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10
    import tomli as tomllib


def _data() -> dict[str, Any]:
    with DATA_FILE.open("rb") as fh:
        return tomllib.load(fh)


def test_the_shipped_facts_load() -> None:
    facts = library_facts()
    assert "builtins.list" in facts.consuming
    assert facts.keeps_keywords <= facts.consuming
    assert "parameters" in facts.generator_methods
    assert facts.type_aliases["pathlib.PosixPath"] == "pathlib.Path"
    assert facts.dtype_positions["full"] == 2
    assert "numpy.object_" in facts.object_dtype_names
    assert "O" in facts.object_dtype_strings


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("library"), r"\[library\]"),
        (lambda d: d["library"].pop("mutators"), "library.mutators"),
        (lambda d: d["library"].__setitem__("mutators", "append"), "library.mutators"),
        (lambda d: d["library"].__setitem__("mutators", []), "library.mutators"),
        (lambda d: d["library"].__setitem__("mutator", ["append"]), "unknown keys"),
        (lambda d: d["library"]["keeps_keywords"].append("builtins.zip"), "keeps_keywords"),
        (lambda d: d["library"].__setitem__("type_aliases", {"a": 1}), "type_aliases"),
        (lambda d: d["object_array"].__setitem__("dtype_positions", {"full": "2"}), "dtype"),
    ],
)
def test_malformed_facts_are_refused(edit: Any, message: str) -> None:
    data = copy.deepcopy(_data())
    edit(data)
    with pytest.raises(CatalogError, match=message):
        parse_library_facts(data)
