"""`python -m openwit.trainer` / `torchrun -m openwit.trainer`: the same as `openwit-train`."""
import sys

from openwit.trainer.cli import main

sys.exit(main())
