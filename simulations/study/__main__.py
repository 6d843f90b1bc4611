"""``python -m invariance_tradeoffs.simulations.study ...`` = ``tradeoffs study ...``,
without importing the other subcommands (a faster start for the server)."""

import sys

from invariance_tradeoffs.simulations.cli import main

sys.exit(main(["study", *sys.argv[1:]], modules=["invariance_tradeoffs.simulations.cli.study"]))
