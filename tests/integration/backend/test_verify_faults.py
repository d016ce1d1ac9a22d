"""triton_verify against endpoints that fail the way real ones do: a socket that accepts and never answers,
a web server answering HTML, a real tritonserver whose model hangs in inference, a model the
repository does not hold. Every call ends within the module's timeout and every failure is a
message naming the URL, never a traceback.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from local_stack.backend_dir import assemble_backend_dir
from local_stack.stack import REPO, free_port, http_ok, stop_process, tritonserver_binary, wait_for
from testlib import assert_no_traceback, silent_listener

pytest.importorskip("tritonclient.http")
pytest.importorskip("tritonclient.grpc")

from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.runner import (  # noqa: E402
    VerifyFailed, run_verify,
)

pytestmark = pytest.mark.slow  # starts a tritonserver; the failing calls wait out their timeouts

SLACK = 2.5  # seconds a failing call may take beyond the timeout on this shared 2-core machine


def params(url, protocol="http", model="fil", timeout=3, **extra):
    base = {"url": url, "protocol": protocol, "model": model, "model_version": "", "timeout": timeout,
            "expected_config": None, "reference_file": None, "atol": None, "rtol": None, "load": None,
            "metrics_url": None, "kubernetes_tunnel": None}
    base.update(extra)
    return base


def failing(**kwargs):
    """(message, seconds) of a run_verify that must fail."""
    start = time.monotonic()
    with pytest.raises(VerifyFailed) as failed:
        run_verify(params(**kwargs))
    return str(failed.value), time.monotonic() - start


@pytest.fixture(scope="module")
def silent():
    """A TCP listener that accepts connections and never says a word."""
    with silent_listener() as address:
        yield address


@pytest.fixture(scope="module")
def html():
    """A web server that answers every path with an HTML page (a default vhost, a captive portal)."""
    class Page(BaseHTTPRequestHandler):
        def log_message(self, *_args):
            pass

        def answer(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b"<html><body><h1>It works!</h1></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = answer  # noqa: N815

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


SLEEPY = textwrap.dedent('''\
    import time

    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def execute(self, requests):
            time.sleep(60)  # a model stuck in inference
            return [pb_utils.InferenceResponse([pb_utils.Tensor(
                "OUTPUT0", pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy())]) for r in requests]
    ''')

SLEEPY_CONFIG = textwrap.dedent('''\
    name: "sleepy"
    backend: "python"
    max_batch_size: 0
    input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 1 ] } ]
    output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1 ] } ]
    instance_group [ { kind: KIND_CPU count: 2 } ]
    ''')


@pytest.fixture(scope="module")
def sleepy(tmp_path_factory):
    """A real tritonserver serving one Python model that never finishes an inference; (http, grpc, reference)."""
    root = tmp_path_factory.mktemp("sleepy_repo")
    (root / "sleepy" / "1").mkdir(parents=True)
    (root / "sleepy" / "1" / "model.py").write_text(SLEEPY)
    (root / "sleepy" / "config.pbtxt").write_text(SLEEPY_CONFIG)
    reference = root / "reference.json"
    reference.write_text(json.dumps({"inputs": {"INPUT0": {"datatype": "FP32", "shape": [1], "data": [1.0]}},
                                     "outputs": {"OUTPUT0": {"datatype": "FP32", "shape": [1], "data": [1.0]}}}))
    run_dir = tmp_path_factory.mktemp("sleepy_triton")
    env = dict(__import__("os").environ)
    env.update(assemble_backend_dir(run_dir / "backends", REPO / ".venv"))
    http_port, grpc_port = free_port(), free_port()
    log_file = run_dir / "tritonserver.log"
    cmd = [str(tritonserver_binary(REPO / ".venv")), f"--model-repository={root}",
           f"--backend-directory={run_dir / 'backends'}", f"--http-port={http_port}", f"--grpc-port={grpc_port}",
           f"--metrics-port={free_port()}", "--http-address=127.0.0.1", "--grpc-address=127.0.0.1",
           "--metrics-address=127.0.0.1", "--exit-timeout-secs=2"]
    with open(log_file, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)  # pylint: disable=consider-using-with
    try:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{http_port}/v2/models/sleepy/ready"), 120, "tritonserver",
                 proc, log_file)
        yield f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", str(reference)
    finally:
        stop_process(proc, timeout=10)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_server_that_never_answers_fails_within_the_timeout(silent, protocol):
    message, took = failing(url=silent, protocol=protocol, timeout=3)
    assert took < 3 + SLACK, f"took {took:.1f}s with timeout 3"
    assert "server not live after 3s" in message and "within" in message, message


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_an_html_answer_is_not_a_triton_server(html, protocol):
    message, took = failing(url=html, protocol=protocol, timeout=60)
    assert took < SLACK, f"a non-Triton answer must fail at once, took {took:.1f}s"
    assert f"not a Triton server at {html}" in message and "check url" in message, message


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_hanging_inference_fails_within_the_timeout(sleepy, protocol):
    http_url, grpc_url, reference = sleepy
    url = grpc_url if protocol == "grpc" else http_url
    message, took = failing(url=url, protocol=protocol, model="sleepy", timeout=4, reference_file=reference)
    assert took < 4 + SLACK, f"took {took:.1f}s with timeout 4"
    assert "inference on model 'sleepy'" in message and "within 4s" in message, message


def test_a_model_missing_from_the_repository_fails_without_waiting(sleepy):
    http_url, _grpc, _reference = sleepy
    message, took = failing(url=http_url, model="fil", timeout=120)
    assert took < 10, f"a missing model must fail once the index is read, took {took:.1f}s"
    assert "model 'fil' is not in the repository" in message and "it has: sleepy" in message, message


VERIFY_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: verify
      rapids.triton_fil.triton_verify:
        url: "{{ url }}"
        protocol: "{{ protocol }}"
        model: fil
        timeout: 3
"""


@pytest.mark.parametrize("endpoint,protocol", [("silent", "grpc"), ("html", "http")])
def test_the_module_fails_with_a_message(ansible, request, endpoint, protocol):
    url = request.getfixturevalue(endpoint)
    run = ansible(VERIFY_PLAY, extra_vars={"url": url, "protocol": protocol})
    assert run.rc != 0
    result = run.result("verify")
    assert_no_traceback(result)
    assert result["msg"].startswith("triton_verify: ") and url in result["msg"], result["msg"]
