"""Helpers of the rollout tests: the servers' repository index, our own load loop, the bucket's request log."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from local_stack.access_log import FAKE_GCS_LINE, AccessLog


class BucketLog(AccessLog):
    """The stack's fake-gcs-server: its request log (writes since mark(), AccessLog) and its objects."""

    line = FAKE_GCS_LINE

    def __init__(self, url, log_file):
        super().__init__(log_file)
        self.url = url

    def read(self, bucket, name):
        quoted = urllib.parse.quote(name, safe="")
        with urllib.request.urlopen(f"{self.url}/download/storage/v1/b/{bucket}/o/{quoted}?alt=media") as resp:
            return resp.read()

    def names(self, bucket, prefix=""):
        query = urllib.parse.urlencode({"prefix": prefix})
        with urllib.request.urlopen(f"{self.url}/storage/v1/b/{bucket}/o?{query}") as resp:
            return sorted(item["name"] for item in json.load(resp).get("items", []))


def post(url, body, timeout=10):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def ready(url, model):
    try:
        with urllib.request.urlopen(f"{url}/v2/models/{model}/ready", timeout=10) as response:  # noqa: S310
            return response.status == 200
    except urllib.error.HTTPError:
        return False


def served(url, model="fil"):
    """READY versions of model at a server (its repository index)."""
    status, index = post(f"{url}/v2/repository/index", {})
    assert status == 200, index
    return sorted(int(e["version"]) for e in index if e["name"] == model and e.get("state") == "READY")


def wait_served(url, versions, model="fil", timeout=120):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = served(url, model)
            if last == versions:
                return
        except OSError as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{url} does not serve {model} {versions} after {timeout}s (last: {last})")


class LoadLoop:
    """Clients of our own (plain HTTP, not the module's) sending unversioned requests to every server."""

    def __init__(self, urls, reference, clients_per_server=2):
        data = reference["inputs"]["input__0"]
        self.body = {"inputs": [{"name": "input__0", "datatype": "FP32", "shape": data["shape"], "data": data["data"]}]}
        self.urls, self.clients = urls, clients_per_server
        self.requests, self.failures, self.versions = 0, [], {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = []

    def _run(self, url):
        while not self._stop.is_set():
            try:
                status, answer = post(f"{url}/v2/models/fil/infer", self.body)
                ok = status == 200
            except OSError as exc:
                ok, answer = False, {"error": str(exc)}
            with self._lock:
                self.requests += 1
                if ok:
                    self.versions[answer["model_version"]] = self.versions.get(answer["model_version"], 0) + 1
                else:
                    self.failures.append(answer)

    def __enter__(self):
        for url in self.urls:
            for _client in range(self.clients):
                thread = threading.Thread(target=self._run, args=(url,), daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
