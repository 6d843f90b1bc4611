import sys

from invariance_tradeoffs.simulations.cli import main

sys.exit(main())
