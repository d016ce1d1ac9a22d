"""triton_verify through the Kubernetes API (pods/portforward), against a real tritonserver.

The in-memory API server speaks the websocket port-forward protocol and relays a pod's ports 8000/8001/8002
to a real local tritonserver serving model_repository/ (the CPU stand-in `fil` backend); the URLs given to the
module name the in-cluster DNS name, which does not resolve here, so every answer had to come through the
tunnel. The triton_helm role then hands the tunnel over to the verify role in one playbook run: the
selector it takes from the Service must match the pods of the chart's Deployment.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.tunnel import (
    TunnelError, local_url, pick_ready_pod, url_port,
)
from fake_apiserver import FakeApiServer
from local_stack.backend_dir import assemble_backend_dir
from local_stack.stack import free_port, http_ok, stop_process, tritonserver_binary, wait_for
from test_k8s_roles_fake_api import AVAILABLE, FAKE_HELM, FAST, HELM, LB_READY, status_after
from testlib import REPO, run_playbook

pytest.importorskip("kubernetes")
pytest.importorskip("tritonclient.http")
pytestmark = pytest.mark.slow

REFERENCE = REPO / "model_repository" / "fil_reference.json"
IN_CLUSTER = "triton-fil.triton.svc.cluster.local"
SELECTOR = "app.kubernetes.io/instance=triton-fil,app.kubernetes.io/name=triton"
POD_LABELS = {"app.kubernetes.io/name": "triton", "app.kubernetes.io/instance": "triton-fil"}


@pytest.fixture(scope="module")
def triton(tmp_path_factory):
    """A real tritonserver on model_repository/ (cpu config): {'http': port, 'grpc': port, 'metrics': port}."""
    run_dir = tmp_path_factory.mktemp("triton")
    venv = REPO / ".venv"
    env = dict(os.environ)
    env.update(assemble_backend_dir(run_dir / "backends", venv))
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    log_file = run_dir / "tritonserver.log"
    cmd = [str(tritonserver_binary(venv)), f"--model-repository={REPO / 'model_repository'}",
           "--model-config-name=cpu", f"--backend-directory={run_dir / 'backends'}",
           f"--http-port={ports['http']}", f"--grpc-port={ports['grpc']}", f"--metrics-port={ports['metrics']}",
           "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
           "--exit-timeout-secs=5"]
    with open(log_file, "wb") as out:
        proc = subprocess.Popen(  # pylint: disable=consider-using-with
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{ports['http']}/v2/models/fil/ready"), 120, "tritonserver",
                 proc, log_file)
        yield ports
    finally:
        stop_process(proc)


def pod(name, ready=True, labels=None):
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "triton", "labels": labels or POD_LABELS},
            "status": {"phase": "Running" if ready else "Pending", "conditions": [condition]}}


def forward_to(api, pod_name, triton):
    api.forward[("triton", pod_name)] = {8000: ("127.0.0.1", triton["http"]), 8001: ("127.0.0.1", triton["grpc"]),
                                         8002: ("127.0.0.1", triton["metrics"])}


@pytest.fixture
def api(triton, tmp_path):
    """A fake API server with a starting pod and a Ready one forwarding to the real tritonserver."""
    with FakeApiServer() as server:
        server.put(pod("triton-fil-5c8d7-aaaaa", ready=False))
        server.put(pod("triton-fil-5c8d7-bbbbb"))
        forward_to(server, "triton-fil-5c8d7-bbbbb", triton)
        server.kubeconfig_path = str(server.kubeconfig(tmp_path / "kubeconfig"))
        yield server


def test_ports_and_local_urls():
    assert url_port(f"http://{IN_CLUSTER}:8000") == 8000 and url_port(f"{IN_CLUSTER}:8001") == 8001
    assert url_port(f"http://{IN_CLUSTER}/metrics") == 80
    assert local_url(f"http://{IN_CLUSTER}:8002/metrics", 4321) == "http://127.0.0.1:4321/metrics"
    assert local_url(f"{IN_CLUSTER}:8001", 4321) == "127.0.0.1:4321"
    with pytest.raises(TunnelError, match="has no port"):
        url_port(IN_CLUSTER)


def test_a_ready_running_pod_is_picked():
    terminating = pod("a-terminating")
    terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert pick_ready_pod([terminating, pod("c-ready"), pod("b-ready"), pod("d", ready=False)],
                          "triton", SELECTOR) == "b-ready"
    with pytest.raises(TunnelError, match=r"pods found: a-terminating \(Running, terminating\)"):
        pick_ready_pod([terminating], "triton", SELECTOR)


VERIFY_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: verify
      rapids.triton_fil.triton_verify:
        url: "{{ url }}"
        protocol: "{{ protocol | default('http') }}"
        model: fil
        timeout: "{{ timeout | default(30) }}"
        reference_file: "{{ reference }}"
        load: "{{ load | default(omit) }}"
        metrics_url: "{{ metrics_url | default(omit) }}"
        kubernetes_tunnel: "{{ tunnel }}"
"""


def tunnel(api, selector=SELECTOR):
    return {"kubeconfig": api.kubeconfig_path, "namespace": "triton", "selector": selector}


def test_verify_through_the_tunnel_with_load_and_metrics(api, ansible):
    run = ansible(VERIFY_PLAY, extra_vars={
        "url": f"http://{IN_CLUSTER}:8000", "metrics_url": f"http://{IN_CLUSTER}:8002/metrics",
        "reference": str(REFERENCE), "load": {"concurrency": 4, "duration": 2}, "tunnel": tunnel(api)})
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    result = run.result("verify")
    assert result["inference"]["matched"] is True
    assert result["load"]["requests"] > 0 and result["load"]["errors"] == 0
    assert result["metrics"]["nv_inference_request_success"] >= result["load"]["requests"]
    assert result["server"]["url"] == f"http://{IN_CLUSTER}:8000"
    assert result["tunnel"]["pod"] == "triton-fil-5c8d7-bbbbb" and result["tunnel"]["namespace"] == "triton"
    assert set(result["tunnel"]["ports"]) == {"8000", "8002"} and result["tunnel"]["errors"] == []
    # One port-forward stream per TCP connection, all to the Ready pod, with the kubeconfig's token.
    streams = api.portforwards
    assert {s["pod"] for s in streams} == {"triton-fil-5c8d7-bbbbb"}
    assert sum(s["port"] == 8000 for s in streams) >= 5, "the first client and the 4 load clients"
    assert sum(s["port"] == 8002 for s in streams) >= 1
    assert {s["authorization"] for s in streams} == {"Bearer fake-token"}
    assert result["tunnel"]["connections"] == len(streams)


def test_verify_over_grpc_through_the_tunnel(api, ansible):
    run = ansible(VERIFY_PLAY, extra_vars={"url": f"{IN_CLUSTER}:8001", "protocol": "grpc",
                                           "reference": str(REFERENCE), "tunnel": tunnel(api)})
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert run.result("verify")["inference"]["matched"] is True
    assert {s["port"] for s in api.portforwards} == {8001}


def test_no_ready_pod_fails_naming_what_was_found(api, ansible):
    run = ansible(VERIFY_PLAY, extra_vars={"url": f"http://{IN_CLUSTER}:8000", "reference": str(REFERENCE),
                                           "timeout": 1, "tunnel": tunnel(api, "app.kubernetes.io/name=triton,"
                                                                               "app.kubernetes.io/instance=other")})
    assert run.rc != 0
    msg = run.result("verify")["msg"]
    assert ("no Ready pod in namespace 'triton' matches the selector "
            "'app.kubernetes.io/name=triton,app.kubernetes.io/instance=other' (pods found: none)") in msg
    assert "kubectl -n triton get pods -l" in msg and "triton_helm_endpoint_host" in msg
    api.objects[("pods", "triton", "triton-fil-5c8d7-bbbbb")]["status"]["conditions"][0]["status"] = "False"
    run = ansible(VERIFY_PLAY, extra_vars={"url": f"http://{IN_CLUSTER}:8000", "reference": str(REFERENCE),
                                           "timeout": 1, "tunnel": tunnel(api)})
    assert run.rc != 0
    msg = run.result("verify")["msg"]
    assert f"no Ready pod in namespace 'triton' matches the selector '{SELECTOR}'" in msg
    assert "triton-fil-5c8d7-aaaaa (Pending, not Ready), triton-fil-5c8d7-bbbbb (Running, not Ready)" in msg
    assert api.portforwards == []


# triton_helm hands the tunnel over (ClusterIP only, unless an endpoint host is set or the tunnel is off);
# the verify role then uses it, against pods made from the Deployment the chart rendered.
ROLE_SCENARIOS = {
    "clusterip": {},
    "loadbalancer": {"triton_helm_service_type": "LoadBalancer"},
    "endpoint-host": {"triton_helm_endpoint_host": "127.0.0.1"},
    "tunnel-off": {"triton_helm_verify_tunnel": False},
}
ROLE_PLAYBOOK = """\
- name: triton_helm, then verify through the tunnel it hands over
  hosts: all
  gather_facts: false
  roles:
    - role: rapids.triton_fil.triton_helm
    - role: rapids.triton_fil.verify
      when: inventory_hostname == 'clusterip'
"""


def pods_of_deployments(triton):
    """on_read hook for pods: each Deployment has one Ready pod with its template's labels."""
    def hook(api, verb):
        for deployment in api.items("deployments"):
            name = f"{deployment['metadata']['name']}-6f9b8-x2x7q"
            if api.get("pods", name, "triton") is None:
                api.put(pod(name, labels=deployment["spec"]["template"]["metadata"]["labels"]))
                forward_to(api, name, triton)
    return hook


@pytest.fixture(scope="module")
def role_run(triton, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("helm-tunnel")
    (tmp / "play.yml").write_text(ROLE_PLAYBOOK)
    helm = tmp / "helm"
    helm.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_HELM}" "$@"\n')
    helm.chmod(0o755)
    servers = {host: FakeApiServer() for host in ROLE_SCENARIOS}
    hosts = {}
    try:
        for host, overrides in ROLE_SCENARIOS.items():
            api = servers[host].__enter__()
            api.on_read.update(deployments=status_after("deployments", 1, AVAILABLE), pods=pods_of_deployments(triton))
            if host == "loadbalancer":
                api.on_read["services"] = status_after("services", 1, LB_READY)
            hosts[host] = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                           "triton_fil_kubeconfig": str(api.kubeconfig(tmp / f"{host}.kubeconfig")),
                           "gcp_project": "my-project", "triton_helm_binary": str(helm), **FAST, **HELM,
                           "triton_helm_hpa_timeout": 0, "verify_reference_file": str(REFERENCE),
                           "verify_load_concurrency": 2, "verify_load_duration": 1, "verify_timeout": 30,
                           **overrides}
        (tmp / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
        run = run_playbook(tmp / "play.yml", inventory=tmp / "hosts.yml", env={"FAKE_HELM_STATE_DIR": str(tmp)},
                           timeout=300)
        yield run, servers
    finally:
        for server in servers.values():
            server.__exit__(None, None, None)


def final_endpoint(run, host):
    facts = run.result("Hand the Triton endpoint to the verify role", host=host)["ansible_facts"]["triton_fil_endpoint"]
    added = run.result("Hand the verify role a tunnel to the Triton pods through the Kubernetes API", host=host)
    return added["ansible_facts"]["triton_fil_endpoint"] if "ansible_facts" in added else facts


def test_triton_helm_hands_a_tunnel_for_clusterip_only(role_run):
    run, servers = role_run
    assert run.rc == 0 and run.failed == 0, run.stdout[-6000:] + run.stderr[-2000:]
    endpoint = final_endpoint(run, "clusterip")
    assert endpoint["http_url"] == f"http://{IN_CLUSTER}:8000"
    assert sorted(endpoint["tunnel"]) == ["kubeconfig", "namespace", "selector"]
    assert endpoint["tunnel"]["namespace"] == "triton" and endpoint["tunnel"]["selector"] == SELECTOR
    assert endpoint["tunnel"]["kubeconfig"].endswith("/clusterip.kubeconfig")
    service = servers["clusterip"].get("services", "triton-fil", "triton")
    assert ",".join(f"{k}={v}" for k, v in sorted(service["spec"]["selector"].items())) == SELECTOR
    for host in ("loadbalancer", "endpoint-host", "tunnel-off"):
        assert "tunnel" not in final_endpoint(run, host), host
    assert final_endpoint(run, "endpoint-host")["http_url"] == "http://127.0.0.1:8000"


def test_verify_role_uses_the_tunnel_of_triton_helm(role_run):
    run, servers = role_run
    verify = run.result("Verify inference against the reference", host="clusterip")
    assert verify["inference"]["matched"] is True and verify["load"]["errors"] == 0
    assert verify["tunnel"]["pod"] == "triton-fil-6f9b8-x2x7q"
    assert verify["metrics"]["nv_inference_request_success"] > 0
    assert {s["port"] for s in servers["clusterip"].portforwards} == {8000, 8002}
    report = " ".join(run.result("Verify report", host="clusterip")["msg"])
    assert f"at http://{IN_CLUSTER}:8000 through a port-forward to pod triton/triton-fil-6f9b8-x2x7q" in report
