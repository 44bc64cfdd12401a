"""A local build's Beam import without the cloud client libraries it will not use.

`import apache_beam` loads, through `apache_beam.io` and its filesystems, the Google Cloud (storage,
pubsub, bigquery, Dataflow), AWS (boto3) and MongoDB clients: ~760 modules, a third of the import
(0.3-0.35 s of ~1 s), which a run on local files and http(s) URLs never touches. Beam imports each
of them guarded (a client that is not installed only leaves its filesystem or IO out), so
`skip_cloud_clients` marks them as not installed (None in `sys.modules`) before Beam is imported —
only when the command line names a local runner and no location other than local paths, file:// and
http(s):// (every path a build reads or writes is on its command line). Any gs://, s3://, other
scheme or a remote runner keeps them. `OPENWIT_ALL_IMPORTS=1` keeps them always.
"""
from __future__ import annotations

import os
import re
import sys

from openwit.common.local import flag_value, is_local_runner

CLOUD_CLIENTS = ("google.cloud", "google.api_core", "google.auth", "google.oauth2", "oauth2client",
                 "apitools", "boto3", "botocore", "pymongo")
LOCAL_SCHEMES = {"http", "https", "file"}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def needs_cloud_clients(argv: list[str]) -> bool:
    """Whether a build with this command line may use a cloud client: a remote runner, or any
    argument naming a location with a scheme other than file:// and http(s)://."""
    if not is_local_runner(flag_value(argv, "--runner")):
        return True
    return any(scheme.lower() not in LOCAL_SCHEMES for arg in argv for scheme in _SCHEME.findall(arg))


def _loaded(name: str) -> bool:
    """Whether `name` was imported for real (a `*-nspkg.pth` file makes empty `google.cloud` at start-up)."""
    module = sys.modules.get(name)
    return (module is not None and getattr(module, "__file__", None) is not None) or any(
        key.startswith(name + ".") for key in sys.modules)


def skip_cloud_clients(argv: list[str] | None = None) -> list[str]:
    """Mark the cloud clients as not installed when `argv` (default: sys.argv) cannot need them and
    none is imported yet; returns the names marked."""
    argv = sys.argv[1:] if argv is None else argv
    if os.environ.get("OPENWIT_ALL_IMPORTS") or needs_cloud_clients(argv):
        return []
    if "apache_beam" in sys.modules or any(_loaded(name) for name in CLOUD_CLIENTS):
        return []  # too late: Beam has its filesystems already
    for name in CLOUD_CLIENTS:
        sys.modules[name] = None
    return list(CLOUD_CLIENTS)


# how Python says an import met a None in sys.modules: the module itself, or a module under it
_MISSING = re.compile(r"import of ([\w.]+) halted; None in sys\.modules|No module named '([\w.]+)'")


def left_out_message(exc: BaseException) -> str | None:
    """What to do when a run needed a client this process left out (a `ModuleNotFoundError`, raised
    directly or wrapped by Beam as text), else None."""
    for names in _MISSING.findall(str(exc)):
        for name in filter(None, names):
            if any((name == c or name.startswith(c + ".")) and c in sys.modules and sys.modules[c] is None
                   for c in CLOUD_CLIENTS):
                return (f"this run needs {name}, which openwit leaves out of a local build whose command line "
                        "names no gs://, s3:// or other remote location (common/lean.py): rerun with "
                        "OPENWIT_ALL_IMPORTS=1")
    return None
