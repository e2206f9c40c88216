"""``python -m rollcall``: the same as the ``rollcall`` command."""

import sys

from rollcall.cli.main import main

sys.exit(main())
