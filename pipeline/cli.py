"""`openwit-build`: candidates (extract → match → balance), then fetch → shards → report → tokenizer.

    openwit-build --queries DIR --input PATH_OR_GLOB [...] --out DIR [--stage candidates|all] [...]

Flags this parser does not know are Beam options and go to Beam unchanged (`--runner`, `--project`,
`--temp_location`, `--setup_file`, ...). `--stage all` feeds the balanced candidates to the shard
stage (`openwit.pipeline.shards.FetchShards`) in the same pipeline; what comes after the run (the
tokenizer, the report, the final summary) is `openwit.pipeline.finish`. (The --help text is DESCRIPTION.)
"""
from __future__ import annotations

import argparse
import sys
import time
import uuid
from typing import Sequence

import apache_beam as beam

from openwit.common import layout
from openwit.common.atomic import remove_tree
from openwit.common.beamrun import counters, is_dry_run, is_local, new_pipeline, pipeline_options
from openwit.common.errors import UserError, cli_main, setup_logging
from openwit.common.outdir import check_out, clear_outputs, out_lock
from openwit.common.version import add_version_flag
from openwit.pipeline.candidates import (NS, Candidates, commit_candidate_outputs, expand_inputs, load_queries,
                                         remove_stale_staging)
from openwit.pipeline.extract import DEFAULT_RULES, ExtractRules, read_domain_list
from openwit.pipeline.extract.domains import domains_digest
from openwit.pipeline.finish import finish_run
from openwit.pipeline.shards import FetchShards, add_shard_flags, candidates_check, shard_config, stage_config

DESCRIPTION = """\
Build a CLIP-style image-text dataset: read WARC/WAT files or url+caption tables, keep the captions
that contain a query of the list (MetaCLIP's sub-string matching), balance them (at most about t per
query), download and resize the images into WebDataset shards, then write a statistics report and a
caption tokenizer into --out. Rerun the same command after a crash to resume.

    openwit-build --queries DIR --input PATH_OR_GLOB [...] --out DIR [--stage candidates|all] [...]

Flags this command does not know are Beam options and go to Beam unchanged (--runner DataflowRunner,
--project, --region, --temp_location, --setup_file, ...); by default the job runs on this machine.
"""


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="openwit-build", description=DESCRIPTION, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", required=True, metavar="DIR",
                    help="the query list: an openwit-queries --out folder, or its queries.parquet")
    ap.add_argument("--input", required=True, nargs="+", metavar="PATH_OR_GLOB",
                    help="WARC/WAT files or url+caption tables (.parquet .csv .tsv .jsonl, tables also .gz/.bz2); "
                         "files or globs, local, gs://, s3://")
    ap.add_argument("--out", required=True, metavar="DIR",
                    help="output folder for the shards, candidates/, report/ and tokenizer.json (local, gs://, "
                         "s3://); the same command again resumes in it")
    ap.add_argument("--overwrite", action="store_true",
                    help="start over: first remove what earlier openwit runs wrote into --out (shards, candidates/, "
                         "report/, tokenizer.json, ...); files openwit did not write stay (default: resume, and "
                         "refuse a run with other settings)")
    ap.add_argument("--stage", choices=("candidates", "all"), default="all",
                    help="candidates: stop once OUT/candidates/ is written; all: go on to download the images into "
                         "shards, then the report and the tokenizer (default all)")
    ap.add_argument("--url-col", metavar="C",
                    help="URL column of table inputs (default: recognised: URL as LAION, url as DataComp and "
                         "img2dataset)")
    ap.add_argument("--caption-col", metavar="C",
                    help="caption column of table inputs (default: recognised: TEXT as LAION, text as DataComp, "
                         "caption as img2dataset)")
    e = ap.add_argument_group("candidates")
    e.add_argument("--min-caption-chars", type=int, default=DEFAULT_RULES.min_caption_chars, metavar="N",
                   help=f"drop captions shorter than N characters as too_short "
                        f"(default {DEFAULT_RULES.min_caption_chars})")
    e.add_argument("--max-caption-chars", type=int, default=DEFAULT_RULES.max_caption_chars, metavar="N",
                   help=f"drop captions longer than N characters as too_long "
                        f"(default {DEFAULT_RULES.max_caption_chars})")
    e.add_argument("--exclude-domains", metavar="FILE",
                   help="a block list, one domain a line (# comments): image URLs on these domains or their "
                        "sub-domains are dropped as excluded_domain (default: none)")
    e.add_argument("--limit", type=int, metavar="N",
                   help="a trial run: only the first N balanced candidates (in the candidates files' order) go "
                        "on to download; every input is still read (default: all of them)")
    g = ap.add_argument_group("balancing")
    g.add_argument("--max-per-query", type=int, default=20_000, metavar="T",
                   help="t: about at most T candidates per query, MetaCLIP's cap (default 20000)")
    g.add_argument("--balance", choices=("metaclip", "exact"), default="metaclip",
                   help="metaclip: keep each candidate with probability 1-Π(1-min(1,t/count)) over its queries; "
                        "exact: at most t per query (default metaclip)")
    g.add_argument("--oversample", type=float, default=1.0, metavar="F",
                   help="balance at t·F to make up for downloads that fail (often 30-50%%) (default 1.0)")
    g.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed of the balancing draws and of the shard placement: same seed, same dataset (default 0)")
    add_shard_flags(ap, seed=False)
    ap.add_argument("--no-report", dest="report", action="store_false",
                    help="do not write OUT/report/ at the end (default: written on local runs; openwit-stats OUT "
                         "makes it at any time)")
    ap.add_argument("--tokenizer-vocab-size", type=int, default=32_000, metavar="N",
                    help="train a byte-level BPE of N tokens on the captions → OUT/tokenizer.json, which the loader "
                         "and openwit-train use by default; 0 skips it (default 32000; local runs: after a Dataflow "
                         "run use openwit-loader tokenizer train)")
    ap.add_argument("--verbose", action="store_true", help="Beam's INFO logs too (default: warnings and progress only)")
    return add_version_flag(ap)


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """(our args, Beam args) — unknown flags are Beam's."""
    args, beam_args = build_parser().parse_known_args(argv)
    if args.max_per_query < 1:
        raise UserError("--max-per-query must be at least 1")
    if args.tokenizer_vocab_size and args.tokenizer_vocab_size < 514:
        raise UserError("--tokenizer-vocab-size must be 0 (no tokenizer) or at least 514 (256 bytes × 2 + 2 specials)")
    if not args.oversample > 0:
        raise UserError("--oversample must be > 0 (e.g. 1.5 when about 2/3 of the URLs fetch)")
    if args.min_caption_chars < 1 or args.max_caption_chars < args.min_caption_chars:
        raise UserError(f"--min-caption-chars must be at least 1 and at most --max-caption-chars "
                        f"(got {args.min_caption_chars} and {args.max_caption_chars})")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1 (got {args.limit}); leave it out to take every candidate")
    return args, beam_args


def extract_rules(args: argparse.Namespace) -> tuple[ExtractRules, dict]:
    """The extraction rules of this run (the block list read now: a bad one stops the run before any
    work) and the candidate settings to record beside the balancing ones in OUT/queries_meta.json —
    only those not at their default, so folders built before these flags existed keep their bytes."""
    domains = read_domain_list(args.exclude_domains) if args.exclude_domains else []
    rules = ExtractRules(args.min_caption_chars, args.max_caption_chars, frozenset(domains))
    settings: dict = {}
    for key in ("min_caption_chars", "max_caption_chars"):
        if getattr(rules, key) != getattr(DEFAULT_RULES, key):
            settings[key] = getattr(rules, key)
    if args.exclude_domains:
        settings.update(exclude_domains=args.exclude_domains, exclude_domains_count=len(domains),
                        exclude_domains_sha256=domains_digest(domains))
    if args.limit:
        settings["limit"] = args.limit
    return rules, settings


def build_candidates(p: beam.Pipeline, args: argparse.Namespace, out: str | None = None) -> beam.PCollection:
    """Add extract → match → balance to `p`; writes `out`/candidates/*.parquet,
    `out`/query_counts.parquet and `out`/queries_meta.json (`out`: OUT's staging folder, default
    OUT) and returns the balanced candidates as dicts with the Parquet contract's fields (url,
    caption, query_ids, source, page_url, uid)."""
    files = expand_inputs(args.input)
    load_queries(args.queries)  # fail early and clearly on a missing or malformed list
    rules, settings = extract_rules(args)
    return p | "Candidates" >> Candidates(
        files, args.queries, out or args.out, url_col=args.url_col, caption_col=args.caption_col,
        max_per_query=args.max_per_query, mode=args.balance, oversample=args.oversample, seed=args.seed,
        rules=rules, limit=args.limit, settings=settings)


@cli_main(interrupted="interrupted: committed shards are kept; the same command resumes")
def main(argv: Sequence[str] | None = None) -> int:
    """Check --out, take its lock, build and run the pipeline with the candidate outputs staged,
    commit them only when the run has passed every check (a refused run leaves OUT as it was).
    With --overwrite, every check that does not need OUT comes first, then (holding the lock)
    openwit's earlier outputs are removed and the run starts over."""
    started = time.time()
    args, beam_args = parse_args(argv)
    setup_logging(args.verbose)
    check_out(args.out)
    options = pipeline_options(beam_args)
    staging = layout.staging_dir(args.out, uuid.uuid4().hex[:12])
    if args.overwrite and not is_dry_run(options):
        _checks_before_overwrite(args, options)
        with out_lock(args.out), new_pipeline(options) as p:
            clear_outputs(args.out)
            _build(p, args, options, staging)
            return _run_locked(p, staging, args, options, started)
    with new_pipeline(options) as p:
        _build(p, args, options, staging)  # every up-front check; nothing written yet
        if is_dry_run(options):
            p.run().wait_until_finish()
            print("dry run: the job was built and checked, nothing was submitted or written")
            return 0
        with out_lock(args.out):
            return _run_locked(p, staging, args, options, started)


def _checks_before_overwrite(args: argparse.Namespace, options) -> None:
    """What _pipeline checks, except OUT's committed shards (they are about to go): inputs, the
    query list, the block list and the shard settings; a mistake stops the run before anything is
    removed."""
    expand_inputs(args.input)
    load_queries(args.queries)
    extract_rules(args)
    if args.stage == "all":
        shard_config(args, local=is_local(options))


def _build(p: beam.Pipeline, args: argparse.Namespace, options, staging: str) -> None:
    """The whole job into `p`; the shard stage (or, with --stage candidates, its check of the
    candidates against committed shards) refuses a run that would mix with what OUT holds."""
    candidates = build_candidates(p, args, staging)
    if args.stage == "all":
        _ = candidates | "FetchShards" >> FetchShards(stage_config(args, options))  # checks committed shards
    elif (check := candidates_check(args.out, options)) is not None:
        _ = candidates | "CheckCandidates" >> check


def _run_locked(p: beam.Pipeline, staging: str, args: argparse.Namespace, options, started: float) -> int:
    try:
        result = p.run()
        result.wait_until_finish()
        commit_candidate_outputs(staging, args.out)
        remove_stale_staging(args.out, keep=staging)
    finally:
        remove_tree(staging)  # a failed or refused run: only what it wrote itself
    counts = counters(result, NS)
    finish_run(args.out, options, report=args.report, tokenizer_vocab_size=args.tokenizer_vocab_size,
               result=result, started=started, stage=args.stage)
    if counts.get("extracted", 0) == 0 and counts.get("bad_input_file", 0):
        raise UserError(f"no candidates extracted; {counts['bad_input_file']} bad input file(s), see the warnings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
