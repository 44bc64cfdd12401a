"""`python -m openwit.loader` = `openwit-loader`."""
import sys

from openwit.common.launch import run

sys.exit(run("openwit.loader.cli:main"))
