"""The whole road in one list: records read → extracted → unique → matched → kept (→ limited, with
--limit) → attempted → success.

The candidate side comes from OUT/candidate_counts.json (written by the candidates stage, see
common.layout.CANDIDATE_COUNTS); the shard side from the shards' own rows. Each step says how many
records reached it and, by reason, how many of the previous step's were dropped on the way.
"""
from __future__ import annotations

from openwit.common import layout

CANDIDATE_STEPS = (  # (step, count key, {drop label: count key})
    ("records_read", "records_read", {}),
    ("extracted", "extracted", None),  # drops: candidate_counts' extract_drops
    ("unique", "unique", {"duplicate_url_caption": "duplicates"}),
    ("matched", "matched", {"no_match": "no_match"}),
    ("kept", "kept", {"balanced_out": "balanced_out"}),
)


def read_candidate_counts(out_dir: str) -> dict | None:
    """OUT/candidate_counts.json, or None when the build predates it (or it is unreadable)."""
    value = layout.read_json(layout.join(out_dir, layout.CANDIDATE_COUNTS))
    return value if value and isinstance(value.get("kept"), int) else None


def funnel(candidates: dict | None, attempted: int, successes: int, reasons: dict[str, dict[str, int]]) -> dict:
    """`reasons`: {status: {reason: n}} of the shards' failed samples."""
    steps = []
    if candidates:
        for step, key, drops in CANDIDATE_STEPS:
            dropped = (dict(candidates.get("extract_drops") or {}) if drops is None
                       else {label: int(candidates.get(k, 0)) for label, k in drops.items()})
            steps.append({"step": step, "count": int(candidates.get(key, 0)),
                          "dropped": {k: v for k, v in dropped.items() if v}})
        if candidates.get("limit"):  # openwit-build --limit N: only the first N went on
            over = int(candidates.get("over_limit", 0))
            steps.append({"step": "limited", "count": int(candidates["kept"]) - over,
                          "dropped": {"over_limit": over} if over else {}})
        not_attempted = steps[-1]["count"] - attempted
        steps.append({"step": "attempted", "count": attempted,
                      "dropped": {"not_in_committed_shards": not_attempted} if not_attempted > 0 else {}})
    else:
        steps.append({"step": "attempted", "count": attempted, "dropped": {}})
    failures = {f"{status}: {reason}": n for status, by in sorted(reasons.items()) for reason, n in by.items()}
    steps.append({"step": "success", "count": successes,
                  "dropped": dict(sorted(failures.items(), key=lambda kv: (-kv[1], kv[0])))})
    for s in steps:
        s["dropped"] = dict(sorted(s["dropped"].items(), key=lambda kv: (-kv[1], kv[0])))
        s["dropped_total"] = sum(s["dropped"].values())
    first = steps[0]["count"]
    for prev, s in zip([None] + steps[:-1], steps):
        s["share_of_previous"] = round(s["count"] / prev["count"], 6) if prev and prev["count"] else None
        s["share_of_first"] = round(s["count"] / first, 6) if first else None
    inputs = (candidates or {}).get("inputs") or {}
    return {"has_candidate_counts": candidates is not None,
            "input_files": inputs.get("files"), "bad_input_files": inputs.get("bad_files"),
            "steps": steps}
