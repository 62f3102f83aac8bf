"""frame_members: which `df.name` reads a column, against the installed pandas."""

from __future__ import annotations

import pytest
from ckpt_lsp.analysis.frame_members import FRAME_MEMBERS, reads_column


def test_every_member_of_the_installed_dataframe_is_listed() -> None:
    pd = pytest.importorskip("pandas", reason="pandas is not installed here")
    public = {name for name in dir(pd.DataFrame) if not name.startswith("_")}
    assert public - FRAME_MEMBERS == set()


@pytest.mark.parametrize(
    ("name", "column"),
    [("loss", True), ("hter", True), ("shape", False), ("columns", False), ("_data", False)],
)
def test_a_name_no_member_has_reads_a_column(name: str, column: bool) -> None:
    assert reads_column(name) is column
