"""`python -m simpleaided` runs the daemon, like the `simpleaided` command."""

from simpleaided.app.main import main

raise SystemExit(main())
