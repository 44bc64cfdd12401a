"""`openwit-queries` / `python -m openwit.queries`: build the query list (CLIP §2.2, MetaCLIP recipe).

Unknown options go to Beam (`--runner DataflowRunner --project … --temp_location …`). Inputs are
checked before the pipeline starts (files exist, bz2/XML magic and root, WordNet folder), so bad
input fails in a second with one line naming the file.
"""
from __future__ import annotations

import argparse
import json
import logging

from apache_beam.io.filesystems import FileSystems

from openwit.common import layout
from openwit.common.beamrun import is_dry_run, new_pipeline, pipeline_options
from openwit.common.errors import UserError, cli_main, setup_logging
from openwit.common.files import expand_patterns
from openwit.common.outdir import check_out
from openwit.common.version import add_version_flag
from openwit.queries import dump, union, wordnet
from openwit.queries.graph import Config, build

log = logging.getLogger(__name__)
DUMP_SOURCES = {"unigram", "bigram"}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="openwit-queries", allow_abbrev=False,
        description="Build the query list of CLIP §2.2 the MetaCLIP way (numerals, WordNet, Wikipedia unigrams, "
                    "bigrams and titles) → OUT/queries.parquet, queries.txt, summary.json. Flags this command "
                    "does not know are Beam options (--runner DataflowRunner --project … --temp_location …).")
    ap.add_argument("--out", required=True, metavar="DIR", help="output folder (local, gs://, s3://)")
    ap.add_argument("--wiki-dump", nargs="+", action="extend", default=[], metavar="F",
                    help="MediaWiki pages-articles XML dump(s), .bz2 or plain; globs ok; a "
                         "…-multistream.xml.bz2 with its …-multistream-index.txt.bz2 beside it is read by byte "
                         "ranges; the unigram and bigram sources need it, the title source needs it or --pageviews")
    ap.add_argument("--pageviews", nargs="+", action="extend", default=[], metavar="F",
                    help="Wikimedia pageview dumps (hourly or per-article daily/monthly; .gz/.bz2 ok); globs ok; "
                         "they rank the titles (default: none, titles are ranked by in-links from the dump)")
    ap.add_argument("--wordnet-dir", default=wordnet.DEFAULT_DIR, metavar="D",
                    help=f"WordNet 3.0 database folder holding data.noun, data.verb, data.adj, data.adv "
                         f"(default {wordnet.DEFAULT_DIR}, Debian's wordnet-base)")
    ap.add_argument("--sources", default=",".join(union.SOURCES), metavar="LIST",
                    help=f"comma-separated sources to use, added in this order (default: all of "
                         f"{','.join(union.SOURCES)})")
    ap.add_argument("--size", type=int, default=500_000, metavar="N",
                    help="entries in the list; bigrams take up to 20%%, titles fill the rest (default 500000)")
    ap.add_argument("--min-unigram-count", type=int, default=100, metavar="N",
                    help="a word becomes an entry when seen at least N times in the dump's articles (default 100)")
    ap.add_argument("--min-bigram-count", type=int, default=None, metavar="N",
                    help="a word pair is scored only when seen at least N times (default: the unigram minimum, "
                         "100 unless --min-unigram-count says otherwise)")
    ap.add_argument("--min-pmi", type=float, default=None, metavar="X",
                    help="keep every bigram with PMI ≥ X (default: the highest-PMI bigrams up to 20%% of --size)")
    ap.add_argument("--min-title-views", type=int, default=None, metavar="N",
                    help="keep every title with ≥ N views (default: the most viewed titles, as many as fill --size)")
    ap.add_argument("--streams-per-task", type=int, default=10, metavar="K",
                    help="multistream dumps: bz2 streams (100 pages each) per parallel task (default 10)")
    ap.add_argument("--max-page-chars", type=int, default=dump.MAX_PAGE_CHARS, metavar="N",
                    help=f"skip (and count) pages with more wikitext than this, to bound a worker's memory; "
                         f"MediaWiki's own limit is 2 MiB, so no real page is over the default "
                         f"(default {dump.MAX_PAGE_CHARS})")
    ap.add_argument("--verbose", action="store_true", help="Beam's INFO logging too")
    return add_version_flag(ap)


def parse_args(argv=None):
    return build_parser().parse_known_args(argv)


def expand(patterns: list[str], what: str) -> list[str]:
    """Globs / gs:// patterns → sorted file paths; a pattern matching nothing is an error."""
    return expand_patterns(patterns, what)


def dump_tasks(paths: list[str], streams_per_task: int) -> tuple[list[tuple], dict]:
    """Tasks for all dumps: byte ranges where a multistream index is beside the dump, else whole files."""
    tasks, mode = [], {}
    for path in paths:
        dump.check_dump(path)
        idx = dump.index_path(path)
        if idx and FileSystems.exists(idx):
            size = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
            ranges = dump.range_tasks(path, dump.read_index_offsets(idx), size, streams_per_task)
            tasks.extend(tuple(t) for t in ranges)
            mode[path] = f"multistream: {len(ranges)} byte-range tasks"
        else:
            tasks.append(tuple(dump.Task(path)))
            mode[path] = "whole file"
    return tasks, mode


def make_config(args) -> Config:
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = sorted(set(sources) - set(union.SOURCES))
    if unknown or not sources:
        raise UserError(f"--sources: unknown {','.join(unknown) or '(empty)'}; choose from {','.join(union.SOURCES)}")
    if args.size < 1 or args.min_unigram_count < 1 or (args.min_bigram_count or 1) < 1 or args.max_page_chars < 1:
        raise UserError("--size, --min-unigram-count, --min-bigram-count and --max-page-chars must be ≥ 1")
    if not args.wiki_dump:
        needs_dump = [s for s in union.SOURCES if s in sources and (s in DUMP_SOURCES or
                                                                     (s == "title" and not args.pageviews))]
        if needs_dump:
            rest = ",".join(s for s in sources if s not in needs_dump) or "numeral,wordnet"
            title = " (title can also come from --pageviews alone)" if "title" in needs_dump else ""
            raise UserError(f"source{'s' if len(needs_dump) > 1 else ''} {','.join(needs_dump)} "
                            f"need{'' if len(needs_dump) > 1 else 's'} --wiki-dump{title}: pass a dump, "
                            f"or use --sources {rest}")
    dumps = expand(args.wiki_dump, "--wiki-dump") if set(sources) & (DUMP_SOURCES | {"title"}) else []
    views = expand(args.pageviews, "--pageviews") if "title" in sources else []
    tasks, mode = dump_tasks(dumps, args.streams_per_task)
    return Config(
        out=args.out, sources=sources, tasks=tasks, wiki_dumps=dumps, pageviews=views,
        wordnet_dir=args.wordnet_dir if "wordnet" in sources else None,
        wordnet=wordnet.read_wordnet(args.wordnet_dir) if "wordnet" in sources else [],
        size=args.size, min_unigram_count=args.min_unigram_count,
        min_bigram_count=args.min_bigram_count or args.min_unigram_count,
        min_pmi=args.min_pmi, min_title_views=args.min_title_views, dump_mode=mode,
        max_page_chars=args.max_page_chars)


@cli_main
def main(argv=None) -> int:
    args, beam_args = parse_args(argv)
    setup_logging(args.verbose)
    check_out(args.out)  # a file or an unwritable folder: one line now, not after reading the dumps
    cfg = make_config(args)
    log.info("sources %s; %d dump task(s), %d pageview file(s), %d WordNet entries",
             ",".join(cfg.sources), len(cfg.tasks), len(cfg.pageviews), len(cfg.wordnet))
    options = pipeline_options(beam_args)
    with new_pipeline(options) as p:
        build(p, cfg)
        p.run().wait_until_finish()
    if is_dry_run(options):
        print("dry run: the job was built and checked, nothing was submitted or written")
        return 0
    with FileSystems.open(layout.join(cfg.out, layout.QUERIES_SUMMARY)) as f:
        summary = json.loads(f.read())
    per = ", ".join(f"{k} {v:,}" for k, v in summary["entries_per_source"].items())
    print(f"{summary['entries']:,} queries ({per}) → {cfg.out}")
    return 0
