"""Training logs: a progress line every N steps, `OUT/metrics.jsonl`, TensorBoard events if installed."""
from __future__ import annotations

import json
import logging
import os
import time

log = logging.getLogger("openwit.train")


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Window:
    """Sums over the steps since the last log line: wall time, time waiting for data, samples."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.start, self.data_wait, self.samples, self.steps = time.perf_counter(), 0.0, 0, 0
        self.losses: list[float] = []

    def add(self, data_wait: float, samples: int, loss: float | None) -> None:
        self.data_wait += data_wait
        self.samples += samples
        self.steps += 1
        if loss is not None:
            self.losses.append(loss)

    def mean_loss(self) -> float:
        return sum(self.losses) / len(self.losses) if self.losses else float("nan")

    def rates(self) -> tuple[float, float]:
        """(samples/s, fraction of wall time spent waiting for the loader)."""
        wall = max(time.perf_counter() - self.start, 1e-9)
        return self.samples / wall, min(1.0, self.data_wait / wall)


class MetricsLog:
    """Appends one JSON object a line to OUT/metrics.jsonl (main rank only) and mirrors scalars to
    TensorBoard when `tensorboard` is installed. For an object-store OUT (gs://, s3://) the lines are
    kept and the whole file is rewritten by `flush()` (called at each checkpoint and at the end)."""

    def __init__(self, out: str | None, enabled: bool = True):
        self.remote = bool(out) and "://" in out
        self.path = None
        if out and enabled:
            self.path = out.rstrip("/") + "/metrics.jsonl" if self.remote else os.path.join(out, "metrics.jsonl")
        self.lines: list[str] = []
        self.tb = None
        if self.path and not self.remote:
            os.makedirs(out, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(os.path.join(out, "tensorboard"))
            except ImportError:  # tensorboard not installed: JSONL only
                self.tb = None

    def write(self, record: dict) -> None:
        if not self.path:
            return
        line = json.dumps(record, sort_keys=True) + "\n"
        if self.remote:
            self.lines.append(line)
        else:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
        if self.tb is not None:
            step = record.get("step", 0)
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "step":
                    self.tb.add_scalar(("eval/" if record.get("kind") == "eval" else "train/") + k, v, step)
            self.tb.flush()

    def flush(self) -> None:
        if self.path and self.remote:
            from openwit.trainer.checkpoint import write_atomic

            write_atomic(self.path, "".join(self.lines).encode())

    def close(self) -> None:
        self.flush()
        if self.tb is not None:
            self.tb.close()


def progress_line(step: int, total: int, epoch: int, rate: float, world: int, wait: float, loss: float,
                  lr: float, scale: float, eta_s: float, unit: str = "GPU") -> str:
    """One progress line; the rate per `unit` (GPU, or process on CPU) only when there are several."""
    each = f" ({rate / world:,.1f}/{unit})" if world > 1 else ""
    return (f"step {step:,}/{total:,} (epoch {epoch}) | {rate:,.1f} samples/s{each} | "
            f"data wait {wait:.0%} | loss {loss:.4f} | lr {lr:.2e} | logit scale {scale:.2f} | ETA {_duration(eta_s)}")
