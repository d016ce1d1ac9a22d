#!/usr/bin/env python
"""No-op converge cost: a second `site.yml` on the local stack vs an empty playbook on the same inventory.

The first run syncs the models, mirrors the image and verifies; every further run should find nothing
to do. API calls are counted by kind (read/write) at each server of the local stack, for every run:

- fake-gcs-server: its request log (info level). GET/HEAD read, anything else writes.
- the docker registry: its access log (<run dir>/registry/registry.log). GET/HEAD read, anything else writes.
- tritonserver: it logs no requests, so the playbook reaches its HTTP and metrics ports through a
  request-counting reverse proxy each (common.RequestCounter, passed as TRITON_FIL_HTTP_URL and
  TRITON_FIL_METRICS_URL, which the local inventory reads before the stack's env.json). GET/HEAD,
  POST .../infer and POST /v2/repository/index read; anything else (load/unload, PUT, DELETE) writes.

The target is 0 writes everywhere: a no-op run that writes anywhere, or that reports a change, stops
the bench with the calls. Wall time is compared with an empty playbook over the same inventory (runs
alternate), which is Ansible's own floor (process start, inventory, templating). The verify load phase
is off (verify_load_duration=0): this measures converging, not serving. The JSON result lists the
distinct calls of one no-op run per server (ids and digests collapsed), to show what the reads are.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse
from pathlib import Path

from common import REPO, RequestCounter, median, print_table, timed, write_result

from local_stack.stack import LocalStack

# fake-gcs-server (JSON log, quotes escaped) and the registry (Apache combined log) both match.
LOG_LINE = re.compile(r'\\?"(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (\S+) HTTP/[0-9.]+\\?" (\d+)')
EMPTY = """
- name: Ansible's floor
  hosts: triton_fil
  gather_facts: false
  tasks: []
"""
SERVERS = ("gcs", "registry", "triton")
LABELS = {"gcs": "GCS", "registry": "registry", "triton": "Triton"}
TRITON_READ_POST = re.compile(r"^/v2/(models/[^?]+/(infer|generate|generate_stream)|repository/index)(\?|$)")
COLLAPSE = [
    (re.compile(r"sha256:[0-9a-f]{64}"), "sha256:<digest>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"(_state|pageToken|upload_id|uploadId)=[^&]+"), r"\1=<token>"),
    (re.compile(r"\b[0-9a-f]{32,}\b"), "<hex>"),
]


def playbook(path, env, log):
    cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), str(path), "-i", str(REPO / "inventories" / "local"),
           "-e", "verify_load_duration=0"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        raise SystemExit(f"{path.name} failed:\n{proc.stdout[-3000:]}")
    return proc.stdout


def is_write(server, method, path):
    if method in ("GET", "HEAD"):
        return False
    return not (server == "triton" and method == "POST" and TRITON_READ_POST.match(path))


def collapse(path):
    for pattern, replacement in COLLAPSE:
        path = pattern.sub(replacement, path)
    return path


class Counters:
    """Where each server's calls are seen: the log files (read from an offset) and the Triton proxies."""

    def __init__(self, logs, proxies):
        self.logs = logs          # server -> log file
        self.proxies = proxies    # server -> [RequestCounter]
        self._offsets = {}

    def mark(self):
        self._offsets = {server: log.stat().st_size for server, log in self.logs.items()}
        for counters in self.proxies.values():
            for counter in counters:
                counter.reset()

    def calls(self):
        """server -> [(method, path, status)] since mark()."""
        found = {}
        for server, log in self.logs.items():
            with open(log, "rb") as handle:
                handle.seek(self._offsets[server])
                text = handle.read().decode("utf-8", "replace")
            found[server] = [(m.group(1), m.group(2), int(m.group(3))) for m in LOG_LINE.finditer(text)]
        for server, counters in self.proxies.items():
            found[server] = [call for counter in counters for call in counter.reset()]
        return found


def reads_writes(calls):
    """server -> (reads, writes, [write calls])."""
    result = {}
    for server, found in calls.items():
        writes = [c for c in found if is_write(server, c[0], c[1])]
        result[server] = (len(found) - len(writes), len(writes), writes)
    return result


def distinct(calls):
    return {server: dict(sorted(collections.Counter(f"{m} {collapse(p)} -> {s}" for m, p, s in found).items()))
            for server, found in calls.items()}


def summary(per_run, server):
    """(median reads, max writes) over runs, for one server."""
    return median([run[server][0] for run in per_run]), max(run[server][1] for run in per_run)


def cell(per_run, server):
    if server not in per_run[0]:
        return "n/a"
    reads, writes = summary(per_run, server)
    return f"{reads:g} / {writes}"


def changed_tasks(out):
    lines, task = [], None
    for line in out.splitlines():
        if line.startswith("TASK ["):
            task = line
        elif line.startswith("changed:"):
            lines.append(f"{task}\n  {line}")
    return "\n".join(lines) or out[-2000:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-converge-"))
    os.environ["TRITON_FIL_STACK_GCS_LOG_LEVEL"] = "info"
    stack = LocalStack(work / "stack")
    proxies = []
    try:
        empty = work / "empty.yml"
        empty.write_text(EMPTY)
        stack_env = stack.up()
        env = dict(os.environ, **stack_env)
        http = RequestCounter(stack_env["TRITON_FIL_HTTP_URL"])
        proxies.append(http)
        env["TRITON_FIL_HTTP_URL"] = http.url
        metrics_target = urllib.parse.urlsplit(stack_env.get("TRITON_FIL_METRICS_URL", ""))
        if metrics_target.netloc == urllib.parse.urlsplit(stack_env["TRITON_FIL_HTTP_URL"]).netloc:  # one port
            env["TRITON_FIL_METRICS_URL"] = metrics_target._replace(netloc=f"127.0.0.1:{http.port}").geturl()
        elif metrics_target.netloc:
            metrics = RequestCounter(metrics_target.geturl())
            proxies.append(metrics)
            env["TRITON_FIL_METRICS_URL"] = metrics.url
        logs = {"gcs": work / "stack" / "fake-gcs-server.log"}
        if stack_env.get("TRITON_FIL_REGISTRY"):
            logs["registry"] = work / "stack" / "registry" / "registry.log"
        counters = Counters(logs, {"triton": proxies})

        counters.mark()
        first_s, _out = timed(playbook, REPO / "playbooks" / "site.yml", env, work / "first.log")
        first = reads_writes(counters.calls())
        samples = {"site": [], "empty": []}
        per_run = {"site": [], "empty": []}
        noop_calls = None
        for rep in range(args.reps):
            order = ("site", "empty") if rep % 2 == 0 else ("empty", "site")
            for name in order:
                path = REPO / "playbooks" / "site.yml" if name == "site" else empty
                counters.mark()
                seconds, out = timed(playbook, path, env, work / f"{name}-{rep}.log")
                calls = counters.calls()
                counted = reads_writes(calls)
                samples[name].append(seconds)
                per_run[name].append(counted)
                if name != "site":
                    continue
                if noop_calls is None:
                    noop_calls = distinct(calls)
                written = {server: c[2] for server, c in counted.items() if c[2]}
                if written:
                    raise SystemExit(f"no-op run {rep + 1} wrote: " + "; ".join(
                        f"{LABELS[s]}: {', '.join(f'{m} {p} -> {st}' for m, p, st in w)}" for s, w in written.items()))
                if "changed=0" not in out:
                    raise SystemExit(f"no-op run {rep + 1} changed something:\n{changed_tasks(out)}")
        site, floor = median(samples["site"]), median(samples["empty"])
        reps = args.reps
        print_table(f"no-op converge of site.yml on the local stack, median of {reps} (API calls: reads / writes "
                    f"per run, median reads, max writes; target 0 writes)",
                    ["run", "seconds", "vs empty", *(f"{LABELS[s]} r/w" for s in SERVERS)],
                    [["site.yml, first run (1 run)", f"{first_s:.2f}", f"{first_s / floor:.1f}x",
                      *(cell([first], s) for s in SERVERS)],
                     ["site.yml, no-op", f"{site:.2f}", f"{site / floor:.1f}x",
                      *(cell(per_run["site"], s) for s in SERVERS)],
                     ["empty playbook", f"{floor:.2f}", "1.0x", *(cell(per_run["empty"], s) for s in SERVERS)]])
        servers = [s for s in SERVERS if s in per_run["site"][0]]
        result = {
            "reps": reps, "site_s": site, "empty_s": floor, "ratio": site / floor, "first_run_s": first_s,
            "gcs_reads": summary(per_run["site"], "gcs")[0], "gcs_writes": summary(per_run["site"], "gcs")[1],
            "calls": {s: {"noop_reads_median": summary(per_run["site"], s)[0],
                          "noop_writes_max": summary(per_run["site"], s)[1],
                          "noop_per_run": [list(run[s][:2]) for run in per_run["site"]],
                          "empty_per_run": [list(run[s][:2]) for run in per_run["empty"]],
                          "first_run": list(first[s][:2])} for s in servers},
            "noop_distinct_calls": noop_calls,
        }
        write_result("converge", result)
    finally:
        try:
            stack.down()
        finally:
            for proxy in proxies:
                proxy.close()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
