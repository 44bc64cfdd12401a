"""Extract: one input file (WARC/WAT, url+caption table) → candidate records or drop reasons.

`extract_file(path)` yields `(record, None)` for every usable image+caption and `(None, reason)`
for every drop; a corrupt file raises `BadInput` after what came before the damage.
Modules: records (dispatch, one record), warc + warc_end (WARC/WAT), html_page (one page's
`<img>`s), tables (Parquet/CSV/TSV/JSONL), captions (normalisation and junk rules), domains (the
--exclude-domains block list).
"""
from openwit.pipeline.extract.captions import junk_reason, normalize_caption
from openwit.pipeline.extract.domains import read_domain_list
from openwit.pipeline.extract.records import DEFAULT_RULES, RECOGNISED, ExtractRules, candidate, extract_file, file_kind
from openwit.pipeline.extract.warc import BadInput

__all__ = ["BadInput", "DEFAULT_RULES", "ExtractRules", "RECOGNISED", "candidate", "extract_file", "file_kind",
           "junk_reason", "normalize_caption", "read_domain_list"]
