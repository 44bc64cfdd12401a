"""Candidates: extract → de-duplicate → match → balance → OUT/candidates/*.parquet (+ query counts).

`Candidates(files, queries, out, ...)` is the stage as one composite Beam transform; its parts
(ExtractCandidates, MatchQueries, CountPerQuery, Balance, WriteCandidates) are usable alone.
Modules: stage (Beam shell), match (MetaCLIP sub-string matching, batched), spacing (MetaCLIP's
text spacing + the reference matcher), balance (keep/drop decisions), files (queries.parquet in,
candidate files out, staging and commit).
"""
from openwit.pipeline.candidates.files import commit_candidate_outputs, load_queries, remove_stale_staging
from openwit.pipeline.candidates.match import Matcher
from openwit.pipeline.candidates.stage import (NS, Balance, Candidates, CountPerQuery, ExtractCandidates,
                                               MatchQueries, WriteCandidates, expand_inputs)

__all__ = ["NS", "Balance", "Candidates", "CountPerQuery", "ExtractCandidates", "MatchQueries", "Matcher",
           "WriteCandidates", "commit_candidate_outputs", "expand_inputs", "load_queries", "remove_stale_staging"]
