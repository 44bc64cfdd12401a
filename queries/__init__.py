"""openwit.queries — see README.md."""
