"""The shared helpers: offline-safe Beam default, CLI error reporting, atomic writes, hashing."""
import logging
import os

import apache_beam as beam
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.testing.util import assert_that, equal_to

from openwit.common import atomic, beamrun, errors, hashing


def test_default_runner_is_offline_fnapi_and_runs():
    opts = beamrun.pipeline_options([])
    assert opts.view_as(StandardOptions).runner.endswith("FnApiRunner")
    assert beamrun.pipeline_options(["--runner", "DirectRunner"]).view_as(StandardOptions).runner.endswith("FnApiRunner")
    assert beamrun.pipeline_options(["--runner", "DataflowRunner"]).view_as(StandardOptions).runner == "DataflowRunner"
    with beam.Pipeline(options=opts) as p:
        doubled = p | beam.Create([1, 2, 3]) | beam.Map(lambda x: x * 2)
        assert_that(doubled, equal_to([2, 4, 6]))


def test_cli_main_turns_user_error_into_one_line(capsys):
    @errors.cli_main
    def main():
        raise errors.UserError("file x.bz2: truncated bz2 stream")

    assert main() == 2
    err = capsys.readouterr().err
    assert err == "error: file x.bz2: truncated bz2 stream\n"


class _CtrlC(beam.DoFn):
    def process(self, x):
        raise KeyboardInterrupt  # what SIGINT raises in the thread running the bundle


def test_ctrl_c_inside_a_beam_pipeline_is_one_line_and_130(capsys):
    """Beam re-raises Ctrl-C in a DoFn as `RuntimeError: KeyboardInterrupt [while running ...]` and
    logs it with a traceback; the CLI prints its one line instead and exits 130."""
    @errors.cli_main(interrupted="interrupted: the same command resumes")
    def main():
        errors.setup_logging()
        with beam.Pipeline(options=beamrun.pipeline_options([])) as p:
            _ = p | beam.Create([1]) | beam.ParDo(_CtrlC())

    assert main() == 130
    assert capsys.readouterr().err.splitlines()[-1] == "interrupted: the same command resumes"
    for exc in (KeyboardInterrupt(), RuntimeError("KeyboardInterrupt [while running 'WriteShard']")):
        record = logging.LogRecord("apache_beam.runners.common", logging.ERROR, __file__, 1, "x", None,
                                   (type(exc), exc, None))
        assert not errors._HideUserErrorTracebacks().filter(record)  # Beam's ERROR + traceback: hidden

    @errors.cli_main
    def plain():
        raise KeyboardInterrupt

    assert plain() == 130 and capsys.readouterr().err == "interrupted\n"
    assert not errors.is_interrupt(RuntimeError("bad row")) and errors.is_interrupt(
        RuntimeError("KeyboardInterrupt [while running 'FetchShards/WriteShard']"))


def test_find_user_error_in_beam_wrapped_text():
    wrapped = RuntimeError("Error while running stage: openwit.common.errors.UserError: bad file y\nTraceback ...")
    assert errors.find_user_error(wrapped) == "bad file y"


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "a.bin"
    try:
        with atomic.atomic_open(str(target)) as f:
            f.write(b"partial")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert not target.exists() and os.listdir(target.parent) == []
    atomic.atomic_write_bytes(str(target), b"whole")
    assert target.read_bytes() == b"whole" and os.listdir(target.parent) == ["a.bin"]


def test_hashing_is_deterministic_and_keyed():
    assert hashing.blake_hex("u", "c") == hashing.blake_hex("u", "c")
    assert len(hashing.blake_hex("u", "c")) == 32
    assert hashing.blake_hex("u", "c") != hashing.blake_hex("uc", "")
    assert hashing.uniform("a", key=1) != hashing.uniform("a", key=2)
    draws = [hashing.uniform(i, key=0) for i in range(20000)]
    assert 0 <= min(draws) and max(draws) < 1 and abs(sum(draws) / len(draws) - 0.5) < 0.01


def test_match_files_lists_and_fails_loudly(tmp_path, monkeypatch):
    """No match is an empty list; a listing that fails is a UserError naming the path — never
    mistaken for an empty folder (a resume check or a report would then silently see nothing)."""
    import pytest

    from openwit.common.files import match_files

    (tmp_path / "b.json").write_text("{}")
    (tmp_path / "a.json").write_text("{}")
    assert match_files(str(tmp_path / "*.json")) == [str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    assert match_files(str(tmp_path / "nothing" / "*.json")) == []
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookup (network)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(errors.UserError, match="no AWS credentials found"):  # at once, not after Beam's retries
        match_files("s3://openwit-test-bucket/out/*_stats.json")
    with pytest.raises(errors.UserError) as e:  # a listing that cannot run (no such file system)
        match_files("nosuchfs://bucket/out/*_stats.json")
    assert str(e.value).startswith("cannot list nosuchfs://bucket/out/*_stats.json: ")


def test_progress_lines_are_throttled_and_shared(caplog):
    import logging

    from openwit.common.progress import Progress, progress

    assert progress("x: test") is progress("x: test")
    p = Progress("reading", every=3600)
    with caplog.at_level(logging.INFO, logger="openwit.progress"):
        for _ in range(1000):
            p.add(pages=1)
        p.add(pages=0, mb=2.5)
    assert not caplog.records  # nothing before `every` seconds have passed
    assert p.line().startswith("reading: pages 1,000, mb 2.5 (") and p.line().endswith(" pages/s)")
    fast = Progress("reading", every=0)
    with caplog.at_level(logging.INFO, logger="openwit.progress"):
        fast.add(pages=3)
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["reading: pages 3"]
