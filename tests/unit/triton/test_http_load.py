"""The HTTP load loop against a local HTTP/1.1 server: keep-alive, Content-Length and chunked answers, errors
counted with the first one kept, the request built once in the KServe v2 binary form tritonclient writes."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from ansible_collections.rapids.triton_fil.plugins.module_utils.triton import verify
from testlib import silent_listener

INPUTS = {"input__0": np.arange(16, dtype=np.float32).reshape(2, 8)}


class Server:
    def __init__(self, mode="length"):
        self.mode, self.requests, self.connections = mode, [], set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, dict(self.headers), body))
                outer.connections.add(self.client_address)
                payload = b'{"model_name":"fil","outputs":[]}'
                if outer.mode == "error":
                    self.send_response(400)
                    payload = b'{"error":"unexpected shape for input \'input__0\'"}'
                else:
                    self.send_response(200)
                if outer.mode == "chunked":
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload))
                else:
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("concurrency", [1, 3])  # 1: the blocking-socket loop; more: the asyncio loop
@pytest.mark.parametrize("mode", ["length", "chunked"])
def test_keep_alive_connections_send_the_same_request(mode, concurrency):
    server = Server(mode)
    try:
        load = verify.http_load_phase(server.url, "fil", "", INPUTS, ["output__0"], concurrency=concurrency,
                                      duration_s=0.5)
    finally:
        server.close()
    assert load["errors"] == 0 and load["requests"] == len(server.requests) > 3
    assert len(server.connections) == concurrency, "one keep-alive connection per client"
    path, headers, body = server.requests[0]
    assert path == "/v2/models/fil/infer" and headers["Content-Type"] == "application/octet-stream"
    json_size = int(headers["Inference-Header-Content-Length"])
    header = json.loads(body[:json_size])
    assert header["inputs"][0]["shape"] == [2, 8] and header["inputs"][0]["datatype"] == "FP32"
    assert np.frombuffer(body[json_size:], dtype=np.float32).tolist() == list(range(16))
    assert load["rows_per_s"] == pytest.approx(load["throughput_rps"] * 2, rel=0.01)
    assert load["latency_ms"]["p50"] <= load["latency_ms"]["p99"] <= load["latency_ms"]["max"]


@pytest.mark.parametrize("concurrency", [1, 2])
def test_errors_are_counted_and_the_first_is_kept(concurrency):
    server = Server("error")
    try:
        load = verify.http_load_phase(server.url, "fil", "3", INPUTS, ["output__0"], concurrency=concurrency,
                                      duration_s=0.3)
    finally:
        server.close()
    assert load["requests"] == 0 and load["errors"] > 0
    assert load["first_error"].startswith("HTTP 400:") and "unexpected shape" in load["first_error"]
    assert server.requests[0][0] == "/v2/models/fil/versions/3/infer"


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_closed_port_is_an_error_not_a_hang(concurrency):
    load = verify.http_load_phase("http://127.0.0.1:9", "fil", "", INPUTS, ["output__0"], concurrency=concurrency,
                                  duration_s=0.2)
    assert load["requests"] == 0 and load["errors"] == concurrency and "Error" in load["first_error"]


@pytest.fixture()
def mute():
    """A server that reads requests and never answers (a model stuck in inference behind a live port)."""
    with silent_listener() as address:
        yield "http://" + address


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_request_without_an_answer_ends_at_the_timeout(mute, concurrency):
    started = time.monotonic()
    load = verify.http_load_phase(mute, "fil", "", INPUTS, ["output__0"], concurrency=concurrency, duration_s=0.2,
                                  timeout=1)
    took = time.monotonic() - started
    assert took < 0.2 + 1 + 1.5, f"took {took:.1f}s with timeout 1"
    assert load["requests"] == 0 and load["errors"] == concurrency
    assert load["first_error"] == f"{mute} did not answer an inference request within 1s (the timeout)"


@pytest.mark.parametrize("text, expected", [("127.0.0.1:8000", ("127.0.0.1", 8000)), ("triton", ("triton", 80)),
                                            ("[::1]:8000", ("::1", 8000)), ("[::1]", ("::1", 80))])
def test_split_host_port(text, expected):
    assert verify.split_host_port(text) == expected
