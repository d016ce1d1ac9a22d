"""perf_analyzer's CSV report read into the load result fields; its command line; its input file."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from ansible_collections.rapids.triton_fil.plugins.module_utils.triton import verify

# The header perf_analyzer 2.47 writes with -f (latencies in microseconds).
CSV = ("Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,"
       "Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency,"
       "Avg latency,request/response,response wait\n"
       "4,13144.2,51,1204,336,17,703,33,22,1799,2893,3711,11320,2366,0,0\n")


def test_the_report_becomes_the_load_fields():
    load = verify.parse_perf_analyzer_csv(CSV, rows=8, duration_s=3.0)
    assert load["engine"] == "perf_analyzer" and load["concurrency"] == 4
    assert load["throughput_rps"] == pytest.approx(13144.2 / 8, abs=0.01) and load["rows_per_s"] == 13144.2
    assert load["latency_ms"] == {"p50": 1.799, "p90": 2.893, "p99": 11.32, "max": None, "avg": 2.366}
    assert load["requests"] == round(13144.2 / 8 * 3.0) and load["errors"] == 0


def test_an_empty_report_is_an_error():
    with pytest.raises(verify.VerifyError, match="no measurement"):
        verify.parse_perf_analyzer_csv("Concurrency,Inferences/Second\n", rows=8, duration_s=1)


def test_command_line_and_input_file(tmp_path):
    inputs = {"input__0": np.arange(8 * 32, dtype=np.float32).reshape(8, 32)}
    seen = {}

    def run(cmd, **_kwargs):
        seen["cmd"] = cmd
        (tmp_path / "perf_report.csv").write_text(CSV)
        return types.SimpleNamespace(returncode=0, stdout="", stderr="")

    load = verify.perf_analyzer_load("/x/perf_analyzer", "grpc", "127.0.0.1:8001", "fil", "", inputs, 4, 6.0,
                                     str(tmp_path), run=run)
    cmd = seen["cmd"]
    assert cmd[cmd.index("-i") + 1] == "grpc" and cmd[cmd.index("-b") + 1] == "8"
    assert cmd[cmd.index("--concurrency-range") + 1] == "4:4"
    assert cmd[cmd.index("--measurement-interval") + 1] == "2000" and cmd[cmd.index("--max-trials") + 1] == "3"
    data = json.loads((tmp_path / "perf_input.json").read_text())["data"]
    assert len(data) == 8 and data[1]["input__0"]["shape"] == [32]
    assert data[1]["input__0"]["content"] == list(range(32, 64))
    assert load["duration_s"] == 6.0


def test_a_failing_run_names_the_exit_and_the_last_lines(tmp_path):
    def run(cmd, **_kwargs):
        return types.SimpleNamespace(returncode=99, stdout="", stderr="error: failed to get model metadata\n")

    with pytest.raises(verify.VerifyError, match="exit 99.*failed to get model metadata"):
        verify.perf_analyzer_load("pa", "http", "h:1", "fil", "", {"i": np.zeros((2, 3), np.float32)}, 1, 1,
                                  str(tmp_path), run=run)
