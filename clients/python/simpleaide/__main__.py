"""``python -m simpleaide``: the ``simpleaide`` command."""

import sys

from simpleaide.cli import main

sys.exit(main())
