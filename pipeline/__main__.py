"""`python -m openwit.pipeline` = `openwit-build`."""
import sys

from openwit.common.launch import run

sys.exit(run("openwit.pipeline.cli:main"))
