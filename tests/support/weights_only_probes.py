"""Importable classes for the weights-only catalog's probes (pickle needs a module path)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class RunConfig:
    lr: float = 0.1
    name: str = "run"


class RunState:
    def __init__(self) -> None:
        self.step = 3
        self.name = "run"
