"""The `digest` command's entry point (and `python -m digest`'s): the CLI, with a Ctrl-C
that comes while it loads answered as one that comes later is, in one line. Loading
`digest.cli` and the libraries behind it takes a second or two, and a KeyboardInterrupt
raised meanwhile printed a traceback from whichever module was being imported."""

from __future__ import annotations

import sys


def run() -> None:
    try:
        from digest.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("Error: interrupted (Ctrl-C) while starting; nothing was done\n")
        raise SystemExit(130) from None
    main()
