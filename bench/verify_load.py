#!/usr/bin/env python
"""Verify load phase: the triton_verify module's load vs a plain tritonclient asyncio loop.

Both send the reference request of the sample model to the same local Triton at the same
concurrency for the same duration, alternating, several times. Prints median throughput and
latency percentiles and the ratio ours/plain (target >= 0.9x).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from common import REPO, median, print_table, write_result

from local_stack.stack import LocalStack
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton import verify as tv

REFERENCE = REPO / "model_repository" / "fil_reference.json"
PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: models
      rapids.triton_fil.gcs_bucket:
        {name: "{{ bucket }}", project: bench, location: US-CENTRAL1, auth_kind: anonymous, api_endpoint: "{{ gcs }}"}
    - name: sync
      rapids.triton_fil.gcs_sync:
        src: "{{ repo }}/model_repository"
        bucket: "{{ bucket }}"
        prefix: "{{ prefix }}"
        exclude: [".*", "__pycache__", "*.pyc", "generate.py", "*_reference.json", "README.md"]
        auth_kind: anonymous
        api_endpoint: "{{ gcs }}"
    - name: verify
      rapids.triton_fil.triton_verify:
        url: "{{ url }}"
        model: fil
        timeout: 180
        reference_file: "{{ reference }}"
        load: {concurrency: "{{ concurrency }}", duration: "{{ duration }}"}
"""


def run_ours(env, concurrency, duration, workdir):
    play = workdir / "verify.yml"
    play.write_text(PLAY)
    extra = {"bucket": env["TRITON_FIL_BUCKET"], "prefix": env["TRITON_FIL_PREFIX"], "gcs": env["TRITON_FIL_GCS_ENDPOINT"],
             "url": env["TRITON_FIL_HTTP_URL"], "repo": str(REPO), "reference": str(REFERENCE),
             "concurrency": concurrency, "duration": duration,
             "ansible_python_interpreter": str(REPO / ".venv" / "bin" / "python")}
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), str(play), "-i", "localhost,", "-c", "local",
                           "-e", json.dumps(extra)], capture_output=True, text=True, check=False,
                          env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                                   ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"))
    if proc.returncode:
        raise SystemExit(f"triton_verify failed:\n{proc.stdout[-3000:]}")
    data = json.loads(proc.stdout[proc.stdout.find("{"):])
    for task in data["plays"][0]["tasks"]:
        if task["task"]["name"] == "verify":
            return next(iter(task["hosts"].values()))["load"]
    raise SystemExit("no verify result")


async def _plain(url, inputs, outputs, concurrency, duration):
    from tritonclient import http
    from tritonclient.http import aio

    client = aio.InferenceServerClient(url=tv.strip_scheme(url), conn_limit=concurrency)
    latencies = []
    stop_at = time.perf_counter() + duration

    def request():
        req_inputs = []
        for name, array in inputs.items():
            tensor = http.InferInput(name, list(array.shape), "FP32")
            tensor.set_data_from_numpy(array)
            req_inputs.append(tensor)
        return req_inputs, [http.InferRequestedOutput(n) for n in outputs]

    async def worker():
        while time.perf_counter() < stop_at:
            req_inputs, req_outputs = request()
            t0 = time.perf_counter()
            await client.infer("fil", req_inputs, outputs=req_outputs)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _worker in range(concurrency)))
    elapsed = time.perf_counter() - start
    await client.close()
    latencies.sort()
    return {"requests": len(latencies), "throughput_rps": len(latencies) / elapsed,
            "latency_ms": {"p50": tv.percentile(latencies, 50) * 1000, "p99": tv.percentile(latencies, 99) * 1000}}


def run_plain(env, concurrency, duration):
    ref = tv.load_reference(str(REFERENCE))
    inputs = {k: v.astype(np.float32) for k, v in tv.to_arrays(ref["inputs"]).items()}
    return asyncio.run(_plain(env["TRITON_FIL_HTTP_URL"], inputs, list(ref["outputs"]), concurrency, duration))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=8.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    try:
        with LocalStack(work / "stack") as stack:
            env = stack.env()
            run_ours(env, 1, 1, work)  # sync the models and warm the server up
            ours, plain = [], []
            for rep in range(args.reps):
                pair = [("ours", lambda: run_ours(env, args.concurrency, args.duration, work)),
                        ("plain", lambda: run_plain(env, args.concurrency, args.duration))]
                for name, fn in (pair if rep % 2 == 0 else reversed(pair)):
                    (ours if name == "ours" else plain).append(fn())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows, result = [], {"concurrency": args.concurrency, "duration_s": args.duration, "reps": args.reps}
    for name, runs in (("ours (triton_verify load)", ours), ("plain tritonclient aio", plain)):
        rps = median([r["throughput_rps"] for r in runs])
        p50 = median([r["latency_ms"]["p50"] for r in runs])
        p99 = median([r["latency_ms"]["p99"] for r in runs])
        rows.append([name, f"{rps:.1f}", f"{p50:.2f}", f"{p99:.2f}"])
        result[name.split()[0]] = {"throughput_rps": rps, "p50_ms": p50, "p99_ms": p99}
    result["ratio"] = result["ours"]["throughput_rps"] / result["plain"]["throughput_rps"]
    print_table(f"verify load phase, concurrency {args.concurrency}, {args.duration:.0f}s, median of {args.reps} "
                f"(target ours/plain >= 0.9x): ratio {result['ratio']:.2f}x",
                ["client", "req/s", "p50 ms", "p99 ms"], rows)
    write_result("verify_load", result)


if __name__ == "__main__":
    main()
