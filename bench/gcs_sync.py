#!/usr/bin/env python
"""Model sync: rapids.triton_fil.gcs_sync vs `gcloud storage rsync`, side by side on one fake-gcs-server.

Each tool syncs a generated model repository (64 files, 256 MiB, a few files > 32 MiB) into a fresh
bucket, then re-syncs with nothing changed, then re-syncs after the same 2 files changed. Both tools
run as a task of a one-task play through ansible-playbook, the same way (`-i localhost, -c local`,
the venv's Python as ansible_python_interpreter, the ansible.posix.json stdout callback): ours is a
`rapids.triton_fil.gcs_sync` task, gcloud's an `ansible.builtin.command: gcloud storage rsync -r ...`
task. Both present a (dummy) access token. Every run is timed in two framings, side by side:

* as a playbook task (what a user of this collection swaps): the task's duration from the json
  callback (task.duration start..end); Ansible's start-up and play set-up are paid by both and drop out.
* as a whole process: the wall time of the ansible-playbook process running our task, vs the wall time
  of the bare `gcloud storage rsync` process (the command module's start..end `delta`, the same run).

Bytes are counted by a TCP proxy in front of the server (what each client really sent), for every run.
Correctness is checked, not only time: after every phase the objects under the prefix in each bucket
must match the local files by name, size and MD5 (JSON API list, md5Hash); our no-op must report 0 bytes
sent and 0 uploads and leave every object's generation unchanged. Prints medians and ratios ours/gcloud;
timings on a shared 2-core machine are noisy, so only ratios measured in the same run mean anything.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import shutil
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

from common import REPO, CountingProxy, median, print_table, run_one_task_play, write_result

from local_stack.stack import start_fake_gcs, stop_process

MiB = 1024 * 1024
PREFIX = "triton/model_repository"
TOKEN = "bench-dummy-token"
PHASES = ("first", "noop", "two_changed")
TOOLS = ("ours", "gcloud")
PLAYS = {
    "ours": """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: sync
      rapids.triton_fil.gcs_sync:
        src: "{{ src }}"
        bucket: "{{ bucket }}"
        prefix: "{{ prefix }}"
        auth_kind: accesstoken
        access_token: "{{ token }}"
        api_endpoint: "{{ endpoint }}"
""",
    "gcloud": """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: sync
      ansible.builtin.command: "gcloud storage rsync -r {{ src | quote }} gs://{{ bucket }}/{{ prefix }}"
      environment: "{{ gcloud_env }}"
""",
}


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


def list_objects(url, bucket):
    """{name: {"size", "md5", "generation"}} of the objects under PREFIX/ (JSON API, straight to the server)."""
    objects, token = {}, None
    while True:
        query = {"prefix": PREFIX + "/", "fields": "items(name,size,md5Hash,generation),nextPageToken"}
        if token:
            query["pageToken"] = token
        with urllib.request.urlopen(f"{url}/storage/v1/b/{bucket}/o?{urllib.parse.urlencode(query)}") as resp:  # noqa: S310
            body = json.load(resp)
        for item in body.get("items", []):
            objects[item["name"]] = {"size": int(item["size"]), "md5": item.get("md5Hash"),
                                     "generation": str(item.get("generation"))}
        token = body.get("nextPageToken")
        if not token:
            return objects


def local_manifest(src):
    """{object name: {"size", "md5"}} the bucket must hold (md5 base64, as the JSON API reports it)."""
    manifest = {}
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        with path.open("rb") as handle:
            digest = hashlib.file_digest(handle, "md5")  # GCS object checksum, not security
        manifest[f"{PREFIX}/{path.relative_to(src).as_posix()}"] = {
            "size": path.stat().st_size, "md5": base64.b64encode(digest.digest()).decode()}
    return manifest


def check_bucket(url, bucket, expected, label):
    """Raise SystemExit unless the bucket holds exactly the local files (name, size, MD5); return its listing."""
    objects = list_objects(url, bucket)
    got = {name: {"size": obj["size"], "md5": obj["md5"]} for name, obj in objects.items()}
    if got != expected:
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        differ = sorted(n for n in set(got) & set(expected) if got[n] != expected[n])
        raise SystemExit(f"{label}: bucket {bucket} does not match the local files: missing {missing[:5]}, "
                         f"extra {extra[:5]}, size/MD5 differ {differ[:5]}")
    return objects


def run_play(tool, src, bucket, endpoint, workdir):
    """Run the tool's one-task play; return (process wall s, task duration s, task result)."""
    play = workdir / f"sync-{tool}.yml"
    play.write_text(PLAYS[tool])
    token = workdir / "token"
    token.write_text(TOKEN)
    gcloud_env = {"CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE": endpoint + "/",
                  "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": str(token),
                  "CLOUDSDK_CORE_PROJECT": "bench",
                  "CLOUDSDK_CONFIG": str(workdir / "gcloud"),
                  "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
    extra = {"src": str(src), "bucket": bucket, "prefix": PREFIX, "endpoint": endpoint, "token": TOKEN,
             "gcloud_env": gcloud_env}
    return run_one_task_play(play, extra, f"{tool} ({bucket})")


def process_seconds(tool, wall, result):
    """The whole-process framing: ansible-playbook's wall time for ours, the gcloud process's for gcloud."""
    if tool == "ours":
        return wall
    hours, minutes, seconds = result["delta"].split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def mib_text(count):
    """MiB with 2 decimals; below 0.01 MiB the byte count too (the no-op's request overhead)."""
    return f"{count / MiB:.2f}" if count >= MiB / 100 else f"{count / MiB:.2f} ({count:.0f} B)"


def ratio(ours, theirs):
    return ours / theirs if theirs else float("nan")


class Bench:
    """One fake-gcs-server behind the counting proxy, the generated repository, and the samples."""

    def __init__(self, gcs_url, proxy, work):
        self.gcs_url, self.proxy, self.work = gcs_url, proxy, work
        self.src = work / "repo"
        self.files = generate_repository(self.src)
        self.changed = (self.files[10], self.files[30])
        self.rng = random.Random(11)
        self.samples = {tool: {key: {phase: [] for phase in PHASES} for key in ("task_s", "process_s", "bytes_sent")}
                        for tool in TOOLS}
        self.noop_rewrites = {tool: [] for tool in TOOLS}

    def run_tool(self, rep, tool):
        """First sync into a fresh bucket, no-op re-sync, re-sync after the 2 files changed; checked and sampled."""
        bucket = f"bench-{tool}-{rep}"
        create_bucket(self.gcs_url, bucket)
        expected = listing = None
        for phase in PHASES:
            if phase == "two_changed":
                # Rewritten before each tool's last phase: every tool sees the same 2 files change.
                for path in self.changed:
                    path.write_bytes(self.rng.randbytes(path.stat().st_size))
            if phase != "noop":
                expected = local_manifest(self.src)
            self.proxy.reset()
            wall, duration, outcome = run_play(tool, self.src, bucket, self.proxy.url, self.work)
            sent = self.proxy.sent
            self.samples[tool]["task_s"][phase].append(duration)
            self.samples[tool]["process_s"][phase].append(process_seconds(tool, wall, outcome))
            self.samples[tool]["bytes_sent"][phase].append(sent)
            label = f"rep {rep} {tool} {phase}"
            previous, listing = listing, check_bucket(self.gcs_url, bucket, expected, label)
            if phase == "noop":
                self.check_noop(tool, label, previous, listing, outcome, sent)

    def check_noop(self, tool, label, previous, listing, outcome, sent):
        """Count the objects a no-op rewrote (new generation); ours must rewrite and report nothing."""
        rewritten = sorted(name for name, obj in listing.items() if obj["generation"] != previous[name]["generation"])
        self.noop_rewrites[tool].append(len(rewritten))
        if tool == "ours" and (rewritten or outcome.get("changed") or outcome.get("uploaded")
                               or outcome.get("bytes_sent")):
            raise SystemExit(f"{label}: the no-op was not a no-op: changed={outcome.get('changed')} "
                             f"uploaded={outcome.get('uploaded')} bytes_sent={outcome.get('bytes_sent')} "
                             f"rewritten objects {rewritten[:5]} ({sent} bytes on the wire)")

    def report(self, reps, orders):
        """Print both framings' tables; return the JSON result."""
        samples, files = self.samples, len(list(p for p in self.src.rglob("*") if p.is_file()))
        total = sum(f.stat().st_size for f in self.src.rglob("*") if f.is_file())
        changed_bytes = sum(path.stat().st_size for path in self.changed)
        result = {
            "files": files, "bytes": total, "reps": reps, "prefix": PREFIX,
            "two_changed_payload_bytes": changed_bytes, "order_per_rep": orders,
            "framings": {
                "task": {"about": "task duration from the ansible.posix.json callback: a rapids.triton_fil.gcs_sync "
                                  "task vs an ansible.builtin.command task running gcloud storage rsync, both via "
                                  "ansible-playbook -i localhost, -c local", "phases": {}},
                "process": {"about": "wall time of the ansible-playbook process running our task vs the bare "
                                     "gcloud storage rsync process (the command task's delta, same runs)",
                            "phases": {}}},
            "bytes_sent": {},
            "checks": {"bucket_matches_local_files_after_every_phase": True,
                       "ours_noop_reported_bytes_sent_and_uploads": 0,
                       "noop_objects_rewritten_per_rep": self.noop_rewrites},
            "samples": samples}
        tables = {"task": [], "process": []}
        for phase in PHASES:
            ours_b, theirs_b = (median(samples[tool]["bytes_sent"][phase]) for tool in TOOLS)
            result["bytes_sent"][phase] = {"ours": ours_b, "gcloud": theirs_b}
            for framing, rows in tables.items():
                ours, theirs = (median(samples[tool][f"{framing}_s"][phase]) for tool in TOOLS)
                result["framings"][framing]["phases"][phase] = {"ours_s": ours, "gcloud_s": theirs,
                                                                "ratio": ratio(ours, theirs)}
                rows.append([phase, f"{ours:.2f}", f"{theirs:.2f}", f"{ratio(ours, theirs):.2f}x",
                             mib_text(ours_b), mib_text(theirs_b)])
        print(f"\ngcs_sync vs gcloud storage rsync — {files} files, {total / MiB:.0f} MiB, median of {reps}; "
              f"targets: first <= 1.0x, no-op <= 0.5x with 0 payload; the 2-file change is "
              f"{changed_bytes / MiB:.1f} MiB of payload; MiB sent = bytes on the wire incl. HTTP overhead")
        mib = ["ours MiB sent", "gcloud MiB sent"]
        print_table("[as a playbook task] task duration (json callback): rapids.triton_fil.gcs_sync task vs "
                    "ansible.builtin.command `gcloud storage rsync` task",
                    ["phase", "ours task s", "gcloud task s", "ours/gcloud"] + mib, tables["task"])
        print_table("[as a whole process] wall time: ansible-playbook running our task vs the bare "
                    "`gcloud storage rsync` process",
                    ["phase", "ours ansible-playbook s", "gcloud process s", "ours/gcloud"] + mib, tables["process"])
        print(f"\nchecks: after every phase both buckets held exactly the local files (size + MD5); our no-op "
              f"reported 0 bytes sent / 0 uploads and rewrote no object; objects rewritten per no-op: "
              f"ours {self.noop_rewrites['ours']}, gcloud {self.noop_rewrites['gcloud']}")
        return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("gcloud"):
        raise SystemExit("gcloud is not on PATH; this benchmark compares against `gcloud storage rsync`")
    work = Path(tempfile.mkdtemp(prefix="bench-gcs-"))
    gcs_url, gcs = start_fake_gcs(work / "gcs-data", work / "fake-gcs.log", REPO / ".venv")
    host, port = gcs_url.rsplit("//", 1)[1].split(":")
    proxy = CountingProxy(host, int(port))
    try:
        bench = Bench(gcs_url, proxy, work)
        orders = []
        for rep in range(args.reps):
            orders.append(list(TOOLS) if rep % 2 == 0 else list(reversed(TOOLS)))
            for tool in orders[-1]:
                bench.run_tool(rep, tool)
        write_result("gcs_sync", bench.report(args.reps, orders))
    finally:
        proxy.close()
        stop_process(gcs)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
