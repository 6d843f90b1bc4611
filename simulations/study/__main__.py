"""``python -m simulations.study ...`` = ``tradeoffs study ...``, without importing the
other subcommands (a faster start for the server)."""

import sys

from simulations.cli import main

sys.exit(main(["study", *sys.argv[1:]], modules=["simulations.study.cli"]))
