"""openwit.loader — see README.md."""
