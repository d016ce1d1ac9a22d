#!/usr/bin/env python
"""Model sync: rapids.triton_fil.gcs_sync vs `gcloud storage rsync`, side by side on one fake-gcs-server.

Each tool syncs a generated model repository (64 files, 256 MiB, a few files > 32 MiB) into a fresh
bucket, then re-syncs with nothing changed, then re-syncs after 2 files changed. Bytes are counted
by a TCP proxy in front of the server (what each client really sent). Prints medians and ratios
ours/gcloud; timings on a shared 2-core machine are noisy, so only ratios measured in the same run
mean anything.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from common import REPO, CountingProxy, median, print_table, timed, write_result

from local_stack.stack import start_fake_gcs, stop_process

MiB = 1024 * 1024
PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: sync
      rapids.triton_fil.gcs_sync:
        src: "{{ src }}"
        bucket: "{{ bucket }}"
        prefix: triton/model_repository
        auth_kind: anonymous
        api_endpoint: "{{ endpoint }}"
"""


def generate_repository(root, seed=7):
    """64 files, 256 MiB: 4 x 40 MiB, 20 x 3 MiB, 40 x 0.9 MiB."""
    rng = random.Random(seed)
    sizes = [40 * MiB] * 4 + [3 * MiB] * 20
    rest = 256 * MiB - sum(sizes)
    sizes += [rest // 40] * 39 + [rest - (rest // 40) * 39]
    files = []
    for index, size in enumerate(sizes):
        path = root / f"model_{index % 8}" / "1" / f"part_{index:02d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
        files.append(path)
    for model in range(8):
        (root / f"model_{model}" / "config.pbtxt").write_text(f'name: "model_{model}"\nbackend: "fil"\n')
    return files


def create_bucket(url, name):
    request = urllib.request.Request(f"{url}/storage/v1/b?project=bench", data=json.dumps({"name": name}).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request).read()  # noqa: S310 - loopback


def run_ours(src, bucket, endpoint, workdir):
    play = workdir / "sync.yml"
    play.write_text(PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), str(play), "-i", "localhost,", "-c", "local",
           "-e", json.dumps({"src": str(src), "bucket": bucket, "endpoint": endpoint,
                             "ansible_python_interpreter": str(REPO / ".venv" / "bin" / "python")})]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode:
        raise SystemExit(f"gcs_sync failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")


def run_gcloud(src, bucket, endpoint, workdir):
    token = workdir / "token"
    token.write_text("bench-dummy-token")
    env = dict(os.environ,
               CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE=endpoint + "/",
               CLOUDSDK_AUTH_ACCESS_TOKEN_FILE=str(token),
               CLOUDSDK_CORE_PROJECT="bench",
               CLOUDSDK_CONFIG=str(workdir / "gcloud"),
               CLOUDSDK_CORE_DISABLE_PROMPTS="1")
    proc = subprocess.run(["gcloud", "storage", "rsync", "-r", str(src), f"gs://{bucket}/triton/model_repository"],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode:
        raise SystemExit(f"gcloud storage rsync failed:\n{proc.stderr[-3000:]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("gcloud"):
        raise SystemExit("gcloud is not on PATH; this benchmark compares against `gcloud storage rsync`")
    work = Path(tempfile.mkdtemp(prefix="bench-gcs-"))
    gcs_url, gcs = start_fake_gcs(work / "gcs-data", work / "fake-gcs.log", REPO / ".venv")
    host, port = gcs_url.rsplit("//", 1)[1].split(":")
    proxy = CountingProxy(host, int(port))
    try:
        src = work / "repo"
        files = generate_repository(src)
        total = sum(f.stat().st_size for f in src.rglob("*") if f.is_file())
        tools = {"ours": run_ours, "gcloud": run_gcloud}
        samples = {tool: {"first": [], "noop": [], "two_changed": []} for tool in tools}
        sent = {tool: {"first": [], "noop": [], "two_changed": []} for tool in tools}
        rng = random.Random(11)
        for rep in range(args.reps):
            # Reset the two files each rep so every tool sees the same change.
            order = list(tools) if rep % 2 == 0 else list(reversed(tools))
            for tool in order:
                bucket = f"bench-{tool}-{rep}"
                create_bucket(gcs_url, bucket)
                for phase in ("first", "noop", "two_changed"):
                    if phase == "two_changed":
                        for path in (files[10], files[30]):
                            path.write_bytes(rng.randbytes(path.stat().st_size))
                    proxy.reset()
                    seconds, _result = timed(tools[tool], src, bucket, proxy.url, work)
                    samples[tool][phase].append(seconds)
                    sent[tool][phase].append(proxy.sent)
        rows, result = [], {"files": len(files) + 8, "bytes": total, "reps": args.reps, "phases": {}}
        changed_bytes = files[10].stat().st_size + files[30].stat().st_size
        for phase in ("first", "noop", "two_changed"):
            ours, theirs = median(samples["ours"][phase]), median(samples["gcloud"][phase])
            ours_b, theirs_b = median(sent["ours"][phase]), median(sent["gcloud"][phase])
            ratio = ours / theirs if theirs else float("nan")
            rows.append([phase, f"{ours:.2f}", f"{theirs:.2f}", f"{ratio:.2f}x", f"{ours_b / MiB:.1f}", f"{theirs_b / MiB:.1f}"])
            result["phases"][phase] = {"ours_s": ours, "gcloud_s": theirs, "ratio": ratio,
                                       "ours_bytes_sent": ours_b, "gcloud_bytes_sent": theirs_b}
        result["two_changed_payload_bytes"] = changed_bytes
        print_table(f"gcs_sync vs gcloud storage rsync — {len(files) + 8} files, {total / MiB:.0f} MiB, "
                    f"median of {args.reps} (targets: first <= 1.0x, no-op <= 0.5x with 0 payload, "
                    f"2-file change sends ~{changed_bytes / MiB:.1f} MiB)",
                    ["phase", "ours s", "gcloud s", "ours/gcloud", "ours MiB sent", "gcloud MiB sent"], rows)
        write_result("gcs_sync", result)
    finally:
        proxy.close()
        stop_process(gcs)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
