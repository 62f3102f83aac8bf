"""`python -m ckpt_lsp` behaves exactly like the `ckpt-lsp` command."""

import sys

from ckpt_lsp.cli import main

if __name__ == "__main__":
    sys.exit(main())
