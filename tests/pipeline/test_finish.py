"""openwit-build's final summary as a pure function: shard ranges, and what a remote run says."""
import json
import time

from openwit.common.beamrun import pipeline_options
from openwit.pipeline.finish import shard_ranges, summary_lines


def test_shard_ranges():
    assert shard_ranges([5, 0, 1, 2]) == "00000-00002, 00005"
    assert shard_ranges(list(range(0, 40, 2)), shown=3) == "00000, 00002, 00004, …"


def test_a_remote_run_points_to_the_report_commands(tmp_path):
    (tmp_path / "candidate_counts.json").write_text(json.dumps({
        "inputs": {"files": 2, "bad_files": 0}, "records_read": 9, "extracted": 8, "extract_drops": {"empty": 1},
        "unique": 8, "duplicates": 0, "matched": 5, "no_match": 3, "kept": 5, "balanced_out": 0}))
    options = pipeline_options(["--runner", "DataflowRunner", "--project", "p"])
    lines = summary_lines(str(tmp_path), options, None, time.time() - 75, "all", {}, None, None)
    assert lines[0] == f"openwit-build: done in 1 min 15 s → {tmp_path}"
    assert lines[1].startswith("candidates: 2 input files, 9 records read → 8 extracted")
    assert lines[2] == "  dropped: at extraction empty 1; no query matched 3"
    assert lines[3] == "shards: 0 written, 0 skipped, 0 failed"
    assert lines[-1].startswith(f"report and tokenizer: not made for a remote run; make them with: openwit-stats "
                                f"{tmp_path}")
