# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""One retry policy for every HTTP client of the collection (Google APIs and OCI registries).

Exponential backoff with full jitter (a random pause in [0, min(max_delay, base_delay * 2**attempt)]),
a server's Retry-After in seconds honoured up to max_delay. Imports nothing heavy: the registry client
uses it for registries that are not Google's without importing google-auth.
"""

from __future__ import annotations

import random
import time

# Transient HTTP statuses (Google's API design guide: 408, 429 and 5xx except 501; the registries answer alike).
RETRYABLE_STATUS = frozenset((408, 429, 500, 502, 503, 504))


class Backoff:
    """``wait(attempt, response)`` sleeps as before retry number ``attempt`` (0-based)."""

    def __init__(self, *, sleep=time.sleep, rng=random.random, base_delay=0.5, max_delay=32.0):
        self.sleep, self.rng = sleep, rng
        self.base_delay, self.max_delay = base_delay, max_delay

    def delay(self, attempt, response=None):
        if response is not None:
            retry_after = response.headers.get("Retry-After") or ""
            if retry_after.isdigit():
                return min(float(retry_after), self.max_delay)
        return self.rng() * min(self.max_delay, self.base_delay * (2 ** attempt))

    def wait(self, attempt, response=None):
        self.sleep(self.delay(attempt, response))
