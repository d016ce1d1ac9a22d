#!/usr/bin/env python
"""No-op converge cost: a second `site.yml` on the local stack vs an empty playbook on the same inventory.

The first run syncs the models and verifies; every further run should find nothing to do. Counted at
fake-gcs-server (its request log): reads and writes per run — the target is 0 writes. Wall time is
compared with an empty playbook over the same inventory, which is Ansible's own floor (process start,
inventory, templating). The verify load phase is off (verify_load_duration=0): this measures
converging, not serving.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
from pathlib import Path

from common import REPO, median, print_table, timed, write_result

from local_stack.stack import LocalStack

LOG_LINE = re.compile(r'\\?"(GET|POST|PUT|PATCH|DELETE|HEAD) (\S+) HTTP/[0-9.]+\\?" (\d+)')
EMPTY = """
- name: Ansible's floor
  hosts: triton_fil
  gather_facts: false
  tasks: []
"""


def playbook(path, env, log):
    cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), str(path), "-i", str(REPO / "inventories" / "local"),
           "-e", "verify_load_duration=0"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        raise SystemExit(f"{path.name} failed:\n{proc.stdout[-3000:]}")
    return proc.stdout


def requests_since(log_file, offset):
    with open(log_file, "rb") as handle:
        handle.seek(offset)
        text = handle.read().decode("utf-8", "replace")
    found = [m.group(1) for m in LOG_LINE.finditer(text)]
    return sum(1 for m in found if m in ("GET", "HEAD")), sum(1 for m in found if m not in ("GET", "HEAD"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-converge-"))
    empty = work / "empty.yml"
    empty.write_text(EMPTY)
    os.environ["TRITON_FIL_STACK_GCS_LOG_LEVEL"] = "info"
    stack = LocalStack(work / "stack")
    env = dict(os.environ, **stack.up())
    gcs_log = work / "stack" / "fake-gcs-server.log"
    try:
        playbook(REPO / "playbooks" / "site.yml", env, work / "first.log")
        samples = {"site": [], "empty": []}
        counts = []
        for rep in range(args.reps):
            order = ("site", "empty") if rep % 2 == 0 else ("empty", "site")
            for name in order:
                offset = gcs_log.stat().st_size
                path = REPO / "playbooks" / "site.yml" if name == "site" else empty
                seconds, out = timed(playbook, path, env, work / f"{name}-{rep}.log")
                samples[name].append(seconds)
                if name == "site":
                    counts.append(requests_since(gcs_log, offset))
                    if "changed=0" not in out:
                        raise SystemExit(f"the no-op run changed something; see {work / f'site-{rep}.log'}")
        site, floor = median(samples["site"]), median(samples["empty"])
        reads = median([c[0] for c in counts])
        writes = max(c[1] for c in counts)
        print_table(f"no-op converge of site.yml on the local stack, median of {args.reps} (target: 0 write calls)",
                    ["run", "seconds", "vs empty playbook", "GCS reads", "GCS writes"],
                    [["site.yml (no-op)", f"{site:.2f}", f"{site / floor:.2f}x", f"{reads:.0f}", writes],
                     ["empty playbook", f"{floor:.2f}", "1.00x", "0", "0"]])
        write_result("converge", {"reps": args.reps, "site_s": site, "empty_s": floor, "ratio": site / floor,
                                  "gcs_reads": reads, "gcs_writes": writes})
    finally:
        stack.down()


if __name__ == "__main__":
    main()
