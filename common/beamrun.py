"""Beam options for openwit's pipelines: offline-safe local default, everything else passed through.

Python Beam's DirectRunner first tries the Prism runner, which downloads a binary from the internet;
offline that hangs or fails. openwit's local default is therefore the FnApiRunner (the engine the
DirectRunner falls back to anyway); `--runner DirectRunner` is mapped to it as well. Set
OPENWIT_ALLOW_PRISM=1 to let Beam choose by itself. Every other option (`--runner DataflowRunner`,
`--project`, `--region`, `--temp_location`, `--setup_file`, ...) goes to Beam unchanged.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
from typing import Iterator, Sequence

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from openwit.common.local import is_local_runner

LOCAL_RUNNER = "FnApiRunner"
_FN_API_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"
log = logging.getLogger(__name__)


def pipeline_options(beam_args: Sequence[str], **overrides) -> PipelineOptions:
    """PipelineOptions from pass-through args, with the offline-safe local runner as default."""
    options = PipelineOptions(list(beam_args), **overrides)
    std = options.view_as(StandardOptions)
    if os.environ.get("OPENWIT_ALLOW_PRISM") != "1":
        if std.runner in (None, "DirectRunner", "FnApiRunner"):
            if std.runner == "DirectRunner":
                log.info("DirectRunner: running on its FnApiRunner engine (Prism would need a download)")
            std.runner = _FN_API_RUNNER
    return options


@contextlib.contextmanager
def new_pipeline(options: PipelineOptions) -> Iterator:
    """`beam.Pipeline(options=options)` for a `with` block that builds and runs it. Beam makes a
    folder in the system's temp dir for every Pipeline and removes it only in `run()`; a run refused
    before it starts (a failed check, a busy OUT) would leave it behind — the block removes it."""
    import apache_beam as beam

    p = beam.Pipeline(options=options)
    try:
        yield p
    finally:
        shutil.rmtree(p.local_tempdir, ignore_errors=True)


def is_local(options: PipelineOptions) -> bool:
    """True when the pipeline runs in this process (so local files and progress bars make sense)."""
    return is_local_runner(options.view_as(StandardOptions).runner)


def is_dry_run(options: PipelineOptions) -> bool:
    """True for `--dry_run=True`: the job is built (and checked) but never submitted, so there are
    no results, counters or output files to read afterwards."""
    from apache_beam.options.pipeline_options import TestOptions

    return bool(options.view_as(TestOptions).dry_run)


def counters(result, namespace: str) -> dict[str, int]:
    """A finished run's Beam counters of `namespace` by name, summed over the steps that share a
    name; committed values where the runner has them, else attempted."""
    from apache_beam.metrics.metric import MetricsFilter

    out: dict[str, int] = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(namespace))["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(value or 0)
    return dict(sorted(out.items()))
