"""Say early when a machine cannot reach the web: the first downloads all failing on the network.

A run on a machine without a route to the web (or behind a proxy it was not told about) fails every
download with `dns_error` or `connection_error`, each recorded, and would only say so in the summary
at the end — after hours of timeouts on a large run. `OfflineWatch` sees each outcome; once the first
`after` attempts have all failed on the network with not one success, it returns the warning to log
(once). The run goes on: every failure is recorded and `--retry-failed` fetches them again later.
"""
from __future__ import annotations

import threading
from collections import Counter

from openwit.pipeline.fetch.rules import NETWORK_REASONS, OFFLINE_QUESTION

FIRST_ATTEMPTS = 50


class OfflineWatch:
    def __init__(self, after: int | None = None):
        self.after = FIRST_ATTEMPTS if after is None else after
        self._reasons: Counter = Counter()
        self._lock = threading.Lock()
        self._done = False  # warned, or a download succeeded / failed otherwise: nothing more to say

    def see(self, reason: str | None) -> str | None:
        """Record one sample's outcome (its failure reason, None for a success); the warning to log,
        the one time it is due."""
        with self._lock:
            if self._done:
                return None
            if reason not in NETWORK_REASONS:  # a success, or an answer from a server: online
                self._done = True
                return None
            self._reasons[reason] += 1
            if sum(self._reasons.values()) < self.after:
                return None
            self._done = True
            seen = ", ".join(f"{k} {v}" for k, v in self._reasons.most_common())
        return (f"the first {self.after} downloads all failed on the network ({seen}): {OFFLINE_QUESTION} "
                "The run goes on and records every failure; rerun the same command with --retry-failed "
                "once it is online")
