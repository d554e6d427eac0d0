import sys

from ._cli import cli_main

sys.exit(cli_main())
