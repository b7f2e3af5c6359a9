"""python -m eval ... is `rag eval ...`."""

import sys

from rag.cli import main

sys.argv = [sys.argv[0], "eval", *sys.argv[1:]]
main()
