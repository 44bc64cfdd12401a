"""Map an exception raised while requesting or reading a response to a downloader failure reason."""
from __future__ import annotations

import aiohttp

from . import netsafety


def classify_exception(e: Exception, s) -> tuple[str, str]:
    """(reason, detail) for a network/protocol exception; re-raises anything else (a bug).

    `s` is the FetchSettings (for the deadlines named in the detail). asyncio's own TimeoutError is
    the per-attempt deadline; aiohttp's timeout subclasses are the connect and read deadlines.
    """
    msg = str(e)[:200]
    if isinstance(e, aiohttp.ConnectionTimeoutError):
        return "timeout", f"connect > {s.connect_timeout:g}s"
    if isinstance(e, aiohttp.SocketTimeoutError):
        return "read_timeout", f"no data for {s.read_timeout:g}s"
    if isinstance(e, aiohttp.ServerTimeoutError):
        return "read_timeout", msg
    if isinstance(e, TimeoutError):
        return "timeout", f"total {s.timeout:g}s"
    if isinstance(e, aiohttp.ClientConnectorDNSError):
        if isinstance(e.os_error, netsafety.PrivateAddressError):
            return "private_address", str(e.os_error)
        return "dns_error", msg
    if isinstance(e, aiohttp.ClientSSLError):
        return "tls_error", msg
    if isinstance(e, (aiohttp.InvalidURL, UnicodeError, ValueError)):
        return "bad_url", msg
    if isinstance(e, aiohttp.ClientResponseError):
        return "bad_response", msg
    if isinstance(e, (aiohttp.ClientError, OSError)):
        return "connection_error", f"{type(e).__name__}: {msg}"
    raise e
