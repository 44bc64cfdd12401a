"""Pure rules of the image downloader: failure reasons, User-Agent, opt-out headers, sniffing, retry timing.

No I/O here: every decision the downloader takes about one response (retry? opt-out? is it an image?)
is a plain function over strings and bytes, so it is tested on its own.
"""
from __future__ import annotations

import random
import re
import time
from email.utils import parsedate_to_datetime
from importlib import metadata
from typing import Iterable

PROJECT_URL = "https://github.com/openwit/openwit"  # placeholder until the project has a public home

# Every failure reason a FetchResult can carry (FetchResult.reason); `http_<code>` and
# `opt_out_<directive>` are families. Counters downstream are named by these.
REASONS = frozenset({
    "timeout",             # total per-attempt deadline (or the connect deadline) passed
    "read_timeout",        # no bytes for read_timeout seconds (trickling or stalled server)
    "connection_error",    # refused, reset, closed mid-body, proxy or TLS failure
    "dns_error",           # name does not resolve
    "too_large",           # declared or actual body bigger than max_bytes
    "too_many_redirects",
    "private_address",     # target (or a redirect hop) is loopback/private/link-local/... (SSRF guard)
    "bad_scheme",          # not http(s), also on redirect hops
    "bad_url",             # unparsable URL or host
    "bad_response",        # malformed HTTP from the server
    "tls_error",           # certificate or TLS handshake failure (not retried)
    "robots_txt",          # disallowed by the host's robots.txt (only with robots_txt=True)
    "not_an_image",        # sniffed bytes are not JPEG/PNG/GIF/WebP/BMP/TIFF/AVIF/HEIF
    "empty_body",
    "error",               # unexpected exception (a bug): logged with its traceback
})
REASON_FAMILIES = ("http_", "opt_out_")
RETRYABLE_REASONS = frozenset({"timeout", "read_timeout", "connection_error"})  # plus http 408/429/5xx
# Failures of the network itself rather than of a server's answer: when every download fails with
# these, the machine is likely offline or needs a proxy (pipeline.fetch.offline says so)
NETWORK_REASONS = frozenset({"dns_error", "connection_error", "timeout", "tls_error"})
OFFLINE_QUESTION = ("is this machine offline, or does it reach the web through a proxy (--proxy URL, or "
                    "HTTP_PROXY / HTTPS_PROXY)?")

# X-Robots-Tag directives that opt an image out of dataset use. "none" means "noindex, nofollow".
OPT_OUT_DIRECTIVES = frozenset({"noai", "noimageai", "noindex", "noimageindex", "none"})
# Directives that carry a value after ':' and so must not be read as a user-agent scope.
_VALUED_DIRECTIVES = frozenset({"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"})
_TOKEN_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9._-]{1,253}$|^\[?[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?\]?$")  # name (IDNA-encoded) or IP
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


def failure(reason: str, detail: str = "") -> str:
    """The error string of a failed FetchResult: "<reason>: <detail>" (or just the reason)."""
    return f"{reason}: {detail}" if detail else reason


def is_known_reason(reason: str) -> bool:
    return reason in REASONS or (reason.startswith(REASON_FAMILIES) and reason not in REASON_FAMILIES)


def _version() -> str:
    try:
        return metadata.version("openwit")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def valid_host(host: str) -> bool:
    """A host we may look up: letters, digits, '.', '-', '_' (yarl has IDNA-encoded it) or an IP literal."""
    return bool(_HOST_RE.match(host))


def valid_token(token: str) -> bool:
    """A user-agent token is one product-like word: it is matched in robots.txt and X-Robots-Tag scopes."""
    return bool(_TOKEN_RE.match(token))


def user_agent(token: str | None) -> str:
    """The User-Agent header: names openwit, its version, the project URL and the operator's token.

    >>> user_agent("mybot")  # doctest: +ELLIPSIS
    'openwit/... (+https://github.com/openwit/openwit; compatible; mybot)'
    """
    base = f"openwit/{_version()} (+{PROJECT_URL}"
    return f"{base}; compatible; {token})" if token else f"{base})"


def robots_agent(token: str | None) -> str:
    """The name matched against robots.txt `User-agent:` lines: the token, else "openwit"."""
    return token or "openwit"


def x_robots_opt_out(values: Iterable[str], token: str | None) -> str | None:
    """The first opt-out directive in X-Robots-Tag header values that applies to us, else None.

    Each value is a comma-separated list of directives; `name: directive, ...` scopes the directives
    that follow to user agent `name` (until the next scope). Unscoped directives apply to everyone;
    scoped ones apply when `name` is our token or "openwit" (case-insensitive). Values such as
    `unavailable_after: <date>` are directives with an argument, not scopes.
    """
    ours = {"openwit"} | ({token.lower()} if token else set())
    for value in values:
        scope = None
        for part in value.split(","):
            part = part.strip()
            if ":" in part:
                head, rest = part.split(":", 1)
                head = head.strip().lower()
                if head not in _VALUED_DIRECTIVES:
                    scope, part = head, rest.strip()
            directive = part.lower()
            if directive in OPT_OUT_DIRECTIVES and (scope is None or scope in ours):
                return directive
    return None


def sniff_image(data: bytes) -> str | None:
    """The image format named by the leading bytes (magic numbers), or None: Content-Type is not trusted."""
    head = data[:32]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in (12, 40, 52, 56, 64, 108, 124):
        return "bmp"  # "BM" alone is too weak: also require a known DIB header size
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "avif"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"):
            return "heif"
    return None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter" after failed attempt number `attempt` (1-based).

    The delay lies in [d/2, d] with d = min(cap, base * 2**(attempt-1)): never zero, never in lock-step.
    Jitter only affects timing, never which results come out.
    """
    d = min(cap, base * (2 ** max(0, attempt - 1)))
    return d / 2 + rng.uniform(0, d / 2)


def is_retryable_status(status: int) -> bool:
    """408, 429 and 5xx are worth another try; other 4xx are final."""
    return status in (408, 429) or 500 <= status <= 599
