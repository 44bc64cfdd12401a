"""common.lean: a local build imports Beam without the cloud clients, and only when it cannot need them."""
import importlib
import json
import subprocess
import sys

import pytest

from openwit.common.lean import needs_cloud_clients


@pytest.mark.parametrize("argv,needs", [
    (["--candidates", "c/*.parquet", "--out", "out"], False),
    (["--input", "http://h/a.parquet", "https://h/b.warc.gz", "file:///tmp/c.parquet", "--out", "o"], False),
    (["--runner", "DirectRunner", "--out", "o"], False),
    (["--out", "gs://bucket/wit"], True),                       # Beam's GCS filesystem
    (["--candidates=s3://bucket/c/*.parquet", "--out", "o"], True),
    (["--input", "GS://Bucket/x"], True),                       # schemes are case-insensitive
    (["--out", "memory://o"], True),                            # any other scheme: keep everything
    (["--temp_location=gs://b/tmp", "--out", "o"], True),        # Beam's own flags count too
    (["--runner", "DataflowRunner", "--out", "o"], True),
    (["--runner=apache_beam.runners.dataflow.DataflowRunner"], True),
])
def test_which_command_lines_may_need_a_cloud_client(argv, needs):
    assert needs_cloud_clients(argv) is needs


PROBE = """
import json, sys
from openwit.common import lean
skipped = lean.skip_cloud_clients(sys.argv[1:])
import openwit.pipeline.shards.stage  # Beam, through the shard stage, as a build imports it
from apache_beam.io.filesystems import FileSystems
from openwit.common.files import match_files
def served(scheme):
    try:
        return FileSystems.get_filesystem(scheme + "://bucket/x") is not None
    except ValueError:  # "Unable to get filesystem from specified path"
        return False
schemes = [s for s in ("gs", "s3") if served(s)]
print(json.dumps({"skipped": skipped, "google.cloud": sys.modules.get("google.cloud") is not None,
                  "schemes": schemes, "here": match_files(sys.argv[-1])}))
"""


def _probe(*argv: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_a_local_build_loads_beam_without_the_cloud_clients_and_still_reads_local_files(tmp_path):
    (tmp_path / "a.parquet").write_bytes(b"x")
    local = _probe("--out", str(tmp_path / "out"), str(tmp_path / "*.parquet"))
    assert local["skipped"] and not local["google.cloud"]
    assert "gs" not in local["schemes"]  # no GCS filesystem: what google-cloud-storage gives Beam
    assert local["here"] == [str(tmp_path / "a.parquet")]
    remote = _probe("--out", "gs://bucket/wit", str(tmp_path / "*.parquet"))  # gs:// on the command line
    assert remote["skipped"] == [] and remote["google.cloud"] and "gs" in remote["schemes"]


def test_a_run_that_needed_a_left_out_client_says_how_to_keep_it(monkeypatch):
    """Should a local build need a client after all, it says so in one line and names the switch,
    whether the import failed in the command's own code or inside Beam (which wraps it as text)."""
    from openwit.common.errors import find_user_error

    monkeypatch.setitem(sys.modules, "google.cloud", None)  # as skip_cloud_clients leaves it
    with pytest.raises(ModuleNotFoundError) as caught:  # a module under it (one no other test imported)
        importlib.import_module("google.cloud.openwit_probe")
    direct = find_user_error(caught.value)
    assert "google.cloud.openwit_probe" in direct and "OPENWIT_ALL_IMPORTS=1" in direct
    wrapped = RuntimeError(f"{caught.value!r} [while running 'FetchShards/WriteShard']")
    assert find_user_error(wrapped) == direct
    with pytest.raises(ModuleNotFoundError) as caught:  # the module itself: Python words it differently
        importlib.import_module("google.cloud")
    assert "OPENWIT_ALL_IMPORTS=1" in find_user_error(caught.value)
    monkeypatch.delitem(sys.modules, "google.cloud")  # not left out: an ordinary error, not ours to explain
    assert find_user_error(ModuleNotFoundError("No module named 'google.cloud.nothing'")) is None
