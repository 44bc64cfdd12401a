"""openwit.common.launch: a command's module is imported with the cyclic GC paused, then frozen."""
import gc
import subprocess
import sys

import pytest

from openwit.common.launch import load


@pytest.fixture
def probe_module(tmp_path, monkeypatch):
    """A module that records, while it is imported, whether the collector was running."""
    (tmp_path / "launch_probe.py").write_text(
        "import gc\nGC_DURING_IMPORT = gc.isenabled()\nJUNK = [[i] for i in range(1000)]\n"
        "def main():\n    return 7\n")
    (tmp_path / "launch_broken.py").write_text("import gc\nSEEN = gc.isenabled()\nraise ImportError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("launch_probe", "launch_broken"):
        sys.modules.pop(name, None)
    gc.unfreeze()
    gc.enable()


def test_load_pauses_the_collector_during_the_import_and_freezes_what_it_made(probe_module):
    gc.unfreeze()
    before = gc.get_freeze_count()
    main = load("launch_probe:main")
    assert main() == 7
    assert sys.modules["launch_probe"].GC_DURING_IMPORT is False
    assert gc.isenabled()
    assert gc.get_freeze_count() >= before + 1000  # the module's objects are out of later passes


def test_load_leaves_a_paused_collector_paused(probe_module):
    gc.disable()
    load("launch_probe:main")
    assert not gc.isenabled()


def test_a_failing_import_still_resumes_the_collector(probe_module):
    with pytest.raises(ImportError, match="boom"):
        load("launch_broken:main")
    assert gc.isenabled()


def test_python_m_shards_starts_through_the_launcher_and_the_package_stays_light():
    """`import openwit.pipeline.shards` no longer imports Beam (its names load on first use), so
    `python -m openwit.pipeline.shards` imports Beam inside launch.load; the names still import."""
    code = ("import sys, openwit.pipeline.shards as s; light = 'apache_beam' not in sys.modules; "
            "from openwit.pipeline.shards import FetchShards, add_shard_flags, read_marker_file, writer; "
            "print(light, 'apache_beam' in sys.modules, callable(add_shard_flags), sorted(s.__all__)[:2])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "True", "['CheckCandidates',", "'FetchShards']"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        import openwit.pipeline.shards as shards
        shards.nope
    help_text = subprocess.run([sys.executable, "-m", "openwit.pipeline.shards", "--help"], capture_output=True,
                               text=True, check=True).stdout
    assert "--candidates" in help_text


def test_ctrl_c_while_a_command_loads_exits_130_without_a_traceback(tmp_path):
    """Ctrl-C during the first second or two (Beam's or torch's import) ends the command as Ctrl-C
    later does: `interrupted`, exit status 130, no traceback through library internals."""
    (tmp_path / "launch_slow.py").write_text("raise KeyboardInterrupt\ndef main():\n    return 0\n")
    code = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); from openwit.common.launch import run; "
            "sys.exit(run('launch_slow:main'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (130, "interrupted\n")


def test_a_command_whose_import_needs_a_left_out_client_says_how_to_keep_it(tmp_path):
    """The build's early hook left the cloud clients out (common/lean.py) and the command's import needs
    one after all: one `error:` line naming OPENWIT_ALL_IMPORTS=1, exit status 2, no traceback."""
    (tmp_path / "launch_cloud.py").write_text("import google.cloud.storage\ndef main():\n    return 0\n")
    code = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); from openwit.common.launch import run; "
            "sys.exit(run('launch_cloud:main', 'openwit.common.lean:skip_cloud_clients'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: this run needs google.cloud.storage") and "OPENWIT_ALL_IMPORTS=1" in done.stderr
    assert "Traceback" not in done.stderr
