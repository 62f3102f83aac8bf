"""mlkit: a small research code base (vision + text + tabular) used as a checker corpus."""

__version__ = "0.3.1"
