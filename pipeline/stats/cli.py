"""`openwit-stats OUT_DIR`: write OUT_DIR/report/{stats.json, report.html, *.png} for built shards."""
from __future__ import annotations

import argparse
import logging

from openwit.common.errors import cli_main, setup_logging

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="openwit-stats",
        description="Statistics report for an openwit-build output folder (local, gs:// or s3://).",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder holding 00000.parquet + 00000_stats.json …")
    p.add_argument("--skip-bad-shards", action="store_true",
                   help="leave out committed shards whose Parquet or _stats.json cannot be read (logged, and "
                        "listed in stats.json under shards.skipped) instead of stopping")
    p.add_argument("--verbose", action="store_true", help="more logging")
    return p.parse_args(argv)


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    from openwit.common import layout
    from openwit.common.outdir import check_out
    from openwit.pipeline.stats import write_report

    check_out(layout.report_dir(args.out_dir))  # before reading every shard

    report = write_report(args.out_dir, skip_bad_shards=args.skip_bad_shards)
    log.info("report written to %s", report)
    print(f"{report}/report.html")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
