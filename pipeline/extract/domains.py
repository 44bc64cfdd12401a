"""A domain block list (`openwit-build --exclude-domains FILE`): image URLs on these hosts are dropped.

The file holds one domain a line; `#` starts a comment, blank lines are skipped. An entry blocks the
domain and every sub-domain (`example.com` blocks `example.com`, `img.example.com`, not
`badexample.com`). Entries may be written as a URL (`https://example.com/path`), with a leading
`*.` or `.`, with a port, in any case, or in Unicode (matched by their IDNA form). Hosts are compared
after the same normalisation, so the list decides the same way for every spelling of a URL.
"""
from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

from openwit.common.errors import UserError

_HOST = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$|^[0-9a-f:.]+$")


def normalize_host(host: str | None) -> str | None:
    """Lower case, no trailing dot, IDNA (punycode) for Unicode names; None when there is no host."""
    if not host:
        return None
    host = host.strip().rstrip(".").lower()
    if host.startswith("[") and host.endswith("]"):  # IPv6 literal
        host = host[1:-1]
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return host
    return host or None


def url_host(url: str) -> str | None:
    """The normalised host of a URL, or None when it has none (or cannot be parsed)."""
    try:
        return normalize_host(urlsplit(url).hostname)
    except ValueError:
        return None


def parse_entry(line: str) -> str | None:
    """One line of the list → a normalised domain, None for a blank or comment line; ValueError when
    the line is not a domain."""
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    if "://" in text:
        text = urlsplit(text).hostname or ""
    else:
        text = text.split("/", 1)[0]
        if text.count(":") == 1:  # host:port (IPv6 literals have more colons)
            text = text.split(":", 1)[0]
    text = text.lstrip("*").lstrip(".")
    host = normalize_host(text)
    if not host or not _HOST.match(host):
        raise ValueError(f"{line.strip()!r} is not a domain")
    return host


def parse_domain_list(text: str, name: str = "--exclude-domains") -> list[str]:
    """The file's domains, normalised, sorted, each once; UserError naming the first bad line."""
    domains = set()
    for number, line in enumerate(text.splitlines(), 1):
        try:
            host = parse_entry(line)
        except ValueError as e:
            raise UserError(f"{name} line {number}: {e} (one domain a line, # for comments)") from None
        if host:
            domains.add(host)
    return sorted(domains)


def read_domain_list(path: str) -> list[str]:
    """Read and parse a block list (local, gs://, s3://); UserError when it is missing or unreadable."""
    from apache_beam.io.filesystems import FileSystems

    from openwit.common.files import missing_message

    if not FileSystems.exists(path):
        raise UserError(missing_message(path, "--exclude-domains"))
    try:
        with FileSystems.open(path) as f:
            text = f.read().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--exclude-domains {path}: cannot read it ({e})") from None
    return parse_domain_list(text, f"--exclude-domains {path}")


def domains_digest(domains: list[str]) -> str:
    """A short digest of a normalised list: what a build records, so an edited list is seen as such."""
    return hashlib.sha256("\n".join(sorted(domains)).encode("utf-8")).hexdigest()[:16]


def is_excluded(host: str | None, domains: frozenset[str]) -> bool:
    """True when `host` (normalised) or one of its parent domains is in `domains`."""
    if not host or not domains:
        return False
    if host in domains:
        return True
    dot = host.find(".")
    while dot != -1:
        if host[dot + 1:] in domains:
            return True
        dot = host.find(".", dot + 1)
    return False
