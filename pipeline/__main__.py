"""`python -m openwit.pipeline` = `openwit-build`."""
import sys

from openwit.pipeline.cli import main

sys.exit(main())
