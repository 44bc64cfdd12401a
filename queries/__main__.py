"""`python -m openwit.queries`: same as the `openwit-queries` console script."""
import sys

from openwit.common.launch import run

sys.exit(run("openwit.queries.cli:main"))
