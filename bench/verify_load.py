#!/usr/bin/env python
"""Verify load phase: the triton_verify module's load (the Python loop, its default) vs perf_analyzer.

Both send the same request (the sample model's 8 reference rows, batch 8, FP32) to the same local
Triton over the same protocol (HTTP) at the same concurrency (1, 4, 8, 16) for the same duration;
perf_analyzer measures three windows that together last that duration (no stability wait), as the
module's perf_analyzer engine runs it. The two alternate, several times. Prints median throughput
(requests/s) and p50/p99 latency of each and the ratio ours/perf_analyzer (target >= 0.9x), and the
plain tritonclient asyncio loop of earlier runs as a third column for reference.
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


def run_perf_analyzer(env, concurrency, duration, workdir):
    binary = tv.find_perf_analyzer(str(REPO / ".tools" / "bin" / "perf_analyzer")) or tv.find_perf_analyzer()
    if binary is None:
        raise SystemExit("perf_analyzer is missing: run make bootstrap (it unpacks it into .tools/bin)")
    ref = tv.load_reference(str(REFERENCE))
    inputs = {k: v.astype(np.float32) for k, v in tv.to_arrays(ref["inputs"]).items()}
    return tv.perf_analyzer_load(binary, "http", env["TRITON_FIL_HTTP_URL"], "fil", "", inputs, concurrency, duration,
                                 str(workdir))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--no-plain", action="store_true", help="skip the plain tritonclient aio column")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    runs = {}
    try:
        with LocalStack(work / "stack") as stack:
            env = stack.env()
            run_ours(env, 1, 1, work)  # sync the models and warm the server up
            run_perf_analyzer(env, 1, 1.5, work)
            for concurrency in args.concurrency:
                clients = [("ours", lambda c=concurrency: run_ours(env, c, args.duration, work)),
                           ("perf_analyzer", lambda c=concurrency: run_perf_analyzer(env, c, args.duration, work))]
                if not args.no_plain:
                    clients.append(("plain", lambda c=concurrency: run_plain(env, c, args.duration)))
                for rep in range(args.reps):
                    for name, fn in (clients if rep % 2 == 0 else list(reversed(clients))):
                        measured = fn()
                        runs.setdefault((concurrency, name), []).append(measured)
                        print(f"concurrency {concurrency:2} rep {rep} {name:13} {measured['throughput_rps']:8.1f} req/s "
                              f"p50 {measured['latency_ms']['p50']:.2f} ms p99 {measured['latency_ms']['p99']:.2f} ms",
                              flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows, result = [], {"duration_s": args.duration, "reps": args.reps, "protocol": "http", "batch": 8,
                        "by_concurrency": {}, "samples": {f"{c}/{n}": v for (c, n), v in runs.items()}}
    for concurrency in args.concurrency:
        summary = {}
        for name in ("ours", "perf_analyzer", "plain"):
            measured = runs.get((concurrency, name))
            if not measured:
                continue
            summary[name] = {"throughput_rps": median([r["throughput_rps"] for r in measured]),
                             "p50_ms": median([r["latency_ms"]["p50"] for r in measured]),
                             "p99_ms": median([r["latency_ms"]["p99"] for r in measured])}
        summary["ratio"] = summary["ours"]["throughput_rps"] / summary["perf_analyzer"]["throughput_rps"]
        result["by_concurrency"][str(concurrency)] = summary
        ours, perf = summary["ours"], summary["perf_analyzer"]
        plain = summary.get("plain")
        rows.append([concurrency, f"{ours['throughput_rps']:.0f}", f"{perf['throughput_rps']:.0f}",
                     f"{summary['ratio']:.2f}x", f"{ours['p50_ms']:.2f} / {perf['p50_ms']:.2f}",
                     f"{ours['p99_ms']:.2f} / {perf['p99_ms']:.2f}",
                     f"{plain['throughput_rps']:.0f}" if plain else "-"])
    print_table(f"verify load phase vs perf_analyzer (HTTP, batch 8, {args.duration:.0f}s, median of {args.reps}; "
                "target ours/perf_analyzer >= 0.9x)",
                ["concurrency", "ours req/s", "perf_analyzer req/s", "ratio", "p50 ms ours/pa", "p99 ms ours/pa",
                 "plain aio req/s"], rows)
    write_result("verify_load", result)


if __name__ == "__main__":
    main()
