"""A shard worker torn down mid-shard (Ctrl-C, SIGTERM, a failed bundle) commits nothing it had not
finished: closing the downloader fails the fetches still in flight, and a shard completed by such
failures would be committed with samples that never had their chance — and then skipped on resume."""
import argparse
import threading
import time

import pytest
from loopback_server import LoopbackServer

from openwit.common.hashing import blake_hex
from openwit.pipeline.shards import shard_config
from openwit.pipeline.shards.builder import ShardBuilder


@pytest.mark.parametrize("workers", [1, 2])  # image threads in-process, image worker processes
def test_close_mid_shard_commits_nothing(tmp_path, workers):
    with LoopbackServer() as srv:
        urls = [srv.url(f"/gen/{20 + i}x20.png") for i in range(5)] + [srv.url("/slow-headers/20/gen/9x9.png")]
        items = [(i, {"url": u, "caption": f"c{i}", "uid": blake_hex(u), "query_ids": [0]}) for i, u in enumerate(urls)]
        args = argparse.Namespace(image_size=16, allow_private_addresses=True, retries=0, timeout=30,
                                  samples_per_shard=len(urls), out=str(tmp_path), workers=workers)
        builder = ShardBuilder(shard_config(args, local=True))
        done = threading.Semaphore(0)
        future = builder.submit(0, items, on_sample=lambda s: done.release())
        for _ in range(5):  # every URL but the slow one attempted
            assert done.acquire(timeout=30)
        start = time.monotonic()
        builder.close()  # as DoFn.teardown does when the run is interrupted
        assert time.monotonic() - start < 10  # the slow URL's 20 s are not waited for
    assert not list(tmp_path.glob("00000*")), sorted(p.name for p in tmp_path.iterdir())  # nothing committed
    assert future.cancelled()  # abandoned, not written
