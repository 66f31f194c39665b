"""`python -m callrec.testing`: run the fake server in the foreground."""

from ._cli import main

raise SystemExit(main())
