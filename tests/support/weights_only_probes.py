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


def warmup(step: int) -> float:
    """A module-level function: pickled by reference, a global the default load refuses."""
    return min(1.0, step / 100)
