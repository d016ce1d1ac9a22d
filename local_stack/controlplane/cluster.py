"""A real Kubernetes control plane on 127.0.0.1, shaped like a GKE cluster, for the rehearsal and the tests.

Programs (built from Go modules by build.py): etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok (fake nodes and pods, and the kubelet API for port-forward) and the metrics adapter.
Everything listens on free loopback ports and keeps its state in one run folder.

The API server runs as GKE's does in what the collection can observe: TLS with the cluster's own CA,
``--authorization-mode=Node,RBAC,Webhook`` (the webhook is IAM, asked after RBAC), Google tokens
authenticated by a webhook (google_identity.py), the default admission plugins, the aggregation layer
with its own front-proxy CA, and an egress proxy for connections into the cluster (network.py). An audit
log records every request of the clients under test (system components excluded), so a test can count
the writes a run made.

GKE does some things in a cluster by itself, and so does this module when the GKE simulator tells it
(the ``control_plane`` interface of local_stack's GKE simulator):

- ``sync_node_pool(cluster, pool)``: Nodes for the pool, named and labelled as GKE names and labels them
  (``cloud.google.com/gke-nodepool``, ``cloud.google.com/gke-accelerator``, ``node.kubernetes.io/instance-type``,
  ``topology.kubernetes.io/zone``, ``cloud.google.com/gke-gpu-driver-version`` when GKE installs the driver,
  ``cloud.google.com/gke-spot``), with the ``nvidia.com/gpu=present:NoSchedule`` taint GKE puts on GPU nodes
  (GKE docs, "Run GPUs in GKE Standard node pools": "GKE automatically adds a node taint ... nvidia.com/gpu
  ... NoSchedule"). ``nvidia.com/gpu`` capacity appears only once a driver is there: after
  ``gpu_driver_delay`` seconds with GKE-managed drivers, or once an ``nvidia-driver-installer`` pod runs on
  the node when the pool disabled GKE's driver installation (the gpu_drivers daemonset mode).
- a cluster autoscaler for pools with autoscaling: a node is added (up to the maximum) while a pod that
  would fit the pool is unschedulable, and an empty node above the minimum is removed after a grace period
  (GKE docs, "Cluster autoscaler": scale up on unschedulable pods, scale down of underused nodes).
- ``enable_managed_prometheus()``: the Google Managed Prometheus CRDs (PodMonitoring, Rules) from the
  pinned upstream release (manifests/gmp-crds.json).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
import yaml

from local_stack.controlplane import pki
from local_stack.controlplane.monitoring import Monitoring
from local_stack.controlplane.network import EgressProxy
from local_stack.simulators.google_http import free_port

HERE = Path(__file__).resolve().parent
SERVICE_CIDR = "10.8.0.0/20"
POD_CIDR = "10.4.0.0/14"
NODE_IP = "10.128.0.2"      # every kwok node's InternalIP: the "VPC" address the egress proxy routes
KUBELET_PORT = 10250
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
GKE_CONTROL_PLANE_USER = "system:gke-control-plane"
KWOK_USER = "system:kwok-controller"
ADAPTER_USER = "system:serviceaccount:custom-metrics:custom-metrics-stackdriver-adapter"
ADAPTER_SERVICE = "custom-metrics/custom-metrics-stackdriver-adapter"
SYSTEM_USERS = ("system:kube-controller-manager", "system:kube-scheduler", "system:apiserver", KWOK_USER,
                GKE_CONTROL_PLANE_USER, ADAPTER_USER)
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
# vCPU and memory (GiB) of the machine types the inventories use (Compute Engine machine families docs).
MACHINES = {"n1-standard-4": (4, 15), "n1-standard-8": (8, 30), "n1-standard-16": (16, 60),
            "g2-standard-4": (4, 16), "g2-standard-8": (8, 32), "e2-standard-4": (4, 16), "e2-medium": (2, 4)}


def log(msg):
    print(f"controlplane: {msg}", file=sys.stderr, flush=True)


def kubeconfig(path, server, ca_file, *, cert=None, key=None, token=None, context="local"):
    user = {}
    if cert:
        user = {"client-certificate": str(cert), "client-key": str(key)}
    if token:
        user = {"token": token}
    Path(path).write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": context, "user": user}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }))
    Path(path).chmod(0o600)
    return Path(path)


class Api:
    """A small REST client for the API server (the stack's own calls; the collection uses kubernetes.core)."""

    def __init__(self, server, ca_file, cert, key):
        self.server = server
        self.session = requests.Session()
        # Not the environment's CA bundle or proxies (REQUESTS_CA_BUNDLE would override session.verify).
        self.session.trust_env = False
        self.session.verify = str(ca_file)
        self.session.cert = (str(cert), str(key))

    def request(self, method, path, body=None, content_type="application/json", ok=(200, 201), **params):
        response = self.session.request(method, self.server + path, params=params or None,
                                        data=None if body is None else json.dumps(body),
                                        headers={"Content-Type": content_type}, timeout=30)
        if response.status_code not in ok:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else {}

    def get(self, path, **params):
        return self.request("GET", path, ok=(200,), **params)

    def find(self, path, **params):
        response = self.session.get(self.server + path, params=params or None, timeout=30)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def apply(self, path, obj):
        """Server-side apply as the GKE control plane (field manager gke)."""
        return self.request("PATCH", path, obj, content_type="application/apply-patch+yaml",
                            fieldManager="gke", force="true")

    def delete(self, path):
        return self.request("DELETE", path, ok=(200, 202, 404))


class Process:
    """One supervised program: restarted with backoff when it exits (as a kubelet restarts a container)."""

    def __init__(self, name, cmd, log_file, env=None, restart=False, prepare=None):
        """prepare() runs before each start and returns False while the program cannot start yet."""
        self.name, self.cmd, self.log_file, self.env, self.restart = name, cmd, log_file, env, restart
        self.prepare = prepare
        self.proc = None
        self.stopping = False
        self.restarts = 0
        self._thread = None

    def start(self):
        if self.prepare is None or self.prepare():
            self._spawn()
        if self.restart:
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        return self

    def _spawn(self):
        with open(self.log_file, "ab") as out:
            out.write(f"\n--- controlplane: starting {self.name} at {time.ctime()}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT,  # pylint: disable=consider-using-with
                                         stdin=subprocess.DEVNULL, env=self.env)

    def _watch(self):
        backoff = 0.5
        while not self.stopping:
            if self.proc is not None:
                self.proc.wait()
                if self.stopping:
                    return
                self.restarts += 1
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            if self.stopping:
                return
            if self.prepare is None or self.prepare():
                self._spawn()
            else:
                self.proc = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10):
        self.stopping = True
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_until(predicate, timeout, what, processes=()):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as exc:  # pylint: disable=broad-except
            last = exc
        for proc in processes:
            if proc.proc is not None and proc.proc.poll() is not None and not proc.restart:
                tail = Path(proc.log_file).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{what}: {proc.name} exited with {proc.proc.returncode}\n{tail}")
        time.sleep(0.25)
    raise RuntimeError(f"{what}: not ready after {timeout:.0f}s ({last})")


class ControlPlane:
    """Start with ``start()``, stop with ``stop()``; the GKE simulator calls the pool and cluster hooks."""

    def __init__(self, run_dir, bin_dir, identity, *, project="triton-fil-rehearsal", gpu_driver_delay=3.0,
                 triton_ports=None, autoscaler_grace=20.0):
        self.run_dir = Path(run_dir).resolve()
        self.bin_dir = Path(bin_dir)
        self.identity = identity
        self.project = project
        self.gpu_driver_delay = gpu_driver_delay
        self.autoscaler_grace = autoscaler_grace
        self.triton_ports = triton_ports or {}
        self.processes = []
        self.pools = {}        # (cluster, pool name) -> pool resource as GKE returns it
        self.empty_since = {}  # node name -> monotonic time it was first seen without workload pods
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.monitoring = None
        self.proxy = None
        self.api = None
        self.ports = {}
        self.server = None

    # ------------------------------------------------------------------ facts for the GKE simulator
    @property
    def endpoint(self):
        return f"127.0.0.1:{self.ports['apiserver']}"

    @property
    def ca_certificate(self):
        return base64.b64encode(self.ca.pem).decode()

    @property
    def ca_file(self):
        return self.ca.cert_path

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout=120):
        started = time.monotonic()
        for sub in ("pki", "etcd", "logs", "kubeconfigs"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        self.ports = {name: free_port() for name in ("etcd", "etcd-peer", "apiserver", "controller-manager",
                                                     "scheduler", "kwok", "adapter")}
        self._pki()
        self.monitoring = Monitoring().serve()
        self._start_etcd()
        self._start_apiserver()
        self.server = f"https://127.0.0.1:{self.ports['apiserver']}"
        cert, key = self.ca.issue("gke-control-plane", GKE_CONTROL_PLANE_USER, organizations=["system:masters"], client=True)
        self.api = Api(self.server, self.ca.cert_path, cert, key)
        self.admin_kubeconfig = kubeconfig(self.run_dir / "kubeconfigs" / "admin.yaml", self.server,
                                           self.ca.cert_path, cert=cert, key=key)
        wait_until(lambda: self.api.session.get(self.server + "/readyz", timeout=5).status_code == 200,
                   timeout, "kube-apiserver /readyz", self.processes)
        self._start_component("kube-controller-manager", "system:kube-controller-manager", [
            f"--secure-port={self.ports['controller-manager']}", "--bind-address=127.0.0.1",
            f"--service-account-private-key-file={self.sa_key}", f"--root-ca-file={self.ca.cert_path}",
            "--use-service-account-credentials=true", f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--cluster-signing-cert-file={self.ca.cert_path}", f"--cluster-signing-key-file={self.ca.folder / 'ca.key'}",
            "--leader-elect=false", "--controllers=*,-node-ipam-controller,-cloud-node-lifecycle-controller,-service-lb-controller,-node-route-controller",
            # Faster than the defaults (15 s sync, 5 min downscale window) so that a test sees the HPA act.
            "--horizontal-pod-autoscaler-sync-period=3s", "--horizontal-pod-autoscaler-downscale-stabilization=10s",
            "--concurrent-deployment-syncs=5", "--node-monitor-grace-period=60s",
        ])
        self._start_component("kube-scheduler", "system:kube-scheduler", [
            f"--secure-port={self.ports['scheduler']}", "--bind-address=127.0.0.1", "--leader-elect=false",
        ])
        self._start_kwok()
        self._start_proxy()
        self._start_adapter()
        wait_until(self._default_namespace_ready, timeout, "default service account and namespaces", self.processes)
        threading.Thread(target=self._agent_loop, daemon=True).start()
        log(f"kube-apiserver at {self.server} ready in {time.monotonic() - started:.1f}s (logs in {self.run_dir / 'logs'})")
        return self

    def stop(self):
        self.stopping.set()
        for proc in reversed(self.processes):
            proc.stop()
        for server in (self.proxy, self.monitoring):
            if server:
                server.close()

    def _pki(self):
        self.ca = pki.CertificateAuthority(self.run_dir / "pki" / "cluster", "kubernetes")
        self.front_proxy_ca = pki.CertificateAuthority(self.run_dir / "pki" / "front-proxy", "front-proxy-ca")
        self.sa_key, self.sa_pub = pki.service_account_key(self.run_dir / "pki")
        self.serving = self.ca.issue("apiserver", "kube-apiserver", server=True, server_names=[
            "127.0.0.1", "localhost", "10.8.0.1", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local"])
        self.kubelet_client = self.ca.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                            organizations=["system:masters"], client=True)
        self.front_proxy_client = self.front_proxy_ca.issue("front-proxy-client", "front-proxy-client", client=True)
        self.kwok_serving = self.ca.issue("kubelet", "kwok-kubelet", server=True, server_names=[NODE_IP, "127.0.0.1"])

    def _log(self, name):
        return self.run_dir / "logs" / f"{name}.log"

    def _start_etcd(self):
        port, peer = self.ports["etcd"], self.ports["etcd-peer"]
        proc = Process("etcd", [
            str(self.bin_dir / "etcd"), "--name=local", f"--data-dir={self.run_dir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{port}", f"--advertise-client-urls=http://127.0.0.1:{port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}", f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=local=http://127.0.0.1:{peer}", "--log-level=warn", "--unsafe-no-fsync=true",
            "--quota-backend-bytes=1073741824",
        ], self._log("etcd")).start()
        self.processes.append(proc)

    def _start_apiserver(self):
        pki_dir = self.run_dir / "pki"
        egress = pki_dir / "egress-selector.yaml"
        egress.write_text(yaml.safe_dump({
            "apiVersion": "apiserver.k8s.io/v1beta1", "kind": "EgressSelectorConfiguration",
            "egressSelections": [{"name": "cluster", "connection": {
                "proxyProtocol": "HTTPConnect", "transport": {"uds": {"udsName": str(self.run_dir / "egress.sock")}}}}],
        }))
        audit_policy = pki_dir / "audit-policy.yaml"
        audit_policy.write_text(yaml.safe_dump({
            "apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
            "rules": [
                {"level": "None", "users": list(SYSTEM_USERS)},
                {"level": "None", "userGroups": ["system:serviceaccounts:kube-system", "system:nodes"]},
                {"level": "None", "nonResourceURLs": ["/healthz*", "/readyz*", "/livez*", "/version", "/openapi*", "/api*"]},
                {"level": "Metadata"},
            ],
        }))
        authn = self.identity.webhook_kubeconfig(pki_dir / "authn-webhook.yaml", "tokenreview")
        authz = self.identity.webhook_kubeconfig(pki_dir / "authz-webhook.yaml", "authorize")
        cert, key = self.serving
        proc = Process("kube-apiserver", [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            f"--secure-port={self.ports['apiserver']}", "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--tls-cert-file={cert}", f"--tls-private-key-file={key}", f"--client-ca-file={self.ca.cert_path}",
            f"--service-account-key-file={self.sa_pub}", f"--service-account-signing-key-file={self.sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC,Webhook", f"--authorization-webhook-config-file={authz}",
            "--authorization-webhook-version=v1", "--authorization-webhook-cache-authorized-ttl=5s",
            "--authorization-webhook-cache-unauthorized-ttl=1s",
            f"--authentication-token-webhook-config-file={authn}", "--authentication-token-webhook-version=v1",
            "--authentication-token-webhook-cache-ttl=10s",
            f"--requestheader-client-ca-file={self.front_proxy_ca.cert_path}",
            "--requestheader-allowed-names=front-proxy-client", "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--requestheader-group-headers=X-Remote-Group", "--requestheader-username-headers=X-Remote-User",
            f"--proxy-client-cert-file={self.front_proxy_client[0]}", f"--proxy-client-key-file={self.front_proxy_client[1]}",
            f"--kubelet-client-certificate={self.kubelet_client[0]}", f"--kubelet-client-key={self.kubelet_client[1]}",
            "--kubelet-preferred-address-types=InternalIP", f"--egress-selector-config-file={egress}",
            f"--audit-policy-file={audit_policy}", f"--audit-log-path={self.audit_log}", "--audit-log-maxsize=200",
            "--allow-privileged=true", "--profiling=false", "--event-ttl=30m",
        ], self._log("kube-apiserver")).start()
        self.processes.append(proc)

    @property
    def audit_log(self):
        return self.run_dir / "logs" / "audit.log"

    def _start_component(self, name, user, args):
        cert, key = self.ca.issue(name, user, client=True)
        config = kubeconfig(self.run_dir / "kubeconfigs" / f"{name}.yaml", self.server, self.ca.cert_path,
                            cert=cert, key=key)
        proc = Process(name, [str(self.bin_dir / name), f"--kubeconfig={config}",
                              f"--authentication-kubeconfig={config}", f"--authorization-kubeconfig={config}", *args],
                       self._log(name)).start()
        self.processes.append(proc)

    def _start_kwok(self):
        cert, key = self.ca.issue("kwok-controller", KWOK_USER, organizations=["system:masters"], client=True)
        config = kubeconfig(self.run_dir / "kubeconfigs" / "kwok.yaml", self.server, self.ca.cert_path, cert=cert, key=key)
        # Triton pods' ports 8000/8001/8002 go to the local tritonserver (ClusterPortForward, kwok's config).
        forwards = [{"ports": [pod_port], "target": {"port": int(local), "address": "127.0.0.1"}}
                    for pod_port, local in ((8000, self.triton_ports.get("http")), (8001, self.triton_ports.get("grpc")),
                                            (8002, self.triton_ports.get("metrics"))) if local]
        kwok_config = self.run_dir / "kubeconfigs" / "kwok-config.yaml"
        documents = []
        if forwards:
            documents.append({"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterPortForward",
                              "metadata": {"name": "triton"}, "spec": {"forwards": forwards}})
        from local_stack.controlplane import build  # pylint: disable=import-outside-toplevel
        stages = [doc for text in build.kwok_stages() for doc in yaml.safe_load_all(text) if doc]
        kwok_config.write_text(yaml.safe_dump_all(documents + stages))
        serving_cert, serving_key = self.kwok_serving
        proc = Process("kwok", [
            str(self.bin_dir / "kwok"), f"--kubeconfig={config}", f"--config={kwok_config}",
            f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
            f"--node-ip={NODE_IP}", f"--node-port={KUBELET_PORT}", f"--cidr={POD_CIDR}",
            f"--server-address=127.0.0.1:{self.ports['kwok']}", "--node-lease-duration-seconds=40",
            f"--tls-cert-file={serving_cert}", f"--tls-private-key-file={serving_key}",
        ], self._log("kwok")).start()
        self.processes.append(proc)

    def _start_proxy(self):
        def service_of(ip):
            services = self.api.get("/api/v1/services").get("items", [])
            for svc in services:
                if ip in (svc["spec"].get("clusterIPs") or [svc["spec"].get("clusterIP")]):
                    return f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
            return None

        self.proxy = EgressProxy(self.run_dir / "egress.sock", NODE_IP, KUBELET_PORT,
                                 ("127.0.0.1", self.ports["kwok"]), service_of).serve()
        self.proxy.backends[ADAPTER_SERVICE] = ("127.0.0.1", self.ports["adapter"])

    def _adapter_token(self):
        """A token of the adapter's Kubernetes service account, as a pod would have it projected."""
        namespace, name = ADAPTER_SERVICE.split("/")
        try:
            review = self.api.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
                                      {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                       "spec": {"expirationSeconds": 86400}})
        except RuntimeError:
            return False  # no service account yet: the metrics_adapter role has not applied the manifest
        kubeconfig(self.run_dir / "kubeconfigs" / "metrics-adapter.yaml", self.server, self.ca.cert_path,
                   token=review["status"]["token"])
        return True

    def _start_adapter(self):
        # The adapter authenticates as its Kubernetes service account, so it has exactly the RBAC the
        # metrics_adapter role applies with the upstream manifest; until then it cannot start or fails and is
        # restarted, as the real pod would be.
        config = self.run_dir / "kubeconfigs" / "metrics-adapter.yaml"
        cert_dir = self.run_dir / "pki" / "metrics-adapter"
        cert_dir.mkdir(exist_ok=True)
        proc = Process("metrics-adapter", [
            str(self.bin_dir / "metrics-adapter"), f"--lister-kubeconfig={config}",
            f"--authentication-kubeconfig={config}", f"--authorization-kubeconfig={config}",
            f"--secure-port={self.ports['adapter']}", "--bind-address=127.0.0.1", f"--cert-dir={cert_dir}",
            f"--monitoring-endpoint={self.monitoring.url}", f"--project={self.project}", "--v=1",
        ], self._log("metrics-adapter"), restart=True, prepare=self._adapter_token).start()
        self.processes.append(proc)

    def _default_namespace_ready(self):
        return self.api.find("/api/v1/namespaces/default/serviceaccounts/default") is not None

    # ------------------------------------------------------------------ GKE hooks
    def enable_managed_prometheus(self):
        crds = json.loads((HERE / "manifests" / "gmp-crds.json").read_text())["items"]
        for crd in crds:
            self.api.apply(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}", crd)

    def delete_cluster(self, cluster_name):
        with self.lock:
            for key in [k for k in self.pools if k[0] == cluster_name]:
                self.delete_node_pool(cluster_name, key[1])

    def delete_node_pool(self, cluster_name, pool_name):
        with self.lock:
            self.pools.pop((cluster_name, pool_name), None)
        for node in self._nodes(pool_name):
            self.api.delete(f"/api/v1/nodes/{node['metadata']['name']}")

    def sync_node_pool(self, cluster_name, pool):
        """Make the pool's Nodes match what GKE would run for it (count, labels, taints)."""
        with self.lock:
            self.pools[(cluster_name, pool["name"])] = pool
        nodes = self._nodes(pool["name"])
        want = self._wanted_count(pool, len(nodes))
        for node in nodes:
            self._apply_node(cluster_name, pool, node["metadata"]["name"])
        for index in range(len(nodes), want):
            self._apply_node(cluster_name, pool, self._node_name(cluster_name, pool["name"], index))
        for node in sorted(nodes, key=lambda n: n["metadata"]["name"])[want:]:
            self.api.delete(f"/api/v1/nodes/{node['metadata']['name']}")

    @staticmethod
    def _wanted_count(pool, current):
        zones = max(1, len(pool.get("locations") or [None]))
        autoscaling = pool.get("autoscaling") or {}
        if autoscaling.get("enabled"):
            low = int(autoscaling.get("minNodeCount", 0)) * zones
            high = int(autoscaling.get("maxNodeCount", 0)) * zones
            return min(max(current or int(pool.get("initialNodeCount", 1)) * zones, low), high)
        return int(pool.get("initialNodeCount", 1)) * zones

    @staticmethod
    def _node_name(cluster_name, pool_name, index):
        digest = hashlib.sha256(f"{cluster_name}/{pool_name}".encode()).hexdigest()[:8]
        suffix = hashlib.sha256(f"{cluster_name}/{pool_name}/{index}".encode()).hexdigest()[:4]
        return f"gke-{cluster_name[:14]}-{pool_name[:14]}-{digest}-{suffix}"

    def _nodes(self, pool_name):
        return self.api.get("/api/v1/nodes", labelSelector=f"cloud.google.com/gke-nodepool={pool_name}").get("items", [])

    def _apply_node(self, cluster_name, pool, name):
        config = pool.get("config") or {}
        machine = config.get("machineType", "e2-medium")
        cpus, memory = MACHINES.get(machine, (4, 16))
        accelerators = config.get("accelerators") or []
        zones = pool.get("locations") or ["us-central1-a"]
        labels = {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "cloud.google.com/gke-nodepool": pool["name"], "cloud.google.com/machine-family": machine.split("-")[0],
            "node.kubernetes.io/instance-type": machine, "topology.kubernetes.io/zone": zones[0],
            "topology.kubernetes.io/region": zones[0].rsplit("-", 1)[0], "cloud.google.com/gke-os-distribution": "cos",
            **(config.get("labels") or {}),
        }
        taints = [{"key": t["key"], "value": t.get("value", ""),
                   "effect": {"NO_SCHEDULE": "NoSchedule", "PREFER_NO_SCHEDULE": "PreferNoSchedule",
                              "NO_EXECUTE": "NoExecute"}.get(t.get("effect"), t.get("effect"))}
                  for t in config.get("taints") or []]
        capacity = {"cpu": str(cpus), "memory": f"{memory}Gi", "pods": "110", "ephemeral-storage": "100Gi"}
        allocatable = {"cpu": f"{cpus * 1000 - 200}m", "memory": f"{memory * 1024 - 1800}Mi", "pods": "110",
                       "ephemeral-storage": "90Gi"}
        if accelerators:
            accel = accelerators[0]
            labels["cloud.google.com/gke-accelerator"] = accel.get("acceleratorType", "")
            driver = (accel.get("gpuDriverInstallationConfig") or {}).get("gpuDriverVersion", "")
            if driver and driver != "INSTALLATION_DISABLED":
                labels["cloud.google.com/gke-gpu-driver-version"] = driver.lower()
            taints.append({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"})
        if config.get("spot"):
            labels["cloud.google.com/gke-spot"] = "true"
        if (config.get("workloadMetadataConfig") or {}).get("mode") == "GKE_METADATA":
            labels["iam.gke.io/gke-metadata-server-enabled"] = "true"
        existing = self.api.find(f"/api/v1/nodes/{name}")
        if existing is not None:
            # Keep the GPU capacity a driver already brought; only labels and taints follow the pool.
            for key in ("nvidia.com/gpu",):
                if key in (existing.get("status", {}).get("capacity") or {}):
                    capacity[key] = existing["status"]["capacity"][key]
                    allocatable[key] = existing["status"]["allocatable"][key]
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": labels,
                             "annotations": {FAKE_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0",
                                             "container.googleapis.com/instance_id": str(int(hashlib.sha256(name.encode()).hexdigest(), 16) % 10 ** 19)}},
                "spec": {"taints": taints, "providerID": f"gce://{self.project}/{zones[0]}/{name}"}}
        self.api.apply(f"/api/v1/nodes/{name}", node)
        if existing is None:
            self.api.request("PATCH", f"/api/v1/nodes/{name}/status",
                             {"status": {"capacity": capacity, "allocatable": allocatable}},
                             content_type="application/merge-patch+json")

    # ------------------------------------------------------------------ what GKE's nodes and autoscaler do
    def _agent_loop(self):
        while not self.stopping.wait(1.0):
            try:
                self._drivers_step()
                self._autoscaler_step()
            except Exception as exc:  # pylint: disable=broad-except
                log(f"node agent: {exc}")

    def _drivers_step(self):
        nodes = self.api.get("/api/v1/nodes", labelSelector="cloud.google.com/gke-accelerator").get("items", [])
        installers = None
        for node in nodes:
            if "nvidia.com/gpu" in (node.get("status", {}).get("capacity") or {}):
                continue
            with self.lock:
                pool = next((p for (c, n), p in self.pools.items()
                             if n == node["metadata"]["labels"].get("cloud.google.com/gke-nodepool")), None)
            if pool is None:
                continue
            accel = ((pool.get("config") or {}).get("accelerators") or [{}])[0]
            count = str(accel.get("acceleratorCount", "1"))
            if "cloud.google.com/gke-gpu-driver-version" in node["metadata"]["labels"]:
                created = node["metadata"]["creationTimestamp"]
                age = time.time() - time.mktime(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ")) + time.timezone
                ready = age >= self.gpu_driver_delay
            else:
                if installers is None:
                    installers = self.api.get("/api/v1/namespaces/kube-system/pods",
                                              labelSelector="k8s-app=nvidia-driver-installer").get("items", [])
                ready = any(p.get("spec", {}).get("nodeName") == node["metadata"]["name"]
                            and p.get("status", {}).get("phase") == "Running" for p in installers)
            if ready:
                self.api.request("PATCH", f"/api/v1/nodes/{node['metadata']['name']}/status",
                                 {"status": {"capacity": {"nvidia.com/gpu": count},
                                             "allocatable": {"nvidia.com/gpu": count}}},
                                 content_type="application/merge-patch+json")

    def _autoscaler_step(self):
        with self.lock:
            pools = dict(self.pools)
        if not any((p.get("autoscaling") or {}).get("enabled") for p in pools.values()):
            return
        pods = self.api.get("/api/v1/pods").get("items", [])
        pending = [p for p in pods if p.get("status", {}).get("phase") == "Pending" and not p["spec"].get("nodeName")
                   and any(c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable"
                           for c in p.get("status", {}).get("conditions", []))]
        for (cluster_name, pool_name), pool in pools.items():
            autoscaling = pool.get("autoscaling") or {}
            if not autoscaling.get("enabled"):
                continue
            nodes = self._nodes(pool_name)
            high = int(autoscaling.get("maxNodeCount", 0)) * max(1, len(pool.get("locations") or [None]))
            low = int(autoscaling.get("minNodeCount", 0)) * max(1, len(pool.get("locations") or [None]))
            if any(self._fits_pool(p, pool) for p in pending) and len(nodes) < high:
                names = {n["metadata"]["name"] for n in nodes}
                index = next(i for i in range(high + len(names) + 1)
                             if self._node_name(cluster_name, pool_name, i) not in names)
                log(f"autoscaler: pool {pool_name} {len(nodes)} -> {len(nodes) + 1} node(s) for a pending pod")
                self._apply_node(cluster_name, pool, self._node_name(cluster_name, pool_name, index))
                continue
            busy = {p["spec"].get("nodeName") for p in pods
                    if not any(o.get("kind") == "DaemonSet" for o in p["metadata"].get("ownerReferences", []))}
            now = time.monotonic()
            for node in sorted(nodes, key=lambda n: n["metadata"]["name"], reverse=True):
                name = node["metadata"]["name"]
                if name in busy:
                    self.empty_since.pop(name, None)
                    continue
                since = self.empty_since.setdefault(name, now)
                if now - since >= self.autoscaler_grace and len(nodes) > low:
                    log(f"autoscaler: pool {pool_name} {len(nodes)} -> {len(nodes) - 1} node(s), {name} empty")
                    self.api.delete(f"/api/v1/nodes/{name}")
                    self.empty_since.pop(name, None)
                    break

    @staticmethod
    def _fits_pool(pod, pool):
        """Whether a new node of the pool could take the pod (its nodeSelector and GPU request)."""
        config = pool.get("config") or {}
        labels = {"cloud.google.com/gke-nodepool": pool["name"], **(config.get("labels") or {})}
        if config.get("accelerators"):
            labels["cloud.google.com/gke-accelerator"] = config["accelerators"][0].get("acceleratorType", "")
        selector = pod["spec"].get("nodeSelector") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            return False
        wants_gpu = any("nvidia.com/gpu" in ((c.get("resources") or {}).get("limits") or {})
                        for c in pod["spec"].get("containers", []))
        return wants_gpu == bool(config.get("accelerators"))

    # ------------------------------------------------------------------ what the tests read
    def audit_events(self):
        if not self.audit_log.exists():
            return []
        events = []
        for line in self.audit_log.read_text(errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def writes(self, since=None, users=None):
        """Audit events of writes by clients under test (system components are not logged).

        A write is a request that can change stored state: create, update, patch or delete, but not a
        server-side dry run (dryRun=All stores nothing) nor a review (access and token reviews are answers).
        """
        found, seen = [], set()
        for event in self.audit_events():
            if event.get("verb") not in WRITE_VERBS or "dryRun=" in event.get("requestURI", ""):
                continue
            if event.get("auditID") in seen:
                continue
            seen.add(event.get("auditID"))
            if (event.get("objectRef") or {}).get("resource", "").endswith("reviews"):
                continue
            if since and event.get("requestReceivedTimestamp", "") < since:
                continue
            user = (event.get("user") or {}).get("username", "")
            if users is not None and user not in users:
                continue
            found.append(event)
        return found


def binaries_dir():
    """The built programs (builds them on first use; see build.py)."""
    from local_stack.controlplane import build  # pylint: disable=import-outside-toplevel
    return build.bin_dir()


def which(name):
    return shutil.which(name) or os.path.join("/usr/bin", name)
