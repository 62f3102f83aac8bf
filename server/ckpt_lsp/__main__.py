"""`python -m ckpt_lsp` behaves exactly like the `ckpt-lsp` command."""

from ckpt_lsp.cli import run

if __name__ == "__main__":
    run()
