"""python -m service ... is `rag ...` (the CLI lives on the top floor: it drives every package below)."""

from service.cli import main

main()
