"""A Docker Engine API on a unix socket, served by Debian's podman (`podman system service`), for image builds.

container_image_build talks to it through the docker SDK exactly as it would to dockerd. Everything
podman keeps lives under the run folder: its image store (vfs driver: no overlay mounts needed), its
temporary files, and the containers.conf / registries.conf it is started with; only its run state and
socket sit in a short folder of their own (podman limits the runroot path to 50 characters), removed
when the engine stops. The
local registries are listed as insecure there (plain HTTP on loopback), so a Dockerfile's FROM
pulls from them and the push goes to them.

RUN steps need an OCI runtime. Debian's crun refuses this kind of sandbox's hybrid cgroup layout
("cgroups in hybrid mode not supported"), so runc is used when installed, with cgroups disabled
(builds here set no resource limits). The Docker-compatible build endpoint always uses OCI
isolation (podman ignores `isolation` on it), hence the runtime choice and not chroot.

    engine = start_podman(run_dir, insecure_registries=["127.0.0.1:5000"])
    ...  # docker.DockerClient(base_url=engine.docker_host)
    engine.stop()
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from local_stack.programs import find_program


class PodmanMissing(RuntimeError):
    """The podman binary is not installed."""


class PodmanStartError(RuntimeError):
    """podman system service exited or did not answer in time."""


def podman_binary():
    return find_program("podman", PodmanMissing("the Debian package podman is not installed: run `make bootstrap` "
                                                "(scripts/bootstrap.sh installs podman and runc with apt-get)"))


def _toml_string(value):
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _answers(socket_path):
    """True once the service answers GET /_ping on its socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(socket_path))
            sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


class PodmanEngine:
    """One running `podman system service`: its docker_host URL, log and process."""

    def __init__(self, run_dir, proc, socket_path, log_file, runroot=None):
        self.run_dir = Path(run_dir)
        self.runroot = runroot  # a short folder outside run_dir, removed by stop()
        self.proc = proc
        self.socket_path = Path(socket_path)
        self.log_file = Path(log_file)

    @property
    def docker_host(self):
        return f"unix://{self.socket_path}"

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.runroot is not None:
            shutil.rmtree(self.runroot, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def write_configs(run_dir, insecure_registries=()):
    """containers.conf and registries.conf for the service; returns their paths."""
    run_dir = Path(run_dir)
    runtime = "runc" if shutil.which("runc") else "crun"
    containers_conf = run_dir / "containers.conf"
    containers_conf.write_text(
        "# written by local_stack/podman.py\n"
        "[containers]\n"
        'cgroups = "disabled"\n'
        "[engine]\n"
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f"events_logfile_path = {_toml_string(run_dir / 'events.log')}\n"
        f"runtime = {_toml_string(runtime)}\n"
    )
    lines = ["# written by local_stack/podman.py: the local registries speak plain HTTP",
             "unqualified-search-registries = []"]
    for host in insecure_registries:
        lines += ["", "[[registry]]", f"location = {_toml_string(host)}", "insecure = true"]
    registries_conf = run_dir / "registries.conf"
    registries_conf.write_text("\n".join(lines) + "\n")
    return containers_conf, registries_conf


def start_podman(run_dir, insecure_registries=(), timeout=30):
    """Start `podman system service` with its state under run_dir; returns a PodmanEngine once it answers."""
    binary = podman_binary()
    run_dir = Path(run_dir).resolve()
    for sub in ("storage", "tmp"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    containers_conf, registries_conf = write_configs(run_dir, insecure_registries)
    # podman refuses a runroot longer than 50 characters, and a unix socket path has ~100: both go to a short
    # folder of their own (run state only: locks, pids; the images stay in run_dir/storage).
    runroot = Path(tempfile.mkdtemp(prefix="triton-fil-podman-"))
    socket_path = runroot / "podman.sock"
    log_file = run_dir / "podman.log"
    env = dict(os.environ, CONTAINERS_CONF=str(containers_conf), CONTAINERS_REGISTRIES_CONF=str(registries_conf),
               TMPDIR=str(run_dir / "tmp"))
    cmd = [binary, "--root", str(run_dir / "storage"), "--runroot", str(runroot / "run"),
           "--storage-driver", "vfs", "--tmpdir", str(run_dir / "tmp"),
           "system", "service", "--time=0", f"unix://{socket_path}"]
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,  # noqa: S603
                                stdin=subprocess.DEVNULL)
    engine = PodmanEngine(run_dir, proc, socket_path, log_file, runroot=runroot)
    deadline = time.monotonic() + timeout
    while not _answers(socket_path):
        if proc.poll() is not None or time.monotonic() > deadline:
            engine.stop()
            raise PodmanStartError(f"podman system service did not answer on {socket_path}: "
                                   f"{log_file.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    return engine
