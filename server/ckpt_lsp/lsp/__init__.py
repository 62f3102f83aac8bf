"""The language server face of ckpt-lsp (pygls 2): diagnostics, code actions, hover."""
