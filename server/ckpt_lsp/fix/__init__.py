"""The fix engine: keep unpicklable attributes out of a class's pickled state.

The public names live in `ckpt_lsp.fixes`; this package holds the parts.
"""
