"""openwit.pipeline — see README.md."""
