"""Shared pieces of the benchmarks: a byte-counting TCP proxy, the request-counting HTTP proxy (tests/http_proxy.py), medians, the table."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "collections"))
RESULTS = REPO / "bench" / "results"

from http_proxy import RequestCounter  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import
from local_stack.controlplane.network import copy_until_closed  # noqa: E402  pylint: disable=wrong-import-position


class CountingProxy:
    """Forwards 127.0.0.1:<port> to a target and counts the bytes each way (what a client really sent)."""

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.sent = 0       # client → server
        self.received = 0   # server → client
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def reset(self):
        with self._lock:
            self.sent = self.received = 0

    def _accept(self):
        while not self._stop:
            try:
                client, _addr = self._sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, "sent"), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, "received"), daemon=True).start()

    def _pipe(self, src, dst, counter):
        copy_until_closed(src, dst, lambda n: self._count(counter, n))

    def _count(self, counter, n):
        with self._lock:
            setattr(self, counter, getattr(self, counter) + n)

    def close(self):
        self._stop = True
        self._sock.close()


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - start, value


def run_one_task_play(play, extra, label):
    """Run a one-task play the way a user would (ansible-playbook -i localhost, -c local, the json callback):
    (the process's wall seconds, the task's own seconds, the host's result). label names it in a failure."""
    extra = dict(extra, ansible_python_interpreter=str(REPO / ".venv" / "bin" / "python"))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), str(play), "-i", "localhost,", "-c", "local",
           "-e", json.dumps(extra)]
    wall, proc = timed(subprocess.run, cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode:
        raise SystemExit(f"{label} failed, ansible-playbook exited {proc.returncode}:\n"
                         f"{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    try:
        task = json.loads(proc.stdout)["plays"][0]["tasks"][0]
        start, end = (task["task"]["duration"][k].rstrip("Z") for k in ("start", "end"))
        result = task["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError) as exc:
        raise SystemExit(f"{label}: cannot read the json callback output ({exc}):\n{proc.stdout[-3000:]}") from exc
    return wall, (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), result


def median(values):
    return statistics.median(values) if values else float("nan")


def print_table(title, header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = "  ".join(str(h).ljust(w) for h, w in zip(header, widths))
    print(f"\n{title}\n{line}\n{'-' * len(line)}")
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


def write_result(name, data):
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    print(f"\nwrote {path.relative_to(REPO)}")
    return path
