"""Pure parts of triton_verify: metadata comparison, output comparison, percentiles, metrics parsing."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from ansible_collections.rapids.triton_fil.plugins.module_utils.triton import verify

CONFIG = {"max_batch_size": 64,
          "inputs": [{"name": "input__0", "data_type": "TYPE_FP32", "dims": [32]}],
          "outputs": [{"name": "output__0", "data_type": "TYPE_FP32", "dims": [2]}]}


def test_metadata_matches_config_with_batch_dimension():
    meta = verify.normalize_metadata({"name": "fil", "inputs": [{"name": "input__0", "datatype": "FP32", "shape": [-1, 32]}],
                                      "outputs": [{"name": "output__0", "datatype": "FP32", "shape": [-1, 2]}]})
    assert verify.compare_metadata(meta, CONFIG) == []


def test_metadata_differences_are_named():
    meta = verify.normalize_metadata({"inputs": [{"name": "input__0", "datatype": "FP32", "shape": [-1, 30]}],
                                      "outputs": [{"name": "probs", "datatype": "FP32", "shape": [-1, 2]}]})
    problems = verify.compare_metadata(meta, CONFIG)
    assert "input 'input__0': server has FP32 [-1, 30], config declares FP32 [-1, 32]" in problems
    assert "output 'output__0' is declared in the config but the server does not expose it" in problems
    assert "output 'probs' is served but not declared in the config" in problems


def test_output_comparison_reports_first_mismatch():
    want = np.array([[0.1, 0.9], [0.7, 0.3]], dtype=np.float32)
    have = want.copy()
    report, problems = verify.compare_outputs({"output__0": have}, {"output__0": want}, 1e-5, 1e-4)
    assert problems == [] and report["output__0"]["mismatched"] == 0
    have[1, 0] = 0.5
    report, problems = verify.compare_outputs({"output__0": have}, {"output__0": want}, 1e-5, 1e-4)
    assert report["output__0"]["mismatched"] == 1
    assert "first at [1, 0]" in problems[0]


def test_output_shape_mismatch_is_a_problem():
    _matched, problems = verify.compare_outputs({"o": np.zeros((2, 1))}, {"o": np.zeros((2, 2))}, 0, 0)
    assert "shape [2, 1] differs from the reference [2, 2]" in problems[0]


def test_percentiles():
    values = [float(v) for v in range(1, 101)]
    assert verify.percentile(values, 50) == pytest.approx(50.5)
    assert verify.percentile(values, 99) == pytest.approx(99.01)
    assert verify.percentile([], 50) is None


def test_reference_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "ref.json"
    bad.write_text('{"inputs": {}}')
    with pytest.raises(verify.VerifyError, match="'inputs' must map tensor names"):
        verify.load_reference(str(bad))
    with pytest.raises(verify.VerifyError, match="cannot be read"):
        verify.load_reference(str(tmp_path / "missing.json"))


METRICS = b"""# HELP nv_inference_request_success Number of successful inference requests
nv_inference_request_success{model="fil",version="1"} 12
nv_inference_request_success{model="other",version="1"} 5
nv_inference_queue_duration_us{model="fil",version="1"} 340
nv_gpu_utilization{gpu_uuid="x"} 0.5
"""


def test_metrics_scrape_from_a_real_http_endpoint():
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(METRICS)))
            self.end_headers()
            self.wfile.write(METRICS)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/metrics"
        assert verify.scrape_metrics(url, "fil") == {"nv_inference_request_success": 12.0,
                                                     "nv_inference_queue_duration_us": 340.0}
    finally:
        httpd.shutdown()
        httpd.server_close()
    with pytest.raises(verify.VerifyError, match="metrics_url .* cannot be read"):
        verify.scrape_metrics(url, "fil", timeout=1)
