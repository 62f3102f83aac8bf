"""speechbrain.nnet.CNN.Conv1d cut down to its weight_norm flag, importable so pickle can
find the class (the runtime truth of tests/analysis/test_init_conditions.py)."""

from __future__ import annotations

from torch import nn


class Conv1d(nn.Module):
    def __init__(self, weight_norm: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 2, 3)
        if weight_norm:
            self.conv = nn.utils.parametrizations.weight_norm(self.conv)
