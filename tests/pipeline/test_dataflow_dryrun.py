"""The shard stage builds a Dataflow job (`--runner DataflowRunner --setup_file ./setup.py`) offline.

`--dry_run=True --no_auth` makes Beam's DataflowRunner stop right before submitting: the pipeline is
translated, the setup.py sdist is built (`python -m build --no-isolation` / `setup.py sdist`,
no index access), the job message is made, nothing is sent (bucket names must be valid, 3+ characters: an invalid temp/staging location
makes Beam try to create a default bucket online). Every non-loopback connection from
this process is refused during the test, so a silent network dependency fails it instead of hanging.
"""
import argparse
import socket
from pathlib import Path

import apache_beam as beam
import pytest

from openwit.common.beamrun import pipeline_options
from openwit.common.hashing import blake_hex
from openwit.pipeline.shards import FetchShards, run_shards, shard_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_network(monkeypatch):
    """Refuse every connection that is not to loopback (raise at once: no hang, no silent use)."""
    attempts = []
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and (host.startswith("127.") or host in ("::1", "localhost")):
            return real_connect(self, address)
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        attempts.append(address)
        raise OSError(f"network disabled in this test: {address}")

    real_getaddrinfo = socket.getaddrinfo

    def guarded_dns(host, *args, **kwargs):
        if host in (None, "localhost") or str(host).startswith("127.") or host == "::1":
            return real_getaddrinfo(host, *args, **kwargs)
        attempts.append(host)
        raise socket.gaierror(f"network disabled in this test: {host}")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_dns)
    for var in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    return attempts


def _args(out: str) -> argparse.Namespace:
    return argparse.Namespace(out=out, samples_per_shard=2, seed=0, image_size=64, retry_failed=False)


def _beam_args(tmp_path) -> list[str]:
    return ["--runner", "DataflowRunner", "--dry_run=True", "--no_auth", "--project", "openwit-test", "--region", "us-central1",
            "--temp_location", "gs://openwit-dryrun/tmp", "--staging_location", "gs://openwit-dryrun/staging",
            "--setup_file", str(ROOT / "setup.py")]


CANDS = [{"url": f"http://example.test/{i}.jpg", "caption": f"c{i}", "uid": blake_hex(str(i)),
          "query_ids": [i], "source": "t", "page_url": None} for i in range(5)]


@pytest.mark.timeout(240)
def test_dataflow_job_builds_offline(tmp_path, monkeypatch, no_network):
    monkeypatch.chdir(ROOT)
    options = pipeline_options(_beam_args(tmp_path))
    cfg = shard_config(_args("gs://openwit-dryrun/out"), local=False)
    assert not cfg.progress  # no in-process progress lines on Dataflow: Beam counters instead
    p = beam.Pipeline(options=options)
    _ = p | beam.Create(CANDS) | FetchShards(cfg)
    result = p.run()
    assert result.state == "DONE"  # dry run: built, not submitted
    job_pipeline = result.job.proto_pipeline  # what would be submitted
    steps = {t.unique_name for t in job_pipeline.components.transforms.values()}
    # the stage shows as labelled nested steps, not hand-prefixed flat ones
    assert {"FetchShards/Plan/ShardHash", "FetchShards/Plan/GroupBucket", "FetchShards/Plan/Rank",
            "FetchShards/Plan/GroupShard", "FetchShards/Check/CheckShard", "FetchShards/WriteShard"} <= steps
    staged = [d.role_payload for e in job_pipeline.components.environments.values() for d in e.dependencies]
    assert any(b"workflow.tar.gz" in payload for payload in staged)  # the setup.py sdist for the workers
    assert no_network == [], f"tried to reach the network: {no_network}"


@pytest.mark.timeout(240)
def test_run_shards_dry_run_touches_no_storage(monkeypatch, tmp_path, no_network):
    monkeypatch.chdir(ROOT)
    totals = run_shards(CANDS, "gs://openwit-dryrun/out", _args("gs://openwit-dryrun/out"), _beam_args(tmp_path))
    assert totals == {}  # nothing ran, nothing read back
    assert no_network == []


@pytest.mark.timeout(240)
def test_build_cli_dry_run_builds_the_whole_job(monkeypatch, tmp_path, capsys, no_network):
    """`openwit-build ... --runner DataflowRunner --dry_run=True`: candidates + shards, no storage, no traceback."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from openwit.pipeline import cli

    monkeypatch.chdir(ROOT)
    qdir = tmp_path / "queries"
    qdir.mkdir()
    pq.write_table(pa.table({"query": ["cat"], "source": ["unigram"], "score": [1.0]}), qdir / "queries.parquet")
    pq.write_table(pa.table({"url": ["http://example.test/1.jpg"], "caption": ["a cat"]}), tmp_path / "in.parquet")
    argv = ["--queries", str(qdir), "--input", str(tmp_path / "in.parquet"), "--out", "gs://openwit-dryrun/out",
            *_beam_args(tmp_path)]
    assert cli.main(argv) == 0
    assert "dry run: the job was built" in capsys.readouterr().out
    assert no_network == []


@pytest.mark.timeout(240)
def test_queries_cli_dry_run(monkeypatch, tmp_path, capsys, no_network, wordnet_dir):
    from openwit.queries import cli as queries_cli

    monkeypatch.chdir(ROOT)
    argv = ["--out", "gs://openwit-dryrun/queries", "--sources", "numeral,wordnet", "--wordnet-dir", str(wordnet_dir),
            *_beam_args(tmp_path)]
    assert queries_cli.main(argv) == 0
    assert "dry run: the job was built" in capsys.readouterr().out
    assert no_network == []
