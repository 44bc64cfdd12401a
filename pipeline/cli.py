"""`openwit-build`: candidates (extract → match → balance), then fetch → shards → report → tokenizer.

    openwit-build --queries DIR --input PATH_OR_GLOB [...] --out DIR [--stage candidates|all] [...]

Flags this parser does not know are Beam options and go to Beam unchanged (`--runner`, `--project`,
`--temp_location`, `--setup_file`, ...). `--stage all` feeds the balanced candidates to the shard
stage (`openwit.pipeline.shards.FetchShards`) in the same pipeline; what comes after the run (the
report, the tokenizer) is `openwit.pipeline.finish`.
"""
from __future__ import annotations

import argparse
import sys
import uuid
from typing import Sequence

import apache_beam as beam

from openwit.common import layout
from openwit.common.atomic import remove_tree
from openwit.common.beamrun import counters, is_dry_run, pipeline_options
from openwit.common.errors import UserError, cli_main, setup_logging
from openwit.common.outdir import check_out, out_lock
from openwit.pipeline.candidates import (NS, Candidates, commit_candidate_outputs, expand_inputs, load_queries,
                                         remove_stale_staging)
from openwit.pipeline.finish import finish_run
from openwit.pipeline.shards import FetchShards, add_shard_flags, candidates_check, stage_config


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="openwit-build", description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", required=True, help="folder with queries.parquet (or the file itself)")
    ap.add_argument("--input", required=True, nargs="+", metavar="PATH_OR_GLOB",
                    help="WARC/WAT files or url+caption tables (.parquet .csv .tsv .jsonl); local, gs://, s3://")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--stage", choices=("candidates", "all"), default="all",
                    help="stop after the candidates (default: run every stage)")
    ap.add_argument("--url-col", help="URL column of table inputs (default: recognised)")
    ap.add_argument("--caption-col", help="caption column of table inputs (default: recognised)")
    g = ap.add_argument_group("balancing")
    g.add_argument("--max-per-query", type=int, default=20_000, metavar="T", help="cap t per query (default 20000)")
    g.add_argument("--balance", choices=("metaclip", "exact"), default="metaclip",
                   help="metaclip: keep with prob. 1-Π(1-min(1,t/count)); exact: at most t per query")
    g.add_argument("--oversample", type=float, default=1.0, metavar="F",
                   help="balance at t·F to make up for fetch failures (success is often 50-70%%)")
    g.add_argument("--seed", type=int, default=0, help="seed of the keyed draws (same seed, same output)")
    add_shard_flags(ap, seed=False)
    ap.add_argument("--no-report", dest="report", action="store_false",
                    help="skip the stats report (OUT/report/) at the end")
    ap.add_argument("--tokenizer-vocab-size", type=int, default=32_000, metavar="N",
                    help="train a byte-level BPE of N tokens on the captions → OUT/tokenizer.json, which "
                         "openwit.loader uses by default (local runs; 0 = skip; default 32000)")
    ap.add_argument("--verbose", action="store_true", help="Beam's INFO logs too")
    return ap


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """(our args, Beam args) — unknown flags are Beam's."""
    args, beam_args = build_parser().parse_known_args(argv)
    if args.max_per_query < 1:
        raise UserError("--max-per-query must be at least 1")
    if args.tokenizer_vocab_size and args.tokenizer_vocab_size < 514:
        raise UserError("--tokenizer-vocab-size must be 0 (no tokenizer) or at least 514 (256 bytes × 2 + 2 specials)")
    if not args.oversample > 0:
        raise UserError("--oversample must be > 0 (e.g. 1.5 when about 2/3 of the URLs fetch)")
    return args, beam_args


def build_candidates(p: beam.Pipeline, args: argparse.Namespace, out: str | None = None) -> beam.PCollection:
    """Add extract → match → balance to `p`; writes `out`/candidates/*.parquet,
    `out`/query_counts.parquet and `out`/queries_meta.json (`out`: OUT's staging folder, default
    OUT) and returns the balanced candidates as dicts with the Parquet contract's fields (url,
    caption, query_ids, source, page_url, uid)."""
    files = expand_inputs(args.input)
    load_queries(args.queries)  # fail early and clearly on a missing or malformed list
    return p | "Candidates" >> Candidates(
        files, args.queries, out or args.out, url_col=args.url_col, caption_col=args.caption_col,
        max_per_query=args.max_per_query, mode=args.balance, oversample=args.oversample, seed=args.seed)


def summary(counts: dict[str, int]) -> str:
    main = ("input_files", "extracted", "duplicate", "matched", "no_match", "kept", "balanced_out", "bad_input_file")
    lines = ["candidates: " + ", ".join(f"{k} {counts.get(k, 0):,}" for k in main)]
    dropped = {k: v for k, v in sorted(counts.items()) if k not in main}
    if dropped:
        lines.append("dropped at extraction: " + ", ".join(f"{k} {v:,}" for k, v in dropped.items()))
    return "\n".join(lines)


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    """Check --out, take its lock, build and run the pipeline with the candidate outputs staged,
    commit them only when the run has passed every check (a refused run leaves OUT as it was)."""
    args, beam_args = parse_args(argv)
    setup_logging(args.verbose)
    check_out(args.out)
    options = pipeline_options(beam_args)
    staging = layout.staging_dir(args.out, uuid.uuid4().hex[:12])
    p = _pipeline(args, options, staging)  # every up-front check; nothing written yet
    if is_dry_run(options):
        p.run().wait_until_finish()
        print("dry run: the job was built and checked, nothing was submitted or written")
        return 0
    with out_lock(args.out):
        return _run_locked(p, staging, args, options)


def _pipeline(args: argparse.Namespace, options, staging: str) -> beam.Pipeline:
    """The whole job; the shard stage (or, with --stage candidates, its check of the candidates
    against committed shards) refuses a run that would mix with what OUT holds."""
    p = beam.Pipeline(options=options)
    candidates = build_candidates(p, args, staging)
    if args.stage == "all":
        _ = candidates | "FetchShards" >> FetchShards(stage_config(args, options))  # checks committed shards
    elif (check := candidates_check(args.out, options)) is not None:
        _ = candidates | "CheckCandidates" >> check
    return p


def _run_locked(p: beam.Pipeline, staging: str, args: argparse.Namespace, options) -> int:
    try:
        result = p.run()
        result.wait_until_finish()
        commit_candidate_outputs(staging, args.out)
        remove_stale_staging(args.out, keep=staging)
    finally:
        remove_tree(staging)  # a failed or refused run: only what it wrote itself
    counts = counters(result, NS)
    print(summary(counts))
    if args.stage == "all":
        finish_run(args.out, options, report=args.report, tokenizer_vocab_size=args.tokenizer_vocab_size)
    if counts.get("extracted", 0) == 0 and counts.get("bad_input_file", 0):
        raise UserError(f"no candidates extracted; {counts['bad_input_file']} bad input file(s), see the warnings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
