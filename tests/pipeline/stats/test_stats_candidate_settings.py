"""The report reads openwit-build's candidate settings (--limit, caption bounds, --exclude-domains)."""
from openwit.pipeline import cli
from openwit.pipeline.stats.funnel import funnel
from openwit.pipeline.stats.header import build_info, command

META = {"queries": "q", "max_per_query": 5, "balance": "exact", "oversample": 1.0, "seed": 3, "limit": 6,
        "min_caption_chars": 10, "exclude_domains": "block.txt", "exclude_domains_count": 2,
        "exclude_domains_sha256": "0123456789abcdef"}


def test_command_and_header_carry_them():
    argv = command("OUT", {"seed": 3, "image_size": 64}, META, ["a.parquet"])
    args, beam_args = cli.parse_args(argv[1:])
    assert beam_args == [] and (args.limit, args.min_caption_chars, args.max_caption_chars, args.exclude_domains,
                                args.seed, args.balance) == (6, 10, 1000, "block.txt", 3, "exact")
    assert (args.resample, args.decode_margin) == ("box", 2)  # left implicit: built before the settings existed
    assert args.area_kernel is None  # means nothing with box
    args, _ = cli.parse_args(command("OUT", {"seed": 3, "resample": "area", "decode_margin": 1}, META, ["a"])[1:])
    assert (args.resample, args.decode_margin, args.area_kernel) == ("area", 1, "opencv")  # before openwit's kernel
    args, _ = cli.parse_args(command("OUT", {"seed": 3, "resample": "area", "area_kernel": "openwit"}, META, ["a"])[1:])
    assert (args.resample, args.decode_margin, args.area_kernel) == ("area", 2, "openwit")
    info = build_info("OUT", [{"settings": {"seed": 3}}], META, None, {})
    assert info["balance"] == {"max_per_query": 5, "balance": "exact", "oversample": 1.0, "seed": 3}
    assert info["candidate_settings"]["limit"] == 6 and "queries" not in info["candidate_settings"]


def test_funnel_has_the_limit_step():
    counts = {"records_read": 20, "extracted": 20, "extract_drops": {}, "unique": 20, "duplicates": 0,
              "matched": 16, "no_match": 4, "kept": 16, "balanced_out": 0, "limit": 6, "over_limit": 10}
    steps = funnel(counts, attempted=6, successes=5, reasons={"failed_to_download": {"http_404": 1}})["steps"]
    assert [(s["step"], s["count"]) for s in steps][-3:] == [("limited", 6), ("attempted", 6), ("success", 5)]
    assert steps[-3]["dropped"] == {"over_limit": 10} and steps[-2]["dropped"] == {}
