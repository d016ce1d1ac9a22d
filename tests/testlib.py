"""Helpers shared by the tests: the repo paths and an ansible-playbook runner."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class AnsibleRun:
    """The outcome of one ansible-playbook run, read through the ansible.posix.json callback."""

    rc: int
    stdout: str
    stderr: str
    data: dict = field(default_factory=dict)

    @property
    def stats(self):
        return self.data.get("stats", {})

    def total(self, key):
        return sum(host.get(key, 0) for host in self.stats.values())

    @property
    def changed(self):
        return self.total("changed")

    @property
    def failed(self):
        return self.total("failures") + self.total("unreachable")

    def tasks(self):
        for play in self.data.get("plays", []):
            yield from play.get("tasks", [])

    def changed_tasks(self):
        """(host, task name, the result without its bulkiest keys) of every task that reported changed."""
        bulky = ("stdout", "stdout_lines", "stderr_lines", "invocation")
        return [(hostname, task["task"]["name"], {k: v for k, v in result.items() if k not in bulky})
                for task in self.tasks() for hostname, result in task["hosts"].items() if result.get("changed")]

    def results(self, task_name, host=None):
        """Every host's result of the tasks whose name is or ends with task_name."""
        found = []
        for task in self.tasks():
            name = task["task"]["name"]
            if name == task_name or name.endswith(" : " + task_name):
                for hostname, result in task["hosts"].items():
                    if host is None or hostname == host:
                        found.append(result)
        if not found:
            names = [t["task"]["name"] for t in self.tasks()]
            raise AssertionError(f"no task named {task_name!r}; ran: {names}")
        return found

    def result(self, task_name, host=None):
        return self.results(task_name, host)[-1]


def assert_no_traceback(result):
    """A task result from fail_json, not from a module that crashed (ansible-core 2.19 sets "exception" to
    "(traceback unavailable)" on every fail_json; a crash leaves module_stderr and a real traceback)."""
    text = json.dumps(result)
    assert "module_stderr" not in result and "MODULE FAILURE" not in str(result.get("msg")), text[-3000:]
    assert "Traceback (most recent call last)" not in text, text[-3000:]


def without_file_permission_override():
    """A command prefix under which root obeys file permission bits (no CAP_DAC_OVERRIDE/READ_SEARCH).

    Tests of unreadable files and folders chmod them to 000; root reads them anyway unless these
    capabilities are dropped. [] when not root; None when root and setpriv (util-linux) is missing.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if not setpriv:
        return None
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]


def run_playbook(playbook, *, inventory=None, extra_vars=None, check=False, diff=False, limit=None,
                 env=None, verbosity=0, tmp_path=None, callback="ansible.posix.json", timeout=900, tags=None,
                 prefix=None):
    """Run ansible-playbook from the repo root; playbook is a path or the YAML text of one.

    prefix: a command to run ansible-playbook under (see without_file_permission_override).
    """
    if "\n" in str(playbook):
        assert tmp_path is not None, "an inline playbook needs tmp_path"
        path = Path(tmp_path) / "playbook.yml"
        path.write_text(textwrap.dedent(playbook))
        playbook = path
    cmd = list(prefix or []) + [str(REPO / ".venv" / "bin" / "ansible-playbook"), str(playbook)]
    cmd += ["-i", str(inventory)] if inventory else ["-i", "localhost,", "-c", "local"]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if limit:
        cmd += ["--limit", limit]
    if tags:
        cmd += ["--tags", tags]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    run_env = dict(os.environ)
    run_env.update({
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    })
    if callback:
        run_env["ANSIBLE_STDOUT_CALLBACK"] = callback
    # container_image_mirror's blob-location cache: one per test (tmp_path), never the user's ~/.cache.
    run_env["TRITON_FIL_BLOB_CACHE"] = str(Path(tmp_path) / "blob-locations.json") if tmp_path else ""
    run_env.update(env or {})
    proc = subprocess.run(cmd, cwd=REPO, env=run_env, capture_output=True, text=True, timeout=timeout, check=False)
    data = {}
    if callback == "ansible.posix.json":
        start = proc.stdout.find("{")
        if start >= 0:
            try:
                data = json.loads(proc.stdout[start:])
            except ValueError:
                data = {}
    return AnsibleRun(proc.returncode, proc.stdout, proc.stderr, data)


@contextmanager
def silent_listener():
    """A TCP listener on 127.0.0.1 that accepts connections and never says a word (a server stuck behind a live
    port); yields its address HOST:PORT."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()
        for conn in held:
            conn.close()
