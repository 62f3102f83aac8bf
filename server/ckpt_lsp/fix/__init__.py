"""The fix engine: keep unpicklable attributes out of a class's pickled state.

The public names live in `ckpt_lsp.fixes`; this package holds the parts:
`source` (the analysis's module facts, the class a target names, its bases),
`protocol` (the shapes of an existing __getstate__/__setstate__), `recreate` (what
__setstate__ can build again), `block` (the class's block under libcst),
`planner` (one class's edits), `engine` (the API, validation, edits), `text`.
"""
