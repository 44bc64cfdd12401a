"""`python -m openwit.loader` = `openwit-loader`."""
import sys

from openwit.loader.cli import main

sys.exit(main())
