"""``python -m surfaces``: the same as the ``surfaces`` command."""

from surfaces.cli import main

raise SystemExit(main())
