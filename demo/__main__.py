"""`python -m openwit.demo` = `make demo`'s command."""
import sys

from openwit.common.launch import run

sys.exit(run("openwit.demo.run:main"))
