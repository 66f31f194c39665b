"""`python -m callrec`: the command line (needs the `cli` extra)."""

from ._cli import main

raise SystemExit(main())
