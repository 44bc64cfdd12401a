"""`make demo`'s default run, as a user meets it: the trained tiny CLIP is clearly above chance."""
import re
import time

import pytest

from openwit.demo import run as demo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


def test_default_demo_learns_above_chance(tmp_path, wordnet_dir, capsys):
    t0 = time.time()
    assert demo.main(["--out", str(tmp_path / "demo"), "--wordnet-dir", str(wordnet_dir)]) == 0
    tail = capsys.readouterr().out.split("demo done in", 1)[1]
    with capsys.disabled():
        print(f"\n[demo: {time.time() - t0:.0f} s]\n{tail}")
    top1 = {task: float(m) / 100 for task, m in re.findall(r"^  (shape|colour) +\d+ +\d+ +([\d.]+)%", tail, re.M)}
    assert top1["shape"] >= 0.35 and top1["colour"] >= 0.8, tail  # chance: 1/6 each
    r5 = [float(x) / 100 for x in re.findall(r"→ \w+ +R@1 +[\d.]+% +R@5 +([\d.]+)%", tail)]
    assert len(r5) == 2, tail
    assert min(r5) >= 0.3, tail  # chance ~6% on the held-out shard
