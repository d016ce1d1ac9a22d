#!/usr/bin/env python
"""The GKE rehearsal: site.yml on a GKE target whose every endpoint is local, against a real control plane.

On top of the local stack (fake-gcs-server, tritonserver with the CPU fil stand-in, the registry) it runs:

- Google identity (controlplane/google_identity.py): two service accounts with key files, the cluster
  creator (``roles/container.admin``) and the deployer (``roles/container.clusterViewer``, RBAC only);
  tokens minted by google-auth and gke-gcloud-auth-plugin alike;
- the Kubernetes control plane (controlplane/cluster.py): etcd, kube-apiserver, kube-controller-manager,
  kube-scheduler, kwok and the metrics adapter, built from Go modules; Triton pods' ports forward to the
  local tritonserver;
- the GKE, IAM and Artifact Registry simulators; GKE's clusters hand out that control plane;
- a control endpoint (``TRITON_FIL_REHEARSAL_CONTROL``) that tests and ``run`` use: ``GET /writes``
  (write calls at every server since the last ``POST /mark``), ``GET /audit`` (the API server's audit events
  since then), ``POST /metric`` (the HPA's metric in Cloud Monitoring, for a while).

CLI:
  rehearsal.py run [--run-dir D] [--keep]   site.yml twice (second: changed=0, no writes), then teardown
  rehearsal.py up|down|status [--run-dir D]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

from local_stack.controlplane import build  # noqa: E402  pylint: disable=wrong-import-position
from local_stack.controlplane.cluster import ControlPlane  # noqa: E402  pylint: disable=wrong-import-position
from local_stack.controlplane.google_identity import GoogleIdentity  # noqa: E402  pylint: disable=wrong-import-position
from local_stack.simulators.artifact_registry import ArtifactRegistrySimulator  # noqa: E402  pylint: disable=wrong-import-position
from local_stack.simulators.compute import ComputeSimulator  # noqa: E402  pylint: disable=wrong-import-position
from local_stack.simulators.gke import GkeSimulator  # noqa: E402  pylint: disable=wrong-import-position
from local_stack.simulators.google_http import send_json, serve_http, stop_http  # noqa: E402  pylint: disable=wrong-import-position
from local_stack.simulators.iam import IamSimulator  # noqa: E402  pylint: disable=wrong-import-position
from local_stack.stack import LocalStack, Supervisor  # noqa: E402  pylint: disable=wrong-import-position

PROJECT = "triton-fil-rehearsal"
SERVICES = ["compute.googleapis.com", "container.googleapis.com", "storage.googleapis.com",
            "artifactregistry.googleapis.com", "iam.googleapis.com", "cloudresourcemanager.googleapis.com",
            "monitoring.googleapis.com", "containerfilesystem.googleapis.com"]
BUCKET = f"{PROJECT}-models"
CREATOR = f"triton-fil-creator@{PROJECT}.iam.gserviceaccount.com"
DEPLOYER = f"triton-fil-deployer@{PROJECT}.iam.gserviceaccount.com"
# The series triton_helm's HPA reads (triton_helm_autoscaling_metric's default name), as GMP writes it.
HPA_METRIC = "prometheus.googleapis.com/triton_queue_duration_us_per_request/gauge"
RECORD_SECONDS = 5.0
# Where GMP's rule evaluator would write the recorded series from (the chart's Rules object in the release
# namespace of the rehearsal inventory's cluster).
RECORD_LABELS = {"location": "us-central1-a", "cluster": "triton-fil", "namespace": "triton"}
# GKE operations, seconds (real ones take minutes; bench/time_to_ready scales them 1:60).
OP_SECONDS = {"default": 0.5, "CREATE_CLUSTER": 2.0, "CREATE_NODE_POOL": 1.0, "DELETE_CLUSTER": 1.0}
LOG_LINE = re.compile(r'\\?"(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (\S+) HTTP/[0-9.]+\\?" (\d+)')


def log_writes(path, offset):
    """Write calls (not GET/HEAD) in a fake-gcs-server or registry access log after offset."""
    if not path or not Path(path).exists():
        return []
    with open(path, "rb") as handle:
        handle.seek(offset)
        text = handle.read().decode(errors="replace")
    return [f"{m.group(1)} {m.group(2)}" for m in LOG_LINE.finditer(text) if m.group(1) not in ("GET", "HEAD")]


def scrape_totals(url):
    """(sum of nv_inference_queue_duration_us, sum of nv_inference_request_success) at a Triton metrics URL."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    totals = [0.0, 0.0]
    for line in text.splitlines():
        for index, name in enumerate(("nv_inference_queue_duration_us", "nv_inference_request_success")):
            if line.startswith(name + "{") or line.startswith(name + " "):
                totals[index] += float(line.rsplit(" ", 1)[1])
    return tuple(totals)


def log_size(path):
    return Path(path).stat().st_size if path and Path(path).exists() else 0


class RehearsalSupervisor(Supervisor):
    def start_gcs(self):
        # Info level: fake-gcs-server logs every request, which the write counters read.
        os.environ["TRITON_FIL_STACK_GCS_LOG_LEVEL"] = "info"
        return super().start_gcs()

    def start_extra(self, env, ports):
        self.identity = GoogleIdentity(self.run_dir / "identity")
        self.identity.service_account(CREATOR, roles=["roles/container.admin"])
        self.identity.service_account(DEPLOYER, roles=["roles/container.clusterViewer"])
        self.identity.serve()
        self.control_plane = ControlPlane(self.run_dir / "controlplane", build.bin_dir(), self.identity,
                                          project=PROJECT, triton_ports=ports).start()
        self.gke = GkeSimulator(op_seconds=OP_SECONDS, control_plane=self.control_plane).serve()
        self.iam = IamSimulator().serve()
        self.iam.add_bucket(BUCKET, PROJECT)
        self.artifact_registry = ArtifactRegistrySimulator()
        # What preflight's live checks ask Compute and Service Usage: the APIs on, T4s in the zone, quota.
        self.compute = ComputeSimulator().serve()
        self.compute.project(PROJECT, SERVICES)
        for zone in ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"):
            self.compute.offer(zone, "nvidia-tesla-t4", max_cards=4)
        self.compute.quota(PROJECT, "us-central1", "NVIDIA_T4_GPUS", 16, 0)
        self.marks = {}
        self.mark()
        self.control, control_url = self._serve_control()
        self.override = (None, 0.0)  # (value, until) set by POST /metric
        threading.Thread(target=self._record_loop, args=(ports["metrics"],), daemon=True).start()
        env.update({
            "TRITON_FIL_PROJECT": PROJECT,
            "TRITON_FIL_BUCKET": BUCKET,
            "TRITON_FIL_GKE_ENDPOINT": self.gke.url,
            "TRITON_FIL_IAM_ENDPOINT": self.iam.urls["iam"],
            "TRITON_FIL_RESOURCEMANAGER_ENDPOINT": self.iam.urls["resourcemanager"],
            "TRITON_FIL_STORAGE_IAM_ENDPOINT": self.iam.urls["storage"],
            "TRITON_FIL_ARTIFACT_REGISTRY_ENDPOINT": self.artifact_registry.url,
            "TRITON_FIL_COMPUTE_ENDPOINT": self.compute.urls["compute"],
            "TRITON_FIL_SERVICEUSAGE_ENDPOINT": self.compute.urls["serviceusage"],
            "TRITON_FIL_CREATOR": CREATOR,
            "TRITON_FIL_CREATOR_KEY": str(self.run_dir / "identity" / f"{CREATOR.split('@', maxsplit=1)[0]}-key.json"),
            "TRITON_FIL_DEPLOYER": DEPLOYER,
            "TRITON_FIL_DEPLOYER_KEY": str(self.run_dir / "identity" / f"{DEPLOYER.split('@', maxsplit=1)[0]}-key.json"),
            "TRITON_FIL_KUBE_ADMIN": str(self.control_plane.admin_kubeconfig),
            "TRITON_FIL_KUBE_SERVER": self.control_plane.server,
            "TRITON_FIL_KUBE_CA": str(self.control_plane.ca_file),
            "TRITON_FIL_AUDIT_LOG": str(self.control_plane.audit_log),
            "TRITON_FIL_MONITORING": self.control_plane.monitoring.url,
            "TRITON_FIL_REHEARSAL_CONTROL": control_url,
        })

    def stop_extra(self):
        stop_http(getattr(self, "control", None))
        for name in ("gke", "iam", "artifact_registry", "compute"):
            sim = getattr(self, name, None)
            if sim:
                sim.close()
        if getattr(self, "control_plane", None):
            self.control_plane.stop()
        if getattr(self, "identity", None):
            self.identity.close()

    # ------------------------------------------------------------------ Managed Prometheus, in short
    def _record_loop(self, metrics_port):
        """Scrape the tritonserver behind the Triton pods and record the HPA's series, as GMP would.

        The value is the chart's Rules expression over the last interval: the increase of
        nv_inference_queue_duration_us over that of nv_inference_request_success (0 without requests). A
        value set through POST /metric takes its place while it lasts.
        """
        previous = None
        while not self.stopping:
            time.sleep(RECORD_SECONDS)
            value, until = self.override
            if value is not None and time.monotonic() < until:
                self.control_plane.monitoring.write(PROJECT, HPA_METRIC, value, resource_labels=RECORD_LABELS)
                continue
            totals = scrape_totals(f"http://127.0.0.1:{metrics_port}/metrics")
            if totals is None:
                continue
            if previous is not None:
                requests_delta = totals[1] - previous[1]
                value = (totals[0] - previous[0]) / requests_delta if requests_delta > 0 else 0.0
                self.control_plane.monitoring.write(PROJECT, HPA_METRIC, value, resource_labels=RECORD_LABELS)
            previous = totals

    # ------------------------------------------------------------------ write counters
    def mark(self):
        self.gke.reset_log()
        self.iam.reset_log()
        self.compute.reset_log()
        self.marks = {"artifact_registry": len(self.artifact_registry.writes()),
                      "gcs": log_size(self.run_dir / "fake-gcs-server.log"),
                      "registry": log_size(self.registry_log),
                      # The audit log's timestamps have microseconds: a second-precision mark would let earlier
                      # events of the same second through.
                      "kubernetes": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}

    def writes(self):
        kube = self.control_plane.writes(since=self.marks["kubernetes"])
        return {
            "gke": [c[2] for c in self.gke.write_calls()],
            "compute": [str(c) for c in self.compute.write_calls()],
            "iam": [c[2] for c in self.iam.write_calls()],
            "artifact_registry": [str(w) for w in self.artifact_registry.writes()[self.marks["artifact_registry"]:]],
            "gcs": log_writes(self.run_dir / "fake-gcs-server.log", self.marks["gcs"]),
            "registry": log_writes(self.registry_log, self.marks["registry"]),
            "kubernetes": [f"{e['user']['username']} {e['verb']} {e.get('requestURI', '')}" for e in kube],
        }

    def audit(self):
        """The API server's audit events (clients under test) since the last mark, in short."""
        since = self.marks["kubernetes"]
        found, seen = [], set()
        for event in self.control_plane.audit_events():
            # A long-running request (port-forward, watch) is logged at ResponseStarted and ResponseComplete.
            if event.get("requestReceivedTimestamp", "") < since or event.get("auditID") in seen:
                continue
            seen.add(event.get("auditID"))
            ref = event.get("objectRef") or {}
            found.append({"user": (event.get("user") or {}).get("username", ""), "verb": event.get("verb"),
                          "uri": event.get("requestURI", ""), "resource": ref.get("resource", ""),
                          "subresource": ref.get("subresource", ""), "namespace": ref.get("namespace", ""),
                          "name": ref.get("name", ""), "code": (event.get("responseStatus") or {}).get("code")})
        return found

    def _serve_control(self):
        supervisor = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                return

            def _reply(self, body):
                send_json(self, 200, body)

            def do_GET(self):  # noqa: N802
                if self.path == "/audit":
                    self._reply(supervisor.audit())
                else:
                    self._reply(supervisor.writes())

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path == "/mark":
                    supervisor.mark()
                elif self.path == "/metric":
                    supervisor.override = (float(body["value"]), time.monotonic() + float(body.get("seconds", 60)))
                    supervisor.control_plane.monitoring.write(PROJECT, HPA_METRIC, body["value"],
                                                              resource_labels=RECORD_LABELS)
                self._reply({})

        return serve_http(Handler)


def control(env, path, body=None):
    request = urllib.request.Request(env["TRITON_FIL_REHEARSAL_CONTROL"] + path, method="POST" if body is not None else "GET",
                                     data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


class Rehearsal(LocalStack):
    """The rehearsal stack from Python (tests) or the CLI: LocalStack with the GKE side."""

    supervisor_kind = "rehearsal"

    def __init__(self, run_dir, venv=None):
        super().__init__(run_dir, venv, bucket=BUCKET)

    def up(self, timeout=180):
        build.bin_dir()  # build (once per version) in the foreground, where its progress shows
        return super().up(timeout=timeout)


def playbook(name, env, *args, log_as=None):
    cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), str(REPO / "playbooks" / name),
           "-i", str(REPO / "inventories" / "rehearsal"), *args]
    print(f"rehearsal: {' '.join(cmd[1:])}", flush=True)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if log_as:
        (Path(env["TRITON_FIL_RUN_DIR"]) / f"{log_as}.log").write_text(proc.stdout + proc.stderr)
    return proc


def recap(stdout):
    found = re.search(r"^rehearsal\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", stdout, re.MULTILINE)
    return {k: int(v) for k, v in zip(("ok", "changed", "unreachable", "failed"), found.groups())} if found else {}


def run(run_dir, keep=False):
    """site.yml (VERIFIED), site.yml again (changed=0, zero writes), teardown (no release left)."""
    stack = Rehearsal(run_dir)
    if not keep and Path(run_dir).exists():
        shutil.rmtree(run_dir)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(REPO / ".venv" / "bin"), str(REPO / ".tools" / "bin"), env.get("PATH", "")])
    env.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))
    failures = []
    try:
        env.update(stack.up())
        env["TRITON_FIL_STACK_ENV"] = str(Path(run_dir).resolve() / "env.json")
        first = playbook("site.yml", env, log_as="site-1")
        print(first.stdout[-6000:], flush=True)
        if first.returncode or "rehearsal: VERIFIED" not in first.stdout:
            return 1
        control(env, "/mark", {})
        second = playbook("site.yml", env, "--diff", log_as="site-2")
        writes = control(env, "/writes")
        stats = recap(second.stdout)
        print("rehearsal: second run: " + ", ".join(f"{k}={v}" for k, v in stats.items()), flush=True)
        for server, calls in writes.items():
            print(f"rehearsal:   writes at {server:18} {len(calls)}" + (f"  {calls[:5]}" if calls else ""), flush=True)
        if second.returncode or stats.get("changed") != 0 or any(writes.values()) \
                or "rehearsal: VERIFIED" not in second.stdout:
            print(second.stdout[-6000:], flush=True)
            failures.append("the second run changed something or wrote to a server")
        down = playbook("teardown.yml", env, "-e", "triton_fil_teardown_confirm=rehearsal", log_as="teardown")
        print(down.stdout[-3000:], flush=True)
        if down.returncode:
            failures.append("teardown failed")
        for failure in failures:
            print(f"rehearsal: FAILED: {failure}", flush=True)
        return 1 if failures else 0
    finally:
        stack.down()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "up", "down", "status"])
    parser.add_argument("--run-dir", default=str(REPO / ".run" / "rehearsal"))
    parser.add_argument("--keep", action="store_true", help="keep the run folder of an earlier run")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.run_dir, keep=args.keep)
    stack = Rehearsal(args.run_dir)
    if args.command == "up":
        print(json.dumps(stack.up(), indent=2))
    elif args.command == "down":
        stack.down()
    else:
        pid = stack.running_pid()
        print(json.dumps({"running": bool(pid), "pid": pid, "env": stack.env() if pid else None}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
