"""`openwit-stats OUT_DIR`: write OUT_DIR/report/{stats.json, report.html, *.png} for built shards."""
from __future__ import annotations

import argparse
import logging
import os

from openwit.common.errors import UserError, cli_main, setup_logging
from openwit.common.version import add_version_flag

log = logging.getLogger(__name__)
SUBFOLDER_DEPTH = 2  # how deep to look for the dataset when OUT_DIR itself holds no shard


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="openwit-stats",
        description="Statistics report for an openwit-build output folder (local, gs:// or s3://): "
                    "writes stats.json, report.html and PNG plots, and prints report.html's path.",
    )
    p.add_argument("out_dir", metavar="OUT_DIR",
                   help="the --out folder of an openwit-build run (it holds 00000.tar, 00000.parquet, "
                        "00000_stats.json, …)")
    p.add_argument("--report-dir", metavar="DIR",
                   help="write the report here instead (default: OUT_DIR/report)")
    p.add_argument("--skip-bad-shards", action="store_true",
                   help="leave out committed shards whose Parquet or _stats.json cannot be read (logged, and "
                        "listed in stats.json under shards.skipped) instead of stopping (default: stop)")
    p.add_argument("--verbose", action="store_true", help="more logging")
    return add_version_flag(p)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _datasets_below(folder: str, depth: int = SUBFOLDER_DEPTH) -> list[str]:
    """Sub-folders of a local `folder` (up to `depth` levels down, sorted) that hold committed shards."""
    from openwit.common import layout

    found, level = [], [folder]
    for _ in range(depth):
        below = []
        for parent in level:
            try:
                entries = sorted(e.path for e in os.scandir(parent) if e.is_dir() and not e.name.startswith("."))
            except OSError:
                continue
            below.extend(entries)
        found.extend(d for d in below if layout.list_shards(d)[0])
        if found:
            return found
        level = below
    return found


def check_dataset_folder(out_dir: str) -> None:
    """UserError when OUT_DIR does not exist, or holds no shard while a sub-folder does (names it)."""
    from openwit.common import layout
    from openwit.common.outdir import is_remote

    if is_remote(out_dir):
        return  # remote: the report's own "no shard files" error covers it
    if not os.path.exists(out_dir):
        raise UserError(f"{out_dir} does not exist (no such folder): give the --out folder of an openwit-build run")
    if not os.path.isdir(out_dir):
        raise UserError(f"{out_dir} is a file, not a folder: give the --out folder of an openwit-build run")
    if layout.list_shards(out_dir)[0]:
        return
    below = _datasets_below(out_dir)
    if below:
        more = f" (also {', '.join(below[1:3])}{' …' if len(below) > 3 else ''})" if len(below) > 1 else ""
        raise UserError(f"no shard files in {out_dir}, but its sub-folder {below[0]} holds a built dataset{more}: "
                        f"run openwit-stats {below[0]}")


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    from openwit.common import layout
    from openwit.common.outdir import check_out, display_path
    from openwit.pipeline.stats import write_report

    check_dataset_folder(args.out_dir)
    report_dir = args.report_dir or layout.report_dir(args.out_dir)
    check_out(report_dir, "--report-dir" if args.report_dir else "report folder")  # before reading every shard

    report = write_report(args.out_dir, skip_bad_shards=args.skip_bad_shards, report_dir=report_dir)
    log.info("report written to %s", report)
    path = layout.join(report, "report.html")
    print(display_path(path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
