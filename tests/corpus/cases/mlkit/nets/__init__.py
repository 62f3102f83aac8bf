"""Network building blocks; the public names are re-exported here."""

from .base import DEFAULT_WIDTH, Layer, StatefulLayer
from .blocks import ConvBlock, ResidualBlock

__all__ = ["DEFAULT_WIDTH", "ConvBlock", "Layer", "ResidualBlock", "StatefulLayer"]
