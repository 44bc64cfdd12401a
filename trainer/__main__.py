"""`python -m openwit.trainer` / `torchrun -m openwit.trainer`: the same as `openwit-train`."""
import sys

from openwit.common.launch import run

sys.exit(run("openwit.trainer.cli:main"))
