"""Servers shared by the integration tests: a fake-gcs-server per test module, with its access log."""

from __future__ import annotations

import json
import urllib.request

import pytest

from local_stack.access_log import FAKE_GCS_LINE, AccessLog
from local_stack.stack import REPO, start_fake_gcs, stop_process


class FakeGcs(AccessLog):
    """fake-gcs-server: its URL, the requests it logged since mark() (AccessLog), bucket and object helpers."""

    line = FAKE_GCS_LINE

    def __init__(self, url, log_file):
        super().__init__(log_file)
        self.url = url

    def uploads(self):
        return [r for r in self.requests() if r[1].startswith("/upload/")]

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
