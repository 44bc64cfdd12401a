"""Old name of openwit.pipeline.shards.writer, kept only for tests/test_loader.py (owned by the loader
work, not moved in issue 9); delete once that test imports openwit.pipeline.shards.writer."""
from openwit.pipeline.shards.writer import *  # noqa: F401,F403
