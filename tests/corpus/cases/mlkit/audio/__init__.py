"""Audio models."""

from .features import *  # noqa: F401,F403
from .encoders import SpecEncoder
