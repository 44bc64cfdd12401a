"""`python -m openwit.queries`: same as the `openwit-queries` console script."""
import sys

from openwit.queries.cli import main

sys.exit(main())
