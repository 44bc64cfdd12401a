"""Listing files through Beam FileSystems (local, gs://, s3://) with errors a user can act on.

Beam returns an empty match when nothing matches; an exception means the listing itself failed
(missing credentials, unknown bucket, a missing client package). That must not pass for "no files":
a resume check or a report would then silently see an empty folder.
"""
from __future__ import annotations

from apache_beam.io.filesystems import FileSystems

from openwit.common.errors import UserError

_HINTS = {"gs": " (gs:// needs Google credentials: `gcloud auth application-default login`)",
          "s3": " (s3:// needs AWS credentials, e.g. AWS_ACCESS_KEY_ID / AWS_PROFILE)"}


def ensure_options() -> None:
    """Give Beam's file systems default options when no pipeline has set them yet (outside a
    pipeline, e.g. openwit-stats): Beam's s3:// client refuses to start without them."""
    if getattr(FileSystems, "_pipeline_options", None) is None:
        from apache_beam.options.pipeline_options import PipelineOptions

        FileSystems.set_options(PipelineOptions([]))


def check_s3_credentials(path: str) -> None:
    """Fail at once when an s3:// path has no AWS credentials anywhere: Beam's S3 client would
    otherwise retry for minutes before giving up."""
    from apache_beam.options.pipeline_options import S3Options

    ensure_options()
    if FileSystems._pipeline_options.view_as(S3Options).s3_access_key_id:
        return
    try:
        import boto3
    except ImportError:
        raise UserError(f"{path}: s3:// needs boto3 (pip install 'apache-beam[aws]')") from None
    if boto3.session.Session().get_credentials() is None:
        raise UserError(f"{path}: no AWS credentials found — set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
                        f"AWS_PROFILE, or pass --s3_access_key_id/--s3_secret_access_key")


def match_files(pattern: str) -> list[str]:
    """Sorted paths matching `pattern` ([] when nothing matches); UserError when listing fails."""
    ensure_options()
    if pattern.startswith("s3://"):
        check_s3_credentials(pattern)
    try:
        results = FileSystems.match([pattern])
    except Exception as e:  # noqa: BLE001 — Beam wraps every backend error in BeamIOError
        scheme = pattern.split("://", 1)[0] if "://" in pattern else ""
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot list {pattern}: {detail}{_HINTS.get(scheme, '')}") from None
    return sorted(m.path for r in results for m in r.metadata_list)


GLOB_CHARS = "*?["


def is_glob(path: str) -> bool:
    """True for a pattern (`*`, `?`, `[...]`), False for a plain path."""
    return any(c in path for c in GLOB_CHARS)


def missing_message(pattern: str, what: str) -> str:
    """What to say when `pattern` finds nothing: a plain path does not exist, a glob matches no file."""
    if is_glob(pattern):
        return f"{pattern}: no {what} file matches this pattern"
    return f"{pattern}: no such {what} file"


def expand_patterns(patterns, what: str) -> list[str]:
    """Every file of each path/glob in order (each pattern's matches sorted; a file given twice is
    read twice); UserError naming the first path that does not exist or pattern that matches nothing."""
    paths = []
    for pattern in patterns:
        found = match_files(pattern)
        if not found:
            raise UserError(missing_message(pattern, what))
        paths.extend(found)
    return paths
