"""SIGTERM (preemption) or Ctrl-C during training: the running step finishes, a checkpoint of it is
saved, the process exits 143 / 130, and `--resume latest` ends with the weights of a run that was
never interrupted (fp32, CPU). Ctrl-C reaches the whole process group, loader workers included."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from openwit.trainer import checkpoint
from openwit.trainer.stopping import StopSignals
from trainer_helpers import free_port, make_shards, metrics

def _cmd(shards, out):
    return [sys.executable, "-m", "openwit.trainer", "--train-data", shards, "--model", "tiny-vit", "--out", str(out),
            "--batch-size", "16", "--epochs", "2", "--workers", "2", "--warmup", "3", "--lr", "1e-3",
            "--log-every", "1", "--seed", "5", "--resume", "latest"]  # checkpoints: each epoch's end (step 7)


def _stop_after(cmd, out, env, step: int, send) -> subprocess.CompletedProcess:
    """Start training, wait until `step` is logged, `send(proc)` a signal, wait for the exit."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group, as a terminal's job
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if (out / "metrics.jsonl").exists() and any(r["step"] >= step for r in metrics(out)):
            break
        time.sleep(0.05)
    send(proc)
    stdout, stderr = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


@pytest.mark.slow
def test_sigterm_and_ctrl_c_save_the_step_and_resume_exactly(shared_data, tmp_path):
    shards = make_shards(tmp_path / "shards", shared_data, [40, 40, 24])  # 7 steps per epoch, 14 in all
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = tmp_path / "straight"
    subprocess.run(_cmd(shards, straight), check=True, env=env, capture_output=True, timeout=600)
    ref = {r["step"]: r["loss"] for r in metrics(straight)}

    for name, send, code in (
            ("ctrl-c", lambda p: os.killpg(p.pid, signal.SIGINT), 130),  # the group: loader workers too
            ("sigterm", lambda p: p.send_signal(signal.SIGTERM), 143)):  # the trainer only (torchrun's way)
        out = tmp_path / name
        stopped = _stop_after(_cmd(shards, out), out, env, 3, send)
        assert stopped.returncode == code, stopped.stderr[-3000:]
        state = checkpoint.load(str(out))
        at = state["step"]
        assert 3 <= at < 14 and at != 7, at  # a step no --save-every checkpoint was due at
        line = stopped.stderr.strip().splitlines()[-1]
        assert line == (f"stopped by {'SIGINT' if code == 130 else 'SIGTERM'} at step {at}: checkpoint "
                        f"{out / 'checkpoints' / f'step-{at:08d}.pt'}; the same command with --resume latest "
                        "continues from it"), stopped.stderr[-2000:]
        assert "Traceback" not in stopped.stderr

        rerun = subprocess.run(_cmd(shards, out), env=env, capture_output=True, text=True, timeout=600)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert f"resumed from {out / 'checkpoints' / f'step-{at:08d}.pt'}: step {at}" in rerun.stderr
        after = [r for r in metrics(out) if r["step"] > at]
        assert [r["step"] for r in after] == list(range(at + 1, 15))
        for r in after:  # the batches after the stop are the uninterrupted run's: same losses
            assert abs(r["loss"] - ref[r["step"]]) < 1e-5, (name, r["step"])
        a, b = checkpoint.load(str(straight))["model"], checkpoint.load(str(out))["model"]
        for k in a:
            torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=0, msg=k)


@pytest.mark.slow
def test_torchrun_sigterm_stops_every_rank_at_one_step(shared_data, tmp_path):
    """Preemption under torchrun: SIGTERM to the launcher reaches each trainer's process group (loader
    workers too); all ranks stop after the same step, its checkpoint holds both ranks' positions, and
    the resumed run ends with the uninterrupted run's weights."""
    shards = make_shards(tmp_path / "shards", shared_data, [40, 40, 24])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def cmd(out):
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                str(free_port()), "-m", "openwit.trainer", *_cmd(shards, out)[3:], "--batch-size", "8"]

    straight = tmp_path / "straight"
    subprocess.run(cmd(straight), check=True, env=env, capture_output=True, timeout=600)
    out = tmp_path / "preempted"
    stopped = _stop_after(cmd(out), out, env, 3, lambda p: p.send_signal(signal.SIGTERM))
    state = checkpoint.load(str(out))
    at = state["step"]
    assert 3 <= at < 14 and at != 7 and len(state["loader"]) == 2, at
    assert f"stopped by SIGTERM at step {at}: checkpoint" in stopped.stderr
    assert "DataLoader worker" not in stopped.stderr  # the loader workers outlived the group's SIGTERM
    rerun = subprocess.run(cmd(out), env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    a, b = checkpoint.load(str(straight)), checkpoint.load(str(out))
    assert b["step"] == a["step"] == 14
    for k in a["model"]:
        torch.testing.assert_close(b["model"][k], a["model"][k], atol=1e-6, rtol=0, msg=k)


def test_stop_signals_record_then_restore():
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as s:
        assert not s.requested
        os.kill(os.getpid(), signal.SIGTERM)  # recorded, not fatal
        os.kill(os.getpid(), signal.SIGINT)
        assert s.signum == signal.SIGTERM  # the first one is what the run reports
    assert signal.getsignal(signal.SIGTERM) is before
    with StopSignals() as s, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C twice: now
