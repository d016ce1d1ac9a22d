"""Servers shared by the integration tests: a fake-gcs-server per test module, with its access log."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

from local_stack.stack import REPO, start_fake_gcs, stop_process

# fake-gcs-server logs each request as an escaped combined-log line: \"GET /path HTTP/1.1\" 200 123
LOG_LINE = re.compile(r'\\?"(GET|POST|PUT|PATCH|DELETE|HEAD) (\S+) HTTP/[0-9.]+\\?" (\d+)')


class FakeGcs:
    def __init__(self, url, log_file):
        self.url = url
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
        return [(m.group(1), m.group(2), int(m.group(3))) for m in LOG_LINE.finditer(text)]

    def reads(self):
        return [r for r in self.requests() if r[0] in ("GET", "HEAD")]

    def uploads(self):
        return [r for r in self.requests() if r[1].startswith("/upload/")]

    def writes(self):
        return [r for r in self.requests() if r[0] not in ("GET", "HEAD")]

    def create_bucket(self, name):
        request = urllib.request.Request(f"{self.url}/storage/v1/b?project=test", method="POST",
                                         data=json.dumps({"name": name}).encode(),
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request).read()  # noqa: S310 - loopback emulator

    def read(self, bucket, name):
        quoted = urllib.request.quote(name, safe="")
        with urllib.request.urlopen(f"{self.url}/download/storage/v1/b/{bucket}/o/{quoted}?alt=media") as resp:
            return resp.read()

    def names(self, bucket, prefix=""):
        query = urllib.parse.urlencode({"prefix": prefix})
        with urllib.request.urlopen(f"{self.url}/storage/v1/b/{bucket}/o?{query}") as resp:
            return sorted(item["name"] for item in json.load(resp).get("items", []))


@pytest.fixture(scope="module")
def fake_gcs(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("gcs")
    url, proc = start_fake_gcs(run_dir / "data", run_dir / "fake-gcs.log", REPO / ".venv", log_level="info")
    try:
        yield FakeGcs(url, run_dir / "fake-gcs.log")
    finally:
        stop_process(proc)
