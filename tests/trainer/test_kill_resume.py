"""kill -9 during training, then `--resume latest`: the same steps, the same batches and the same
weights as a run that was never interrupted (fp32, CPU)."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from openwit.trainer import checkpoint
from trainer_helpers import make_shards, metrics

pytestmark = pytest.mark.slow


def _cmd(shards, out, *extra):
    return [sys.executable, "-m", "openwit.trainer", "--train-data", shards, "--model", "tiny-vit", "--out", str(out),
            "--batch-size", "16", "--epochs", "3", "--workers", "1", "--warmup", "3", "--lr", "1e-3",
            "--log-every", "1", "--save-every", "2", "--keep-last", "2", "--seed", "3", "--resume", "latest", *extra]


def test_kill_9_then_resume_matches_uninterrupted(shared_data, tmp_path):
    shards = make_shards(tmp_path / "shards", shared_data, [40, 40, 24])  # 7 steps per epoch, 21 in all
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = tmp_path / "straight"
    subprocess.run(_cmd(shards, straight), check=True, env=env, capture_output=True, timeout=600)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(shards, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = killed / "checkpoints" / "step-00000010.pt"  # mid-epoch 1
    deadline = time.time() + 300
    while not target.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert target.exists()
    latest = checkpoint.load(str(killed))
    assert 10 <= latest["step"] < 21  # killed before the end
    for p in (killed / "checkpoints").glob("step-*.pt"):
        checkpoint.load(str(p))  # every checkpoint under a final name is whole

    rerun = subprocess.run(_cmd(shards, killed), env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resumed from" in rerun.stderr and f"step {latest['step']}" in rerun.stderr
    ref = {r["step"]: r["loss"] for r in metrics(straight)}
    after = [r for r in metrics(killed) if r["step"] > latest["step"]]
    assert [r["step"] for r in after][-1] == 21
    for r in after:  # the batches after the resume are the uninterrupted run's: same losses
        assert abs(r["loss"] - ref[r["step"]]) < 1e-5, r["step"]
    a, b = checkpoint.load(str(straight))["model"], checkpoint.load(str(killed))["model"]
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=0, msg=k)
