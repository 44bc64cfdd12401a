"""`python -m openwit.demo` = `make demo`'s command."""
import sys

from openwit.demo.run import main

sys.exit(main())
