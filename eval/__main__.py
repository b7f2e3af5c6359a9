"""python -m eval ... is `rag eval ...`."""

import sys

from service.cli import main

sys.argv = [sys.argv[0], "eval", *sys.argv[1:]]
main()
