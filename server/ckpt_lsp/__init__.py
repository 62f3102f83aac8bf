"""ckpt-lsp: find model attributes that break checkpointing, statically."""

__version__ = "0.1.0"
