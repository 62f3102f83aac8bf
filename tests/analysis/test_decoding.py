"""The project index reads files from disk with the CLI's decoder (PEP 263 cookie, BOM).

A base class in a Latin-1 module with a coding cookie is a base like any other: a bare
UTF-8 decode failed on it, the index left the module out, and a model deriving from it
was not recognized as one.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest
from ckpt_lsp.analysis.analyzer import Analyzer
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.config import Config
from ckpt_lsp.source import SourceError, read_source_text

BASE = '# -*- coding: latin-1 -*-\nimport torch.nn as nn\n\n\nclass Base(nn.Module):\n    """Café."""\n'
MODEL = (
    "from base import Base\n\n\nclass Model(Base):\n"
    "    def __init__(self, p):\n        super().__init__()\n        self.f = open(p)\n"
)

ENCODED = {
    "latin-1 cookie": BASE.encode("latin-1"),
    "utf-8 bom": codecs.BOM_UTF8 + BASE.replace("# -*- coding: latin-1 -*-\n", "").encode(),
}


@pytest.mark.parametrize("name", sorted(ENCODED))
def test_the_index_decodes_as_python_does(tmp_path: Path, name: str) -> None:
    (tmp_path / "base.py").write_bytes(ENCODED[name])
    (tmp_path / "model.py").write_text(MODEL)
    index = ProjectIndex(tmp_path)
    assert index.scan([tmp_path / "base.py", tmp_path / "model.py"]) == []
    findings = Analyzer(Config(root=tmp_path), index).analyze("model.py", MODEL).findings
    assert [(f.class_name, f.attribute) for f in findings] == [("Model", "f")]


def test_an_undecodable_file_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_bytes(b"x = '\xff'\n")
    with pytest.raises(SourceError, match="not valid UTF-8"):
        read_source_text(path)
    errors = ProjectIndex(tmp_path).scan([path])
    assert [p for p, _ in errors] == [str(path)]
