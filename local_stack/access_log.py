"""Counting a local server's requests at the server: its access log read from a mark.

The tests and benchmarks assert "zero write calls" from what the server itself logged (the CNCF
registry, fake-gcs-server), not from what the client says it sent.
"""

from __future__ import annotations

import re
from pathlib import Path

# fake-gcs-server logs each request as an escaped combined-log line: \"GET /path HTTP/1.1\" 200 123
FAKE_GCS_LINE = re.compile(r'\\?"(GET|POST|PUT|PATCH|DELETE|HEAD) (\S+) HTTP/[0-9.]+\\?" (\d+)')
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class AccessLog:
    """requests() since mark(): (method, path, status) from the lines ``line`` (a regex of 3 groups) matches."""

    line = None

    def __init__(self, log_file):
        self.log_file = Path(log_file)
        self._mark = 0

    def mark(self):
        """Start counting requests from here."""
        self._mark = self.log_file.stat().st_size

    def requests(self):
        """(method, path, status) of every request since mark()."""
        with open(self.log_file, "rb") as handle:
            handle.seek(self._mark)
            text = handle.read().decode("utf-8", "replace")
        return [(m.group(1), m.group(2), int(m.group(3))) for m in self.line.finditer(text)]

    def reads(self):
        return [r for r in self.requests() if r[0] in ("GET", "HEAD")]

    def writes(self):
        return [r for r in self.requests() if r[0] in WRITE_METHODS]
