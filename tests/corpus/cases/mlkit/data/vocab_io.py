"""A vocabulary file reader.  Not a model itself, but models keep one around."""

import os


class VocabFile:
    """Reads one token per line, on demand."""

    def __init__(self, path=os.devnull):
        self.path = path
        self.handle = open(path)

    def tokens(self):
        self.handle.seek(0)
        return [line.strip() for line in self.handle]


NOT_BUILT = {"VocabFile": "plain helper, out of scope on its own and it does not pickle; text.py models hold one"}
